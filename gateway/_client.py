"""The drop-in clients: ``Gateway`` (sync) and ``AsyncGateway`` (async).

Both share :class:`_GatewayCore` (config, router, adapters, clock) and the I/O-free
:class:`~gateway.routing.CallPlan`; each writes its own short I/O loop over the plan. The
sync client uses the SDKs' sync clients (no event loop per call); the async client uses their
async clients.
"""

from __future__ import annotations

import functools
import os
import random
import threading
import uuid
from collections.abc import Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, overload

from gateway._attempts import GatewayInfo
from gateway._clock import Clock, SystemClock
from gateway._request import build_request, estimate_prompt_tokens
from gateway._streams import (
    AsyncGatewayStream,
    GatewayStream,
    aread_until_content,
    read_until_content,
)
from gateway.config import GatewayConfig, load_config, parse_config
from gateway.errors import ConfigError, ProviderError
from gateway.events import EventHook
from gateway.health import HealthRegistry
from gateway.routing import CallPlan, ResolvedTarget, Router, Wait, request_for_target
from providers import load_adapter_class
from providers.base import ChatRequest, ProviderAdapter, ProviderResponse, TokenUsage

if TYPE_CHECKING:
    from openai.types.chat import (
        ChatCompletionMessageParam,
        ChatCompletionToolChoiceOptionParam,
        ChatCompletionToolUnionParam,
        completion_create_params,
    )
    from openai.types.chat.chat_completion_stream_options_param import (
        ChatCompletionStreamOptionsParam,
    )

    from gateway.types import GatewayChatCompletion

__all__ = ["AsyncGateway", "Gateway"]

ConfigInput = GatewayConfig | Mapping[str, Any] | str | os.PathLike[str]


def _load(config: ConfigInput | None) -> GatewayConfig:
    if config is None:
        raise ConfigError(
            "no config given",
            fix="Gateway.from_config('gateway.yaml') or Gateway(config={...})",
        )
    if isinstance(config, str | os.PathLike):
        return load_config(Path(config))
    return parse_config(config)


class _GatewayCore:
    """What the sync and async clients share: config, routing, adapters, the clock."""

    def __init__(
        self,
        config: ConfigInput | None,
        clock: Clock | None,
        rng: random.Random | None,
        on_event: EventHook | None,
    ) -> None:
        self.config = _load(config)
        self.router = Router(self.config)
        self.clock: Clock = clock or SystemClock()
        self.rng = rng or random.Random()
        self.on_event = on_event
        self.health = HealthRegistry()
        self._adapters: dict[str, ProviderAdapter] = {}
        self._lock = threading.Lock()

    def adapter(self, provider: str) -> ProviderAdapter:
        """The adapter of a configured provider, created (and its SDK imported) on first use."""
        adapter = self._adapters.get(provider)
        if adapter is not None:
            return adapter
        settings = self.config.providers.get(provider)
        if settings is None:
            raise ConfigError(f"provider '{provider}' is not configured", key="providers")
        settings.check_env()
        with self._lock:
            adapter = self._adapters.get(provider)
            if adapter is None:
                adapter = load_adapter_class(settings.type)(provider, settings)
                self._adapters[provider] = adapter
        return adapter

    def start(self, model: str, kwargs: dict[str, Any]) -> tuple[ChatRequest, CallPlan]:
        """Validate the call and make its plan; raises before any provider is contacted."""
        route = self.router.resolve(model)
        request = build_request(**kwargs)
        plan = CallPlan(
            route,
            request_id=_new_request_id(),
            clock=self.clock,
            rng=self.rng,
            health=self.health,
            timeout=request.timeout,
            estimated_tokens=estimate_prompt_tokens(request) + (request.max_tokens or 0),
            on_event=self.on_event,
        )
        return request, plan

    def cost_of(self, target: ResolvedTarget, usage: TokenUsage) -> Decimal | None:
        """What the call cost; None until a credit account is configured."""
        return None

    def info(self, plan: CallPlan, target: ResolvedTarget, provider_id: str | None) -> GatewayInfo:
        return GatewayInfo(
            provider=target.provider,
            model=target.model,
            route=plan.route.name,
            request_id=plan.request_id,
            provider_request_id=provider_id,
            attempts=tuple(plan.attempts),
        )

    def finish(
        self, plan: CallPlan, target: ResolvedTarget, result: ProviderResponse
    ) -> GatewayChatCompletion:
        from gateway.types import to_gateway_completion

        info = self.info(plan, target, result.completion.id)
        cost = self.cost_of(target, result.usage)
        return to_gateway_completion(result.completion, info, cost)


def _new_request_id() -> str:
    return f"gw-{uuid.uuid4().hex}"


