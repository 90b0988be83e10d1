"""The routing config: YAML (or a dict) -> validated, typed models.

Load with :func:`load_config` (a file) or :func:`parse_config` (a dict or YAML text). Every
problem is a :class:`~gateway.errors.ConfigError` naming the file, the line, the key and the
fix; a secret's value never appears in one. Unknown keys are errors (``extra="forbid"``), so a
typo cannot be silently ignored.

A ``${VAR}`` under ``providers:`` whose variable is unset is reported when a call first uses
that provider, so one missing key does not break the other providers; anywhere else it is
reported at load time.
"""

from __future__ import annotations

import difflib
import importlib.util
import math
import re
from collections.abc import Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from urllib.parse import parse_qsl, unquote, unquote_plus, urlsplit, urlunsplit

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)

from gateway._yaml import MAX_CONFIG_BYTES, MAX_DEPTH, Located, MissingEnv, dotted, load_yaml_text
from gateway.chaos import ChaosConfig
from gateway.errors import ConfigError, register_secret

__all__ = [
    "WEBHOOK_EVENTS",
    "AlertsConfig",
    "BreakerConfig",
    "CreditsConfig",
    "GatewayConfig",
    "JournalConfig",
    "ModelPrice",
    "ProviderConfig",
    "RetryConfig",
    "RouteConfig",
    "Secret",
    "SecretHeaders",
    "ServerConfig",
    "TargetConfig",
    "TelemetryConfig",
    "WebhookConfig",
    "load_config",
    "parse_config",
    "parse_model_id",
]

ProviderType = Literal["openai", "anthropic", "gemini", "fake"]
PROVIDER_TYPES: tuple[str, ...] = get_args(ProviderType)
Strategy = Literal["fallback", "weighted", "lowest-latency", "cheapest"]
FallbackTrigger = Literal[
    "rate_limited", "server_error", "overloaded", "timeout", "connection", "context_length"
]
DEFAULT_FALLBACK_ON: tuple[FallbackTrigger, ...] = get_args(FallbackTrigger)

#: The events a webhook endpoint can receive (docs/ARCHITECTURE.md, "Webhooks").
WebhookEvent = Literal[
    "balance.low",
    "purchase.succeeded",
    "recharge.succeeded",
    "recharge.failed",
    "limit.reached",
    "credits.expiring",
    "credits.expired",
]
WEBHOOK_EVENTS: tuple[str, ...] = get_args(WebhookEvent)

#: Money is stored in integer units of 1e-9 USD, so no amount may be finer than that.
MONEY_PLACES = 9
#: The largest amount the config and the ledger accept ($1e9; the ledger's ``MAX_AMOUNT``):
#: every stored integer and every per-account sum stays far inside int64.
MAX_MONEY = Decimal(1_000_000_000)
#: What a repr or a dump of the config shows instead of a secret.
_MASK = "**********"


class Secret:
    """A secret from the config (an API key). Its value is never shown by repr or str."""

    __slots__ = ("_missing", "_value")

    def __init__(self, value: str | MissingEnv) -> None:
        if isinstance(value, MissingEnv):
            self._value: str | None = None
            self._missing: MissingEnv | None = value
        else:
            self._value = value
            self._missing = None
            register_secret(value)

    @property
    def is_set(self) -> bool:
        return self._value is not None

    def reveal(self) -> str:
        """The secret's value. Raises ConfigError if it came from an unset ``${VAR}``."""
        if self._value is None:
            assert self._missing is not None
            raise self._missing.error()
        return self._value

    @property
    def masked(self) -> str:
        """What a dump of the config shows instead of the value."""
        if self._missing is not None:
            return f"${{{self._missing.variable}}} (unset)"
        return _MASK

    def __repr__(self) -> str:
        if self._missing is not None:
            return f"Secret(unset ${{{self._missing.variable}}})"
        return f"Secret('{_MASK}')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and (self._value, self._missing) == (
            other._value,
            other._missing,
        )

    def __hash__(self) -> int:
        return hash((self._value, self._missing))


class SecretHeaders(Mapping[str, str]):
    """A provider's extra HTTP headers. Every value is treated as a secret (a proxy's token,
    a tenant key): registered for redaction, and shown as ``**********`` by repr, str and a
    dump of the config. As a mapping it holds the real values, which the SDK is given."""

    __slots__ = ("_headers",)

    def __init__(self, headers: Mapping[str, str] | None = None) -> None:
        self._headers = dict(headers or {})
        for value in self._headers.values():
            register_secret(value)

    def __getitem__(self, name: str) -> str:
        return self._headers[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._headers)

    def __len__(self) -> int:
        return len(self._headers)

    def masked(self) -> dict[str, str]:
        """The header names, each with ``**********`` for its value."""
        return dict.fromkeys(self._headers, _MASK)

    def __repr__(self) -> str:
        return repr(self.masked())

    __str__ = __repr__


def _to_headers(value: Any) -> SecretHeaders:
    if value is None or isinstance(value, SecretHeaders):
        return value or SecretHeaders()
    if not isinstance(value, Mapping):
        raise ValueError("must be a mapping of header names to values")
    for name, header in value.items():
        if not isinstance(name, str):
            raise ValueError(f"header names must be strings, not {type(name).__name__}")
        if isinstance(header, MissingEnv):
            raise ValueError(
                f"header '{name}': environment variable {header.variable} is not set "
                f"(export {header.variable}=<value> before starting)"
            )
        if not isinstance(header, str):
            raise ValueError(f"header '{name}' must be a string (quote the value)")
    return SecretHeaders(value)


