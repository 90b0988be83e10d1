"""A throwaway PostgreSQL server for the test session.

:meth:`PgServer.start` finds the server's binaries (Debian's ``/usr/lib/postgresql/*/bin``
first, then ``initdb`` on the PATH), runs ``initdb`` in a new temporary directory, starts the
server with ``pg_ctl`` on a free loopback port and creates the database ``gateway_test``.
PostgreSQL refuses to run as root, so when the tests run as root (as CI does) every server
command runs as the ``postgres`` user that Debian's package creates, and the directory is
handed to that user.

The server listens on 127.0.0.1 only, with password authentication over TCP (so the DSN the
tests use carries a password, and the redaction of it is exercised by every test), and
its Unix socket in the temporary directory. :meth:`PgServer.destroy` stops it and deletes
the directory; an ``atexit`` hook does the same if the test process ends without reaching it.
If ``GATEWAY_TEST_PG_ROOT`` is set, the directory is made inside it, so that a CI script can
stop a server that a killed test process left running.

Run ``python -m tests.pg_server`` to start one by hand: it prints the DSN and waits for Enter.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["PgServer", "PgUnavailable", "TestDatabase", "find_bin_dir", "in_ci"]

DATABASE = "gateway_test"
SUPERUSER = "postgres"


class PgUnavailable(RuntimeError):
    """No PostgreSQL server could be started here; the message says why."""


def find_bin_dir() -> Path | None:
    """The directory of ``initdb`` and ``pg_ctl``: the newest Debian version, else the PATH."""
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: [int(n) for n in re.findall(r"\d+", p.parent.name)] or [0],
    )
    for candidate in reversed(debian):
        if (candidate / "initdb").exists() and (candidate / "pg_ctl").exists():
            return candidate
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(initdb).parent
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    """One PostgreSQL server in a temporary directory, on a loopback port."""

    def __init__(self, bin_dir: Path, root: Path, port: int, password: str) -> None:
        self.bin_dir = bin_dir
        self.root = root
        self.data = root / "data"
        self.log = root / "server.log"
        self.port = port
        self.password = password
        self.running = False
        self._run_as: dict[str, Any] = {}
        if os.geteuid() == 0:
            try:
                user = pwd.getpwnam(SUPERUSER)
            except KeyError:
                raise PgUnavailable(
                    "running as root, and PostgreSQL refuses root, but there is no 'postgres' "
                    "user to run it as (apt-get install postgresql creates one)"
                ) from None
            self._run_as = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
            os.chown(root, user.pw_uid, user.pw_gid)

    # -- life cycle -------------------------------------------------------------------------

    @classmethod
    def start(cls, *, fsync: bool = False) -> PgServer:
        """initdb + pg_ctl start + CREATE DATABASE; raises PgUnavailable with the reason.

        ``fsync=False`` (the default) suits a throwaway server: a clean stop still writes
        every commit out, only an OS crash could lose data.
        """
        bin_dir = find_bin_dir()
        if bin_dir is None:
            raise PgUnavailable(
                "no PostgreSQL server binaries (looked in /usr/lib/postgresql/*/bin and on the "
                "PATH); install them with: apt-get install -y postgresql"
            )
        parent = os.environ.get("GATEWAY_TEST_PG_ROOT") or None
        if parent:
            Path(parent).mkdir(parents=True, exist_ok=True)
        root = Path(tempfile.mkdtemp(prefix="gateway-pg-", dir=parent))
        server = cls(bin_dir, root, _free_port(), secrets.token_urlsafe(12))
        atexit.register(server.destroy)
        try:
            server._initdb(fsync)
            server.start_again()
            server._create_database()
        except BaseException:
            server.destroy()
            raise
        return server

    def _initdb(self, fsync: bool) -> None:
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self._run_as:
            os.chown(pwfile, self._run_as["user"], self._run_as["group"])
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            SUPERUSER,
            "--pwfile",
            str(pwfile),
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "--encoding=UTF8",
            "--no-locale",
            "--no-sync",
        )
        pwfile.unlink()
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.root}'",
            "max_connections": "200",
            "shared_buffers": "32MB",
            "fsync": "on" if fsync else "off",
            "full_page_writes": "on" if fsync else "off",
            "logging_collector": "off",
        }
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("\n# tests/pg_server.py\n")
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())

    def start_again(self) -> None:
        """pg_ctl start (again, after :meth:`stop`), waiting until it accepts connections."""
        self._run("pg_ctl", "start", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60")
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        """pg_ctl stop: ``fast`` ends every session and checkpoints; ``immediate`` is a crash."""
        if self.running:
            self.running = False
            self._run("pg_ctl", "stop", "-D", str(self.data), "-m", mode, "-w", "-t", "60")

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start_again()

    def destroy(self) -> None:
        """Stop the server (if running) and delete its directory. Safe to call twice."""
        with contextlib.suppress(Exception):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
        atexit.unregister(self.destroy)

    def _create_database(self) -> None:
        import psycopg

        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {DATABASE}")

    def _run(self, program: str, *args: str) -> None:
        result = subprocess.run(
            [str(self.bin_dir / program), *args],
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            **self._run_as,
        )
        if result.returncode != 0:
            tail = ""
            if self.log.exists():
                tail = "\n".join(self.log.read_text(errors="replace").splitlines()[-15:])
            raise PgUnavailable(
                f"{program} {args[0]} failed (exit {result.returncode}): "
                f"{(result.stderr or result.stdout).strip()}\n{tail}".strip()
            )

    # -- addresses --------------------------------------------------------------------------

    def dsn(self, database: str = DATABASE) -> str:
        """A URL with the superuser's password, over TCP on loopback."""
        return f"postgresql://{SUPERUSER}:{self.password}@127.0.0.1:{self.port}/{database}"


