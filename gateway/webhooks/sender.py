"""The sender: delivers the outbox's events to their endpoints, at least once, in order per
account and endpoint, off every call's path.

One round (:meth:`Sender.run_once`): claim the rows that are due (leased to this sender, so
no other sender sends them meanwhile; :meth:`.outbox.Outbox.claim`), POST each, signed
(:mod:`.signing`), with the endpoint's timeout, and record what it came to
(:func:`.schedule.judge`). A sender that dies mid-delivery leaves its rows leased; when the
lease ends another sender (or the same one restarted) sends them again, so an event is never
lost, and may arrive twice: receivers dedupe on ``webhook-id``.

Where senders run:

* a :class:`~gateway.Gateway` (any library process) whose config has ``webhooks:`` starts one
  in a background thread (``CreditService.webhook_sender``) when it runs on the real clock,
  and stops it on ``close()``; rows left behind are sent by the next sender;
* a server starts one in its lifespan, on its event loop: ``AsyncSender(gw).run_forever()``
  (it stops the gateway's thread sender first: one per process is enough), or in a thread:
  ``Sender(gw).start()`` / ``Sender(gw).run_forever()``;
* tests and scripts: :meth:`Sender.run_once` / :meth:`Sender.run_until_idle` on an
  injected clock.

Several senders on one store (processes, hosts) share the work through the leases.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import threading
import time
import uuid
import weakref
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from gateway._clock import Clock, SystemClock
from gateway.config import WebhookConfig
from gateway.credits.money import to_micros
from gateway.errors import redact
from gateway.webhooks.events import DELIVERY_WINDOW_US, WebhookEvent, new_event_id
from gateway.webhooks.outbox import Delivery, Outbox, endpoint_id, open_outbox
from gateway.webhooks.schedule import judge
from gateway.webhooks.signing import signed_headers

if TYPE_CHECKING:
    import httpx2

    from gateway._client import AsyncGateway, Gateway
    from gateway.credits.service import CreditService
    from gateway.credits.store import Store

__all__ = ["AsyncSender", "PingResult", "Sender", "short_url"]

logger = logging.getLogger("gateway.webhooks")

#: Delivered and failed rows are kept this long (for ``gateway webhooks deliveries``).
KEEP_DONE_US = 30 * 86_400 * 1_000_000
#: How often an idle sender sweeps the accounts for credit that expired or expires soon.
SWEEP_EVERY_S = 600.0
_LIVE: weakref.WeakSet[Sender] = weakref.WeakSet()


def short_url(url: str) -> str:
    """``scheme://host[:port]/…``: an endpoint in a log line (its path can hold a token, as
    Zapier's catch-hook URLs do)."""
    parts = urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{'/…' if parts.path.strip('/') else ''}"


@dataclass(frozen=True, slots=True)
class PingResult:
    """What ``gateway webhooks test URL`` got back."""

    event_id: str
    status: int | None
    error: str | None
    seconds: float

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass(frozen=True, slots=True)
class _Request:
    url: str
    headers: dict[str, str]
    body: bytes
    timeout: float


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int | None
    error: str | None
    retry_after_s: float | None = None


def _service_of(source: Gateway | AsyncGateway | CreditService) -> CreditService:
    from gateway.credits.service import CreditService
    from gateway.errors import ConfigError

    if isinstance(source, CreditService):
        return source
    service = source._core.billing.service
    if service is None:
        raise ConfigError(
            "this gateway has no credit account, so it has no webhook events to send",
            key="credits",
            fix="add a credits: section and a webhooks: list",
        )
    return service


