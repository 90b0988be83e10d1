"""Every error the gateway raises.

The tree::

    GatewayError
    ├── ConfigError                 bad YAML / settings: file, line, key, fix
    ├── ProviderError               one provider refused or failed one call
    │   ├── RateLimited             429, including an account out of quota
    │   ├── ProviderUnavailable     5xx, overloaded, timeout, connection failure
    │   │   ├── ProviderOverloaded  Anthropic 529 / in-stream overloaded_error
    │   │   ├── ProviderTimeout
    │   │   └── ProviderConnectionError
    │   ├── ContextTooLong          the prompt does not fit the model's window
    │   ├── InvalidRequest          the request itself is wrong (caller must fix)
    │   │   └── UnsupportedArgument an OpenAI argument this target has no equivalent for
    │   │                           (the call moves on to the route's next target)
    │   └── AuthenticationFailed    401 / 403: bad or missing key
    ├── AllProvidersFailed          every target of a route failed; carries the attempts
    │                               (when all failed with one non-retryable class, e.g.
    │                               ContextTooLong, the error raised is also of that class)
    ├── ApiKeyError                 a gateway API key (``gw.keys``, ``gateway serve``) refused
    │   ├── InvalidApiKey           the key presented is unknown, revoked or expired (.reason)
    │   ├── KeyNotAllowed           the key's routes allow-list does not include the model
    │   ├── KeyRateLimited          the key's rpm is used up this minute (.retry_after)
    │   ├── UnknownApiKey           (also a LookupError) no key has that id
    │   └── InvalidKeySettings      (also a ValueError) bad arguments to keys.create
    └── CreditsError
        ├── InsufficientCredits     refused before any provider was contacted
        ├── SpendLimitExceeded      a daily or monthly cap (the account's, or an API key's:
        │                           .api_key) would be passed
        ├── InvalidCreditsInput     (also a ValueError) bad input to the account; nothing written
        │   ├── InvalidAmount       bad money: negative, zero, NaN, float, too precise, too large
        │   └── InvalidAccount      a malformed account name
        ├── UnknownAccount          (also a LookupError) no such credit account
        ├── IdempotencyConflict     a key reused with different arguments
        ├── PaymentDeclined         the payment method refused a purchase
        ├── LedgerMismatch          verify(): a balance is not derivable from the entries
        ├── CreditStoreUnavailable  the credit store cannot be reached; the call is refused
        └── CreditStoreError        the SQLite ledger file cannot be used: which file, the fix

Each provider adapter maps its SDK's native exceptions into this tree in exactly one place
(``providers/<name>.py``, ``map_error``), keyed on exception types and status codes.

Messages never contain an API key: provider messages pass through :func:`redact` first, and
every message is redacted again when the error is made (a gateway key, ``gk_...``, included).
Every secret the config holds (API keys, header values, credentials in a URL) is registered
with :func:`register_secret`; from then on it is also redacted from the log records of the
HTTP stack and the SDKs (httpx2 logs each request's URL at INFO). An error mapped from an SDK
exception is raised with :func:`raise_unchained`: the SDK exception holds the request, with
its headers, and ``raise ... from None`` would still keep it in ``__context__``.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

if TYPE_CHECKING:
    from decimal import Decimal

    from gateway._attempts import Attempt

__all__ = [
    "AllProvidersFailed",
    "ApiKeyError",
    "AuthenticationFailed",
    "ConfigError",
    "ContextTooLong",
    "CreditStoreError",
    "CreditStoreUnavailable",
    "CreditsError",
    "GatewayError",
    "IdempotencyConflict",
    "InsufficientCredits",
    "InvalidAccount",
    "InvalidAmount",
    "InvalidApiKey",
    "InvalidCreditsInput",
    "InvalidKeySettings",
    "InvalidRequest",
    "KeyNotAllowed",
    "KeyRateLimited",
    "LedgerMismatch",
    "PaymentDeclined",
    "ProviderConnectionError",
    "ProviderError",
    "ProviderOverloaded",
    "ProviderTimeout",
    "ProviderUnavailable",
    "RateLimited",
    "SpendLimitExceeded",
    "UnknownAccount",
    "UnknownApiKey",
    "UnsupportedArgument",
    "raise_unchained",
    "redact",
    "register_secret",
]

# Shapes of the keys the three providers issue, the gateway's own API keys (gk_ + 43
# characters; see gateway/keys.py), plus bearer tokens in echoed headers.
_SECRET_PATTERNS = re.compile(
    r"(sk-[A-Za-z0-9_\-]{8,}|AIza[0-9A-Za-z_\-]{20,}|gk_[A-Za-z0-9_\-]{20,}"
    r"|(?i:bearer)\s+[A-Za-z0-9._\-]{8,})"
)
_known_secrets: set[str] = set()


#: Log records from these logger namespaces (and their children) are redacted: the HTTP
#: stack under the SDKs and the SDKs themselves, which log request URLs and options.
_REDACTED_LOGGERS = ("httpx2", "httpcore2", "httpx", "httpcore", "openai", "anthropic", "google")
_log_redaction_lock = threading.Lock()
_log_redaction_installed = False


def register_secret(value: str) -> None:
    """Remember a secret so that :func:`redact` removes it from any message, and from the
    log records of the HTTP stack and the SDKs."""
    if len(value) >= 4:
        _known_secrets.add(value)
        if not _log_redaction_installed:
            _install_log_redaction()


def redact(text: str) -> str:
    """Return ``text`` with every registered secret and key-shaped token replaced."""
    for secret in list(_known_secrets):
        if secret in text:
            text = text.replace(secret, "[REDACTED]")
    return _SECRET_PATTERNS.sub("[REDACTED]", text)


def _install_log_redaction() -> None:
    """Wrap the log record factory (chaining to the one in place) so that records of the
    loggers in :data:`_REDACTED_LOGGERS` are redacted when they are made, before any handler
    or filter of the application sees them. A filter on a logger would not do: it applies
    only to records of that exact logger, not of its children (``httpcore2.http11``...)."""
    global _log_redaction_installed
    with _log_redaction_lock:
        if _log_redaction_installed:
            return
        make_record = logging.getLogRecordFactory()

        def redacting_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = make_record(*args, **kwargs)
            if record.name.startswith(_REDACTED_LOGGERS):
                _redact_record(record)
            return record

        logging.setLogRecordFactory(redacting_factory)
        _log_redaction_installed = True


def _redact_record(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # a malformed record: logging reports it itself when it is handled
        return
    clean = redact(message)
    if clean != message:
        record.msg, record.args = clean, None
    if record.exc_info and record.exc_info[1] is not None:
        text = logging.Formatter().formatException(record.exc_info)
        record.exc_text = redact(text)


def raise_unchained(error: BaseException) -> NoReturn:
    """Raise ``error`` with no ``__cause__`` and no ``__context__``.

    ``raise error from None`` only hides the exception being handled: it stays reachable as
    ``error.__context__``, where error reporters and ``logging.exception`` handlers that walk
    the chain find it. An SDK exception carries the request, headers and key included."""
    try:
        raise error
    finally:
        # The ``raise`` just above set the exception being handled as the context.
        error.__context__ = None
        error.__cause__ = None
        error.__suppress_context__ = True


class GatewayError(Exception):
    """Base class of every error raised by the gateway."""

    def __init__(self, message: str) -> None:
        self.message = redact(message)
        super().__init__(self.message)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r})"


class ConfigError(GatewayError):
    """The routing config is wrong. Says which file, which line, which key, and how to fix it."""

    def __init__(
        self,
        problem: str,
        *,
        file: str | None = None,
        line: int | None = None,
        key: str | None = None,
        fix: str | None = None,
    ) -> None:
        self.problem = redact(problem)
        self.file = file
        self.line = line
        self.key = key
        self.fix = fix
        where = file or "<config>"
        if line is not None:
            where += f", line {line}"
        if key:
            where += f", key '{key}'"
        message = f"{where}: {self.problem}"
        if fix:
            message += f". Fix: {fix}"
        super().__init__(message)


class ProviderError(GatewayError):
    """One provider failed one call. ``kind`` names the trigger used by ``fallback_on``."""

    kind: ClassVar[str] = "provider_error"
    #: Whether trying another target may help (the route's ``fallback_on`` refines this).
    retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        model: str | None = None,
        status_code: int | None = None,
        retry_after: float | None = None,
        request_id: str | None = None,
        code: str | None = None,
    ) -> None:
        self.provider = provider
        self.model = model
        self.status_code = status_code
        #: Seconds the provider asked us to wait (from Retry-After / retry-after-ms), if any.
        self.retry_after = retry_after
        self.request_id = request_id
        #: The provider's own error code or type, e.g. ``insufficient_quota``.
        self.code = code
        #: The provider's message alone, without the target and status prefix.
        self.detail = redact(message)
        #: Every try of the call up to and including this one (set by the router).
        self.attempts: list[Attempt] = []
        target = f"{provider}/{model}" if model else provider
        status = f" (HTTP {status_code})" if status_code is not None else ""
        super().__init__(f"{target}{status}: {message}")


class RateLimited(ProviderError):
    """429: the provider is throttling us, or the provider account is out of quota."""

    kind = "rate_limited"
    retryable = True

    @property
    def quota_exhausted(self) -> bool:
        """True when the provider says the account has no money left (``insufficient_quota``)."""
        return self.code == "insufficient_quota"


class ProviderUnavailable(ProviderError):
    """The provider could not serve the call: 5xx, overload, timeout or lost connection.

    For a stream that broke after content was delivered, ``chunks_received`` says how much
    the caller already got.
    """

    kind = "server_error"
    retryable = True
    chunks_received: int | None = None


class ProviderOverloaded(ProviderUnavailable):
    """Anthropic's 529 or in-stream ``overloaded_error``."""

    kind = "overloaded"


