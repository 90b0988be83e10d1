"""The offline demo's scripted day, as steps; :mod:`.demo` prints them.

One simulated day on the demo config's fake providers (named openai, anthropic and gemini),
with a :class:`~gateway.testing.clock.ManualClock` (nothing sleeps), seeded random sources and
an :class:`~gateway.credits.payment.InMemoryPaymentMethod`, so every run tells the same story
with the same numbers:

1. $5 of credit is bought; a morning of calls on route ``smart`` is served by openai/gpt-4o;
2. OpenAI has an outage (HTTP 503): calls retry, then fall back to Claude; the circuit breaker
   opens; after its cooldown one probe call finds OpenAI back and closes it;
3. Gemini rate-limits route ``fast`` (HTTP 429, Retry-After): the gateway waits as asked,
   retries, and falls back to openai/gpt-4o-mini;
4. the afternoon spends the balance down; the auto-recharge is declined (card expired) and
   a call is refused for lack of credit before any provider is called;
5. the card is fixed and credit bought by hand; the next drop below the threshold
   auto-recharges; the daily spending cap finally stops the day.

Everything the steps report is read back from the gateway: responses and their attempts,
the events it emitted, the payment method's charges and the account's balance.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING, Literal

from gateway.cli._common import usd

if TYPE_CHECKING:
    from gateway import Gateway
    from gateway.config import GatewayConfig
    from gateway.events import GatewayEvent
    from gateway.providers.fake import FakeAdapter
    from gateway.types import GatewayChatCompletion

__all__ = ["DAY_END", "DAY_START", "DemoDay", "Step", "cents"]

DAY_START = time(8, 0)
DAY_END = time(18, 0)
#: Safety net: no phase of the story may need more calls than this.
_MAX_CALLS = 400

StepKind = Literal[
    "bought",
    "traffic",
    "outage",
    "recovered",
    "rate_limit",
    "recharge",
    "declined",
    "refused",
    "cap",
]


@dataclass(frozen=True, slots=True)
class Step:
    """One thing that happened, as the demo tells it."""

    at: datetime
    kind: StepKind
    title: str
    details: tuple[str, ...] = ()
    #: Available balance just after the step.
    balance: Decimal | None = None
    #: For a stretch of traffic: when it ended.
    until: datetime | None = None


@dataclass(slots=True)
class _Tally:
    """Calls not yet reported, summed into one traffic step."""

    route: str
    feature: str
    started: datetime
    ended: datetime
    calls: int = 0
    spent: Decimal = Decimal(0)
    answered_by: dict[str, int] = field(default_factory=dict)


class DemoDay:
    """Runs the day on ``config`` (the demo config) and hands each :class:`Step` to
    ``report``; ``tick(now)`` is called after every call (for a progress bar)."""

    def __init__(
        self,
        config: GatewayConfig,
        day: date,
        *,
        report: Callable[[Step], None],
        tick: Callable[[datetime], None] = lambda now: None,
        seed: int = 7,
    ) -> None:
        from gateway import Gateway
        from gateway.credits.payment import InMemoryPaymentMethod
        from gateway.testing.clock import ManualClock

        self.clock = ManualClock(datetime.combine(day, DAY_START, tzinfo=UTC))
        self.payment = InMemoryPaymentMethod()
        self._events: list[GatewayEvent] = []
        self.gw: Gateway = Gateway(
            config,
            clock=self.clock,
            rng=random.Random(seed),
            on_event=self._events.append,
            payment_method=self.payment,
        )
        self.account = self.gw.credits
        self._sizes = random.Random(seed)
        self._report = report
        self._tick = tick
        self._charges_seen = 0
        self._purchases = 0
        self._tally: _Tally | None = None
        #: The balance the last step reported (what the balance column last showed).
        self._last_balance: Decimal | None = None

    def close(self) -> None:
        self.gw.close()

    # -- the story ----------------------------------------------------------------------------

    def run(self) -> None:
        self._buy(Decimal("5"), "Bought {amount} of credit")
        self._morning()
        self._outage()
        self._recovery()
        self._rate_limit()
        self._spend_until_refused()
        self._wait(timedelta(minutes=15))
        self._buy(Decimal("5"), "Card updated; bought {amount} of credit by hand")
        self._spend_until_capped()

    def _morning(self) -> None:
        for _ in range(20):
            self._wait(timedelta(minutes=6))
            self._traffic("smart", "summaries", tokens=self._sizes.randint(10_000, 40_000))
        self._flush()

    def _outage(self) -> None:
        self._set_time(time(10, 0))
        self._fake("openai").script.model("gpt-4o").fail(503, times=1_000)
        breaker = self.gw.config.routes["smart"].breaker
        lines: list[str] = []
        spent = Decimal(0)
        by_claude = 0
        for _ in range(6):
            self._wait(timedelta(seconds=20))
            self._events.clear()
            resp = self._call("smart", "summaries", tokens=self._sizes.randint(10_000, 40_000))
            self._after_call()
            if resp.gateway.provider == "anthropic":
                by_claude += 1
                spent += _cost(resp)
            lines.append(self._call_line(resp))
            if any(_breaker(e, "open") for e in self._events):
                lines.append(
                    f"the circuit breaker for openai/gpt-4o opened after {breaker.failures} "
                    "failures: the next calls skip it at once"
                )
        in_all = self._shown_spend(spent, self.account.balance().available)
        lines.append(
            f"Claude answered {by_claude} of 6 calls, charged at Claude's price ({in_all} "
            "in all); the failed tries at OpenAI were released and cost nothing."
        )
        self._step(
            "outage",
            "OpenAI outage: openai/gpt-4o answers HTTP 503; route 'smart' retries, then falls "
            "back to Claude",
            lines,
            at=self._at(time(10, 0)),
        )

    def _recovery(self) -> None:
        self._fake("openai").script.model("gpt-4o").clear()
        self._set_time(time(10, 10))
        cooldown = self.gw.config.routes["smart"].breaker.cooldown_s
        self._events.clear()
        resp = self._call("smart", "summaries", tokens=self._sizes.randint(10_000, 40_000))
        self._after_call()
        closed = any(_breaker(e, "closed") for e in self._events)
        self._step(
            "recovered",
            f"OpenAI is back: after the breaker's {cooldown / 60:g}-minute cooldown one probe "
            "call went through",
            [
                self._call_line(resp),
                "the probe succeeded, so the breaker closed and OpenAI serves 'smart' again"
                if closed
                else "the breaker stayed open",
            ],
        )

    def _rate_limit(self) -> None:
        self._set_time(time(10, 30))
        start = self._now()
        self._fake("gemini").script.model("gemini-2.5-flash").fail(429, retry_after=1, times=3)
        lines: list[str] = []
        for _ in range(3):
            self._events.clear()
            resp = self._call(
                "fast", "autocomplete", tokens=self._sizes.randint(500, 1_500), max_tokens=200
            )
            self._after_call()
            lines.append(self._call_line(resp))
            self._wait(timedelta(seconds=30))
        lines.append(
            "The gateway waited as Gemini asked (on the demo's clock: nothing really sleeps), "
            "retried, and fell back to OpenAI's small model while Gemini still refused."
        )
        self._step(
            "rate_limit",
            "Gemini rate limit on route 'fast': gemini/gemini-2.5-flash answers HTTP 429 with "
            "Retry-After: 1",
            lines,
            at=start,
        )

    def _spend_until_refused(self) -> None:
        from gateway.errors import InsufficientCredits

        self._set_time(time(11, 0))
        self.payment.decline_next(1, "card expired")
        for _ in range(_MAX_CALLS):
            self._wait(timedelta(minutes=2))
            before = self._provider_calls()
            try:
                self._traffic("smart", "reports", tokens=self._sizes.randint(10_000, 40_000))
            except InsufficientCredits as exc:
                self._flush()
                untouched = self._provider_calls() == before
                self._step(
                    "refused",
                    "A call was refused for lack of credit",
                    [
                        f"InsufficientCredits: {exc.message}",
                        "(checked: the fake providers received no request)"
                        if untouched
                        else "(but a provider was called)",
                    ],
                )
                return
        raise RuntimeError("the demo's balance never ran out")

    def _spend_until_capped(self) -> None:
        from gateway.errors import SpendLimitExceeded

        for _ in range(_MAX_CALLS):
            self._wait(timedelta(minutes=2))
            try:
                self._traffic("smart", "reports", tokens=self._sizes.randint(10_000, 40_000))
            except SpendLimitExceeded as exc:
                self._flush()
                daily = self.account.settings().daily_limit
                self._step(
                    "cap",
                    f"The daily spending cap of {usd(daily)} was reached: no more calls today",
                    [f"SpendLimitExceeded: {exc.message}"],
                )
                return
        raise RuntimeError("the demo never reached its daily cap")

    # -- calls --------------------------------------------------------------------------------

    def _call(
        self, route: str, feature: str, *, tokens: int, max_tokens: int = 800
    ) -> GatewayChatCompletion:
        return self.gw.chat.completions.create(
            model=route,
            messages=[{"role": "user", "content": _document(tokens)}],
            max_tokens=max_tokens,
            tags={"feature": feature},
        )

    def _traffic(self, route: str, feature: str, *, tokens: int) -> None:
        """One ordinary call, summed into the current stretch of traffic."""
        tally = self._tally
        if tally is None or (tally.route, tally.feature) != (route, feature):
            self._flush()
            tally = self._tally = _Tally(route, feature, self._now(), self._now())
        resp = self._call(route, feature, tokens=tokens)
        tally.calls += 1
        tally.ended = self._now()
        tally.spent += _cost(resp)
        who = f"{resp.gateway.provider}/{resp.gateway.model}"
        tally.answered_by[who] = tally.answered_by.get(who, 0) + 1
        self._after_call()

    def _after_call(self) -> None:
        """Report what the call set off: auto-recharges (paid or declined)."""
        self._tick(self._now())
        charges = self.payment.charges[self._charges_seen :]
        self._charges_seen += len(charges)
        if not charges:
            return
        self._flush(before=sum((c.amount for c in charges if c.result.ok), Decimal(0)))
        settings = self.account.settings().auto_recharge
        below = usd(settings[0]) if settings else "its threshold"
        for charge in charges:
            if charge.result.ok:
                self._step(
                    "recharge",
                    f"Auto-recharge: the balance fell below {below}, so {usd(charge.amount)} "
                    f"was bought (payment {charge.result.reference})",
                )
            else:
                self._step(
                    "declined",
                    f"Auto-recharge: the balance fell below {below}, but buying "
                    f"{usd(charge.amount)} was declined ({charge.result.reason})",
                    ["nothing was added; the decline is recorded in the ledger"],
                )

    def _buy(self, amount: Decimal, title: str) -> None:
        self._purchases += 1
        entry = self.account.purchase(amount, idempotency_key=f"demo-purchase-{self._purchases}")
        self._charges_seen = len(self.payment.charges)
        reference = entry.meta.get("reference")
        suffix = f" (payment {reference})" if reference else ""
        self._step("bought", title.format(amount=usd(amount)) + suffix)

    # -- reporting ----------------------------------------------------------------------------

    def _flush(self, before: Decimal = Decimal(0)) -> None:
        """Report the calls not yet reported; ``before``: credit added since they ended."""
        tally, self._tally = self._tally, None
        if tally is None or tally.calls == 0:
            return
        who = ", ".join(f"{n} by {target}" for target, n in sorted(tally.answered_by.items()))
        if len(tally.answered_by) == 1:
            who = f"all answered by {next(iter(tally.answered_by))}"
        balance = self.account.balance().available - before
        self._step(
            "traffic",
            f"{tally.calls} calls on route '{tally.route}', {who}",
            [f"spent {self._shown_spend(tally.spent, balance)} · tagged feature={tally.feature}"],
            at=tally.started,
            until=tally.ended,
            balance=balance,
        )

    def _shown_spend(self, spent: Decimal, balance: Decimal) -> str:
        """``spent`` to the cent as the balance column shows it: the difference of the last
        balance shown and ``balance`` (the one after the spending), each rounded as that
        column rounds them, so the steps add up on the screen (within a cent of the exact
        amount, which the usage table shows)."""
        before = self._last_balance
        if before is None or before - balance != spent:  # something else moved the balance
            return usd(spent, 2)
        return usd(cents(before) - cents(balance), 2)

    def _call_line(self, resp: GatewayChatCompletion) -> str:
        return f"{self._now():%H:%M:%S}  {_chain(resp, self._events)}  {usd(_cost(resp), 4)}"

    def _step(
        self,
        kind: StepKind,
        title: str,
        details: list[str] | None = None,
        *,
        at: datetime | None = None,
        until: datetime | None = None,
        balance: Decimal | None = None,
    ) -> None:
        if balance is None:
            balance = self.account.balance().available
        self._last_balance = balance
        self._report(
            Step(
                at=at or self._now(),
                kind=kind,
                title=title,
                details=tuple(details or ()),
                balance=balance,
                until=until,
            )
        )

    # -- helpers ------------------------------------------------------------------------------

    def _now(self) -> datetime:
        return self.clock.now()

    def _at(self, when: time) -> datetime:
        return datetime.combine(self._now().date(), when, tzinfo=UTC)

    def _set_time(self, when: time) -> None:
        target = self._at(when)
        if target > self._now():
            self.clock.set(target)

    def _wait(self, delta: timedelta) -> None:
        self.clock.advance(delta.total_seconds())

    def _fake(self, provider: str) -> FakeAdapter:
        from gateway.providers.fake import FakeAdapter

        adapter = self.gw.adapter(provider)
        assert isinstance(adapter, FakeAdapter), f"the demo's {provider} must be the fake"
        return adapter

    def _provider_calls(self) -> int:
        return sum(len(self._fake(p).calls) for p in ("openai", "anthropic", "gemini"))


_TEXT = "Revenue grew in the north region while costs held steady through the quarter. "


def _document(tokens: int) -> str:
    """A prompt the fake provider counts as ``tokens`` tokens (one per four characters)."""
    chars = tokens * 4
    return (_TEXT * (chars // len(_TEXT) + 1))[:chars]


def cents(amount: Decimal) -> Decimal:
    """``amount`` to the cent, as the demo's balance column shows it (half even, the ledger's
    rounding)."""
    return amount.quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)


def _cost(resp: GatewayChatCompletion) -> Decimal:
    usage = resp.usage
    return usage.cost if usage is not None and usage.cost is not None else Decimal(0)


def _breaker(event: GatewayEvent, state: str) -> bool:
    return event.kind == "breaker_state" and event.detail.get("state") == state


def _chain(resp: GatewayChatCompletion, events: list[GatewayEvent]) -> str:
    """``openai/gpt-4o 503 → retry in 0.33s: 503 → anthropic/claude-sonnet-4-6 ok``."""
    waits = [e.detail.get("wait_s") for e in events if e.kind == "retry"]
    parts: list[str] = []
    for attempt in resp.gateway.attempts:
        if attempt.outcome == "skipped":
            parts.append(f"{attempt.target} skipped ({attempt.reason or 'unavailable'})")
            continue
        result = "ok" if attempt.outcome == "ok" else str(attempt.status_code or attempt.error_type)
        if attempt.retry:
            wait = waits.pop(0) if waits else None
            after = f" in {wait:.2g}s" if isinstance(wait, int | float) else ""
            parts.append(f"retry{after}: {result}")
        else:
            parts.append(f"{attempt.target} {result}")
    return " → ".join(parts)
