"""The portal's pages: ``/portal`` (plain server-rendered HTML; ``/`` redirects there).

Every page is built from the services the API uses; errors become a page in words with the
error's code and a status (:class:`PortalRoute`). Pages:

- ``/portal/login`` -> ``/portal/login/challenge`` -> ``/portal/login``: sign in with EIP-4361
  (the message of ``POST /v1/auth/challenge``, signed with ``personal_sign``); ``/portal/logout``.
- ``/portal/lots``: search a lot, its timeline with each step's verification status, a link to each
  reading's proof (``/portal/readings/{digest}/proof``) and ``/portal/readings/{digest}/check``
  (verify it against the chain); without a lot, the lots their holders disclosed. Who sees which lot
  is the access policy's (issue 14): anyone a disclosed lot, its custodians and named auditors
  (signed in) the others.
- ``/portal/factory`` (supplier): its devices and their health, its lots, the recalls they are under, its
  lines' operating windows and the readings found outside them, its consents, who looked.
- ``/portal/recalls`` (any signed-in party): the recall notices its lots, held now or before, are under.
- ``/portal/bank`` (bank or insurer): consented factories and their credit records, receivables on
  offer; ``/portal/bank/factories/{address}`` (record history, grade history with the reason of each
  change, reasons, profile chart).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

from eth_utils import is_address, to_checksum_address
from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates

from contracts.errors import ChainError
from ledger_service.access.lot_sharing import disclosed_lots
from ledger_service.analytics_store.publish import list_published
from ledger_service.analytics_store.window_check import factory_breach_reports
from ledger_service.api.errors import http_status
from ledger_service.auth import auth_state
from ledger_service.credit_desk import queries as finance_desk
from ledger_service.credit_desk.desk import desk_of
from ledger_service.credit_desk.grades import grade_history
from ledger_service.lots.recall import recalls_of_party
from ledger_service.portal import views
from ledger_service.portal.errors import BadForm
from ledger_service.portal.session import (
    Visitor,
    check_csrf,
    clear_session,
    ensure_csrf_cookie,
    party_roles,
    read_form,
    require_party,
    require_portal_role,
    set_session,
    visitor,
)
from ledger_service.service import LedgerService
from supet_base.errors import SupetError

__all__ = ["PortalRoute", "router"]

_HERE: Final = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=str(_HERE / "templates"))
templates.env.filters["ms"] = views.fmt_ms
templates.env.filters["s"] = lambda s: views.fmt_ms(int(s) * 1000) if s else "-"
templates.env.filters["urlq"] = lambda s: quote(str(s), safe="")
_CSS: Final = (_HERE / "static" / "portal.css").read_bytes()


def _service(request: Request) -> LedgerService:
    service: LedgerService = request.app.state.service
    return service


def render(request: Request, name: str, v: Visitor | None, *, status: int = 200, **ctx: Any) -> HTMLResponse:
    """Render template ``name`` for visitor ``v`` (CSRF cookie set when the browser had none)."""
    response = templates.TemplateResponse(request, name, {"v": v, **ctx}, status_code=status)
    new_cookie = getattr(request.state, "new_csrf_cookie", None)
    if new_cookie is not None:
        ensure_csrf_cookie(request, response, new_cookie)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'"
    )
    return response


class PortalRoute(APIRoute):
    """A portal route whose errors are answered with an HTML page in words (code, what to do) and the
    status the API gives the same error (:func:`ledger_service.api.errors.http_status`)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except ChainError as e:
                return _error_page(
                    request,
                    http_status(e),
                    e.code,
                    f"The chain cannot be asked right now ({e.message}). Retry in a minute.",
                )
            except SupetError as e:
                return _error_page(request, http_status(e), e.code, e.message)

        return route_handler


def _error_page(request: Request, status: int, code: str, message: str) -> HTMLResponse:
    try:
        v: Visitor | None = visitor(request)
    except (SupetError, ChainError):
        v = None
    return render(request, "error.html", v, status=status, status_code=status, code=code, message=message)


router = APIRouter(route_class=PortalRoute, include_in_schema=False)


