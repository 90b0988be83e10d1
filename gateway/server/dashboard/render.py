"""Pages out: the Jinja templates shipped in this package, the headers every page carries,
and errors shown as a page (never a traceback).

Every page is ``Cache-Control: no-store`` (a new key, balances), framed by nobody, and under
a Content-Security-Policy that allows only this gateway's own script and stylesheet: no CDN,
no inline script or style (the chart is SVG attributes).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from functools import wraps
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from gateway.errors import GatewayError
from gateway.server.dashboard.session import end as end_session
from gateway.server.errors import ApiError, api_error

__all__ = ["HEADERS", "SignInNeeded", "Templates", "page", "redirect"]

logger = logging.getLogger("gateway.server")

HERE = Path(__file__).parent
HEADERS = {
    "cache-control": "no-store",
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}


class SignInNeeded(Exception):
    """No valid session: the request goes to the sign-in page."""


class Templates:
    """The package's templates, autoescaped."""

    def __init__(self) -> None:
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.globals["query"] = _query

    def render(
        self,
        name: str,
        context: Mapping[str, Any],
        *,
        status: int = 200,
        headers: Mapping[str, str] | None = None,
    ) -> HTMLResponse:
        html = self.env.get_template(name).render(**context)
        return HTMLResponse(html, status_code=status, headers={**HEADERS, **(headers or {})})


def _query(path: str, params: Mapping[str, Any] | None = None, **more: Any) -> str:
    """``path?a=1&b=2`` leaving out empty values."""
    merged = {**(params or {}), **more}
    pairs = [(k, str(v)) for k, v in merged.items() if v not in (None, "")]
    return f"{path}?{urlencode(pairs)}" if pairs else path


def redirect(url: str) -> Response:
    """303 See Other: after a form, the browser GETs ``url`` (a reload repeats nothing)."""
    return RedirectResponse(url, status_code=303, headers=HEADERS)


Handler = Callable[[Any, Request], Awaitable[Response]]


def page(handler: Handler) -> Handler:
    """A dashboard endpoint: no session → the sign-in page; an error → a page that says
    what went wrong (the server's one error table decides the status and the words)."""

    @wraps(handler)
    async def endpoint(self: Any, request: Request) -> Response:
        try:
            return await handler(self, request)
        except SignInNeeded:
            response = redirect("/signin")
            # A cookie that named a key since revoked must not bring the sign-in page back here.
            end_session(response)
            return response
        except (ApiError, GatewayError, HTTPException) as exc:
            error = api_error(exc)
            if error.status >= 500:
                logger.error("%s %s: %s", request.method, request.url.path, exc, exc_info=exc)
            shown: Response = await self.error_page(request, error.status, error.message)
            return shown
        except Exception:
            logger.exception("%s %s failed", request.method, request.url.path)
            failed: Response = await self.error_page(
                request, 500, "the dashboard failed to show this page; the server's log says why"
            )
            return failed

    return endpoint
