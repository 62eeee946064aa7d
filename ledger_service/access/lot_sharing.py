"""What a lot's holder shares: an auditor named for the lot, or the lot's evidence disclosed (issue 14).

- :func:`name_auditor`: the lot's holder (its current custodian on chain) names an auditor, who may
  then read the lot's evidence (timeline, QC readings with their proofs, EPCIS export, certification
  package); :func:`withdraw_auditor` ends that (the holder, or the party that named it).
- :func:`disclose`: the lot's holder or a buyer (a party that accepted it in a transfer) discloses
  the lot's evidence: from then on anyone may read it, without signing in. A disclosure is not
  withdrawn: what was public may have been copied.

Only lots on chain are shared this way (a lot id no lot on chain has belongs to each device owner).
"""

from __future__ import annotations

from typing import Any

from eth_utils import to_checksum_address

from contracts.lots import LotRegistryClient
from ledger_service.access import lot_grants
from ledger_service.access.errors import AccessDenied
from ledger_service.errors import NotFound
from ledger_service.lots.timeline import resolve_lot
from ledger_service.service import LedgerService

__all__ = ["disclose", "disclosed_lots", "name_auditor", "withdraw_auditor"]


def _on_chain(service: LedgerService, lot_id: str, issuer: str | None) -> tuple[bytes, LotRegistryClient]:
    key = resolve_lot(
        service.chain, service.deployment, lot_id, to_checksum_address(issuer) if issuer else None
    )
    if key is None:
        raise NotFound(
            f"no lot {lot_id!r} on chain: only a lot opened (or split off) on chain can be shared",
            code="lot.not_found",
        )
    return key, LotRegistryClient.from_deployment(service.chain, service.deployment)


def _holder(lots: LotRegistryClient, key: bytes) -> str:
    return to_checksum_address(lots.custodian(key))


def name_auditor(
    service: LedgerService, party: str, lot_id: str, auditor: str, *, issuer: str | None = None
) -> dict[str, Any]:
    """``party``, the lot's holder, names ``auditor``; :class:`AccessDenied` ``access.not_holder``."""
    key, lots = _on_chain(service, lot_id, issuer)
    holder = _holder(lots, key)
    if party != holder:
        raise AccessDenied(
            f"only the lot's holder ({holder}) may name an auditor for it; you are {party}",
            code="access.not_holder",
        )
    row = lot_grants.add_auditor(
        service.engine,
        lot_key="0x" + key.hex(),
        lot_id=lot_id,
        auditor=to_checksum_address(auditor),
        named_by=party,
    )
    return {
        "lot_id": lot_id,
        "lot_key": row.lot_key,
        "auditor": row.auditor,
        "named_by": row.named_by,
        "named_ms": row.named_ms,
    }


def withdraw_auditor(
    service: LedgerService, party: str, lot_id: str, auditor: str, *, issuer: str | None = None
) -> dict[str, Any]:
    """End ``auditor``'s access to the lot (the holder may; so may the party that named it)."""
    key, lots = _on_chain(service, lot_id, issuer)
    lot_key = "0x" + key.hex()
    auditor = to_checksum_address(auditor)
    named_by = lot_grants.named_by(service.engine, lot_key=lot_key, auditor=auditor)
    if party != _holder(lots, key) and party not in named_by:
        raise AccessDenied(
            "only the lot's holder, or the party that named the auditor, may withdraw it",
            code="access.not_holder",
        )
    ended = lot_grants.withdraw_auditor(service.engine, lot_key=lot_key, auditor=auditor)
    return {"lot_id": lot_id, "lot_key": lot_key, "auditor": auditor, "withdrawn": ended > 0}


def disclose(service: LedgerService, party: str, lot_id: str, *, issuer: str | None = None) -> dict[str, Any]:
    """``party``, the lot's holder or a buyer, discloses its evidence; :class:`AccessDenied`
    ``access.not_holder`` for anyone else."""
    key, lots = _on_chain(service, lot_id, issuer)
    custody = [to_checksum_address(e.custodian) for e in lots.custody_chain(key)]
    holder = _holder(lots, key)
    buyers = set(custody[1:])  # the first entry is the lot's issuer; the others took it in a transfer
    if party != holder and party not in buyers:
        raise AccessDenied(
            f"only the lot's holder ({holder}) or a party that bought it (accepted it in a transfer) may "
            f"disclose its evidence; you are {party}",
            code="access.not_holder",
        )
    row = lot_grants.add_disclosure(
        service.engine,
        lot_key="0x" + key.hex(),
        lot_id=lot_id,
        issuer=to_checksum_address(lots.issuer(key)),
        disclosed_by=party,
    )
    return _disclosure_json(row)


def _disclosure_json(row: Any) -> dict[str, Any]:
    return {
        "lot_id": row.lot_id,
        "lot_key": row.lot_key,
        "issuer": row.issuer,
        "disclosed_by": row.disclosed_by,
        "disclosed_ms": row.disclosed_ms,
    }


def disclosed_lots(service: LedgerService, *, after_id: int = 0, limit: int = 50) -> dict[str, Any]:
    """A page of the disclosed lots, in the order they were disclosed."""
    rows, cursor = lot_grants.disclosed_page(service.engine, after_id=after_id, limit=limit)
    return {"lots": [_disclosure_json(r) for r in rows], "next_after_id": cursor}