def _to_secret(value: Any) -> Any:
    if value is None or isinstance(value, Secret):
        return value
    if isinstance(value, str | MissingEnv):
        return Secret(value)
    raise ValueError("must be a string (usually ${SOME_ENV_VAR})")


#: An amount written as text: ASCII digits with an optional sign, point and exponent.
#: ``Decimal()`` alone also reads ``"1_000"``, other scripts' digits (``"٥"``) and Unicode
#: spaces; an amount of money must read the same to every person and program that sees it.
_AMOUNT_TEXT = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def decimal_from_text(text: str) -> Decimal:
    """An amount written as text, exactly (``"20"``, ``"20.50"``, ``"5e-9"``). ``NaN`` and
    ``Infinity`` are returned for the caller to refuse by name. Anything else is a ValueError
    saying what is wrong, worded to follow the text: ``f"{text!r} {error}"``."""
    stripped = text.strip(" \t\r\n")
    if _AMOUNT_TEXT.fullmatch(stripped):
        return Decimal(stripped)
    if stripped.lower().lstrip("+-") in ("nan", "snan", "inf", "infinity"):
        return Decimal(stripped)
    if "_" in stripped or "," in stripped:
        raise ValueError("has a separator in it; write it without '_' or ',', e.g. 1000.50")
    if not stripped.isascii():
        raise ValueError("has characters other than the digits 0-9; write it like 5.00")
    raise ValueError('is not a number; write an amount such as "2.50"')


def _exact_amount(value: Any) -> Decimal:
    """An amount of USD, exactly: zero or more, finite, at most 9 decimal places, any size.
    Floats are refused: write money as a string."""
    if isinstance(value, bool):
        raise ValueError('must be an amount of money such as "2.50", not true/false')
    if isinstance(value, float):
        raise ValueError(
            f'{value!r} is a float; write money as a quoted decimal string, e.g. "2.50"'
        )
    if isinstance(value, int | Decimal):
        amount = Decimal(value)
    elif isinstance(value, str):
        try:
            amount = decimal_from_text(value)
        except ValueError as exc:
            raise ValueError(f"{value!r} {exc}") from None
    else:
        raise ValueError(f'must be an amount of money such as "2.50", not {type(value).__name__}')
    if not amount.is_finite():
        raise ValueError(f"{value!r} is not a finite amount")
    if amount < 0:
        raise ValueError(f"{value} is negative; amounts of money must be zero or more")
    exponent = amount.as_tuple().exponent
    if isinstance(exponent, int) and exponent < -MONEY_PLACES:
        raise ValueError(f"{value} has more than {MONEY_PLACES} decimal places")
    return amount


def _to_money(value: Any) -> Decimal:
    """An amount of USD in the config, exactly (see :func:`_exact_amount`), below $1e9 (the
    ledger's limit: a cap or a grant the ledger would refuse is refused at load)."""
    amount = _exact_amount(value)
    if amount >= MAX_MONEY:
        raise ValueError(f"{value} is absurdly large (the limit is below ${MAX_MONEY:,})")
    return amount


Money = Annotated[Decimal, BeforeValidator(_to_money)]
SecretField = Annotated[Secret | None, BeforeValidator(_to_secret)]


def _finite_number(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("must be a number, not true/false")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{value} is not a finite number")
    if isinstance(value, Decimal) and not value.is_finite():
        raise ValueError(f"{value} is not a finite number")
    return value


Seconds = Annotated[float, BeforeValidator(_finite_number), Field(gt=0)]


def parse_model_id(model_id: str) -> tuple[str, str]:
    """Split ``provider/model`` into its two parts; ValueError says how to write it."""
    provider, sep, model = model_id.partition("/")
    if not sep or not provider or not model or model_id != model_id.strip():
        raise ValueError(
            f"'{model_id}' is not a model id; write provider/model, e.g. openai/gpt-4o"
        )
    return provider, model


def url_without_password(url: str) -> str:
    """``url`` with its password (in the user part or a ``password=`` option) as ``***``;
    a URL without a password is returned exactly as written."""
    parts = urlsplit(url)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    masked_user = at and ":" in userinfo
    pairs = parts.query.split("&") if parts.query else []
    masked_query = any("password" in pair.partition("=")[0].lower() for pair in pairs)
    if not masked_user and not masked_query:
        return url
    if masked_user:
        userinfo = userinfo.partition(":")[0] + ":***"
    netloc = f"{userinfo}@{hosts}" if at else hosts
    query = "&".join(
        f"{pair.partition('=')[0]}=***" if "password" in pair.partition("=")[0].lower() else pair
        for pair in pairs
    )
    return urlunsplit(parts._replace(netloc=netloc, query=query))


#: Query parameters of a ``base_url`` whose values are credentials (``?key=``, ``?sig=``...).
_CREDENTIAL_PARAM = re.compile(r"pass|secret|token|key|auth|sig|credential", re.IGNORECASE)


def url_without_credentials(url: str) -> str:
    """``url`` with its credentials as ``***``: the password of the user part (or a user part
    without a password, which is then a token: ``https://TOKEN@host``) and the values of
    query parameters named like a credential. A URL without any is returned as written."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return _MASK
    userinfo, at, hosts = parts.netloc.rpartition("@")
    pairs = parts.query.split("&") if parts.query else []
    secret_pairs = [_is_credential_pair(pair) for pair in pairs]
    if not at and not any(secret_pairs):
        return url
    if at:
        user, colon, _ = userinfo.partition(":")
        userinfo = f"{user}:***" if colon else "***"
    netloc = f"{userinfo}@{hosts}" if at else hosts
    query = "&".join(
        f"{pair.partition('=')[0]}=***" if secret else pair
        for pair, secret in zip(pairs, secret_pairs, strict=True)
    )
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def _is_credential_pair(pair: str) -> bool:
    name, equals, value = pair.partition("=")
    return bool(equals and value and _CREDENTIAL_PARAM.search(unquote(name)))


def _register_url_credentials(url: str) -> None:
    """Register every credential :func:`url_without_credentials` hides, as written and
    decoded (a log line shows the URL as sent, percent-encoded)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return
    userinfo, at, _ = parts.netloc.rpartition("@")
    if at:
        user, colon, password = userinfo.partition(":")
        secret = password if colon else user
        register_secret(secret)
        register_secret(unquote(secret))
    for pair in parts.query.split("&") if parts.query else []:
        if _is_credential_pair(pair):
            value = pair.partition("=")[2]
            register_secret(value)
            register_secret(unquote_plus(value))


def _register_url_password(url: str) -> None:
    parts = urlsplit(url)
    if parts.password:
        register_secret(parts.password)
        register_secret(unquote(parts.password))
    for key, value in parse_qsl(parts.query):
        if "password" in key.lower():
            register_secret(value)


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, arbitrary_types_allowed=True, defer_build=True
    )


