"""What only the PostgreSQL store does (the rest of the credits suite runs on it as well):
migrations, many hosts sharing one account, a server restarted mid-run, failures injected
at every step of a transaction (retried without writing anything twice), a replay by
idempotency key after an error, an unreachable store (the call is refused and no provider is
contacted), the DSN's password never shown, and an event loop that never waits on the store.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import pytest

from gateway import AsyncGateway, Gateway
from gateway.config import CreditsConfig
from gateway.credits import CreditService, PriceBook
from gateway.credits.store import Migrated, migrate, open_store
from gateway.errors import (
    ConfigError,
    CreditsError,
    CreditStoreUnavailable,
    InvalidCreditsInput,
    LedgerMismatch,
)
from gateway.providers.base import TokenUsage
from gateway.providers.fake import FakeAdapter
from gateway.testing.clock import ManualClock
from tests.pg_server import TestDatabase

from . import _workers

psycopg = pytest.importorskip("psycopg")
postgres_store = pytest.importorskip("gateway.credits.postgres_store")
PostgresStore = postgres_store.PostgresStore

D = Decimal


@pytest.fixture
def pg(pg_database: TestDatabase) -> TestDatabase:
    return pg_database


@pytest.fixture
def url(pg: TestDatabase) -> str:
    return pg.new_url()


def service_on(store: Any, **settings: Any) -> CreditService:
    clock = ManualClock(_workers.START)
    return CreditService(
        CreditsConfig(store="postgresql://unused", **settings),
        PriceBook.from_config({}),
        clock=clock,
        store=store,
    )


def call(service: CreditService, request_id: str, amount: str, **kw: Any) -> Any:
    return service.hold(
        account=None,
        request_id=request_id,
        amount=D(amount),
        route="smart",
        provider="fake",
        model="small",
        **kw,
    )


def kinds(service: CreditService) -> list[str]:
    return [e.kind for e in reversed(service.account().history())]


# -- migrations, URLs, tampering --------------------------------------------------------------


def test_migrations_are_numbered_recorded_and_applied_once(pg: TestDatabase) -> None:
    fresh = pg.new_url()
    assert migrate(fresh) == Migrated(
        before=0,
        after=7,
        applied=(
            "001_initial",
            "002_requests_unique_hold",
            "003_api_keys",
            "004_requests_operation",
            "005_webhook_outbox",
            "007_batches",
        ),
    )
    assert migrate(fresh) == Migrated(before=7, after=7, applied=())

    # Many processes (here: stores) starting at once on an empty database apply it once.
    empty = pg.new_url()
    stores = [PostgresStore(empty) for _ in range(6)]
    barrier = threading.Barrier(len(stores))

    def first_use(store: Any) -> None:
        barrier.wait()
        store.accounts()

    threads = [threading.Thread(target=first_use, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [s.schema_version() for s in stores] == [7] * 6
    for s in stores:
        s.close()
    with psycopg.connect(empty, autocommit=True) as conn:
        assert conn.execute("SELECT version, name FROM schema_migrations").fetchall() == [
            (1, "initial"),
            (2, "requests_unique_hold"),
            (3, "api_keys"),
            (4, "requests_operation"),
            (5, "webhook_outbox"),
            (7, "batches"),
        ]
        conn.execute("INSERT INTO schema_migrations (version, name) VALUES (99, 'future')")
    with pytest.raises(CreditsError, match="schema version 99, newer"):
        PostgresStore(empty).accounts()


def test_sqlite_migrate_reports_the_same_way(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    assert migrate(url) == Migrated(
        before=0,
        after=7,
        applied=(
            "001_initial",
            "002_requests_unique_hold",
            "003_api_keys",
            "004_requests_operation",
            "005_webhook_outbox",
            "007_batches",
        ),
    )
    assert migrate(url) == Migrated(before=7, after=7, applied=())


def test_store_urls_options_and_the_password(pg: TestDatabase) -> None:
    url = "postgresql://app:s3cret-Pa55@db.internal:5432/credits?sslmode=require&pool_size=3"
    store = open_store(url + "&wait_ms=2500")
    assert isinstance(store, PostgresStore)
    assert (store.pool_size, store.wait_ms) == (3, 2500)
    assert "s3cret-Pa55" not in repr(store)
    assert repr(store) == (
        "PostgresStore('postgresql://app:***@db.internal:5432/credits?sslmode=require"
        "&pool_size=3&wait_ms=2500')"
    )
    assert "s3cret" not in repr(service_on(store))
    store.close()
    assert isinstance(open_store("postgres://localhost/credits"), PostgresStore)
    in_query = open_store("postgresql://localhost/credits?password=hunter2-pw")
    assert "hunter2-pw" not in repr(in_query)
    with pytest.raises(ConfigError, match="pool_size=0 is not valid"):
        open_store("postgresql://localhost/credits?pool_size=0")
    with pytest.raises(ConfigError, match=r"not a valid PostgreSQL URL.*sslmod") as bad:
        open_store("postgresql://u:hidden-pw@localhost/credits?sslmod=require")
    assert "hidden-pw" not in str(bad.value)
    # libpq gets its options exactly as written (spaces stay %20, not '+').
    spaced = PostgresStore(pg.url("public") + "&options=-c%20statement_timeout%3D5000")
    assert spaced.schema_version() >= 0
    spaced.close()
    with pytest.raises(ConfigError, match=r"mysql://u:\*\*\*@h/db' is not a store URL"):
        open_store("mysql://u:pw@h/db")


def test_without_psycopg_the_url_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "psycopg", None)
    monkeypatch.delitem(sys.modules, "gateway.credits.postgres_store")
    with pytest.raises(ConfigError, match=r"pip install 'llm-gateway-sdk\[postgres\]'"):
        open_store("postgresql://localhost/credits")


def test_tables_are_append_only_and_verify_detects_a_tampered_snapshot(url: str) -> None:
    service = service_on(open_store(url))
    service.account().purchase(D("5"))
    hold = call(service, "r1", "0.5")
    service.settle(hold, cost=D("0.5"), usage=TokenUsage(10, 5))
    service.account().verify()
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in (
            "DELETE FROM entries",
            "UPDATE requests SET cost = 0",
            "TRUNCATE commits",
        ):
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                conn.execute(statement)
        # A dollar from nowhere in the snapshot (lots: id, source, amount, remaining, ...).
        conn.execute(
            "UPDATE accounts SET state = jsonb_set(state::jsonb, '{lots,0,3}', "
            "to_jsonb((state::jsonb #>> '{lots,0,3}')::bigint + 1000000000))::text"
        )
    with pytest.raises(LedgerMismatch) as info:
        service.account().verify()
    assert any("lots" in p for p in info.value.problems)
    service.close()


def test_text_with_nul_is_refused_and_nothing_is_written(url: str) -> None:
    """PostgreSQL text cannot hold NUL; SQLite can. The call is refused cleanly."""
    service = service_on(open_store(url))
    service.account().purchase(D("5"))
    with pytest.raises(InvalidCreditsInput, match="NUL"):
        service.account().grant(D("1"), note="a\x00b")
    with pytest.raises(InvalidCreditsInput, match="NUL"):
        call(service, "bad\x00id", "1")
    assert service.account().balance().posted == D("5")
    service.account().verify()
    service.close()


def test_accounts_sort_by_bytes_whatever_the_locale(url: str) -> None:
    service = service_on(open_store(url))
    for name in ("beta", "Alpha", "alpha", "Zed"):
        service.account(name).grant(D("1"))
    assert service.accounts() == sorted(["beta", "Alpha", "alpha", "Zed"])
    service.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork() is POSIX")
def test_a_forked_process_opens_its_own_connections(url: str) -> None:
    """A web server that forks workers after the gateway was used (gunicorn --preload)."""
    service = service_on(open_store(url))
    service.account().purchase(D("5"))
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            service.account().grant(D("1"), note="child")
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    service.account().grant(D("1"), note="parent")  # the parent's connections still work
    assert service.account().balance().posted == D("7")
    service.account().verify()
    service.close()


# -- failures injected into a transaction ------------------------------------------------------


@dataclass
class Fault:
    """Strike once at the first statement that matches ``point``."""

    point: str  # lock | read | flush | commit
    action: str  # kill | lost_ack | serialization | deadlock | outage_after | outage_before
    then: Callable[[], None] | None = None


class FaultyConnection(psycopg.Connection):  # type: ignore[misc,name-defined]
    """A psycopg connection that fails on purpose at scripted statements."""

    script: ClassVar[list[Fault]] = []
    struck: ClassVar[list[str]] = []
    #: While True every statement fails as if the server could not be reached.
    down: ClassVar[bool] = False
    admin_dsn: ClassVar[str] = ""

    def execute(self, query: Any, params: Any = None, **kwargs: Any) -> Any:
        run = lambda: super(FaultyConnection, self).execute(query, params, **kwargs)  # noqa: E731
        if type(self).down:
            raise psycopg.OperationalError("simulated: the server cannot be reached")
        text = query if isinstance(query, str) else query.as_string(self)
        for fault in list(type(self).script):
            if _matches(fault.point, text, self):
                type(self).script.remove(fault)
                type(self).struck.append(f"{fault.point}:{fault.action}")
                return self._strike(fault, run)
        return run()

    def _strike(self, fault: Fault, run: Callable[[], Any]) -> Any:
        if fault.action == "kill":  # the server ends this session; the statement then fails
            self._kill()
            if fault.then:
                fault.then()
            return run()
        if fault.action == "lost_ack":  # the statement is done, its answer never arrives
            run()
            self._kill()
            raise psycopg.OperationalError("simulated: connection lost before the reply")
        if fault.action in ("outage_after", "outage_before"):
            if fault.action == "outage_after":
                run()
            self._kill()
            type(self).down = True
            raise psycopg.OperationalError("simulated: the server went away")
        errors = {
            "serialization": psycopg.errors.SerializationFailure,
            "deadlock": psycopg.errors.DeadlockDetected,
        }
        super().execute("ROLLBACK")  # what the server does to a transaction it aborts
        raise errors[fault.action](f"simulated {fault.action}")

    def _kill(self) -> None:
        with psycopg.connect(type(self).admin_dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s, 5000)", (self.info.backend_pid,))


def _matches(point: str, text: str, conn: Any) -> bool:
    in_tx = conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE
    return {
        "lock": "FOR UPDATE" in text,
        "read": in_tx and "AND key = %s" in text,
        "flush": "WITH new_entries" in text,
        "commit": text.strip() == "COMMIT",
    }[point]


@pytest.fixture
def faulty(pg: TestDatabase, url: str) -> Iterator[Callable[..., CreditService]]:
    FaultyConnection.admin_dsn = pg.dsn
    FaultyConnection.script = []
    FaultyConnection.struck = []
    FaultyConnection.down = False
    services: list[CreditService] = []

    def make(**store_options: Any) -> CreditService:
        store = PostgresStore(url, connection_class=FaultyConnection, **store_options)
        services.append(service_on(store))
        return services[-1]

    yield make
    FaultyConnection.down = False
    for service in services:
        service.close()


TRANSIENT = [
    ("lock", "kill"),  # before the account is locked
    ("read", "kill"),  # while locked, before anything was sent: go on unchanged
    ("flush", "kill"),  # the writes never arrived: send them again
    ("flush", "serialization"),
    ("flush", "deadlock"),
    ("commit", "kill"),  # COMMIT never arrived
    ("commit", "lost_ack"),  # COMMIT happened, its reply was lost: must not commit twice
]


@pytest.mark.parametrize(("point", "action"), TRANSIENT)
def test_transient_failures_are_retried_and_nothing_is_written_twice(
    faulty: Callable[..., CreditService], point: str, action: str
) -> None:
    service = faulty()
    service.account().purchase(D("10"))

    def strike(op: Callable[[], Any]) -> Any:
        FaultyConnection.script = [Fault(point, action)]
        try:
            return op()
        finally:
            FaultyConnection.script = []

    hold = strike(lambda: call(service, "r1", "1"))  # the only op with a locked read
    charged = strike(lambda: service.settle(hold, cost=D("0.4"), usage=TokenUsage(10, 5)))
    # A grant has no idempotency key: only the store's own bookkeeping keeps it single.
    strike(lambda: service.account().grant(D("2"), note="no key"))
    assert FaultyConnection.struck == [f"{point}:{action}"] * (1 if point == "read" else 3)
    assert charged == D("0.4")
    assert kinds(service).count("hold") == 1
    assert kinds(service).count("settle") == 1
    assert kinds(service).count("grant") == 1
    assert len(service.account().requests()) == 1
    balance = service.account().balance()
    assert (balance.posted, balance.held) == (D("11.6"), 0)
    assert [e.id for e in service.account().history()] == sorted(
        (e.id for e in service.account().history()), reverse=True
    )
    service.account().verify()


def test_a_transaction_whose_account_changed_meanwhile_fails_and_writes_nothing(
    faulty: Callable[..., CreditService], url: str
) -> None:
    service = faulty()
    service.account().purchase(D("10"))
    other = service_on(open_store(url))  # another host
    FaultyConnection.script = [
        Fault("read", "kill", then=lambda: other.account().grant(D("1"), note="meanwhile"))
    ]
    with pytest.raises(CreditStoreUnavailable, match="nothing was written") as info:
        call(service, "r1", "1")
    assert "repeated" in str(info.value) and info.value.written is False
    assert "hold" not in kinds(service)
    hold = call(service, "r1", "1")  # the caller repeats: it goes through once
    assert kinds(service).count("hold") == 1
    assert hold.hold_id == "r1#1"
    service.account().verify()
    other.close()


REPLAYS = {
    "hold": lambda s: call(s, "r2", "1", attempt=1),
    "settle": lambda s: s.settle(s.r1, cost=D("0.7"), usage=TokenUsage(10, 5)),
    "release": lambda s: s.release(s.r1),
    "keyed purchase": lambda s: s.account().purchase(D("5"), idempotency_key="order-1"),
}


@pytest.mark.parametrize("op", list(REPLAYS))
@pytest.mark.parametrize("committed", [True, False], ids=["committed", "not-committed"])
def test_a_call_repeated_after_an_unknown_outcome_happens_once(
    faulty: Callable[..., CreditService], op: str, committed: bool
) -> None:
    """The connection is lost at COMMIT and stays away longer than ``wait_ms``: the store
    cannot tell whether the write happened and says so. The caller repeats the call when the
    store is back: the idempotency key makes the repeat a no-op if the first one committed."""
    service = faulty(wait_ms=300)
    service.account().purchase(D("10"))
    service.r1 = call(service, "r1", "1", attempt=1)  # type: ignore[attr-defined]
    action = "outage_after" if committed else "outage_before"
    FaultyConnection.script = [Fault("commit", action)]
    with pytest.raises(CreditStoreUnavailable, match="may or may not have been written") as info:
        REPLAYS[op](service)
    assert info.value.written is None
    assert FaultyConnection.struck == [f"commit:{action}"]
    FaultyConnection.down = False
    service.store.wait_ms = 10_000  # type: ignore[attr-defined]  # the pool reconnects
    REPLAYS[op](service)  # the repeat
    REPLAYS[op](service)  # and once more, for good measure
    history = kinds(service)
    assert history.count("hold") == 1 + (op == "hold")
    assert history.count("settle") == (op == "settle")
    assert history.count("release") == (op == "release")
    assert history.count("purchase") == 1 + (op == "keyed purchase")
    assert len(service.account().requests()) == (op == "settle")
    service.account().verify()


# -- an unreachable store ----------------------------------------------------------------------

PASSWORD = "pg-canary-Zq8v2Lw"


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def gateway_yaml(store: str) -> str:
    return f"""
