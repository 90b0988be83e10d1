"""A gateway process that answers calls until it is stopped (tests/credits/test_kill.py).

``python -m tests.credits._gateway_worker STORE_URL MODE [FLUSH_INTERVAL_MS]``. Every
answered call is reported on stdout as one line ``<request id> <cost>``, written with a
single ``os.write`` after ``create()`` returned, so each line the parent reads is a call the
client saw answered.
Modes: ``loop`` answers calls until killed; ``idle`` answers 50 calls, says ``idle`` and
waits; ``app-handler`` installs its own SIGTERM handler first (it says ``app handler`` and
exits 0), then behaves as ``idle``.
"""

from __future__ import annotations

import itertools
import os
import signal
import sys
from typing import Any


def config(store_url: str, flush_interval_ms: int = 200) -> dict[str, Any]:
    return {
        "providers": {"fake": {"type": "fake"}},
        "routes": {"r": {"targets": ["fake/m"]}},
        "credits": {"store": store_url, "flush_interval_ms": flush_interval_ms},
        "pricing": {"fake/m": {"input": "3", "output": "15"}},
    }


def main(store_url: str, mode: str, flush_interval_ms: int) -> None:
    if mode == "app-handler":

        def on_term(signum: int, frame: object) -> None:
            os.write(1, b"app handler\n")
            sys.exit(0)

        signal.signal(signal.SIGTERM, on_term)

    from gateway import Gateway

    gw = Gateway(config=config(store_url, flush_interval_ms))
    messages = [{"role": "user", "content": "count the ways"}]
    calls = itertools.count() if mode == "loop" else range(50)
    for i in calls:
        resp = gw.chat.completions.create(model="r", messages=messages, tags={"n": str(i)})
        os.write(1, f"{resp.gateway.request_id} {resp.usage.cost}\n".encode())
    os.write(1, b"idle\n")
    sys.stdin.read()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 200)
