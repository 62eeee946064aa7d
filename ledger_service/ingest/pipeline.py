"""The ingest pipeline shared by HTTP and MQTT.

1. route: find each submission's device in the registry mirror (no chain call);
2. check (in ``verify_workers`` threads of this process): shape and size, EIP-712 digest,
   signature by the enrolled key (low-S), scheme as enrolled; the P-256 verification releases the
   GIL (cryptography >= 44), so the threads verify on every core without the pickling and the
   round trips of worker processes;
3. time and status: the device active at ``ts_ms``, not too far in the future,
   not older than the store-and-forward window; a reading naming a lot on chain
   comes from a device that may speak for it (``reading.lot_not_yours``);
4. commit (one writer): sequence rules, idempotency, equivocation; acknowledged
   only after the database commit.

Every submission gets its own outcome: one bad reading never blocks the others. A failure of the
checking threads themselves (a bug, or the pipeline stopped under a request) is
:class:`~ledger_service.errors.IngestUnavailable`, never a hang.

:meth:`IngestPipeline.submit` does it all in one call; the MQTT bridge runs the stages apart
(:meth:`~IngestPipeline.prepare`, :meth:`~IngestPipeline.enqueue`, :meth:`~IngestPipeline.finish`)
to check its next micro-batch while the previous one commits.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from contracts.registry import device_id_hash
from ledger_service.config import Settings
from ledger_service.errors import IngestUnavailable
from ledger_service.ingest.checks import Checked, CheckItem, CheckResult, check_chunk
from ledger_service.ingest.committer import Candidate, Committer, name_native_thread, now_ms
from ledger_service.ingest.lifeline import die_with_parent
from ledger_service.ingest.receipts import Outcome, Receipt
from ledger_service.registry_cache import RegistryCache

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Most submissions per unit of work handed to a checking thread.
CHUNK = 256
#: Batches of at most this many submissions are checked in the calling thread (a hand-off to a
#: checking thread costs more than the checks of so few).
INLINE = 4
#: The native name of the checking threads (``top -H``; the benches count their CPU by it).
VERIFY_THREAD = "supet-verify"


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


@dataclass(slots=True)
class Prepared:
    """Submissions routed, checked and timed (:meth:`IngestPipeline.prepare`): the refusals so far,
    and the candidates for the writer with their positions among the submissions."""

    objs: Sequence[Any]
    source: str
    results: list[ItemResult | None]
    candidates: list[Candidate] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)


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
        #: The checking threads (``settings.verify_workers``; none: the calling thread checks).
        self._verifiers: ThreadPoolExecutor | None = None
        #: One worker process for :meth:`run_cpu` (pure-Python work that would hold the GIL),
        #: started with the pipeline when it checks in threads.
        self._cpu_pool: ProcessPoolExecutor | None = None
        self._cpu_lock = threading.Lock()
        self.rejections: Counter[str] = Counter()
        self.accepted = 0
        self._stats_lock = threading.Lock()
        #: Called after each submit with (submissions, results, source): metrics and logs.
        self.observers: list[Callable[[Sequence[Any], list[ItemResult], str], None]] = []

    def start(self) -> None:
        if self.settings.verify_workers > 0 and self._verifiers is None:
            self._verifiers = ThreadPoolExecutor(
                max_workers=self.settings.verify_workers,
                thread_name_prefix=VERIFY_THREAD,
                initializer=name_native_thread,
                initargs=(VERIFY_THREAD,),
            )
            # spawned now, in the background (a Python start and the imports, a second or two), so
            # the first batch close does not wait for it and a worker that cannot start is seen at once
            self._cpu_executor().submit(os.getpid).add_done_callback(_log_failed_start)
        self.committer.start()

    def run_cpu(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a CPU-bound, picklable function in the worker process (started with the pipeline) when the
        service checks in worker threads (``verify_workers`` > 0): pure-Python work there would hold
        the GIL from ingest for its whole run. In the calling thread otherwise."""
        if self.settings.verify_workers == 0:
            return fn(*args)
        return self._cpu_executor().submit(fn, *args).result()

    def _cpu_executor(self) -> ProcessPoolExecutor:
        """The :meth:`run_cpu` worker process's pool (made on first call)."""
        with self._cpu_lock:
            if self._cpu_pool is None:
                self._cpu_pool = ProcessPoolExecutor(
                    max_workers=1,
                    mp_context=multiprocessing.get_context("spawn"),
                    initializer=die_with_parent,  # no orphaned worker when the service is killed
                    initargs=(os.getpid(),),
                )
            return self._cpu_pool

    def stop(self) -> None:
        self.committer.stop()
        if self._verifiers is not None:
            self._verifiers.shutdown(wait=True, cancel_futures=True)
            self._verifiers = None
        with self._cpu_lock:
            if self._cpu_pool is not None:
                self._cpu_pool.shutdown(wait=True, cancel_futures=True)
                self._cpu_pool = None

    # ------------------------------------------------------------------ the pipeline

    def submit(self, objs: Sequence[Any], *, source: str) -> list[ItemResult]:
        """Process submissions (decoded JSON objects); one result per submission, in order."""
        prepared = self.prepare(objs, source=source)
        outcomes = self.committer.commit(prepared.candidates) if prepared.candidates else []
        return self.finish(prepared, outcomes)

    def prepare(self, objs: Sequence[Any], *, source: str) -> Prepared:
        """Route, check, time and status (nothing stored): :meth:`submit`'s steps before the writer.
        Raises :class:`IngestUnavailable` when the checks themselves fail."""
        received = now_ms()
        self.registry.refresh_if_stale(self.settings.registry_refresh_seconds)
        items: list[CheckItem] = [(i, obj, self._route(obj)) for i, obj in enumerate(objs)]
        checked = self._check(items)
        prepared = Prepared(objs=objs, source=source, results=[None] * len(objs))
        results, candidates, positions = prepared.results, prepared.candidates, prepared.positions
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
        return prepared

    def enqueue(self, prepared: Prepared) -> Future[list[Outcome]]:
        """Hand the candidates to the writer (:meth:`Committer.enqueue`): the future is resolved after
        their commit. Submissions enqueued one after the other are decided in that order."""
        return self.committer.enqueue(prepared.candidates)

    def finish(self, prepared: Prepared, outcomes: Sequence[Outcome]) -> list[ItemResult]:
        """The results of :meth:`prepare`'s submissions, given the writer's outcomes of its candidates;
        counted and observed."""
        results = prepared.results
        for index, out in zip(prepared.positions, outcomes, strict=True):
            if isinstance(out, Receipt):
                results[index] = ItemResult(index=index, receipt=out)
            else:
                results[index] = ItemResult(index=index, code=out[0], message=out[1])
        final = [r for r in results if r is not None]
        assert len(final) == len(prepared.objs)
        self._count(final)
        for observe in self.observers:
            try:
                observe(prepared.objs, final, prepared.source)
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
        """Every item checked (:func:`check_chunk`), in order: in the checking threads, the batch split
        so that each has a share; a small batch, or with no threads, in the calling thread."""
        pool = self._verifiers
        if pool is None or len(items) <= INLINE:
            return check_chunk(self.chain_id, self.anchor_address, items)
        share = -(-len(items) // self.settings.verify_workers)  # ceil: one chunk a thread at least
        size = max(INLINE, min(CHUNK, share))
        try:
            futures = [
                pool.submit(check_chunk, self.chain_id, self.anchor_address, items[i : i + size])
                for i in range(0, len(items), size)
            ]
        except RuntimeError as e:  # shut down (the service is stopping), or the pool is broken
            raise IngestUnavailable(
                f"the signature checks are not running ({e}); nothing was stored: retry later"
            ) from e
        out: list[CheckResult] = []
        try:
            for f in futures:
                out.extend(f.result())
        except Exception as e:  # a bug in the checks: a typed error for the caller, never a hang
            for f in futures:
                f.cancel()
            log.exception("checking %d submissions failed", len(items))
            raise IngestUnavailable(
                f"checking the submissions failed ({type(e).__name__}); nothing was stored: retry later"
            ) from e
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


def _log_failed_start(started: Future[int]) -> None:
    """The CPU worker's warm-up job ended: say so if the process could not start (the first
    :meth:`IngestPipeline.run_cpu` then raises the same error to its caller, the anchoring worker,
    which retries)."""
    if not started.cancelled() and started.exception() is not None:
        log.error("the CPU worker process did not start: %s", started.exception())