def in_ci() -> bool:
    """True on CI (``CI=true``), where a missing server fails the tests instead of skipping."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


class TestDatabase:
    """Where the tests' stores live: one new schema per store, in one database.

    ``GATEWAY_TEST_PG_DSN`` names an existing database to use (its test schemas are dropped
    at the end); otherwise :meth:`open` starts a throwaway :class:`PgServer`.
    """

    __test__ = False  # not a test class, whatever its name says

    def __init__(self, dsn: str, server: PgServer | None, *, prefix: str = "t") -> None:
        self.dsn = dsn
        #: The server the tests started (None with GATEWAY_TEST_PG_DSN): it can be restarted.
        self.server = server
        #: Schemas are named ``<prefix><6 hex digits>_<n>`` (the benchmark uses ``bench``).
        self._prefix = f"{prefix}{secrets.token_hex(3)}"
        self._count = 0
        self._schemas: list[str] = []
        self._admin: Any = None

    @classmethod
    def open(cls) -> TestDatabase:
        """Raises PgUnavailable (psycopg missing, no binaries, initdb/pg_ctl failing)."""
        try:
            import psycopg  # noqa: F401
            import psycopg_pool  # noqa: F401
        except ImportError as exc:
            raise PgUnavailable(
                f"{exc.name} is not installed: pip install -e '.[postgres]'"
            ) from None
        dsn = os.environ.get("GATEWAY_TEST_PG_DSN")
        if dsn:
            return cls(dsn, None)
        server = PgServer.start()
        return cls(server.dsn(), server)

    def new_url(self) -> str:
        """The URL of a new, empty store (a schema of its own, found by ``search_path``)."""
        import psycopg

        self._count += 1
        schema = f"{self._prefix}_{self._count}"
        for attempt in (1, 2):
            if self._admin is None or self._admin.closed:
                self._admin = psycopg.connect(self.dsn, autocommit=True)
            try:
                self._admin.execute(f"CREATE SCHEMA {schema}")
                break
            except psycopg.OperationalError:  # the server was restarted by a test
                self._admin = None
                if attempt == 2:
                    raise
        self._schemas.append(schema)
        return self.url(schema)

    def url(self, schema: str) -> str:
        separator = "&" if "?" in self.dsn else "?"
        return f"{self.dsn}{separator}options=-csearch_path%3D{schema}"

    def close(self) -> None:
        if self._admin is not None:
            with contextlib.suppress(Exception):
                self._admin.close()
        if self.server is not None:
            self.server.destroy()
            return
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            for schema in self._schemas:
                conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@contextlib.contextmanager
def running_server() -> Iterator[PgServer]:
    server = PgServer.start()
    try:
        yield server
    finally:
        server.destroy()


if __name__ == "__main__":
    with running_server() as srv:
        print(srv.dsn(), flush=True)
        with contextlib.suppress(EOFError, KeyboardInterrupt):
            input("PostgreSQL is running; press Enter to stop it. ")