_CREATE_DOC = """Create a chat completion, exactly like ``OpenAI().chat.completions.create``.

``model`` is a route name from the config or a direct ``provider/model``. The other
arguments mean what they mean in the OpenAI SDK (``max_tokens`` and ``max_completion_tokens``
are the same budget; ``n`` must be 1). The gateway adds ``account`` (which credit account
pays) and ``tags`` (labels for usage reports).

Returns a :class:`~gateway.types.GatewayChatCompletion` (an OpenAI ``ChatCompletion`` with
``.gateway`` and ``usage.cost``), or with ``stream=True`` a stream of ``ChatCompletionChunk``.
Raises a :class:`~gateway.errors.GatewayError`.
"""


class Completions:
    """``gw.chat.completions``."""

    def __init__(self, core: _GatewayCore) -> None:
        self._core = core

    @overload
    def create(
        self,
        *,
        messages: Iterable[ChatCompletionMessageParam],
        model: str,
        stream: Literal[False] = False,
        max_tokens: int | None = None,
        max_completion_tokens: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        stop: str | list[str] | None = None,
        tools: Iterable[ChatCompletionToolUnionParam] | None = None,
        tool_choice: ChatCompletionToolChoiceOptionParam | None = None,
        response_format: completion_create_params.ResponseFormat | None = None,
        stream_options: ChatCompletionStreamOptionsParam | None = None,
        n: int | None = None,
        user: str | None = None,
        metadata: dict[str, str] | None = None,
        timeout: float | None = None,
        extra_body: dict[str, Any] | None = None,
        account: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> GatewayChatCompletion: ...

    @overload
    def create(
        self,
        *,
        messages: Iterable[ChatCompletionMessageParam],
        model: str,
        stream: Literal[True],
        max_tokens: int | None = None,
        max_completion_tokens: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        stop: str | list[str] | None = None,
        tools: Iterable[ChatCompletionToolUnionParam] | None = None,
        tool_choice: ChatCompletionToolChoiceOptionParam | None = None,
        response_format: completion_create_params.ResponseFormat | None = None,
        stream_options: ChatCompletionStreamOptionsParam | None = None,
        n: int | None = None,
        user: str | None = None,
        metadata: dict[str, str] | None = None,
        timeout: float | None = None,
        extra_body: dict[str, Any] | None = None,
        account: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> GatewayStream: ...

    def create(
        self,
        *,
        messages: Iterable[ChatCompletionMessageParam],
        model: str,
        stream: bool = False,
        account: str | None = None,
        tags: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> GatewayChatCompletion | GatewayStream:
        core = self._core
        request, plan = core.start(model, {"messages": messages, "stream": stream, **kwargs})
        clock = core.clock
        while True:
            action = plan.next_action()
            if isinstance(action, Wait):
                clock.sleep(action.seconds)
                continue
            target = action.target
            adapter = core.adapter(target.provider)
            attempt_request = request_for_target(request, target.config, action.timeout)
            plan.started(action)
            started = clock.monotonic()
            try:
                if stream:
                    native = adapter.stream(target.model, attempt_request)
                    head = read_until_content(native)
                else:
                    result = adapter.complete(target.model, attempt_request)
            except ProviderError as error:
                plan.failed(action, error, clock.monotonic() - started)
                continue
            plan.succeeded(action, clock.monotonic() - started)
            if stream:
                return GatewayStream(
                    native,
                    head,
                    core.info(plan, target, head[0].id if head else None),
                    request.include_usage,
                    functools.partial(core.cost_of, target),
                )
            return core.finish(plan, target, result)

    create.__doc__ = _CREATE_DOC


class AsyncCompletions:
    """``agw.chat.completions``."""

    def __init__(self, core: _GatewayCore) -> None:
        self._core = core

    @overload
    async def create(
        self,
        *,
        messages: Iterable[ChatCompletionMessageParam],
        model: str,
        stream: Literal[False] = False,
        max_tokens: int | None = None,
        max_completion_tokens: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        stop: str | list[str] | None = None,
        tools: Iterable[ChatCompletionToolUnionParam] | None = None,
        tool_choice: ChatCompletionToolChoiceOptionParam | None = None,
        response_format: completion_create_params.ResponseFormat | None = None,
        stream_options: ChatCompletionStreamOptionsParam | None = None,
        n: int | None = None,
        user: str | None = None,
        metadata: dict[str, str] | None = None,
        timeout: float | None = None,
        extra_body: dict[str, Any] | None = None,
        account: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> GatewayChatCompletion: ...

    @overload
    async def create(
        self,
        *,
        messages: Iterable[ChatCompletionMessageParam],
        model: str,
        stream: Literal[True],
        max_tokens: int | None = None,
        max_completion_tokens: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        stop: str | list[str] | None = None,
        tools: Iterable[ChatCompletionToolUnionParam] | None = None,
        tool_choice: ChatCompletionToolChoiceOptionParam | None = None,
        response_format: completion_create_params.ResponseFormat | None = None,
        stream_options: ChatCompletionStreamOptionsParam | None = None,
        n: int | None = None,
        user: str | None = None,
        metadata: dict[str, str] | None = None,
        timeout: float | None = None,
        extra_body: dict[str, Any] | None = None,
        account: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> AsyncGatewayStream: ...

    async def create(
        self,
        *,
        messages: Iterable[ChatCompletionMessageParam],
        model: str,
        stream: bool = False,
        account: str | None = None,
        tags: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> GatewayChatCompletion | AsyncGatewayStream:
        core = self._core
        request, plan = core.start(model, {"messages": messages, "stream": stream, **kwargs})
        clock = core.clock
        while True:
            action = plan.next_action()
            if isinstance(action, Wait):
                await clock.asleep(action.seconds)
                continue
            target = action.target
            adapter = core.adapter(target.provider)
            attempt_request = request_for_target(request, target.config, action.timeout)
            plan.started(action)
            started = clock.monotonic()
            try:
                if stream:
                    native = await adapter.astream(target.model, attempt_request)
                    head = await aread_until_content(native)
                else:
                    result = await adapter.acomplete(target.model, attempt_request)
            except ProviderError as error:
                plan.failed(action, error, clock.monotonic() - started)
                continue
            plan.succeeded(action, clock.monotonic() - started)
            if stream:
                return AsyncGatewayStream(
                    native,
                    head,
                    core.info(plan, target, head[0].id if head else None),
                    request.include_usage,
                    functools.partial(core.cost_of, target),
                )
            return core.finish(plan, target, result)

    create.__doc__ = _CREATE_DOC


class Chat:
    """``gw.chat``."""

    def __init__(self, core: _GatewayCore) -> None:
        self.completions = Completions(core)


class AsyncChat:
    """``agw.chat``."""

    def __init__(self, core: _GatewayCore) -> None:
        self.completions = AsyncCompletions(core)


class _BaseGateway:
    def __init__(
        self,
        config: ConfigInput | None = None,
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        on_event: EventHook | None = None,
    ) -> None:
        self._core = _GatewayCore(config, clock, rng, on_event)

    @property
    def config(self) -> GatewayConfig:
        """The validated config this gateway runs on."""
        return self._core.config

    def adapter(self, provider: str) -> ProviderAdapter:
        """The adapter of a configured provider (e.g. to script the fake provider)."""
        return self._core.adapter(provider)

    def __repr__(self) -> str:
        routes = ", ".join(self._core.config.routes) or "none"
        return f"{type(self).__name__}(source={self._core.config.source!r}, routes=[{routes}])"


class Gateway(_BaseGateway):
    """The sync client. ``Gateway.from_config("gateway.yaml")`` or ``Gateway(config={...})``.

    ``config`` may be a :class:`~gateway.config.GatewayConfig`, a dict in the YAML's shape,
    or a path to a YAML file. ``clock`` and ``rng`` replace the real clock and random source
    (retry jitter, weighted choice, exploration), for tests. ``on_event`` receives a
    :class:`~gateway.events.GatewayEvent` for every attempt, retry, fallback and breaker change.
    """

    def __init__(
        self,
        config: ConfigInput | None = None,
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        on_event: EventHook | None = None,
    ) -> None:
        super().__init__(config, clock=clock, rng=rng, on_event=on_event)
        self.chat = Chat(self._core)

    @classmethod
    def from_config(
        cls,
        path: str | os.PathLike[str],
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        on_event: EventHook | None = None,
    ) -> Gateway:
        """Load a YAML routing config."""
        return cls(load_config(Path(path)), clock=clock, rng=rng, on_event=on_event)

    def close(self) -> None:
        """Close every SDK client this gateway opened."""
        for adapter in list(self._core._adapters.values()):
            adapter.close()

    def __enter__(self) -> Gateway:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncGateway(_BaseGateway):
    """The async client: the same surface as :class:`Gateway`, with ``await``."""

    def __init__(
        self,
        config: ConfigInput | None = None,
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        on_event: EventHook | None = None,
    ) -> None:
        super().__init__(config, clock=clock, rng=rng, on_event=on_event)
        self.chat = AsyncChat(self._core)

    @classmethod
    def from_config(
        cls, path: str | os.PathLike[str], *, clock: Clock | None = None
    ) -> AsyncGateway:
        """Load a YAML routing config."""
        return cls(load_config(Path(path)), clock=clock)

    async def close(self) -> None:
        """Close every async SDK client this gateway opened."""
        for adapter in list(self._core._adapters.values()):
            await adapter.aclose()

    async def __aenter__(self) -> AsyncGateway:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
