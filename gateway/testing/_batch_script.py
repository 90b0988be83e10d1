"""Scripting a provider's batch: which items error or expire, and when the batch expires.

A :class:`BatchScript` belongs to a provider (the offline fake: ``gw.adapter("fake")
.batch_script``) and applies to every batch that provider runs, so a test can say what a
real provider's batch does in part::

    fake = gw.adapter("fake")
    fake.batch_script.error("q2", "invalid_request: max_tokens is too large")
    fake.batch_script.expire("q3")            # the provider never got to it
    fake.batch_script.error(0)                # by position in the batch (from 0)
    fake.batch_script.expires_after(3600)     # items not done an hour in expire

Each scripted item ends with that outcome when the provider reaches it (an errored or expired
item costs nothing and releases its hold); the others are answered as the provider's chat
calls would be. This module imports no SDK and does no I/O.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Literal, Self

__all__ = ["BatchScript", "ScriptedItem"]

#: What a script can make of one item.
ScriptedOutcome = Literal["errored", "expired"]


@dataclass(frozen=True, slots=True)
class ScriptedItem:
    """One item's scripted end."""

    #: ``errored`` or ``expired``.
    outcome: ScriptedOutcome
    #: What the provider says went wrong (``BatchResult.error``).
    error: str


def _key(item: str | int) -> str | int:
    if isinstance(item, bool) or not isinstance(item, str | int):
        raise TypeError(f"an item is its custom_id (str) or its position (int), not {item!r}")
    if isinstance(item, int) and item < 0:
        raise ValueError(f"an item's position counts from 0, not {item}")
    if isinstance(item, str) and not item:
        raise ValueError("a custom_id is not empty")
    return item


class BatchScript:
    """What a provider's batches do with chosen items (thread-safe). Items are named by their
    ``custom_id`` or by their position in the batch (from 0); a custom_id wins over a position
    when both are scripted."""

    def __init__(self) -> None:
        self._items: dict[str | int, ScriptedItem] = {}
        self._expires_after: float | None = None
        self._lock = threading.Lock()

    def error(self, item: str | int, message: str = "scripted error") -> Self:
        """The item ends ``errored`` with ``message``."""
        return self._set(item, ScriptedItem("errored", message))

    def expire(
        self, item: str | int, message: str = "the batch expired before this request ran"
    ) -> Self:
        """The item ends ``expired`` (the provider did not run it in time)."""
        return self._set(item, ScriptedItem("expired", message))

    def expires_after(self, seconds: float) -> Self:
        """Every batch ends ``seconds`` after it was created (on the injected clock), its
        unfinished items ``expired``, as a provider's 24-hour window does."""
        if not seconds > 0:
            raise ValueError(f"a batch expires after more than 0 seconds, not {seconds!r}")
        with self._lock:
            self._expires_after = float(seconds)
        return self

    @property
    def expiry_seconds(self) -> float | None:
        """Seconds after creation a batch expires (None: never)."""
        return self._expires_after

    def outcome_for(self, index: int, custom_id: str) -> ScriptedItem | None:
        """The scripted end of the item at ``index`` with ``custom_id``, if any."""
        with self._lock:
            return self._items.get(custom_id) or self._items.get(index)

    def clear(self) -> None:
        """Forget everything scripted."""
        with self._lock:
            self._items.clear()
            self._expires_after = None

    def _set(self, item: str | int, scripted: ScriptedItem) -> Self:
        key = _key(item)
        with self._lock:
            self._items[key] = scripted
        return self

    def __repr__(self) -> str:
        with self._lock:
            items = {k: v.outcome for k, v in self._items.items()}
        return f"BatchScript(items={items!r}, expires_after={self._expires_after!r})"
