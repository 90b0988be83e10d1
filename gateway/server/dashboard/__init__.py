"""The billing dashboard: ``gateway serve`` at ``/`` (Datasette's way: HTML rendered on the
server from Jinja templates, a little JavaScript, both shipped in this package and served by
the gateway itself, so it works offline and behind a firewall).

Sign in with the admin key (every account, with an account picker, and changes) or with an
account's API key (that account, read only). Sessions: :mod:`.session`; pages: :mod:`.views`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from gateway.server.dashboard.render import HERE
from gateway.server.dashboard.views import Dashboard

if TYPE_CHECKING:
    from gateway.server.state import ServerState

__all__ = ["Dashboard", "routes"]


def routes(state: ServerState) -> list[BaseRoute]:
    """The dashboard's routes, for the server's app."""
    board = Dashboard(state)
    return [
        Route("/", board.overview, methods=["GET"]),
        Route("/signin", board.signin_page, methods=["GET"]),
        Route("/signin", board.signin, methods=["POST"]),
        Route("/signout", board.signout, methods=["POST"]),
        Route("/usage", board.usage, methods=["GET"]),
        Route("/usage.csv", board.usage_csv, methods=["GET"]),
        Route("/requests", board.requests, methods=["GET"]),
        Route("/credits", board.credits, methods=["GET"]),
        Route("/settings", board.settings, methods=["GET"]),
        Route("/settings/limits", board.save_limits, methods=["POST"]),
        Route("/settings/auto-recharge", board.save_recharge, methods=["POST"]),
        Route("/keys", board.keys, methods=["GET"]),
        Route("/keys", board.create_key, methods=["POST"]),
        Route("/keys/{key_id}/revoke", board.revoke_key, methods=["POST"]),
        Route("/webhooks", board.webhooks, methods=["GET"]),
        Route("/webhooks/{delivery_id}/retry", board.retry_delivery, methods=["POST"]),
        Mount("/-/static", StaticFiles(directory=HERE / "static"), name="dashboard-static"),
    ]
