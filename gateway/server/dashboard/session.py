"""Who is signed in to the dashboard: a signed session cookie, and the CSRF token of its forms.

* The cookie holds JSON (who: the admin or a key's id; the CSRF token; when it was issued)
  and an HMAC-SHA256 of it. The signing key is derived from ``server.session_secret``, else
  from ``server.admin_key``, so every worker and every host with the same config accepts
  every other's cookies; without either the dashboard cannot sign anyone in (it says so).
  Changing the secret (or the admin key it is derived from) signs everyone out.
* The cookie is ``HttpOnly`` (no script reads it), ``SameSite=Strict`` (no other site's
  page sends it), ``Secure`` when the request came over https, ``Path=/``, and lasts
  :data:`MAX_AGE_S` at most. It never holds a key: a key's session names the key's id, and
  every request reads that key again (a revoked or expired key ends its sessions at once).
* Every form carries the session's CSRF token in a hidden field and every POST is refused
  without it (and when its ``Origin`` is another site's). The sign-in form, before there is
  a session, carries the token of a short-lived signed cookie of its own.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

__all__ = [
    "MAX_AGE_S",
    "SESSION_COOKIE",
    "SIGNIN_COOKIE",
    "Session",
    "Signer",
    "same_origin",
]

SESSION_COOKIE = "gateway_session"
SIGNIN_COOKIE = "gateway_signin"
#: How long a session lasts after signing in.
MAX_AGE_S = 12 * 3600
#: How long the sign-in form may stay open.
_SIGNIN_AGE_S = 3600
_CONTEXT = b"llm-gateway dashboard session v1"


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in person: with the admin key (``key_id`` None) or with one API key."""

    key_id: str | None
    csrf: str
    issued: int

    @property
    def is_admin(self) -> bool:
        return self.key_id is None


class Signer:
    """Signs and checks the dashboard's cookies with a key derived from the config."""

    def __init__(self, secret: str) -> None:
        self._key = hmac.new(secret.encode(), _CONTEXT, hashlib.sha256).digest()

    def _sign(self, payload: dict[str, Any]) -> str:
        body = base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode())
        mac = hmac.new(self._key, body, hashlib.sha256).digest()
        return (body + b"." + base64.urlsafe_b64encode(mac)).decode().replace("=", "")

    def _open(self, value: str | None, max_age: int) -> dict[str, Any] | None:
        if not value or len(value) > 1024:
            return None
        body_text, _, mac_text = value.partition(".")
        try:
            body = _unpad(body_text)
            mac = _unpad(mac_text)
        except ValueError:
            return None
        expected = hmac.new(self._key, base64.urlsafe_b64encode(body), hashlib.sha256).digest()
        if not hmac.compare_digest(mac, expected):
            return None
        try:
            payload = json.loads(body)
        except ValueError:
            return None
        if not isinstance(payload, dict):
            return None
        issued = payload.get("iat")
        if not isinstance(issued, int) or not 0 <= time.time() - issued <= max_age:
            return None
        found: dict[str, Any] = payload
        return found

    # -- the session ------------------------------------------------------------------------

    def session(self, request: Request) -> Session | None:
        """The request's session, if its cookie is genuine and not too old."""
        payload = self._open(request.cookies.get(SESSION_COOKIE), MAX_AGE_S)
        if payload is None:
            return None
        key_id, csrf = payload.get("key"), payload.get("csrf")
        if not isinstance(csrf, str) or not (key_id is None or isinstance(key_id, str)):
            return None
        return Session(key_id=key_id, csrf=csrf, issued=payload["iat"])

    def start(self, request: Request, response: Response, key_id: str | None) -> None:
        """Sign in: a new session (and CSRF token) for the admin or the key ``key_id``."""
        payload = {"key": key_id, "csrf": secrets.token_urlsafe(24), "iat": int(time.time())}
        _set(request, response, SESSION_COOKIE, self._sign(payload), MAX_AGE_S)
        response.delete_cookie(SIGNIN_COOKIE, path="/")

    # -- the sign-in form's own token -------------------------------------------------------

    def signin_token(self, request: Request) -> tuple[str, str | None]:
        """The CSRF token of the sign-in form: the one its cookie holds, or a new one (then
        also the cookie's new value, for :meth:`keep_signin_token`)."""
        payload = self._open(request.cookies.get(SIGNIN_COOKIE), _SIGNIN_AGE_S)
        token = payload.get("csrf") if payload else None
        if isinstance(token, str):
            return token, None
        token = secrets.token_urlsafe(24)
        return token, self._sign({"csrf": token, "iat": int(time.time())})

    def keep_signin_token(self, request: Request, response: Response, value: str | None) -> None:
        if value is not None:
            _set(request, response, SIGNIN_COOKIE, value, _SIGNIN_AGE_S)

    def signin_token_matches(self, request: Request, presented: str | None) -> bool:
        payload = self._open(request.cookies.get(SIGNIN_COOKIE), _SIGNIN_AGE_S)
        token = payload.get("csrf") if payload else None
        return _same(token, presented)


def end(response: Response) -> None:
    """Sign out: the browser forgets the session."""
    response.delete_cookie(SESSION_COOKIE, path="/")


def token_matches(session: Session, presented: str | None) -> bool:
    return _same(session.csrf, presented)


def same_origin(request: Request) -> bool:
    """False when the request says it comes from another site's page (``Origin``)."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    url = request.url
    return origin == f"{url.scheme}://{url.netloc}"


def _same(expected: object, presented: object) -> bool:
    return (
        isinstance(expected, str)
        and isinstance(presented, str)
        and bool(presented)
        and hmac.compare_digest(expected.encode(), presented.encode())
    )


def _unpad(text: str) -> bytes:
    if not text or len(text) % 4 == 1:
        raise ValueError("not base64")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError):
        raise ValueError("not base64") from None


def _set(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
