"""``gw.openai_client()``: a genuine ``openai.OpenAI`` (``AsyncOpenAI``) served in-process.

The SDK client is built on an ``httpx2`` client whose transport never opens a socket: it
hands each request to the gateway and returns the gateway's answer as the HTTP response an
OpenAI-compatible server would send (JSON, or server-sent events for a stream; errors as
OpenAI's error body with the status of :mod:`gateway._openai_errors`). So everything the SDK
does on top of HTTP works unchanged (``parse``, ``stream``, raw responses, ``_request_id``,
its exception classes), and ``isinstance(client, openai.OpenAI)`` holds for the frameworks
that check it.

What a request carries reaches ``chat.completions.create`` as its arguments: the body's
OpenAI arguments as they are, the gateway's ``account`` and ``tags`` (send them with
``extra_body``), any other body field as ``extra_body`` (what the SDK's ``extra_body`` is
for), headers the SDK did not make as ``extra_headers``, the query as ``extra_query``, a read
timeout other than the SDK's default as ``timeout``. An ``api_key`` other than the placeholder
is a gateway API key (``gw.keys``): the call is paid by its account and held to its limits.

The client is a small subclass (``GatewayOpenAI``) that changes one thing: the exception for
an error status is the gateway's own error object (carried beside the response), made an
instance of the SDK's class for that status, so ``except openai.RateLimitError`` and ``except
GatewayError`` both catch it and ``.attempts`` is there.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import httpx2
import openai

from gateway._compat import IN_PROCESS_API_KEY, model_entries, response_headers
from gateway._openai_errors import (
    IN_PROCESS_BASE_URL,
    ErrorShape,
    as_openai_error,
    error_shape,
)
from gateway._request import accepted_arguments
from gateway.errors import GatewayError
from gateway.types import GatewayChatCompletion

if TYPE_CHECKING:
    from gateway._client import AsyncGateway, Gateway
    from gateway._streams import AsyncGatewayStream, GatewayStream

__all__ = [
    "AsyncGatewayOpenAI",
    "AsyncGatewayTransport",
    "GatewayOpenAI",
    "GatewayTransport",
    "async_openai_client",
    "openai_client",
]

#: Where the gateway's error object travels beside the HTTP response it became.
_ERROR = "gateway_error"
#: Request headers the SDK makes itself: not the caller's ``extra_headers``.
_SDK_HEADERS = frozenset(
    {
        "accept",
        "accept-encoding",
        "authorization",
        "connection",
        "content-length",
        "content-type",
        "host",
        "idempotency-key",
        "openai-organization",
        "openai-project",
        "user-agent",
    }
)
#: Body fields that are the gateway's own arguments (sent with the SDK's ``extra_body``).
_GATEWAY_ARGUMENTS = frozenset({"account", "tags"})
_SSE_DONE = b"data: [DONE]\n\n"


class _Call:
    """One request, read: what to call the gateway with (sans-I/O, shared by both transports)."""

    def __init__(self, request: httpx2.Request, body: bytes) -> None:
        self.request = request
        path = request.url.path
        prefix = httpx2.URL(IN_PROCESS_BASE_URL).path
        self.path = path[len(prefix) :] if path.startswith(prefix) else path.lstrip("/")
        self.method = request.method
        self.body = body
        presented = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        #: A gateway API key, when the client was given one instead of the placeholder.
        self.api_key = presented if presented and presented != IN_PROCESS_API_KEY else None

    def arguments(self) -> dict[str, Any]:
        """``chat.completions.create``'s keyword arguments for a chat completion request."""
        try:
            body = json.loads(self.body)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise _BadRequest("the request body must be a JSON object")
        for required in ("model", "messages"):
            if required not in body:
                raise _BadRequest(f"the request body has no '{required}'")
        accepted = accepted_arguments()
        arguments: dict[str, Any] = {}
        extra_body: dict[str, Any] = {}
        for name, value in body.items():
            if name in accepted or name in _GATEWAY_ARGUMENTS or name in ("model", "messages"):
                arguments[name] = value
            elif name == "stream":
                arguments[name] = bool(value)
            else:
                extra_body[name] = value
        if extra_body:
            arguments["extra_body"] = extra_body
        headers = {
            name: value
            for name, value in self.request.headers.items()
            if name not in _SDK_HEADERS and not name.startswith("x-stainless-")
        }
        if headers:
            arguments["extra_headers"] = headers
        if self.request.url.params:
            arguments["extra_query"] = dict(self.request.url.params)
        # The SDK sends a timeout with every request; only one the caller chose bounds the
        # call (its default of 600 s would override a provider's ``timeout:`` in the config).
        timeout = self.request.extensions.get("timeout")
        read = timeout.get("read") if isinstance(timeout, Mapping) else None
        if read is not None and read != openai.DEFAULT_TIMEOUT.read:
            arguments["timeout"] = read
        return arguments