@router.get("/")
def root() -> RedirectResponse:
    return RedirectResponse("/portal", status_code=307)


@router.get("/portal/static/portal.css")
def css() -> Response:
    return Response(_CSS, media_type="text/css", headers={"Cache-Control": "max-age=300"})


@router.get("/portal/static/wallet.js")
def wallet_js() -> Response:
    return Response((_HERE / "static" / "wallet.js").read_bytes(), media_type="text/javascript")


@router.get("/portal")
def home(request: Request) -> HTMLResponse:
    return render(request, "home.html", visitor(request))


# ---------------------------------------------------------------------------- sign-in


@router.get("/portal/login")
def login_page(request: Request) -> HTMLResponse:
    return render(request, "login.html", visitor(request))


@router.post("/portal/login/challenge")
async def login_challenge(request: Request) -> HTMLResponse:
    v = visitor(request)
    form = await read_form(request)
    check_csrf(request, v, form)
    address = form.get("address", "").strip()
    if not address:
        raise BadForm("enter your party's Ethereum address (0x and 40 hex digits)")
    challenge = auth_state(request).authenticator.issue_login(address)
    return render(request, "login_sign.html", v, challenge=challenge)


@router.post("/portal/login")
async def login(request: Request) -> Response:
    v = visitor(request)
    form = await read_form(request)
    check_csrf(request, v, form)
    message = form.get("message", "").replace("\r\n", "\n")
    signature = form.get("signature", "").strip()
    if not message or not signature:
        raise BadForm("paste the signature of the message shown (0x and 130 hex digits) and try again")
    authenticator = auth_state(request).authenticator
    issued = await run_in_threadpool(authenticator.redeem_login, message, signature)
    max_age = max(1, int((issued.expires_at - authenticator.clock()).total_seconds()))
    roles = await run_in_threadpool(party_roles, _service(request), issued.address)
    target = (
        "/portal/factory"
        if "supplier" in roles
        else "/portal/bank"
        if roles & {"bank", "insurer"}
        else "/portal"
    )
    response = RedirectResponse(target, status_code=303)
    set_session(request, response, issued.token, max_age)
    return response


@router.post("/portal/logout")
async def logout(request: Request) -> Response:
    v = visitor(request)
    form = await read_form(request)
    check_csrf(request, v, form)
    if v.party is not None:
        # the cookie is an API token: end it on the server too, not only in this browser
        await run_in_threadpool(auth_state(request).authenticator.revoke, v.party)
    response = RedirectResponse("/portal/login?signed_out=1", status_code=303)
    clear_session(request, response)
    return response


# ---------------------------------------------------------------------------- auditor (public)


@router.get("/portal/lots")
def lots(request: Request, lot_id: str = "", cursor: str | None = None, after: int = 0) -> HTMLResponse:
    v = visitor(request)
    lot_id = lot_id.strip()
    if not lot_id:
        page = disclosed_lots(_service(request), after_id=max(0, after), limit=50)
        return render(
            request,
            "lot.html",
            v,
            lot=None,
            lot_id="",
            disclosed=page["lots"],
            disclosed_next=page["next_after_id"],
        )
    if len(lot_id) > 256 or any(ord(c) < 32 or ord(c) == 127 for c in lot_id):
        raise BadForm("a lot id has 1..256 characters and no control characters")
    lot = views.lot_view(_service(request), lot_id, cursor=cursor)
    return render(request, "lot.html", v, lot=lot, lot_id=lot_id)


@router.get("/portal/readings/{digest}/proof")
def reading_proof(request: Request, digest: str) -> Response:
    """A reading's proof bundle, for whom the access policy lets read it (the session's party)."""
    return Response(
        views.proof_json(_service(request), digest),
        media_type="application/json",
        headers={"Cache-Control": "private, no-store"},
    )


@router.post("/portal/readings/{digest}/check")
async def check(request: Request, digest: str) -> HTMLResponse:
    v = visitor(request)
    form = await read_form(request)
    check_csrf(request, v, form)
    verdict = await run_in_threadpool(views.check_reading, _service(request), digest)
    return render(request, "verdict.html", v, verdict=verdict, lot_id=form.get("lot_id", ""))