class _Deliveries:
    """What the sync and async senders share: the endpoints, the outbox, the decisions."""

    def __init__(
        self,
        store: Store,
        endpoints: Sequence[WebhookConfig],
        *,
        service: CreditService | None,
        clock: Clock | None,
        rng: random.Random | None,
        concurrency: int,
        poll_interval_s: float,
    ) -> None:
        self.store = store
        self.service = service
        self.outbox: Outbox = open_outbox(store)
        self.endpoints = {endpoint_id(e.url): e for e in endpoints}
        self.clock: Clock = clock or (service.clock if service is not None else SystemClock())
        self.rng = rng or random.Random()
        self.concurrency = max(1, concurrency)
        self.poll_interval_s = poll_interval_s
        #: Longer than any attempt can take, so a lease never ends while its POST is running.
        longest = max((e.timeout for e in endpoints), default=10.0)
        self.lease_us = round((3 * longest + 30) * 1_000_000)
        self.owner = _new_owner()
        self._sweep_at = 0.0

    def now_us(self) -> int:
        return to_micros(self.clock.now())

    def claim(self, only: int | None = None) -> list[Delivery]:
        if not self.endpoints:
            return []
        return self.outbox.claim(
            endpoints=list(self.endpoints),
            owner=self.owner,
            now_us=self.now_us(),
            lease_us=self.lease_us,
            limit=self.concurrency,
            only=only,
        )

    def request(self, delivery: Delivery) -> _Request:
        return self._signed(self.endpoints[delivery.endpoint], delivery.event_id, delivery.body)

    def _signed(self, endpoint: WebhookConfig, event_id: str, body: str) -> _Request:
        """The POST of ``body`` to ``endpoint``, signed with its secret now."""
        assert endpoint.secret is not None  # the config refuses an endpoint without one
        headers = signed_headers(
            endpoint.secret.reveal(), event_id=event_id, body=body, at=self.clock.now()
        )
        return _Request(endpoint.url, headers, body.encode(), endpoint.timeout)

    def record(self, delivery: Delivery, answer: _Answer) -> None:
        now = self.now_us()
        result = judge(
            delivery,
            status=answer.status,
            error=answer.error,
            now_us=now,
            rng=self.rng,
            retry_after_s=answer.retry_after_s,
        )
        recorded = self.outbox.finish(delivery, owner=self.owner, result=result, now_us=now)
        where = short_url(self.endpoints[delivery.endpoint].url)
        what = f"webhook {delivery.type} #{delivery.id} ({delivery.event_id}) to {where}"
        if not recorded:
            logger.info("%s: another sender holds it now; its result is not recorded", what)
        elif result.status == "delivered":
            logger.info("%s delivered (HTTP %s)", what, answer.status)
        elif result.disable:
            logger.warning(
                "%s: the endpoint answered 410 Gone and is disabled; `gateway webhooks retry "
                "%d` re-enables it",
                what,
                delivery.id,
            )
        elif result.status == "failed":
            logger.warning("%s failed for a day and is given up: %s", what, result.last_error)
        else:
            logger.info("%s failed (%s); trying again later", what, result.last_error)

    def housekeeping(self) -> None:
        """Now and then: write off expired credit and announce credit about to expire on
        accounts nobody writes to (their events are decided by writes), and forget
        deliveries done more than 30 days ago."""
        now = self.clock.monotonic()
        if now < self._sweep_at:
            return
        self._sweep_at = now + SWEEP_EVERY_S
        service = self.service
        if service is not None and service.alerts is not None:
            at = self.now_us()
            for name in service.accounts():
                state = service.store.load(name)
                if state is not None and service.alerts.due_soon(state, at):
                    service.write(name, lambda step: None, create=False)
        self.outbox.prune(before_us=self.now_us() - KEEP_DONE_US)

    def ping_request(self, url: str, *, account: str) -> tuple[_Request, str]:
        """A signed ``ping`` for ``url`` (one of the endpoints)."""
        endpoint = self.endpoints.get(endpoint_id(url))
        if endpoint is None:
            from gateway.errors import ConfigError

            raise ConfigError(
                f"{url} is not one of the config's webhooks (its secret signs the ping)",
                key="webhooks",
                fix="add it under webhooks: with its secret, or test a URL listed there",
            )
        event = WebhookEvent(
            new_event_id(),
            "ping",
            account,
            self.now_us(),
            {"message": "a test event from `gateway webhooks test`"},
        )
        return self._signed(endpoint, event.id, event.body()), event.id

    def retry(self, delivery_id: int) -> Delivery | None:
        """Send a delivery again now (and re-enable its endpoint); None if there is none."""
        now = self.now_us()
        return self.outbox.retry(delivery_id, now_us=now, deadline_us=now + DELIVERY_WINDOW_US)


