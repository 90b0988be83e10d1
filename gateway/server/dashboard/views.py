"""The dashboard's pages: each one reads the account through ``agw.credits`` / ``agw.keys``
and hands the template what to show. Nothing here decides anything about money: amounts
are the library's, summed by the store (``usage_report``, ``requests_page``), and every
write goes through the same library calls as the admin API, so it is validated the same
way and lands in the ledger.

=======================  ===============================================================
``GET /``                overview: balance, next expiry, this month against the caps,
                         auto-recharge and this month's recharges
``GET /usage``           spend per day by provider or model (SVG), per model, per tag;
                         ``/usage.csv?table=chart|model|tag`` is each table as shown
``GET /requests``        the calls, newest first, 50 a page, filtered
``GET /credits``         lots with their expiry; purchases, grants, recharges, declines
``GET|POST /settings``   caps and auto-recharge (the admin changes them)
``GET|POST /keys``       API keys (the admin makes one, shown once, or revokes one)
``GET|POST /webhooks``   endpoints, the account's deliveries, send one again (admin)
``GET|POST /signin``     the admin key or an API key, in a form, never in a URL
``POST /signout``
=======================  ===============================================================
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response

from gateway.credits import ledger
from gateway.credits.money import from_nanos
from gateway.credits.reports import UsageRow, to_csv
from gateway.errors import GatewayError
from gateway.server.admin import _amount as api_amount
from gateway.server.dashboard import session as sessions
from gateway.server.dashboard import webhooks as webhook_pages
from gateway.server.dashboard.chart import build_chart, series_rows, sums_by
from gateway.server.dashboard.format import MoneyColumn, count, local_time, usd
from gateway.server.dashboard.render import HEADERS, Templates, page, redirect
from gateway.server.dashboard.session import Signer, same_origin
from gateway.server.dashboard.throttle import SignInThrottle
from gateway.server.dashboard.viewer import Viewer, viewer_of
from gateway.server.errors import ApiError, api_error

if TYPE_CHECKING:
    from gateway.credits.ledger import LedgerEntry
    from gateway.server.state import ServerState

__all__ = ["Dashboard"]

#: Calls per page of /requests.
PAGE_SIZE = 50
#: The longest range the usage page sums (days).
MAX_RANGE_DAYS = 366
_FORM_BYTES = 64 * 1024
#: Entries the credits page lists, and the kinds it lists.
_CREDIT_KINDS = [
    ledger.PURCHASE,
    ledger.GRANT,
    ledger.AUTO_RECHARGE,
    ledger.RECHARGE_DECLINED,
    ledger.RECHARGE_SKIPPED,
    ledger.PURCHASE_DECLINED,
    ledger.EXPIRY,
]
_RECHARGE_KINDS = [ledger.AUTO_RECHARGE, ledger.RECHARGE_DECLINED, ledger.RECHARGE_SKIPPED]
_KIND_LABELS = {
    ledger.PURCHASE: "purchase",
    ledger.GRANT: "grant",
    ledger.AUTO_RECHARGE: "auto-recharge",
    ledger.RECHARGE_DECLINED: "auto-recharge declined",
    ledger.RECHARGE_SKIPPED: "auto-recharge skipped",
    ledger.PURCHASE_DECLINED: "purchase declined",
    ledger.EXPIRY: "expired",
    ledger.SETTINGS: "settings changed",
}


@dataclass(frozen=True, slots=True)
class Entry:
    """A ledger entry as a row of the page."""

    at: str
    kind: str
    amount: Decimal
    note: str


class Dashboard:
    """The dashboard of one server (its endpoints are this object's methods)."""

    def __init__(self, state: ServerState) -> None:
        self.state = state
        self.templates = Templates()
        settings = state.settings
        secret = settings.session_secret
        text = secret.reveal() if secret is not None and secret.is_set else state.admin_key
        #: None when the config has neither a session secret nor an admin key.
        self.signer = Signer(text) if text else None
        #: Reads the webhook outbox (made on first use; see :mod:`.webhooks`).
        self.webhook_outbox: Any = None
        #: Failed sign-ins per client address (see :mod:`.throttle`).
        self.throttle = SignInThrottle()

    # -- common -----------------------------------------------------------------------------

    async def viewer(self, request: Request) -> Viewer:
        return await viewer_of(request, self.state, self.signer)

    def render(
        self, request: Request, name: str, viewer: Viewer | None, status: int = 200, **context: Any
    ) -> Response:
        base = viewer.context() if viewer is not None else {"viewer": None, "params": {}}
        return self.templates.render(
            name, {**base, "path": request.url.path, **context}, status=status
        )

    async def error_page(self, request: Request, status: int, message: str) -> Response:
        viewer = None
        if status not in (403, 404):  # those may be about the account asked for
            try:
                viewer = await self.viewer(request)
            except Exception:
                viewer = None
        return self.render(request, "error.html", viewer, status=status, message=message)

    async def form(self, request: Request, viewer: Viewer) -> dict[str, str]:
        """The fields of a POSTed form, after the CSRF checks (403 without them)."""
        fields = await _read_form(request)
        if not same_origin(request) or not sessions.token_matches(
            viewer.session, fields.get("csrf")
        ):
            raise _forbidden()
        return fields

    def admin_only(self, viewer: Viewer) -> None:
        if not viewer.is_admin:
            raise ApiError(
                403, "permission_denied", "signed in with an API key, the dashboard is read only"
            )

    # -- sign in / out ----------------------------------------------------------------------

    async def signin_page(self, request: Request) -> Response:
        if self.signer is not None and self.signer.session(request) is not None:
            return redirect("/")
        return self._signin_form(request)

    def _signin_form(
        self, request: Request, *, error: str | None = None, status: int = 200
    ) -> Response:
        token, cookie = ("", None) if self.signer is None else self.signer.signin_token(request)
        response = self.render(
            request,
            "signin.html",
            None,
            status=status,
            error=error,
            enabled=self.signer is not None,
            token=token,
        )
        if self.signer is not None:
            self.signer.keep_signin_token(request, response, cookie)
        return response

    @page
    async def signin(self, request: Request) -> Response:
        signer = self.signer
        if signer is None:
            return self._signin_form(request, status=403)
        fields = await _read_form(request)
        if not same_origin(request) or not signer.signin_token_matches(request, fields.get("csrf")):
            return self._signin_form(
                request,
                error="The form expired or came from another page: sign in again.",
                status=403,
            )
        address = request.client.host if request.client is not None else "unknown"
        wait = self.throttle.retry_after(address)
        if wait is not None:
            response = self._signin_form(
                request,
                error=f"Too many failed sign-ins from this address: try again in {wait} s.",
                status=429,
            )
            response.headers["retry-after"] = str(wait)
            return response
        presented = fields.get("key", "").strip()
        admin = self.state.admin_key
        key_id: str | None
        if admin is not None and hmac.compare_digest(presented.encode(), admin.encode()):
            key_id = None
        else:
            try:
                if not self.state.has_credits:
                    raise ApiError(401, "invalid_api_key", "no such key")
                key = await self.state.authenticate_key(presented)
            except (ApiError, GatewayError) as exc:
                status = api_error(exc).status
                if status >= 500:
                    return self._signin_form(
                        request, error="The credit store cannot be reached; try again.", status=503
                    )
                self.throttle.failed(address)
                return self._signin_form(
                    request,
                    error="That key is not valid: unknown, revoked or expired.",
                    status=401,
                )
            key_id = key.id
        self.throttle.succeeded(address)
        response = redirect("/")
        signer.start(request, response, key_id)
        return response

    @page
    async def signout(self, request: Request) -> Response:
        response = redirect("/signin")
        session = self.signer.session(request) if self.signer is not None else None
        if session is not None:
            fields = await _read_form(request)
            if not same_origin(request) or not sessions.token_matches(session, fields.get("csrf")):
                return self.templates.render(
                    "error.html",
                    {
                        "viewer": None,
                        "params": {},
                        "path": "/signout",
                        "message": _forbidden().message,
                    },
                    status=403,
                )
        sessions.end(response)
        return response

    # -- overview ---------------------------------------------------------------------------

    @page
    async def overview(self, request: Request) -> Response:
        viewer = await self.viewer(request)
        credits = viewer.credits
        balance = await credits.balance()
        settings = await credits.settings()
        today = datetime.now(viewer.zone).date()
        month_start = today.replace(day=1)
        report = await credits.usage_report(since=month_start, until=today + timedelta(days=1))
        spent_today = from_nanos(
            sum(r.cost_nanos for r in report.daily if r["day"] == today.isoformat())
        )
        spent_month = from_nanos(sum(r.cost_nanos for r in report.daily))
        calls_month = sum(r.requests for r in report.daily)
        recharges = [
            e
            for e in await credits.history(kinds=_RECHARGE_KINDS, limit=100)
            if e.at >= datetime.combine(month_start, time(), viewer.zone)
        ]
        money = MoneyColumn(
            [
                balance.available,
                balance.posted,
                balance.held,
                balance.debt,
                balance.expiring_next,
                spent_today,
                spent_month,
                settings.daily_limit,
                settings.monthly_limit,
            ]
        )
        return self.render(
            request,
            "overview.html",
            viewer,
            balance=balance,
            settings=settings,
            money=money,
            usd=usd,
            spent_today=spent_today,
            spent_month=spent_month,
            calls_month=calls_month,
            month=month_start.strftime("%B %Y"),
            next_expiry=local_time(balance.next_expiry, viewer.zone, seconds=False),
            recharges=[self._entry(e, viewer) for e in recharges],
            recharge_money=MoneyColumn([self._entry(e, viewer).amount for e in recharges]),
        )

    # -- usage ------------------------------------------------------------------------------

    async def _usage(self, request: Request, viewer: Viewer) -> dict[str, Any]:
        query = request.query_params
        today = datetime.now(viewer.zone).date()
        since = _date(query.get("since"), "since") or today - timedelta(days=29)
        to = _date(query.get("until"), "until") or today
        if to < since:
            raise ApiError(
                400, "invalid_request", f"the range ends ({to}) before it starts ({since})"
            )
        if (to - since).days + 1 > MAX_RANGE_DAYS:
            raise ApiError(
                400, "invalid_request", f"a range of at most {MAX_RANGE_DAYS} days, please"
            )
        by = query.get("by") or "provider"
        if by not in ("provider", "model"):
            raise ApiError(400, "invalid_request", "by is provider or model")
        report = await viewer.credits.usage_report(since=since, until=to + timedelta(days=1))
        days = [since + timedelta(days=n) for n in range((to - since).days + 1)]
        chart_rows = series_rows(report.daily, by)
        per_model = sums_by(report.daily, lambda row: row["model"] or "")
        model_rows = [UsageRow({"model": m}, *t) for m, t in sorted(per_model.items())]
        tag_names = sorted(report.tags)
        tag = query.get("tag") or (
            "api_key" if "api_key" in report.tags else (tag_names or [""])[0]
        )
        if tag and tag not in report.tags and tag_names:
            raise ApiError(
                400, "invalid_request", f"no call in this range has the tag '{tag[:60]}'"
            )
        tag_rows = report.tags.get(tag, [])
        total = from_nanos(sum(r.cost_nanos for r in report.daily))
        return {
            "since": since,
            "until": to,
            "by": by,
            "days": days,
            "chart_rows": chart_rows,
            "model_rows": model_rows,
            "tag": tag,
            "tag_names": tag_names,
            "tag_rows": tag_rows,
            "total": total,
            "calls": sum(r.requests for r in report.daily),
        }

    @page
    async def usage(self, request: Request) -> Response:
        viewer = await self.viewer(request)
        data = await self._usage(request, viewer)
        peak_days: dict[str, int] = {}
        for row in data["chart_rows"]:
            peak_days[row["day"]] = peak_days.get(row["day"], 0) + row.cost_nanos
        day_totals = [(day, from_nanos(peak_days.get(day.isoformat(), 0))) for day in data["days"]]
        day_money = MoneyColumn([amount for _, amount in day_totals] + [data["total"]])
        chart = build_chart(
            data["chart_rows"],
            data["days"],
            data["by"],
            usd(from_nanos(max(peak_days.values(), default=0))),
        )
        return self.render(
            request,
            "usage.html",
            viewer,
            chart=chart,
            day_totals=day_totals,
            day_money=day_money,
            model_money=MoneyColumn([r.cost for r in data["model_rows"]] + [data["total"]]),
            tag_money=MoneyColumn([r.cost for r in data["tag_rows"]] + [data["total"]]),
            series_money=MoneyColumn([s.cost for s in chart.series] + [data["total"]]),
            count=count,
            **data,
        )

    @page
    async def usage_csv(self, request: Request) -> Response:
        viewer = await self.viewer(request)
        data = await self._usage(request, viewer)
        table = request.query_params.get("table") or "chart"
        rows = {"chart": data["chart_rows"], "model": data["model_rows"], "tag": data["tag_rows"]}
        if table not in rows:
            raise ApiError(400, "invalid_request", "table is chart, model or tag")
        name = f"usage-{viewer.account}-{table}-{data['since']}-{data['until']}.csv"
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        return Response(
            to_csv(rows[table]),
            media_type="text/csv; charset=utf-8",
            headers={**HEADERS, "content-disposition": f'attachment; filename="{safe}"'},
        )

    # -- requests ---------------------------------------------------------------------------

    @page
    async def requests(self, request: Request) -> Response:
        viewer = await self.viewer(request)
        query = request.query_params
        filters = {
            name: (query.get(name) or "").strip() or None
            for name in ("route", "provider", "model", "status", "tag", "since", "until")
        }
        tag_pair: tuple[str, str] | None = None
        if filters["tag"] is not None:
            name, equals, value = filters["tag"].partition("=")
            if not equals or not name:
                raise ApiError(400, "invalid_request", "a tag filter is name=value")
            tag_pair = (name, value)
        since = _date(filters["since"], "since")
        to = _date(filters["until"], "until")
        before = query.get("before") or None
        result = await viewer.credits.requests_page(
            since=since,
            until=None if to is None else to + timedelta(days=1),
            route=filters["route"],
            provider=filters["provider"],
            model=filters["model"],
            status=filters["status"],
            tag=tag_pair,
            limit=PAGE_SIZE,
            before=before,
        )
        rows = [
            {
                "at": local_time(r.at, viewer.zone),
                "request_id": r.request_id,
                "route": r.route,
                "operation": r.operation,
                "model": f"{r.provider}/{r.model}",
                "input": count(r.input_tokens),
                "output": count(r.output_tokens),
                "cost": r.cost,
                "latency": f"{r.latency_us / 1000:,.0f} ms",
                "attempts": r.attempts,
                "status": r.status,
                "tags": ", ".join(f"{k}={v}" for k, v in sorted(r.tags.items())),
            }
            for r in result.rows
        ]
        config = self.state.config
        models = sorted({t.model for route in config.routes.values() for t in route.targets})
        return self.render(
            request,
            "requests.html",
            viewer,
            rows=rows,
            money=MoneyColumn([r.cost for r in result.rows]),
            filters={k: v or "" for k, v in filters.items()},
            next=result.next,
            paged=before is not None,
            route_names=sorted(config.routes),
            provider_names=sorted(config.providers),
            model_names=models,
        )

    # -- credits ----------------------------------------------------------------------------

    @page
    async def credits(self, request: Request) -> Response:
        viewer = await self.viewer(request)
        balance = await viewer.credits.balance()
        entries = [
            self._entry(e, viewer)
            for e in await viewer.credits.history(kinds=_CREDIT_KINDS, limit=200)
        ]
        lots = [
            {
                "source": lot.source.replace("_", "-"),
                "amount": lot.amount,
                "remaining": lot.remaining,
                "created": local_time(lot.created_at, viewer.zone, seconds=False),
                "expires": local_time(lot.expires_at, viewer.zone, seconds=False),
            }
            for lot in sorted(balance.lots, key=lambda lot: lot.expires_at)
        ]
        return self.render(
            request,
            "credits.html",
            viewer,
            lots=lots,
            lot_money=MoneyColumn(
                [lot.amount for lot in balance.lots] + [lot.remaining for lot in balance.lots]
            ),
            entries=entries,
            entry_money=MoneyColumn([e.amount for e in entries]),
        )

    def _entry(self, entry: LedgerEntry, viewer: Viewer) -> Entry:
        amount = entry.amount
        if entry.kind in (
            ledger.RECHARGE_DECLINED,
            ledger.RECHARGE_SKIPPED,
            ledger.PURCHASE_DECLINED,
        ):
            amount = from_nanos(int(entry.meta.get("amount", 0)))  # asked for; nothing added
        note = entry.note or ""
        if entry.kind == ledger.SETTINGS:
            note = _settings_note(entry.meta)
        return Entry(
            at=local_time(entry.at, viewer.zone),
            kind=_KIND_LABELS.get(entry.kind, entry.kind),
            amount=amount,
            note=note,
        )

    # -- settings ---------------------------------------------------------------------------

    async def _settings_page(
        self,
        request: Request,
        viewer: Viewer,
        *,
        status: int = 200,
        error: str | None = None,
        form: str | None = None,
        values: dict[str, str] | None = None,
    ) -> Response:
        settings = await viewer.credits.settings()
        changes = [
            self._entry(e, viewer)
            for e in await viewer.credits.history(kinds=[ledger.SETTINGS], limit=20)
        ]
        recharge = settings.auto_recharge
        plain = {
            "daily": _plain(settings.daily_limit),
            "monthly": _plain(settings.monthly_limit),
            "below": _plain(recharge[0] if recharge else None),
            "amount": _plain(recharge[1] if recharge else None),
            "monthly_limit": _plain(recharge[2] if recharge else None),
        }
        money = MoneyColumn([settings.daily_limit, settings.monthly_limit, *(recharge or ())])
        return self.render(
            request,
            "settings.html",
            viewer,
            status=status,
            settings=settings,
            money=money,
            values={**plain, **(values or {})},
            error=error,
            error_form=form,
            saved=request.query_params.get("saved"),
            changes=changes,
        )

    @page
    async def settings(self, request: Request) -> Response:
        viewer = await self.viewer(request)
        return await self._settings_page(request, viewer)

    @page
    async def save_limits(self, request: Request) -> Response:
        viewer = await self.viewer(request)
        fields = await self.form(request, viewer)
        self.admin_only(viewer)
        try:
            daily = api_amount(fields.get("daily", "").strip() or None, "daily", required=False)
            monthly = api_amount(
                fields.get("monthly", "").strip() or None, "monthly", required=False
            )
            await viewer.credits.set_limits(daily=daily, monthly=monthly)
        except (ApiError, GatewayError) as exc:
            return await self._form_error(request, viewer, exc, "limits", fields)
        return redirect(_link("/settings", viewer, saved="limits"))

    @page
    async def save_recharge(self, request: Request) -> Response:
        viewer = await self.viewer(request)
        fields = await self.form(request, viewer)
        self.admin_only(viewer)
        try:
            if fields.get("action") == "off":
                await viewer.credits.disable_auto_recharge()
            else:
                below, amount, most = (
                    _required(api_amount(fields.get(name, "").strip() or None, name))
                    for name in ("below", "amount", "monthly_limit")
                )
                await viewer.credits.set_auto_recharge(
                    below=below, amount=amount, monthly_limit=most
                )
        except (ApiError, GatewayError) as exc:
            return await self._form_error(request, viewer, exc, "recharge", fields)
        return redirect(_link("/settings", viewer, saved="auto-recharge"))

    async def _form_error(
        self, request: Request, viewer: Viewer, exc: Exception, form: str, fields: dict[str, str]
    ) -> Response:
        error = api_error(exc)
        if error.status >= 500:
            raise exc
        values = {k: v for k, v in fields.items() if k != "csrf"}
        return await self._settings_page(
            request, viewer, status=error.status, error=error.message, form=form, values=values
        )

    # -- keys -------------------------------------------------------------------------------

    async def _keys_page(
        self,
        request: Request,
        viewer: Viewer,
        *,
        status: int = 200,
        new_key: Any = None,
        error: str | None = None,
        values: dict[str, str] | None = None,
    ) -> Response:
        keys = (
            await self.state.gateway.keys.list(account=viewer.account, include_revoked=True)
            if viewer.exists or viewer.is_admin
            else []
        )
        now = datetime.now(UTC)
        rows = [
            {
                "id": k.id,
                "name": k.name,
                "prefix": k.prefix,
                "routes": ", ".join(k.routes) if k.routes is not None else "all",
                "rpm": "–" if k.rpm is None else count(k.rpm),
                "daily": usd(k.daily_limit) if k.daily_limit is not None else "–",
                "monthly": usd(k.monthly_limit) if k.monthly_limit is not None else "–",
                "expires": local_time(k.expires_at, viewer.zone, seconds=False)
                if k.expires_at
                else "never",
                "created": local_time(k.created_at, viewer.zone, seconds=False),
                "status": "revoked" if k.revoked else ("expired" if k.expired(now) else "active"),
                "yours": viewer.key is not None and viewer.key.id == k.id,
            }
            for k in reversed(keys)
        ]
        return self.render(
            request,
            "keys.html",
            viewer,
            status=status,
            rows=rows,
            new_key=new_key,
            error=error,
            values=values or {},
            revoked=request.query_params.get("revoked"),
        )

    @page
    async def keys(self, request: Request) -> Response:
        viewer = await self.viewer(request)
        return await self._keys_page(request, viewer)

    @page
    async def create_key(self, request: Request) -> Response:
        viewer = await self.viewer(request)
        fields = await self.form(request, viewer)
        self.admin_only(viewer)
        try:
            routes_text = fields.get("routes", "").strip()
            routes = (
                [r.strip() for r in routes_text.split(",") if r.strip()] if routes_text else None
            )
            rpm_text = fields.get("rpm", "").strip()
            if rpm_text and not rpm_text.isdigit():
                raise ApiError(400, "invalid_request", "'rpm' must be an integer", param="rpm")
            expires = _date(fields.get("expires", "").strip() or None, "expires")
            new = await self.state.gateway.keys.create(
                account=viewer.account,
                name=fields.get("name", ""),
                routes=routes,
                rpm=int(rpm_text) if rpm_text else None,
                daily_limit=api_amount(
                    fields.get("daily", "").strip() or None, "daily_limit", required=False
                ),
                monthly_limit=api_amount(
                    fields.get("monthly", "").strip() or None, "monthly_limit", required=False
                ),
                expires_at=None if expires is None else datetime.combine(expires, time(), UTC),
            )
        except (ApiError, GatewayError) as exc:
            error = api_error(exc)
            if error.status >= 500:
                raise
            values = {k: v for k, v in fields.items() if k != "csrf"}
            return await self._keys_page(
                request, viewer, status=error.status, error=error.message, values=values
            )
        return await self._keys_page(request, viewer, status=201, new_key=new)

    @page
    async def revoke_key(self, request: Request) -> Response:
        viewer = await self.viewer(request)
        await self.form(request, viewer)
        self.admin_only(viewer)
        key_id = request.path_params["key_id"]
        key = await self.state.gateway.keys.get(key_id)
        if key.account != viewer.account:
            raise ApiError(
                404, "key_not_found", f"account '{viewer.account}' has no key {key_id[:40]}"
            )
        await self.state.gateway.keys.revoke(key_id)
        return redirect(_link("/keys", viewer, revoked=key_id))

    # -- webhooks ---------------------------------------------------------------------------

    @page
    async def webhooks(self, request: Request) -> Response:
        viewer = await self.viewer(request)
        return await webhook_pages.show(self, request, viewer)

    @page
    async def retry_delivery(self, request: Request) -> Response:
        viewer = await self.viewer(request)
        await self.form(request, viewer)
        self.admin_only(viewer)
        number = await webhook_pages.retry(self, viewer, request.path_params["delivery_id"])
        return redirect(_link("/webhooks", viewer, resent=str(number)))


# -- helpers --------------------------------------------------------------------------------


def _link(path: str, viewer: Viewer, **more: str) -> str:
    from gateway.server.dashboard.render import _query

    return _query(path, viewer.params, **more)


def _forbidden() -> ApiError:
    return ApiError(
        403,
        "csrf_failed",
        "this form was not sent from the dashboard's own page (or it expired): reload the "
        "page and send it again",
    )


async def _read_form(request: Request) -> dict[str, str]:
    """A URL-encoded form body, at most 64 KiB (the only kind the dashboard's forms send)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise _forbidden()
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _FORM_BYTES:
            raise ApiError(413, "request_too_large", "this form is larger than the dashboard takes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "invalid_request", "the form is not UTF-8") from None
    return dict(parse_qsl(text, keep_blank_values=True))


def _date(value: str | None, name: str) -> date | None:
    if value is None or not value.strip():
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise ApiError(
            400, "invalid_request", f"'{name}' must be a date such as 2026-01-15", param=name
        ) from None


def _required(amount: Decimal | None) -> Decimal:
    assert amount is not None  # api_amount raises for a missing required amount
    return amount


def _plain(amount: Decimal | None) -> str:
    return "" if amount is None else format(amount, "f")


def _settings_note(meta: dict[str, Any]) -> str:
    parts = []
    labels = {"daily": "daily cap", "monthly": "monthly cap", "auto_recharge": "auto-recharge"}
    for name, value in meta.items():
        label = labels.get(name, name)
        if value is None:
            parts.append(f"{label}: {'off' if name == 'auto_recharge' else 'none'}")
        elif isinstance(value, dict):
            below, amount, limit = (
                from_nanos(int(value.get(k, 0))) for k in ("below", "amount", "monthly_limit")
            )
            parts.append(
                f"{label}: {usd(amount)} when below {usd(below)}, at most {usd(limit)} a month"
            )
        else:
            parts.append(f"{label}: {usd(from_nanos(int(value)))}")
    return "; ".join(parts)
