"""The one place where an error becomes an HTTP response.

Every error body has OpenAI's shape, ``{"error": {"message", "type", "code", "param"}}``,
so any OpenAI client raises its usual exception class for it. The statuses and codes of
library errors are the table shared with the in-process OpenAI client
(:mod:`gateway._openai_errors`), so a call fails the same way in process and over HTTP, with
one server policy on top and the errors only the HTTP edge can have:

==============================================  ======  ===========================
error                                           status  code
==============================================  ======  ===========================
no key, unknown / revoked / expired key         401     ``invalid_api_key``
a normal key on an admin endpoint               403     ``permission_denied``
a provider refused the gateway's own key        502     ``all_providers_failed``
  (the shared table says 401: the caller here holds a gateway key, not the provider's)
bad JSON, wrong types, missing fields           400     ``invalid_request``
body over ``server.max_body_bytes``             413     ``request_too_large``
no such endpoint / method                       404     ``not_found`` / 405
every other GatewayError                        the shared table (402 ``insufficient_credits``,
                                                429 ``spend_limit_exceeded`` / ``rate_limited``,
                                                404 ``model_not_found``, 502
                                                ``all_providers_failed`` with its attempts...)
==============================================  ======  ===========================

A message the library wrote for a Python caller is passed on only where it says nothing
about the server (a refusal, a bad argument, each attempt of a failed call); errors that can
name a file, a host or other accounts (ConfigError, UnknownAccount, the store's errors, any
unexpected exception) get a fixed message, and the real one goes to the log. No stack trace
ever reaches a body.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from gateway._openai_errors import attempt_list, error_shape
from gateway.errors import AllProvidersFailed, AuthenticationFailed, ProviderError
from gateway.server._json import json_response

__all__ = ["ApiError", "api_error", "error_response", "handle_error"]

logger = logging.getLogger("gateway.server")

#: The OpenAI-style ``type`` of each status (the ``code`` is the precise, stable one).
_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    408: "invalid_request_error",
    409: "conflict_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    501: "not_supported_error",
    502: "upstream_error",
    503: "server_error",
}


class ApiError(Exception):
    """An error response: status, machine code, message for a person, and what it is about."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.param = param
        self.headers = dict(headers or {})
        #: More fields of the ``error`` object (e.g. ``attempts``).
        self.extra = dict(extra or {})

    def body(self) -> dict[str, Any]:
        error = {
            "message": self.message,
            "type": _TYPES.get(self.status, "server_error"),
            "code": self.code,
            "param": self.param,
        }
        return {"error": {**error, **self.extra}}


def api_error(exc: BaseException) -> ApiError:
    """The response for ``exc``: the shared table (:func:`gateway._openai_errors.error_shape`)
    with one server policy on top, a provider refusing the gateway's own key."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, HTTPException):
        return _http_error(exc)
    if isinstance(exc, AuthenticationFailed):
        # The caller holds a gateway key, not the provider's: a 401 would tell its SDK that
        # *its* key is wrong. The operator must fix the provider's key; the caller sees 502.
        attempts = attempt_list(exc)
        return ApiError(
            502,
            "all_providers_failed",
            "the provider refused the gateway's own credentials; the operator must fix them",
            extra={"attempts": attempts},
        )
    shape = error_shape(exc)
    headers = dict(shape.headers)
    if isinstance(exc, AllProvidersFailed):
        headers["x-gateway-attempts"] = str(len(exc.attempts))
    return ApiError(
        shape.status,
        shape.code,
        shape.message,
        param=shape.param,
        headers=headers,
        extra=shape.extra,
    )


def _http_error(exc: HTTPException) -> ApiError:
    status = exc.status_code
    if status == 404:
        return ApiError(404, "not_found", "no such endpoint; the API is under /v1 (see README)")
    if status == 405:
        return ApiError(405, "method_not_allowed", "this endpoint does not take that method")
    return ApiError(status, "http_error", exc.detail or "request refused")


def error_response(error: ApiError, headers: Mapping[str, str] | None = None) -> Response:
    return json_response(
        error.body(), status=error.status, headers={**error.headers, **(headers or {})}
    )


async def handle_error(request: Request, exc: Exception) -> Response:
    """Starlette exception handler for ApiError, GatewayError and HTTPException."""
    error = api_error(exc)
    if error.status >= 500 and not isinstance(exc, AllProvidersFailed | ProviderError):
        logger.error("%s %s: %s", request.method, request.url.path, exc, exc_info=exc)
    return error_response(error)