class ProviderConfig(_Model):
    """One provider account: which SDK, which key, where, how long to wait."""

    #: Which adapter serves it. Defaults to the provider's name in the YAML.
    type: ProviderType
    #: Its name in the YAML (the ``provider`` part of ``provider/model``).
    name: str
    api_key: SecretField = None
    #: Another endpoint for the same API (a proxy, Azure-style gateway, a local server). A
    #: password or token in it is a secret (see :func:`url_without_credentials`).
    base_url: str | None = None
    #: Seconds one request may take in total (the SDK default is 600).
    timeout: Seconds | None = None
    #: Seconds to establish the connection.
    connect_timeout: Seconds = 5.0
    #: Extra HTTP headers sent with every request; their values are secrets.
    headers: Annotated[SecretHeaders, BeforeValidator(_to_headers)] = Field(
        default_factory=SecretHeaders
    )
    #: Gemini only: the API version (``v1`` by default in google-genai 3.x, or ``v1beta``).
    api_version: str | None = None
    #: The HTTP stack of the async client (sync calls always use httpx2): ``aiohttp`` or
    #: ``httpx``; unset means aiohttp for OpenAI and Anthropic, httpx for Gemini (see
    #: gateway/providers/_transport.py).
    transport: Literal["aiohttp", "httpx"] | None = None
    #: ``${VAR}`` references (other than api_key) whose variable was unset, by key.
    missing_env: tuple[MissingEnv, ...] = ()

    @field_validator("transport")
    @classmethod
    def _transport_installed(cls, value: str | None) -> str | None:
        if value == "aiohttp" and importlib.util.find_spec("aiohttp") is None:
            raise ValueError(
                "transport aiohttp needs the aiohttp package, which is not installed: "
                "pip install aiohttp, or set transport: httpx"
            )
        return value

    @field_validator("base_url")
    @classmethod
    def _base_url_credentials(cls, value: str | None) -> str | None:
        if value is not None:
            _register_url_credentials(value)  # never shown in an error, a repr or a log line
        return value

    @field_serializer("api_key")
    def _dump_api_key(self, value: Secret | None) -> str | None:
        return None if value is None else value.masked

    @field_serializer("headers")
    def _dump_headers(self, value: SecretHeaders) -> dict[str, str]:
        return value.masked()

    @field_serializer("base_url")
    def _dump_base_url(self, value: str | None) -> str | None:
        return None if value is None else url_without_credentials(value)

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            yield name, self._dump_base_url(value) if name == "base_url" else value

    def check_env(self) -> None:
        """Raise the ConfigError for the first unset ``${VAR}`` this provider needs."""
        if self.missing_env:
            raise self.missing_env[0].error()
        if self.api_key is not None and not self.api_key.is_set:
            self.api_key.reveal()


class TargetConfig(_Model):
    """One place a route can send a call, with its own overrides."""

    #: ``provider/model``.
    model: str
    #: Share of traffic for the ``weighted`` strategy.
    weight: Annotated[float, BeforeValidator(_finite_number), Field(gt=0)] = 1.0
    max_tokens: Annotated[int, Field(gt=0)] | None = None
    temperature: Annotated[float, BeforeValidator(_finite_number), Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, BeforeValidator(_finite_number), Field(gt=0, le=1)] | None = None
    #: Seconds one try at this target may take.
    timeout: Seconds | None = None
    #: Extra provider parameters merged into the request body.
    params: dict[str, Any] = Field(default_factory=dict)
    #: Client-side request and token limits per minute.
    rpm: Annotated[int, Field(gt=0)] | None = None
    tpm: Annotated[int, Field(gt=0)] | None = None
    #: The model's context window in tokens (for context-length fallback).
    context_window: Annotated[int, Field(gt=0)] | None = None
    #: Embedding models: the vectors' length, sent as ``dimensions`` when a call names none.
    #: Targets of different models that declare the same dimensions are declared
    #: interchangeable, and an embeddings call may fall back from one to another.
    dimensions: Annotated[int, Field(gt=0, le=65_536)] | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"model": data} if isinstance(data, str) else data

    @field_validator("model")
    @classmethod
    def _model_id(cls, value: str) -> str:
        parse_model_id(value)
        return value

    @property
    def provider(self) -> str:
        return parse_model_id(self.model)[0]

    @property
    def model_name(self) -> str:
        return parse_model_id(self.model)[1]


