"""Real gateway processes killed mid-load, on both stores: every call a client saw answered
is in the ledger once, with the cost the client saw, and ``verify()`` passes.

The workers (``_gateway_worker.py``) are real ``Gateway`` processes on the real clock, with
batched settlement (the default); the signals are real. SIGKILL leaves the settled calls
in the process's journal for ``gateway credits recover`` (or the next gateway) to replay;
SIGTERM writes them on the way out and still ends the process as the application expects.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from gateway.credits.store import RequestRow, open_store
from tests.credits import _gateway_worker

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals"),
    pytest.mark.slow,
]


def start(store_url: str, mode: str, flush_interval_ms: int = 200) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.credits._gateway_worker",
            store_url,
            mode,
            str(flush_interval_ms),
        ],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def answered(lines: list[bytes]) -> dict[str, Decimal]:
    """request id -> cost, for every complete ``<id> <cost>`` line."""
    seen: dict[str, Decimal] = {}
    for line in lines:
        parts = line.decode().split()
        if len(parts) == 2 and parts[0].startswith("gw-"):
            seen[parts[0]] = Decimal(parts[1])
    return seen


def read_until(child: subprocess.Popen[bytes], count: int) -> list[bytes]:
    assert child.stdout is not None
    lines: list[bytes] = []
    while len(lines) < count:
        line = child.stdout.readline()
        assert line, f"the worker ended early: {child.stderr.read() if child.stderr else ''!r}"
        lines.append(line)
    return lines


def stop(child: subprocess.Popen[bytes], signum: int) -> tuple[list[bytes], bytes]:
    """Send ``signum``; the rest of what the worker wrote, and its stderr."""
    os.kill(child.pid, signum)
    out, err = child.communicate(timeout=60)
    return out.splitlines(keepends=True), err


def funded(store_url: str) -> None:
    from gateway import Gateway

    gw = Gateway(config=_gateway_worker.config(store_url))
    gw.credits.grant(Decimal("1000"))
    gw.close()


def store_requests(store_url: str) -> list[RequestRow]:
    store = open_store(store_url)
    try:
        return store.requests()
    finally:
        store.close()


def check_billed_once(store_url: str, seen: dict[str, Decimal]) -> None:
    rows = store_requests(store_url)
    assert len({r.hold_id for r in rows}) == len(rows), "no call is written twice"
    billed = {r.request_id: r.cost for r in rows}
    missing = sorted(set(seen) - set(billed))
    assert not missing, f"{len(missing)} answered call(s) unbilled, e.g. {missing[:3]}"
    wrong = {rid: (cost, billed[rid]) for rid, cost in seen.items() if billed[rid] != cost}
    assert not wrong, f"billed at another cost than the client saw: {wrong}"


def recover_with_cli(store_url: str, tmp_path: Path) -> str:
    config = tmp_path / "gateway.yaml"
    config.write_text(yaml.safe_dump(_gateway_worker.config(store_url)))
    done = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "credits", "recover", "--config", str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def verified(store_url: str) -> None:
    from gateway import Gateway

    gw = Gateway(config=_gateway_worker.config(store_url))
    try:
        checked = gw.credits.verify()
        assert checked.unbilled == (), checked.unbilled
        assert checked.requests_cost == Decimal(1000) - gw.credits.balance().posted
    finally:
        gw.close()


@pytest.mark.parametrize("flush_interval_ms", [200, 0], ids=["batched", "per-call"])
def test_workers_killed_mid_load_lose_no_answered_call(
    store_url: str, tmp_path: Path, flush_interval_ms: int
) -> None:
    funded(store_url)
    killed = start(store_url, "loop", flush_interval_ms)
    terminated = start(store_url, "loop", flush_interval_ms)
    seen_lines = read_until(killed, 300) + read_until(terminated, 300)

    rest, _ = stop(killed, signal.SIGKILL)
    seen_lines += rest
    assert killed.returncode == -signal.SIGKILL
    rest, err = stop(terminated, signal.SIGTERM)
    seen_lines += rest
    assert terminated.returncode == -signal.SIGTERM, err.decode()

    seen = answered(seen_lines)
    assert len(seen) >= 600
    report = recover_with_cli(store_url, tmp_path)
    assert "Replayed" in report or "Nothing to recover" in report
    check_billed_once(store_url, seen)
    verified(store_url)
    assert "Nothing to recover" in recover_with_cli(store_url, tmp_path), "replayed once"


def test_sigkill_leaves_the_calls_in_the_journal_until_replayed(
    store_url: str, tmp_path: Path
) -> None:
    funded(store_url)
    child = start(store_url, "idle")
    lines = read_until(child, 51)
    assert lines[-1] == b"idle\n"
    rest, _ = stop(child, signal.SIGKILL)
    seen = answered(lines + rest)
    assert len(seen) == 50
    unwritten = len(seen) - len(store_requests(store_url))
    assert unwritten > 0, "the batch interval had not passed: calls were still in memory"

    report = recover_with_cli(store_url, tmp_path)
    assert f"{unwritten} call(s) written" in report
    check_billed_once(store_url, seen)
    verified(store_url)


@pytest.mark.parametrize("mode", ["idle", "app-handler"])
def test_sigterm_writes_pending_calls_and_keeps_the_applications_behaviour(
    store_url: str, mode: str
) -> None:
    funded(store_url)
    child = start(store_url, mode)
    lines = read_until(child, 51)
    rest, err = stop(child, signal.SIGTERM)
    seen = answered(lines + rest)
    assert len(seen) == 50
    if mode == "idle":
        assert child.returncode == -signal.SIGTERM, "still ended by the signal, as by default"
    else:
        assert child.returncode == 0 and b"app handler\n" in rest, err.decode()
    # No replay needed: the handler wrote them before the process ended.
    check_billed_once(store_url, seen)
    verified(store_url)
