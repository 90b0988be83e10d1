"""Scenario 6: the credit ledger alone, hold + settle per second (no HTTP, no gateway client).

Runs against :class:`gateway.credits.CreditService` as configured by a ``credits:`` section
with default settings, on SQLite (a fresh file in a temporary folder: WAL, the store's own
``synchronous`` setting) and on PostgreSQL (a fresh schema per round). One hold + settle pair
is what every credited call costs the ledger, on one of two paths: ``batched``, the one a
gateway takes by default (held against the process's lease, settled in batches, see
gateway/credits/spender.py; the measurement ends only when every pair is in the store), and
``per_call`` (``flush_interval_ms: 0``: two store transactions per pair). Workers are threads
sharing one service in one process (``mode: threads``) or separate processes each with its
own service on the same database (``mode: processes``).

PostgreSQL comes from :class:`Postgres`: the database ``BENCH_POSTGRES_URL`` names (a
``postgresql://`` URL of a database the benchmark may create and drop schemas in), or else a
throwaway server started like the tests' (:mod:`tests.pg_server`: initdb + pg_ctl in a
temporary folder, loopback only, fsync off), pinned to the server core and destroyed at the
end. Without server binaries the scenario's row says so instead of failing.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import tempfile
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

__all__ = ["NO_BINARIES", "NotRun", "Postgres", "available", "run"]

HOLD = Decimal("0.01")
COST = Decimal("0.000123456")
FUNDING = Decimal("1000000")
NO_BINARIES = "not run: no PostgreSQL server binaries (apt-get install postgresql)"


def available(store: str) -> str | None:
    """None when the ledger can be measured on ``store`` (sqlite/postgresql), else why not."""
    try:
        from gateway.credits import CreditService  # noqa: F401
    except ImportError as exc:
        return f"pending: gateway.credits has no CreditService yet ({exc})"
    if store == "postgresql":
        try:
            import psycopg  # noqa: F401
            import psycopg_pool  # noqa: F401
        except ImportError as exc:
            return f"not run: {exc.name} is not installed (pip install -e '.[postgres]')"
    return None


class NotRun(RuntimeError):
    """PostgreSQL cannot be measured here; the message is the table row's text."""


class Postgres:
    """Where the PostgreSQL rounds run: a new empty schema each (:meth:`new_url`).

    :meth:`open` uses ``BENCH_POSTGRES_URL`` if set (its schemas are dropped at the end), else
    starts a throwaway server (:class:`tests.pg_server.PgServer`) and pins its processes to
    ``cpu``. :meth:`close` stops and deletes that server; call it in a ``finally``.
    """

    def __init__(self, database: Any, external: bool) -> None:
        self._database = database
        #: True with BENCH_POSTGRES_URL: nothing is known of that server's processes or log.
        self.external = external
        self.pinned: int | None = None

    @classmethod
    def open(cls, cpu: int | None) -> Postgres:
        from tests.pg_server import PgServer, PgUnavailable, TestDatabase, find_bin_dir

        url = os.environ.get("BENCH_POSTGRES_URL")
        if url:
            return cls(TestDatabase(url, None, prefix="bench"), external=True)
        if find_bin_dir() is None:
            raise NotRun(NO_BINARIES)
        try:
            server = PgServer.start()
        except PgUnavailable as exc:
            raise NotRun(f"not run: {str(exc).splitlines()[0]}") from None
        self = cls(TestDatabase(server.dsn(), server, prefix="bench"), external=False)
        if cpu is not None and hasattr(os, "sched_setaffinity"):
            try:
                postmaster = self.server_pid
                assert postmaster is not None
                for pid in [postmaster, *_children(postmaster)]:
                    os.sched_setaffinity(pid, {cpu})
                self.pinned = cpu
            except OSError:  # not allowed to pin another user's processes: leave them be
                pass
        return self

    def new_url(self) -> str:
        """The store URL of a new, empty schema."""
        url: str = self._database.new_url()
        return url

    @property
    def server_pid(self) -> int | None:
        """The postmaster's pid (its CPU and its children's is the server's), if ours."""
        server = self._database.server
        if server is None:
            return None
        return int((Path(server.data) / "postmaster.pid").read_text().split()[0])

    @property
    def log(self) -> Path | None:
        server = self._database.server
        return None if server is None else Path(server.log)

    def close(self) -> None:
        self._database.close()


