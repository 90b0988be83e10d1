"""The credit account: exact pricing, an append-only ledger, holds, caps, auto-recharge,
expiry and reports, behind one store interface (SQLite built in).

Layers, each usable alone:

* :mod:`.money`: Decimal dollars <-> integer nano-dollars, the one rounding mode;
* :mod:`.pricing`: :class:`PriceBook` (YAML ``pricing:`` first, then genai-prices);
* :mod:`.ledger`: the rules as pure functions over entries (no I/O);
* :mod:`.store` / :mod:`.sqlite_store`: persistence only (entries, snapshots, request rows);
* :mod:`.service`: :class:`CreditService`, what the client calls per request;
* :mod:`.account`: :class:`CreditAccount`, what users call (``gw.credits``), and
  :mod:`.async_account`: :class:`AsyncCreditAccount`, its awaitable twin (``agw.credits``);
* :mod:`.reports`: usage grouping, statements, CSV / JSON export;
* :mod:`.payment`: the :class:`PaymentMethod` protocol and :class:`InMemoryPaymentMethod`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway._lazy import lazy_exports

if TYPE_CHECKING:
    from gateway.credits.account import (
        AccountSettings,
        Balance,
        CreditAccount,
        LotBalance,
        Verification,
    )
    from gateway.credits.async_account import AsyncCreditAccount
    from gateway.credits.ledger import LedgerEntry
    from gateway.credits.payment import InMemoryPaymentMethod, PaymentMethod, PaymentResult
    from gateway.credits.pricing import FAKE_PRICE, PriceBook
    from gateway.credits.reports import Statement, UsageRow, to_csv, to_json
    from gateway.credits.service import CreditService, Hold
    from gateway.credits.store import RequestRow, Store, open_store

#: Where each public name lives; loaded on first access (PEP 562), so that importing one layer
#: (``gateway.credits.money`` for a gateway without credits) does not import them all.
_HOMES = {
    "AccountSettings": "gateway.credits.account",
    "Balance": "gateway.credits.account",
    "CreditAccount": "gateway.credits.account",
    "LotBalance": "gateway.credits.account",
    "Verification": "gateway.credits.account",
    "AsyncCreditAccount": "gateway.credits.async_account",
    "LedgerEntry": "gateway.credits.ledger",
    "InMemoryPaymentMethod": "gateway.credits.payment",
    "PaymentMethod": "gateway.credits.payment",
    "PaymentResult": "gateway.credits.payment",
    "FAKE_PRICE": "gateway.credits.pricing",
    "PriceBook": "gateway.credits.pricing",
    "Statement": "gateway.credits.reports",
    "UsageRow": "gateway.credits.reports",
    "to_csv": "gateway.credits.reports",
    "to_json": "gateway.credits.reports",
    "CreditService": "gateway.credits.service",
    "Hold": "gateway.credits.service",
    "RequestRow": "gateway.credits.store",
    "Store": "gateway.credits.store",
    "open_store": "gateway.credits.store",
}


__getattr__, __dir__ = lazy_exports(__name__, _HOMES)

__all__ = [
    "FAKE_PRICE",
    "AccountSettings",
    "AsyncCreditAccount",
    "Balance",
    "CreditAccount",
    "CreditService",
    "Hold",
    "InMemoryPaymentMethod",
    "LedgerEntry",
    "LotBalance",
    "PaymentMethod",
    "PaymentResult",
    "PriceBook",
    "RequestRow",
    "Statement",
    "Store",
    "UsageRow",
    "Verification",
    "open_store",
    "to_csv",
    "to_json",
]
