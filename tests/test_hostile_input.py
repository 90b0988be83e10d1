"""Hostile input is refused with the gateway's own error, quickly and in bounded memory.

Issue 12, section 2: YAML that expands or nests without end (defect 4), secrets outside
``api_key`` (defect 8, with tests/test_secrets.py), message content nested past any reason
(defect 10), and amounts written with separators or non-ASCII digits (defect 11).

"Quickly" is checked without a wall clock: :func:`bounded_work` counts the function calls a
step makes and stops it past a budget, so an input whose expansion a missing limit would
follow into gigabytes fails the test at once instead of hanging it.
"""

from __future__ import annotations

import sys
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

import pytest

from gateway._yaml import MAX_ALIASES, MAX_CONFIG_BYTES, MAX_DEPTH, MAX_VALUES
from gateway.config import load_config, parse_config
from gateway.errors import ConfigError
from tests.conftest import CANARY_KEY

T = TypeVar("T")

#: Function calls one refusal may take; loading examples/production.yaml takes ~40,000.
WORK_BUDGET = 400_000
#: Memory one refusal may allocate at its peak.
MEMORY_BUDGET = 32 * 1024 * 1024


class WorkExceeded(BaseException):
    """Raised inside the code under test when it passes its budget of calls (a BaseException,
    so no ``except Exception`` in that code can swallow it)."""


@contextmanager
def bounded_work(calls: int = WORK_BUDGET, memory: int = MEMORY_BUDGET) -> Iterator[None]:
    """Fail (not hang) if the block makes more than ``calls`` Python or C calls, or allocates
    more than ``memory`` bytes at its peak."""
    count = 0

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        nonlocal count
        if event in ("call", "c_call"):
            count += 1
            if count > calls:
                sys.setprofile(None)
                raise WorkExceeded(f"more than {calls:,} calls: a limit is missing")

    tracemalloc.start()
    sys.setprofile(profile)
    try:
        yield
    finally:
        sys.setprofile(None)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < memory, f"peak memory {peak:,} bytes"


def refused(load: Callable[[], object]) -> ConfigError:
    with bounded_work(), pytest.raises(ConfigError) as info:
        load()
    return info.value


# ---------------------------------------------------------------------------------------------
# Defect 4: YAML


def billion_laughs(width: int = 9, levels: int = 9) -> str:
    """The classic: each level is ``width`` aliases of the one before (9**9 strings)."""
    text = "a0: &a0 [" + ",".join(["lol"] * width) + "]\n"
    for level in range(1, levels):
        text += f"a{level}: &a{level} [" + ",".join([f"*a{level - 1}"] * width) + "]\n"
    return text


def test_billion_laughs_is_refused_without_expanding() -> None:
    text = billion_laughs()
    assert len(text) < 500
    error = refused(lambda: parse_config(text, source="laughs.yaml"))
    assert error.file == "laughs.yaml" and error.line == 5  # a4: 9**5 values > the limit
    assert f"more than {MAX_VALUES:,} values" in str(error) and "aliases" in str(error)


def test_merge_key_bomb_is_refused() -> None:
    """``<<`` copies the merged mappings' pairs: nested merges grow like nested aliases."""
    text = "m0: &m0 {" + ", ".join(f"k{i}: v" for i in range(10)) + "}\n"
    for level in range(1, 9):
        text += f"m{level}: &m{level} {{<<: [" + ", ".join([f"*m{level - 1}"] * 10) + "]}\n"
    error = refused(lambda: parse_config(text))
    assert f"more than {MAX_VALUES:,} values" in str(error) and error.line is not None


@pytest.mark.parametrize(
    "text",
    ["a: &a [*a]\n", "a: &a {b: {c: *a}}\n", "a: &a\n  - 1\n  - *a\n", "&top {x: *top}\n"],
)
def test_an_alias_inside_its_own_anchor_is_refused(text: str) -> None:
    error = refused(lambda: parse_config(text))
    assert "used inside the value it names" in str(error) and error.line == 1
    assert "RecursionError" not in repr(error)


