"""Mocked OpenAI, Anthropic and Gemini: the real SDKs and adapters, no network, scripted faults.

:func:`mock_providers` intercepts the HTTP of all three SDKs (respx on httpx2's transport, see
``shared/PROVIDERS.md``) and answers in each provider's exact wire format, streamed or not.
Because the requests go through the real adapters and SDKs, a test written with it runs the
same code path as production: the same error mapping, retries, fallback and billing::

    from gateway import Gateway
    from gateway.testing import ManualClock, mock_providers

    clock = ManualClock()
    with mock_providers(clock) as mock:
        mock.openai.fail(503)                           # OpenAI is down (the whole block)
        mock.anthropic.respond(text="Bonjour")          # Claude answers
        gw = Gateway(config, clock=clock)
        resp = gw.chat.completions.create(model="smart", messages=[...])
        assert resp.gateway.provider == "anthropic"
        assert mock.anthropic.calls[0].body["model"] == "claude-sonnet-4-5"

A plain ``with`` also covers async code (``async with`` works too): the patch is on the
transport, not on an event loop.

Each provider (``mock.openai``, ``mock.anthropic``, ``mock.gemini``) has a script of outcomes
that the next calls consume in order: ``respond``, ``fail``, ``timeout``, ``disconnect``,
``overloaded_mid_stream``, ``slow``, ``insufficient_quota``, ``context_too_long``,
``auth_error``; ``mock.openai.model("gpt-4o")`` (or ``mock.openai["gpt-4o"]``) narrows it to one
model. With nothing scripted a call gets the default reply, ``"[<provider>/<model>] You said:
<last user message>"`` with usage counted at one token per four characters, so a test can tell
who answered. ``.default(text=...)`` changes it. A fault scripted without ``times`` answers every
call until the block ends (an outage); ``times=N`` makes it transient (``fail(429,
retry_after=2, times=1)``). ``respond`` and ``slow`` answer once unless given ``times``
(``times=None``: every call). What each fault becomes on the wire and in
the gateway is tabled in :mod:`gateway.testing._mock_wire`.

Time: ``slow(seconds)`` advances the clock given to :func:`mock_providers` (a
:class:`~gateway.testing.clock.ManualClock`, the one the gateway uses) instead of sleeping; if
``seconds`` is more than the call's own timeout, the clock advances by the timeout and the call
times out, as it would for real. Without a controllable clock no time passes at all (nothing
ever sleeps); only that timeout rule still applies. A gateway built without the test clock
sleeps for real on a retry's backoff or a scripted ``retry_after``: while the mock is active the
real clock warns (:class:`~gateway.testing.RealSleepWarning`, once per block) before it does.

Batches: each mock answers its provider's batch API too, statefully and in its wire format
(OpenAI's file upload, ``/v1/batches`` and result files; Anthropic's Message Batches and
results; Gemini's ``batchGenerateContent``, inline or from an uploaded file, its operation's
get and cancel, and the result file), so ``gw.batches`` runs through the real adapters. Time
is the mock's clock, as for the fake provider's batches: item ``i`` finishes
``FAKE_ITEM_SECONDS * (i + 1)`` after the batch was created (without a controllable clock a
batch has ended at its first poll); a cancel stops the items not finished by then. Each item
is answered as a chat call to the mock would be when it finishes (the model's script, else the
default reply; the same token counts): a scripted fault makes it errored, ``timeout()``
expired. ``mock.openai.batch_script`` (a :class:`~gateway.testing.BatchScript`) errors or
expires chosen items and expires every batch part way; ``mock.openai.batches`` lists the
batches submitted (:class:`~gateway.testing._mock_batches.MockBatch`). Details in
:mod:`gateway.testing._mock_batches`::

    with mock_providers(clock) as mock:
        mock.openai.batch_script.error("q1", "bad prompt").expires_after(3600)
        batch = gw.batches.create(model="openai/gpt-4o-mini", requests=requests)
        clock.advance(30)
        items = list(gw.batches.results(batch.id))

Scope: requests to the providers' default endpoints (or to ``base_urls``) are answered; any
other request through httpx2 fails with respx's "not mocked" error. google-genai sends async
calls through aiohttp when aiohttp is installed, and the adapters' async clients use aiohttp by
default (``transport:``), which respx cannot see: while the mock is active, async clients made
use httpx2 instead, so those calls are intercepted too.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import itertools
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import httpcore2
import httpx
import pytest_httpx2  # noqa: F401  (registers respx's "httpcore2" mocker)
import respx

from gateway._clock import Clock
from gateway.errors import redact
from gateway.providers._transport import httpx_only
from gateway.providers.base import TokenUsage
from gateway.testing._batch_script import BatchScript
from gateway.testing._mock_batches import BATCH_SERVERS, BatchServer, ItemResult, MockBatch
from gateway.testing._mock_script import (
    Disconnect,
    Failure,
    FinishReason,
    Outcome,
    OverloadedMidStream,
    Reply,
    Script,
    ScriptState,
    Slow,
    Timeout,
    ToolCallSpec,
    advance_clock,
    estimate_tokens,
    make_reply,
)
from gateway.testing._mock_wire import DIALECTS, Answer, BrokenBody, Dialect, WireCall
from gateway.testing._real_sleep import warn_on_real_sleep

__all__ = [
    "PROVIDERS",
    "MockBatch",
    "MockCall",
    "MockProviders",
    "ModelMock",
    "ProviderMock",
    "mock_providers",
]

#: The providers a :class:`MockProviders` answers for.
PROVIDERS: tuple[str, ...] = tuple(DIALECTS)

#: Request headers whose values are secrets: never kept in a call record.
_SECRET_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "x-api-key", "x-goog-api-key", "api-key", "cookie"}
)


@dataclass(frozen=True, slots=True)
class MockCall:
    """One request a provider mock received."""

    #: ``openai``, ``anthropic`` or ``gemini``.
    provider: str
    #: The model the request asked for, as the provider saw it (e.g. ``gpt-4o``).
    model: str
    #: Whether the call asked for a stream.
    stream: bool
    #: The JSON body as the provider received it (after the adapter's translation).
    body: dict[str, Any] = field(repr=False)
    #: The request headers, with credentials replaced by ``[REDACTED]``.
    headers: dict[str, str] = field(repr=False)
    url: str = field(repr=False)
    #: What the mock did: ``default``, ``respond``, ``fail 503``, ``timeout``, ...
    outcome: str = "default"


def _redacted_headers(headers: httpx.Headers) -> dict[str, str]:
    return {
        name: "[REDACTED]" if name.lower() in _SECRET_HEADERS else redact(value)
        for name, value in headers.items()
    }


class _MockScript(Script):
    """The mocks' script: a fault without ``times`` lasts for every call while the mock is
    active (an outage; ``times=N`` for a transient fault); ``respond`` and ``slow`` answer
    once unless given ``times`` (None: every call)."""

    def fail(
        self,
        status: int,
        *,
        retry_after: float | None = None,
        times: int | None = None,
        model: str | None = None,
    ) -> Self:
        """Answer with the provider's own error response for this HTTP status (429, 500, 503,
        529, 400, 401, ...), with a ``retry-after`` of ``retry_after`` seconds if given: on
        every call, or on the next ``times``."""
        return super().fail(status, retry_after=retry_after, times=times, model=model)

    def insufficient_quota(self, *, times: int | None = None, model: str | None = None) -> Self:
        """The provider says the account is out of money or quota (its own response shape)."""
        return super().insufficient_quota(times=times, model=model)

    def context_too_long(self, *, times: int | None = None, model: str | None = None) -> Self:
        """The provider refuses the prompt as longer than the model's context window."""
        return super().context_too_long(times=times, model=model)

    def auth_error(self, *, times: int | None = None, model: str | None = None) -> Self:
        """The provider rejects the API key."""
        return super().auth_error(times=times, model=model)

    def timeout(self, *, times: int | None = None, model: str | None = None) -> Self:
        """The call times out (at once: use :meth:`slow` to let the clock run into a timeout)."""
        return super().timeout(times=times, model=model)

    def disconnect(
        self, *, after_chunks: int | None = None, times: int | None = None, model: str | None = None
    ) -> Self:
        """The connection drops before the response; for a stream with ``after_chunks``, after
        that many content chunks (a non-streamed call then fails at once)."""
        return super().disconnect(after_chunks=after_chunks, times=times, model=model)

    def overloaded_mid_stream(
        self, *, after_chunks: int = 3, times: int | None = None, model: str | None = None
    ) -> Self:
        """A stream that breaks with the provider's overload error after ``after_chunks``
        content chunks (0: before any content, so the gateway can still fall back). A
        non-streamed call gets the provider's overload error response."""
        return super().overloaded_mid_stream(after_chunks=after_chunks, times=times, model=model)


