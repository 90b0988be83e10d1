"""The drop-in clients: ``Gateway`` (sync) and ``AsyncGateway`` (async).

Both share :class:`_GatewayCore` (config, router, adapters, clock) and the I/O-free
:class:`~gateway.routing.CallPlan`; each writes its own short I/O loop over the plan. The
sync client uses the SDKs' sync clients (no event loop per call); the async client uses their
async clients.
"""

from __future__ import annotations

import copy
import os
import random
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self, TypedDict, Unpack, overload

from gateway._attempts import GatewayInfo
from gateway._billing import AttemptBill, Billing
from gateway._clock import Clock, SystemClock
from gateway._compat import (
    IN_PROCESS_API_KEY,
    AsyncCompletionsWithRawResponse,
    AsyncModels,
    ClientOptions,
    CompletionsWithRawResponse,
    Models,
)
from gateway._openai_errors import IN_PROCESS_BASE_URL, as_openai_error
from gateway._request import build_request, estimate_prompt_tokens
from gateway._streams import (
    AsyncGatewayStream,
    GatewayStream,
    aread_until_content,
    read_until_content,
)
from gateway.chaos import ChaosMonkey
from gateway.config import GatewayConfig, load_config, parse_config
from gateway.errors import ConfigError, GatewayError, InvalidRequest, ProviderError
from gateway.events import EventHook
from gateway.health import HealthRegistry
from gateway.providers import load_adapter_class
from gateway.providers.base import ChatRequest, ProviderAdapter, ProviderResponse
from gateway.routing import CallPlan, ResolvedTarget, Router, Wait, request_for_target
from gateway.telemetry import NULL_TRACE, CallTrace, telemetry_for

if TYPE_CHECKING:
    import httpx2
    import openai
    from openai.types.chat import (
        ChatCompletionMessageParam,
        ChatCompletionToolChoiceOptionParam,
        ChatCompletionToolUnionParam,
        completion_create_params,
    )
    from openai.types.chat.chat_completion_stream_options_param import (
        ChatCompletionStreamOptionsParam,
    )

    from gateway._batches import AsyncBatches, Batches
    from gateway._embeddings import AsyncEmbeddings, Embeddings
    from gateway._images import AsyncImages, Images
    from gateway._parse import GatewayParsedChatCompletion
    from gateway.credits.account import CreditAccount
    from gateway.credits.async_account import AsyncCreditAccount
    from gateway.credits.payment import PaymentMethod
    from gateway.keys import ApiKey, AsyncKeys, Keys
    from gateway.types import GatewayChatCompletion

__all__ = ["AsyncGateway", "Gateway"]

ConfigInput = GatewayConfig | Mapping[str, Any] | str | os.PathLike[str]


