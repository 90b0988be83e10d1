"""The credit account: exact pricing, an append-only ledger, holds, caps, auto-recharge,
expiry and reports, behind one store interface (SQLite built in).

Layers, each usable alone:

* :mod:`.money`: Decimal dollars <-> integer nano-dollars, the one rounding mode;
* :mod:`.pricing`: :class:`PriceBook` (YAML ``pricing:`` first, then genai-prices);
* :mod:`.ledger`: the rules as pure functions over entries (no I/O);
* :mod:`.store` / :mod:`.sqlite_store`: persistence only (entries, snapshots, request rows);
* :mod:`.service`: :class:`CreditService`, what the client calls per request;
* :mod:`.account`: :class:`CreditAccount`, what users call (``gw.credits``);
* :mod:`.reports`: usage grouping, statements, CSV / JSON export;
* :mod:`.payment`: the :class:`PaymentMethod` protocol and :class:`InMemoryPaymentMethod`.
"""

from __future__ import annotations

from gateway.credits.account import (
    AccountSettings,
    Balance,
    CreditAccount,
    LotBalance,
    Verification,
)
from gateway.credits.ledger import LedgerEntry
from gateway.credits.payment import InMemoryPaymentMethod, PaymentMethod, PaymentResult
from gateway.credits.pricing import FAKE_PRICE, PriceBook
from gateway.credits.reports import Statement, UsageRow, to_csv, to_json
from gateway.credits.service import CreditService, Hold
from gateway.credits.store import RequestRow, Store, open_store

__all__ = [
    "FAKE_PRICE",
    "AccountSettings",
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
