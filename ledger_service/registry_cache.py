"""The service's mirror of the DeviceRegistry, kept fresh from chain events.

Ingest looks devices up here (a dict in memory), never on chain per reading. The
mirror is persisted in the ``devices`` table with the last block it covers, so a
restart resumes where it stopped; the chain stays the source of truth and the
table can always be rebuilt from it. An unknown device triggers one refresh (at
most every ``min_refresh_interval`` seconds) before it is refused, so a device
enrolled a moment ago is accepted without waiting for the next poll. A revocation
is mirrored from every ``DeviceRevoked`` event, so a revocation time that the owner
or the operator moves earlier is followed too.

The mirror also follows the lots (``LotNamed``, ``LotOpened``, ``LotSplit``,
``TransferAccepted``) and the devices named by spec owners (``SpecDeviceNamed``), in
memory only (rebuilt from the chain at each start), so ingest can refuse, without a
chain call, a reading naming a lot on chain from a device that may not speak for it
(:meth:`RegistryCache.lot_refusal`).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from functools import partial
from typing import Any

from eth_utils import to_checksum_address
from sqlalchemy import Engine
from sqlmodel import Session, select

from contracts.chain import Chain
from contracts.deployment import Deployment
from contracts.errors import ChainError
from contracts.lots import lot_id_hash
from contracts.registry import OnChainScheme, device_id_hash
from ledger_service.store.models import DeviceCacheRow, MetaRow
from ledger_service.store.queries import upsert

log = logging.getLogger(__name__)

_META_KEY = "registry_cache_block"
#: Blocks fetched per eth_getLogs call.
_LOG_PAGE = 5_000


@dataclass(frozen=True, slots=True)
class CachedDevice:
    """What ingest needs of an enrolled device."""

    scheme: str  # "p256" | "secp256k1"
    key: tuple[int, int] | str  # P-256 (x, y) or secp256k1 address
    owner: str
    active_from_ms: int
    revoked_at_ms: int

    def active_at(self, ts_ms: int) -> bool:
        return ts_ms >= self.active_from_ms and (self.revoked_at_ms == 0 or ts_ms < self.revoked_at_ms)


@dataclass(slots=True)
class MirroredLot:
    """What ingest needs of a lot on chain: who may speak for it."""

    key: bytes
    issuer: str
    gtin: int
    supplier: str
    parent: bytes | None
    parent_custody_count: int
    custodians: list[str]


def _logs(event: Any, start: int, end: int) -> list[Any]:
    return list(event().get_logs(from_block=start, to_block=end))


def _entry(row: DeviceCacheRow) -> CachedDevice:
    if row.scheme == OnChainScheme.P256:
        return CachedDevice(
            scheme="p256",
            key=(int.from_bytes(row.key_x, "big"), int.from_bytes(row.key_y, "big")),
            owner=row.owner,
            active_from_ms=row.active_from_ms,
            revoked_at_ms=row.revoked_at_ms,
        )
    return CachedDevice(
        scheme="secp256k1",
        key=row.signer,
        owner=row.owner,
        active_from_ms=row.active_from_ms,
        revoked_at_ms=row.revoked_at_ms,
    )


class RegistryCache:
    """Devices by id hash, mirrored from DeviceEnrolled / DeviceRevoked events."""

    def __init__(
        self, *, chain: Chain, deployment: Deployment, engine: Engine, min_refresh_interval: float = 0.5
    ) -> None:
        self.chain = chain
        self.deployment = deployment
        self.engine = engine
        self.contract = deployment.contract(chain, "DeviceRegistry")
        self.min_refresh_interval = min_refresh_interval
        self._devices: dict[bytes, CachedDevice] = {}
        self._lock = threading.Lock()
        self._last_refresh = 0.0
        self._synced_block = deployment.block - 1
        # lots and named devices: in memory, from the deployment block at each start
        self._lots_synced_block = deployment.block - 1
        self._lots: dict[bytes, MirroredLot] = {}
        self._lots_by_id_hash: dict[bytes, list[bytes]] = {}
        self._named_devices: set[tuple[int, bytes]] = set()
        self._lot_contract = (
            deployment.contract(chain, "LotRegistry") if "LotRegistry" in deployment.contracts else None
        )
        self._certifier_contract = (
            deployment.contract(chain, "QualityCertifier")
            if "QualityCertifier" in deployment.contracts
            else None
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_error: str | None = None
        self._load()

    def start(self, interval: float) -> None:
        """Poll the chain for enrollments and revocations every ``interval`` seconds."""
        if self._thread is None and interval > 0:
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._poll, args=(interval,), name="supet-registry", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join(10)
            self._thread = None

    def _poll(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.refresh()
                self.last_error = None
            except ChainError as e:
                self.last_error = str(e)
                log.warning("registry mirror refresh failed: %s", e)

    @property
    def synced_block(self) -> int:
        return self._synced_block

    def __len__(self) -> int:
        return len(self._devices)

    def lookup(self, device_id: str) -> CachedDevice | None:
        """The device, refreshing from chain once if it is not known yet."""
        did = device_id_hash(device_id)
        found = self._devices.get(did)
        if found is None and time.monotonic() - self._last_refresh >= self.min_refresh_interval:
            try:
                self.refresh()
            except ChainError:
                return None  # chain down: the cached view stands; unknown stays unknown
            found = self._devices.get(did)
        return found

    def refresh_if_stale(self, max_age: float) -> None:
        """Refresh when the last attempt is older than ``max_age`` seconds (ingest calls this per request,
        so a revocation is seen within ``max_age`` plus a block). A chain that is down is not waited for
        again until ``max_age`` has passed."""
        if time.monotonic() - self._last_refresh < max_age:
            return
        try:
            self.refresh()
        except ChainError as e:
            self.last_error = str(e)

    def lookup_hash(self, did: bytes) -> CachedDevice | None:
        return self._devices.get(did)

    def refresh(self) -> int:
        """Apply the events since the last synced block; return how many were applied."""
        with self._lock:
            self._last_refresh = time.monotonic()
            head = self.chain.block_number()
            applied = 0
            start = self._synced_block + 1
            while start <= head:
                end = min(head, start + _LOG_PAGE - 1)
                applied += self._apply_range(start, end)
                start = end + 1
            self._synced_block = max(self._synced_block, head)
            start = self._lots_synced_block + 1
            while self._lot_contract is not None and start <= head:
                end = min(head, start + _LOG_PAGE - 1)
                applied += self._apply_lot_range(start, end)
                self._lots_synced_block = end
                start = end + 1
            return applied

    # ------------------------------------------------------------------ lots

    def lots_named(self, lot_id: str) -> list[MirroredLot]:
        """The lots on chain (as last mirrored) whose id is ``lot_id``, under any issuer."""
        return [self._lots[k] for k in self._lots_by_id_hash.get(lot_id_hash(lot_id), [])]

    def may_speak_for(self, lot: MirroredLot, owner: str, device_hash: bytes) -> bool:
        """The on-chain rule (``QualityCertifier.certifyLot``): the device's owner is the lot's supplier
        or has held it (its full custody chain), or the product's spec owner names the device."""
        if (lot.gtin, device_hash) in self._named_devices or owner == lot.supplier:
            return True
        current: MirroredLot | None = lot
        take: int | None = None
        while current is not None:
            held = current.custodians if take is None else current.custodians[:take]
            if owner in held:
                return True
            take = current.parent_custody_count
            current = self._lots.get(current.parent) if current.parent is not None else None
        return False

    def lot_refusal(self, lot_id: str, device_id: str, owner: str) -> tuple[str, str] | None:
        """Why a reading of ``device_id`` (owned by ``owner``) naming ``lot_id`` is refused, or None.

        Lot ids are scoped to their issuer. A lot id that no lot on chain has yet is accepted: the
        reading belongs to its device owner's namespace and counts only for a lot that owner opens
        under that id later, or for a lot whose supplier, custodians or spec owner admit the device.
        Once lots with that id are on chain, the device must be able to speak for one of them.
        """
        lots = self.lots_named(lot_id)
        if not lots:
            return None
        device_hash = device_id_hash(device_id)
        owner = to_checksum_address(owner)
        if any(self.may_speak_for(lot, owner, device_hash) for lot in lots):
            return None
        issuers = ", ".join(sorted({lot.issuer for lot in lots}))
        return (
            "reading.lot_not_yours",
            f"lot {lot_id!r} is on chain (issued by {issuers}), and device {device_id!r} is owned by "
            f"{owner}, which is neither its supplier nor one of its custodians, nor is the device named "
            "by the product's spec owner: its readings cannot count for that lot. Name a lot of the "
            "device's owner, or have the lot transferred to the owner (or the device named) first",
        )

    def _apply_lot_range(self, start: int, end: int) -> int:
        assert self._lot_contract is not None
        lot_events = self._lot_contract.events
        found: list[Any] = []
        for name in ("LotNamed", "LotOpened", "LotSplit", "TransferAccepted"):
            event: Any = getattr(lot_events, name)
            found += self.chain.request(partial(_logs, event, start, end), context=f"{name} logs")
        if self._certifier_contract is not None:
            named = self._certifier_contract.events.SpecDeviceNamed
            found += self.chain.request(
                lambda: named().get_logs(from_block=start, to_block=end), context="SpecDeviceNamed logs"
            )
        pending: dict[bytes, str] = {}  # key -> issuer, from LotNamed (emitted before LotOpened/LotSplit)
        for ev in sorted(found, key=lambda e: (e["blockNumber"], e["logIndex"])):
            args = ev["args"]
            kind = ev["event"]
            if kind == "LotNamed":
                key = bytes(args["lotId"])
                pending[key] = to_checksum_address(args["issuer"])
                self._lots_by_id_hash.setdefault(bytes(args["lotIdHash"]), []).append(key)
            elif kind == "LotOpened":
                key = bytes(args["lotId"])
                supplier = to_checksum_address(args["supplier"])
                self._lots[key] = MirroredLot(
                    key=key,
                    issuer=pending.pop(key, supplier),
                    gtin=int(args["gtin"]),
                    supplier=supplier,
                    parent=None,
                    parent_custody_count=0,
                    custodians=[supplier],
                )
            elif kind == "LotSplit":
                parent = self._lots.get(bytes(args["parentId"]))
                if parent is None:  # pragma: no cover - a split always follows its parent's opening
                    continue
                key = bytes(args["childId"])
                splitter = to_checksum_address(args["custodian"])
                self._lots[key] = MirroredLot(
                    key=key,
                    issuer=pending.pop(key, splitter),
                    gtin=parent.gtin,
                    supplier=parent.supplier,
                    parent=parent.key,
                    parent_custody_count=len(parent.custodians),
                    custodians=[splitter],
                )
            elif kind == "TransferAccepted":
                lot = self._lots.get(bytes(args["lotId"]))
                if lot is not None:
                    lot.custodians.append(to_checksum_address(args["to"]))
            else:  # SpecDeviceNamed
                entry = (int(args["gtin"]), bytes(args["deviceId"]))
                if args["named"]:
                    self._named_devices.add(entry)
                else:
                    self._named_devices.discard(entry)
        return len(found)

    # ------------------------------------------------------------------ internals

    def _load(self) -> None:
        with Session(self.engine) as session:
            meta = session.get(MetaRow, _META_KEY)
            if meta is not None and meta.value.startswith(f"{self.deployment.chain_id}:"):
                _chain_id, registry, block = meta.value.split(":")
                if registry == self.contract.address:
                    self._synced_block = int(block)
                    for row in session.exec(select(DeviceCacheRow)):
                        self._devices[row.device_id_hash] = _entry(row)

    def _apply_range(self, start: int, end: int) -> int:
        events = self.contract.events
        enrolled = self.chain.request(
            lambda: events.DeviceEnrolled().get_logs(from_block=start, to_block=end),
            context="DeviceEnrolled logs",
        )
        revoked = self.chain.request(
            lambda: events.DeviceRevoked().get_logs(from_block=start, to_block=end),
            context="DeviceRevoked logs",
        )
        ordered = sorted([*enrolled, *revoked], key=lambda ev: (ev["blockNumber"], ev["logIndex"]))
        with Session(self.engine) as session:
            for ev in ordered:
                args = ev["args"]
                did = bytes(args["deviceId"])
                if ev["event"] == "DeviceEnrolled":
                    row = DeviceCacheRow(
                        device_id_hash=did,
                        scheme=int(args["scheme"]),
                        owner=to_checksum_address(args["owner"]),
                        signer=to_checksum_address(args["signer"]),
                        key_x=bytes(args["keyX"]),
                        key_y=bytes(args["keyY"]),
                        active_from_ms=int(args["activeFromMs"]),
                        revoked_at_ms=0,
                        cert_fingerprint=bytes(args["certFingerprint"]),
                        ca_key_hash=bytes(args["caKeyHash"]),
                        block_number=int(ev["blockNumber"]),
                    )
                    upsert(session, DeviceCacheRow, row.model_dump(), "device_id_hash")
                else:
                    existing = session.get(DeviceCacheRow, did)
                    if existing is None:
                        continue
                    existing.revoked_at_ms = int(args["revokedAtMs"])
                    session.add(existing)
                    row = existing
                self._devices[did] = _entry(row)
            mark = f"{self.deployment.chain_id}:{self.contract.address}:{end}"
            upsert(session, MetaRow, {"key": _META_KEY, "value": mark}, "key")
            session.commit()
        return len(ordered)