class _BadRequest(Exception):
    """A request the in-process transport cannot read (not a GatewayError: no call was made)."""


def _json(status: int, data: Any, headers: Mapping[str, str] | None = None) -> httpx2.Response:
    return httpx2.Response(status, json=data, headers=headers)


def _error(error: BaseException) -> httpx2.Response:
    """The HTTP answer for ``error``, with the error itself beside it for the client."""
    if isinstance(error, _BadRequest):
        shape = ErrorShape(400, "invalid_request", str(error))
    else:
        shape = error_shape(error)
    source = getattr(error, "response", None)
    if isinstance(error, GatewayError) and isinstance(source, httpx2.Response):
        headers, content = source.headers, source.content  # made with the call's request id
    else:
        headers, content = httpx2.Headers(shape.headers), json.dumps(shape.body()).encode()
    response = httpx2.Response(shape.status, headers=headers, content=content)
    response.extensions[_ERROR] = error
    return response


def _not_found(call: _Call) -> httpx2.Response:
    message = (
        f"{call.method} /{call.path} is not served in-process: the gateway serves "
        "POST /chat/completions, GET /models and GET /models/{model}"
    )
    return _json(404, ErrorShape(404, "not_found", message).body())


def _models(call: _Call, config: Any) -> httpx2.Response | None:
    """The answer to ``GET /models`` or ``GET /models/{id}``, or None for another path."""
    if call.method != "GET":
        return None
    entries = model_entries(config)
    if call.path == "models":
        return _json(200, {"object": "list", "data": entries})
    if call.path.startswith("models/"):
        wanted = call.path[len("models/") :]
        for entry in entries:
            if entry["id"] == wanted:
                return _json(200, entry)
        message = f"the model '{wanted[:200]}' does not exist here"
        return _json(404, ErrorShape(404, "model_not_found", message, param="model").body())
    return None


def _completion(completion: GatewayChatCompletion) -> httpx2.Response:
    usage = completion.usage
    headers = response_headers(completion.gateway, usage.cost if usage is not None else None)
    headers["content-type"] = "application/json"
    content = completion.model_dump_json(exclude_unset=True).encode()
    return httpx2.Response(200, headers=headers, content=content)


def _event(data: bytes) -> bytes:
    return b"data: " + data + b"\n\n"


def _error_event(error: BaseException) -> bytes:
    """A stream's last event when it broke after it started (OpenAI's in-stream error)."""
    return _event(json.dumps(error_shape(error).body()).encode())


class _SSE(httpx2.SyncByteStream):
    """A gateway stream as server-sent events; closing it closes (and bills) the stream."""

    def __init__(self, stream: GatewayStream) -> None:
        self._stream = stream

    def __iter__(self) -> Iterator[bytes]:
        try:
            for chunk in self._stream:
                yield _event(chunk.model_dump_json(exclude_unset=True).encode())
        except GatewayError as error:
            yield _error_event(error)
            return
        yield _SSE_DONE

    def close(self) -> None:
        self._stream.close()


class _AsyncSSE(httpx2.AsyncByteStream):
    def __init__(self, stream: AsyncGatewayStream) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._stream:
                yield _event(chunk.model_dump_json(exclude_unset=True).encode())
        except GatewayError as error:
            yield _error_event(error)
            return
        yield _SSE_DONE

    async def aclose(self) -> None:
        await self._stream.close()