class RetryConfig(_Model):
    """Retries of one target before moving to the next."""

    #: Tries per target, the first included (1 = no retry).
    attempts: Annotated[int, Field(ge=1, le=20)] = 2
    backoff: Literal["exponential", "constant"] = "exponential"
    initial_s: Annotated[float, BeforeValidator(_finite_number), Field(ge=0)] = 0.5
    max_s: Annotated[float, BeforeValidator(_finite_number), Field(ge=0)] = 8.0
    jitter: bool = True
    #: Longest Retry-After the gateway will honour; a longer wait moves to the next target.
    max_retry_after_s: Annotated[float, BeforeValidator(_finite_number), Field(ge=0)] = 30.0


class BreakerConfig(_Model):
    """Per-target circuit breaker."""

    failures: Annotated[int, Field(ge=1)] = 5
    window_s: Seconds = 60.0
    cooldown_s: Seconds = 30.0


class RouteConfig(_Model):
    """A named route: which targets, in which order or mix, and how to retry them."""

    strategy: Strategy = "fallback"
    targets: Annotated[list[TargetConfig], Field(min_length=1)]
    retry: RetryConfig = Field(default_factory=RetryConfig)
    breaker: BreakerConfig = Field(default_factory=BreakerConfig)
    #: Overall seconds for one call, retries and fallbacks included.
    timeout: Seconds | None = None
    #: Which errors move on to the next target.
    fallback_on: tuple[FallbackTrigger, ...] = DEFAULT_FALLBACK_ON
    #: Share of calls the ``lowest-latency`` strategy sends to a random target.
    exploration: Annotated[float, BeforeValidator(_finite_number), Field(ge=0, le=1)] = 0.05


class AutoRechargeConfig(_Model):
    below: Money
    amount: Money
    monthly_limit: Money


class LimitsConfig(_Model):
    daily: Money | None = None
    monthly: Money | None = None


class JournalConfig(_Model):
    """The settlement journal (docs/ARCHITECTURE.md, "The settlement journal"): each
    settled call is appended to a local file before its answer is returned, so a process
    that dies before its batch is written loses no call."""

    enabled: bool = True
    #: Where journals live. Default: beside an SQLite ledger (``<file>.journal``); for
    #: PostgreSQL ``$XDG_STATE_HOME/llm-gateway/journal/<store hash>`` (per host).
    dir: str | None = None
    #: Flush every record to disk (survives a power cut too; costs a disk flush per call).
    fsync: bool = False


class AlertsConfig(_Model):
    """When the credit account raises the ``balance.low`` and ``credits.expiring`` webhook
    events (each off when not set)."""

    #: ``balance.low`` when the posted balance drops below this (once per crossing).
    balance_below: Money | None = None
    #: ``credits.expiring`` once per lot of credit, this many days before it expires.
    expiring_within_days: Annotated[int, Field(ge=1, le=3650)] | None = None


class CreditsConfig(_Model):
    """The credit account: where it is stored and how it behaves."""

    store: str = "sqlite:///gateway-credits.db"
    mode: Literal["prepaid", "payg"] = "prepaid"
    auto_recharge: AutoRechargeConfig | None = None
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    #: Thresholds of the balance.low and credits.expiring webhook events.
    alerts: AlertsConfig = Field(default_factory=AlertsConfig)
    expiry_days: Annotated[int, Field(ge=1, le=36500)] = 365
    min_purchase: Money = Decimal("5")
    max_purchase: Money = Decimal("10000")
    #: Seconds after which an unsettled hold (a crashed process) is released.
    hold_ttl_s: Seconds = 900.0
    #: How long a gateway may keep settled calls in memory before writing them to the store
    #: in one transaction (it also writes every ``max_batch`` calls, on close and at exit).
    #: Calls are held against a budget lease the process takes from the account. 0 writes
    #: every hold and settlement at once (two store transactions per call). See
    #: docs/ARCHITECTURE.md, "Write-behind settlement".
    flush_interval_ms: Annotated[int, Field(ge=0, le=60_000)] = 200
    #: At most this many settled calls are kept in memory before they are written.
    max_batch: Annotated[int, Field(ge=1, le=100_000)] = 500
    #: Settled calls not written yet are journaled locally first (see JournalConfig).
    journal: JournalConfig = Field(default_factory=JournalConfig)
    #: On SIGTERM / SIGINT, write pending calls before the process ends (the handlers the
    #: application installed earlier still run, after it). Only from the main thread.
    flush_on_signals: bool = True
    #: Time zone of the daily and monthly windows.
    timezone: str = "UTC"
    default_account: str = "default"

    @field_validator("store")
    @classmethod
    def _store_url(cls, value: str) -> str:
        _register_url_password(value)  # never shown in an error, a repr or a log line
        if not value.startswith(("sqlite://", "postgresql://", "postgres://", "memory://")):
            raise ValueError(
                f"'{url_without_password(value)}' is not a store URL; "
                "use sqlite:///path.db or postgresql://..."
            )
        return value

    @field_serializer("store")
    def _dump_store(self, value: str) -> str:
        return url_without_password(value)

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            yield name, url_without_password(value) if name == "store" else value


