"""The webhooks page: the config's endpoints (and whether a 410 disabled one), the account's
recent deliveries from the outbox, and, for the admin, "send again now" (the same as
``POST /v1/admin/webhooks/deliveries/{id}/retry``: the row is due at once and the worker's
sender delivers it)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from gateway.server.dashboard.format import local_time
from gateway.server.errors import ApiError

if TYPE_CHECKING:
    from gateway.server.dashboard.viewer import Viewer
    from gateway.server.dashboard.views import Dashboard
    from gateway.webhooks.sender import AsyncSender

__all__ = ["retry", "show"]

#: Deliveries the page lists, newest first.
SHOWN = 50


def _deliveries(board: Dashboard) -> AsyncSender | None:
    """The worker's webhook sender (the lifespan's), or, where the app is mounted without
    its lifespan, one made here that only reads the outbox; None without webhooks."""
    state = board.state
    if not state.config.webhooks or not state.has_credits:
        return None
    if state.webhook_sender is not None:
        return state.webhook_sender
    if board.webhook_outbox is None:
        from gateway.webhooks.sender import AsyncSender

        board.webhook_outbox = AsyncSender(state.gateway)
    outbox: AsyncSender = board.webhook_outbox
    return outbox


async def show(board: Dashboard, request: Request, viewer: Viewer, **extra: Any) -> Response:
    sender = _deliveries(board)
    endpoints: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    if sender is not None:
        disabled = await asyncio.to_thread(sender.outbox.disabled)
        listed = await asyncio.to_thread(
            lambda: sender.outbox.deliveries(account=viewer.account, limit=SHOWN)
        )
        from gateway.credits.money import from_micros

        def when(us: int | None) -> str:
            return "–" if us is None else local_time(from_micros(us), viewer.zone)

        for ep_id, hook in sender.endpoints.items():
            off = disabled.get(ep_id)
            endpoints.append(
                {
                    "url": hook.display_url,
                    "events": ", ".join(hook.events),
                    "disabled": None if off is None else f"since {when(off[0])}: {off[1]}",
                }
            )
        urls = {ep_id: hook.display_url for ep_id, hook in sender.endpoints.items()}
        rows = [
            {
                "id": d.id,
                "type": d.type,
                "url": urls.get(d.endpoint, "(no longer configured)"),
                "created": when(d.created_us),
                "status": d.status,
                "attempts": d.attempts,
                "next": when(d.next_attempt_us) if d.status == "pending" else "–",
                "last": d.last_error or ("" if d.last_status is None else f"HTTP {d.last_status}"),
            }
            for d in listed
        ]
    return board.render(
        request,
        "webhooks.html",
        viewer,
        configured=sender is not None,
        endpoints=endpoints,
        rows=rows,
        resent=request.query_params.get("resent"),
        **extra,
    )


async def retry(board: Dashboard, viewer: Viewer, delivery_id: str) -> int:
    """Make the account's delivery due again now; its id."""
    sender = _deliveries(board)
    number = int(delivery_id) if delivery_id.isdigit() and len(delivery_id) < 19 else 0
    row = (
        None if sender is None or not number else await asyncio.to_thread(sender.outbox.get, number)
    )
    if sender is None or row is None or row.account != viewer.account:
        raise ApiError(
            404, "delivery_not_found", f"account '{viewer.account}' has no delivery {number}"
        )
    await asyncio.to_thread(sender.retry, number)
    sender.wake()  # the running sender (if this is it) sends it now, not at its next poll
    return number
