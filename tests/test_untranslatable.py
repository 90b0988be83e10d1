"""OpenAI arguments a target has no equivalent for (issue 21): hints are left out by default
(``untranslatable_hints: drop``) or refused (``refuse``); a refused target is not the end of
the call, the route's next target may take the argument."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest

from gateway import Gateway
from gateway.errors import (
    AllProvidersFailed,
    ConfigError,
    InvalidRequest,
    UnsupportedArgument,
)
from gateway.testing import ManualClock, mock_providers
from tests.conftest import CANARY_KEY

HELLO = [{"role": "user", "content": "Hello"}]
CLAUDE = "anthropic/claude-sonnet-4-6"


def config(**extra: Any) -> dict[str, Any]:
    return {
        "providers": {"openai": {"api_key": CANARY_KEY}, "anthropic": {"api_key": CANARY_KEY}},
        "routes": {
            "claude": {"targets": [CLAUDE]},
            "claude_then_openai": {"targets": [CLAUDE, "openai/gpt-4o"]},
            "openai_then_claude": {
                "targets": ["openai/gpt-4o", CLAUDE],
                "retry": {"attempts": 1},
            },
        },
        **extra,
    }


def test_hints_without_an_equivalent_are_left_out_by_default() -> None:
    clock = ManualClock()
    with mock_providers(clock) as mock:
        gw = Gateway(config(), clock=clock)
        resp = gw.chat.completions.create(
            model="claude",
            messages=HELLO,
            seed=7,
            frequency_penalty=0.5,
            presence_penalty=0.3,
            service_tier="flex",
            verbosity="low",
            prediction={"type": "content", "content": "Hi"},
        )
    assert resp.gateway.provider == "anthropic"
    body = mock.anthropic.calls[0].body
    assert not {"seed", "frequency_penalty", "presence_penalty", "service_tier"} & body.keys()
    assert not {"verbosity", "prediction"} & body.keys()


def test_refuse_makes_a_hint_without_an_equivalent_an_unsupported_argument() -> None:
    clock = ManualClock()
    with mock_providers(clock) as mock:
        gw = Gateway(config(untranslatable_hints="refuse"), clock=clock)
        with pytest.raises(UnsupportedArgument) as info:
            gw.chat.completions.create(model="claude", messages=HELLO, seed=7)
    assert isinstance(info.value, InvalidRequest)  # what callers caught before
    assert info.value.arguments == ("seed",)
    assert "seed has no equivalent on Anthropic" in str(info.value)
    assert mock.anthropic.calls == []  # refused before the provider was contacted


def test_arguments_that_change_the_answer_are_refused_whatever_the_switch() -> None:
    clock = ManualClock()
    with mock_providers(clock) as mock:
        gw = Gateway(config(), clock=clock)
        with pytest.raises(UnsupportedArgument) as info:
            gw.chat.completions.create(
                model="claude", messages=HELLO, seed=7, logit_bias={"50256": -100}
            )
    assert info.value.arguments == ("logit_bias",)  # the hint was dropped, not listed
    assert mock.anthropic.calls == []


def test_a_target_that_cannot_take_an_argument_passes_the_call_to_the_next() -> None:
    clock = ManualClock()
    with mock_providers(clock) as mock:
        gw = Gateway(config(), clock=clock)
        resp = gw.chat.completions.create(
            model="claude_then_openai", messages=HELLO, logit_bias={"50256": -100}
        )
        again = gw.chat.completions.create(model="claude", messages=HELLO)
    assert resp.gateway.provider == "openai"
    first = resp.gateway.attempts[0]
    assert (first.provider, first.outcome, first.error_type) == (
        "anthropic",
        "error",
        "UnsupportedArgument",
    )
    assert mock.openai.calls[0].body["logit_bias"] == {"50256": -100}
    # Not a sign of ill health: Claude still answers the next call.
    assert again.gateway.provider == "anthropic"
    assert len(mock.anthropic.calls) == 1


def test_a_refusal_after_an_outage_reports_both() -> None:
    clock = ManualClock()
    with mock_providers(clock) as mock:
        mock.openai.fail(503)
        gw = Gateway(config(), clock=clock)
        with pytest.raises(AllProvidersFailed) as info:
            gw.chat.completions.create(
                model="openai_then_claude", messages=HELLO, logit_bias={"1": 1}
            )
    assert not isinstance(info.value, InvalidRequest)  # mixed: the attempts tell the story
    assert [a.error_type for a in info.value.attempts] == [
        "ProviderUnavailable",
        "UnsupportedArgument",
    ]
    assert mock.anthropic.calls == []


def test_a_route_whose_every_target_refuses_raises_the_refusal() -> None:
    clock = ManualClock()
    with mock_providers(clock):
        gw = Gateway(config(), clock=clock)
        with pytest.raises(UnsupportedArgument) as info:
            gw.chat.completions.create(model="claude", messages=HELLO, logit_bias={"1": 1})
    assert isinstance(info.value, AllProvidersFailed)
    assert str(info.value).startswith(f"{CLAUDE}: logit_bias has no equivalent on Anthropic")


def test_the_switch_is_checked() -> None:
    with pytest.raises(ConfigError) as info:
        Gateway(config(untranslatable_hints="sometimes"))
    assert info.value.key == "untranslatable_hints"


@pytest.mark.parametrize(
    ("timeout", "expected"),
    [(httpx2.Timeout(30.0, read=12.0), 12.0), (httpx2.Timeout(None), None), (7, 7.0)],
)
def test_timeout_may_be_an_sdk_timeout_object(timeout: Any, expected: float | None) -> None:
    from gateway._request import build_request

    assert build_request(messages=HELLO, timeout=timeout).timeout == expected