class ProviderMock(_MockScript):
    """The script and the call records of one provider (``mock.openai`` and its siblings)."""

    def __init__(self, provider: str, dialect: Dialect) -> None:
        super().__init__(ScriptState())
        #: ``openai``, ``anthropic`` or ``gemini``.
        self.provider = provider
        self._dialect = dialect
        self._calls: list[MockCall] = []
        self._defaults: dict[str | None, Reply] = {}
        self._lock = threading.Lock()
        #: Which items of this provider's batches error or expire, and when a batch expires.
        self.batch_script = BatchScript()
        self._batch_server: BatchServer | None = None

    @property
    def batches(self) -> list[MockBatch]:
        """Every batch this provider was sent, in order."""
        server = self._batch_server
        return list(server.batches.values()) if server is not None else []

    def _push(self, outcome: Outcome, times: int | None, model: str | None = None) -> Self:
        reply = outcome.reply if isinstance(outcome, Slow) else outcome
        if isinstance(reply, Reply) and reply.usage is not None:
            self._dialect.check_usage(reply.usage)
        return super()._push(outcome, times, model)

    def model(self, name: str) -> ModelMock:
        """This provider's script narrowed to one model: ``mock.openai.model("gpt-4o")``."""
        super().model(name)  # validates the name
        return ModelMock(self, name)

    def __getitem__(self, name: str) -> ModelMock:
        return self.model(name)

    @property
    def calls(self) -> list[MockCall]:
        """Every request this provider received, in order."""
        with self._lock:
            return list(self._calls)

    def default(
        self,
        text: str | None = None,
        *,
        tool_calls: Sequence[ToolCallSpec] = (),
        usage: TokenUsage | None = None,
        finish_reason: FinishReason | None = None,
    ) -> Self:
        """Change the reply given when nothing is scripted (for every model of the provider)."""
        self._set_default(None, make_reply(text, tool_calls, usage, finish_reason))
        return self

    def _set_default(self, model: str | None, reply: Reply) -> None:
        if reply.usage is not None:
            self._dialect.check_usage(reply.usage)
        with self._lock:
            self._defaults[model] = reply

    def _default_for(self, model: str) -> Reply | None:
        with self._lock:
            return self._defaults.get(model) or self._defaults.get(None)

    def _record(self, call: MockCall) -> None:
        with self._lock:
            self._calls.append(call)

    def reset(self) -> None:
        """Forget the script, the defaults and the call records."""
        self.clear()
        self.batch_script.clear()
        with self._lock:
            self._calls.clear()
            self._defaults.clear()
        if self._batch_server is not None:
            self._batch_server.forget()

    def __repr__(self) -> str:
        pending, calls = len(self.pending), len(self._calls)
        return f"ProviderMock({self.provider!r}, pending={pending}, calls={calls})"


