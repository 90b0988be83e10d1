"""The scripting vocabulary shared by the HTTP provider mocks and the offline fake provider.

A script is a queue of outcomes (a reply, an HTTP error, a timeout, a broken stream, a slow
answer) that the next calls consume in order; an outcome may be narrowed to one model. ``times``
is how many calls an outcome answers; ``times=None`` answers every call (it is never used up).
Here every outcome answers once by default (the fake provider's rule); the HTTP mocks make a
fault without ``times`` last for every call (an outage). Both
:mod:`gateway.testing.mock` (answers on the wire, through the real adapters) and
:mod:`gateway.providers.fake` (answers in-process) read the same outcome types, so a test
reads the same whichever it uses::

    script.fail(429, retry_after=2, times=2).respond(text="Paris")
    script.model("gpt-4o").timeout()
    script["gpt-4o"].overloaded_mid_stream(after_chunks=3)

This module imports no SDK and no HTTP library: the fake provider needs none.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, Self, runtime_checkable

from gateway.providers.base import TokenUsage

__all__ = [
    "Disconnect",
    "Failure",
    "FailureKind",
    "FinishReason",
    "Outcome",
    "OverloadedMidStream",
    "Reply",
    "Script",
    "ScriptState",
    "Slow",
    "Timeout",
    "ToolCallSpec",
    "advance_clock",
    "estimate_tokens",
    "make_reply",
    "status_failure",
]

ToolCallSpec = tuple[str, Mapping[str, Any]]
FailureKind = Literal["status", "insufficient_quota", "context_too_long", "auth_error"]
#: Finish reasons in OpenAI's names (each mock translates them to its provider's).
FinishReason = Literal["stop", "length", "tool_calls", "content_filter"]
_FINISH_REASONS = frozenset(("stop", "length", "tool_calls", "content_filter"))


def estimate_tokens(text: str) -> int:
    """The mocks' token count: one per four characters, at least one."""
    return max(1, (len(text) + 3) // 4)


@dataclass(frozen=True, slots=True)
class Reply:
    """Answer with this text and/or tool calls; ``usage=None`` counts tokens from the text."""

    text: str | None = None
    tool_calls: tuple[tuple[str, dict[str, Any]], ...] = ()
    usage: TokenUsage | None = None
    finish_reason: FinishReason | None = None

    def describe(self) -> str:
        return "respond"


@dataclass(frozen=True, slots=True)
class Failure:
    """An error response: an HTTP status, or one of the named provider conditions."""

    kind: FailureKind
    status: int | None = None
    retry_after: float | None = None
    #: The fake provider's ``code`` (e.g. ``insufficient_quota``); the mocks ignore it.
    code: str | None = None

    def describe(self) -> str:
        return f"fail {self.status}" if self.kind == "status" else self.kind


@dataclass(frozen=True, slots=True)
class Timeout:
    """The request times out before any response arrives."""

    def describe(self) -> str:
        return "timeout"


@dataclass(frozen=True, slots=True)
class Disconnect:
    """The connection drops: before the response, or (streams) after ``after_chunks`` chunks."""

    after_chunks: int | None = None

    def describe(self) -> str:
        if self.after_chunks is None:
            return "disconnect"
        return f"disconnect after {self.after_chunks} chunk(s)"


@dataclass(frozen=True, slots=True)
class OverloadedMidStream:
    """A stream that breaks with the provider's overload error after ``after_chunks`` content
    chunks; a non-streamed call gets the provider's overload error response instead."""

    after_chunks: int = 3

    def describe(self) -> str:
        return f"overloaded_mid_stream after {self.after_chunks} chunk(s)"


@dataclass(frozen=True, slots=True)
class Slow:
    """Answer after ``seconds`` (on the injected clock); ``reply=None`` is the default answer."""

    seconds: float
    reply: Reply | None = None

    def describe(self) -> str:
        return f"slow {self.seconds:g}s"


Outcome = Reply | Failure | Timeout | Disconnect | OverloadedMidStream | Slow


@runtime_checkable
class _AdvanceableClock(Protocol):
    def advance(self, seconds: float) -> None: ...


def advance_clock(clock: object | None, seconds: float) -> bool:
    """Move a controllable clock (one with ``advance``, e.g. ManualClock) forward.

    Returns False, and waits for nothing, when there is no such clock: the mocks never sleep.
    """
    if isinstance(clock, _AdvanceableClock) and seconds > 0:
        clock.advance(seconds)
        return True
    return False


@dataclass(slots=True)
class _Entry:
    """One scripted outcome in a queue."""

    model: str | None
    outcome: Outcome
    #: Calls it still answers; None for every call (it is never used up).
    left: int | None

    def covers(self, model: str | None) -> bool:
        return self.model is None or self.model == model


class ScriptState:
    """The queue of scripted outcomes of one provider, shared by its narrowed views."""

    def __init__(self, clock: object | None = None) -> None:
        self._queue: deque[_Entry] = deque()
        self._lock = threading.Lock()
        #: The clock ``slow`` advances (anything with ``advance(seconds)``), or None.
        self.clock = clock

    def push(self, outcome: Outcome, times: int | None, model: str | None) -> None:
        """Queue ``outcome`` for ``times`` calls (None: every call from then on)."""
        if times is not None and (
            isinstance(times, bool) or not isinstance(times, int) or times < 1
        ):
            raise ValueError(
                f"times must be a whole number of at least 1, or None for every call, not {times!r}"
            )
        with self._lock:
            for entry in self._queue:
                if entry.left is None and entry.covers(model):
                    calls = (
                        "every call" if entry.model is None else f"every call to {entry.model!r}"
                    )
                    raise ValueError(
                        f"{outcome.describe()} would never happen: {entry.outcome.describe()} is "
                        f"scripted for {calls} (a fault without times lasts for the whole "
                        "test). Give that fault times=N, or clear() the script first"
                    )
            self._queue.append(_Entry(model, outcome, times))

    def next_for(self, model: str) -> Outcome | None:
        """Take the first outcome scripted for any model or for this one; None if none is."""
        with self._lock:
            for i, entry in enumerate(self._queue):
                if entry.covers(model):
                    if entry.left == 1:
                        del self._queue[i]
                    elif entry.left is not None:
                        entry.left -= 1
                    return entry.outcome
        return None

    def pending(self, model: str | None = None) -> list[Outcome]:
        """Outcomes not consumed yet (those a call to ``model`` could take, if given); one
        scripted for every call is listed once."""
        with self._lock:
            return [
                entry.outcome
                for entry in self._queue
                if model is None or entry.covers(model)
                for _ in range(1 if entry.left is None else entry.left)
            ]

    def clear(self, model: str | None = None) -> None:
        with self._lock:
            if model is None:
                self._queue.clear()
            else:
                kept = [entry for entry in self._queue if entry.model != model]
                self._queue.clear()
                self._queue.extend(kept)


def make_reply(
    text: str | None,
    tool_calls: Sequence[ToolCallSpec],
    usage: TokenUsage | None,
    finish_reason: FinishReason | None = None,
) -> Reply:
    """A validated :class:`Reply`."""
    calls = []
    for call in tool_calls:
        if not isinstance(call, tuple | list) or len(call) != 2:
            raise ValueError(f"a tool call is (name, arguments dict), not {call!r}")
        name, args = call
        if not isinstance(name, str) or not name or not isinstance(args, Mapping):
            raise ValueError(f"a tool call is (name, arguments dict), not {call!r}")
        calls.append((name, dict(args)))
    if usage is not None and not isinstance(usage, TokenUsage):
        raise TypeError(f"usage must be a gateway TokenUsage, not {type(usage).__name__}")
    if finish_reason is not None and finish_reason not in _FINISH_REASONS:
        raise ValueError(f"finish_reason must be one of {sorted(_FINISH_REASONS)}")
    return Reply(text, tuple(calls), usage, finish_reason)


def status_failure(status: int, retry_after: float | None, code: str | None = None) -> Failure:
    """A validated ``Failure`` for an HTTP status."""
    if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
        raise ValueError(f"status must be an HTTP error status (400-599), not {status!r}")
    if retry_after is not None and (
        isinstance(retry_after, bool) or not isinstance(retry_after, int | float) or retry_after < 0
    ):
        raise ValueError(f"retry_after must be seconds >= 0, not {retry_after!r}")
    after = float(retry_after) if retry_after is not None else None
    return Failure("status", status, after, code)


def _after_chunks(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"after_chunks must be a whole number >= 0, not {value!r}")
    return value


class Script:
    """The fluent vocabulary: every method queues outcomes and returns the script, so calls
    chain. Outcomes are consumed in order by the next calls (only by calls to the narrowed
    model, for a script from :meth:`model`); with nothing queued, the default answer is used.
    Every method also takes ``model=``, the same as narrowing with :meth:`model` first, and
    ``times=`` (how many calls; None: every call from then on).
    """

    def __init__(self, state: ScriptState, model: str | None = None) -> None:
        self._state = state
        self._model = model

    def _push(self, outcome: Outcome, times: int | None, model: str | None = None) -> Self:
        if model is not None and self._model is not None and model != self._model:
            raise ValueError(f"this script is narrowed to {self._model!r}, not {model!r}")
        self._state.push(outcome, times, model if model is not None else self._model)
        return self

    def model(self, name: str) -> Script:
        """The same script, narrowed to calls to one model (e.g. ``"gpt-4o"``)."""
        if not isinstance(name, str) or not name:
            raise ValueError("a model name is a non-empty string such as 'gpt-4o'")
        return Script(self._state, name)

    def __getitem__(self, name: str) -> Script:
        return self.model(name)

    @property
    def pending(self) -> list[Outcome]:
        """Scripted outcomes not consumed yet."""
        return self._state.pending(self._model)

    def clear(self) -> None:
        """Drop every outcome not consumed yet (of the narrowed model only, if narrowed)."""
        self._state.clear(self._model)

    # -- replies --------------------------------------------------------------------------------

    def respond(
        self,
        text: str | None = None,
        *,
        tool_calls: Sequence[ToolCallSpec] = (),
        usage: TokenUsage | None = None,
        finish_reason: FinishReason | None = None,
        times: int | None = 1,
        model: str | None = None,
    ) -> Self:
        """Answer with this text and/or tool calls ``(name, arguments)``; ``usage`` is what
        the provider reports (by default counted from the text, one token per 4 characters).
        ``text=None`` without tool calls gives the default text. ``finish_reason`` (OpenAI's
        names) defaults to ``tool_calls`` when there are tool calls, else ``stop``."""
        return self._push(make_reply(text, tool_calls, usage, finish_reason), times, model)

    def slow(
        self,
        seconds: float,
        *,
        text: str | None = None,
        tool_calls: Sequence[ToolCallSpec] = (),
        usage: TokenUsage | None = None,
        times: int | None = 1,
        model: str | None = None,
    ) -> Self:
        """Answer only after ``seconds``: the injected clock (e.g. ManualClock) is advanced by
        that much; nothing really sleeps. If ``seconds`` exceeds the call's own timeout, the
        clock advances by the timeout and the call times out, as it would for real. Without a
        controllable clock no time passes (only the timeout rule applies)."""
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
            raise ValueError(f"seconds must be a number >= 0, not {seconds!r}")
        reply = (
            make_reply(text, tool_calls, usage) if text is not None or tool_calls or usage else None
        )
        return self._push(Slow(float(seconds), reply), times, model)

    # -- failures -------------------------------------------------------------------------------

    def fail(
        self,
        status: int,
        *,
        retry_after: float | None = None,
        times: int | None = 1,
        model: str | None = None,
    ) -> Self:
        """Answer with the provider's own error response for this HTTP status (429, 500, 503,
        529, 400, 401, ...), with a ``retry-after`` of ``retry_after`` seconds if given."""
        return self._push(status_failure(status, retry_after), times, model)

    def insufficient_quota(self, *, times: int | None = 1, model: str | None = None) -> Self:
        """The provider says the account is out of money or quota (its own response shape)."""
        return self._push(Failure("insufficient_quota"), times, model)

    def context_too_long(self, *, times: int | None = 1, model: str | None = None) -> Self:
        """The provider refuses the prompt as longer than the model's context window."""
        return self._push(Failure("context_too_long"), times, model)

    def auth_error(self, *, times: int | None = 1, model: str | None = None) -> Self:
        """The provider rejects the API key."""
        return self._push(Failure("auth_error"), times, model)

    def timeout(self, *, times: int | None = 1, model: str | None = None) -> Self:
        """The call times out (at once: use :meth:`slow` to let the clock run into a timeout)."""
        return self._push(Timeout(), times, model)

    def disconnect(
        self, *, after_chunks: int | None = None, times: int | None = 1, model: str | None = None
    ) -> Self:
        """The connection drops before the response; for a stream with ``after_chunks``, after
        that many content chunks (a non-streamed call then fails at once)."""
        after = _after_chunks(after_chunks) if after_chunks is not None else None
        return self._push(Disconnect(after), times, model)

    def overloaded_mid_stream(
        self, *, after_chunks: int = 3, times: int | None = 1, model: str | None = None
    ) -> Self:
        """A stream that breaks with the provider's overload error after ``after_chunks``
        content chunks (0: before any content, so the gateway can still fall back). A
        non-streamed call gets the provider's overload error response."""
        return self._push(OverloadedMidStream(_after_chunks(after_chunks)), times, model)

    def __repr__(self) -> str:
        narrowed = f", model={self._model!r}" if self._model else ""
        return f"{type(self).__name__}(pending={len(self.pending)}{narrowed})"
