"""The FastAPI application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from contracts.errors import ChainError
from ledger_service.api.limits import RequestLimitsMiddleware
from ledger_service.api.models import BatchIn, SubmissionIn
from ledger_service.api.responses import FastJSONResponse
from ledger_service.api.routes import (
    auth,
    certification,
    devices,
    lots,
    lots_epcis,
    parties,
    readings,
    system,
)
from ledger_service.config import Settings
from ledger_service.errors import AuthError, LedgerError, NotFound, StoreError
from ledger_service.service import LedgerService


def create_app(settings: Settings | None = None, *, service: LedgerService | None = None) -> FastAPI:
    """The app. Give a built ``service`` (tests, embedded demo) or ``settings`` to build one at startup."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        svc = service or LedgerService.build(settings or Settings())
        app.state.service = svc
        svc.start()
        try:
            yield
        finally:
            svc.stop()

    app = FastAPI(
        title="supET Ledger",
        version="1",
        summary="Signed IoT readings, durably stored, anchored on chain, provable by anyone.",
        lifespan=lifespan,
        default_response_class=FastJSONResponse,
    )
    app.include_router(readings.router)
    app.include_router(system.router)
    app.include_router(auth.router)
    app.include_router(devices.router)
    app.include_router(lots.router)
    app.include_router(lots_epcis.router)
    app.include_router(certification.router)
    app.include_router(parties.router)

    fallback: list[Settings] = []

    def current_settings() -> Settings:
        svc = getattr(app.state, "service", None)
        if svc is not None:
            return svc.settings
        if not fallback:
            fallback.append(service.settings if service is not None else settings or Settings())
        return fallback[0]

    # Every body is capped, timed and strictly decoded before routing and authentication: installed
    # first, so the request-id and metrics middlewares (ledger_service.api) wrap its refusals too.
    app.add_middleware(RequestLimitsMiddleware, settings=current_settings)

    @app.exception_handler(LedgerError)
    async def _ledger_error(_: Request, exc: LedgerError) -> JSONResponse:
        status = getattr(exc, "http_status", None) or (
            404
            if isinstance(exc, NotFound)
            else 403
            if isinstance(exc, AuthError)
            else (503 if isinstance(exc, StoreError) else 400)
        )
        return FastJSONResponse({"error": {"code": exc.code, "message": exc.message}}, status_code=status)

    @app.exception_handler(ChainError)
    async def _chain_error(_: Request, exc: ChainError) -> JSONResponse:
        return FastJSONResponse(
            {
                "error": {
                    "code": exc.code,
                    "message": f"the chain is unreachable ({exc.message}); retry later",
                }
            },
            status_code=503,
        )

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
        return FastJSONResponse(
            {"error": {"code": "request.invalid", "message": f"{where}: {first.get('msg')}"}}, status_code=422
        )

    # register the submission schemas for the hand-written request body of POST /v1/readings
    original = app.openapi

    def openapi() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        schema = original()
        comps = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in (SubmissionIn, BatchIn):
            model_schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            for name, sub in model_schema.pop("$defs", {}).items():
                comps.setdefault(name, sub)
            comps[model.__name__] = model_schema
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