def _load(config: ConfigInput | None) -> GatewayConfig:
    if config is None:
        raise ConfigError(
            "no config given",
            fix="Gateway.from_config('gateway.yaml') or Gateway(config={...})",
        )
    if isinstance(config, str) and "\n" in config:
        return parse_config(config, source="<yaml text>")  # YAML text: a path has no newline
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
        payment_method: PaymentMethod | None,
    ) -> None:
        self.config = _load(config)
        self.router = Router(self.config)
        self.clock: Clock = clock or SystemClock()
        self.rng = rng or random.Random()
        self.on_event = on_event
        self.health = HealthRegistry()
        self.chaos = ChaosMonkey.from_config(self.config.chaos)
        self.billing = Billing(self.config, self.clock, payment_method)
        self.telemetry = telemetry_for(self.config, self.clock)  # does nothing unless asked
        self._adapters: dict[str, ProviderAdapter] = {}
        self._lock = threading.Lock()
        self.drop_hints = self.config.untranslatable_hints == "drop"
        self._keys: Keys | None = None

    def keys(self) -> Keys:
        """The API keys of the credit store (made on first use)."""
        if self._keys is None:
            service = self.billing.service
            if service is None:
                raise ConfigError(
                    "API keys are kept in the credit store, and this gateway has none",
                    file=self.config.source,
                    key="credits",
                    fix="add a credits: section (e.g. credits: {store: sqlite:///credits.db})",
                )
            from gateway.keys import Keys

            with self._lock:
                if self._keys is None:
                    self._keys = Keys(service, clock=self.clock, config=self.config)
        return self._keys

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
                if self.config.telemetry.opentelemetry and hasattr(adapter, "sdk_spans"):
                    adapter.sdk_spans = False  # the gateway's spans cover its calls
                self._adapters[provider] = adapter
        return adapter

    def start(self, model: str, messages: Any, stream: bool, kwargs: CreateArgs) -> _Call:
        """Validate the call and make its plan; raises before any provider is contacted."""
        route = self.router.resolve(model)
        args: dict[str, Any] = dict(kwargs)
        account: str | None = args.pop("account", None)
        tags: Mapping[str, str] | None = args.pop("tags", None)
        api_key: ApiKey | None = args.pop("api_key", None)
        request = build_request(messages=messages, stream=stream, **args)
        if self.drop_hints:
            request.drop_hints = True
        if api_key is not None:
            account = self.key_account(api_key, account, model)
        account, tags = self.billing.check_call(account, tags)
        input_tokens = estimate_prompt_tokens(request)
        billing = self.billing

        def price(target: ResolvedTarget) -> Decimal | None:
            return billing.estimate(target, input_tokens, request.max_tokens)

        plan = CallPlan(
            route,
            request_id=_new_request_id(),
            clock=self.clock,
            rng=self.rng,
            health=self.health,
            timeout=request.timeout,
            estimated_tokens=input_tokens + (request.max_tokens or 0),
            cost_of=price,
            on_event=self.on_event,
        )
        trace = self.telemetry.start(model, request, plan, account)
        return _Call(request, plan, input_tokens, account, tags, api_key, trace)

    def key_account(self, api_key: ApiKey, account: str | None, model: str) -> str:
        """The account a call made with ``api_key`` is paid from (the key's), after the
        checks that need no store: a valid key, allowed on ``model``."""
        from gateway.errors import InvalidApiKey
        from gateway.keys import ApiKey

        if not isinstance(api_key, ApiKey):
            raise InvalidRequest(
                f"api_key must be an ApiKey (from gw.keys.authenticate), not "
                f"{type(api_key).__name__}",
                provider="gateway",
            )
        keys = self.keys()
        if api_key.revoked or api_key.expired(self.clock.now()):
            state = "revoked" if api_key.revoked else "expired"
            raise InvalidApiKey(
                f"API key {api_key.id} ({api_key.prefix}...) is {state}",
                reason=state,
                key_id=api_key.id,
            )
        if account is not None and account != api_key.account:
            raise InvalidRequest(
                f"account={account!r} was given, but API key {api_key.id} pays from account "
                f"'{api_key.account}'; leave account out",
                provider="gateway",
            )
        keys.check_route(api_key, model)
        return api_key.account

    def count_key_call(self, call: _Call) -> None:
        """Count the call against its key's rpm (KeyRateLimited when it is used up)."""
        if call.api_key is not None and call.api_key.rpm is not None:
            self.keys().count_call(call.api_key)

    async def acount_key_call(self, call: _Call) -> None:
        if call.api_key is not None and call.api_key.rpm is not None:
            from gateway.keys import AsyncKeys

            await AsyncKeys(self.keys()).count_call(call.api_key)

    def bill(self, call: _Call, target: ResolvedTarget, request: ChatRequest) -> AttemptBill:
        """Hold this try's worst case on the credit account (before the provider is called)."""
        return self.billing.bill(
            target,
            request_id=call.plan.request_id,
            route=call.plan.route.name,
            input_tokens=call.input_tokens,
            max_tokens=request.max_tokens,
            account=call.account,
            tags=call.tags,
            attempt=len(call.plan.attempts) + 1,
            api_key=call.api_key,
        )

    async def abill(self, call: _Call, target: ResolvedTarget, request: ChatRequest) -> AttemptBill:
        return await self.billing.abill(
            target,
            request_id=call.plan.request_id,
            route=call.plan.route.name,
            input_tokens=call.input_tokens,
            max_tokens=request.max_tokens,
            account=call.account,
            tags=call.tags,
            attempt=len(call.plan.attempts) + 1,
            api_key=call.api_key,
        )

    def inject_fault(self, target: ResolvedTarget) -> None:
        """Chaos (staging fault injection): raise the configured error instead of calling."""
        if self.chaos is not None:
            fault = self.chaos.fault_for(target.label, self.rng)
            if fault is not None:
                raise fault

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
        self, plan: CallPlan, target: ResolvedTarget, result: ProviderResponse, cost: Decimal | None
    ) -> GatewayChatCompletion:
        from gateway.types import data_to_gateway_completion, to_gateway_completion

        data = result.data
        if data is not None:
            info = self.info(plan, target, data["id"])
            return data_to_gateway_completion(data, info, cost)
        info = self.info(plan, target, result.completion.id)
        return to_gateway_completion(result.completion, info, cost)

    def close(self) -> None:
        self.billing.close()