class ModelMock(_MockScript):
    """One provider's script narrowed to one model (``mock.openai["gpt-4o"]``)."""

    def __init__(self, parent: ProviderMock, model: str) -> None:
        super().__init__(parent._state, model)
        self._parent = parent
        self.provider = parent.provider
        #: The model this script is narrowed to.
        self.model_name = model

    def _push(self, outcome: Outcome, times: int | None, model: str | None = None) -> Self:
        if model is not None and model != self.model_name:
            raise ValueError(f"this script is narrowed to {self.model_name!r}, not {model!r}")
        self._parent._push(outcome, times, self.model_name)
        return self

    def model(self, name: str) -> ModelMock:
        return self._parent.model(name)

    def __getitem__(self, name: str) -> ModelMock:
        return self.model(name)

    @property
    def calls(self) -> list[MockCall]:
        """The requests to this model, in order."""
        return [call for call in self._parent.calls if call.model == self.model_name]

    def default(
        self,
        text: str | None = None,
        *,
        tool_calls: Sequence[ToolCallSpec] = (),
        usage: TokenUsage | None = None,
        finish_reason: FinishReason | None = None,
    ) -> Self:
        """Change the reply this model gives when nothing is scripted."""
        self._parent._set_default(
            self.model_name, make_reply(text, tool_calls, usage, finish_reason)
        )
        return self

    def __repr__(self) -> str:
        return f"ModelMock({self.provider!r}, {self.model_name!r}, pending={len(self.pending)})"