class ServerConfig(_Model):
    """``gateway serve``: the admin key and the HTTP server's limits (gateway/server)."""

    #: Opens ``/v1/admin/...``; with it, ``x-gateway-account`` picks the paying account.
    admin_key: SecretField = None
    #: Signs the dashboard's session cookies (default: derived from ``admin_key``); every
    #: worker and host serving one dashboard needs the same one.
    session_secret: SecretField = None
    #: The largest request body accepted, in bytes; a larger one is refused with 413.
    max_body_bytes: Annotated[int, Field(ge=1024, le=1 << 30)] = 8 << 20
    #: Seconds a client may take to send its request body before it is refused with 408.
    body_timeout_s: Seconds = 30.0
    #: On SIGTERM: seconds calls and streams in flight may take to finish before they are cut.
    drain_timeout_s: Seconds = 30.0

    @field_validator("admin_key", "session_secret")
    @classmethod
    def _long_admin_key(cls, value: Secret | None) -> Secret | None:
        if value is not None and value.is_set and len(value.reveal()) < 16:
            raise ValueError("must have at least 16 characters (random ones)")
        return value


class TelemetryConfig(_Model):
    """The ``telemetry:`` section: OpenTelemetry spans and metrics (gateway/telemetry)."""

    #: Emit spans and metrics through the OpenTelemetry API (``pip install '.[otel]'``).
    opentelemetry: bool = False
    #: Also record prompts and answers on the call's span (they may hold personal data).
    capture_content: bool = False


