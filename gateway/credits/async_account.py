"""``agw.credits``: the account API with every method awaitable.

:class:`AsyncCreditAccount` wraps the synchronous :class:`~.account.CreditAccount` and runs
each method in a worker thread (``asyncio.to_thread``), so an event loop never waits on the
credit store (a PostgreSQL round trip, an SQLite lock held by another process, a batch of
settled calls written first). The rules, the errors and the results are exactly those of the
synchronous account; ``account(name)`` and ``name`` need no I/O and stay synchronous.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from types import EllipsisType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.credits.account import AccountSettings, Balance, CreditAccount, Verification
    from gateway.credits.journal import Recovery
    from gateway.credits.ledger import LedgerEntry
    from gateway.credits.reports import Statement, UsageRow
    from gateway.credits.store import RequestRow

__all__ = ["AsyncCreditAccount"]


class AsyncCreditAccount:
    """One credit account, awaitable: ``agw.credits`` or ``agw.credits.account(name)``.
    Each method is :class:`~.account.CreditAccount`'s, run in a worker thread."""

    def __init__(self, account: CreditAccount) -> None:
        self._account = account

    @property
    def name(self) -> str:
        return self._account.name

    @property
    def sync(self) -> CreditAccount:
        """The same account, synchronously (blocks the calling thread on the store)."""
        return self._account

    def __repr__(self) -> str:
        return f"AsyncCreditAccount({self._account.name!r})"

    def account(self, name: str) -> AsyncCreditAccount:
        """Another account in the same store, e.g. one per customer of your app."""
        return AsyncCreditAccount(self._account.account(name))

    async def accounts(self) -> list[str]:
        """:meth:`CreditAccount.accounts`."""
        return await asyncio.to_thread(self._account.accounts)

    async def exists(self) -> bool:
        """True once anything was written to this account."""
        return await asyncio.to_thread(self._account.exists)

    # -- reading ----------------------------------------------------------------------------

    async def balance(self) -> Balance:
        """Available, posted and held credit, debt, and the next expiry, as of now."""
        return await asyncio.to_thread(self._account.balance)

    async def settings(self) -> AccountSettings:
        """The caps and auto-recharge rule that apply to this account now."""
        return await asyncio.to_thread(self._account.settings)

    async def history(
        self, *, limit: int | None = None, kinds: Sequence[str] | None = None
    ) -> list[LedgerEntry]:
        """Ledger entries, newest first."""
        return await asyncio.to_thread(lambda: self._account.history(limit=limit, kinds=kinds))

    async def requests(
        self,
        *,
        since: datetime | date | None = None,
        until: datetime | date | None = None,
        tags: Mapping[str, str] | None = None,
        limit: int | None = None,
        all_accounts: bool = False,
    ) -> list[RequestRow]:
        """Per-request rows, oldest first."""
        return await asyncio.to_thread(
            lambda: self._account.requests(
                since=since, until=until, tags=tags, limit=limit, all_accounts=all_accounts
            )
        )

    async def usage(
        self,
        *,
        group_by: str | Sequence[str] = "model",
        since: datetime | date | None = None,
        until: datetime | date | None = None,
        tags: Mapping[str, str] | None = None,
        all_accounts: bool = False,
    ) -> list[UsageRow]:
        """Usage summed by ``group_by``; the rows add up exactly to the ledger's usage."""
        return await asyncio.to_thread(
            lambda: self._account.usage(
                group_by=group_by, since=since, until=until, tags=tags, all_accounts=all_accounts
            )
        )

    async def statement(self, month: str | date) -> Statement:
        """The month's statement (``"2026-01"`` or any date in it)."""
        return await asyncio.to_thread(self._account.statement, month)

    async def verify(self) -> Verification:
        """Rebuild every balance from the entries; LedgerMismatch on any difference."""
        return await asyncio.to_thread(self._account.verify)

    async def recover(self) -> Recovery:
        """Replay the settlement journals of gateway processes that died."""
        return await asyncio.to_thread(self._account.recover)

    # -- writing ----------------------------------------------------------------------------

    async def purchase(self, amount: Decimal, *, idempotency_key: str | None = None) -> LedgerEntry:
        """Buy credit (see :meth:`.account.CreditAccount.purchase`)."""
        return await asyncio.to_thread(
            lambda: self._account.purchase(amount, idempotency_key=idempotency_key)
        )

    async def grant(
        self,
        amount: Decimal,
        *,
        expires_at: datetime | None = None,
        note: str | None = None,
    ) -> LedgerEntry:
        """Add promotional credit (no minimum, no payment)."""
        return await asyncio.to_thread(
            lambda: self._account.grant(amount, expires_at=expires_at, note=note)
        )

    async def set_limits(
        self,
        *,
        daily: Decimal | EllipsisType | None = ...,
        monthly: Decimal | EllipsisType | None = ...,
    ) -> None:
        """Set this account's spending caps (None: no cap; leave out to keep)."""
        await asyncio.to_thread(lambda: self._account.set_limits(daily=daily, monthly=monthly))

    async def set_auto_recharge(
        self, *, below: Decimal, amount: Decimal, monthly_limit: Decimal
    ) -> None:
        """Buy ``amount`` whenever the balance drops below ``below``."""
        await asyncio.to_thread(
            lambda: self._account.set_auto_recharge(
                below=below, amount=amount, monthly_limit=monthly_limit
            )
        )

    async def disable_auto_recharge(self) -> None:
        """Turn auto-recharge off for this account."""
        await asyncio.to_thread(self._account.disable_auto_recharge)

    async def expire(self) -> list[LedgerEntry]:
        """Write off expired lots and release lapsed holds now."""
        return await asyncio.to_thread(self._account.expire)