class MockProviders:
    """The three provider mocks and the HTTP interception; use it as a context manager.

    Build it with :func:`mock_providers`.
    """

    def __init__(
        self, clock: Clock | None = None, *, base_urls: Mapping[str, str] | None = None
    ) -> None:
        unknown = set(base_urls or {}) - set(PROVIDERS)
        if unknown:
            raise ValueError(f"base_urls for unknown providers {sorted(unknown)}; use {PROVIDERS}")
        #: The clock ``slow`` advances (the one the gateway under test uses), or None.
        self.clock = clock
        self._base_urls = dict(base_urls or {})
        self.openai = ProviderMock("openai", DIALECTS["openai"])
        self.anthropic = ProviderMock("anthropic", DIALECTS["anthropic"])
        self.gemini = ProviderMock("gemini", DIALECTS["gemini"])
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()
        self._calls: list[MockCall] = []
        self._internal_errors: list[BaseException] = []
        self._stack: contextlib.ExitStack | None = None
        for provider in PROVIDERS:
            mock = self[provider]
            mock._batch_server = BATCH_SERVERS[provider](
                self._base_urls.get(provider),
                clock,
                functools.partial(getattr, mock, "batch_script"),  # read each time: replaceable
                self._answer_batch_item,
            )

    def __getitem__(self, provider: str) -> ProviderMock:
        mocks = {"openai": self.openai, "anthropic": self.anthropic, "gemini": self.gemini}
        if provider not in mocks:
            raise KeyError(f"no mock for provider {provider!r}; there are {PROVIDERS}")
        return mocks[provider]

    @property
    def calls(self) -> list[MockCall]:
        """Every request any provider mock received, in order."""
        with self._lock:
            return list(self._calls)

    def reset(self) -> None:
        """Forget every script, default and call record."""
        for provider in PROVIDERS:
            self[provider].reset()
        with self._lock:
            self._calls.clear()

    # -- interception ---------------------------------------------------------------------------

    def start(self) -> Self:
        """Start intercepting (what ``with`` does)."""
        if self._stack is not None:
            raise RuntimeError("this provider mock is already active")
        stack = contextlib.ExitStack()
        try:
            router = stack.enter_context(
                respx.mock(using="httpcore2", assert_all_called=False, assert_all_mocked=True)
            )
            for provider, dialect in DIALECTS.items():
                pattern = dialect.url_pattern(self._base_urls.get(provider))
                router.route(method="POST", url__regex=pattern.pattern).mock(
                    side_effect=functools.partial(self._handle, provider)
                )
                server = self[provider]._batch_server
                assert server is not None
                for method, batch_pattern in server.patterns():
                    router.route(method=method, url__regex=batch_pattern).mock(
                        side_effect=functools.partial(self._handle_batch, server)
                    )
            stack.enter_context(_genai_without_aiohttp())
            # Async clients made meanwhile use httpx2, which respx intercepts (not aiohttp).
            stack.enter_context(httpx_only())
            stack.enter_context(warn_on_real_sleep())
        except BaseException:
            stack.close()
            raise
        self._stack = stack
        return self

    def stop(self) -> None:
        """Stop intercepting; raises if the mock itself failed while answering a call."""
        stack, self._stack = self._stack, None
        if stack is not None:
            stack.close()
        if self._internal_errors:
            first = self._internal_errors[0]
            self._internal_errors.clear()
            raise RuntimeError(
                "gateway.testing.mock failed while answering a request (the SDK saw a "
                f"connection error): {type(first).__name__}: {first}"
            ) from first

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.stop()
            return
        with contextlib.suppress(RuntimeError):
            self.stop()  # the test's own exception says more

    async def __aenter__(self) -> Self:
        return self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def _handle(self, provider: str, request: httpx.Request) -> httpx.Response:
        try:
            return self._answer_request(provider, request)
        except (httpcore2.TimeoutException, httpcore2.NetworkError, httpcore2.ProtocolError):
            raise  # scripted transport failures
        except BaseException as exc:
            self._internal_errors.append(exc)
            raise

    def _handle_batch(self, server: BatchServer, request: httpx.Request) -> httpx.Response:
        try:
            return server.handle(request)
        except BaseException as exc:
            self._internal_errors.append(exc)
            raise

    def _answer_batch_item(self, provider: str, model: str, body: dict[str, Any]) -> ItemResult:
        """A batch item's end: what a chat call to ``model`` with ``body`` would get now."""
        mock = self[provider]
        dialect = mock._dialect
        call = WireCall(model, False, body)
        outcome = mock._state.next_for(model)
        with self._lock:
            number = next(self._numbers)
        if isinstance(outcome, Slow):  # a batch's time is its own: only the answer counts
            outcome = outcome.reply
        if outcome is None or isinstance(outcome, Reply):
            return ItemResult("succeeded", self._answer(mock, call, outcome, number))
        if isinstance(outcome, Timeout):
            return ItemResult("expired", message="the request timed out (scripted)")
        if isinstance(outcome, Failure):
            response = dialect.error(outcome, model)
        elif isinstance(outcome, OverloadedMidStream):
            response = dialect.overloaded()
        else:  # Disconnect: the provider's own server error
            response = dialect.error(Failure("status", 500), model)
        return ItemResult("errored", status=response.status_code, body=response.json())

    def _answer_request(self, provider: str, request: httpx.Request) -> httpx.Response:
        mock = self[provider]
        dialect = mock._dialect
        call = dialect.parse(request)
        outcome = mock._state.next_for(call.model)
        with self._lock:
            number = next(self._numbers)
        record = MockCall(
            provider=provider,
            model=call.model,
            stream=call.stream,
            body=call.body,
            headers=_redacted_headers(request.headers),
            url=redact(str(request.url)),
            outcome=outcome.describe() if outcome is not None else "default",
        )
        mock._record(record)
        with self._lock:
            self._calls.append(record)

        if isinstance(outcome, Slow):
            self._wait(outcome.seconds, request)
            outcome = outcome.reply
        if outcome is None or isinstance(outcome, Reply):
            return dialect.reply(call, self._answer(mock, call, outcome, number))
        if isinstance(outcome, Failure):
            return dialect.error(outcome, call.model)
        if isinstance(outcome, Timeout):
            raise httpcore2.ReadTimeout("timed out (scripted by gateway.testing.mock)")
        if isinstance(outcome, Disconnect):
            if outcome.after_chunks is None or not call.stream:
                raise httpcore2.RemoteProtocolError(
                    "Server disconnected without sending a response."
                )
            answer = self._answer(mock, call, None, number)
            head, headers = dialect.broken_stream(
                call, answer, outcome.after_chunks, overloaded=False
            )
            reset = httpcore2.ReadError("connection reset by peer (scripted)")
            return httpx.Response(200, stream=BrokenBody(head, reset), headers=headers)
        if isinstance(outcome, OverloadedMidStream):
            if not call.stream:
                return dialect.overloaded()
            answer = self._answer(mock, call, None, number)
            body, headers = dialect.broken_stream(
                call, answer, outcome.after_chunks, overloaded=True
            )
            return httpx.Response(200, content=body, headers=headers)
        raise AssertionError(f"unknown outcome {outcome!r}")  # pragma: no cover

    def _answer(
        self, mock: ProviderMock, call: WireCall, reply: Reply | None, number: int
    ) -> Answer:
        chosen = reply if reply is not None else mock._default_for(call.model)
        text = chosen.text if chosen is not None else None
        tool_calls = chosen.tool_calls if chosen is not None else ()
        dialect = mock._dialect
        if text is None and not tool_calls:
            default = mock._default_for(call.model)
            text = default.text if default is not None else None
        if text is None and not tool_calls:
            last_user = dialect.last_user_text(call.body)
            text = f"[{mock.provider}/{call.model}] You said: {last_user[:200]}"
        usage = chosen.usage if chosen is not None else None
        if usage is None:
            prompt = sum(estimate_tokens(t) for t in dialect.prompt_texts(call.body))
            output = (estimate_tokens(text) if text else 0) + sum(
                estimate_tokens(name) + estimate_tokens(str(args)) for name, args in tool_calls
            )
            usage = TokenUsage(input_tokens=prompt, output_tokens=output)
        finish = chosen.finish_reason if chosen is not None else None
        return Answer(text, tool_calls, usage, finish, number)

    def _wait(self, seconds: float, request: httpx.Request) -> None:
        read_timeout = _read_timeout(request)
        if read_timeout is not None and seconds > read_timeout:
            advance_clock(self.clock, read_timeout)
            raise httpcore2.ReadTimeout(
                f"no response within {read_timeout:g}s (scripted answer after {seconds:g}s)"
            )
        advance_clock(self.clock, seconds)

    def __repr__(self) -> str:
        active = "active" if self._stack is not None else "inactive"
        return f"MockProviders({active}, calls={len(self._calls)})"


def _read_timeout(request: httpx.Request) -> float | None:
    timeout = request.extensions.get("timeout")
    if isinstance(timeout, dict):
        read = timeout.get("read")
        if isinstance(read, int | float) and not isinstance(read, bool):
            return float(read)
    return None


@contextlib.contextmanager
def _genai_without_aiohttp() -> Any:
    """Keep google-genai's async calls on httpx2 (which respx sees) when aiohttp is installed."""
    if importlib.util.find_spec("aiohttp") is None:
        yield
        return
    from google.genai import _api_client

    original = _api_client.has_aiohttp
    _api_client.has_aiohttp = False
    try:
        yield
    finally:
        _api_client.has_aiohttp = original


def mock_providers(
    clock: Clock | None = None, *, base_urls: Mapping[str, str] | None = None
) -> MockProviders:
    """Mock OpenAI, Anthropic and Gemini on the wire; use as ``with mock_providers(clock) as m``.

    ``clock`` is the clock ``slow(...)`` advances: pass the ManualClock the gateway under test
    was built with. ``base_urls`` answers a provider at another address (its ``base_url`` from
    the config), e.g. ``{"openai": "https://proxy.example/v1"}``.
    """
    return MockProviders(clock, base_urls=base_urls)