def _new_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _retry_after(value: str | None) -> float | None:
    """A ``Retry-After`` header's seconds (a number or an HTTP date); None if absent or bad."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _failure(exc: BaseException) -> _Answer:
    text = redact(str(exc)).strip().splitlines()
    detail = f": {text[0][:200]}" if text else ""
    return _Answer(None, f"{type(exc).__name__}{detail}")


def _answer(response: httpx2.Response) -> _Answer:
    status = response.status_code
    error = None if 200 <= status < 300 else f"HTTP {status} {response.reason_phrase}".strip()
    return _Answer(status, error, _retry_after(response.headers.get("retry-after")))


def _timeout(seconds: float) -> httpx2.Timeout:
    import httpx2

    return httpx2.Timeout(seconds)


class Sender(_Deliveries):
    """Delivers the webhook outbox with threads (see the module docstring).

    ``Sender(gw)`` (a Gateway, AsyncGateway or CreditService) sends to the config's
    ``webhooks:``; :meth:`on_store` takes a store and endpoints. ``concurrency`` rows are
    sent at a time; an idle sender looks at the outbox every ``poll_interval_s`` seconds,
    and at once when this process writes an event (:meth:`wake`).
    """

    def __init__(
        self,
        source: Gateway | AsyncGateway | CreditService,
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        concurrency: int = 4,
        poll_interval_s: float = 2.0,
    ) -> None:
        service = _service_of(source)
        super().__init__(
            service.store,
            service.webhooks,
            service=service,
            clock=clock,
            rng=rng,
            concurrency=concurrency,
            poll_interval_s=poll_interval_s,
        )
        self._init_threads()

    @classmethod
    def on_store(
        cls,
        store: Store,
        endpoints: Sequence[WebhookConfig],
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        concurrency: int = 4,
        poll_interval_s: float = 2.0,
    ) -> Sender:
        """A sender for ``store``'s outbox and these endpoints, without a gateway."""
        sender = cls.__new__(cls)
        _Deliveries.__init__(
            sender,
            store,
            endpoints,
            service=None,
            clock=clock,
            rng=rng,
            concurrency=concurrency,
            poll_interval_s=poll_interval_s,
        )
        sender._init_threads()
        return sender

    def _init_threads(self) -> None:
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: httpx2.Client | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._guard = threading.Lock()
        _LIVE.add(self)

    def __repr__(self) -> str:
        return f"Sender(endpoints={len(self.endpoints)}, owner={self.owner!r})"

    # -- one round --------------------------------------------------------------------------

    def run_once(self) -> int:
        """Claim what is due and deliver it; how many attempts were made (0: nothing due)."""
        claimed = self.claim()
        if len(claimed) == 1:
            self._deliver(claimed[0])
        elif claimed:
            list(self._executor().map(self._deliver, claimed))
        return len(claimed)

    def send_now(self, delivery_id: int) -> Delivery | None:
        """``gateway webhooks retry ID``: make a delivery due again now (whatever its status;
        its endpoint is re-enabled) and attempt it here, unless another sender holds it or an
        older event of its account is still pending for that endpoint (it goes after that
        one). Returns the delivery as it then stands; None if there is no such delivery."""
        if self.retry(delivery_id) is None:
            return None
        for delivery in self.claim(only=delivery_id):
            self._deliver(delivery)
        return self.outbox.get(delivery_id)

    def run_until_idle(self, *, max_rounds: int = 1000) -> int:
        """Rounds until nothing is due (at most ``max_rounds``); attempts made in all."""
        total = 0
        for _ in range(max_rounds):
            made = self.run_once()
            if not made:
                break
            total += made
        return total

    def _deliver(self, delivery: Delivery) -> None:
        try:
            request = self.request(delivery)
            answer = self._post(request)
            self.record(delivery, answer)
        except Exception:  # a store error: the lease ends and the row is sent again
            if self._stop.is_set():  # the gateway closed its store under this attempt
                logger.info("webhook delivery #%d was cut short by close()", delivery.id)
            else:
                logger.exception("webhook delivery #%d could not be recorded", delivery.id)

    def _post(self, request: _Request) -> _Answer:
        import httpx2

        try:
            # Only the status and headers are read: a receiver's body is not ours to wait for.
            with self._http().stream(
                "POST",
                request.url,
                content=request.body,
                headers=request.headers,
                timeout=_timeout(request.timeout),
            ) as response:
                return _answer(response)
        except (httpx2.HTTPError, httpx2.InvalidURL, OSError) as exc:
            return _failure(exc)

    def ping(self, url: str, *, account: str | None = None) -> PingResult:
        """POST a signed ``ping`` event to ``url`` (one of the endpoints) now, outside the
        outbox (``gateway webhooks test URL``)."""
        name = account or (self.service.default_account if self.service else "default")
        request, event_id = self.ping_request(url, account=name)
        started = time.monotonic()
        answer = self._post(request)
        return PingResult(event_id, answer.status, answer.error, time.monotonic() - started)

    def _http(self) -> httpx2.Client:
        with self._guard:
            if self._client is None:
                import httpx2

                self._client = httpx2.Client(follow_redirects=False)
            return self._client

    def _executor(self) -> ThreadPoolExecutor:
        with self._guard:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=self.concurrency, thread_name_prefix="gateway-webhooks"
                )
            return self._pool

    # -- running ----------------------------------------------------------------------------

    def run_forever(self, stop: threading.Event | None = None) -> None:
        """Deliver until ``stop`` (or :meth:`stop`) is set: a round whenever something is
        due, else a look every ``poll_interval_s`` seconds or when woken."""
        stopping = stop or self._stop
        while not (stopping.is_set() or self._stop.is_set()):
            made = 0
            try:
                made = self.run_once()
                if not made:
                    self.housekeeping()
            except Exception:  # the store is away for a while: look again later
                if self._stop.is_set():
                    return
                logger.exception("the webhook sender could not read the outbox")
            if not made:
                self._wake.wait(self.poll_interval_s)
                self._wake.clear()

    def start(self) -> None:
        """Run :meth:`run_forever` in a daemon thread (once)."""
        with self._guard:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stop.clear()
            self._thread = threading.Thread(
                target=self.run_forever, name="gateway-webhooks", daemon=True
            )
            self._thread.start()

    def wake(self) -> None:
        """Look at the outbox now (this process just wrote an event)."""
        self._wake.set()

    def stop(self, timeout: float = 1.0) -> None:
        """Stop the thread (waiting up to ``timeout`` s for an attempt in flight: one cut
        short is sent again by the next sender) and release the HTTP connections."""
        self._stop.set()
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        with self._guard:
            pool, self._pool = self._pool, None
            client, self._client = self._client, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        if client is not None and (thread is None or not thread.is_alive()):
            client.close()

    @property
    def running(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def _after_fork(self) -> None:
        """In a child made by fork(): the parent's thread, pool and connections are not
        here; a sender that was running starts again, under a new owner name."""
        was_running = self._thread is not None and not self._stop.is_set()
        self._guard = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = None
        self._client = None
        self._pool = None
        self.owner = _new_owner()
        if was_running:
            self.start()


class AsyncSender(_Deliveries):
    """:class:`Sender` on an event loop: ``await AsyncSender(gw).run_forever()`` in a
    server's lifespan (the store is read and written in worker threads)."""

    def __init__(
        self,
        source: Gateway | AsyncGateway | CreditService,
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        concurrency: int = 8,
        poll_interval_s: float = 2.0,
    ) -> None:
        service = _service_of(source)
        super().__init__(
            service.store,
            service.webhooks,
            service=service,
            clock=clock,
            rng=rng,
            concurrency=concurrency,
            poll_interval_s=poll_interval_s,
        )
        self._client: httpx2.AsyncClient | None = None
        self._wake: asyncio.Event | None = None
        self._stopping: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"AsyncSender(endpoints={len(self.endpoints)}, owner={self.owner!r})"

    async def run_once(self) -> int:
        """Claim what is due and deliver it; how many attempts were made (0: nothing due)."""
        claimed = await asyncio.to_thread(self.claim)
        if claimed:
            await asyncio.gather(*(self._deliver(d) for d in claimed))
        return len(claimed)

    async def _deliver(self, delivery: Delivery) -> None:
        try:
            answer = await self._post(self.request(delivery))
            await asyncio.to_thread(self.record, delivery, answer)
        except Exception:  # a store error: the lease ends and the row is sent again
            logger.exception("webhook delivery #%d could not be recorded", delivery.id)

    async def _post(self, request: _Request) -> _Answer:
        import httpx2

        if self._client is None:
            self._client = httpx2.AsyncClient(follow_redirects=False)
        try:
            async with self._client.stream(
                "POST",
                request.url,
                content=request.body,
                headers=request.headers,
                timeout=_timeout(request.timeout),
            ) as response:
                return _answer(response)
        except (httpx2.HTTPError, httpx2.InvalidURL, OSError) as exc:
            return _failure(exc)

    def wake(self) -> None:
        """Look at the outbox now (from any thread: the gateway's writes call it)."""
        loop, event = self._loop, self._wake
        if loop is not None and event is not None:
            loop.call_soon_threadsafe(event.set)

    def stop(self) -> None:
        """End :meth:`run_forever` (from any thread)."""
        loop, event = self._loop, self._stopping
        if loop is not None and event is not None:
            loop.call_soon_threadsafe(event.set)

    async def run_forever(self, stop: asyncio.Event | None = None) -> None:
        """Deliver until ``stop`` is set, :meth:`stop` is called or the task is cancelled.
        It takes over from the gateway's own thread sender (one per process is enough):
        that one is stopped, and the gateway's writes wake this one instead."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._stopping = stopping = stop or asyncio.Event()
        wake = self._wake

        async def wake_on_stop() -> None:
            await stopping.wait()
            wake.set()

        watcher = asyncio.create_task(wake_on_stop())
        service = self.service
        if service is not None:
            running = service.webhook_sender
            service.webhook_sender = self
            if isinstance(running, Sender):
                await asyncio.to_thread(running.stop)
        try:
            while not stopping.is_set():
                made = 0
                try:
                    made = await self.run_once()
                    if not made:
                        await asyncio.to_thread(self.housekeeping)
                except Exception:  # the store is away for a while: look again later
                    logger.exception("the webhook sender could not read the outbox")
                if not made:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self.poll_interval_s)
                    self._wake.clear()
        finally:
            watcher.cancel()
            if service is not None and service.webhook_sender is self:
                service.webhook_sender = None
            await self.aclose()

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()


def _forget_after_fork() -> None:
    for sender in list(_LIVE):
        sender._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)
