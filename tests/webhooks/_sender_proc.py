"""A webhook sender in a process of its own, for the tests.

``python -m tests.webhooks._sender_proc STORE_URL ENDPOINT_URL OFFSET_S MODE`` with the
endpoint's secret in ``GATEWAY_TEST_WEBHOOK_SECRET`` (not on the command line). Its clock is
the real one moved ``OFFSET_S`` seconds ahead (how a test stands in for waiting out a dead
sender's lease). ``MODE``:

* ``forever``: print ``ready`` and deliver until killed;
* ``idle``: print ``ready``, wait for a line on stdin (so several start together), deliver
  until nothing is due, print the number of attempts made, exit.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime, timedelta

from gateway._clock import SystemClock
from gateway.config import WebhookConfig
from gateway.credits.store import open_store
from gateway.webhooks import Sender


class OffsetClock(SystemClock):
    def __init__(self, offset_s: float) -> None:
        self.offset = timedelta(seconds=offset_s)

    def now(self) -> datetime:
        return super().now() + self.offset


def main() -> None:
    store_url, url, offset, mode = sys.argv[1:5]
    hook = WebhookConfig.model_validate(
        {"url": url, "secret": os.environ["GATEWAY_TEST_WEBHOOK_SECRET"], "timeout": 2}
    )
    store = open_store(store_url)
    sender = Sender.on_store(store, [hook], clock=OffsetClock(float(offset)), poll_interval_s=0.05)
    print("ready", flush=True)
    if mode == "forever":
        sender.run_forever()
        return
    sys.stdin.readline()
    made = sender.run_until_idle()
    print(f"attempts {made}", flush=True)
    sender.stop()
    store.close()


if __name__ == "__main__":
    main()
