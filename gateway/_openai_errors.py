"""Gateway errors in OpenAI's terms: the HTTP status and error body an OpenAI-compatible
server answers with, and the OpenAI SDK exception class that code written for the SDK catches.

One table, keyed on types (the most specific first), shared by the in-process OpenAI client
(``gw.openai_client()``), the drop-in client's exceptions, and any server:

================================================  ======  ===============================
error                                             status  code
================================================  ======  ===============================
InvalidApiKey (a gateway API key)                 401     ``invalid_api_key``
KeyNotAllowed                                     404     ``model_not_found``
KeyRateLimited                                    429     ``rate_limited``
UnknownApiKey                                     404     ``key_not_found``
InvalidKeySettings, InvalidCreditsInput           400     ``invalid_request``
ContextTooLong (also from every target)           400     ``context_length_exceeded``
UnsupportedArgument (also from every target)      400     ``unsupported_parameter``
AuthenticationFailed (a provider refused its key) 401     ``provider_authentication_failed``
                                                          (403 when the provider said 403)
InvalidRequest                                    400     ``invalid_request`` (a provider's
                                                          own 4xx status is kept)
AllProvidersFailed, every try rate-limited        429     ``rate_limited``
AllProvidersFailed                                502     ``all_providers_failed``
RateLimited                                       429     ``rate_limited``
a stream broken after content                     502     ``stream_interrupted``
any other ProviderError                           502     ``provider_error``
InsufficientCredits                               402     ``insufficient_credits``
SpendLimitExceeded                                429     ``spend_limit_exceeded``
PaymentDeclined                                   402     ``payment_declined``
IdempotencyConflict                               409     ``idempotency_conflict``
UnknownAccount                                    404     ``account_not_found``
CreditStoreUnavailable, CreditStoreError          503     ``credit_store_unavailable``
ConfigError: unknown route, provider or price     404     ``model_not_found``
any other ConfigError                             500     ``gateway_misconfigured``
anything else                                     500     ``internal_error``
================================================  ======  ===============================

Refusals that only more credit or a new window can lift carry ``x-should-retry: false`` (the
OpenAI SDKs obey it); a 429 carries ``retry-after`` when a wait is known. Messages that could
name a file, a host or other accounts (ConfigError, UnknownAccount, the credit store's errors)
are replaced by a fixed one in the body; the Python exception keeps its own. A server whose
callers do not own the provider keys may prefer 502 for AuthenticationFailed.

:func:`as_openai_error` makes a gateway error *also* an instance of the SDK class for its
status (``openai.RateLimitError`` for a 429...), in place, so that ``except GatewayError`` and
``except openai.APIStatusError`` both catch the same object. It does so only when ``openai``
is already imported: no code can catch a class of a module that is not loaded, and ``import
gateway`` must not import the SDK.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

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
    RateLimited,
    SpendLimitExceeded,
    UnknownAccount,
    UnknownApiKey,
    UnsupportedArgument,
)

if TYPE_CHECKING:
    import httpx2

__all__ = ["IN_PROCESS_BASE_URL", "ErrorShape", "as_openai_error", "attempt_list", "error_shape"]

#: The base URL of the in-process clients: a reserved name (RFC 2606) that never resolves,
#: so a request that escaped the in-process transport could not reach anybody.
IN_PROCESS_BASE_URL = "https://gateway.invalid/v1/"

#: OpenAI's error ``type`` for each status (the ``code`` is the precise, stable one).
_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    502: "upstream_error",
    503: "server_error",
}
_NO_RETRY = {"x-should-retry": "false"}
#: ConfigError keys that mean "no such model here" (Router.resolve, pricing).
_UNKNOWN_MODEL_KEYS = frozenset({"model", "routes", "providers", "pricing"})


@dataclass(frozen=True, slots=True)
class ErrorShape:
    """An error as an OpenAI-compatible HTTP answer: status, stable code, message."""

    status: int
    code: str
    message: str
    param: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    #: More fields of the body's ``error`` object (``attempts`` of a failed route).
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def type(self) -> str:
        return _TYPES.get(self.status, "server_error" if self.status >= 500 else "api_error")

    def error_object(self) -> dict[str, Any]:
        """The body's ``error`` object: ``message``, ``type``, ``code``, ``param``."""
        fields = {"message": self.message, "type": self.type, "code": self.code}
        return {**fields, "param": self.param, **self.extra}

    def body(self) -> dict[str, Any]:
        return {"error": self.error_object()}


