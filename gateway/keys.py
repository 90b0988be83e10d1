"""The gateway's own API keys: who may call ``gateway serve``, and which account pays.

    new = gw.keys.create(account="team-a", name="ci", daily_limit=Decimal("5"))
    new.key                      # "gk_..." : shown once, never stored, never logged
    key = gw.keys.authenticate(presented)      # ApiKey, or InvalidApiKey
    gw.chat.completions.create(model="smart", messages=..., api_key=key)

* A key is ``gk_`` and 43 URL-safe base64 characters (32 random bytes). The credit store
  keeps only its SHA-256 (hex), its id (``key_...``, public) and a display prefix (``gk_``
  and 6 characters); :func:`authenticate` hashes what is presented and compares the digests
  with :func:`hmac.compare_digest`. No message, repr or log line carries a key
  (:func:`gateway.errors.redact` also removes anything shaped like one).
* Revocation is seen by every process and host within one second: each process keeps what
  it read of a key for at most ``cache_s`` (1 s) on the injected clock, then reads again.
  Expiry is checked on every use.
* Per key: a routes allow-list (route names, ``provider/model`` or ``provider/*``),
  ``rpm``, daily and monthly spend limits (USD), an expiry. A call made with
  ``api_key=key`` is refused before any provider is contacted when the route is not allowed
  (:class:`~gateway.errors.KeyNotAllowed`), when the key made its ``rpm`` calls this
  clock minute (:class:`~gateway.errors.KeyRateLimited`), or when its worst case would pass
  the key's spend limits, counting the key's calls in flight
  (:class:`~gateway.errors.SpendLimitExceeded` with ``.api_key``).
* Spend limits hold across processes and hosts: a call with such a key is held on the
  account's ledger with the key's id, so the key's spend and its calls in flight are part of
  the account's state, read and written under the account's lock like its own caps (see
  docs/ARCHITECTURE.md). ``rpm`` holds across them too: a process takes a share of the key's
  minute from the store (a quarter of what is left) and counts calls against it in memory.
"""

from __future__ import annotations

import asyncio
import builtins
import hashlib
import hmac
import logging
import math
import secrets
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from gateway.credits.key_store import KeyRecord, KeyStore
from gateway.credits.money import from_micros, from_nanos, parse_amount, plain_decimal, to_micros
from gateway.errors import (
    InvalidAmount,
    InvalidApiKey,
    InvalidKeySettings,
    KeyNotAllowed,
    KeyRateLimited,
    UnknownApiKey,
)

if TYPE_CHECKING:
    from gateway._clock import Clock
    from gateway.config import GatewayConfig
    from gateway.credits.ledger import Limits
    from gateway.credits.service import CreditService

__all__ = ["KEY_PREFIX", "ApiKey", "AsyncKeys", "Keys", "NewKey", "key_spend_limits"]

logger = logging.getLogger("gateway.keys")