@pytest.mark.parametrize(
    "text",
    [
        "x: " + "[" * 20_000 + "]" * 20_000 + "\n",
        "x: " + "{a: " * 20_000 + "1" + "}" * 20_000 + "\n",
        "".join("  " * i + f"k{i}:\n" for i in range(MAX_DEPTH + 1))
        + "  " * (MAX_DEPTH + 1)
        + "1\n",
    ],
    ids=["flow-lists", "flow-mappings", "block-mappings"],
)
def test_deep_nesting_is_refused(text: str) -> None:
    error = refused(lambda: parse_config(text))
    assert f"nested more than {MAX_DEPTH} levels deep" in str(error)
    assert error.line is not None and error.line <= MAX_DEPTH + 1


def test_deep_nesting_through_aliases_is_refused() -> None:
    """Each anchor one level deeper than the last: shallow as written, deep when expanded."""
    text = "a0: &a0 [1]\n" + "".join(f"a{i}: &a{i} [*a{i - 1}]\n" for i in range(1, 200))
    error = refused(lambda: parse_config(text))
    assert f"more than {MAX_DEPTH} levels deep" in str(error)
    assert error.line == MAX_DEPTH - 1  # a62's value, 64 levels under the top one


def test_too_many_aliases_are_refused() -> None:
    text = "x: &x 1\ny: [" + ", ".join(["*x"] * (MAX_ALIASES + 1)) + "]\n"
    error = refused(lambda: parse_config(text))
    assert f"more than {MAX_ALIASES:,} aliases" in str(error) and error.line == 2


def test_too_many_values_are_refused_while_parsing() -> None:
    """Parsing stops at the limit (PyYAML makes ~150 calls per value: no need to profile)."""
    text = "x: [" + ",".join(["1"] * (MAX_VALUES + 1)) + "]\n"
    with pytest.raises(ConfigError, match=f"more than {MAX_VALUES:,} values") as info:
        parse_config(text)
    assert info.value.line == 1


def test_a_file_over_the_size_limit_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text("providers: {fake: {}}\nroutes: {}\n" + "#" * MAX_CONFIG_BYTES + "\n")
    error = refused(lambda: load_config(path))
    assert error.file == str(path) and f"more than {MAX_CONFIG_BYTES // 1024} KiB" in str(error)
    with pytest.raises(ConfigError, match="KiB"):
        parse_config("#" * (MAX_CONFIG_BYTES + 1))


def test_a_file_that_is_not_utf8_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_bytes(b"providers: {fake: {}}\nroutes: {}\nnote: caf\xe9\n")
    error = refused(lambda: load_config(path))
    assert "not UTF-8" in str(error) and error.line == 3


@pytest.mark.parametrize(
    ("text", "tag"),
    [
        ("x: !!python/name:os.system\n", "!!python/name:os.system"),
        ("x: !!python/object/apply:os.system ['echo hi']\n", "!!python/object/apply:os.system"),
        ("x: !!python/object:collections.OrderedDict {a: 1}\n", "!!python/object"),
        ("x: !!set {a, b}\n", "!!set"),
        ("x: !!binary aGk=\n", "!!binary"),
        ("x: !Ref MyBucket\n", "!Ref"),
        ("? !!python/tuple [a, b]\n: 1\n", "keys must be plain names"),
    ],
)
def test_tags_beyond_plain_yaml_are_config_errors(text: str, tag: str) -> None:
    error = refused(lambda: parse_config(text, source="tags.yaml"))
    assert tag in str(error) and error.file == "tags.yaml" and error.line == 1


@pytest.mark.parametrize("text", ["x: 2026-13-45\n", "x: !!int twelve\n", "a: {<<: [1, 2]}\n"])
def test_values_yaml_cannot_build_are_config_errors(text: str) -> None:
    error = refused(lambda: parse_config(text))
    assert error.line == 1


def test_a_dict_config_that_contains_itself_is_refused() -> None:
    config: dict[str, Any] = {"providers": {}}
    config["routes"] = config
    error = refused(lambda: parse_config(config))
    assert f"nested more than {MAX_DEPTH} levels deep" in str(error)