@dataclass(slots=True)
class _Call:
    """One call in flight: its request, its plan, and who pays."""

    request: ChatRequest
    plan: CallPlan
    input_tokens: int
    account: str | None
    tags: Mapping[str, str] | None
    #: The gateway API key the call is made with (``gateway serve``), if any.
    api_key: ApiKey | None = None
    #: The call's telemetry (gateway.telemetry); records nothing unless configured.
    trace: CallTrace = NULL_TRACE


#: Draws request ids: seeded from os.urandom, reseeded in a forked child (which would
#: otherwise repeat its parent's ids); private, so ``random.seed()`` elsewhere cannot repeat
#: ids across processes sharing a credit ledger.
_request_ids = random.Random()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_request_ids.seed)


def _new_request_id() -> str:
    # 128 random bits as 32 hex digits, like uuid4().hex but with no UUID object and no
    # getrandom system call per call (~3 µs together).
    return f"gw-{_request_ids.getrandbits(128):032x}"


class CreateArgs(TypedDict, total=False):
    """The optional arguments of ``chat.completions.create``: OpenAI's, plus the gateway's
    ``account`` and ``tags``."""

    max_tokens: int | None
    max_completion_tokens: int | None
    temperature: float | None
    top_p: float | None
    stop: str | list[str] | None
    tools: Iterable[ChatCompletionToolUnionParam] | None
    tool_choice: ChatCompletionToolChoiceOptionParam | None
    response_format: completion_create_params.ResponseFormat | None
    stream_options: ChatCompletionStreamOptionsParam | None
    n: int | None
    user: str | None
    metadata: dict[str, str] | None
    timeout: float | None
    extra_body: dict[str, Any] | None
    extra_headers: dict[str, str] | None
    extra_query: dict[str, Any] | None
    seed: int | None
    frequency_penalty: float | None
    presence_penalty: float | None
    logprobs: bool | None
    top_logprobs: int | None
    parallel_tool_calls: bool | None
    reasoning_effort: str | None
    # Sent to OpenAI only (see the README's translation table).
    audio: Any
    function_call: Any
    functions: Any
    logit_bias: dict[str, int] | None
    modalities: list[str] | None
    moderation: Any
    prediction: Any
    prompt_cache_key: str | None
    prompt_cache_options: Any
    prompt_cache_retention: str | None
    safety_identifier: str | None
    service_tier: str | None
    store: bool | None
    verbosity: str | None
    web_search_options: Any
    #: Which credit account pays (default: the default account).
    account: str | None
    #: Labels for usage reports, e.g. ``{"feature": "search"}``.
    tags: Mapping[str, str] | None
    #: The gateway API key the call is made with (from ``gw.keys.authenticate``): the call
    #: is paid by the key's account and held to the key's routes, rpm and spend limits.
    api_key: ApiKey | None