#: Every key starts with this.
KEY_PREFIX = "gk_"
#: Random characters after the prefix (32 bytes in URL-safe base64, unpadded).
_RANDOM_CHARS = 43
#: Random characters kept in the display prefix.
_SHOWN_CHARS = 6
_MAX_NAME = 200
_MAX_ROUTES = 100
_MAX_RPM = 1_000_000
#: Longest a process trusts what it read of a key (revocation reaches it within this).
CACHE_S = 1.0
#: Keys (and unknown digests) remembered at most; the oldest go first.
_CACHE_ENTRIES = 10_000


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key as stored and listed: everything but the key itself."""

    #: ``key_`` and 16 hex digits: public, names the key in lists, logs and errors.
    id: str
    #: The credit account that pays for the key's calls.
    account: str
    name: str
    #: ``gk_`` and the key's first 6 random characters, to recognise it in a list.
    prefix: str
    #: Route names, ``provider/model`` or ``provider/*`` the key may call (None: all).
    routes: tuple[str, ...] | None
    #: Calls per clock minute, across every process (None: no limit).
    rpm: int | None
    #: USD the key's calls may spend per calendar day / month of the account's time zone.
    daily_limit: Decimal | None
    monthly_limit: Decimal | None
    expires_at: datetime | None
    created_at: datetime
    revoked_at: datetime | None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def expired(self, now: datetime) -> bool:
        """Whether the key's expiry has passed at ``now``."""
        return self.expires_at is not None and self.expires_at <= now

    def allows(self, model: str) -> bool:
        """Whether the allow-list lets the key call ``model`` (a route name or
        ``provider/model``, exactly as given to ``create``)."""
        if self.routes is None:
            return True
        for allowed in self.routes:
            if allowed == model:
                return True
            if allowed.endswith("/*") and model.startswith(allowed[:-1]) and "/" in model:
                return True
        return False

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly: money as decimal strings, times as ISO 8601 (never the key)."""
        return {
            "id": self.id,
            "account": self.account,
            "name": self.name,
            "prefix": self.prefix,
            "routes": None if self.routes is None else list(self.routes),
            "rpm": self.rpm,
            "daily_limit": _money(self.daily_limit),
            "monthly_limit": _money(self.monthly_limit),
            "expires_at": _iso(self.expires_at),
            "created_at": self.created_at.isoformat(),
            "revoked_at": _iso(self.revoked_at),
        }


@dataclass(frozen=True, slots=True)
class NewKey:
    """What :meth:`Keys.create` returns, once: the key and what is stored about it. Its repr
    leaves the key out; show ``.key`` to its owner once and keep it nowhere else."""

    key: str = field(repr=False)
    info: ApiKey

    @property
    def id(self) -> str:
        return self.info.id


def _money(value: Decimal | None) -> str | None:
    return None if value is None else plain_decimal(value)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("ascii")).hexdigest()


def _api_key(record: KeyRecord) -> ApiKey:
    return ApiKey(
        id=record.id,
        account=record.account,
        name=record.name,
        prefix=record.prefix,
        routes=record.routes,
        rpm=record.rpm,
        daily_limit=None if record.daily_limit is None else from_nanos(record.daily_limit),
        monthly_limit=None if record.monthly_limit is None else from_nanos(record.monthly_limit),
        expires_at=None if record.expires_us is None else from_micros(record.expires_us),
        created_at=from_micros(record.created_us),
        revoked_at=None if record.revoked_us is None else from_micros(record.revoked_us),
    )


@lru_cache(maxsize=1024)
def key_spend_limits(key: ApiKey) -> Limits | None:
    """The key's spend limits in nano-dollars, as the ledger checks them (None: none)."""
    if key.daily_limit is None and key.monthly_limit is None:
        return None
    from gateway.credits.ledger import Limits
    from gateway.credits.money import to_nanos

    return Limits(
        daily=None if key.daily_limit is None else to_nanos(key.daily_limit),
        monthly=None if key.monthly_limit is None else to_nanos(key.monthly_limit),
    )


@dataclass(slots=True)
class _Share:
    """This process's share of one key's calls in one clock minute."""

    minute: int
    granted: int = 0
    used: int = 0


