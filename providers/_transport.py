"""Which HTTP stack the adapters' *async* clients send through: aiohttp or httpx2.

At 50 calls in flight the OpenAI SDK's default httpx2 pool costs several times the CPU of
an aiohttp session (bench/README.md); the sync clients always use httpx2. A provider's
``transport:`` in the config chooses (:data:`DEFAULT_TRANSPORT` when unset):

- ``aiohttp``: OpenAI and Anthropic get an ``httpx2.AsyncClient`` whose transport is
  :class:`AiohttpTransport` (one aiohttp session per event loop), so the SDKs see httpx2
  requests, responses and exceptions as before and their error mapping is unchanged.
  google-genai sends its async calls through its own aiohttp sessions
  (:func:`gemini_async_options`); not Gemini's default (see :data:`GEMINI_DEFAULT_TRANSPORT`).
- ``httpx``: the SDKs' own httpx2 pools.

aiohttp's exceptions become the httpx2 exceptions httpx2 itself raises for the same failure
(:func:`httpx2_error`): connection refused -> ``ConnectError``, connect timeout ->
``ConnectTimeout``, read timeout -> ``ReadTimeout``, a dropped connection ->
``RemoteProtocolError`` / ``ReadError``; the adapters map those into the gateway's errors.

respx cannot see aiohttp: :func:`httpx_only` (entered by ``gateway.testing.mock_providers``)
makes every async client created inside it use httpx2.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import threading
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any, Literal

import httpx2

if TYPE_CHECKING:
    import aiohttp

__all__ = [
    "DEFAULT_TRANSPORT",
    "GEMINI_DEFAULT_TRANSPORT",
    "TRANSPORTS",
    "AiohttpTransport",
    "Transport",
    "aiohttp_errors",
    "aiohttp_installed",
    "async_transport",
    "client_timeout",
    "gemini_async_options",
    "httpx2_error",
    "httpx_only",
]

Transport = Literal["aiohttp", "httpx"]
TRANSPORTS: tuple[Transport, ...] = ("aiohttp", "httpx")
#: What OpenAI and Anthropic without ``transport:`` use for their async calls.
DEFAULT_TRANSPORT: Transport = "aiohttp"
#: Gemini's: on aiohttp, google-genai releases a stream closed early only when its generators
#: are garbage-collected (the provider keeps generating until then), and it applies one total
#: timeout per request with no connect timeout of its own.
GEMINI_DEFAULT_TRANSPORT: Transport = "httpx"

_pinned_lock = threading.Lock()
_pinned = 0


def aiohttp_installed() -> bool:
    """Whether ``aiohttp`` can be imported (without importing it)."""
    return importlib.util.find_spec("aiohttp") is not None


@contextlib.contextmanager
def httpx_only() -> Iterator[None]:
    """Async clients created inside use httpx2 whatever the config says (for respx mocks)."""
    global _pinned
    with _pinned_lock:
        _pinned += 1
    try:
        yield
    finally:
        with _pinned_lock:
            _pinned -= 1


def async_transport(
    configured: Transport | None, default: Transport = DEFAULT_TRANSPORT
) -> Transport:
    """The transport an async client made now uses."""
    if _pinned:
        return "httpx"
    if configured is None:
        # The default only where aiohttp is there (it is a dependency, but may be removed).
        return default if aiohttp_installed() else "httpx"
    return configured


def aiohttp_errors() -> tuple[tuple[type[BaseException], ...], tuple[type[BaseException], ...]]:
    """aiohttp's timeout and connection exception classes (none when it is not installed),
    for google-genai, which lets them through unwrapped."""
    if not aiohttp_installed():
        return (), ()
    import aiohttp

    # A total timeout is asyncio's TimeoutError; the others are ServerTimeoutErrors.
    return (aiohttp.ServerTimeoutError, asyncio.TimeoutError), (aiohttp.ClientError,)


# ---------------------------------------------------------------------------------------------
# aiohttp under httpx2


def httpx2_error(exc: BaseException, request: httpx2.Request | None) -> Exception | None:
    """The httpx2 exception httpx2 raises for the failure an aiohttp exception reports."""
    import aiohttp

    message = str(exc) or type(exc).__name__
    error: httpx2.TransportError
    # Most specific first: ConnectionTimeoutError is a ServerTimeoutError is a
    # ClientConnectionError, ClientConnectorError is a ClientOSError.
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        error = httpx2.ConnectTimeout(message)
    elif isinstance(exc, aiohttp.ServerTimeoutError | asyncio.TimeoutError):
        error = httpx2.ReadTimeout(message)
    elif isinstance(exc, aiohttp.ClientConnectorError):
        error = httpx2.ConnectError(message)
    elif isinstance(
        exc,
        aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError | aiohttp.ClientResponseError,
    ):
        error = httpx2.RemoteProtocolError(message)
    elif isinstance(exc, aiohttp.InvalidURL):
        error = httpx2.UnsupportedProtocol(message)
    elif isinstance(exc, aiohttp.ClientConnectionError):
        error = httpx2.ReadError(message)
    else:
        return None
    if request is not None:
        error.request = request
    return error


def client_timeout(extension: Any) -> aiohttp.ClientTimeout:
    """httpx2's ``timeout`` request extension as aiohttp's: no total, httpx2's pool timeout
    as aiohttp's connect (waiting for a connection), connect and read as socket timeouts."""
    import aiohttp

    timeout = extension or {}
    return aiohttp.ClientTimeout(
        total=None,
        connect=timeout.get("pool"),
        sock_connect=timeout.get("connect"),
        sock_read=timeout.get("read"),
    )


