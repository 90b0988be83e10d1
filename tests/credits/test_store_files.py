"""The SQLite ledger's file (issue 12, defects 5-7): what may be opened as a ledger, where a
relative path points, who may read it, and errors that name the file and the fix."""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway import Gateway
from gateway.cli._app import cli
from gateway.config import CreditsConfig
from gateway.credits import CreditService, PriceBook
from gateway.credits.sqlite_file import store_error
from gateway.credits.sqlite_store import SQLiteStore
from gateway.credits.store import open_store
from gateway.errors import ConfigError, CreditsError, CreditStoreError, GatewayError
from gateway.testing.clock import ManualClock

CONFIG = """\
providers: {fake: {}}
routes:
  r: {targets: [fake/m]}
pricing:
  fake/m: {input: "1.00", output: "2.00"}
credits:
  store: STORE
"""


def service(url: str) -> CreditService:
    return CreditService(CreditsConfig(store=url), PriceBook.from_config({}), clock=ManualClock())


def a_ledger(path: Path) -> None:
    """A real ledger at ``path`` with $2 of credit in account 'default'."""
    credits = service(f"sqlite:///{path}")
    credits.account().grant(Decimal("2"))
    credits.close()


def refused(url: str, *matches: str) -> CreditStoreError:
    """Opening ``url`` raises CreditStoreError, naming the file and the fix."""
    with pytest.raises(CreditStoreError) as caught:
        open_store(url)
    error = caught.value
    assert isinstance(error, CreditsError) and isinstance(error, GatewayError)
    path = url.removeprefix("sqlite:///").partition("?")[0]
    assert error.path == os.path.abspath(path)
    assert error.message.startswith(f"the credit ledger {error.path} ")
    assert ". Fix: " in error.message and error.fix
    for text in matches:
        assert text in error.message
    return error


def no_sqlite_files_beside(path: Path) -> bool:
    return not [p for p in path.parent.iterdir() if p.name.startswith(f"{path.name}-")]


@contextmanager
def umask(mask: int) -> Iterator[None]:
    saved = os.umask(mask)
    try:
        yield
    finally:
        os.umask(saved)


# -- 5. what is not a ledger is refused, with the file and the fix ----------------------------


def test_a_file_that_is_not_a_database_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "credits.db"
    garbage = b"these are my notes, not a ledger\n" * 100
    path.write_bytes(garbage)
    refused(f"sqlite:///{path}", "is not an SQLite database", "move this file away")
    assert path.read_bytes() == garbage and no_sqlite_files_beside(path)


def test_a_damaged_ledger_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "credits.db"
    a_ledger(path)
    data = bytearray(path.read_bytes())
    data[100:4096] = b"\xff" * (4096 - 100)  # the schema page, after the 100-byte header
    path.write_bytes(bytes(data))
    error = refused(f"sqlite:///{path}", "is damaged", "restore it from a backup")
    assert isinstance(error.__cause__, sqlite3.DatabaseError)


def test_an_empty_file_is_not_silently_a_new_ledger(tmp_path: Path) -> None:
    path = tmp_path / "credits.db"
    path.touch()
    refused(f"sqlite:///{path}", "is an empty file", "restore the ledger from a backup")
    assert path.stat().st_size == 0 and no_sqlite_files_beside(path)