class Keys:
    """The API keys of a gateway's credit store: ``gw.keys``.

    Made by the gateway (``gw.keys``); ``config`` (the routes and providers an allow-list
    may name) and ``clock`` are the gateway's. ``cache_s`` (at most 1 s) is how long a
    process trusts what it read of a key.
    """

    def __init__(
        self,
        service: CreditService,
        *,
        clock: Clock,
        config: GatewayConfig | None = None,
        cache_s: float = CACHE_S,
    ) -> None:
        if not 0 <= cache_s <= CACHE_S:
            raise ValueError(f"cache_s must be 0..{CACHE_S} s, not {cache_s!r}")
        self._service = service
        self._store = KeyStore(service.store)  # type: ignore[arg-type]
        self._clock = clock
        self._config = config
        self._cache_s = cache_s
        self._lock = threading.Lock()
        #: SHA-256 digest -> (monotonic time it was read, the key or None when unknown).
        self._cache: dict[str, tuple[float, ApiKey | None]] = {}
        #: Key id -> this process's share of the key's current minute (rpm).
        self._shares: dict[str, _Share] = {}
        self._refill = threading.Lock()

    def __repr__(self) -> str:
        return f"Keys({self._service.store!r})"

    # -- managing keys ----------------------------------------------------------------------

    def create(
        self,
        *,
        account: str,
        name: str,
        routes: Sequence[str] | None = None,
        rpm: int | None = None,
        daily_limit: Decimal | None = None,
        monthly_limit: Decimal | None = None,
        expires_at: datetime | None = None,
    ) -> NewKey:
        """Make a key for ``account`` (which must exist: the default account, or a named
        one with credit or settings; any in pay-as-you-go mode). Returns the key, once.
        Raises InvalidKeySettings (nothing written) or UnknownAccount."""
        service = self._service
        account = service.account_name(account)
        clean_name = _check_name(name)
        clean_routes = self._check_routes(routes)
        clean_rpm = _check_rpm(rpm)
        daily = _check_limit(daily_limit, "daily_limit")
        monthly = _check_limit(monthly_limit, "monthly_limit")
        now = self._clock.now()
        expires_us = _check_expiry(expires_at, now)
        if (
            service.config.mode == "prepaid"
            and account != service.default_account
            and service.snapshot(account) is None
        ):
            raise service.unknown(account)
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        record = KeyRecord(
            id=f"key_{secrets.token_hex(8)}",
            hash=_digest(key),
            prefix=key[: len(KEY_PREFIX) + _SHOWN_CHARS],
            account=account,
            name=clean_name,
            routes=clean_routes,
            rpm=clean_rpm,
            daily_limit=daily,
            monthly_limit=monthly,
            expires_us=expires_us,
            created_us=to_micros(now),
            revoked_us=None,
        )
        self._store.insert(record)
        info = _api_key(record)
        logger.info(
            "API key %s (%s...) created for account '%s'", info.id, info.prefix, info.account
        )
        return NewKey(key, info)

    def list(
        self, *, account: str | None = None, include_revoked: bool = False
    ) -> builtins.list[ApiKey]:
        """Keys in the order they were made: of ``account`` or of every account; revoked
        ones only with ``include_revoked`` (expired ones are listed: see ``expires_at``)."""
        if account is not None:
            account = self._service.account_name(account)
        records = self._store.select(account=account, include_revoked=bool(include_revoked))
        return [_api_key(record) for record in records]

    def get(self, key_id: str) -> ApiKey:
        """The key with this id (revoked or not); UnknownApiKey if there is none."""
        record = self._store.by_id(_check_id(key_id)) if isinstance(key_id, str) else None
        if record is None:
            raise UnknownApiKey(f"there is no API key {_shown_id(key_id)}")
        return _api_key(record)

    def revoke(self, key_id: str) -> ApiKey:
        """Revoke the key: every process refuses it within one second. Revoking a revoked
        key changes nothing. UnknownApiKey if there is none."""
        key_id = self.get(key_id).id
        record = self._store.revoke(key_id, to_micros(self._clock.now()))
        assert record is not None
        with self._lock:
            self._cache.pop(record.hash, None)
        info = _api_key(record)
        logger.info(
            "API key %s (%s...) of account '%s' revoked", info.id, info.prefix, info.account
        )
        return info

    # -- using keys -------------------------------------------------------------------------

    def authenticate(self, presented: str) -> ApiKey:
        """The key ``presented`` is, if it is a valid key now; else InvalidApiKey with
        ``reason`` ``unknown``, ``revoked`` or ``expired`` (the message never repeats what
        was presented)."""
        digest = _presented_digest(presented)
        known, key = self._cached(digest)
        if not known:
            key = self._read(digest)
        return self._valid(key)

    def _cached(self, digest: str | None) -> tuple[bool, ApiKey | None]:
        """``(True, key)`` when the key under ``digest`` was read within ``cache_s`` (None:
        there is none), else ``(False, None)``."""
        if digest is None:
            return True, None
        hit = self._cache.get(digest)
        if hit is not None and self._clock.monotonic() - hit[0] < self._cache_s:
            return True, hit[1]
        return False, None

    def _read(self, digest: str | None) -> ApiKey | None:
        if digest is None:
            return None
        read_at = self._clock.monotonic()
        record = self._store.by_hash(digest)
        key = None
        # The index found the row by its digest; compare the digests in constant time too.
        if record is not None and hmac.compare_digest(record.hash, digest):
            key = _api_key(record)
        with self._lock:
            if len(self._cache) >= _CACHE_ENTRIES:
                self._cache.pop(next(iter(self._cache)))
            self._cache[digest] = (read_at, key)
        return key

    def _valid(self, key: ApiKey | None) -> ApiKey:
        if key is None:
            raise InvalidApiKey("the API key is not valid", reason="unknown")
        if key.revoked_at is not None:
            raise InvalidApiKey(
                f"API key {key.id} ({key.prefix}...) was revoked at {key.revoked_at.isoformat()}",
                reason="revoked",
                key_id=key.id,
            )
        if key.expired(self._clock.now()):
            assert key.expires_at is not None
            raise InvalidApiKey(
                f"API key {key.id} ({key.prefix}...) expired at {key.expires_at.isoformat()}",
                reason="expired",
                key_id=key.id,
            )
        return key

    def check_call(self, key: ApiKey, *, route: str) -> None:
        """Before a call with ``key`` to ``route`` (a route name or ``provider/model``):
        refuse it when the allow-list does not include it (KeyNotAllowed), or when the key
        made its ``rpm`` calls this minute (KeyRateLimited); else count it. A call made with
        ``create(..., api_key=key)`` does this itself (do not call both)."""
        self.check_route(key, route)
        self.count_call(key)

    def count_call(self, key: ApiKey) -> None:
        """Count one call against the key's ``rpm`` (KeyRateLimited when the key made its
        ``rpm`` calls this clock minute, in any process); nothing when it has no rpm."""
        if key.rpm is not None and not self._count_here(key):
            with self._refill:
                if not self._count_here(key):
                    self._take_share(key)

    def check_route(self, key: ApiKey, route: str) -> None:
        """KeyNotAllowed unless the key's allow-list includes ``route`` (counts nothing)."""
        if not key.allows(route):
            allowed = ", ".join(key.routes or ())
            raise KeyNotAllowed(
                f"API key {key.id} ({key.name!r}) may not call {route!r}; it may call: "
                f"{allowed or 'nothing'}",
                key_id=key.id,
                route=route,
            )

    def _minute(self) -> tuple[int, float]:
        """The current clock minute (since the epoch) and the seconds left in it."""
        seconds = to_micros(self._clock.now()) / 1_000_000
        minute = math.floor(seconds / 60)
        return minute, (minute + 1) * 60 - seconds

    def _count_here(self, key: ApiKey) -> bool:
        """Count one call against this process's share of the key's minute; False when the
        share is used up (or is of an earlier minute)."""
        minute, _ = self._minute()
        with self._lock:
            share = self._shares.get(key.id)
            if share is None or share.minute != minute or share.used >= share.granted:
                return False
            share.used += 1
            return True

    def _take_share(self, key: ApiKey) -> None:
        """Take a new share of the key's minute from the store and count the call on it;
        KeyRateLimited when the minute's calls are all taken (by any process)."""
        assert key.rpm is not None
        minute, left_s = self._minute()
        granted = self._store.take_calls(key.id, minute, key.rpm)
        with self._lock:
            share = self._shares.get(key.id)
            if share is None or share.minute != minute:
                share = self._shares[key.id] = _Share(minute)
            share.granted += granted
            if share.used < share.granted:
                share.used += 1
                return
        raise KeyRateLimited(
            f"API key {key.id} ({key.name!r}) made its {key.rpm} calls this minute (rpm, "
            f"across every process); try again in {math.ceil(left_s)} s",
            key_id=key.id,
            retry_after=float(math.ceil(left_s)),
        )

    def _check_routes(self, routes: Sequence[str] | None) -> tuple[str, ...] | None:
        if routes is None:
            return None
        if isinstance(routes, str) or not isinstance(routes, Sequence):
            raise InvalidKeySettings(
                f"routes must be a list of route names or provider/model, not {routes!r}"
            )
        if len(routes) > _MAX_ROUTES:
            raise InvalidKeySettings(f"routes: at most {_MAX_ROUTES} entries")
        clean: builtins.list[str] = []
        for route in routes:
            if not isinstance(route, str) or not route or len(route) > _MAX_NAME:
                raise InvalidKeySettings(f"routes: {route!r} is not a route name")
            if not route.isprintable() or route != route.strip() or " " in route:
                raise InvalidKeySettings(f"routes: {route!r} is not a route name")
            self._check_known_route(route)
            if route not in clean:
                clean.append(route)
        return tuple(clean)

    def _check_known_route(self, route: str) -> None:
        """A route of the config, or ``provider/model`` / ``provider/*`` of a configured
        provider: an allow-list with a typo would be a key that can call nothing."""
        config = self._config
        if config is None or route in config.routes:
            return
        provider, slash, model = route.partition("/")
        if slash and model and provider in config.providers:
            return
        known = ", ".join(config.routes) or "none"
        raise InvalidKeySettings(
            f"routes: {route!r} is neither a route of the config ({known}) nor "
            f"provider/model (or provider/*) of a configured provider "
            f"({', '.join(config.providers) or 'none'})"
        )