def test_plain_anchors_still_work() -> None:
    config = parse_config(
        "providers: {fake: {}}\n"
        "routes:\n"
        "  a: {targets: [fake/x], retry: &retry {attempts: 3}}\n"
        "  b: {targets: [fake/y], retry: *retry}\n"
    )
    assert config.routes["b"].retry.attempts == 3


def test_the_shipped_examples_load_well_inside_the_limits() -> None:
    examples = Path(__file__).parent.parent / "examples"
    for path in sorted(examples.glob("*.yaml")):
        with bounded_work():
            load_config(path, env={})


# ---------------------------------------------------------------------------------------------
# Defect 10: request data nested past reason


def nested(depth: int, leaf: Any = "hi") -> Any:
    value = leaf
    for _ in range(depth):
        value = {"text": value}
    return value


def self_containing() -> list[Any]:
    loop: list[Any] = ["hi"]
    loop.append(loop)
    return loop


DEEP = 5_000  # far past Python's recursion limit, which repr() and json.dumps() run into

DEEP_REQUESTS: dict[str, tuple[dict[str, Any], str]] = {
    "text part": (
        {"messages": [{"role": "user", "content": [{"type": "text", "text": nested(DEEP)}]}]},
        "messages[0]",
    ),
    "extra field of a part": (
        {
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "hi", "x": nested(DEEP)}]},
            ]
        },
        "messages[1]",
    ),
    "content that contains itself": (
        {"messages": [{"role": "user", "content": self_containing()}]},
        "messages[0]",
    ),
    "tool schema": (
        {
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [
                {"type": "function", "function": {"name": "f", "parameters": nested(DEEP, {})}}
            ],
        },
        "tools",
    ),
    "response_format": (
        {
            "messages": [{"role": "user", "content": "hi"}],
            "response_format": {"type": "json_schema", "json_schema": nested(DEEP, {})},
        },
        "response_format",
    ),
    "extra_body": (
        {"messages": [{"role": "user", "content": "hi"}], "extra_body": {"x": nested(DEEP)}},
        "extra_body",
    ),
}

CREDIT_CONFIG: dict[str, Any] = {
    "providers": {name: {"api_key": "test-key"} for name in ("openai", "anthropic", "gemini")},
    "routes": {
        "smart": {
            "targets": ["openai/gpt-4o", "anthropic/claude-sonnet-4-6", "gemini/gemini-2.5-flash"]
        }
    },
    "credits": {"store": "memory://", "flush_interval_ms": 0},
}


@pytest.mark.parametrize("case", sorted(DEEP_REQUESTS))
def test_deeply_nested_request_is_invalid_request_before_anything_happens(
    case: str, gateway_mock: Any, gateway_clock: Any
) -> None:
    from decimal import Decimal

    from gateway import Gateway
    from gateway.errors import InvalidRequest

    arguments, where = DEEP_REQUESTS[case]
    gw = Gateway(config=CREDIT_CONFIG, clock=gateway_clock)
    gw.credits.purchase(Decimal("5"))
    entries = len(gw.credits.history())
    with pytest.raises(InvalidRequest) as info:
        gw.chat.completions.create(model="smart", max_tokens=10, **arguments)
    assert str(info.value).startswith(f"gateway: {where} is nested more than 100 levels deep")
    assert gateway_mock.calls == []
    balance = gw.credits.balance()
    assert (balance.held, balance.available) == (Decimal(0), Decimal(5))
    assert len(gw.credits.history()) == entries


