"""Deployment, health and readiness."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from ledger_service.api.deps import ServiceDep
from ledger_service.api.models import DeploymentOut
from ledger_service.api.responses import FastJSONResponse
from ledger_service.metrics import CONTENT_TYPE

router = APIRouter(tags=["system"])


@router.get(
    "/v1/deployment", response_model=DeploymentOut, summary="Chain id, contracts and the EIP-712 domain"
)
def deployment(service: ServiceDep) -> Any:
    dep = service.deployment
    return {
        "chain_id": dep.chain_id,
        "contracts": dep.contracts,
        "block": dep.block,
        "domain": {
            "name": "supET Ledger",
            "version": "1",
            "chainId": dep.chain_id,
            "verifyingContract": dep.address("ReadingAnchor"),
        },
    }


@router.get("/healthz", summary="Liveness: the process answers")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: can the service take readings?",
    description=(
        "Ready (200) while the database answers and, when MQTT ingest is configured, the broker is "
        "connected: readings can be acknowledged. The chain is reported too; while it is unreachable the "
        "service stays ready (ingest does not need it) but says `degraded`: anchoring waits and retries. "
        "`components` gives chain, database and broker each as `{state, since_ms, detail, last_ok_ms}`: "
        "`state` is `ok`, `down` or `disabled`, `since_ms` when it entered that state."
    ),
    responses={503: {"description": "Not ready: the database or the broker is down."}},
)
def readyz(service: ServiceDep) -> Any:
    checks = service.readiness()
    mqtt = checks.get("mqtt", "disabled")
    ok = checks.get("database") == "ok" and mqtt in ("ok", "disabled")
    degraded = checks.get("chain") != "ok"
    return FastJSONResponse({"ready": ok, "degraded": degraded, **checks}, status_code=200 if ok else 503)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    description="The service's metrics in the Prometheus text format (see docs/deployment.md).",
    response_class=Response,
    include_in_schema=True,
)
def metrics(service: ServiceDep) -> Response:
    return Response(service.metrics.render(), media_type=CONTENT_TYPE)