_CREATE_DOC = """Create a chat completion, exactly like ``OpenAI().chat.completions.create``.

``model`` is a route name from the config or a direct ``provider/model``. The other
arguments mean what they mean in the OpenAI SDK (``max_tokens`` and ``max_completion_tokens``
are the same budget; ``n`` must be 1). The gateway adds ``account`` (which credit account
pays), ``tags`` (labels for usage reports) and ``api_key`` (a gateway API key the call is made
with: its account pays, and its allow-list, rpm and spend limits apply).

Returns a :class:`~gateway.types.GatewayChatCompletion` (an OpenAI ``ChatCompletion`` with
``.gateway`` and ``usage.cost``), or with ``stream=True`` a stream of ``ChatCompletionChunk``.
Raises a :class:`~gateway.errors.GatewayError`.
"""


class Completions:
    """``gw.chat.completions``."""

    def __init__(self, core: _GatewayCore, options: ClientOptions | None = None) -> None:
        self._core = core
        self._options = options

    @property
    def with_raw_response(self) -> CompletionsWithRawResponse:
        """``create`` and ``parse`` returning a raw response: ``.parse()`` is the result,
        ``.headers`` the headers an OpenAI-compatible answer carries."""
        return CompletionsWithRawResponse(self.create, self.parse)

    def parse(
        self, *, messages: Iterable[ChatCompletionMessageParam], model: str, **kwargs: Any
    ) -> GatewayParsedChatCompletion[Any]:
        """Structured output, like ``OpenAI().chat.completions.parse``: ``response_format``
        may be a pydantic model (sent as its strict JSON schema), ``tools`` strict function
        tools; ``choices[0].message.parsed`` is the model instance."""
        from gateway._parse import parse_arguments, parsed_completion

        response_format, tools, arguments = parse_arguments(kwargs)
        completion = self.create(messages=messages, model=model, **arguments)
        return parsed_completion(completion, response_format, tools)

    @overload
    def create(
        self,
        *,
        messages: Iterable[ChatCompletionMessageParam],
        model: str,
        stream: Literal[False] = False,
        **kwargs: Unpack[CreateArgs],
    ) -> GatewayChatCompletion: ...

    @overload
    def create(
        self,
        *,
        messages: Iterable[ChatCompletionMessageParam],
        model: str,
        stream: Literal[True],
        **kwargs: Unpack[CreateArgs],
    ) -> GatewayStream: ...

    def create(
        self,
        *,
        messages: Iterable[ChatCompletionMessageParam],
        model: str,
        stream: bool = False,
        **kwargs: Unpack[CreateArgs],
    ) -> GatewayChatCompletion | GatewayStream:
        if self._options is not None:
            kwargs = self._options.apply(kwargs)
        try:
            call = self._core.start(model, messages, stream, kwargs)
        except GatewayError as error:
            as_openai_error(error)  # also the OpenAI SDK's exception class, when it is loaded
            raise
        try:
            return self._run(call, stream)
        except BaseException as error:
            call.trace.failed(error)
            if isinstance(error, GatewayError):
                as_openai_error(error, request_id=call.plan.request_id)
            raise

    def _run(self, call: _Call, stream: bool) -> GatewayChatCompletion | GatewayStream:
        core = self._core
        if call.api_key is not None:
            core.count_key_call(call)
        request, plan, clock, trace = call.request, call.plan, core.clock, call.trace
        while True:
            action = plan.next_action()
            if isinstance(action, Wait):
                clock.sleep(action.seconds)
                continue
            target = action.target
            adapter = core.adapter(target.provider)
            attempt_request = request_for_target(request, target.config, action.timeout)
            bill = core.bill(call, target, attempt_request)
            plan.started(action)
            trace.attempt(action)
            started = clock.monotonic()
            try:
                core.inject_fault(target)
                if stream:
                    native = adapter.stream(target.model, attempt_request)
                    head = read_until_content(native)
                else:
                    result = adapter.complete(target.model, attempt_request)
            except ProviderError as error:
                bill.release()
                plan.failed(action, error, clock.monotonic() - started)
                trace.attempt_failed(error)
                continue
            except BaseException:
                bill.release()
                raise
            plan.succeeded(action, clock.monotonic() - started)
            if stream:
                info = core.info(plan, target, head[0].id if head else None)
                return GatewayStream(native, head, info, request.include_usage, bill, trace)
            cost = bill.settle(result.usage, attempts=len(plan.attempts))
            response = core.finish(plan, target, result, cost)
            trace.answered(response, result.usage, cost)
            return response

    create.__doc__ = _CREATE_DOC