def _retry_after(seconds: float | None) -> dict[str, str]:
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return {}
    return {"retry-after": str(max(1, math.ceil(seconds)))}


def attempt_list(error: AllProvidersFailed | ProviderError) -> list[dict[str, Any]]:
    """The tries of a failed route, as the error body lists them."""
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


def _client_status(error: ProviderError, allowed: range, default: int) -> int:
    status = error.status_code
    return status if status is not None and status in allowed else default


def error_shape(error: BaseException) -> ErrorShape:
    """The HTTP answer for ``error``, by its type (see the module's table)."""
    if not isinstance(error, GatewayError):
        return ErrorShape(500, "internal_error", "the gateway failed to handle this request")
    if isinstance(error, KeyNotAllowed | KeyRateLimited | InvalidApiKey | UnknownApiKey):
        return _key_error(error)
    if isinstance(error, InvalidKeySettings | InvalidCreditsInput):
        return ErrorShape(400, "invalid_request", error.message)
    if isinstance(error, ProviderError | AllProvidersFailed):
        return _call_error(error)
    return _account_error(error)


def _key_error(error: GatewayError) -> ErrorShape:
    if isinstance(error, InvalidApiKey):
        return ErrorShape(401, "invalid_api_key", error.message)
    if isinstance(error, KeyNotAllowed):
        message = f"the model '{error.route[:200]}' does not exist or this API key may not use it"
        return ErrorShape(404, "model_not_found", message, param="model")
    if isinstance(error, KeyRateLimited):
        return ErrorShape(
            429, "rate_limited", error.message, headers=_retry_after(error.retry_after)
        )
    return ErrorShape(404, "key_not_found", error.message)


def _call_error(error: ProviderError | AllProvidersFailed) -> ErrorShape:
    if isinstance(error, ContextTooLong):  # also when every target of a route overflowed
        return ErrorShape(400, "context_length_exceeded", error.message, param="messages")
    if isinstance(error, UnsupportedArgument):
        param = error.arguments[0] if error.arguments else None
        return ErrorShape(400, "unsupported_parameter", error.message, param=param)
    if isinstance(error, AuthenticationFailed):
        status = _client_status(error, range(401, 404), 401)
        return ErrorShape(status, "provider_authentication_failed", error.message)
    if isinstance(error, InvalidRequest):
        status = _client_status(error, range(400, 429), 400)
        return ErrorShape(
            400 if status in (401, 402, 403) else status, "invalid_request", error.message
        )
    if isinstance(error, AllProvidersFailed):
        extra = {"attempts": attempt_list(error)}
        errors = error.errors
        if error.reason is None and errors and all(isinstance(e, RateLimited) for e in errors):
            waits = [e.retry_after for e in errors if isinstance(e, RateLimited)]
            known = [w for w in waits if w is not None]
            headers = _retry_after(min(known)) if known else {}
            return ErrorShape(429, "rate_limited", error.message, headers=headers, extra=extra)
        return ErrorShape(502, "all_providers_failed", error.message, extra=extra)
    if isinstance(error, RateLimited):
        return ErrorShape(
            429, "rate_limited", error.message, headers=_retry_after(error.retry_after)
        )
    if isinstance(error, ProviderUnavailable) and error.chunks_received is not None:
        return ErrorShape(502, "stream_interrupted", error.message)
    return ErrorShape(502, "provider_error", error.message)


