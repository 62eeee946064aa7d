"""A device's public record: the DeviceRegistry's view (from the chain, or the service's mirror while
the chain is unreachable) and the ledger's (sequence numbers, readings, gaps, equivocations)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, func
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, select

from contracts.errors import ChainError
from contracts.registry import DeviceRegistryClient, OnChainScheme, device_id_hash
from ledger_service.errors import NotFound, StoreError
from ledger_service.store.models import DeviceCacheRow, DeviceHeadRow, EquivocationRow

__all__ = ["device_view"]


def _hex(b: bytes) -> str:
    return "0x" + b.hex()


def _registry_json(
    source: str,
    scheme: OnChainScheme,
    owner: str,
    signer: str,
    key_x: bytes,
    key_y: bytes,
    active_from_ms: int,
    revoked_at_ms: int,
    cert_fingerprint: bytes,
    ca_key_hash: bytes,
) -> dict[str, Any]:
    p256 = scheme == OnChainScheme.P256
    return {
        "source": source,
        "scheme": "p256" if p256 else "secp256k1",
        "owner": owner,
        "signer": None if p256 else signer,
        "key": {"x": _hex(key_x), "y": _hex(key_y)} if p256 else {"address": signer},
        "active_from_ms": active_from_ms,
        "revoked_at_ms": revoked_at_ms or None,
        "cert_fingerprint": _hex(cert_fingerprint),
        "ca_key_hash": _hex(ca_key_hash),
    }


def device_view(registry: DeviceRegistryClient, engine: Engine, device_id: str) -> dict[str, Any]:
    """The registry's record (from the chain, or the mirror when the chain is down) and the ledger's.

    @raise NotFound ``device.not_found`` when the device is neither enrolled nor has readings.
    @raise StoreError when the database cannot be read.
    """
    did = device_id_hash(device_id)
    registry_json: dict[str, Any] | None = None
    try:
        rec = registry.device(did)
        if rec.enrolled:
            registry_json = _registry_json(
                "chain", rec.scheme, rec.owner, rec.signer, rec.key_x, rec.key_y,
                rec.active_from_ms, rec.revoked_at_ms, rec.cert_fingerprint, rec.ca_key_hash,
            )  # fmt: skip
        chain_down = False
    except ChainError:
        chain_down = True
    try:
        with Session(engine) as s:
            head = s.get(DeviceHeadRow, device_id)
            count = select(func.count()).select_from(EquivocationRow)
            equivocations = int(s.exec(count.where(EquivocationRow.device_id == device_id)).one())
            row = s.get(DeviceCacheRow, did) if chain_down else None
    except SQLAlchemyError as e:
        raise StoreError(f"cannot read device {device_id!r}: {type(e).__name__}; retry later") from e
    if row is not None:
        registry_json = _registry_json(
            "mirror", OnChainScheme(row.scheme), row.owner, row.signer, row.key_x, row.key_y,
            row.active_from_ms, row.revoked_at_ms, row.cert_fingerprint, row.ca_key_hash,
        )  # fmt: skip
    if registry_json is None and head is None and not equivocations:
        raise NotFound(f"device {device_id!r} is not enrolled and has no readings", code="device.not_found")
    return {
        "device_id": device_id,
        "device_id_hash": _hex(did),
        "registry": registry_json,
        "ledger": {
            "last_seq": head.last_seq if head else None,
            "readings": head.readings if head else 0,
            "gaps": head.gaps if head else 0,
            "missing": head.missing if head else 0,
            "equivocations": equivocations,
        },
    }
