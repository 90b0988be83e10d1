"""The settlement journal (gateway/credits/journal.py): a settled call is on disk before its
caller sees the answer, and a later process replays the journal of one that died, exactly
once, on both stores.

A process "dies" here by letting go of its journal without writing its batch (the file and
its records stay, its lock is gone), which is what the kernel leaves behind after SIGKILL;
tests/credits/test_kill.py does the same with real processes and real signals.
"""

from __future__ import annotations

import json
import os
import stat
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gateway.config import CreditsConfig
from gateway.credits import CreditService, PriceBook
from gateway.credits.journal import Recovery
from gateway.credits.spender import _LIVE, Spender
from gateway.credits.store import open_store
from gateway.testing.clock import ManualClock
from tests.credits.conftest import MakeService
from tests.credits.test_spender import COST, calls, hold, settle

D = Decimal
BATCHED = {"flush_interval_ms": 60_000, "max_batch": 10_000}


def spender_of(service: CreditService) -> Spender:
    assert service.spender is not None
    return service.spender


def journal_path(service: CreditService) -> Path:
    journal = spender_of(service)._journal
    assert journal is not None
    return journal.path


def records(path: Path) -> list[list[object]]:
    """The journal's records after its first line, which names the store."""
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines[0][0] == "s" and str(lines[0][1]).startswith(("sqlite:/", "postgresql://"))
    return lines[1:]


def die(service: CreditService) -> None:
    """What SIGKILL leaves: the journal file with its records, no lock, nothing written."""
    spender = spender_of(service)
    assert spender._journal is not None
    spender._journal.forget()
    spender._leases = {}
    spender._closed = True
    _LIVE.discard(spender)
    service.store.close()


def funded(make_service: MakeService) -> CreditService:
    service = make_service(**BATCHED)
    service.account().purchase(D("100"))
    return service


def test_each_settled_call_is_journaled_before_settle_returns(make_service: MakeService) -> None:
    service = funded(make_service)
    spender = spender_of(service)
    calls(spender, 5)
    path = journal_path(service)
    lines = records(path)
    assert lines[0] == ["a", "default"]
    written = [line for line in lines if line[0] == "c"]
    assert [line[3] for line in written] == [f"c{i}#1" for i in range(5)]
    assert all(line[14] == COST and line[18] == {"team": "a"} for line in written)
    assert all(line[1] is not None and str(line[1]).startswith("lease-") for line in written)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700

    held = hold(spender, "in-flight")
    service.account().balance()  # writes the batch: the journal starts again
    assert records(path) == [["a", "default"]], "only the account whose lease is still open"
    settle(spender, held)
    service.account().balance()  # nothing in flight: the lease is given back
    assert records(path) == []  # the store's line only
    service.close()
    assert not path.exists(), "a gateway that closes cleanly leaves no journal"


def test_a_dead_process_journal_is_replayed_exactly_once(make_service: MakeService) -> None:
    dead = funded(make_service)
    calls(spender_of(dead), 20)
    path = journal_path(dead)
    die(dead)

    heir = make_service(**BATCHED)
    assert heir.store.requests() == [], "the dead process wrote nothing"
    recovery = heir.recover()
    assert recovery == Recovery(
        journals=1, calls=20, cost=20 * D("0.004"), already=0, leases=1, problems=()
    )
    rows = heir.store.requests()
    assert sorted(r.hold_id for r in rows) == sorted(f"c{i}#1" for i in range(20))
    assert all(r.cost == D("0.004") and r.tags == {"team": "a"} for r in rows)
    balance = heir.account().balance()
    assert (balance.posted, balance.held) == (D("100") - 20 * D("0.004"), 0)
    assert heir.account().verify().unbilled == ()
    assert not path.exists()
    assert heir.recover() == Recovery(), "nothing left to replay"


def test_calls_whose_batch_was_written_are_not_charged_again(make_service: MakeService) -> None:
    """The process wrote a batch and died before emptying its journal."""
    dead = funded(make_service)
    spender = spender_of(dead)
    calls(spender, 10, prefix="early")
    path = journal_path(dead)
    before_write = path.read_bytes()
    dead.account().balance()  # the batch of 10 is written and the journal emptied
    calls(spender, 5, prefix="late")
    after_write = path.read_bytes()
    die(dead)
    path.write_bytes(before_write + after_write)  # as if emptying it had not happened

    heir = make_service(**BATCHED)
    recovery = heir.recover()
    assert (recovery.calls, recovery.already, recovery.cost) == (5, 10, 5 * D("0.004"))
    assert len(heir.store.requests()) == 15
    assert heir.account().balance().posted == D("100") - 15 * D("0.004")
    heir.account().verify()


def test_two_processes_replaying_at_once_write_each_call_once(make_service: MakeService) -> None:
    dead = funded(make_service)
    calls(spender_of(dead), 30)
    die(dead)
    heirs = [make_service(**BATCHED) for _ in range(2)]
    barrier = threading.Barrier(2)
    results: list[Recovery] = []

    def replay(service: CreditService) -> None:
        barrier.wait()
        results.append(service.recover())

    threads = [threading.Thread(target=replay, args=(h,)) for h in heirs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r.calls for r in results) == 30
    assert len(heirs[0].store.requests()) == 30
    heirs[0].account().verify()


def test_a_live_process_journal_is_left_to_it(make_service: MakeService) -> None:
    alive = funded(make_service)
    calls(spender_of(alive), 3)
    other = make_service(**BATCHED)
    assert other.recover() == Recovery()
    assert spender_of(alive).pending == 3
    alive.close()
    assert len(other.store.requests()) == 3