class ProviderTimeout(ProviderUnavailable):
    """The call did not complete within its timeout."""

    kind = "timeout"


class ProviderConnectionError(ProviderUnavailable):
    """The connection to the provider failed or was reset."""

    kind = "connection"


class ContextTooLong(ProviderError):
    """The prompt does not fit the model's context window."""

    kind = "context_length"
    retryable = False


class InvalidRequest(ProviderError):
    """The request is malformed or asks for something the model cannot do. Not retried."""

    kind = "invalid_request"


class UnsupportedArgument(InvalidRequest):
    """The request carries an OpenAI argument this target's provider has no equivalent for
    (``seed`` on Anthropic, ``logit_bias`` anywhere but OpenAI...), found before the provider
    was contacted. Not retried, and not counted against the target's health; the call moves on
    to the route's next target, which may take it. ``arguments`` names them."""

    kind = "unsupported_argument"

    def __init__(
        self, message: str, *, provider: str, model: str | None, arguments: Sequence[str]
    ) -> None:
        self.arguments = tuple(arguments)
        super().__init__(message, provider=provider, model=model)


class AuthenticationFailed(ProviderError):
    """The provider rejected the API key (401) or its permissions (403). Not retried."""

    kind = "authentication"


class AllProvidersFailed(GatewayError):
    """Every target of the route failed. ``attempts`` lists every try, in order."""

    def __init__(self, route: str, attempts: Sequence[Attempt], reason: str | None = None) -> None:
        self.route = route
        self.attempts = list(attempts)
        #: Why the call stopped early (e.g. its deadline passed), if it did.
        self.reason = reason
        tried = sum(1 for a in self.attempts if a.outcome != "skipped")
        why = f" ({reason})" if reason else ""
        lines = [f"route '{route}' failed after {tried} attempt(s){why}:"]
        lines += [f"  {a.describe()}" for a in self.attempts]
        super().__init__("\n".join(lines))

    @property
    def errors(self) -> list[BaseException]:
        """The error of each failed attempt, in order."""
        return [a.error for a in self.attempts if a.error is not None]

    @classmethod
    def of(
        cls, route: str, attempts: Sequence[Attempt], reason: str | None = None
    ) -> AllProvidersFailed:
        """What a route that ran out of targets raises.

        When every target that was tried failed with the same error class that retrying cannot
        fix (e.g. ``ContextTooLong`` everywhere, or on a one-target route), that error, so that
        ``except ContextTooLong`` catches it; it is still an ``AllProvidersFailed``, with the
        route and every attempt. Otherwise (mixed errors, a retryable class, the call's
        deadline passed) a plain ``AllProvidersFailed``.
        """
        errors = [a.error for a in attempts if a.outcome == "error"]
        last = errors[-1] if errors else None
        if (
            reason is not None
            or not isinstance(last, ProviderError)
            or last.retryable
            or any(type(error) is not type(last) for error in errors)
        ):
            return cls(route, attempts, reason=reason)
        combined = _failed_everywhere(type(last))
        error = combined.__new__(combined)
        error.__dict__.update(last.__dict__)
        error.route = route
        error.attempts = list(attempts)
        error.reason = None
        message = last.message
        if len(errors) > 1:
            message += f"\n(every target of route '{route}' failed the same way:"
            message += "".join(f"\n  {a.describe()}" for a in attempts) + ")"
        error.message = message
        Exception.__init__(error, message)
        return error


