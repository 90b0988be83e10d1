"""The rest of the OpenAI client surface that frameworks touch, for ``Gateway`` and
``AsyncGateway``: ``with_options``, ``with_raw_response``, ``models.list``, and the headers
an OpenAI-compatible answer carries.

Frameworks handed an OpenAI client (pydantic-ai, the OpenAI Agents SDK, LangChain,
instructor) read more than ``chat.completions.create``: ``client.base_url``, a copy with
other options (``with_options(max_retries=0)``), the raw response's headers. What they read
is answered here without importing the SDK's client; the SDK's own types are imported only
when a method that returns one is called.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Generator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from gateway.errors import InvalidRequest

if TYPE_CHECKING:
    import httpx2
    from openai.pagination import AsyncPage, SyncPage
    from openai.types import Model

    from gateway._attempts import GatewayInfo
    from gateway.config import GatewayConfig

__all__ = [
    "IN_PROCESS_API_KEY",
    "AsyncModels",
    "ClientOptions",
    "Models",
    "RawResponse",
    "model_entries",
    "response_headers",
]

#: What ``gw.api_key`` and the in-process OpenAI clients hold: not a secret, and never a
#: provider's key (those stay in the config, and only the adapters send them).
IN_PROCESS_API_KEY = "gateway-in-process"

#: ``with_options`` arguments of the SDK clients that concern the SDK's own HTTP layer, which
#: the gateway does not have: accepted so that frameworks can call it, and left aside.
#: ``max_retries``: the route's ``retry:`` decides how often a target is tried.
_TRANSPORT_OPTIONS = frozenset({"max_retries", "http_client", "_extra_kwargs"})


@dataclass(frozen=True, slots=True)
class ClientOptions:
    """Defaults a ``with_options`` copy applies to every call it makes (a call's own
    arguments win): the SDK clients' ``timeout``, ``default_headers`` and ``default_query``."""

    timeout: Any = None
    headers: Mapping[str, str] | None = None
    query: Mapping[str, Any] | None = None

    def merged(self, **options: Any) -> ClientOptions:
        """These options changed by the keyword arguments of ``with_options``."""
        unknown = (
            options.keys()
            - _TRANSPORT_OPTIONS
            - {
                "timeout",
                "default_headers",
                "set_default_headers",
                "default_query",
                "set_default_query",
            }
        )
        if unknown:
            raise TypeError(
                f"with_options() got unexpected keyword argument(s) {', '.join(sorted(unknown))}"
                " (the gateway takes timeout, default_headers, set_default_headers, "
                "default_query, set_default_query, max_retries and http_client)"
            )
        if "default_headers" in options and "set_default_headers" in options:
            raise ValueError("give default_headers or set_default_headers, not both")
        if "default_query" in options and "set_default_query" in options:
            raise ValueError("give default_query or set_default_query, not both")
        timeout = options.get("timeout", self.timeout)
        headers = self.headers
        if options.get("default_headers") is not None:
            headers = {**(headers or {}), **options["default_headers"]}
        if "set_default_headers" in options:
            headers = options["set_default_headers"]
        query = self.query
        if options.get("default_query") is not None:
            query = {**(query or {}), **options["default_query"]}
        if "set_default_query" in options:
            query = options["set_default_query"]
        return ClientOptions(_plain_timeout(timeout), headers or None, query or None)

    def apply(self, arguments: Mapping[str, Any]) -> Any:
        """A call's keyword arguments (a copy) with these defaults under them."""
        merged = dict(arguments)
        if self.timeout is not None and merged.get("timeout") is None:
            merged["timeout"] = self.timeout
        for name, default in (("extra_headers", self.headers), ("extra_query", self.query)):
            if default:
                given = merged.get(name)
                merged[name] = {**default, **given} if isinstance(given, Mapping) else default
        return merged


def _plain_timeout(timeout: Any) -> Any:
    """A ``with_options`` timeout: a number of seconds, an SDK ``Timeout``, or None."""
    if timeout is None or hasattr(timeout, "read"):
        return timeout
    if type(timeout).__name__ == "NotGiven":
        return None
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not math.isfinite(timeout)
        or timeout <= 0
    ):
        raise InvalidRequest(
            f"with_options(timeout=...) must be a positive number of seconds, got {timeout!r}",
            provider="gateway",
        )
    return timeout


# ---------------------------------------------------------------------------------------------
# Raw responses

_T = TypeVar("_T")


def response_headers(info: GatewayInfo, cost: Decimal | None = None) -> dict[str, str]:
    """The headers an OpenAI-compatible answer of the gateway carries: ``x-request-id`` (what
    the SDKs read as the request id) and who answered."""
    headers = {
        "x-request-id": info.request_id,
        "x-gateway-request-id": info.request_id,
        "x-gateway-provider": info.provider,
        "x-gateway-model": info.model,
        "x-gateway-route": info.route,
        "x-gateway-attempts": str(len(info.attempts)),
    }
    if cost is not None:
        headers["x-gateway-cost"] = format(cost, "f")
    return headers


