"""The one place where an error becomes an HTTP response.

Every error body has OpenAI's shape, ``{"error": {"message", "type", "code", "param"}}``,
so any OpenAI client raises its usual exception class for it. The table, keyed on types:

==============================================  ======  ===========================
error                                           status  code
==============================================  ======  ===========================
no key, unknown / revoked / expired key         401     ``invalid_api_key``
InsufficientCredits                             402     ``insufficient_credits``
a normal key on an admin endpoint               403     ``permission_denied``
unknown or unpriced model, KeyNotAllowed        404     ``model_not_found``
UnknownAccount (x-gateway-account, admin)       404     ``account_not_found``
SpendLimitExceeded (account or key cap)         429     ``spend_limit_exceeded``
KeyRateLimited (the key's rpm)                  429     ``rate_limited``
InvalidRequest, bad JSON, wrong types           400     ``invalid_request``
ContextTooLong                                  400     ``context_length_exceeded``
body over ``server.max_body_bytes``             413     ``request_too_large``
AllProvidersFailed (attempts listed)            502     ``all_providers_failed``
a stream broken after content (in the stream)   502     ``stream_interrupted``
CreditStoreUnavailable                          503     ``credit_store_unavailable``
==============================================  ======  ===========================

A message the library wrote for a Python caller is passed on only where it says nothing
about the server (a refusal, a bad argument, each attempt of a failed call); errors that can
name a file, a host or other accounts (ConfigError, UnknownAccount, the store's errors, any
unexpected exception) get a message written here, and the real one goes to the log. No
stack trace ever reaches a body.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from gateway.errors import (
    AllProvidersFailed,
    AuthenticationFailed,
    ConfigError,
    ContextTooLong,
    CreditStoreError,
    CreditStoreUnavailable,
    GatewayError,
    IdempotencyConflict,
    InsufficientCredits,
    InvalidApiKey,
    InvalidCreditsInput,
    InvalidKeySettings,
    InvalidRequest,
    KeyNotAllowed,
    KeyRateLimited,
    PaymentDeclined,
    ProviderError,
    ProviderUnavailable,
    SpendLimitExceeded,
    UnknownAccount,
    UnknownApiKey,
)
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


def _retry_after(seconds: float | None) -> dict[str, str]:
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return {}
    return {"retry-after": str(max(1, math.ceil(seconds)))}


def _attempts(error: AllProvidersFailed) -> list[dict[str, Any]]:
    return [
        {
            "provider": a.provider,
            "model": a.model,
            "outcome": a.outcome,
            "error": a.error_type,
            "status": a.status_code,
            "seconds": round(a.seconds, 3),
        }
        for a in error.attempts
    ]


def api_error(exc: BaseException) -> ApiError:
    """The response for ``exc``, by its type (the order matters: the most specific first)."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, HTTPException):
        return _http_error(exc)
    if not isinstance(exc, GatewayError):
        return ApiError(500, "internal_error", "the gateway failed to handle this request")
    if isinstance(exc, InvalidApiKey):
        return ApiError(401, "invalid_api_key", exc.message)
    if isinstance(exc, KeyNotAllowed):
        return ApiError(
            404,
            "model_not_found",
            f"the model '{exc.route[:200]}' does not exist or this API key may not use it",
            param="model",
        )
    if isinstance(exc, KeyRateLimited):
        return ApiError(429, "rate_limited", exc.message, headers=_retry_after(exc.retry_after))
    if isinstance(exc, UnknownApiKey):
        return ApiError(404, "key_not_found", exc.message)
    if isinstance(exc, InvalidKeySettings):
        return ApiError(400, "invalid_request", exc.message)
    if isinstance(exc, ContextTooLong):  # also when every target of a route overflowed
        return ApiError(400, "context_length_exceeded", exc.message, param="messages")
    if isinstance(exc, AuthenticationFailed):  # a provider refused *our* key: not the caller's
        return ApiError(
            502,
            "all_providers_failed",
            "the provider refused the gateway's own credentials; the operator must fix them",
            extra={"attempts": _attempts(exc) if isinstance(exc, AllProvidersFailed) else []},
        )
    if isinstance(exc, InvalidRequest):
        return ApiError(400, "invalid_request", exc.message)
    if isinstance(exc, AllProvidersFailed):
        return ApiError(
            502,
            "all_providers_failed",
            exc.message,
            headers={"x-gateway-attempts": str(len(exc.attempts))},
            extra={"attempts": _attempts(exc)},
        )
    if isinstance(exc, ProviderUnavailable) and exc.chunks_received is not None:
        return ApiError(502, "stream_interrupted", exc.message)
    if isinstance(exc, ProviderError):  # a provider error outside a route (not expected)
        return ApiError(502, "all_providers_failed", exc.message)
    if isinstance(exc, InsufficientCredits):
        return ApiError(402, "insufficient_credits", exc.message, headers=_no_retry())
    if isinstance(exc, UnknownAccount):  # its message lists the other accounts: not shown
        return ApiError(
            404,
            "account_not_found",
            "no such credit account (a named account starts with its first purchase or grant)",
        )
    if isinstance(exc, SpendLimitExceeded):
        return ApiError(429, "spend_limit_exceeded", exc.message, headers=_no_retry())
    if isinstance(exc, IdempotencyConflict):
        return ApiError(409, "idempotency_conflict", exc.message)
    if isinstance(exc, PaymentDeclined):
        return ApiError(402, "payment_declined", exc.message)
    if isinstance(exc, InvalidCreditsInput):
        return ApiError(400, "invalid_request", exc.message)
    if isinstance(exc, CreditStoreUnavailable):
        return ApiError(
            503,
            "credit_store_unavailable",
            "the credit account cannot be reached right now; nothing was charged and no "
            "provider was called",
            headers={"retry-after": "5"},
        )
    if isinstance(exc, CreditStoreError):
        return ApiError(503, "credit_store_unavailable", "the credit account cannot be used")
    if isinstance(exc, ConfigError) and exc.key == "pricing":  # a direct call, not priced
        return ApiError(
            404,
            "model_not_found",
            "this gateway has no price for that model, so it cannot bill a call to it: use a "
            "route, or ask the operator to add its price",
            param="model",
        )
    if isinstance(exc, ConfigError):
        return ApiError(
            500,
            "gateway_misconfigured",
            "the gateway's configuration cannot serve this request; its operator must fix it "
            "(see the server's log)",
        )
    return ApiError(500, "internal_error", "the gateway failed to handle this request")


def _no_retry() -> dict[str, str]:
    # The OpenAI SDKs retry 429 and 5xx by themselves unless told not to; retrying a refusal
    # that only more credit or a new window can lift is pointless.
    return {"x-should-retry": "false"}


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
