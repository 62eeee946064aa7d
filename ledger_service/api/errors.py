"""The one map from errors to HTTP statuses, and the JSON error envelope (issue 13).

Every front end answers an error through here: the app's exception handlers (:func:`install`), the
ingest route (a refused submission's code, :func:`refusal`), the finance routes (a relay refusal
and its details) and the portal (an HTML page with the same status, :func:`http_status`).

How a status is found, first match wins:

1. its ``code`` is in :data:`STATUS_BY_CODE`;
2. its class, or the nearest base class, is in :data:`STATUS_BY_CLASS`;
3. 400.

No error names its own status: a case with a status of its own is a subclass (an enrollment
conflict, a relay's wrong signer...) or a code listed here. Refusals made before routing (the body
limits of :mod:`.limits`) take their status from :func:`code_status` too.

The envelope is ``{"error": {"code", "message"[, "details"]}}``; every 401 carries
``WWW-Authenticate`` (RFC 6750).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from contracts.errors import ChainError
from ledger_service.access.errors import AccessDenied, AccessError, AnonymousRefused
from ledger_service.api.responses import FastJSONResponse
from ledger_service.auth import AuthenticationFailed, NotASession, RoleRequired
from ledger_service.credit_desk.errors import (
    AccessLogError,
    AccessRefused,
    FinanceError,
    FinanceNotDeployed,
    LineRefused,
    LineUnavailable,
    UnknownProfile,
)
from ledger_service.enrollment.errors import (
    EnrollmentConflict,
    EnrollmentForbidden,
    EnrollmentRefused,
    TooManyChallenges,
)
from ledger_service.errors import AuthError, IngestUnavailable, LedgerError, NotFound, StoreError
from ledger_service.portal.errors import CsrfRefused, NotSignedIn, PortalError, PortalRoleRequired
from ledger_service.tx_relay import RelayConflict, RelayForbidden

__all__ = [
    "STATUS_BY_CLASS",
    "STATUS_BY_CODE",
    "WWW_AUTHENTICATE",
    "code_status",
    "error_response",
    "http_status",
    "install",
    "refusal",
    "rejection_status",
]

#: Sent with every 401, as RFC 6750 asks.
WWW_AUTHENTICATE: Final = 'Bearer realm="supET Ledger"'

#: Statuses of single codes: refusals that carry a code, not an exception class of their own.
STATUS_BY_CODE: Final[Mapping[str, int]] = {
    "store.unavailable": 503,
    "reading.equivocation": 409,
    "reading.out_of_order": 409,
    "request.bad_json": 400,
    "request.bad_length": 400,
    "request.bad_shape": 400,
    "request.invalid": 422,
    "request.timeout": 408,
    "request.too_large": 413,
    "request.too_many": 413,
    "request.busy": 503,
    "request.page_too_large": 422,
    "lot.ambiguous": 409,
    "lot.not_mirrored": 404,
    "trace.too_large": 422,
    "party.bad_address": 404,
    "party.no_registry": 404,
}

#: Statuses of error classes; a subclass not listed takes its nearest listed base's.
STATUS_BY_CLASS: Final[Mapping[type[BaseException], int]] = {
    LedgerError: 400,
    NotFound: 404,
    StoreError: 503,
    IngestUnavailable: 503,
    AuthError: 403,
    AuthenticationFailed: 401,
    NotASession: 400,
    RoleRequired: 403,
    PortalError: 400,
    NotSignedIn: 401,
    PortalRoleRequired: 403,
    CsrfRefused: 403,
    ChainError: 503,
    EnrollmentRefused: 422,
    EnrollmentConflict: 409,
    EnrollmentForbidden: 403,
    TooManyChallenges: 429,
    FinanceError: 400,
    AccessRefused: 403,
    FinanceNotDeployed: 404,
    UnknownProfile: 404,
    LineRefused: 409,
    LineUnavailable: 503,
    AccessLogError: 409,
    RelayConflict: 409,
    RelayForbidden: 403,
    AccessError: 403,
    AccessDenied: 403,
    AnonymousRefused: 401,
}

#: A single submission refused by the ingest pipeline, when its code has no status of its own.
REJECTED: Final = 422
#: Anything else.
DEFAULT: Final = 400


def http_status(error: BaseException) -> int:
    """The HTTP status the API and the portal answer ``error`` with (see the module docstring)."""
    code = getattr(error, "code", None)
    if isinstance(code, str) and code in STATUS_BY_CODE:
        return STATUS_BY_CODE[code]
    for cls in type(error).__mro__:
        if cls in STATUS_BY_CLASS:
            return STATUS_BY_CLASS[cls]
    return DEFAULT


def code_status(code: str) -> int:
    """The status of a refusal known by its ``code`` alone (400 unless listed)."""
    return STATUS_BY_CODE.get(code, DEFAULT)


def rejection_status(code: str) -> int:
    """The status of a single submission the pipeline refused with ``code`` (422 unless listed)."""
    return STATUS_BY_CODE.get(code, REJECTED)


def _headers(status: int) -> dict[str, str] | None:
    return {"WWW-Authenticate": WWW_AUTHENTICATE} if status == 401 else None


def error_response(error: LedgerError | ChainError, *, message: str | None = None) -> FastJSONResponse:
    """``error`` as the API answers it: its status, the envelope, and its ``details`` when it has any."""
    status = http_status(error)
    body: dict[str, Any] = {"code": error.code, "message": error.message if message is None else message}
    details = getattr(error, "details", None)
    if details:
        body["details"] = details
    return FastJSONResponse({"error": body}, status_code=status, headers=_headers(status))


def refusal(code: str, message: str, *, status_code: int | None = None, **extra: Any) -> FastJSONResponse:
    """A refusal by ``code``: its status is ``status_code`` when given (itself from this module), else
    :data:`STATUS_BY_CODE`'s, else 400; ``extra`` goes beside ``error`` in the body."""
    status = status_code if status_code is not None else code_status(code)
    return FastJSONResponse(
        {"error": {"code": code, "message": message}, **extra}, status_code=status, headers=_headers(status)
    )


def chain_message(error: ChainError) -> str:
    """What the API says when the chain cannot be asked."""
    return f"the chain cannot be asked right now ({error.message}); retry later"


def service_error_response(exc: LedgerError | ChainError) -> FastJSONResponse:
    """The answer to a service error or an unreachable chain (the app's handlers, and the fast lane's)."""
    if isinstance(exc, ChainError):
        return error_response(exc, message=chain_message(exc))
    return error_response(exc)


def install(app: FastAPI) -> None:
    """Answer every service error, unreachable chain, HTTP error and invalid request of ``app`` here."""

    @app.exception_handler(LedgerError)
    async def _ledger_error(_: Request, exc: LedgerError) -> JSONResponse:
        return service_error_response(exc)

    @app.exception_handler(ChainError)
    async def _chain_error(_: Request, exc: ChainError) -> JSONResponse:
        return service_error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = "request.bad_json" if exc.status_code == 400 else f"http.{exc.status_code}"
        return FastJSONResponse(
            {"error": {"code": code, "message": str(exc.detail)}},
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ()))
        if tuple(first.get("loc", ())) == ("query", "limit") and first.get("type") == "less_than_equal":
            ctx = first.get("ctx")
            most = ctx.get("le") if isinstance(ctx, dict) else None
            return refusal(
                "request.page_too_large",
                f"limit: a page holds at most {most}; ask for the next page with the page's cursor",
            )
        return refusal("request.invalid", f"{where}: {first.get('msg')}")
