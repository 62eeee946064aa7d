"""The facts the access policy decides on, read from the store and the chain (issue 14).

:func:`gather` builds the :class:`~ledger_service.access.policy.Resource` of one request from the
route's parameters: who owns a reading or a device (the registry), a lot's issuer and custodians
past and present (the LotRegistry, at the latest block), the auditors its holders named and whether
it was disclosed (the store), a bank's admission and the factory's consent (the CreditRegistry and
its admission gate). It answers what it read along (a reading's status, a receivable) so the route
need not read it again.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from eth_utils import is_address, to_checksum_address
from sqlmodel import Session, col, select

from contracts.lots import LotRegistryClient, lot_key
from contracts.registry import device_id_hash
from ledger_service.access.lot_grants import grants_of
from ledger_service.access.policy import (
    BankStanding,
    Caller,
    CallerKind,
    ConsentState,
    Data,
    LotParties,
    Resource,
)
from ledger_service.credit_desk import queries as finance_queries
from ledger_service.credit_desk.consents import PairState, pair_standing
from ledger_service.credit_desk.desk import QUERY_ACTION, desk_of
from ledger_service.errors import LedgerError, NotFound
from ledger_service.lots.timeline import resolve_lot
from ledger_service.proofs import ReadingStatus, parse_digest, reading_status
from ledger_service.service import LedgerService
from ledger_service.store.models import ReadingRow

__all__ = ["Facts", "bank_standing", "gather", "lot_parties", "reading_lots"]

#: The resource, and what was read to learn it (for the route to answer from), if anything.
Facts = tuple[Resource, Any]


def _hex(key: bytes) -> str:
    return "0x" + key.hex()


@lru_cache(maxsize=4096)  # a keccak: asked on every read
def _checksum(value: str) -> str:
    return str(to_checksum_address(value))


def _address(value: str | None) -> str | None:
    return _checksum(value) if value and is_address(value) else None


def lot_parties(service: LedgerService, keys: list[bytes]) -> tuple[LotParties, ...]:
    """Issuer, custodians past and present, named auditors and disclosure of each lot on chain."""
    lots = LotRegistryClient.from_deployment(service.chain, service.deployment)
    grants = grants_of(service.engine, [_hex(k) for k in keys])
    out = []
    for key in keys:
        lot = lots.lot(key)
        held = {to_checksum_address(lot.supplier), to_checksum_address(lot.custodian)}
        held |= {to_checksum_address(e.custodian) for e in lots.full_custody_chain(key)}
        g = grants[_hex(key)]
        issuer = to_checksum_address(lots.issuer(key))
        out.append(LotParties(issuer, frozenset(held), g.auditors, g.disclosed))
    return tuple(out)


def reading_lots(service: LedgerService, row: ReadingRow, owner: str | None) -> tuple[LotParties, ...]:
    """The lots on chain a reading is evidence of: those named by its lot id that its device may
    speak for (the rule the lot timeline and ``certifyLot`` apply)."""
    if not row.lot_id or owner is None:
        return ()
    registry = service.registry
    registry.refresh_if_stale(1.0)
    did = device_id_hash(row.device_id)
    keys = [lot.key for lot in registry.lots_named(row.lot_id) if registry.may_speak_for(lot, owner, did)]
    return lot_parties(service, keys) if keys else ()


def _owner_of(service: LedgerService, device_id: str) -> str | None:
    found = service.registry.lookup(device_id)
    return _checksum(found.owner) if found is not None else None


def _reading(service: LedgerService, caller: Caller, params: Mapping[str, str]) -> Facts:
    try:  # a malformed digest is no reading either: the route answers it (404 reading.bad_digest)
        st: ReadingStatus = reading_status(service, parse_digest(params["digest"]))
    except NotFound:
        return Resource(Data.READING, exists=False), None
    device_id = st.row.device_id
    owner = _owner_of(service, device_id)
    mine = (caller.kind is CallerKind.PARTY and caller.party == owner) or (
        caller.kind is CallerKind.DEVICE and caller.device_id == device_id
    )
    lots = () if mine else reading_lots(service, st.row, owner)
    return Resource(Data.READING, owner=owner, device_id=device_id, lots=lots), st


def _device(data: Data) -> Callable[[LedgerService, Caller, Mapping[str, str]], Facts]:
    def gather_device(service: LedgerService, caller: Caller, params: Mapping[str, str]) -> Facts:
        device_id = params["device_id"]
        owner = _owner_of(service, device_id)
        return Resource(data, exists=owner is not None, owner=owner, device_id=device_id), None

    return gather_device


def _off_chain(service: LedgerService, lot_id: str, issuer: str | None) -> Resource:
    """A lot id no lot on chain has: its readings are their device owners'; with ``issuer`` named, the
    issuer's own."""
    if issuer is not None:
        g = grants_of(service.engine, [_hex(lot_key(lot_id, issuer))])
        grant = next(iter(g.values()))
        parties = LotParties(issuer, frozenset({issuer}), grant.auditors, grant.disclosed)
        return Resource(Data.LOT_EVIDENCE, owner=issuer, lots=(parties,))
    with Session(service.engine) as s:
        named = s.exec(select(col(ReadingRow.id)).where(col(ReadingRow.lot_id) == lot_id).limit(1)).first()
    return Resource(Data.LOT_EVIDENCE, exists=named is not None, lots=(LotParties(None),))


