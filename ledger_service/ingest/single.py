"""One submission on the event loop: the single-reading fast path of ``POST /v1/readings`` (issue 17.3).

:meth:`IngestPipeline.submit <ledger_service.ingest.pipeline.IngestPipeline.submit>` is made for
batches: it holds a thread while a worker process checks the signatures and while the writer commits.
For one reading that costs far more than the work: handing it to a spawned signature worker and back
took about 900 us against about 75 us for the verification itself, and 200 devices submitting at once
waited in turn for the thread pool's 40 threads. :class:`SingleSubmit` runs the same steps for one
submission without a thread of the pool:

1. the registry mirror as fresh as the pipeline keeps it (a refresh started within
   ``registry_refresh_seconds``; the refresh itself, a chain call, runs in a thread, and is started a
   little ahead of time under load so that no request waits for it);
2. the same checks (:func:`~ledger_service.ingest.checks.check_chunk`: shape, digest, signature by the
   enrolled key) in this process, in one verifier thread (:mod:`ledger_service.ingest.verifier`): the
   submissions of one turn of the event loop go to it as one job and come back with one wake-up of the
   loop. The P-256 verification gives up the GIL, so the loop serves HTTP on one core meanwhile and the
   thread verifies on the other; on the loop itself the verification took most of a submit's CPU;
3. the same time and status rules as the pipeline's;
4. the same writer: the submissions checked in one turn of the event loop go to it as one job, and
   join the group transaction of everything waiting at that moment (group commit); each is answered
   only once that transaction has committed (durable before acknowledged). The loop awaits a future
   per submission, resolved in one wake-up per job; no thread waits.

So the device rules (sequence, idempotent resubmission, equivocation evidence, the clock order) are
the writer's, exactly as for a batch. Anything unusual goes to :meth:`IngestPipeline.submit` in a
thread, unchanged: a device the mirror does not know yet (its lookup may ask the chain), a body that is
not a submission object. The counters and the
pipeline's observers (metrics, rejection logs) see every submission as before.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
import weakref
from concurrent.futures import Future
from typing import Any

import anyio.to_thread

from contracts.registry import device_id_hash
from ledger_service.errors import LedgerError
from ledger_service.ingest.checks import Checked
from ledger_service.ingest.committer import Candidate, Committer, now_ms
from ledger_service.ingest.pipeline import IngestPipeline, ItemResult
from ledger_service.ingest.receipts import Outcome, Receipt
from ledger_service.ingest.verifier import Verifier

log = logging.getLogger(__name__)

#: Part of ``registry_refresh_seconds`` after which a refresh is started in the background (requests
#: go on meanwhile, as they do while another thread refreshes); at the full interval one must wait.
REFRESH_AHEAD = 0.8
#: Seconds a submission waits for its commit, as :meth:`Committer.commit` waits (then: TimeoutError).
COMMIT_TIMEOUT = 60.0


class SingleSubmit:
    """Submit one submission object from an event loop; see the module docstring. One per pipeline."""

    def __init__(self, pipeline: IngestPipeline) -> None:
        self.pipeline = pipeline
        #: the checks' thread (the domain as the pipeline's own checks take it)
        self.verifier = Verifier(pipeline.chain_id, pipeline.anchor_address)
        self._lock = threading.Lock()
        #: ``time.monotonic()`` when the last refresh started here (0: none yet)
        self._refresh_started = 0.0
        #: the refresh under way, if any
        self._refreshing: Future[None] | None = None
        #: per event loop, the submissions it is about to hand to the writer
        self._handoffs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Handoff] = (
            weakref.WeakKeyDictionary()
        )

    async def submit(self, obj: Any, *, source: str) -> ItemResult:
        """The outcome of one submission, as ``pipeline.submit([obj], source=source)[0]`` gives it."""
        pipeline = self.pipeline
        received = now_ms()
        max_age = pipeline.settings.registry_refresh_seconds
        if max_age <= 0:  # a refresh on every submission, as the pipeline does it
            await anyio.to_thread.run_sync(pipeline.registry.refresh_if_stale, 0.0)
        else:
            waiting = self._refresh_registry(max_age)
            if waiting is not None:
                await asyncio.wrap_future(waiting)
        key = self._enrolled_key(obj)
        if key is None:  # not a submission, or a device the mirror does not know: the pipeline decides
            (result,) = await anyio.to_thread.run_sync(
                functools.partial(pipeline.submit, [obj], source=source)
            )
            return result
        _, checked = await self.verifier.check(obj, key)
        if isinstance(checked, Checked):
            refusal = pipeline._time_and_status(checked, received)
            if refusal is None:
                candidate = Candidate(checked=checked, received_ms=received, source=source, raw=obj)
                outcome = await self._handoff().add(candidate)
                if isinstance(outcome, Receipt):
                    result = ItemResult(index=0, receipt=outcome)
                else:
                    result = ItemResult(index=0, code=outcome[0], message=outcome[1])
            else:
                result = ItemResult(index=0, code=refusal[0], message=refusal[1])
        else:
            result = ItemResult(index=0, code=checked[0], message=checked[1])
        pipeline._count((result,))
        for observe in pipeline.observers:
            try:
                observe((obj,), [result], source)
            except Exception:  # observing must never fail an acknowledged submission
                log.exception("ingest observer failed")
        return result

    def _handoff(self) -> _Handoff:
        loop = asyncio.get_running_loop()
        handoff = self._handoffs.get(loop)
        if handoff is None:
            with self._lock:  # loops in several threads (test clients): one handoff each
                handoff = self._handoffs.setdefault(loop, _Handoff(loop, self.pipeline.committer))
        return handoff

    def _enrolled_key(self, obj: Any) -> tuple[str, Any] | None:
        """The enrolled key of the submission's device as the mirror has it now (no chain call), or None
        when the submission has no device id or the mirror does not know the device."""
        if type(obj) is not dict:
            return None
        reading = obj.get("reading")
        if type(reading) is not dict:
            return None
        device_id = reading.get("device_id")
        if type(device_id) is not str or not 1 <= len(device_id) <= 64:
            return None
        device = self.pipeline.registry.lookup_hash(device_id_hash(device_id))
        return None if device is None else (device.scheme, device.key)

    def _refresh_registry(self, max_age: float) -> Future[None] | None:
        """Keep the mirror as fresh as :meth:`RegistryCache.refresh_if_stale` keeps it for the pipeline
        (a refresh started within ``max_age`` seconds, or one under way). Returns the refresh to wait
        for when the last one started ``max_age`` ago or more and none is under way; starts one in the
        background from ``REFRESH_AHEAD`` of the interval on."""
        age = time.monotonic() - self._refresh_started
        if age < max_age * REFRESH_AHEAD:
            return None
        with self._lock:
            if self._refreshing is not None and not self._refreshing.done():
                return None  # under way: go on with the mirror as it is, as the pipeline does
            self._refresh_started = time.monotonic()
            done: Future[None] = Future()
            self._refreshing = done
        threading.Thread(
            target=self._refresh, args=(done,), name="supet-registry-refresh", daemon=True
        ).start()
        return done if age >= max_age else None

    def _refresh(self, done: Future[None]) -> None:
        try:
            # a chain that is down is recorded (``last_error``) and the cached view stands, as in the
            # pipeline's refresh_if_stale; anything else fails the request waiting for it, if any
            self.pipeline.registry.refresh_if_stale(0.0)
        except Exception as e:
            log.exception("registry mirror refresh failed")
            done.set_exception(e)
        else:
            done.set_result(None)


class _Handoff:
    """The checked submissions of one event loop on their way to the writer: those that reach the writer
    in the same loop iteration go as one job (one queue entry, one future, one wake-up of the loop
    when their group has committed), and each waits on its own loop future, resolved with its outcome
    in order. A waiter that gave up (cancelled: the client left, the server stops) is skipped; its
    submission is committed all the same."""

    def __init__(self, loop: asyncio.AbstractEventLoop, committer: Committer) -> None:
        self.loop = loop
        self.committer = committer
        self.candidates: list[Candidate] = []
        self.waiters: list[asyncio.Future[Outcome]] = []

    def add(self, candidate: Candidate) -> asyncio.Future[Outcome]:
        waiter: asyncio.Future[Outcome] = self.loop.create_future()
        if not self.candidates:
            self.loop.call_soon(self.flush)
        self.candidates.append(candidate)
        self.waiters.append(waiter)
        return waiter

    def flush(self) -> None:
        candidates, waiters = self.candidates, self.waiters
        self.candidates, self.waiters = [], []
        try:
            written = self.committer.enqueue(candidates)
        except LedgerError as e:  # the writer is not running: nothing was stored
            _fail(waiters, e)
            return
        expiry = self.loop.call_later(
            COMMIT_TIMEOUT, _fail, waiters, TimeoutError("the commit took too long")
        )
        loop = self.loop

        def committed(done: Future[list[Outcome]]) -> None:  # in the writer's thread
            loop.call_soon_threadsafe(_deliver, done, waiters, expiry)

        written.add_done_callback(committed)


def _deliver(
    done: Future[list[Outcome]], waiters: list[asyncio.Future[Outcome]], expiry: asyncio.TimerHandle
) -> None:
    expiry.cancel()
    error = done.exception()
    if error is not None:
        _fail(waiters, error)
        return
    for waiter, outcome in zip(waiters, done.result(), strict=True):
        if not waiter.done():
            waiter.set_result(outcome)


def _fail(waiters: list[asyncio.Future[Outcome]], error: BaseException) -> None:
    for waiter in waiters:
        if not waiter.done():
            waiter.set_exception(error)


_instances: weakref.WeakKeyDictionary[IngestPipeline, SingleSubmit] = weakref.WeakKeyDictionary()
_instances_lock = threading.Lock()


async def submit_one(pipeline: IngestPipeline, obj: Any, *, source: str) -> ItemResult:
    """:meth:`SingleSubmit.submit` with the pipeline's one :class:`SingleSubmit`."""
    single = _instances.get(pipeline)
    if single is None:
        with _instances_lock:
            single = _instances.setdefault(pipeline, SingleSubmit(pipeline))
    return await single.submit(obj, source=source)
