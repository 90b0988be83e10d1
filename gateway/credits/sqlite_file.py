"""The SQLite ledger's file: what may be opened as a ledger, how a new one is made, and what
SQLite's errors mean for it.

* The path must be a credit ledger (an SQLite database with the gateway's
  ``schema_migrations`` table), an SQLite database without any table yet, or nothing at all.
  Anything else is refused with :class:`~gateway.errors.CreditStoreError` before SQLite
  touches it: an empty (0-byte) file, which may be a truncated ledger, is never silently a new
  one; another application's database is never written into.
* A path that is a symbolic link is refused unless the store URL says ``?allow_symlink=1``.
* A new ledger is built under a temporary name, readable and writable by its owner only
  (0600; SQLite gives its ``-wal`` and ``-shm`` files the same mode), then hard-linked into
  place, which fails if the path exists: the path is never a half-made ledger, and processes
  racing to create it end up sharing the one that got there first.
* :func:`store_error` is the one translation of ``sqlite3`` errors into the gateway's, keyed
  on SQLite's result codes; the store applies it where it opens the file, reads and writes.
"""

from __future__ import annotations

import logging
import os
import secrets
import sqlite3
import stat
from collections.abc import Callable
from contextlib import suppress

from gateway.errors import CreditStoreError

__all__ = ["prepare_ledger_file", "store_error"]

logger = logging.getLogger("gateway.credits")

#: The first 16 bytes of every SQLite 3 database file.
_HEADER = b"SQLite format 3\x00"
#: Permissions of a new ledger: balances, tags and account names are nobody else's business.
_MODE = 0o600


def prepare_ledger_file(
    path: str, *, allow_symlink: bool, initialise: Callable[[sqlite3.Connection], None]
) -> None:
    """Check that ``path`` may be opened as a ledger, or create it there with ``initialise``
    (the schema migrations). Raises CreditStoreError naming the file and the fix."""
    info = _lstat(path)
    if info is None:
        if _create(path, initialise):
            return
        info = _lstat(path)  # another process created it first: check it like any other
        if info is None:
            raise CreditStoreError(
                "was removed while it was being created", path=_shown(path), fix="try again"
            )
    if stat.S_ISLNK(info.st_mode):
        target = os.path.realpath(path)
        if not allow_symlink:
            raise CreditStoreError(
                f"is a symbolic link (to {target})",
                path=_shown(path),
                fix=f"point credits.store at {target} itself, or add ?allow_symlink=1 to the "
                "store URL if the link is meant",
            )
        try:
            info = os.stat(path)
        except OSError as exc:
            raise CreditStoreError(
                f"is a symbolic link to {target}, which cannot be opened ({exc.strerror})",
                path=_shown(path),
                fix=f"create the ledger at {target} first, or point credits.store at an "
                "existing ledger",
            ) from None
    _check_existing(path, info)


def _check_existing(path: str, info: os.stat_result) -> None:
    shown = _shown(path)
    if stat.S_ISDIR(info.st_mode):
        raise CreditStoreError(
            "is a folder, not a file",
            path=shown,
            fix=f"name a file in it, e.g. sqlite:///{os.path.join(shown, 'credits.db')}",
        )
    if not stat.S_ISREG(info.st_mode):
        raise CreditStoreError(
            "is not a regular file", path=shown, fix="point credits.store at the ledger file"
        )
    if info.st_size == 0:
        raise CreditStoreError(
            "is an empty file, not a ledger (a ledger is never empty; this may be one that "
            "was truncated)",
            path=shown,
            fix="restore the ledger from a backup if it was one; otherwise delete the empty "
            "file and the gateway creates a new ledger there (mode 0600)",
        )
    try:
        with open(path, "rb") as fh:
            header = fh.read(len(_HEADER))
    except OSError as exc:
        raise _os_error(exc, path) from exc
    if header != _HEADER:
        raise CreditStoreError(
            "is not an SQLite database, so not a credit ledger",
            path=shown,
            fix="point credits.store at the ledger file, or move this file away to start a "
            "new ledger there",
        )
    try:
        conn = sqlite3.connect(path, isolation_level=None)  # no PRAGMA yet: nothing written
        try:
            tables = [
                row[0]
                for row in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table' "
                    "AND name NOT LIKE 'sqlite%' ORDER BY name"
                )
            ]
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise store_error(exc, path) from exc
    if tables and "schema_migrations" not in tables:
        listed = ", ".join(tables[:3]) + (", ..." if len(tables) > 3 else "")
        raise CreditStoreError(
            f"is another application's SQLite database (tables {listed}), not a credit ledger",
            path=shown,
            fix="point credits.store at a ledger file or at a path where none exists yet; "
            "the gateway never writes into another database",
        )


