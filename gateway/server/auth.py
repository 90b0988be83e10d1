"""Who is calling: an API key (``Authorization: Bearer <key>`` or ``x-api-key``) and the
account that pays.

A key belongs to one account, and its calls are paid from it. The admin key (the config's
``server.admin_key``, compared in constant time) opens ``/v1/admin/...`` and pays from the
account named by ``x-gateway-account`` (default: the config's default account). Keys are
checked by ``agw.keys`` (hash lookup, cached for at most a second, so a revocation reaches
every worker within one); a key is never logged and never echoed.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.requests import Request

from gateway.server.errors import ApiError

if TYPE_CHECKING:
    from gateway.keys import ApiKey
    from gateway.server.state import ServerState

__all__ = ["ADMIN_TAG", "Caller", "authenticate", "presented_key"]

#: The ``api_key`` tag of calls made with the admin key.
ADMIN_TAG = "admin"
_ACCOUNT_HEADER = "x-gateway-account"


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated caller."""

    #: The account that pays (None: the config's default account).
    account: str | None
    #: The caller's key (None for the admin key).
    key: ApiKey | None

    @property
    def is_admin(self) -> bool:
        return self.key is None

    @property
    def tag(self) -> str:
        """What the calls it makes are tagged with (``api_key``): the key's id, or admin."""
        return ADMIN_TAG if self.key is None else self.key.id


def presented_key(request: Request) -> str | None:
    """The key the request carries, if any."""
    authorization = request.headers.get("authorization")
    if authorization is not None:
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    key = request.headers.get("x-api-key")
    return key.strip() if key and key.strip() else None


def _no_key() -> ApiError:
    return ApiError(
        401,
        "invalid_api_key",
        "no API key: send it as 'Authorization: Bearer <key>' or 'x-api-key: <key>'",
    )


async def authenticate(request: Request, state: ServerState) -> Caller:
    """The caller of ``request``; 401 for a missing, unknown, revoked or expired key."""
    presented = presented_key(request)
    if presented is None:
        raise _no_key()
    requested_account = request.headers.get(_ACCOUNT_HEADER)
    admin = state.admin_key
    if admin is not None and hmac.compare_digest(presented.encode(), admin.encode()):
        return Caller(account=requested_account or None, key=None)
    key = await state.authenticate_key(presented)
    if requested_account is not None and requested_account != key.account:
        raise ApiError(
            403,
            "permission_denied",
            f"{_ACCOUNT_HEADER} is for the admin key; this key pays from its own account",
        )
    return Caller(account=key.account, key=key)


def require_admin(caller: Caller) -> None:
    if not caller.is_admin:
        raise ApiError(403, "permission_denied", "this endpoint needs the gateway's admin key")