# ---------------------------------------------------------------------------- factory (supplier)


@router.get("/portal/factory")
def factory(request: Request) -> HTMLResponse:
    v = visitor(request)
    party = require_portal_role(v, "supplier")
    service = _service(request)
    devices, device_pages = views.factory_devices(service, party.address, request.query_params)
    lot_rows, lot_pages = views.factory_lots(service, party.address, request.query_params)
    consents: list[dict[str, Any]] | None = None
    access: views.AccessLogView | None = None
    finance_note = None
    if "CreditRegistry" in service.deployment.contracts:
        consents = finance_desk.factory_consents(service, party.address, party.address)["consents"]
        access = views.factory_access_log(service, party, request.query_params)
    else:
        finance_note = "This deployment has no CreditRegistry: consents and the access log are not available."
    recalls = recalls_of_party(service, party.address, limit=50)
    windows = factory_breach_reports(service.engine, party.address)
    return render(
        request,
        "factory.html",
        v,
        devices=devices,
        device_pages=device_pages,
        lots=lot_rows,
        lot_pages=lot_pages,
        consents=consents,
        access=access,
        finance_note=finance_note,
        recalls=recalls,
        windows=windows,
    )


@router.get("/portal/recalls")
def recalls(request: Request, cursor: str | None = None) -> HTMLResponse:
    """The recall notices the signed-in party's lots (held now or before) are under."""
    v = visitor(request)
    party = require_party(v)
    if cursor is not None and len(cursor) > 100:
        raise BadForm("that page link is not one of this list's: start again from /portal/recalls")
    page = recalls_of_party(_service(request), party.address, limit=100, cursor=cursor or None)
    return render(request, "recalls.html", v, recalls=page)


# ---------------------------------------------------------------------------- bank


def _factory_address(value: str) -> str:
    if not is_address(value):
        raise BadForm(f"{value!r} is not an Ethereum address (0x and 40 hex digits)")
    return to_checksum_address(value)


@router.get("/portal/bank")
def bank(request: Request) -> HTMLResponse:
    v = visitor(request)
    party = require_party(v)
    service = _service(request)
    factories = desk_of(service).bank_factories(party.address)  # refuses (logged) a party that is no bank
    parts: list[dict[str, Any]] | None = None
    receivables_note = None
    if "Receivables" in service.deployment.contracts:
        parts = finance_desk.list_receivables(service, party.address, None, party.address)["parts"]
    else:
        receivables_note = "This deployment has no Receivables contract."
    return render(
        request, "bank.html", v, factories=factories, parts=parts, receivables_note=receivables_note
    )


@router.get("/portal/bank/factories/{address}")
def bank_factory(request: Request, address: str) -> HTMLResponse:
    v = visitor(request)
    party = require_party(v)
    service = _service(request)
    factory_address = _factory_address(address)
    credit = finance_desk.bank_credit(service, party.address, factory_address)  # gated and logged
    desk = desk_of(service)
    reasons: list[dict[str, Any]] = []
    if credit["current"] is not None:
        assessment = desk.assessment(credit["current"]["commitment"])
        reasons = list(assessment.get("reasons", [])) if assessment else []
    has_profile = bool(list_published(service.engine, kind="profile", subject=factory_address))
    grades = grade_history(desk, factory_address)  # after the gate above: the grades and their reasons
    return render(
        request,
        "bank_factory.html",
        v,
        factory=factory_address,
        credit=credit,
        reasons=reasons,
        has_profile=has_profile,
        grades=grades,
    )


@router.get("/portal/bank/factories/{address}/profile.png")
def bank_profile_png(request: Request, address: str) -> Response:
    v = visitor(request)
    party = require_party(v)
    service = _service(request)
    factory_address = _factory_address(address)
    desk_of(service).gate(party.address, factory_address, "profile")  # consent, logged
    png = views.profile_png(service, factory_address)
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, no-store"})