def _stream_headers(stream: GatewayStream | AsyncGatewayStream) -> dict[str, str]:
    return {**response_headers(stream.gateway), "content-type": "text/event-stream"}


class GatewayTransport(httpx2.BaseTransport):
    """An ``httpx2`` transport answered by a :class:`~gateway.Gateway` in-process."""

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        call = _Call(request, request.read())
        gateway = self._gateway
        try:
            if call.path != "chat/completions" or call.method != "POST":
                return _models(call, gateway.config) or _not_found(call)
            arguments = call.arguments()
            if call.api_key is not None:
                arguments["api_key"] = gateway.keys.authenticate(call.api_key)
            result = gateway.chat.completions.create(**arguments)
        except (GatewayError, _BadRequest) as error:
            return _error(error)
        if isinstance(result, GatewayChatCompletion):
            return _completion(result)
        return httpx2.Response(200, headers=_stream_headers(result), stream=_SSE(result))


class AsyncGatewayTransport(httpx2.AsyncBaseTransport):
    """An ``httpx2`` async transport answered by an :class:`~gateway.AsyncGateway`."""

    def __init__(self, gateway: AsyncGateway) -> None:
        self._gateway = gateway

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        call = _Call(request, await request.aread())
        gateway = self._gateway
        try:
            if call.path != "chat/completions" or call.method != "POST":
                return _models(call, gateway.config) or _not_found(call)
            arguments = call.arguments()
            if call.api_key is not None:
                arguments["api_key"] = await gateway.keys.authenticate(call.api_key)
            result = await gateway.chat.completions.create(**arguments)
        except (GatewayError, _BadRequest) as error:
            return _error(error)
        if isinstance(result, GatewayChatCompletion):
            return _completion(result)
        return httpx2.Response(200, headers=_stream_headers(result), stream=_AsyncSSE(result))


def _status_error(response: httpx2.Response) -> openai.APIStatusError | None:
    """The gateway's own error behind an error response, as the SDK's class for it."""
    error = response.extensions.get(_ERROR)
    if isinstance(error, GatewayError):
        converted = as_openai_error(error)
        assert isinstance(converted, openai.APIStatusError)
        return converted
    return None


class GatewayOpenAI(openai.OpenAI):
    """``openai.OpenAI`` whose error for a status is the gateway's own error object."""

    def _make_status_error(
        self, err_msg: str, *, body: object, response: httpx2.Response
    ) -> openai.APIStatusError:
        error = _status_error(response)
        if error is not None:
            return error
        return super()._make_status_error(err_msg, body=body, response=response)


class AsyncGatewayOpenAI(openai.AsyncOpenAI):
    """``openai.AsyncOpenAI`` whose error for a status is the gateway's own error object."""

    def _make_status_error(
        self, err_msg: str, *, body: object, response: httpx2.Response
    ) -> openai.APIStatusError:
        error = _status_error(response)
        if error is not None:
            return error
        return super()._make_status_error(err_msg, body=body, response=response)


def _client_options(options: dict[str, Any]) -> dict[str, Any]:
    if "http_client" in options or "base_url" in options:
        raise TypeError(
            "openai_client() makes its own http_client and base_url: the calls never leave "
            "the process"
        )
    return {"api_key": IN_PROCESS_API_KEY, "max_retries": 0, **options}


def openai_client(gateway: Gateway, **options: Any) -> GatewayOpenAI:
    """A genuine ``openai.OpenAI`` served by ``gateway`` in-process (see the module)."""
    http_client = httpx2.Client(transport=GatewayTransport(gateway))
    return GatewayOpenAI(
        base_url=IN_PROCESS_BASE_URL, http_client=http_client, **_client_options(options)
    )


def async_openai_client(gateway: AsyncGateway, **options: Any) -> AsyncGatewayOpenAI:
    """A genuine ``openai.AsyncOpenAI`` served by ``gateway`` in-process (see the module)."""
    http_client = httpx2.AsyncClient(transport=AsyncGatewayTransport(gateway))
    return AsyncGatewayOpenAI(
        base_url=IN_PROCESS_BASE_URL, http_client=http_client, **_client_options(options)
    )