#: Hosts that are this machine: a webhook to one may use plain http.
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
_WEBHOOK_SECRET_PREFIX = "whsec_"


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host.lower() in _LOOPBACK_NAMES or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_webhook_secret(secret: Secret) -> None:
    """A Standard Webhooks secret: ``whsec_`` and the base64 of 24 to 64 random bytes. The
    error never shows the value."""
    import base64
    import binascii

    value = secret.reveal()
    if not value.startswith(_WEBHOOK_SECRET_PREFIX):
        raise ValueError(
            "the secret must be a Standard Webhooks secret starting with whsec_ (make one "
            'with: python -c "import base64, os; '
            "print('whsec_' + base64.b64encode(os.urandom(32)).decode())\")"
        )
    register_secret(value.removeprefix(_WEBHOOK_SECRET_PREFIX))
    try:
        key = base64.b64decode(value.removeprefix(_WEBHOOK_SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the secret after whsec_ is not base64") from None
    if not 24 <= len(key) <= 64:
        raise ValueError(
            f"the secret after whsec_ decodes to {len(key)} bytes; use 24 to 64 random bytes"
        )


class WebhookConfig(_Model):
    """One endpoint that receives the credit account's events, signed per Standard Webhooks."""

    #: Where events are POSTed: https, or http to this machine (or with ``allow_http``).
    url: str
    #: The signing secret, ``whsec_...`` (usually ``${WEBHOOK_SECRET}``).
    secret: SecretField
    #: The events it receives (default: all).
    events: tuple[WebhookEvent, ...] = get_args(WebhookEvent)
    #: Plain http to a host other than this machine (the events and signatures travel
    #: readable by anyone on the way).
    allow_http: bool = False
    #: Seconds one delivery attempt may take.
    timeout: Annotated[float, BeforeValidator(_finite_number), Field(gt=0, le=60)] = 10.0

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        _register_url_credentials(value)  # never shown in an error, a repr or a log line
        try:
            parts = urlsplit(value)
            host = parts.hostname
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number
        except ValueError:
            raise ValueError("is not a valid URL") from None
        if parts.scheme not in ("http", "https"):
            raise ValueError(
                f"'{url_without_credentials(value)}' is not an http(s) URL; webhooks are "
                "sent to https://... (or http:// to this machine)"
            )
        if not host:
            raise ValueError(f"'{url_without_credentials(value)}' names no host")
        return value

    @field_validator("events")
    @classmethod
    def _events(cls, value: tuple[WebhookEvent, ...]) -> tuple[WebhookEvent, ...]:
        if not value:
            raise ValueError("lists no event; leave events: out to receive every event")
        return tuple(dict.fromkeys(value))

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: Secret | None) -> Secret:
        if value is None:
            raise ValueError("a webhook needs a secret (whsec_...) to sign its events")
        _check_webhook_secret(value)
        return value

    @model_validator(mode="after")
    def _plain_http(self) -> WebhookConfig:
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        if parts.scheme == "http" and not self.allow_http and not _is_loopback(host):
            raise ValueError(
                f"'{url_without_credentials(self.url)}' is plain http to another machine: "
                "anyone on the way can read the events. Use https, or add allow_http: true "
                "to this endpoint"
            )
        return self

    @property
    def display_url(self) -> str:
        """The URL with any credentials in it as ``***``."""
        return url_without_credentials(self.url)

    @field_serializer("url")
    def _dump_url(self, value: str) -> str:
        return url_without_credentials(value)

    @field_serializer("secret")
    def _dump_secret(self, value: Secret) -> str:
        return value.masked

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            yield name, url_without_credentials(value) if name == "url" else value


class LongContextPrice(_Model):
    """Prices that apply once the prompt exceeds ``above_input_tokens``."""

    above_input_tokens: Annotated[int, Field(gt=0)]
    input: Money
    output: Money
    cached_input: Money | None = None
    cache_write: Money | None = None


#: A ``per_image`` key: a size (``1024x1024``, ``auto``) or ``*`` (any size), optionally
#: followed by ``/`` and a quality (``1024x1024/hd``).
_PER_IMAGE_KEY = re.compile(r"(\*|auto|[1-9][0-9]{0,4}x[1-9][0-9]{0,4})(/[a-z]+)?")


def _per_image(value: Any) -> Any:
    if value is None or not isinstance(value, Mapping):
        return value  # pydantic reports the wrong type
    if not value:
        raise ValueError('lists no price; write e.g. per_image: {"1024x1024": "0.04"}')
    for key in value:
        if not isinstance(key, str) or not _PER_IMAGE_KEY.fullmatch(key):
            raise ValueError(
                f"{key!r} is not an image size; write a size such as 1024x1024, a size and a "
                'quality such as 1024x1024/hd, or "*" for any size'
            )
    return value


class ModelPrice(_Model):
    """USD per 1M tokens for one ``provider/model`` (``input`` and ``output``; ``input`` alone
    for an embedding model), or per generated image (``per_image``)."""

    input: Money | None = None
    output: Money | None = None
    cached_input: Money | None = None
    cache_write: Money | None = None
    #: Price of reasoning tokens when it differs from ``output``.
    reasoning: Money | None = None
    long_context: LongContextPrice | None = None
    #: Multiplier for batch requests (0.5 = half price).
    batch_discount: Annotated[Decimal, BeforeValidator(_to_money), Field(le=1)] | None = None
    #: Prices of batch requests, when they are not simply ``batch_discount`` times these.
    batch: ModelPrice | None = None
    #: Image tokens in a prompt, when they cost other than ``input``.
    input_image: Money | None = None
    #: Image tokens generated, when they cost other than ``output`` (gpt-image-1.5, Gemini).
    output_image: Money | None = None
    #: USD per generated image, by size (``"1024x1024"``), size and quality
    #: (``"1024x1024/hd"``) or ``"*"`` (any size); such a model's images cost only this.
    per_image: Annotated[dict[str, Money], BeforeValidator(_per_image)] | None = None

    @model_validator(mode="after")
    def _priced(self) -> ModelPrice:
        if self.input is None and self.per_image is None:
            raise ValueError(
                "a price needs input (and, for a chat model, output) in USD per 1M tokens, "
                'or per_image: e.g. {input: "2.50", output: "10.00"}'
            )
        if self.input is None and self.output is not None:
            raise ValueError("output is priced but input is not; give input too")
        return self


class GatewayConfig(_Model):
    """The whole config file."""

    providers: dict[str, ProviderConfig] = Field(default_factory=dict)
    routes: dict[str, RouteConfig] = Field(default_factory=dict)
    credits: CreditsConfig | None = None
    pricing: dict[str, ModelPrice] = Field(default_factory=dict)
    #: Fault injection for staging (off unless ``chaos.enabled``).
    chaos: ChaosConfig | None = None
    #: An OpenAI argument that only hints at how to answer (``seed``, the penalties,
    #: ``service_tier``, ``verbosity``, ``prediction``) sent to a target without an equivalent:
    #: ``drop`` leaves it out; ``refuse`` refuses that target (the call moves on to the next).
    untranslatable_hints: Literal["drop", "refuse"] = "drop"
    #: ``gateway serve`` (the admin key, body and drain limits).
    server: ServerConfig | None = None
    #: OpenTelemetry traces and metrics (off unless ``telemetry.opentelemetry``).
    telemetry: TelemetryConfig = Field(default_factory=TelemetryConfig)
    #: Endpoints that receive the credit account's events (gateway/webhooks).
    webhooks: tuple[WebhookConfig, ...] = ()
    #: Where it was loaded from, for error messages.
    source: str = "<config>"
    _lines: dict[tuple[str | int, ...], int] = PrivateAttr(default_factory=dict)

    def line_of(self, *path: str | int) -> int | None:
        """The line of the YAML file a key path came from (None for dict configs)."""
        for end in range(len(path), -1, -1):
            line = self._lines.get(path[:end])
            if line is not None:
                return line
        return None


# ---------------------------------------------------------------------------------------------
# Loading


def load_config(path: str | Path, *, env: Mapping[str, str] | None = None) -> GatewayConfig:
    """Read and validate a YAML config file."""
    file = str(path)
    try:
        with Path(path).open("rb") as stream:
            # One byte past the limit is enough to refuse it (and /dev/zero ends here too).
            data = stream.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(
            "file not found", file=file, fix="check the path, or create it (see README)"
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read the file: {exc.strerror}", file=file) from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"this file is over a config's limits: more than {MAX_CONFIG_BYTES // 1024} KiB",
            file=file,
            fix="check that this is the config file you meant",
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"this is not UTF-8 text (byte {exc.start + 1} cannot be read)",
            file=file,
            line=line,
            fix="save the file as UTF-8",
        ) from None
    return _store_beside(_validate(load_yaml_text(text, file=file, env=env)), Path(path))


def _store_beside(config: GatewayConfig, file: Path) -> GatewayConfig:
    """A relative ``sqlite:///`` ledger path made absolute against the config file's folder,
    so that the ledger does not depend on the directory a command runs in."""
    import os

    store = config.credits.store if config.credits is not None else ""
    path, sep, options = store.removeprefix("sqlite:///").partition("?")
    if config.credits is None or not store.startswith("sqlite:///") or not path:
        return config
    if path == ":memory:" or Path(path).is_absolute():
        return config
    url = f"sqlite:///{Path(os.path.abspath(file)).parent / path}{sep}{options}"
    credits = config.credits.model_copy(update={"store": url})
    return config.model_copy(update={"credits": credits})


def parse_config(
    data: Mapping[str, Any] | str | GatewayConfig,
    *,
    source: str = "<config>",
    env: Mapping[str, str] | None = None,
) -> GatewayConfig:
    """Validate a config given as a dict, as YAML text, or as an already built model."""
    if isinstance(data, GatewayConfig):
        return data
    if isinstance(data, str):
        return _validate(load_yaml_text(data, file=source, env=env))
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"a config must be a mapping, YAML text or GatewayConfig, not {type(data).__name__}",
            file=source,
        )
    return _validate(Located(_interpolate_plain(data, source, env, ()), source))


