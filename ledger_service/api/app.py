"""The FastAPI application."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI

from ledger_service.access.guard import guard
from ledger_service.access.policy import ROUTES, Data
from ledger_service.api import errors
from ledger_service.api.fast_lane import FastLane
from ledger_service.api.limits import RequestLimitsMiddleware
from ledger_service.api.models import BatchIn, SubmissionIn
from ledger_service.api.responses import FastJSONResponse
from ledger_service.api.routes import (
    auth,
    certification,
    devices,
    lot_access,
    lot_trace,
    lots,
    lots_epcis,
    parties,
    readings,
    recalls,
    system,
    windows,
)
from ledger_service.collector import settle_collector
from ledger_service.config import Settings
from ledger_service.service import LedgerService


def create_app(
    settings: Settings | None = None,
    *,
    service: LedgerService | None = None,
    fast_lane: bool = True,
    settle_gc: bool = False,
) -> FastAPI:
    """The app. Give a built ``service`` (tests, embedded demo) or ``settings`` to build one at startup.
    ``fast_lane=False`` leaves every request to FastAPI's routes (the tests compare both answers).
    ``settle_gc``: once started, :func:`~ledger_service.collector.settle_collector` (a process that
    serves this one app: ``supet serve``)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        svc = service or LedgerService.build(settings or Settings())
        app.state.service = svc
        svc.start()
        if settle_gc:
            settle_collector()
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
        # the access policy (issue 14): every read of every router passes ledger_service.access
        dependencies=[Depends(guard)],
        # FastAPI's native OpenTelemetry is off (the service exports Prometheus metrics and JSON
        # logs): with it on, every request asks OpenTelemetry for its three global providers, each
        # a look-up in os.environ, only to find none configured (issue 17.3)
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.include_router(readings.router)
    app.include_router(system.router)
    app.include_router(auth.router)
    app.include_router(devices.router)
    app.include_router(lots.router)
    app.include_router(lots_epcis.router)
    app.include_router(lot_trace.router)
    app.include_router(recalls.router)
    app.include_router(windows.router)
    app.include_router(lot_access.router)
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
    # the fast lane (issue 17.3) answers /healthz and granted proof bundles inside every middleware
    if fast_lane:
        app.add_middleware(FastLane)
    app.add_middleware(RequestLimitsMiddleware, settings=current_settings)

    errors.install(app)  # the one error -> HTTP status map

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
        _document_refusals(schema)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


_PUBLIC = (Data.SERVICE, Data.DISCLOSURES)
_ENVELOPE = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}


def _document_refusals(schema: dict[str, Any]) -> None:
    """Every read the access policy guards may answer 401 (`access.anonymous`, `auth.*`) and 403 (the
    policy's refusal codes, docs/access-policy.md); every operation taking a body may answer 413 and 408
    (the request limits, :mod:`ledger_service.api.limits`): documented on each, where the route did not."""
    for ops in schema.get("paths", {}).values():
        for op in ops.values():
            if not isinstance(op, dict) or "requestBody" not in op:
                continue
            responses = op.setdefault("responses", {})
            responses.setdefault(
                "413",
                {
                    "description": "`request.too_large`: the body exceeds the route's cap "
                    "(`SUPET_MAX_REQUEST_BYTES`, 64 KiB; `SUPET_MAX_BODY_BYTES` on `POST /v1/readings`).",
                    "content": _ENVELOPE,
                },
            )
            responses.setdefault(
                "408",
                {"description": "`request.timeout`: the body did not arrive in time.", "content": _ENVELOPE},
            )
    for path, ops in schema.get("paths", {}).items():
        rule = ROUTES.get(path)
        get = ops.get("get")
        if rule is None or get is None or rule.data in _PUBLIC:
            continue
        responses = get.setdefault("responses", {})
        responses.setdefault(
            "401",
            {
                "description": "`access.anonymous`: nobody signed the request (or `auth.*`: its credentials "
                "did not verify).",
                "content": _ENVELOPE,
            },
        )
        responses.setdefault(
            "403",
            {"description": "Refused by the access policy (docs/access-policy.md).", "content": _ENVELOPE},
        )