def _children(pid: int) -> list[int]:
    """The pids whose parent is ``pid`` (PostgreSQL's backends and auxiliary processes)."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            with open(f"/proc/{entry.name}/stat", encoding="ascii", errors="replace") as f:
                stat = f.read()
            if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def server_cpu_s(pid: int) -> float:
    """CPU seconds of process ``pid``, of its children that ended, and of those still running."""
    tick = os.sysconf("SC_CLK_TCK")

    def times(p: int, reaped: bool) -> int:
        with open(f"/proc/{p}/stat", encoding="ascii", errors="replace") as f:
            stat = f.read()
        fields = stat[stat.rindex(")") + 2 :].split()  # utime is field 14, the 12th after ")"
        own = int(fields[11]) + int(fields[12])
        return own + (int(fields[13]) + int(fields[14]) if reaped else 0)

    total = 0
    for child in _children(pid):
        with contextlib.suppress(OSError):  # it ended meanwhile: counted in the parent's
            total += times(child, reaped=True)
    return (total + times(pid, reaped=True)) / tick


def _service(url: str) -> Any:
    from gateway._clock import SystemClock
    from gateway.config import CreditsConfig
    from gateway.credits import CreditService, PriceBook

    return CreditService(CreditsConfig(store=url), PriceBook.from_config({}), clock=SystemClock())


def _pairs(service: Any, prefix: str, n: int, path: str) -> None:
    """``n`` hold + settle pairs: ``batched`` as a gateway makes them with the default
    ``flush_interval_ms`` (held against the process's lease, settled in batches: see
    gateway/credits/spender.py), or ``per_call`` (two store transactions per pair, as with
    ``flush_interval_ms: 0``)."""
    from gateway.credits.money import to_nanos
    from gateway.credits.spender import LocalHold
    from gateway.providers.base import TokenUsage

    usage = TokenUsage(input_tokens=12, output_tokens=8)
    spender = service.spender
    if path == "batched":
        hold_nanos, cost_nanos = to_nanos(HOLD), to_nanos(COST)
        for i in range(n):
            request_id = f"{prefix}-{i}"
            local = LocalHold(
                f"{request_id}#1", "default", request_id, hold_nanos, "bench", "openai",
                "gpt-4o-mini", {},
            )  # fmt: skip
            if not spender.try_hold(local):
                spender.hold(local, target="openai/gpt-4o-mini")
            spender.settle(
                local, cost=cost_nanos, usage=usage, status="ok", latency_us=1000, attempts=1
            )
        return
    for i in range(n):
        hold = service.hold(
            account=None,
            request_id=f"{prefix}-{i}",
            amount=HOLD,
            route="bench",
            provider="openai",
            model="gpt-4o-mini",
        )
        service.settle(hold, cost=COST, usage=usage, latency_us=1000)


def _process_worker(
    url: str, prefix: str, n: int, path: str, ready: Any, start: Any, done: Any
) -> None:
    service = _service(url)
    _pairs(service, f"{prefix}-warm", 5, path)
    service.drain()
    ready.put(prefix)
    start.wait()
    c0 = time.process_time()
    _pairs(service, prefix, n, path)
    service.drain()  # every pair is in the store before the clock stops
    done.put(time.process_time() - c0)
    service.close()


def run(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec``: ``workers``, ``mode`` (threads|processes), ``pairs`` per worker, ``path``
    (batched|per_call), ``store`` (sqlite|postgresql); for PostgreSQL ``url`` (an empty
    schema) and optionally ``server_pid`` (the postmaster, to report the server's CPU per
    pair). The time and CPU include writing every batched pair to the store."""
    workers, mode, n = spec["workers"], spec.get("mode", "threads"), spec["pairs"]
    path = spec.get("path", "batched")
    server_pid = spec.get("server_pid")
    with tempfile.TemporaryDirectory(prefix="gateway-bench-ledger-") as tmp:
        url = f"sqlite:///{os.path.join(tmp, 'ledger.db')}"
        if spec.get("store") == "postgresql":
            url = spec["url"]
        service = _service(url)
        service.account().grant(FUNDING, note="benchmark")
        _pairs(service, "warm", 20, path)
        service.drain()
        cpu_s: float | None
        if mode == "threads":
            threads = [
                threading.Thread(target=_pairs, args=(service, f"w{w}", n, path))
                for w in range(workers)
            ]
            s0 = server_cpu_s(server_pid) if server_pid else 0.0
            c0, w0 = time.process_time(), time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            service.drain()  # every pair is in the store before the clock stops
            wall = time.perf_counter() - w0
            cpu_s = time.process_time() - c0
            s1 = server_cpu_s(server_pid) if server_pid else 0.0
        else:
            ctx = multiprocessing.get_context("spawn")
            ready, start, done = ctx.Queue(), ctx.Event(), ctx.Queue()
            procs = [
                ctx.Process(
                    target=_process_worker, args=(url, f"p{w}", n, path, ready, start, done)
                )
                for w in range(workers)
            ]
            for proc in procs:
                proc.start()
            for _ in procs:  # every process has imported and warmed up
                ready.get(timeout=120)
            s0 = server_cpu_s(server_pid) if server_pid else 0.0
            w0 = time.perf_counter()
            start.set()
            cpu_s = sum(done.get(timeout=600) for _ in procs)
            wall = time.perf_counter() - w0
            s1 = server_cpu_s(server_pid) if server_pid else 0.0
            for proc in procs:
                proc.join()
        balance = service.account().balance()
        service.close()
    total = workers * n
    spent = FUNDING - balance.available
    expected = COST * (total + 20 + (5 * workers if mode != "threads" else 0))
    if spent != expected:
        raise AssertionError(f"the ledger spent {spent} USD, expected {expected} ({spec})")
    return {
        "pairs": total,
        "pairs_per_s": total / wall,
        "cpu_us_per_pair": cpu_s / total * 1e6,
        "server_cpu_us_per_pair": (s1 - s0) / total * 1e6 if server_pid else None,
        "wall_s": wall,
        "check_spent_usd": f"{spent.normalize():f}",
        "check_expected_usd": f"{expected.normalize():f}",
    }
