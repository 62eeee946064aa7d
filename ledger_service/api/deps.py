"""Dependencies shared by the routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ledger_service.service import LedgerService


def get_service(request: Request) -> LedgerService:
    service: LedgerService = request.app.state.service
    return service


ServiceDep = Annotated[LedgerService, Depends(get_service)]