def _interpolate_plain(
    value: Any, source: str, env: Mapping[str, str] | None, path: tuple[str | int, ...]
) -> Any:
    import os

    from gateway._yaml import interpolate

    if len(path) >= MAX_DEPTH and isinstance(value, Mapping | list | tuple):
        # Also what stops a dict that contains itself.
        raise ConfigError(
            f"this config is over a config's limits: nested more than {MAX_DEPTH} levels deep",
            file=source,
            key=dotted(path[:8]) + "...",
            fix="a config holds plain settings: write them out plainly",
        )
    if isinstance(value, Mapping):
        return {k: _interpolate_plain(v, source, env, (*path, str(k))) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_interpolate_plain(v, source, env, (*path, i)) for i, v in enumerate(value)]
    if isinstance(value, str) and "${" in value:
        return interpolate(
            value, file=source, line=None, key=dotted(path), env=os.environ if env is None else env
        )
    return value


def _validate(doc: Located) -> GatewayConfig:
    data = doc.data
    if not isinstance(data, dict):
        raise ConfigError(
            "the top level must be a mapping with providers: and routes:, "
            f"not {type(data).__name__}",
            file=doc.file,
            line=1,
        )
    data = _prepare_providers(dict(data), doc)
    _reject_missing_env(data, doc, ())
    data["source"] = doc.file
    try:
        config = GatewayConfig.model_validate(data)
    except ValidationError as exc:
        raise _config_error(exc, doc) from None
    _check_references(config, doc)
    config._lines = doc.lines
    return config


def _check_references(config: GatewayConfig, doc: Located) -> None:
    """Checks across sections: route names, target providers, pricing keys."""
    for route_name, route in config.routes.items():
        path: tuple[str | int, ...] = ("routes", route_name)
        if route_name in config.providers or "/" in route_name:
            raise ConfigError(
                "a route name must not contain '/' or equal a provider name",
                file=doc.file,
                line=doc.line_of(path),
                key=dotted(path),
                fix="rename the route; 'provider/model' names are reserved for direct calls",
            )
        for i, target in enumerate(route.targets):
            if target.provider not in config.providers:
                names = ", ".join(sorted(config.providers)) or "none"
                target_path = (*path, "targets", i)
                raise ConfigError(
                    f"target '{target.model}' uses provider '{target.provider}', which is not "
                    f"under providers: (configured: {names})",
                    file=doc.file,
                    line=doc.line_of(target_path),
                    key=dotted(target_path),
                    fix="add that provider under providers:, or fix the model id",
                )
        _check_embedding_route(route_name, route, doc)
    _check_webhooks(config, doc)
    for model_id in config.pricing:
        try:
            parse_model_id(model_id)
        except ValueError as exc:
            price_path = ("pricing", model_id)
            raise ConfigError(
                str(exc),
                file=doc.file,
                line=doc.line_of(price_path),
                key=dotted(price_path),
                fix="key each price by provider/model",
            ) from None


def _check_webhooks(config: GatewayConfig, doc: Located) -> None:
    """Webhooks send the credit account's events, from an outbox in its store; each URL once."""
    seen: set[str] = set()
    for i, hook in enumerate(config.webhooks):
        path: tuple[str | int, ...] = ("webhooks", i)
        if config.credits is None:
            raise ConfigError(
                "webhooks: needs a credits: section (the events come from the credit account, "
                "and their outbox lives in its store)",
                file=doc.file,
                line=doc.line_of(path),
                key="webhooks",
                fix="add credits: {store: sqlite:///credits.db}, or remove webhooks:",
            )
        if hook.url in seen:
            raise ConfigError(
                f"the endpoint {hook.display_url} is listed twice",
                file=doc.file,
                line=doc.line_of(path),
                key=dotted(path),
                fix="list each URL once, with every event it should receive under events:",
            )
        seen.add(hook.url)


def _check_embedding_route(name: str, route: RouteConfig, doc: Located) -> None:
    """A route of embedding models falls back only between targets whose vectors may mix."""
    from gateway.providers.media import EMBEDDING_MIX_FIX, embedding_mix, model_kind

    if len(route.targets) < 2 or any(
        model_kind(t.model_name) != "embeddings" for t in route.targets
    ):
        return
    problem = embedding_mix([(t.model, t.model_name, t.dimensions) for t in route.targets])
    if problem is not None:
        path: tuple[str | int, ...] = ("routes", name, "targets")
        raise ConfigError(
            f"route '{name}': {problem}",
            file=doc.file,
            line=doc.line_of(path),
            key=dotted(path),
            fix=EMBEDDING_MIX_FIX,
        )


