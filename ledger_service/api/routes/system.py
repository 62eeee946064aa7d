"""Deployment, health and readiness."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from ledger_service.api.deps import ServiceDep
from ledger_service.api.models import DeploymentOut
from ledger_service.api.responses import FastJSONResponse

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


@router.get("/readyz", summary="Readiness: database and chain reachable", responses={503: {}})
def readyz(service: ServiceDep) -> Any:
    checks = service.readiness()
    ok = checks.get("database") == "ok" and checks.get("chain") == "ok"
    return FastJSONResponse({"ready": ok, **checks}, status_code=200 if ok else 503)