#: The classes made by :func:`_failed_everywhere`, one per error class.
_FAILED_EVERYWHERE: dict[type[ProviderError], type[AllProvidersFailed]] = {}


def _failed_everywhere(error_class: type[ProviderError]) -> type[AllProvidersFailed]:
    """A class that is both ``error_class`` and :class:`AllProvidersFailed` (named like
    ``error_class``): what :meth:`AllProvidersFailed.of` raises when every try failed with it."""
    combined = _FAILED_EVERYWHERE.get(error_class)
    if combined is None:
        combined = type(
            error_class.__name__,
            (error_class, AllProvidersFailed),
            {
                "__module__": error_class.__module__,
                "__qualname__": error_class.__qualname__,
                "__doc__": f"{error_class.__name__} from every target of a route; also an "
                "AllProvidersFailed with the route and every attempt.",
            },
        )
        _FAILED_EVERYWHERE[error_class] = combined
    return combined


class ApiKeyError(GatewayError):
    """Base of the errors about the gateway's own API keys (:mod:`gateway.keys`). A message
    never contains a key, only its public id (``key_...``) and display prefix."""


class InvalidApiKey(ApiKeyError):
    """The key presented is not a valid key of this gateway. ``reason`` is ``"unknown"``
    (no such key, or not a key at all), ``"revoked"`` or ``"expired"``; ``key_id`` is the
    key's id when it is known (revoked or expired)."""

    def __init__(self, message: str, *, reason: str, key_id: str | None = None) -> None:
        self.reason = reason
        self.key_id = key_id
        super().__init__(message)


