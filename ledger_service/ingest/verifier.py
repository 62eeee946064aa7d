"""The single submits' checks off the event loop: one verifier thread (issue 17.3).

A P-256 verification takes 65-80 us of CPU, most of a single submit's check, and the ``cryptography``
library gives up the GIL while it verifies (one thread about 14,700 verifications/s, two about 27,000
on two cores). :class:`Verifier` runs :func:`~ledger_service.ingest.checks.check_chunk` (shape,
digest, signature against the enrolled key: the same checks as :func:`check_one` and the pipeline's
workers) in a dedicated thread, so the event loop serves HTTP on one core while the other verifies.

Micro-batched both ways: the submissions an event loop hands over in one iteration go as one job (one
queue entry, one wake-up of the thread); the thread takes every job queued when it is free and checks
them in one pass, their signatures verified back to back
(:func:`~device_attestation.signing.verify_signatures`), and each job's results come back with one
``call_soon_threadsafe``, each waiter resolved in order with its own submission's outcome. (One job at
a time, the jobs of a busy loop held a dozen submissions each and waited ~35 ms in the queue: each
verification gives the GIL up and waits to take it back from the loop, so the thread's wall time a
job was twice its CPU.)

Failure is typed, never a hang: an exception while checking a job fails that job's waiters with
:class:`~ledger_service.errors.IngestUnavailable` (the thread goes on with the next job); a thread
that ends any other way fails every job still queued with it, and the next job starts a new thread;
a job not answered within :data:`VERIFY_TIMEOUT` seconds fails likewise. A waiter that gave up
(cancelled) is skipped: checking changes nothing, so nothing is left half done. The thread ends after
:data:`IDLE_SECONDS` without work and is started again by the next job.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from typing import Any

from ledger_service.errors import IngestUnavailable
from ledger_service.ingest.checks import CheckItem, CheckResult, check_chunk
from ledger_service.ingest.committer import name_native_thread

log = logging.getLogger(__name__)

#: Seconds a job may wait for its results before its waiters fail (a stuck thread is not waited on).
VERIFY_TIMEOUT = 60.0
#: Seconds without work after which the thread ends (the next job starts another).
IDLE_SECONDS = 10.0

_Waiters = list["asyncio.Future[CheckResult]"]


class _Job:
    """One loop iteration's submissions: checked together, answered together."""

    __slots__ = ("expiry", "items", "loop", "waiters")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.items: list[CheckItem] = []
        self.waiters: _Waiters = []
        self.expiry: asyncio.TimerHandle | None = None


class Verifier:
    """Checks submissions against their enrolled keys in one thread; :meth:`check` from an event loop."""

    def __init__(self, chain_id: int, verifying_contract: str) -> None:
        self.chain_id = chain_id
        self.verifying_contract = verifying_contract
        self._queue: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        #: per event loop, the job it is filling in this iteration
        self._filling: dict[asyncio.AbstractEventLoop, _Job] = {}
        #: jobs checked, and submissions checked (for tests and metrics)
        self.jobs = 0
        self.checked = 0

    def check(self, obj: Any, key: tuple[str, Any]) -> asyncio.Future[CheckResult]:
        """A future of ``check_one(domain, 0, obj, key)``'s result, from the verifier thread. Call it on
        the running event loop; the submissions of one loop iteration go to the thread as one job."""
        loop = asyncio.get_running_loop()
        job = self._filling.get(loop)
        if job is None:
            job = self._filling[loop] = _Job(loop)
            loop.call_soon(self._send, job)
        waiter: asyncio.Future[CheckResult] = loop.create_future()
        job.items.append((len(job.items), obj, key))
        job.waiters.append(waiter)
        return waiter

    def _send(self, job: _Job) -> None:
        """On the loop, at the end of the iteration that filled ``job``: hand it to the thread."""
        del self._filling[job.loop]
        job.expiry = job.loop.call_later(
            VERIFY_TIMEOUT, _fail, job.waiters, IngestUnavailable("the signature check took too long")
        )
        with self._lock:  # against the thread deciding to end at this moment (see _run)
            self._queue.put(job)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="supet-verifier", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        name_native_thread("supet-verifier")
        try:
            while True:
                try:
                    job = self._queue.get(timeout=IDLE_SECONDS)
                except queue.Empty:
                    with self._lock:
                        if self._queue.empty():  # nothing came meanwhile: a new job starts a new thread
                            self._thread = None
                            return
                    continue
                jobs = [job]  # and every job queued meanwhile: checked together (see the docstring)
                while True:
                    try:
                        jobs.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                self._check(jobs)
        except BaseException:
            self._abandon()
            raise

    def _check(self, jobs: list[_Job]) -> None:
        items = [item for job in jobs for item in job.items]
        try:
            results = check_chunk(self.chain_id, self.verifying_contract, items)
        except BaseException as e:  # a bug or a broken library: these waiters fail typed
            log.exception("signature check of %d submissions failed", len(items))
            error = IngestUnavailable(f"the submission could not be checked ({type(e).__name__}); retry")
            for job in jobs:
                _answer(job, None, error)
            if not isinstance(e, Exception):  # the thread ends (SystemExit...): see _abandon
                raise
            return  # the next jobs go on
        self.jobs += len(jobs)
        self.checked += len(results)
        start = 0
        for job in jobs:  # check_chunk answers in order: each job its own slice
            _answer(job, results[start : start + len(job.items)], None)
            start += len(job.items)

    def _abandon(self) -> None:
        """The thread ends by an exception: fail whatever is still queued for it, so that no waiter hangs
        (while it is still the verifier's thread, no other thread takes jobs from the queue)."""
        left: list[_Job] = []
        with self._lock:
            if self._thread is not threading.current_thread():
                return
            self._thread = None
            while True:
                try:
                    left.append(self._queue.get_nowait())
                except queue.Empty:
                    break
        for job in left:
            _answer(job, None, IngestUnavailable("the signature checker stopped; retry"))


def _answer(job: _Job, results: list[CheckResult] | None, error: BaseException | None) -> None:
    """From the thread: resolve ``job``'s waiters on their loop (one wake-up of the loop)."""
    try:
        job.loop.call_soon_threadsafe(_finish, job, results, error)
    except RuntimeError:  # the loop is closed: nobody waits any more
        log.debug("a job's event loop closed before its %d checks were answered", len(job.items))


def _finish(job: _Job, results: list[CheckResult] | None, error: BaseException | None) -> None:
    """On the loop: resolve the job's waiters in order (skipping those that gave up)."""
    if job.expiry is not None:
        job.expiry.cancel()
    if results is None:
        _fail(job.waiters, error or IngestUnavailable("the submission could not be checked; retry"))
        return
    for waiter, result in zip(job.waiters, results, strict=True):
        if not waiter.done():
            waiter.set_result(result)


def _fail(waiters: _Waiters, error: BaseException) -> None:
    for waiter in waiters:
        if not waiter.done():
            waiter.set_exception(error)
