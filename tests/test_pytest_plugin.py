"""The pytest plugin (gateway.testing.pytest_plugin), run the way a user runs it: pytester.

The inner runs are in-process and put sys.modules back when they end, so what they use is
imported here first (otherwise every inner run would import it again); hypothesis's plugin,
which none of them needs, is switched off in them for the same reason.
"""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import gateway._client
import gateway.providers.anthropic
import gateway.providers.openai
import gateway.testing.clock
import gateway.testing.mock
import gateway.types

_LOADED_FOR_THE_INNER_RUNS = (gateway,)
#: Options of every inner run.
INNER = (
    "-p",
    "no:cacheprovider",
    "-p",
    "no:hypothesispytest",
    "-o",
    "asyncio_default_fixture_loop_scope=function",
)

pytest_plugins = ["pytester"]

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "test_my_app_fallback.py"

USER_TESTS = """
from gateway import Gateway

CONFIG = {
    "providers": {"openai": {"api_key": "k-test"}, "anthropic": {"api_key": "k-test"}},
    "routes": {"smart": {"targets": ["openai/gpt-4o", "anthropic/claude-sonnet-4-6"]}},
}
HELLO = [{"role": "user", "content": "Hi"}]


def test_openai_outage_falls_back_to_anthropic(gateway_mock, gateway_clock):
    gateway_mock.openai.fail(503, times=5)
    gw = Gateway(config=CONFIG, clock=gateway_clock)
    resp = gw.chat.completions.create(model="smart", messages=HELLO)
    assert resp.gateway.provider == "anthropic"
    assert resp.choices[0].message.content.startswith("[anthropic/claude-sonnet-4-6]")


def test_asserting_the_wrong_provider_fails(gateway_mock, gateway_clock):
    gateway_mock.openai.fail(503, times=5)
    gw = Gateway(config=CONFIG, clock=gateway_clock)
    resp = gw.chat.completions.create(model="smart", messages=HELLO)
    assert resp.gateway.provider == "openai"
"""


def test_plugin_is_registered_by_entry_point(request: pytest.FixtureRequest) -> None:
    points = importlib.metadata.entry_points(group="pytest11")
    assert {(p.name, p.value) for p in points} >= {("llm_gateway", "gateway.testing.pytest_plugin")}
    assert request.config.pluginmanager.has_plugin("llm_gateway")


def test_a_users_outage_test_passes_and_a_wrong_assertion_fails(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_user_app=USER_TESTS)
    result = pytester.runpytest(*INNER)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*assert 'anthropic' == 'openai'*"])


def test_the_copyable_example_passes_as_a_user_would_run_it(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_my_app_fallback=EXAMPLE.read_text(encoding="utf-8"))
    result = pytester.runpytest(*INNER)
    result.assert_outcomes(passed=2)


def test_fixtures_are_fresh_per_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_fresh="""
        def test_one(gateway_mock, gateway_clock):
            gateway_mock.openai.fail(503)
            gateway_clock.advance(5)

        def test_two(gateway_mock, gateway_clock):
            assert gateway_mock.openai.pending == [] and gateway_mock.calls == []
            assert gateway_clock.monotonic() == 0
            assert gateway_mock.clock is gateway_clock
        """
    )
    pytester.runpytest(*INNER).assert_outcomes(passed=2)


def test_without_respx_the_fixture_says_how_to_install_it(pytester: pytest.Pytester) -> None:
    # As if the testing extra were not installed: importing respx fails, and the mock module
    # is imported afresh (the plugin imports it only when the fixture is used). The inner run
    # restores sys.modules when it ends.
    pytester.makeconftest(
        """
        import sys

        sys.modules["respx"] = None
        sys.modules.pop("gateway.testing.mock", None)
        """
    )
    pytester.makepyfile(
        test_needs_mock="""
        def test_clock_alone_still_works(gateway_clock):
            gateway_clock.advance(1)

        def test_mock(gateway_mock):
            pass
        """
    )
    result = pytester.runpytest(*INNER)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*respx is not installed*pip install -e '.[[]testing]'*"])


def test_importing_the_plugin_loads_nothing_heavy() -> None:
    heavy = ["respx", "pytest_httpx2", "httpx", "httpx2", "openai", "anthropic", "google.genai"]
    heavy += ["pydantic", "gateway.testing.mock", "gateway.config", "gateway.providers"]
    code = textwrap.dedent(
        f"""
        import json, sys
        import gateway.testing.pytest_plugin
        print(json.dumps([m for m in {heavy!r} if m in sys.modules]))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert json.loads(out) == []