class _ResponseStream(httpx2.AsyncByteStream):
    """An aiohttp response body as httpx2 reads it; closing it releases the connection
    (aiohttp closes a connection whose body was not read to the end)."""

    __slots__ = ("_request", "_response")

    def __init__(self, response: aiohttp.ClientResponse, request: httpx2.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except Exception as exc:
            error = httpx2_error(exc, self._request)
            if error is None:
                raise
            raise error from None

    async def aclose(self) -> None:
        self._response.release()


class AiohttpTransport(httpx2.AsyncBaseTransport):
    """An httpx2 transport that sends through aiohttp: one session per event loop, no
    connection limit (the gateway's callers bound their own concurrency)."""

    def __init__(self) -> None:
        self._sessions: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}
        self._proxies: dict[str, dict[str, Any]] = {}

    def proxy_for(self, url: str) -> dict[str, Any]:
        """The ``proxy`` / ``proxy_auth`` arguments of a request to ``url``: HTTPS_PROXY /
        HTTP_PROXY and NO_PROXY (aiohttp's reading of them), read once per origin for this
        transport's life (httpx2 reads them when its client is made)."""
        end = url.find("/", url.find("//") + 2)
        origin = url if end < 0 else url[:end]
        found = self._proxies.get(origin)
        if found is None:
            from aiohttp.helpers import get_env_proxy_for_url
            from yarl import URL

            try:
                proxy, auth = get_env_proxy_for_url(URL(origin))
            except LookupError:  # no proxy for it, or NO_PROXY names it
                found = {}
            else:
                found = {"proxy": proxy, "proxy_auth": auth}
            self._proxies[origin] = found
        return found

    def session(self) -> aiohttp.ClientSession:
        """This event loop's session (made on first use); the OpenAI adapter's direct path
        (providers/_openai_direct.py) sends through it too, so there is one pool."""
        loop = asyncio.get_running_loop()
        session = self._sessions.get(loop)
        if session is None or session.closed:
            import aiohttp

            # A session belongs to its loop: forget those of loops that have ended.
            for old in [old for old in self._sessions if old.is_closed()]:
                del self._sessions[old]
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0),
                # aiohttp's trust_env looks the proxy variables up in a thread on every
                # request (~150 µs of CPU at 50 in flight): proxy_for() does it per origin.
                trust_env=False,
                auto_decompress=False,  # httpx2 decodes content-encoding itself
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
            )
            self._sessions[loop] = session
        return session

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        session = self.session()
        try:
            data: Any = request.content or None
        except httpx2.RequestNotRead:
            data = request.stream
        try:
            url = str(request.url)
            response = await session.request(
                request.method,
                url,
                **self.proxy_for(url),
                headers=request.headers.multi_items(),
                data=data,
                allow_redirects=False,
                compress=False,
                timeout=client_timeout(request.extensions.get("timeout")),
            )
        except Exception as exc:
            error = httpx2_error(exc, request)
            if error is None:
                raise
            raise error from None
        return httpx2.Response(
            status_code=response.status,
            headers=response.raw_headers,
            stream=_ResponseStream(response, request),
            request=request,
            extensions={"http_version": b"HTTP/1.1"},
        )

    async def aclose(self) -> None:
        sessions, self._sessions = self._sessions, {}
        loop = asyncio.get_running_loop()
        for session_loop, session in sessions.items():
            if session_loop is loop:
                await session.close()


def gemini_async_options(transport: Transport) -> tuple[dict[str, Any], dict[str, Any]]:
    """``HttpOptions`` fields and ``async_client_args`` for google-genai's async client.

    aiohttp: the SDK's own per-loop sessions, with ``retry_options`` of one attempt: without
    it the SDK sleeps 1-10 s and retries once on an aiohttp connection error (the gateway
    owns retries). httpx: an explicit httpx2 transport, the SDK's sign to stay on httpx2
    when aiohttp is installed.
    """
    from google.genai import types

    if transport == "aiohttp":
        return {"retry_options": types.HttpRetryOptions(attempts=1)}, {}
    return {}, {"transport": httpx2.AsyncHTTPTransport()}
