"""A consenting factory's grade history with the reason for each change (issue 15), for its banks.

Thin over :func:`ledger_service.credit_desk.grades.bank_grades`: the bank must be admitted for
``supet.credit.query`` and hold a standing consent of the factory (``finance.not_a_bank``,
``finance.no_consent``, ``finance.consent_expired``); every attempt is in the factory's access log.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path

from ledger_service.api.deps import CurrentParty, ServiceDep
from ledger_service.api.models import ErrorEnvelope
from ledger_service.credit_desk.grades import bank_grades

router = APIRouter(prefix="/v1", tags=["finance"])

AddressPath = Annotated[str, Path(description="The factory's Ethereum address.")]


@router.get(
    "/bank/factories/{address}/grades",
    summary="A consenting factory's grades, oldest first, each with the grade before it and the reason "
    "for the change (which features moved); served only off chain (logged)",
    responses={
        401: {"model": ErrorEnvelope, "description": "No party signed in."},
        403: {"model": ErrorEnvelope, "description": "Refused (typed code, see docs/finance-api.md)."},
        503: {"model": ErrorEnvelope, "description": "The chain or the database is unreachable."},
    },
)
def factory_grades(address: AddressPath, party: CurrentParty, service: ServiceDep) -> Any:
    return bank_grades(service, party.address, address)