class AsyncKeys:
    """``agw.keys``: :class:`Keys` with every method awaitable. Reads and writes of the
    store run in a worker thread; a key read within the last second and a call counted
    against this process's rpm share need no thread."""

    def __init__(self, keys: Keys) -> None:
        self._keys = keys

    def __repr__(self) -> str:
        return f"Async{self._keys!r}"

    @property
    def sync(self) -> Keys:
        """The same keys, synchronously."""
        return self._keys

    async def create(
        self,
        *,
        account: str,
        name: str,
        routes: Sequence[str] | None = None,
        rpm: int | None = None,
        daily_limit: Decimal | None = None,
        monthly_limit: Decimal | None = None,
        expires_at: datetime | None = None,
    ) -> NewKey:
        """:meth:`Keys.create`."""
        return await asyncio.to_thread(
            lambda: self._keys.create(
                account=account,
                name=name,
                routes=routes,
                rpm=rpm,
                daily_limit=daily_limit,
                monthly_limit=monthly_limit,
                expires_at=expires_at,
            )
        )

    async def list(
        self, *, account: str | None = None, include_revoked: bool = False
    ) -> builtins.list[ApiKey]:
        """:meth:`Keys.list`."""
        return await asyncio.to_thread(
            lambda: self._keys.list(account=account, include_revoked=include_revoked)
        )

    async def get(self, key_id: str) -> ApiKey:
        """:meth:`Keys.get`."""
        return await asyncio.to_thread(self._keys.get, key_id)

    async def revoke(self, key_id: str) -> ApiKey:
        """:meth:`Keys.revoke`."""
        return await asyncio.to_thread(self._keys.revoke, key_id)

    async def authenticate(self, presented: str) -> ApiKey:
        """:meth:`Keys.authenticate`."""
        keys = self._keys
        digest = _presented_digest(presented)
        known, key = keys._cached(digest)
        if not known:
            key = await asyncio.to_thread(keys._read, digest)
        return keys._valid(key)

    async def check_call(self, key: ApiKey, *, route: str) -> None:
        """:meth:`Keys.check_call`."""
        self._keys.check_route(key, route)
        await self.count_call(key)

    async def count_call(self, key: ApiKey) -> None:
        """:meth:`Keys.count_call` (the store only when this process's share is used up)."""
        keys = self._keys
        if key.rpm is not None and not keys._count_here(key):
            await asyncio.to_thread(keys.count_call, key)

    def check_route(self, key: ApiKey, route: str) -> None:
        """:meth:`Keys.check_route` (no I/O)."""
        self._keys.check_route(key, route)