def test_another_applications_database_is_not_written_into(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE users (name TEXT)")
    conn.commit()
    conn.close()
    before = path.read_bytes()
    refused(f"sqlite:///{path}", "another application's SQLite database (tables users)")
    assert path.read_bytes() == before and no_sqlite_files_beside(path)
    # An SQLite file without any table holds nothing to lose: it becomes a ledger.
    fresh = tmp_path / "credits.db"
    conn = sqlite3.connect(fresh)
    conn.execute("PRAGMA user_version = 7")  # writes the header; no table
    conn.close()
    store = open_store(f"sqlite:///{fresh}")
    assert isinstance(store, SQLiteStore) and store.schema_version() >= 1
    store.close()


def test_a_missing_folder_is_named_and_nothing_is_created(tmp_path: Path) -> None:
    path = tmp_path / "no-such-folder" / "credits.db"
    refused(f"sqlite:///{path}", f"its folder {path.parent} does not exist", "mkdir -p")
    assert not path.parent.exists()


def test_a_folder_is_not_a_ledger(tmp_path: Path) -> None:
    refused(f"sqlite:///{tmp_path}", "is a folder, not a file")


def test_a_write_the_file_refuses_is_a_credit_store_error(tmp_path: Path) -> None:
    # Root ignores file permissions; query_only makes SQLite itself refuse the write
    # (SQLITE_READONLY), as a read-only file would.
    path = tmp_path / "credits.db"
    a_ledger(path)
    credits = service(f"sqlite:///{path}")
    store = credits.store
    assert isinstance(store, SQLiteStore)
    store._conn().execute("PRAGMA query_only = 1")
    with pytest.raises(CreditStoreError, match="is read-only for this process") as caught:
        credits.account().grant(Decimal("1"))
    assert str(path) in caught.value.message and "write access" in caught.value.fix
    store._conn().execute("PRAGMA query_only = 0")  # the lock was released: the store works
    credits.account().grant(Decimal("1"))
    assert credits.account().balance().available == Decimal("3")
    credits.close()


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores permissions")
def test_a_read_only_folder_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        refused(f"sqlite:///{folder / 'credits.db'}", "Permission denied", "write access")
    finally:
        folder.chmod(0o700)


def test_sqlite_result_codes_are_translated_in_one_place() -> None:
    cases = {
        sqlite3.SQLITE_READONLY: "is read-only",
        sqlite3.SQLITE_FULL: "the disk is full",
        sqlite3.SQLITE_BUSY: "stayed locked",
        sqlite3.SQLITE_IOERR: "could not be read or written",
        sqlite3.SQLITE_CANTOPEN: "cannot be opened",
    }
    for code, text in cases.items():
        exc = sqlite3.OperationalError("simulated")
        exc.sqlite_errorcode = code | 0x300  # an extended code carries the primary one
        error = store_error(exc, "relative.db")
        assert text in error.message and "(SQLite: simulated)" in error.message
        assert error.path == os.path.abspath("relative.db")


def test_the_cli_shows_a_store_error_as_one_line(tmp_path: Path) -> None:
    ledger = tmp_path / "credits.db"
    ledger.write_text("not a ledger")
    config = tmp_path / "gateway.yaml"
    config.write_text(CONFIG.replace("STORE", "sqlite:///credits.db"))
    result = CliRunner().invoke(cli, ["credits", "balance", "--config", str(config)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"error: the credit ledger {ledger} is not an SQLite database" in " ".join(
        result.stderr.split()
    )


# -- 6. a relative path is relative to the config file ----------------------------------------


def test_a_relative_ledger_is_beside_the_config_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app, elsewhere = tmp_path / "app", tmp_path / "elsewhere"
    app.mkdir()
    elsewhere.mkdir()
    (app / "gateway.yaml").write_text(CONFIG.replace("STORE", "sqlite:///credits.db"))
    monkeypatch.chdir(app)
    with Gateway.from_config("gateway.yaml") as gw:
        gw.credits.grant(Decimal("7"))
    monkeypatch.chdir(elsewhere)
    with Gateway.from_config("../app/gateway.yaml") as gw:
        assert gw.config.credits is not None
        assert gw.config.credits.store == f"sqlite:///{app / 'credits.db'}"
        assert gw.credits.balance().available == Decimal("7")
    result = CliRunner().invoke(cli, ["credits", "balance", "--config", "../app/gateway.yaml"])
    assert result.exit_code == 0, result.output
    assert "$7.00" in result.output
    assert not (elsewhere / "credits.db").exists()  # no second, empty ledger
    # A config given as a dict has no file: its relative path is the current directory's.
    config = {
        "providers": {"fake": {}},
        "routes": {"r": {"targets": ["fake/m"]}},
        "pricing": {"fake/m": {"input": "1", "output": "2"}},
        "credits": {"store": "sqlite:///credits.db"},
    }
    with Gateway(config=config) as gw:
        gw.credits.grant(Decimal("1"))
    assert (elsewhere / "credits.db").exists()


def test_store_options_survive_and_absolute_paths_are_kept(tmp_path: Path) -> None:
    from gateway.config import load_config

    path = tmp_path / "gateway.yaml"
    path.write_text(CONFIG.replace("STORE", "sqlite:///data/c.db?synchronous=FULL"))
    credits = load_config(path).credits
    assert credits is not None
    assert credits.store == f"sqlite:///{tmp_path / 'data' / 'c.db'}?synchronous=FULL"
    path.write_text(CONFIG.replace("STORE", "sqlite:////srv/ledger.db"))
    credits = load_config(path).credits
    assert credits is not None and credits.store == "sqlite:////srv/ledger.db"


# -- 7. private files; symbolic links only when asked for -------------------------------------


def test_a_new_ledger_and_its_wal_and_shm_are_private(tmp_path: Path) -> None:
    path = tmp_path / "credits.db"
    with umask(0o022):
        credits = service(f"sqlite:///{path}")
        credits.account().grant(Decimal("1"))  # the -wal and -shm exist while it is open
        for name in ("credits.db", "credits.db-wal", "credits.db-shm"):
            mode = stat.S_IMODE((tmp_path / name).stat().st_mode)
            assert mode == 0o600, f"{name}: {oct(mode)}"
        credits.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["credits.db"]  # no temporary left


def test_processes_racing_to_create_a_ledger_share_one(tmp_path: Path) -> None:
    path = tmp_path / "credits.db"
    start = threading.Barrier(8)
    errors: list[BaseException] = []

    def open_and_grant() -> None:
        try:
            start.wait()
            credits = service(f"sqlite:///{path}")
            credits.account().grant(Decimal("1"))
            credits.close()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_and_grant) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    credits = service(f"sqlite:///{path}")
    assert credits.account().balance().available == Decimal("8")  # one ledger got them all
    credits.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["credits.db"]


def test_a_symlink_is_refused_unless_the_url_allows_it(tmp_path: Path) -> None:
    real = tmp_path / "real.db"
    a_ledger(real)
    link = tmp_path / "link.db"
    link.symlink_to(real)
    refused(f"sqlite:///{link}", f"is a symbolic link (to {real})", "?allow_symlink=1")
    credits = service(f"sqlite:///{link}?allow_symlink=1")
    assert credits.account().balance().available == Decimal("2")
    credits.close()
    with pytest.raises(ConfigError, match="allow_symlink=maybe is not a yes/no value"):
        open_store(f"sqlite:///{link}?allow_symlink=maybe")


def test_a_symlink_to_an_empty_file_is_not_overwritten(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.touch()
    link = tmp_path / "credits.db"
    link.symlink_to(victim)
    refused(f"sqlite:///{link}", "is a symbolic link")
    refused(f"sqlite:///{link}?allow_symlink=1", "is an empty file")
    assert victim.stat().st_size == 0
    dangling = tmp_path / "dangling.db"
    dangling.symlink_to(tmp_path / "nowhere.db")
    refused(f"sqlite:///{dangling}?allow_symlink=1", "which cannot be opened")
    assert not (tmp_path / "nowhere.db").exists()
