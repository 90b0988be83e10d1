"""OpenAI's async chat calls straight over aiohttp, the SDK deciding everything but the send.

At 50 calls in flight the OpenAI SDK's own per-request machinery (copying and preparing its
options, building an ``httpx2.Request``, the httpx2 client's send, building and reading an
``httpx2.Response``, a pure-Python ``construct`` of every stream chunk) costs several times
what the bytes cost on an aiohttp session (bench/README.md). When a provider's async transport
is aiohttp, :class:`DirectClient` sends ``POST /chat/completions`` through the same aiohttp
session the SDK's client uses (``providers/_transport.py``), and leaves every decision to the
SDK:

- **URL, headers, timeouts**: made by the SDK itself (its ``_prepare_options``,
  ``_build_request``, ``_prepare_request``) once per client and set of per-call options
  (extra headers, extra query, timeout), then reused: base URL, auth, ``OpenAI-Organization`` /
  ``OpenAI-Project``, the platform and ``x-stainless-*`` headers (``x-stainless-retry-count: 0``:
  the gateway's clients never retry), the config's headers, the httpx2 client's own headers.
  Only ``content-length`` is left to aiohttp (the same value). The timeout maps to
  ``aiohttp.ClientTimeout`` by :func:`~gateway.providers._transport.client_timeout`, as
  :class:`~gateway.providers._transport.AiohttpTransport` maps it. Redirects are followed by
  aiohttp (the SDK's httpx2 client follows them too).
- **Body**: the SDK's merge of ``extra_body`` and its own JSON encoder (``openapi_dumps``).
- **A non-2xx answer**: an ``httpx2.Response`` of its status, headers and body, turned into
  the SDK's own exception by ``client._make_status_error_from_response``.
- **A failed send**: aiohttp's exception -> httpx2's (``_transport.httpx2_error``) -> the SDK's
  ``APITimeoutError`` / ``APIConnectionError`` with it as ``__cause__``, as the SDK wraps them.
- **Streams**: SSE read from the response as it arrives; ``[DONE]`` ends the stream (the rest of
  the body read so the connection is reused), an event whose JSON has an ``error`` raises the
  SDK's ``APIError`` as its ``AsyncStream`` does; each chunk is ``ChatCompletionChunk`` validated
  by pydantic-core, or the SDK's own lenient construction when it does not validate.

The caller (``providers/openai.py``) maps the SDK's exceptions with its ``map_error`` as on
the SDK path, so both paths raise the same gateway errors (``tests/providers/
test_openai_direct.py`` compares them). A client whose auth is not a plain API key (workload
identity, an API-key callable, a provider runtime, a custom ``httpx2.Auth``) gets no direct
path (:func:`direct_client` returns None).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, NoReturn

import httpx2
import pydantic
from openai import APIConnectionError, APIError, APITimeoutError, AsyncOpenAI
from openai._base_client import _merge_mappings, get_platform
from openai._compat import model_copy
from openai._models import FinalRequestOptions
from openai._types import RequestOptions
from openai._utils import asyncify
from openai._utils._json import openapi_dumps
from openai.types.chat import ChatCompletionChunk

from gateway.providers import _transport as transport

if TYPE_CHECKING:
    import aiohttp

__all__ = ["DirectClient", "DirectStream", "direct_client"]

#: The path ``chat.completions.create`` posts to (relative to the client's base URL).
_PATH = "/chat/completions"
#: Request shapes (extra headers, query, timeout) whose URL and headers are kept per client.
_MAX_SHAPES = 64
#: How long the rest of a finished stream is read for reuse (the SDK's drain timeout).
_DRAIN_TIMEOUT_S = 0.1
#: httpx2's default, which the SDK's client keeps (aiohttp's is 10).
_MAX_REDIRECTS = 20

_validate_chunk: Callable[[Any], ChatCompletionChunk] = (
    ChatCompletionChunk.__pydantic_validator__.validate_python
)


class _Prepared:
    """What the SDK would send for one request shape, but the body."""

    __slots__ = ("headers", "timeout", "url")

    def __init__(
        self, url: str, headers: list[tuple[str, str]], timeout: aiohttp.ClientTimeout
    ) -> None:
        self.url = url
        self.headers = headers
        self.timeout = timeout

    def request(self, content: bytes) -> httpx2.Request:
        """The request as httpx2 would have built it (only for the SDK's exceptions)."""
        return httpx2.Request("POST", self.url, headers=self.headers, content=content)


def _body(body: dict[str, Any], options: RequestOptions) -> bytes:
    """The JSON the SDK sends: this call's ``extra_body`` merged in, the SDK's encoder."""
    extra = options.get("extra_json")
    return openapi_dumps(_merge_mappings(body, extra) if extra is not None else body)


def _shape_key(options: RequestOptions) -> tuple[Any, ...] | None:
    """The per-call options that change the URL or headers, hashable; None when they cannot
    be keyed (then the SDK prepares that call alone)."""
    headers = options.get("headers")
    query = options.get("params")
    timeout = options.get("timeout")
    try:
        header_key = tuple(sorted(headers.items())) if headers else None
        query_key = json.dumps(query, sort_keys=True) if query else None
    except TypeError:  # an Omit, a non-JSON query value
        return None
    if isinstance(timeout, httpx2.Timeout):
        timeout_key: Any = (timeout.connect, timeout.read, timeout.write, timeout.pool)
    elif timeout is None or isinstance(timeout, int | float):
        timeout_key = timeout
    else:
        return None
    return header_key, query_key, timeout_key


def _raise_sdk_error(exc: Exception, request: httpx2.Request) -> NoReturn:
    """Raise the SDK's exception for an aiohttp (or httpx2) failure, ``exc`` itself when it is
    not a transport failure."""
    error = exc if isinstance(exc, httpx2.TransportError) else transport.httpx2_error(exc, request)
    if error is None:
        raise exc
    wrapped: Exception
    if isinstance(error, httpx2.TimeoutException):
        wrapped = APITimeoutError(request=request)
    else:
        wrapped = APIConnectionError(request=request)
    raise wrapped from error


def _encoded(raw_headers: Any) -> bool:
    """Whether a response declares a content-encoding that must be undone."""
    for name, value in raw_headers:
        if name.lower() == b"content-encoding" and value.strip().lower() != b"identity":
            return True
    return False


class DirectClient:
    """Chat completions for one ``AsyncOpenAI`` client over its aiohttp transport's session."""

    __slots__ = ("_client", "_shapes", "_transport")

    def __init__(self, client: AsyncOpenAI, aiohttp_transport: transport.AiohttpTransport) -> None:
        self._client = client
        self._transport = aiohttp_transport
        self._shapes: dict[tuple[Any, ...], _Prepared] = {}

    async def _prepare(self, options: RequestOptions) -> _Prepared:
        key = _shape_key(options)
        prepared = self._shapes.get(key) if key is not None else None
        if prepared is None:
            prepared = await self._prepared_by_sdk(options)
            if key is not None:
                if len(self._shapes) >= _MAX_SHAPES:
                    self._shapes.clear()
                self._shapes[key] = prepared
        return prepared

    async def _prepared_by_sdk(self, options: RequestOptions) -> _Prepared:
        """The SDK's own steps for a request (``AsyncAPIClient.request``), with an empty body."""
        client = self._client
        if client._platform is None:
            client._platform = await asyncify(get_platform)()
        final = FinalRequestOptions.construct(method="post", url=_PATH, json_data={}, **options)
        final = await client._prepare_options(model_copy(final))
        request = client._build_request(final, retries_taken=0)
        await client._prepare_request(request)
        headers = [
            (name, value)
            for name, value in request.headers.multi_items()
            if name.lower() != "content-length"
        ]
        return _Prepared(
            str(request.url), headers, transport.client_timeout(request.extensions.get("timeout"))
        )

    async def _send(
        self, body: dict[str, Any], options: RequestOptions
    ) -> tuple[aiohttp.ClientResponse, _Prepared, bytes]:
        prepared = await self._prepare(options)
        content = _body(body, options)
        session = self._transport.session()
        try:
            response = await session.request(
                "POST",
                prepared.url,
                **self._transport.proxy_for(prepared.url),
                headers=prepared.headers,
                data=content,
                allow_redirects=True,
                max_redirects=_MAX_REDIRECTS,
                compress=False,
                timeout=prepared.timeout,
            )
        except Exception as exc:
            _raise_sdk_error(exc, prepared.request(content))
        return response, prepared, content

    async def _read(
        self, response: aiohttp.ClientResponse, prepared: _Prepared, content: bytes
    ) -> bytes:
        """The whole body (its content-encoding undone, as httpx2 does), the connection
        released; a failure while reading is the SDK's exception."""
        raw = await self._read_raw(response, prepared, content)
        if _encoded(response.raw_headers):
            return self._http_response(response, prepared, content, raw).content
        return raw

    def _http_response(
        self, response: aiohttp.ClientResponse, prepared: _Prepared, content: bytes, raw: bytes
    ) -> httpx2.Response:
        return httpx2.Response(
            status_code=response.status,
            headers=response.raw_headers,
            content=raw,
            request=prepared.request(content),
        )

    async def _status_error(
        self, response: aiohttp.ClientResponse, prepared: _Prepared, content: bytes
    ) -> Exception:
        """The SDK's own exception for a non-2xx answer (it reads the body itself)."""
        raw = await self._read_raw(response, prepared, content)
        http_response = self._http_response(response, prepared, content, raw)
        return self._client._make_status_error_from_response(http_response)

    async def _read_raw(
        self, response: aiohttp.ClientResponse, prepared: _Prepared, content: bytes
    ) -> bytes:
        try:
            return await response.read()
        except Exception as exc:
            _raise_sdk_error(exc, prepared.request(content))
        finally:
            response.release()

    async def complete(self, body: dict[str, Any], options: RequestOptions) -> bytes:
        """POST a non-streamed call; the 2xx body as bytes, else the SDK's exception."""
        response, prepared, content = await self._send(body, options)
        if not 200 <= response.status < 300:
            raise await self._status_error(response, prepared, content)
        return await self._read(response, prepared, content)

    async def stream(self, body: dict[str, Any], options: RequestOptions) -> DirectStream:
        """POST a streamed call; its chunks, else (a non-2xx answer) the SDK's exception."""
        response, prepared, content = await self._send(body, options)
        if not 200 <= response.status < 300:
            raise await self._status_error(response, prepared, content)
        return DirectStream(response, self, prepared, content)

    def chunk(self, data: Any) -> ChatCompletionChunk:
        """A chunk as the SDK's type: validated, or the SDK's lenient construction of it."""
        try:
            return _validate_chunk(data)
        except pydantic.ValidationError:
            return self._client._process_response_data(
                data=data,
                cast_to=ChatCompletionChunk,
                response=None,  # type: ignore[arg-type]  # unused for a plain model
            )


def _event_error(data: Any, request: httpx2.Request) -> APIError | None:
    """The SDK's ``APIError`` for an event whose JSON has an ``error`` (``AsyncStream``)."""
    if not isinstance(data, dict):
        return None
    error = data.get("error")
    if not error:
        return None
    message = error.get("message") if isinstance(error, dict) else None
    if not message or not isinstance(message, str):
        message = "An error occurred during streaming"
    return APIError(message=message, request=request, body=error)


class DirectStream:
    """The chunks of one streamed answer, read from the aiohttp response as they arrive.

    SSE per the spec as the SDK's decoder reads it: ``data:`` lines joined by newlines,
    ``event:``, comments; an event is dispatched at a blank line; lines end with ``\\n`` or
    ``\\r\\n``. ``close()`` stops reading: a body not read to its end closes the connection
    (the provider stops generating); a finished one goes back to the pool.
    """

    __slots__ = ("_content", "_direct", "_done", "_iterator", "_prepared", "response")

    def __init__(
        self,
        response: aiohttp.ClientResponse,
        direct: DirectClient,
        prepared: _Prepared,
        content: bytes,
    ) -> None:
        #: The aiohttp response (``headers`` for the request id).
        self.response = response
        self._direct = direct
        self._prepared = prepared
        self._content = content
        self._done = False
        self._iterator = self._chunks()

    def __aiter__(self) -> AsyncIterator[ChatCompletionChunk]:
        return self._iterator

    def _request(self) -> httpx2.Request:
        return self._prepared.request(self._content)

    def _pieces(self) -> AsyncIterator[bytes]:
        response = self.response
        if not _encoded(response.raw_headers):
            return response.content.iter_any()
        # A compressed stream (rare): httpx2 undoes the encoding, as on the SDK path.
        request = self._request()
        stream = transport._ResponseStream(response, request)
        return httpx2.Response(
            response.status, headers=response.raw_headers, stream=stream, request=request
        ).aiter_bytes()

    async def _lines(self) -> AsyncIterator[bytes]:
        pending = b""
        try:
            async for piece in self._pieces():
                lines = (pending + piece).split(b"\n")
                pending = lines.pop()
                for line in lines:
                    yield line
            if pending:
                yield pending
        except Exception as exc:
            _raise_sdk_error(exc, self._request())

    async def _events(self) -> AsyncIterator[str]:
        """Each event's data (events of no data and no name are not events)."""
        data: list[bytes] = []
        named = False
        async for line in self._lines():
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                if data or named:
                    yield b"\n".join(data).decode()
                    data = []
                    named = False
                continue
            if line.startswith(b":"):
                continue
            field, _, value = line.partition(b":")
            if value.startswith(b" "):
                value = value[1:]
            if field == b"data":
                data.append(value)
            elif field == b"event":
                named = True
        if data or named:
            yield b"\n".join(data).decode()

    async def _chunks(self) -> AsyncIterator[ChatCompletionChunk]:
        chunk = self._direct.chunk
        try:
            async for data in self._events():
                if data.startswith("[DONE]"):
                    await self._drain()
                    break
                value = json.loads(data)
                error = _event_error(value, self._request())
                if error is not None:
                    raise error
                yield chunk(value)
            else:
                self._done = True
        finally:
            self._finish()

    async def _drain(self) -> None:
        """HTTP/1.1: the rest of the body read so the connection is reused (bounded, and a
        failure here does not turn a finished answer into an error, as in the SDK)."""
        try:
            async with asyncio.timeout(_DRAIN_TIMEOUT_S):
                await self.response.read()
        except (Exception, TimeoutError):
            return
        self._done = True

    def _finish(self) -> None:
        if self._done:
            self.response.release()
        else:
            self.response.close()

    async def close(self) -> None:
        """Stop reading; the connection is closed unless the body was read to its end."""
        await self._iterator.aclose()  # type: ignore[attr-defined]
        self._finish()


def direct_client(
    client: AsyncOpenAI, aiohttp_transport: transport.AiohttpTransport
) -> DirectClient | None:
    """The direct path for ``client``, or None when its auth is more than a plain API key."""
    if (
        client._provider_runtime is not None
        or client._workload_identity_auth is not None
        or client._api_key_provider is not None
        or client.custom_auth is not None
    ):
        return None
    return DirectClient(client, aiohttp_transport)
