"""A process killed with SIGKILL between hold and settle (or anywhere in a write) leaves an
account that ``verify()`` accepts and whose hold is released after the TTL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from gateway.testing.clock import ManualClock

from . import _workers

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")


def _child(mode: str, url: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.credits._workers", mode, url],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def _kill(child: subprocess.Popen[str]) -> None:
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    for stream in (child.stdin, child.stdout):
        if stream is not None:
            stream.close()


def test_killed_between_hold_and_settle(store_url: str) -> None:
    setup = _workers.make_service(store_url)
    setup.account().purchase(Decimal("10"))
    setup.close()

    child = _child("hang", store_url)
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "doomed#1"
    _kill(child)

    service = _workers.make_service(store_url, hold_ttl_s=900)
    clock = service.clock
    assert isinstance(clock, ManualClock)
    credits = service.account()
    credits.verify()
    assert (credits.balance().held, credits.balance().available) == (Decimal("4"), Decimal("6"))
    clock.advance(899)
    assert credits.balance().held == Decimal("4")
    clock.advance(1)
    assert (credits.balance().held, credits.balance().available) == (0, Decimal("10"))
    (released,) = credits.expire()
    assert (released.kind, released.hold_id, released.held) == ("hold_expired", "doomed#1", -4)
    credits.verify()
    assert credits.balance().posted == Decimal("10")  # nothing was charged for the dead call
    service.close()


def test_killed_anywhere_in_a_stream_of_writes(store_url: str) -> None:
    setup = _workers.make_service(store_url)
    setup.account().purchase(Decimal("1000"))
    setup.close()

    child = _child("loop", store_url)
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "running"
    _kill(child)

    service = _workers.make_service(store_url, hold_ttl_s=900)
    clock = service.clock
    assert isinstance(clock, ManualClock)
    credits = service.account()
    check = credits.verify()
    settled = len(credits.requests())
    assert settled >= 20
    assert credits.balance().held in (0, Decimal("0.02"))  # at most the one call in flight
    clock.advance(900)
    credits.expire()
    credits.verify()
    balance = credits.balance()
    assert (balance.held, balance.posted) == (0, Decimal("1000") - settled * Decimal("0.01"))
    assert check.requests_cost == settled * Decimal("0.01")
    service.close()