class AsyncCompletions:
    """``agw.chat.completions``."""

    def __init__(self, core: _GatewayCore, options: ClientOptions | None = None) -> None:
        self._core = core
        self._options = options

    @property
    def with_raw_response(self) -> AsyncCompletionsWithRawResponse:
        """Awaitable ``create`` and ``parse`` returning a raw response (see
        :attr:`Completions.with_raw_response`)."""
        return AsyncCompletionsWithRawResponse(self.create, self.parse)

    async def parse(
        self, *, messages: Iterable[ChatCompletionMessageParam], model: str, **kwargs: Any
    ) -> GatewayParsedChatCompletion[Any]:
        """Structured output (see :meth:`Completions.parse`)."""
        from gateway._parse import parse_arguments, parsed_completion

        response_format, tools, arguments = parse_arguments(kwargs)
        completion = await self.create(messages=messages, model=model, **arguments)
        return parsed_completion(completion, response_format, tools)

    @overload
    async def create(
        self,
        *,
        messages: Iterable[ChatCompletionMessageParam],
        model: str,
        stream: Literal[False] = False,
        **kwargs: Unpack[CreateArgs],
    ) -> GatewayChatCompletion: ...

    @overload
    async def create(
        self,
        *,
        messages: Iterable[ChatCompletionMessageParam],
        model: str,
        stream: Literal[True],
        **kwargs: Unpack[CreateArgs],
    ) -> AsyncGatewayStream: ...

    async def create(
        self,
        *,
        messages: Iterable[ChatCompletionMessageParam],
        model: str,
        stream: bool = False,
        **kwargs: Unpack[CreateArgs],
    ) -> GatewayChatCompletion | AsyncGatewayStream:
        if self._options is not None:
            kwargs = self._options.apply(kwargs)
        try:
            call = self._core.start(model, messages, stream, kwargs)
        except GatewayError as error:
            as_openai_error(error)  # also the OpenAI SDK's exception class, when it is loaded
            raise
        try:
            return await self._run(call, stream)
        except BaseException as error:
            call.trace.failed(error)
            if isinstance(error, GatewayError):
                as_openai_error(error, request_id=call.plan.request_id)
            raise

    async def _run(self, call: _Call, stream: bool) -> GatewayChatCompletion | AsyncGatewayStream:
        core = self._core
        if call.api_key is not None:
            await core.acount_key_call(call)
        request, plan, clock, trace = call.request, call.plan, core.clock, call.trace
        while True:
            action = plan.next_action()
            if isinstance(action, Wait):
                await clock.asleep(action.seconds)
                continue
            target = action.target
            adapter = core.adapter(target.provider)
            attempt_request = request_for_target(request, target.config, action.timeout)
            bill = await core.abill(call, target, attempt_request)
            plan.started(action)
            trace.attempt(action)
            started = clock.monotonic()
            try:
                core.inject_fault(target)
                if stream:
                    native = await adapter.astream(target.model, attempt_request)
                    head = await aread_until_content(native)
                else:
                    result = await adapter.acomplete(target.model, attempt_request)
            except ProviderError as error:
                await bill.arelease()
                plan.failed(action, error, clock.monotonic() - started)
                trace.attempt_failed(error)
                continue
            except BaseException:
                await bill.arelease()
                raise
            plan.succeeded(action, clock.monotonic() - started)
            if stream:
                info = core.info(plan, target, head[0].id if head else None)
                return AsyncGatewayStream(native, head, info, request.include_usage, bill, trace)
            cost = await bill.asettle(result.usage, attempts=len(plan.attempts))
            response = core.finish(plan, target, result, cost)
            trace.answered(response, result.usage, cost)
            return response

    create.__doc__ = _CREATE_DOC


class Chat:
    """``gw.chat``."""

    def __init__(self, core: _GatewayCore, options: ClientOptions | None = None) -> None:
        self.completions = Completions(core, options)


