"""Who is looking, and at which account: the admin (any account, picked with ``?account=``)
or one API key (its own account, read only)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from starlette.requests import Request

from gateway.errors import InvalidApiKey, UnknownApiKey
from gateway.server.dashboard.render import SignInNeeded
from gateway.server.dashboard.session import Session, Signer
from gateway.server.errors import ApiError

if TYPE_CHECKING:
    from gateway.keys import ApiKey
    from gateway.server.state import AsyncAccount, ServerState

__all__ = ["Viewer", "viewer_of"]


@dataclass(slots=True)
class Viewer:
    """The signed-in person and the account the page shows."""

    session: Session
    #: The key signed in with (None: the admin key).
    key: ApiKey | None
    #: The account shown.
    account: str
    #: The accounts the admin may pick (empty for a key).
    accounts: list[str]
    #: Whether the account has been written to (a new default account has not).
    exists: bool
    zone: ZoneInfo
    zone_name: str
    credits: AsyncAccount

    @property
    def is_admin(self) -> bool:
        return self.key is None

    @property
    def params(self) -> dict[str, str]:
        """What every link carries to stay on this account (the admin's pick)."""
        return {"account": self.account} if self.is_admin else {}

    @property
    def who(self) -> str:
        if self.key is None:
            return "admin"
        return f"key “{self.key.name}” ({self.key.prefix}…)"

    def context(self) -> dict[str, Any]:
        return {
            "viewer": self,
            "csrf": self.session.csrf,
            "zone": self.zone_name,
            "params": self.params,
        }


async def viewer_of(request: Request, state: ServerState, signer: Signer | None) -> Viewer:
    """The viewer of ``request``; SignInNeeded without a valid session (or with a key that was
    revoked or expired since); 403 when a key asks for another account; 404 for an account
    that does not exist."""
    session = signer.session(request) if signer is not None else None
    if session is None:
        raise SignInNeeded
    state.require_credits()
    credits_config = state.config.credits
    assert credits_config is not None
    zone_name = credits_config.timezone
    asked = request.query_params.get("account") or None
    key: ApiKey | None = None
    if session.key_id is not None:
        try:
            key = await state.gateway.keys.get(session.key_id)
        except (UnknownApiKey, InvalidApiKey):
            raise SignInNeeded from None
        if key.revoked or key.expired(datetime.now(UTC)):
            raise SignInNeeded
        if asked is not None and asked != key.account:
            raise ApiError(403, "permission_denied", "this key can see its own account only")
        account_name = key.account
        accounts: list[str] = []
    else:
        account_name = asked or credits_config.default_account
        accounts = await state.gateway.credits.accounts()
        if credits_config.default_account not in accounts:
            accounts = sorted([*accounts, credits_config.default_account])
    credits = state.gateway.credits.account(account_name)
    exists = await credits.exists()
    if not exists and account_name != credits_config.default_account:
        raise ApiError(404, "account_not_found", f"no credit account named '{account_name[:100]}'")
    return Viewer(
        session=session,
        key=key,
        account=account_name,
        accounts=accounts,
        exists=exists,
        zone=ZoneInfo(zone_name),
        zone_name=zone_name,
        credits=credits,
    )