def test_a_torn_last_line_is_ignored_and_a_bad_line_reported(make_service: MakeService) -> None:
    dead = funded(make_service)
    calls(spender_of(dead), 3)
    path = journal_path(dead)
    die(dead)
    lines = path.read_bytes().splitlines(keepends=True)
    torn = b'["c","lease-x","torn","torn#1","default",17'
    path.write_bytes(lines[0] + b"garbage\n" + b"".join(lines[1:]) + torn)

    recovery = make_service(**BATCHED).recover()
    assert recovery.calls == 3
    (problem,) = recovery.problems
    assert "1 unreadable line(s)" in problem and str(path) in problem


def test_the_first_write_of_a_new_gateway_replays_the_dead(make_service: MakeService) -> None:
    dead = funded(make_service)
    calls(spender_of(dead), 4, prefix="dead")
    die(dead)
    heir = make_service(**BATCHED)
    settle(spender_of(heir), hold(spender_of(heir), "new"))  # its first lease replays first
    assert sorted(r.request_id for r in heir.store.requests()) == [f"dead{i}" for i in range(4)]
    heir.close()
    assert len(make_service(**BATCHED).store.requests()) == 5


def test_verify_reports_unreplayed_journals_and_lapsed_leases(
    make_service: MakeService, clock: ManualClock
) -> None:
    dead = funded(make_service)
    calls(spender_of(dead), 6)
    die(dead)
    heir = make_service(**BATCHED)
    (journal,) = heir.account().verify().unbilled
    assert "6 settled call(s) costing $0.024" in journal and "gateway credits recover" in journal

    clock.advance(901)  # past the dead lease's TTL
    unbilled = heir.account().verify().unbilled
    assert len(unbilled) == 2 and "passed its TTL" in unbilled[1]
    assert unbilled[1].startswith("lease lease-")

    heir.recover()
    assert heir.account().verify().unbilled == ()
    assert heir.account().balance().posted == D("100") - 6 * D("0.004")


def test_no_journal_for_the_per_call_path_or_when_disabled(make_service: MakeService) -> None:
    assert make_service(flush_interval_ms=0).journal_dir is None
    off = make_service(journal={"enabled": False}, **BATCHED)
    assert off.journal_dir is None
    off.account().purchase(D("10"))
    calls(spender_of(off), 2)
    assert spender_of(off).journal_name is None


def test_the_journal_directory_can_be_chosen(make_service: MakeService, tmp_path: Path) -> None:
    chosen = tmp_path / "journals"
    service = make_service(journal={"dir": str(chosen)}, **BATCHED)
    service.account().purchase(D("10"))
    calls(spender_of(service), 1)
    assert journal_path(service).parent == chosen
    assert [p.suffix for p in chosen.iterdir()] == [".jnl"]


def test_a_journal_that_cannot_be_written_writes_the_call_at_once(
    make_service: MakeService, tmp_path: Path
) -> None:
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the journal directory should be")
    service = make_service(journal={"dir": str(blocked)}, **BATCHED)
    service.account().purchase(D("10"))
    spender = spender_of(service)
    calls(spender, 2)
    assert spender.pending == 0, "each call was written to the store instead"
    assert len(service.store.requests()) == 2


def test_fsync_option_flushes_each_record(
    make_service: MakeService, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real = os.fdatasync
    monkeypatch.setattr(os, "fdatasync", lambda fd: (synced.append(fd), real(fd))[1])
    service = make_service(journal={"fsync": True}, **BATCHED)
    service.account().purchase(D("10"))
    calls(spender_of(service), 1, prefix="first")
    assert synced, "the lease's account record and the call were flushed"
    before = len(synced)
    calls(spender_of(service), 3)
    assert len(synced) == before + 3, "one flush per call"


def test_verify_names_a_dead_journal_whose_calls_are_all_written(
    make_service: MakeService,
) -> None:
    """Killed after its batch committed, before its journal was emptied: nothing is unbilled,
    but its lease stays on hold until the journal is replayed."""
    dead = funded(make_service)
    spender = spender_of(dead)
    calls(spender, 3)
    path = journal_path(dead)
    written_before = path.read_bytes()
    held = hold(spender, "in-flight")
    dead.account().balance()  # the batch is written; the lease stays for the call in flight
    die(dead)
    path.write_bytes(written_before)
    heir = make_service(**BATCHED)
    (line,) = heir.account().verify().unbilled
    assert "every call it records is in the store" in line and str(path) in line
    assert heir.account().balance().held == D(held.amount)
    assert heir.recover().leases == 1
    assert heir.account().verify().unbilled == () and heir.account().balance().held == 0


def test_a_journal_of_another_store_in_a_shared_directory_is_left_alone(
    make_service: MakeService, new_store_url: Any, clock: ManualClock, tmp_path: Path
) -> None:
    shared = {"dir": str(tmp_path / "shared")}
    dead = make_service(journal=shared, **BATCHED)
    dead.account().purchase(D("10"))
    calls(spender_of(dead), 2)
    path = journal_path(dead)
    die(dead)
    other_url = new_store_url()
    other = CreditService(
        CreditsConfig(store=other_url, journal=shared, **BATCHED),
        PriceBook.from_config({}, clock=clock),
        clock=clock,
        store=open_store(other_url),
    )
    try:
        assert other.recover() == Recovery(), "not this store's calls"
        assert other.account().verify().unbilled == ()
        assert path.exists()
    finally:
        other.close()
    assert make_service(journal=shared, **BATCHED).recover().calls == 2


def test_an_empty_dead_journal_is_removed(make_service: MakeService, tmp_path: Path) -> None:
    directory = tmp_path / "journals"
    directory.mkdir()
    (directory / "lease-000000000000.jnl").write_bytes(b"")
    service = make_service(journal={"dir": str(directory)}, **BATCHED)
    assert service.recover() == Recovery()
    assert list(directory.iterdir()) == []