class AsyncChat:
    """``agw.chat``."""

    def __init__(self, core: _GatewayCore, options: ClientOptions | None = None) -> None:
        self.completions = AsyncCompletions(core, options)


class _BaseGateway:
    """What both clients share. See :class:`Gateway` for the arguments."""

    chat: Chat | AsyncChat
    _chat_class: type[Chat] | type[AsyncChat]

    def __init__(
        self,
        config: ConfigInput | None = None,
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        on_event: EventHook | None = None,
        payment_method: PaymentMethod | None = None,
    ) -> None:
        self._core = _GatewayCore(config, clock, rng, on_event, payment_method)
        self._options: ClientOptions | None = None
        self.chat = self._chat_class(self._core)

    @classmethod
    def from_config(
        cls,
        path: str | os.PathLike[str],
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        on_event: EventHook | None = None,
        payment_method: PaymentMethod | None = None,
    ) -> Self:
        """Load a YAML routing config."""
        return cls(
            load_config(Path(path)),
            clock=clock,
            rng=rng,
            on_event=on_event,
            payment_method=payment_method,
        )

    @property
    def config(self) -> GatewayConfig:
        """The validated config this gateway runs on."""
        return self._core.config

    def adapter(self, provider: str) -> ProviderAdapter:
        """The adapter of a configured provider (e.g. to script the fake provider)."""
        return self._core.adapter(provider)

    # -- what frameworks read on an OpenAI client ---------------------------------------------

    #: Never a provider's key (those stay in the config): a placeholder, as the gateway needs
    #: none from its caller.
    api_key = IN_PROCESS_API_KEY
    #: The SDK's own retries: none (each route's ``retry:`` decides).
    max_retries = 0
    #: pydantic-ai hands ``client._client`` back to ``with_options(http_client=...)``.
    _client = None

    @property
    def base_url(self) -> httpx2.URL:
        """A URL that names no server (``https://gateway.invalid/v1/``): calls never leave
        the process. Frameworks read it to tell OpenAI's own API from others."""
        import httpx2

        return httpx2.URL(IN_PROCESS_BASE_URL)

    @property
    def timeout(self) -> Any:
        """The default ``timeout`` of calls (``with_options(timeout=...)``), or None."""
        return None if self._options is None else self._options.timeout

    def with_options(self, **options: Any) -> Self:
        """A client on the same gateway whose calls default to these options, like the
        OpenAI SDK's ``with_options``: ``timeout`` (seconds or a ``Timeout``),
        ``default_headers`` / ``set_default_headers`` (sent as ``extra_headers``),
        ``default_query`` / ``set_default_query``. ``max_retries`` and ``http_client`` are
        accepted and left aside: the route's ``retry:`` decides, and there is no HTTP client."""
        current = self._options or ClientOptions()
        clone = copy.copy(self)
        clone._options = current.merged(**options)
        clone.chat = self._chat_class(self._core, clone._options)
        return clone

    copy = with_options

    def __repr__(self) -> str:
        routes = ", ".join(self._core.config.routes) or "none"
        return f"{type(self).__name__}(source={self._core.config.source!r}, routes=[{routes}])"


