"""The service's mirror of the DeviceRegistry, kept fresh from chain events.

Ingest looks devices up here (a dict in memory), never on chain per reading. The
mirror is persisted in the ``devices`` table with the last block it covers, so a
restart resumes where it stopped; the chain stays the source of truth and the
table can always be rebuilt from it. An unknown device triggers one refresh (at
most every ``min_refresh_interval`` seconds) before it is refused, so a device
enrolled a moment ago is accepted without waiting for the next poll.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from eth_utils import to_checksum_address
from sqlalchemy import Engine
from sqlmodel import Session, select

from contracts.chain import Chain
from contracts.deploy import Deployment
from contracts.errors import ChainError
from contracts.registry import OnChainScheme, device_id_hash
from ledger_service.store.models import DeviceCacheRow, MetaRow

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
            return applied

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
                    session.merge(row)
                else:
                    existing = session.get(DeviceCacheRow, did)
                    if existing is None:
                        continue
                    existing.revoked_at_ms = int(args["revokedAtMs"])
                    session.add(existing)
                    row = existing
                self._devices[did] = _entry(row)
            session.merge(
                MetaRow(key=_META_KEY, value=f"{self.deployment.chain_id}:{self.contract.address}:{end}")
            )
            session.commit()
        return len(ordered)