def test_nesting_a_real_request_needs_is_accepted() -> None:
    from gateway._request import MAX_NESTING, build_request

    schema = nested(MAX_NESTING - 4, {})  # tools[0].function.parameters is level 4
    request = build_request(
        messages=[{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        tools=[{"type": "function", "function": {"name": "f", "parameters": schema}}],
    )
    assert request.tools is not None


# ---------------------------------------------------------------------------------------------
# Defect 11: amounts


SEPARATED = ["1_000", "1,000", "1_0.5"]
OTHER_DIGITS = ["٥", "１０", "۲.۵", "5\u00a0", "\u0665\u0660"]


@pytest.fixture
def funded_gateway() -> Any:
    from decimal import Decimal

    from gateway import Gateway
    from gateway.testing.clock import ManualClock

    gw = Gateway(
        config={
            "providers": {"fake": {}},
            "routes": {"r": {"targets": ["fake/small"]}},
            "credits": {"store": "memory://"},
        },
        clock=ManualClock(),
    )
    gw.credits.purchase(Decimal("10"))
    yield gw
    gw.close()


@pytest.mark.parametrize(
    ("text", "message"),
    [(t, "has a separator") for t in SEPARATED] + [(t, "digits 0-9") for t in OTHER_DIGITS],
)
@pytest.mark.parametrize("operation", ["purchase", "grant", "daily cap", "recharge"])
def test_amounts_with_separators_or_other_digits_are_refused(
    funded_gateway: Any, text: str, message: str, operation: str
) -> None:
    from decimal import Decimal

    from gateway.errors import InvalidAmount

    credits = funded_gateway.credits
    before = (credits.history(), credits.balance().available, credits.settings())
    actions: dict[str, Callable[[], object]] = {
        "purchase": lambda: credits.purchase(text),
        "grant": lambda: credits.grant(text),
        "daily cap": lambda: credits.set_limits(daily=text),
        "recharge": lambda: credits.set_auto_recharge(
            below=Decimal("1"), amount=text, monthly_limit=Decimal("100")
        ),
    }
    with pytest.raises(InvalidAmount) as info:
        actions[operation]()
    assert message in str(info.value) and repr(text) in str(info.value)
    assert (credits.history(), credits.balance().available, credits.settings()) == before


@pytest.mark.parametrize("text", ["1000", "20.50", " 5 ", "+5", "5e-9", ".5", "5."])
def test_plain_amounts_are_still_read_exactly(text: str) -> None:
    from decimal import Decimal

    from gateway.credits.money import decimal_from_text

    assert decimal_from_text(text) == Decimal(text.strip())


def test_an_absurd_amount_names_the_limit_it_passed(funded_gateway: Any) -> None:
    from gateway.errors import InvalidAmount

    credits = funded_gateway.credits
    with pytest.raises(InvalidAmount) as grant:
        credits.grant("1e30")
    assert "(the limit is below $1,000,000,000)" in str(grant.value)
    with pytest.raises(InvalidAmount) as cap:
        credits.set_limits(daily="1e30")
    assert "(the limit is below $1,000,000,000)" in str(cap.value)
    with pytest.raises(InvalidAmount) as purchase:
        credits.purchase("1e30")  # max_purchase ($10,000) is the nearer limit
    assert "(above the maximum of $10000)" in str(purchase.value)
    for error in (grant.value, cap.value, purchase.value):
        assert "1,000,000,000,000" not in str(error)  # the config's limit, not the ledger's


@pytest.mark.parametrize(("text", "message"), [("1_000", "separator"), ("٥", "digits 0-9")])
def test_config_amounts_with_separators_or_other_digits_are_config_errors(
    text: str, message: str
) -> None:
    yaml_text = (
        "providers: {fake: {}}\nroutes: {}\ncredits:\n  store: memory://\n"
        f'  limits: {{daily: "{text}"}}\n'
    )
    with pytest.raises(ConfigError) as info:
        parse_config(yaml_text, source="gateway.yaml")
    assert message in str(info.value)
    assert (info.value.line, info.value.key) == (5, "credits.limits.daily")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["credits", "buy", "1_000"], "'1_000' is not an amount of money: it has a separator"),
        (["credits", "buy", "٥"], "'٥' is not an amount of money: it has characters other"),
        (["credits", "grant", "١٠"], "'١٠' is not an amount of money: it has characters other"),
        (["credits", "limits", "--daily", "1_0"], "it has a separator"),
    ],
)
def test_cli_amounts_with_separators_or_other_digits_exit_2(
    tmp_path: Path, args: list[str], message: str
) -> None:
    from click.testing import CliRunner

    from gateway.cli._app import cli

    config = tmp_path / "gateway.yaml"
    config.write_text(
        "providers: {fake: {}}\nroutes: {r: {targets: [fake/small]}}\n"
        f"credits: {{store: 'sqlite:///{tmp_path / 'credits.db'}'}}\n"
    )
    result = CliRunner().invoke(cli, [*args, "--config", str(config)], prog_name="gateway")
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output
    assert not (tmp_path / "credits.db").exists()  # nothing opened, nothing written