class Gateway(_BaseGateway):
    """The sync client. ``Gateway.from_config("gateway.yaml")`` or ``Gateway(config={...})``.

    ``config`` may be a :class:`~gateway.config.GatewayConfig`, a dict in the YAML's shape,
    a path to a YAML file, or YAML text (a string with a newline in it). ``clock`` and ``rng``
    replace the real clock and random source (retry jitter, weighted choice, exploration, holds
    and expiry), for tests. ``on_event`` receives a :class:`~gateway.events.GatewayEvent` for
    every attempt, retry, fallback and breaker change. ``payment_method`` pays for purchases
    and auto-recharges (:class:`~gateway.credits.payment.PaymentMethod`).
    """

    chat: Chat
    _chat_class = Chat

    @property
    def models(self) -> Models:
        """``models.list()``: the config's routes and targets as OpenAI models."""
        return Models(self._core.config)

    def openai_client(self, **options: Any) -> openai.OpenAI:
        """A genuine ``openai.OpenAI`` client served by this gateway in-process: its HTTP
        transport hands each request to :attr:`chat` and returns the answer as the HTTP
        response, so every SDK helper (``parse``, ``stream``, raw responses) works, and
        errors arrive as the SDK's exceptions with OpenAI's status codes (and are also the
        gateway's errors). ``options`` go to ``openai.OpenAI`` (``max_retries`` is 0 unless
        given: the gateway retries)."""
        from gateway._openai_transport import openai_client

        return openai_client(self, **options)

    @property
    def embeddings(self) -> Embeddings:
        """``gw.embeddings.create(model=..., input=...)``: vectors, held and billed like chat."""
        from gateway._embeddings import Embeddings

        return Embeddings(self._core)

    @property
    def images(self) -> Images:
        """``gw.images.generate(model=..., prompt=...)``: images, held and billed like chat."""
        from gateway._images import Images

        return Images(self._core)

    @property
    def batches(self) -> Batches:
        """``gw.batches.create(model=..., requests=[...])``: a provider batch at the batch rate."""
        from gateway._batches import Batches

        return Batches(self._core)

    @property
    def credits(self) -> CreditAccount:
        """The default credit account: ``gw.credits.balance()``, ``.purchase(...)``,
        ``.usage(...)``; ``gw.credits.account("customer-42")`` for a named one. Raises
        ConfigError when the config has no ``credits:`` section."""
        return self._core.billing.account()

    @property
    def keys(self) -> Keys:
        """The gateway's API keys (kept in the credit store): ``gw.keys.create(account=...,
        name=...)``, ``.list()``, ``.revoke(id)``, ``.authenticate(key)``. Raises
        ConfigError when the config has no ``credits:`` section."""
        return self._core.keys()

    def close(self) -> None:
        """Close every SDK client this gateway opened, and the credit store."""
        for adapter in list(self._core._adapters.values()):
            adapter.close()
        self._core.close()

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
    """The async client: the same surface as :class:`Gateway`, with ``await``. The credit
    store is reached from a worker thread, so the event loop never blocks on it."""

    chat: AsyncChat
    _chat_class = AsyncChat

    @property
    def models(self) -> AsyncModels:
        """``await models.list()``: the config's routes and targets as OpenAI models."""
        return AsyncModels(self._core.config)

    def openai_client(self, **options: Any) -> openai.AsyncOpenAI:
        """A genuine ``openai.AsyncOpenAI`` client served by this gateway in-process (see
        :meth:`Gateway.openai_client`)."""
        from gateway._openai_transport import async_openai_client

        return async_openai_client(self, **options)

    @property
    def embeddings(self) -> AsyncEmbeddings:
        """``await agw.embeddings.create(model=..., input=...)``."""
        from gateway._embeddings import AsyncEmbeddings

        return AsyncEmbeddings(self._core)

    @property
    def images(self) -> AsyncImages:
        """``await agw.images.generate(model=..., prompt=...)``."""
        from gateway._images import AsyncImages

        return AsyncImages(self._core)

    @property
    def batches(self) -> AsyncBatches:
        """``await agw.batches.create(model=..., requests=[...])``."""
        from gateway._batches import AsyncBatches

        return AsyncBatches(self._core)

    @property
    def credits(self) -> AsyncCreditAccount:
        """The default credit account, every method awaitable: ``await
        agw.credits.balance()``; ``agw.credits.account("customer-42")`` for a named one. The
        store is reached from a worker thread. Raises ConfigError when the config has no
        ``credits:`` section."""
        from gateway.credits.async_account import AsyncCreditAccount

        return AsyncCreditAccount(self._core.billing.account())

    @property
    def keys(self) -> AsyncKeys:
        """The gateway's API keys, every method awaitable (see :attr:`Gateway.keys`)."""
        from gateway.keys import AsyncKeys

        return AsyncKeys(self._core.keys())

    async def close(self) -> None:
        """Close every async SDK client this gateway opened, and the credit store."""
        for adapter in list(self._core._adapters.values()):
            await adapter.aclose()
        self._core.close()

    async def __aenter__(self) -> AsyncGateway:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
