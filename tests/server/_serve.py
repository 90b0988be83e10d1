"""Real ``gateway serve`` processes for the tests: start one on a free loopback port with a
config, wait until it answers, stop it with a signal and read what it said."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import yaml

ROOT = Path(__file__).resolve().parents[2]
ADMIN_KEY = "admin-test-key-0123456789abcdef"

__all__ = ["ADMIN_KEY", "Served", "free_port", "serve"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Served:
    """A running ``gateway serve``."""

    process: subprocess.Popen[bytes]
    port: int
    config: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def client(self, key: str | None = ADMIN_KEY, **headers: str) -> httpx2.Client:
        auth = {"authorization": f"Bearer {key}"} if key is not None else {}
        return httpx2.Client(base_url=self.url, headers={**auth, **headers}, timeout=30)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 60) -> tuple[int, str]:
        """Send ``signum``, wait for the process to end: its exit code and its stderr."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signum)
        _, err = self.process.communicate(timeout=timeout)
        return self.process.returncode, err.decode(errors="replace")


def serve(
    config: dict[str, Any] | Path,
    directory: Path,
    *,
    workers: int = 1,
    port: int | None = None,
    env: dict[str, str] | None = None,
) -> Served:
    """Start ``gateway serve`` on ``config`` (a file, or a dict written to ``directory``) and
    wait until it answers ``/healthz``."""
    if isinstance(config, Path):
        path = config
    else:
        path = directory / "gateway.yaml"
        path.write_text(yaml.safe_dump(config))
    port = port or free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "serve",
            "--config",
            str(path),
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        cwd=directory if isinstance(config, Path) else ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    served = Served(process, port, path)
    _wait_until_up(served, workers)
    return served


def _wait_until_up(served: Served, workers: int, timeout: float = 60) -> None:
    """Until ``workers`` different worker processes have answered ``/healthz`` (each on a
    new connection). Polls a real process that is starting; nothing is faked."""
    deadline = time.monotonic() + timeout
    seen: set[int] = set()
    while time.monotonic() < deadline:
        if served.process.poll() is not None:
            _, err = served.process.communicate()
            raise AssertionError(f"gateway serve exited: {err.decode(errors='replace')}")
        try:
            with httpx2.Client(timeout=2) as client:
                answer = client.get(f"{served.url}/healthz")
            if answer.status_code == 200:
                seen.add(answer.json()["pid"])
                if len(seen) >= workers:
                    return
                continue
        except httpx2.TransportError:
            pass
        time.sleep(0.05)
    served.stop(signal.SIGKILL)
    raise AssertionError("gateway serve did not answer within a minute")