# ---------------------------------------------------------------------------------------------
# Defect 8: secrets outside api_key

PROXY_PASSWORD = "Pr0xy-pa55word-9d1e"
HEADER_SECRET = "hdr-tenant-secret-4b7c"
QUERY_SECRET = "q-sig-secret-7e2f"
SECRETS = (PROXY_PASSWORD, HEADER_SECRET, QUERY_SECRET, CANARY_KEY)


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


def secret_provider_config() -> dict[str, Any]:
    return {
        "api_key": CANARY_KEY,
        "base_url": f"https://bob:{PROXY_PASSWORD}@proxy.example/v1?sig={QUERY_SECRET}&v=2",
        "headers": {"X-Tenant-Token": HEADER_SECRET, "X-Route": "eu-west"},
    }


@pytest.mark.parametrize("form", ["dict", "yaml"])
def test_header_values_and_url_credentials_never_show_in_the_config(form: str) -> None:
    import json

    from gateway.errors import redact

    provider = secret_provider_config()
    if form == "dict":
        config = parse_config({"providers": {"openai": provider}, "routes": {}})
    else:
        config = parse_config(
            "providers:\n  openai:\n"
            f"    api_key: {provider['api_key']}\n"
            f'    base_url: "{provider["base_url"]}"\n'
            f"    headers: {{X-Tenant-Token: {HEADER_SECRET}, X-Route: eu-west}}\n"
            "routes: {}\n"
        )
    openai = config.providers["openai"]
    shown = [
        repr(config),
        str(config),
        repr(openai),
        str(openai),
        str(config.model_dump()),
        config.model_dump_json(),
        repr(openai.headers),
        str(openai.headers),
        json.dumps(openai.model_dump(mode="json")),
    ]
    for text in shown:
        assert_no_secret(text)
    dumped = openai.model_dump()
    assert dumped["headers"] == {"X-Tenant-Token": "**********", "X-Route": "**********"}
    assert dumped["base_url"] == "https://bob:***@proxy.example/v1?sig=***&v=2"
    assert dumped["api_key"] == "**********"
    # The SDK still gets the real values.
    assert dict(openai.headers) == {"X-Tenant-Token": HEADER_SECRET, "X-Route": "eu-west"}
    assert openai.base_url == provider["base_url"]
    # And they are redacted wherever a message might echo them.
    assert_no_secret(redact(f"proxy said {PROXY_PASSWORD} / {HEADER_SECRET} / {QUERY_SECRET}"))


def test_an_unset_header_variable_names_the_variable_not_a_value() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(
            "providers:\n  openai:\n    api_key: k\n    headers: {X-Token: ${GW_UNSET_HEADER}}\n"
            "routes: {}\n",
            env={},
        )
    assert "GW_UNSET_HEADER" in str(info.value) and info.value.line == 4