def _account_error(error: GatewayError) -> ErrorShape:
    if isinstance(error, InsufficientCredits):
        return ErrorShape(402, "insufficient_credits", error.message, headers=_NO_RETRY)
    if isinstance(error, SpendLimitExceeded):
        return ErrorShape(429, "spend_limit_exceeded", error.message, headers=_NO_RETRY)
    if isinstance(error, PaymentDeclined):
        return ErrorShape(402, "payment_declined", error.message)
    if isinstance(error, IdempotencyConflict):
        return ErrorShape(409, "idempotency_conflict", error.message)
    if isinstance(error, UnknownAccount):  # its message lists the other accounts
        return ErrorShape(
            404,
            "account_not_found",
            "no such credit account (a named account starts with its first purchase or grant)",
        )
    if isinstance(error, CreditStoreUnavailable | CreditStoreError):
        return ErrorShape(
            503,
            "credit_store_unavailable",
            "the credit account cannot be reached right now; nothing was charged and no "
            "provider was called",
            headers={"retry-after": "5"},
        )
    if isinstance(error, ConfigError) and error.key == "pricing":  # a direct call, not priced
        return ErrorShape(
            404,
            "model_not_found",
            "this gateway has no price for that model, so it cannot bill a call to it: use a "
            "route, or ask the operator to add its price",
            param="model",
        )
    if isinstance(error, ConfigError) and error.key in _UNKNOWN_MODEL_KEYS:
        return ErrorShape(
            404,
            "model_not_found",
            "the model does not exist here: use a route of the gateway's config, or a "
            "provider/model of a configured provider with a known price",
            param="model",
        )
    if isinstance(error, ConfigError):
        return ErrorShape(
            500,
            "gateway_misconfigured",
            "the gateway's configuration cannot serve this request; its operator must fix it",
        )
    return ErrorShape(500, "internal_error", "the gateway failed to handle this request")


# ---------------------------------------------------------------------------------------------
# The OpenAI SDK's exception classes


#: The classes made by :func:`_combined_class`, one per (gateway class, SDK class).
_COMBINED: dict[tuple[type, type], type] = {}


def _sdk_class(status: int) -> type:
    """The OpenAI SDK's exception class for an HTTP status (as its client picks it)."""
    import openai

    by_status: dict[int, type] = {
        400: openai.BadRequestError,
        401: openai.AuthenticationError,
        403: openai.PermissionDeniedError,
        404: openai.NotFoundError,
        409: openai.ConflictError,
        422: openai.UnprocessableEntityError,
        429: openai.RateLimitError,
    }
    found = by_status.get(status)
    if found is not None:
        return found
    return openai.InternalServerError if status >= 500 else openai.APIStatusError


def _combined_class(gateway_class: type, sdk_class: type) -> type:
    """A class that is both ``gateway_class`` and ``sdk_class``, named like the first."""
    key = (gateway_class, sdk_class)
    combined = _COMBINED.get(key)
    if combined is None:
        combined = type(
            gateway_class.__name__,
            (gateway_class, sdk_class),
            {
                "__module__": gateway_class.__module__,
                "__qualname__": gateway_class.__qualname__,
                "__doc__": gateway_class.__doc__,
            },
        )
        _COMBINED[key] = combined
    return combined


def http_response(shape: ErrorShape, request_id: str | None = None) -> httpx2.Response:
    """The HTTP answer of ``shape`` to a ``POST /v1/chat/completions``."""
    import httpx2

    headers = dict(shape.headers)
    if request_id is not None:
        headers["x-request-id"] = request_id
        headers["x-gateway-request-id"] = request_id
    request = httpx2.Request("POST", IN_PROCESS_BASE_URL + "chat/completions")
    return httpx2.Response(shape.status, headers=headers, json=shape.body(), request=request)


def as_openai_error(
    error: GatewayError,
    *,
    request_id: str | None = None,
    response: httpx2.Response | None = None,
) -> GatewayError:
    """Make ``error`` also the OpenAI SDK's exception for its status, in place (same object,
    same traceback), when ``openai`` is imported; return it.

    It gains the SDK's ``response``, ``request``, ``body``, ``type`` and ``param``;
    ``status_code`` becomes the status of the answer (almost always the provider's own, which
    each attempt keeps); ``code`` and ``request_id`` keep the provider's values and are filled
    in only where they were None."""
    if "openai" not in sys.modules:
        return error
    import openai

    if isinstance(error, openai.APIStatusError):
        return error  # already done (an error raised twice through the client)
    shape = error_shape(error)
    if response is None:
        response = http_response(shape, request_id)
    error.__class__ = _combined_class(type(error), _sdk_class(shape.status))
    fields = error.__dict__
    fields["response"] = response
    fields["request"] = response.request
    fields["body"] = shape.error_object()
    fields["type"] = shape.type
    fields["param"] = shape.param
    fields["status_code"] = shape.status
    if fields.get("code") is None:
        fields["code"] = shape.code
    if fields.get("request_id") is None:
        fields["request_id"] = request_id
    return error