class RawResponse(Generic[_T]):
    """What ``with_raw_response.create(...)`` returns, like the OpenAI SDK's raw response:
    ``.parse()`` is the completion (or the stream), ``.headers`` the answer's headers
    (``x-request-id`` is the gateway's request id)."""

    status_code = 200
    retries_taken = 0

    def __init__(self, result: _T) -> None:
        self._result = result
        self._headers: httpx2.Headers | None = None

    def parse(self, *, to: Any = None) -> _T:
        """The completion (or stream) itself; ``to`` is accepted and must be left out."""
        if to is not None:
            raise TypeError("parse(to=...) is not supported by the gateway's raw response")
        return self._result

    @property
    def headers(self) -> httpx2.Headers:
        if self._headers is None:
            import httpx2

            info: GatewayInfo = self._result.gateway  # type: ignore[attr-defined]
            usage = getattr(self._result, "usage", None)
            cost = getattr(usage, "cost", None) if usage is not None else None
            self._headers = httpx2.Headers(response_headers(info, cost))
        return self._headers

    @property
    def request_id(self) -> str | None:
        return self.headers.get("x-request-id")

    @property
    def http_response(self) -> httpx2.Response:
        """An ``httpx2.Response`` with the status and headers (no body: nothing was sent)."""
        import httpx2

        from gateway._openai_errors import IN_PROCESS_BASE_URL

        request = httpx2.Request("POST", IN_PROCESS_BASE_URL + "chat/completions")
        return httpx2.Response(self.status_code, headers=self.headers, request=request)


class CompletionsWithRawResponse:
    """``gw.chat.completions.with_raw_response``: ``create`` and ``parse`` returning a
    :class:`RawResponse`."""

    def __init__(self, create: Callable[..., Any], parse: Callable[..., Any]) -> None:
        self._create = create
        self._parse = parse

    def create(self, **kwargs: Any) -> RawResponse[Any]:
        return RawResponse(self._create(**kwargs))

    def parse(self, **kwargs: Any) -> RawResponse[Any]:
        return RawResponse(self._parse(**kwargs))


class AsyncCompletionsWithRawResponse:
    """``agw.chat.completions.with_raw_response``: awaitable ``create`` and ``parse``."""

    def __init__(
        self, create: Callable[..., Awaitable[Any]], parse: Callable[..., Awaitable[Any]]
    ) -> None:
        self._create = create
        self._parse = parse

    async def create(self, **kwargs: Any) -> RawResponse[Any]:
        return RawResponse(await self._create(**kwargs))

    async def parse(self, **kwargs: Any) -> RawResponse[Any]:
        return RawResponse(await self._parse(**kwargs))


# ---------------------------------------------------------------------------------------------
# Models


def model_entries(config: GatewayConfig) -> list[dict[str, Any]]:
    """What ``models.list`` lists, in OpenAI's shape: each route (``owned_by`` ``gateway``),
    then each route target's ``provider/model`` (``owned_by`` its provider), once each."""
    found: dict[str, dict[str, Any]] = {}
    for name in config.routes:
        found[name] = {"id": name, "object": "model", "created": 0, "owned_by": "gateway"}
    for route in config.routes.values():
        for target in route.targets:
            found.setdefault(
                target.model,
                {"id": target.model, "object": "model", "created": 0, "owned_by": target.provider},
            )
    return list(found.values())


def _unknown_model(model: str) -> InvalidRequest:
    error = InvalidRequest(
        f"the model '{model[:200]}' does not exist here: models.list() names the routes and "
        "targets of the gateway's config",
        provider="gateway",
        status_code=404,
    )
    error.code = "model_not_found"
    return error


class Models:
    """``gw.models``: the routes and targets of the config as OpenAI models."""

    def __init__(self, config: GatewayConfig) -> None:
        self._config = config

    def list(self) -> SyncPage[Model]:
        from openai.pagination import SyncPage
        from openai.types import Model

        data = [Model.model_validate(entry) for entry in model_entries(self._config)]
        return SyncPage[Model](data=data, object="list")

    def retrieve(self, model: str) -> Model:
        from openai.types import Model

        for entry in model_entries(self._config):
            if entry["id"] == model:
                return Model.model_validate(entry)
        from gateway._openai_errors import as_openai_error

        raise as_openai_error(_unknown_model(model))


class _AsyncModelList:
    """What ``agw.models.list()`` returns, like the SDK's paginator: await it for the page,
    or ``async for`` over the models."""

    def __init__(self, models: Models) -> None:
        self._models = models

    def __await__(self) -> Generator[Any, None, AsyncPage[Model]]:
        return self._page().__await__()

    async def _page(self) -> AsyncPage[Model]:
        from openai.pagination import AsyncPage
        from openai.types import Model

        return AsyncPage[Model](data=list(self._models.list().data), object="list")

    def __aiter__(self) -> Any:
        return self._iterate()

    async def _iterate(self) -> Any:
        for model in self._models.list().data:
            yield model


class AsyncModels:
    """``agw.models``: :class:`Models` with awaitable methods."""

    def __init__(self, config: GatewayConfig) -> None:
        self._models = Models(config)

    def list(self) -> _AsyncModelList:
        return _AsyncModelList(self._models)

    async def retrieve(self, model: str) -> Model:
        return self._models.retrieve(model)