def _lstat(path: str) -> os.stat_result | None:
    """What is at ``path`` itself (a link is not followed); None if nothing."""
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _os_error(exc, path) from exc


def _create(path: str, initialise: Callable[[sqlite3.Connection], None]) -> bool:
    """Build a ledger beside ``path`` under a temporary name, then link it into place. False
    when something appeared at ``path`` first (another process creating the same ledger)."""
    temp = f"{path}.new-{os.getpid()}-{secrets.token_hex(4)}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        os.close(os.open(temp, flags, _MODE))
    except OSError as exc:
        raise _os_error(exc, path) from exc
    try:
        try:
            conn = sqlite3.connect(temp, isolation_level=None)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                initialise(conn)
            finally:
                conn.close()  # the last connection: SQLite folds the -wal file back in
        except sqlite3.Error as exc:
            raise store_error(exc, path) from exc
        try:
            os.link(temp, path)
        except FileExistsError:
            return False
        except OSError as exc:
            raise _os_error(exc, path) from exc
        logger.info("created a new credit ledger at %s", _shown(path))
        return True
    finally:
        for leftover in (temp, f"{temp}-wal", f"{temp}-shm"):
            with suppress(FileNotFoundError):
                os.unlink(leftover)


def store_error(exc: sqlite3.Error, path: str) -> CreditStoreError:
    """``exc``, raised by SQLite on the ledger at ``path``, as the gateway's error: what is
    wrong with which file and what to do (keyed on SQLite's result code, not its text)."""
    shown = _shown(path)
    folder = os.path.dirname(shown)
    name = os.path.basename(shown)
    code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
    problem, fix = {
        sqlite3.SQLITE_NOTADB: (
            "is not an SQLite database, so not a credit ledger",
            "point credits.store at the ledger file, or move this file away to start a new "
            "ledger there",
        ),
        sqlite3.SQLITE_CORRUPT: (
            "is damaged",
            f"restore it from a backup (or try `sqlite3 {shown} .recover`); the gateway does "
            "not write into a damaged ledger",
        ),
        sqlite3.SQLITE_CANTOPEN: (
            "cannot be opened",
            f"check that the folder {folder} exists and that this user may write in it "
            f"(SQLite keeps {name}-wal and {name}-shm beside the ledger)",
        ),
        sqlite3.SQLITE_READONLY: (
            "is read-only for this process",
            f"give this user write access to {name}, its -wal and -shm files and the folder "
            f"{folder}",
        ),
        sqlite3.SQLITE_PERM: (
            "may not be accessed by this process",
            f"give this user read and write access to {name} and the folder {folder}",
        ),
        sqlite3.SQLITE_FULL: ("cannot grow: the disk is full", "free some disk space"),
        sqlite3.SQLITE_IOERR: (
            "could not be read or written",
            "check the disk and the file system; keep the ledger on a local disk",
        ),
        sqlite3.SQLITE_BUSY: (
            "stayed locked by another connection for too long",
            "find the process that holds a long transaction on it; keep the ledger on a "
            "local disk (network file systems break SQLite's locks)",
        ),
    }.get(
        code,
        (
            "failed",
            f"if it happens again, check the file with `sqlite3 {shown} 'PRAGMA integrity_check'`",
        ),
    )
    return CreditStoreError(f"{problem} (SQLite: {exc})", path=shown, fix=fix)


def _os_error(exc: OSError, path: str) -> CreditStoreError:
    """An operating-system error on the ledger's path (finding, reading or creating it)."""
    shown = _shown(path)
    folder = os.path.dirname(shown)
    why = exc.strerror or str(exc)
    if isinstance(exc, FileNotFoundError):
        return CreditStoreError(
            f"cannot be created: its folder {folder} does not exist",
            path=shown,
            fix=f"create the folder (mkdir -p {folder}) or correct credits.store",
        )
    if isinstance(exc, NotADirectoryError):
        return CreditStoreError(
            f"cannot be created: {folder} is not a folder (a part of it is a file)",
            path=shown,
            fix="correct credits.store",
        )
    if isinstance(exc, PermissionError):
        return CreditStoreError(
            f"cannot be used: {why}",
            path=shown,
            fix=f"run as the user who owns {folder}, or give this user write access to it",
        )
    return CreditStoreError(
        f"cannot be used: {why}",
        path=shown,
        fix="check the disk and the file system (the folder must allow hard links and be writable)",
    )


def _shown(path: str) -> str:
    """The path as an error shows it: absolute, so that it does not depend on the reader's
    current directory."""
    return os.path.abspath(path)
