"""Refused reads of finance data, written down as the credit desk writes its own (issue 14).

A refusal the policy makes on finance data (credit records, profiles, consents, the access log,
receivables) is recorded through the credit desk's public functions, by the desk's own rule:

- a party admitted for ``supet.credit.query`` (a bank or insurer): an entry of the factory's anchored
  access log (:meth:`FinanceDesk.log`, outcome = the refusal code);
- anyone else (a key nobody admitted, another factory, a device, an anonymous caller): a count in
  the bounded, never anchored refusal tally (:meth:`RefusalTally.record`), which the factory sees;
  any key can ask, so these must not grow the anchored log at the service's gas.
"""

from __future__ import annotations

import uuid
from typing import Final

from ledger_service.access.policy import Caller, CallerKind, Data, Resource
from ledger_service.credit_desk.access_log import ZERO_ADDRESS
from ledger_service.credit_desk.desk import QUERY_ACTION, desk_of
from ledger_service.credit_desk.errors import FinanceNotDeployed
from ledger_service.logs import request_id
from ledger_service.service import LedgerService

__all__ = ["ACTIONS", "record_refusal"]

#: The access log's ``action`` of each kind of finance data.
ACTIONS: Final = {
    Data.CREDIT: "credit",
    Data.PROFILE: "profile",
    Data.WINDOW_BREACHES: "window_breaches",
    Data.BANK_FACTORIES: "factories",
    Data.CONSENTS: "consents",
    Data.ACCESS_LOG: "access-log",
    Data.RECEIVABLES: "receivable",
    Data.RECEIVABLE: "receivable",
}


def record_refusal(service: LedgerService, caller: Caller, resource: Resource, code: str) -> None:
    """Write the refusal down (committed when this returns; :class:`StoreError` if it cannot be)."""
    try:
        desk = desk_of(service)
    except FinanceNotDeployed:
        return  # no CreditRegistry: no access log to write to
    factory = resource.owner
    if caller.kind is CallerKind.PARTY and caller.party and desk.admitted(caller.party, QUERY_ACTION):
        desk.log(caller.party, factory, ACTIONS[resource.data], code)
        return
    party = caller.party or caller.device_owner or ZERO_ADDRESS
    rid = request_id.get() or uuid.uuid4().hex
    desk.tally.record(party=party, factory=factory, reason=code, request_id=rid)
