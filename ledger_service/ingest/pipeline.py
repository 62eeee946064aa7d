"""The ingest pipeline shared by HTTP and MQTT.

1. route: find each submission's device in the registry mirror (no chain call);
2. check (in worker processes, both cores): shape and size, EIP-712 digest,
   signature by the enrolled key (low-S), scheme as enrolled;
3. time and status: the device active at ``ts_ms``, not too far in the future,
   not older than the store-and-forward window; a reading naming a lot on chain
   comes from a device that may speak for it (``reading.lot_not_yours``);
4. commit (one writer): sequence rules, idempotency, equivocation; acknowledged
   only after the database commit.

Every submission gets its own outcome: one bad reading never blocks the others.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from contracts.registry import device_id_hash
from ledger_service.config import Settings
from ledger_service.ingest.checks import (
    Checked,
    CheckItem,
    CheckResult,
    check_chunk,
    check_chunk_wire,
    from_wire,
)
from ledger_service.ingest.committer import Candidate, Committer, now_ms
from ledger_service.ingest.lifeline import die_with_parent
from ledger_service.ingest.receipts import Outcome, Receipt
from ledger_service.registry_cache import RegistryCache

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Submissions per unit of work sent to a checking process.
CHUNK = 256


@dataclass(frozen=True, slots=True)
class ItemResult:
    """The outcome of one submission: a receipt, or a rejection (code, message)."""

    index: int
    receipt: Receipt | None = None
    code: str | None = None
    message: str | None = None

    @property
    def accepted(self) -> bool:
        return self.receipt is not None


class IngestPipeline:
    """Check and store submissions. Thread-safe; start() before use, stop() after."""

    def __init__(
        self,
        *,
        settings: Settings,
        registry: RegistryCache,
        committer: Committer,
        chain_id: int,
        anchor_address: str,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.committer = committer
        self.chain_id = chain_id
        self.anchor_address = anchor_address
        self._pool: Executor | None = None
        self.rejections: Counter[str] = Counter()
        self.accepted = 0
        self._stats_lock = threading.Lock()
        #: Called after each submit with (submissions, results, source): metrics and logs.
        self.observers: list[Callable[[Sequence[Any], list[ItemResult], str], None]] = []

    def start(self) -> None:
        if self.settings.verify_workers > 0 and self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.settings.verify_workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=die_with_parent,  # no orphaned workers when the service is killed
                initargs=(os.getpid(),),
            )
            # warm the workers (imports) so the first request does not pay for them
            list(self._pool.map(_warm, range(self.settings.verify_workers)))
        self.committer.start()

    def run_cpu(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a CPU-bound, picklable function in a worker process when there are workers."""
        if self._pool is None:
            return fn(*args)
        return self._pool.submit(fn, *args).result()

    def stop(self) -> None:
        self.committer.stop()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    # ------------------------------------------------------------------ the pipeline

    def submit(self, objs: Sequence[Any], *, source: str) -> list[ItemResult]:
        """Process submissions (decoded JSON objects); one result per submission, in order."""
        received = now_ms()
        self.registry.refresh_if_stale(self.settings.registry_refresh_seconds)
        items: list[CheckItem] = []
        for i, obj in enumerate(objs):
            items.append((i, obj, self._route(obj)))
        checked = self._check(items)
        results: list[ItemResult | None] = [None] * len(objs)
        candidates: list[Candidate] = []
        positions: list[int] = []
        for index, outcome in checked:
            if not isinstance(outcome, Checked):
                results[index] = ItemResult(index=index, code=outcome[0], message=outcome[1])
                continue
            refusal = self._time_and_status(outcome, received)
            if refusal is not None:
                results[index] = ItemResult(index=index, code=refusal[0], message=refusal[1])
                continue
            candidates.append(
                Candidate(checked=outcome, received_ms=received, source=source, raw=objs[index])
            )
            positions.append(index)
        outcomes: list[Outcome] = self.committer.commit(candidates) if candidates else []
        for index, out in zip(positions, outcomes, strict=True):
            if isinstance(out, Receipt):
                results[index] = ItemResult(index=index, receipt=out)
            else:
                results[index] = ItemResult(index=index, code=out[0], message=out[1])
        final = [r for r in results if r is not None]
        assert len(final) == len(objs)
        self._count(final)
        for observe in self.observers:
            try:
                observe(objs, final, source)
            except Exception:  # observing must never fail an acknowledged submission
                log.exception("ingest observer failed")
        return final

    def _route(self, obj: Any) -> tuple[str, Any] | None:
        if not isinstance(obj, dict):
            return None
        reading = obj.get("reading")
        if not isinstance(reading, dict):
            return None
        device_id = reading.get("device_id")
        if not isinstance(device_id, str) or not 1 <= len(device_id) <= 64:
            return None
        device = self.registry.lookup(device_id)
        if device is None:
            return None
        return device.scheme, device.key

    def _check(self, items: list[CheckItem]) -> list[CheckResult]:
        if self._pool is None or len(items) == 0:
            return check_chunk(self.chain_id, self.anchor_address, items)
        chunks = [items[i : i + CHUNK] for i in range(0, len(items), CHUNK)]
        futures = [self._pool.submit(check_chunk_wire, self.chain_id, self.anchor_address, c) for c in chunks]
        out: list[CheckResult] = []
        for f in futures:
            out.extend(map(from_wire, f.result()))
        return out

    def _time_and_status(self, c: Checked, received_ms: int) -> tuple[str, str] | None:
        if c.ts_ms > received_ms + self.settings.max_future_skew_ms:
            return (
                "reading.future_timestamp",
                f"ts_ms {c.ts_ms} is {c.ts_ms - received_ms} ms ahead of the ledger's clock (allowed: "
                f"{self.settings.max_future_skew_ms} ms): check the device's clock (NTP) and resend",
            )
        if c.ts_ms < received_ms - self.settings.late_window_ms:
            return (
                "reading.too_late",
                f"ts_ms {c.ts_ms} is older than the store-and-forward window of "
                f"{self.settings.late_window_ms} ms: such readings cannot be accepted any more",
            )
        device = self.registry.lookup_hash(device_id_hash(c.device_id))
        if device is None:  # revoked and gone from the mirror cannot happen; be safe
            return ("device.unknown", f"device {c.device_id!r} is not enrolled")
        if c.ts_ms < device.active_from_ms:
            return (
                "device.not_yet_active",
                f"device {c.device_id!r} is active from {device.active_from_ms} but the reading is from "
                f"{c.ts_ms}: readings from before enrollment are not accepted",
            )
        if device.revoked_at_ms and c.ts_ms >= device.revoked_at_ms:
            return (
                "device.revoked",
                f"device {c.device_id!r} was revoked from {device.revoked_at_ms}; this reading ({c.ts_ms}) "
                "is after its revocation",
            )
        if c.lot_id is not None:  # a lot on chain counts only readings of devices that may speak for it
            return self.registry.lot_refusal(c.lot_id, c.device_id, device.owner)
        return None

    def _count(self, results: Sequence[ItemResult]) -> None:
        with self._stats_lock:
            for r in results:
                if r.code is None:
                    self.accepted += 1
                else:
                    self.rejections[r.code] += 1


def _warm(_: int) -> int:
    import device_attestation.sdk  # noqa: F401

    return 0