def test_config_check_shows_a_base_url_without_its_password(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from gateway.cli._app import cli

    path = tmp_path / "gateway.yaml"
    path.write_text(
        "providers:\n  openai:\n    api_key: sk-test-0123456789\n"
        f'    base_url: "https://bob:{PROXY_PASSWORD}@proxy.example/v1"\n'
        f"    headers: {{X-Tenant-Token: {HEADER_SECRET}}}\n"
        "routes: {r: {targets: [openai/gpt-4o]}}\n"
    )
    result = CliRunner().invoke(cli, ["config", "check", str(path)], prog_name="gateway")
    assert "proxy.example" in result.output
    assert_no_secret(result.output)


def exception_chain(error: BaseException) -> list[BaseException]:
    """``error`` and every exception reachable from it: causes, contexts, attempts' errors."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [error]
    while todo:
        item = todo.pop()
        if item is None or any(item is known for known in seen):
            continue
        seen.append(item)
        todo += [item.__cause__, item.__context__]
        todo += [attempt.error for attempt in getattr(item, "attempts", ())]
    return seen


MODELS = {
    "openai": "openai/gpt-4o",
    "anthropic": "anthropic/claude-sonnet-4-6",
    "gemini": "gemini/gemini-2.5-flash",
}


@pytest.mark.parametrize("provider", sorted(MODELS))
@pytest.mark.parametrize(
    "fault", ["auth_error", "500", "timeout", "disconnect", "mid-stream", "overloaded-stream"]
)
def test_errors_from_sdk_failures_carry_no_sdk_exception(
    provider: str, fault: str, gateway_mock: Any, gateway_clock: Any
) -> None:
    import traceback

    from gateway import Gateway
    from gateway.errors import GatewayError

    settings = secret_provider_config()
    del settings["base_url"]  # the mocks answer the default endpoints
    gw = Gateway(
        config={
            "providers": {provider: settings},
            "routes": {"r": {"targets": [MODELS[provider]], "retry": {"attempts": 1}}},
        },
        clock=gateway_clock,
    )
    script = getattr(gateway_mock, provider)
    stream = fault in ("mid-stream", "overloaded-stream")
    if fault == "auth_error":
        script.auth_error()
    elif fault == "500":
        script.fail(500)
    elif fault == "timeout":
        script.timeout()
    elif fault == "disconnect":
        script.disconnect()
    elif fault == "mid-stream":
        script.disconnect(after_chunks=2)
    else:
        script.overloaded_mid_stream(after_chunks=2)
    messages = [{"role": "user", "content": "hi"}]
    with pytest.raises(GatewayError) as info:
        if stream:
            for _ in gw.chat.completions.create(model="r", messages=messages, stream=True):
                pass
        else:
            gw.chat.completions.create(model="r", messages=messages)
    chain = exception_chain(info.value)
    assert all(isinstance(error, GatewayError) for error in chain), [type(e) for e in chain]
    for error in chain:
        assert_no_secret("".join(traceback.format_exception(error)))
        assert_no_secret(repr(error))
    gw.close()


@pytest.mark.parametrize("provider", sorted(MODELS))
def test_a_base_url_password_never_reaches_a_log_record(
    provider: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Real HTTP to the bench's local server, so httpx2 and httpcore2 log as in production."""
    import logging

    from bench import clients
    from bench.fake_server import ServerThread
    from gateway import Gateway
    from gateway.errors import GatewayError

    with ServerThread() as server:
        healthy = clients.base_url(provider, server.url)
        failing = clients.base_url(provider, server.url, "status=500")
        with_password = [
            url.replace("http://", f"http://bob:{PROXY_PASSWORD}@") for url in (healthy, failing)
        ]
        providers = {
            name: {
                "type": provider,
                "api_key": CANARY_KEY,
                "base_url": url,
                "headers": {"X-Tenant-Token": HEADER_SECRET},
            }
            for name, url in zip(("ok", "down"), with_password, strict=True)
        }
        model = MODELS[provider].split("/")[1]
        gw = Gateway(
            config={
                "providers": providers,
                "routes": {
                    "r": {"targets": [f"ok/{model}"]},
                    "bad": {"targets": [f"down/{model}"], "retry": {"attempts": 1}},
                },
            }
        )
        with caplog.at_level(logging.DEBUG):
            for name in ("httpx2", "httpcore2", "openai", "anthropic", "google_genai"):
                logging.getLogger(name).setLevel(logging.DEBUG)
            try:
                messages = [{"role": "user", "content": "hi"}]
                gw.chat.completions.create(model="r", messages=messages)
                list(gw.chat.completions.create(model="r", messages=messages, stream=True))
                with pytest.raises(GatewayError):
                    gw.chat.completions.create(model="bad", messages=messages)
            finally:
                for name in ("httpx2", "httpcore2", "openai", "anthropic", "google_genai"):
                    logging.getLogger(name).setLevel(logging.NOTSET)
                gw.close()
    names = {record.name for record in caplog.records}
    assert "httpx2" in names and any(name.startswith("httpcore2.") for name in names)
    requests = [r.getMessage() for r in caplog.records if r.name == "httpx2"]
    assert any("bob:[REDACTED]@127.0.0.1" in line for line in requests), requests
    for record in caplog.records:
        assert_no_secret(record.getMessage())
        assert_no_secret(record.exc_text or "")
    assert_no_secret(caplog.text)