class KeyNotAllowed(ApiKeyError):
    """The key's routes allow-list does not include the route or model asked for; nothing
    was held and no provider was called."""

    def __init__(self, message: str, *, key_id: str, route: str) -> None:
        self.key_id = key_id
        self.route = route
        super().__init__(message)


class KeyRateLimited(ApiKeyError):
    """The key made its ``rpm`` calls this minute, across every process sharing the store;
    ``retry_after`` is the seconds until the next minute. Nothing was held and no provider
    was called (not a provider's 429: it never triggers fallback)."""

    def __init__(self, message: str, *, key_id: str, retry_after: float) -> None:
        self.key_id = key_id
        self.retry_after = retry_after
        super().__init__(message)


class UnknownApiKey(ApiKeyError, LookupError):
    """No API key has that id (``keys.get`` / ``keys.revoke``)."""


class InvalidKeySettings(ApiKeyError, ValueError):
    """An argument ``keys.create`` refuses (a name, a route, an rpm, a limit, an expiry).
    Nothing was written."""


class CreditsError(GatewayError):
    """Base of the errors raised by the credit account."""


class InsufficientCredits(CreditsError):
    """The account cannot cover the call's worst case; no provider was contacted."""


class SpendLimitExceeded(CreditsError):
    """The call would pass a daily or monthly spending cap; no provider was contacted.

    ``limit`` is ``"daily"`` or ``"monthly"``, ``window`` the day or month it applies to
    (``2026-01-15`` / ``2026-01``, in the account's time zone), ``cap`` the cap and
    ``committed`` what was already spent or on hold in it (USD; None when not known);
    ``api_key`` is the id of the API key whose own limit it is (None: the account's cap)."""

    def __init__(
        self,
        message: str,
        *,
        limit: str | None = None,
        window: str | None = None,
        cap: Decimal | None = None,
        committed: Decimal | None = None,
        api_key: str | None = None,
    ) -> None:
        self.limit = limit
        self.window = window
        self.cap = cap
        self.committed = committed
        self.api_key = api_key
        super().__init__(message)


class InvalidCreditsInput(CreditsError, ValueError):
    """An argument the credit account refuses (a tag, a date, a month, a key...). Nothing
    was written."""


class InvalidAmount(InvalidCreditsInput):
    """An amount of money the credit account refuses: negative, zero where a credit is
    expected, NaN, a float, not a number, finer than 1e-9 USD, or absurdly large. Nothing
    was written."""


class InvalidAccount(InvalidCreditsInput):
    """A credit account name that is not a short printable string. Nothing was written."""


class UnknownAccount(CreditsError, LookupError):
    """No credit account by that name exists in the store (a named account is created by
    its first purchase, grant or settings change)."""


class IdempotencyConflict(CreditsError):
    """An idempotency key was reused with different arguments (e.g. another amount)."""


class PaymentDeclined(CreditsError):
    """The payment method declined a purchase; no credit was added (the decline is
    recorded in the ledger). ``reason`` is the payment method's reason."""

    def __init__(self, message: str, *, reason: str) -> None:
        self.reason = reason
        super().__init__(message)


class LedgerMismatch(CreditsError):
    """``verify()`` found a balance that is not derivable from the ledger entries.
    ``problems`` lists each one."""

    def __init__(self, message: str, *, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__(message)


class CreditStoreUnavailable(CreditsError):
    """The credit store (a PostgreSQL server) could not be reached, or the connection was
    lost mid-transaction, even after reconnecting for a while. A call is refused before any
    provider is contacted (fail closed).

    ``written`` is False when nothing was written, None when the connection was lost during
    the commit and the change may or may not have been (repeating a hold, settle, release or
    keyed purchase is a no-op if it was)."""

    def __init__(self, message: str, *, written: bool | None = False) -> None:
        self.written = written
        super().__init__(message)


class CreditStoreError(CreditsError):
    """The SQLite credit ledger file cannot be used: it is not a ledger (another file, an
    empty or damaged one), a symbolic link, missing its folder, or the disk refused a read or
    a write. ``path`` is the file, ``fix`` what to do; nothing was written by the failed
    operation."""

    def __init__(self, problem: str, *, path: str, fix: str) -> None:
        self.problem = problem
        self.path = path
        self.fix = fix
        super().__init__(f"the credit ledger {path} {problem}. Fix: {fix}")