def _lot(data: Data) -> Callable[[LedgerService, Caller, Mapping[str, str]], Facts]:
    def gather_lot(service: LedgerService, caller: Caller, params: Mapping[str, str]) -> Facts:
        lot_id = params.get("lot_id", "").strip()
        if not lot_id:  # the portal's lot page without a lot: the search form and the disclosed lots
            return Resource(Data.DISCLOSURES), None
        raw_issuer = params.get("issuer") or None
        issuer = _address(raw_issuer)
        if raw_issuer is not None and issuer is None:
            raise LedgerError(f"issuer {raw_issuer!r} is not an Ethereum address", code="request.invalid")
        key = resolve_lot(service.chain, service.deployment, lot_id, issuer)
        if key is None:
            off = _off_chain(service, lot_id, issuer)
            return Resource(data, exists=off.exists, owner=off.owner, lots=off.lots), None
        parties = lot_parties(service, [key])
        return Resource(data, owner=parties[0].issuer, lots=parties), None

    return gather_lot


def bank_standing(service: LedgerService, bank: str, factory: str | None) -> BankStanding:
    """Whether ``bank`` is admitted for ``supet.credit.query``, and the state of ``factory``'s consent
    to it (as the credit desk's gate reads them)."""
    desk = desk_of(service)
    if not desk.admitted(bank, QUERY_ACTION):
        return BankStanding(admitted=False)
    if factory is None:
        return BankStanding(admitted=True)
    # the chain keys consents by salted ids and never names the bank: the service's openings say which
    # ids are this bank's, the chain whether they stand
    pair = pair_standing(desk.credit, desk.engine, factory, bank, now_s=desk.head()[1])
    state = {
        PairState.STANDING: ConsentState.STANDING,
        PairState.REVOKED: ConsentState.REVOKED,
        PairState.EXPIRED: ConsentState.EXPIRED,
        PairState.NEVER: ConsentState.NEVER,
    }[pair.state]
    return BankStanding(admitted=True, consent=state)


def _finance(data: Data) -> Callable[[LedgerService, Caller, Mapping[str, str]], Facts]:
    def gather_finance(service: LedgerService, caller: Caller, params: Mapping[str, str]) -> Facts:
        raw = None if data is Data.BANK_FACTORIES else params.get("address")  # a listing names no factory
        owner = _address(raw)
        exists = raw is None or owner is not None
        bank = None
        if caller.kind is CallerKind.PARTY and data in (Data.CREDIT, Data.PROFILE, Data.BANK_FACTORIES):
            bank = bank_standing(service, str(caller.party), owner) if exists else None
        elif caller.kind is CallerKind.PARTY and data is Data.WINDOW_BREACHES and exists:
            # the factory reads its own without a bank's standing; anyone else as a bank
            bank = None if caller.party == owner else bank_standing(service, str(caller.party), owner)
        return Resource(data, exists=exists, owner=owner, bank=bank), None

    return gather_finance


def _receivable(service: LedgerService, caller: Caller, params: Mapping[str, str]) -> Facts:
    raw = params.get("receivable_id", "")
    if not caller.signed_in or not raw.isdigit() or int(raw) < 1:
        return Resource(Data.RECEIVABLE, exists=raw.isdigit() and int(raw) >= 1), None
    try:
        found = finance_queries.receivable(service, int(raw))
    except NotFound:
        return Resource(Data.RECEIVABLE, exists=False), None
    r = found["receivable"]
    parties = {r["debtor"], r["supplier"]}
    for part in found["parts"]:
        parties |= {part.get("holder"), part.get("offered_to"), part.get("financed_by")}
    named = frozenset(str(p) for p in parties if p)
    return Resource(Data.RECEIVABLE, owner=str(r["supplier"]), parties=named), found


def _party(data: Data) -> Callable[[LedgerService, Caller, Mapping[str, str]], Facts]:
    def gather_party(service: LedgerService, caller: Caller, params: Mapping[str, str]) -> Facts:
        owner = _address(params.get("address"))
        return Resource(data, exists=owner is not None, owner=owner), None

    return gather_party


_GATHER: dict[Data, Callable[[LedgerService, Caller, Mapping[str, str]], Facts]] = {
    Data.READING: _reading,
    Data.DEVICE_HISTORY: _device(Data.DEVICE_HISTORY),
    Data.DEVICE_RECORD: _device(Data.DEVICE_RECORD),
    Data.LOT_EVIDENCE: _lot(Data.LOT_EVIDENCE),
    Data.EPCIS: _lot(Data.EPCIS),
    Data.LOT_TRACE: _lot(Data.LOT_TRACE),
    Data.ADMISSION: _party(Data.ADMISSION),
    Data.PARTY_RECALLS: _party(Data.PARTY_RECALLS),
    Data.CONSENTS: _finance(Data.CONSENTS),
    Data.ACCESS_LOG: _finance(Data.ACCESS_LOG),
    Data.CREDIT: _finance(Data.CREDIT),
    Data.PROFILE: _finance(Data.PROFILE),
    Data.WINDOW_BREACHES: _finance(Data.WINDOW_BREACHES),
    Data.BANK_FACTORIES: _finance(Data.BANK_FACTORIES),
    Data.RECEIVABLE: _receivable,
}


def gather(service: LedgerService, data: Data, caller: Caller, params: Mapping[str, str]) -> Facts:
    """The facts about what a request for ``data`` with ``params`` (its path and query parameters)
    reads, for ``caller``; data with nothing to learn is answered at once."""
    gatherer = _GATHER.get(data)
    return gatherer(service, caller, params) if gatherer is not None else (Resource(data), None)