def _presented_digest(presented: object) -> str | None:
    """The SHA-256 of a presented key, or None when it cannot be a key (then it is never
    looked up: nothing to time, nothing to fill the cache with)."""
    if (
        not isinstance(presented, str)
        or len(presented) != len(KEY_PREFIX) + _RANDOM_CHARS
        or not presented.startswith(KEY_PREFIX)
        or not presented.isascii()
    ):
        return None
    return _digest(presented)


def _check_name(name: object) -> str:
    if (
        not isinstance(name, str)
        or not name
        or len(name) > _MAX_NAME
        or name != name.strip()
        or not name.isprintable()
    ):
        raise InvalidKeySettings(
            f"name {name!r} is not valid: use 1-{_MAX_NAME} printable characters without "
            "leading or trailing spaces"
        )
    return name


def _check_rpm(rpm: object) -> int | None:
    if rpm is None:
        return None
    if isinstance(rpm, bool) or not isinstance(rpm, int) or not 1 <= rpm <= _MAX_RPM:
        raise InvalidKeySettings(f"rpm must be a whole number from 1 to {_MAX_RPM}, not {rpm!r}")
    return rpm


def _check_limit(value: object, what: str) -> int | None:
    if value is None:
        return None
    try:
        return parse_amount(value, what=what)
    except InvalidAmount as exc:
        raise InvalidKeySettings(exc.message) from None


def _check_expiry(expires_at: object, now: datetime) -> int | None:
    if expires_at is None:
        return None
    if not isinstance(expires_at, datetime) or expires_at.tzinfo is None:
        raise InvalidKeySettings(
            f"expires_at must be a timezone-aware datetime, not {expires_at!r}"
        )
    if expires_at <= now:
        raise InvalidKeySettings(f"expires_at {expires_at.isoformat()} is not in the future")
    return to_micros(expires_at)


def _check_id(key_id: str) -> str:
    return key_id if key_id.startswith("key_") and len(key_id) <= 64 else ""


def _shown_id(key_id: object) -> str:
    """An id as an error shows it: never something shaped like a key."""
    if isinstance(key_id, str) and key_id.startswith("key_") and len(key_id) <= 64:
        return key_id
    return "with that id (API key ids look like key_0123456789abcdef)"