providers:
  openai: {{type: fake}}
routes:
  smart:
    targets: [openai/gpt-4o]
    retry: {{attempts: 1}}
credits:
  store: "{store}"
pricing:
  openai/gpt-4o: {{input: "2.50", output: "10.00"}}
"""


def test_an_unreachable_store_refuses_the_call_and_contacts_no_provider(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = f"postgresql://gw:{PASSWORD}@127.0.0.1:{_closed_port()}/credits?wait_ms=400"
    caplog.set_level(logging.DEBUG)
    gw = Gateway(gateway_yaml(store), clock=ManualClock())  # nothing connects yet
    adapter = gw.adapter("openai")
    assert isinstance(adapter, FakeAdapter)
    started = time.monotonic()
    with pytest.raises(CreditStoreUnavailable) as info:
        gw.chat.completions.create(model="smart", messages=[{"role": "user", "content": "hi"}])
    assert time.monotonic() - started < 5
    assert adapter.calls == []  # fail closed: no hold, no call
    message = str(info.value)
    assert "cannot be reached" in message and "nothing was written" in message
    assert info.value.written is False
    assert "postgresql://gw:***@127.0.0.1:" in message
    with pytest.raises(CreditStoreUnavailable):
        gw.credits.balance()
    seen = [message, repr(info.value), repr(gw), repr(gw._core.billing.service)]
    seen += [r.getMessage() for r in caplog.records]
    gw.close()
    assert [text for text in seen if PASSWORD in text] == []


async def test_an_unreachable_store_refuses_async_calls_too() -> None:
    store = f"postgresql://gw:{PASSWORD}@127.0.0.1:{_closed_port()}/credits?wait_ms=300"
    agw = AsyncGateway(gateway_yaml(store), clock=ManualClock())
    adapter = agw.adapter("openai")
    assert isinstance(adapter, FakeAdapter)
    with pytest.raises(CreditStoreUnavailable, match="cannot be reached"):
        await agw.chat.completions.create(
            model="smart", messages=[{"role": "user", "content": "hi"}]
        )
    assert adapter.calls == []
    await agw.close()


def test_a_wrong_password_is_reported_without_the_password(pg: TestDatabase) -> None:
    base = pg.dsn.rsplit("@", 1)[1]
    store = PostgresStore(f"postgresql://postgres:{PASSWORD}@{base}?wait_ms=300")
    with pytest.raises(CreditStoreUnavailable, match="password authentication failed") as info:
        store.accounts()
    assert PASSWORD not in str(info.value) and PASSWORD not in repr(store)
    store.close()


# -- the async client does not wait on the store -----------------------------------------------


async def test_the_event_loop_runs_while_a_call_waits_for_the_account_lock(url: str) -> None:
    agw = AsyncGateway(gateway_yaml(url), clock=ManualClock())
    await agw.credits.purchase(D("10"))
    adapter = agw.adapter("openai")
    assert isinstance(adapter, FakeAdapter)
    adapter.script.respond("hello", usage=TokenUsage(1000, 100))
    with psycopg.connect(url) as blocker:  # another host holds the account's lock
        blocker.execute("SELECT * FROM accounts WHERE name = 'default' FOR UPDATE")
        pending = asyncio.create_task(
            agw.chat.completions.create(
                model="smart", messages=[{"role": "user", "content": "hi"}], max_tokens=100
            )
        )
        ticks = 0
        for _ in range(30):
            await asyncio.sleep(0.01)
            ticks += 1
        assert ticks == 30 and not pending.done()  # the loop ran; the call waits on the lock
        assert adapter.calls == []  # and it has no hold yet
        blocker.rollback()
    response = await asyncio.wait_for(pending, 30)
    assert response.usage is not None
    assert response.usage.cost == (1000 * D("2.50") + 100 * D("10")) / 1_000_000
    assert (await agw.credits.balance()).posted == D("10") - response.usage.cost
    await agw.close()


# -- many hosts, and a restart -----------------------------------------------------------------

WORKERS, CALLS = 8, 200
RECHARGE = {"below": "5", "amount": "10", "monthly_limit": "30"}
#: Two hosts configure their gateways independently: pool sizes, waits, hold TTLs and
#: application names differ; the money rules are the account's and agree.
HOSTS = [
    ("?pool_size=2", {"hold_ttl_s": 600, "auto_recharge": RECHARGE}),
    ("?wait_ms=30000&application_name=host-b", {"hold_ttl_s": 900, "auto_recharge": RECHARGE}),
]


def host_worker(
    url: str, settings: dict[str, Any], worker: int, cost: str, barrier: Any, out: Any
) -> None:
    """One app process of one host: its own config, its own service and pool."""
    service = _workers.make_service(url, **settings)
    barrier.wait()
    try:
        out.put((worker, _workers.run_calls(service, worker, CALLS, Decimal(cost))))
    finally:
        service.close()


@pytest.mark.slow
def test_two_independently_configured_hosts_share_one_account(pg: TestDatabase) -> None:
    url = pg.new_url()
    fund, cost = D("10"), D("0.05")
    setup = _workers.make_service(url)
    setup.account().purchase(fund)
    setup.close()
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["tests.credits.test_postgres"])
    barrier, out = ctx.Barrier(WORKERS), ctx.Queue()
    procs = []
    for w in range(WORKERS):
        options, settings = HOSTS[w % 2]
        separator = "&" if "?" in url else "?"
        host_url = url + separator + options.lstrip("?")
        procs.append(
            ctx.Process(target=host_worker, args=(host_url, settings, w, str(cost), barrier, out))
        )
    for p in procs:
        p.start()
    admitted = sum(n for _, n in (out.get(timeout=120) for _ in procs))
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    service = _workers.make_service(url, auto_recharge=RECHARGE)
    credits = service.account()
    recharges = [k for k in kinds(service) if k.startswith(("recharge", "auto"))]
    # Four crossings of $5: three recharges of $10 (the $30 monthly limit), one skipped.
    assert recharges == ["recharge_requested", "auto_recharge"] * 3 + ["recharge_skipped"]
    assert admitted == int((fund + 30) // cost) == 800  # exactly floor(B / c)
    assert credits.balance().posted == 0 and credits.balance().held == 0
    rows = credits.requests()
    assert len(rows) == len({r.request_id for r in rows}) == admitted
    assert kinds(service).count("hold") == admitted  # refusals wrote nothing
    credits.verify()
    service.close()


@pytest.mark.slow
def test_the_server_restarted_mid_run_loses_no_hold(pg: TestDatabase) -> None:
    if pg.server is None:
        pytest.skip("GATEWAY_TEST_PG_DSN names a server these tests cannot restart")
    url = pg.new_url()
    cost = D("0.01")
    setup = _workers.make_service(url)
    setup.account().purchase(D("1000"))
    setup.close()
    stop = threading.Event()
    settled: list[str] = []
    refused: list[str] = []
    problems: list[BaseException] = []

    def worker(w: int) -> None:
        service = _workers.make_service(url)
        try:
            i = 0
            while not stop.is_set():
                i += 1
                request_id = f"w{w}-{i}"
                try:
                    hold = service.hold(
                        account=None,
                        request_id=request_id,
                        amount=cost,
                        route="smart",
                        provider="fake",
                        model="small",
                    )
                except CreditStoreUnavailable:
                    refused.append(request_id)  # failed cleanly: no hold, no call
                    continue
                for _ in range(5):  # a careful caller repeats a settlement (a no-op if done)
                    try:
                        service.settle(hold, cost=cost, usage=TokenUsage(10, 5))
                        break
                    except CreditStoreUnavailable:
                        continue
                settled.append(request_id)
        except BaseException as exc:
            problems.append(exc)
        finally:
            service.close()

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()

    def wait_for(n: int) -> None:
        deadline = time.monotonic() + 60
        while len(settled) < n and time.monotonic() < deadline and not problems:
            time.sleep(0.01)

    wait_for(40)
    assert pg.server is not None
    pg.server.restart("immediate")  # a crash: sessions cut mid-transaction, then recovery
    before = len(settled)
    wait_for(before + 40)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    assert problems == []
    assert len(settled) >= before + 40  # calls went on after the restart

    service = _workers.make_service(url)
    credits = service.account()
    rows = credits.requests()
    assert sorted(r.request_id for r in rows) == sorted(settled)  # each settled once
    assert kinds(service).count("hold") == len(settled)  # no hold lost, none left open
    balance = credits.balance()
    assert balance.held == 0
    assert balance.posted == D("1000") - len(settled) * cost
    credits.verify()
    service.close()