def _prepare_providers(data: dict[str, Any], doc: Located) -> dict[str, Any]:
    """Fill in ``name`` and ``type``; set aside unset ``${VAR}`` values for lazy errors."""
    providers = data.get("providers")
    if not isinstance(providers, dict):
        return data
    prepared: dict[str, Any] = {}
    for name, section in providers.items():
        path: tuple[str | int, ...] = ("providers", name)
        if section is None:
            section = {}
        if not isinstance(section, dict):
            prepared[name] = section  # pydantic reports the wrong type
            continue
        section = dict(section)
        missing = []
        for key, value in list(section.items()):
            if isinstance(value, MissingEnv) and key != "api_key":
                missing.append(value)
                del section[key]
        kind = section.get("type", name)
        if kind not in PROVIDER_TYPES:
            known = ", ".join(PROVIDER_TYPES)
            where = "type" if "type" in section else None
            raise ConfigError(
                f"unknown provider '{kind}' (known: {known})",
                file=doc.file,
                line=doc.line_of((*path, "type") if where else path),
                key=dotted((*path, "type") if where else path),
                fix="check the spelling, or for a second account of a known provider add "
                "type: openai (or anthropic, gemini, fake)",
            )
        section["type"] = kind
        section["name"] = name
        if missing:
            section["missing_env"] = tuple(missing)
        prepared[name] = section
    data["providers"] = prepared
    return data


def _reject_missing_env(value: Any, doc: Located, path: tuple[str | int, ...]) -> None:
    if isinstance(value, MissingEnv):
        raise value.error()
    if isinstance(value, dict):
        for key, item in value.items():
            if path == () and key == "providers":
                continue
            _reject_missing_env(item, doc, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _reject_missing_env(item, doc, (*path, i))


_FIXES = {
    "extra_forbidden": "remove it, or check its spelling against the README's YAML reference",
    "missing": "add it",
    "literal_error": "use one of the allowed values",
    "greater_than": "use a larger value",
    "greater_than_equal": "use a larger value",
    "less_than_equal": "use a smaller value",
    "too_short": "add at least one entry",
}


def _config_error(exc: ValidationError, doc: Located) -> ConfigError:
    problems: list[tuple[tuple[str | int, ...], str, str | None]] = []
    errors = exc.errors(include_url=False, include_input=False)
    # The value given, kept only where it is one word of a fixed set (never a secret's place).
    given = {
        id(err): detail.get("input")
        for err, detail in zip(errors, exc.errors(include_url=False), strict=True)
        if err["type"] in _CHOICE_ERRORS
    }
    # A misspelt key usually also makes a required key "missing": report the typo first.
    errors.sort(key=lambda e: e["type"] != "extra_forbidden")
    missing_by_parent: dict[tuple[str | int, ...], list[str]] = {}
    for err in errors:
        path = _clean_loc(err["loc"], doc)
        if err["type"] == "missing" and path and isinstance(path[-1], str):
            missing_by_parent.setdefault(path[:-1], []).append(path[-1])
    for err in errors:
        path = _clean_loc(err["loc"], doc)
        kind = err["type"]
        message = err["msg"]
        fix = _FIXES.get(kind)
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        if kind == "extra_forbidden":
            message = f"unknown key '{path[-1]}'" if path else "unknown key"
            near = difflib.get_close_matches(
                str(path[-1]) if path else "", missing_by_parent.get(path[:-1], []), n=1
            )
            if near:
                fix = f"did you mean '{near[0]}'?"
        elif kind in _CHOICE_ERRORS:
            message = _choice_error(message, err.get("ctx"), given.get(id(err)))
        elif kind == "missing":
            message = f"required key '{path[-1]}' is missing" if path else "a key is missing"
        elif kind in ("model_type", "dict_type"):
            message = f"must be a mapping of keys, {message[0].lower()}{message[1:]}"
        problems.append((path, message, fix))
    path, message, fix = problems[0]
    if len(problems) > 1:
        others = "; ".join(
            f"line {doc.line_of(p) or '?'} '{dotted(p)}': {m}" for p, m, _ in problems[1:4]
        )
        more = f" (and {len(problems) - 4} more)" if len(problems) > 4 else ""
        message += f". Also: {others}{more}"
    key = dotted(path) or None
    if path and path[-1] in ("source", "name", "missing_env"):
        key = dotted(path[:-1]) or None
    return ConfigError(message, file=doc.file, line=doc.line_of(path), key=key, fix=fix)


#: Errors of a value outside a fixed set (``strategy: fallbak``).
_CHOICE_ERRORS = frozenset({"literal_error", "enum"})


def _choice_error(message: str, ctx: dict[str, Any] | None, value: Any) -> str:
    """Echo the value given and name the allowed value closest to it, if one is close."""
    if not isinstance(value, str | int | float | bool) or len(str(value)) > 40:
        return message
    message = f"{message}, not {value!r}"
    allowed = re.findall(r"'([^']*)'", str((ctx or {}).get("expected", "")))
    near = difflib.get_close_matches(str(value).strip().lower(), allowed, n=1, cutoff=0.6)
    return f"{message} (did you mean '{near[0]}'?)" if near else message


def _clean_loc(loc: tuple[str | int, ...], doc: Located) -> tuple[str | int, ...]:
    """Drop pydantic's union/validator tags from a location, keeping the document's keys."""
    out: list[str | int] = []
    for part in loc:
        candidate = (*out, part)
        if isinstance(part, int) or candidate in doc.lines or not doc.lines:
            if isinstance(part, str) and ("[" in part or part in ("function-before", "str")):
                continue
            out.append(part)
        elif (
            isinstance(part, str)
            and not any(ch in part for ch in "[]-")
            and part
            not in (
                "str",
                "int",
                "float",
                "bool",
                "list",
                "dict",
            )
        ):
            out.append(part)
    return tuple(out)
