"""The HTTP API (FastAPI), with request ids and per-route metrics around it."""

from __future__ import annotations

from fastapi import FastAPI

from ledger_service.api.app import create_app as _create_app
from ledger_service.api.routes import finance as finance_routes
from ledger_service.api.routes import grades as grades_routes
from ledger_service.config import Settings
from ledger_service.logs import RequestIdMiddleware
from ledger_service.metrics import LedgerMetrics, MetricsMiddleware
from ledger_service.service import LedgerService

__all__ = ["create_app"]


def create_app(
    settings: Settings | None = None, *, service: LedgerService | None = None, fast_lane: bool = True
) -> FastAPI:
    """The app (:func:`ledger_service.api.app.create_app`), timed per route, tagged with request ids."""
    app = _create_app(settings, service=service, fast_lane=fast_lane)
    app.include_router(finance_routes.router)  # issue 6: credit, consents, bank queries, receivables
    app.include_router(grades_routes.router)  # issue 15: a factory's grade history, for its banks
    from ledger_service.portal.routes import router as portal  # issue 7 (imported here: it uses api.routes)

    app.include_router(portal)  # the web portal at /portal, and / redirects there

    def metrics() -> LedgerMetrics | None:
        svc = getattr(app.state, "service", None)
        return svc.metrics if svc is not None else None

    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(RequestIdMiddleware)  # outermost: ids cover everything
    return app
