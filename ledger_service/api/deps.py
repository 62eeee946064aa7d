"""Dependencies shared by the routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Query, Request

from ledger_service.access.guard import Granted, guard
from ledger_service.auth import ENROLLER, AuthenticatedParty, current_party, require_role
from ledger_service.service import LedgerService


def get_service(request: Request) -> LedgerService:
    service: LedgerService = request.app.state.service
    return service


ServiceDep = Annotated[LedgerService, Depends(get_service)]

#: What the access guard let through for this request (its caller, the facts, what it read); the
#: guard runs for every route (app-wide), this names its answer for the route to read.
Access = Annotated[Granted, Depends(guard)]

#: The calling party (bearer token or signed request); 401 otherwise. Roles are not checked.
CurrentParty = Annotated[AuthenticatedParty, Depends(current_party)]
#: The calling party, if the chain says (now) it may enroll devices; 401/403 otherwise.
EnrollerParty = Annotated[AuthenticatedParty, Depends(require_role(ENROLLER))]

#: A lot id in a path: as opened on chain and carried by readings (no control characters).
LotIdPath = Annotated[
    str,
    Path(
        min_length=1,
        max_length=256,
        pattern=r"^[^\x00-\x1f\x7f]+$",
        description="The lot id as opened on chain and carried by readings.",
        examples=["LOT-2026-0001"],
    ),
]

#: The issuer of a lot (who opened it or split it off): lot ids are scoped to their issuer on chain.
IssuerQuery = Annotated[
    str | None,
    Query(
        pattern=r"^0x[0-9a-fA-F]{40}$",
        description="The lot's issuer, needed when several parties have a lot with this id (409 "
        "`lot.ambiguous` otherwise).",
    ),
]
