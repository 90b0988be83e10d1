"""Every example in examples/ runs offline: the scripts with runpy (in a temporary directory,
with the provider mocks where a script talks to the real providers), the YAML files through
``load_config`` with dummy keys, and the user test file's tests with the plugin's fixtures."""

from __future__ import annotations

import re
import runpy
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from gateway.config import load_config
from gateway.credits.pricing import PriceBook
from gateway.testing.clock import ManualClock
from gateway.testing.mock import MockProviders

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
KEYS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY")


def run_example(name: str, *argv: str) -> dict[str, Any]:
    """Run ``examples/<name>`` as ``python examples/<name> ARGV`` would."""
    saved = sys.argv
    sys.argv = [str(EXAMPLES / name), *argv]
    try:
        return runpy.run_path(str(EXAMPLES / name), run_name="__main__")
    finally:
        sys.argv = saved


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Examples write their SQLite ledgers beside their config files: run copies of them in a
    temporary directory (also the current one), to keep ledgers out of the repo."""
    copy = tmp_path / "examples"
    shutil.copytree(EXAMPLES, copy, ignore=shutil.ignore_patterns("*.db*", "__pycache__"))
    monkeypatch.setattr(sys.modules[__name__], "EXAMPLES", copy)
    monkeypatch.chdir(tmp_path)


def test_every_example_is_covered_here() -> None:
    covered = {
        "quickstart.py",
        "media.py",
        "async_fanout.py",
        "per_customer_credits.py",
        "test_my_app_fallback.py",
    }
    scripts = {p.name for p in EXAMPLES.glob("*.py")}
    assert scripts == covered, "a new example needs a test in tests/test_examples.py"


def dummy_env(text: str) -> dict[str, str]:
    """A dummy value for every ``${VAR}`` (without a ``:-default``) a config refers to; a
    database URL for the ones named like one."""
    names = re.findall(r"\$\{(\w+)\}", text)
    return {
        name: "postgresql://user:secret@localhost:5432/gateway"
        if re.search("URL|DSN|DATABASE", name)
        else "dummy-value"
        for name in names
    }


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_every_yaml_example_is_a_valid_config(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in dummy_env(path.read_text()).items():
        monkeypatch.setenv(key, value)
    config = load_config(path)
    assert config.routes, "an example config has at least one route"
    if config.credits is not None:
        PriceBook.from_config(config.pricing).check_config(config)  # what Gateway() refuses


def test_quickstart(capsys: pytest.CaptureFixture[str]) -> None:
    run_example("quickstart.py")
    out = capsys.readouterr().out
    assert "[openai/gpt-4o] You said: Hello!" in out
    assert "answered by openai gpt-4o after 1 attempt(s); cost 0.0000" in out


def test_media_bills_one_embedding_and_one_image(capsys: pytest.CaptureFixture[str]) -> None:
    run_example("media.py")
    out = capsys.readouterr().out
    # 7 tokens (13 and 10 characters, one token per four) at $0.02 per 1M.
    assert "embeddings: 2 vectors of 1536 numbers, 7 tokens, cost $0.00000014" in out
    # 4 prompt tokens at $5 and 272 low-quality 1024x1024 image tokens at $40 per 1M.
    assert "image: a " in out and "-byte PNG, 272 image tokens, cost $0.0109" in out
    assert "embeddings: 1 call(s), $0.00000014" in out
    assert "    images: 1 call(s), $0.0109" in out


def test_per_customer_credits(capsys: pytest.CaptureFixture[str]) -> None:
    run_example("per_customer_credits.py")
    out = capsys.readouterr().out
    assert "   acme: openai/gpt-4o cost $" in out
    assert " globex: refused, no provider was called" in out
    assert "typo: credit account 'acmee' does not exist" in out
    assert "acme,summaries,1," in out and "globex,summaries,1," in out
    assert "   acme: $9.99" in out  # one purchase, though it was sent twice


def test_async_fanout_offline(capsys: pytest.CaptureFixture[str]) -> None:
    run_example("async_fanout.py")
    out = capsys.readouterr().out
    for provider in ("openai", "anthropic", "gemini"):
        assert f"{provider}: $0.0" in out
    assert "batch: 12 answers on route 'smart'" in out


def test_async_fanout_on_the_production_config_with_mocked_providers(
    gateway_mock: MockProviders,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for key in KEYS:
        monkeypatch.setenv(key, "test-key")
    run_example("async_fanout.py", str(EXAMPLES / "production.yaml"))
    out = capsys.readouterr().out
    assert "anthropic: $" in out and "gemini: $" in out
    assert "batch: 12 answers on route 'smart'" in out
    # Through the real SDKs and adapters: one question each, and the batch at OpenAI.
    assert len(gateway_mock.anthropic.calls) == len(gateway_mock.gemini.calls) == 1
    assert len(gateway_mock.openai.calls) == 1 + 12
    assert (EXAMPLES / "gateway-credits.db").exists()  # production.yaml's ledger, beside it
    assert not Path("gateway-credits.db").exists()  # not in the current directory


USER_TESTS = [
    name
    for name in runpy.run_path(str(EXAMPLES / "test_my_app_fallback.py"))
    if name.startswith("test_")
]


@pytest.mark.parametrize("name", USER_TESTS)
def test_the_user_test_file_passes(
    name: str, gateway_mock: MockProviders, gateway_clock: ManualClock
) -> None:
    module = runpy.run_path(str(EXAMPLES / "test_my_app_fallback.py"))
    module[name](gateway_mock, gateway_clock)
