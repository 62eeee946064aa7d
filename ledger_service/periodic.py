"""A pass run on a schedule in a background thread of the service (re-rating, recall flagging).

:class:`PeriodicWorker` holds what those workers share: the interval, the thread, start and stop. A
subclass says what one pass is (:meth:`PeriodicWorker.run_once`); the first pass runs one interval after
the start, and a failed pass is the subclass's to log and retry at the next interval.

A worker that sends with a key runs under the anchoring lead when several instances share the database:
its :attr:`PeriodicWorker.gate` (the lead's "is this instance the leader?") skips the passes of every
instance but the leader (:mod:`ledger_service.anchoring.leader`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable

__all__ = ["PeriodicWorker"]


class PeriodicWorker:
    """Calls :meth:`run_once` every ``interval`` seconds, in a daemon thread named ``name``, until stopped."""

    def __init__(self, interval: float, *, name: str, what: str) -> None:
        if interval <= 0:
            raise ValueError(f"the {what} interval must be positive")
        self.interval = interval
        self.last_error: str | None = None
        self.passes = 0
        #: Passes run only while this says so (``None``: always); skipped passes are counted.
        self.gate: Callable[[], bool] | None = None
        self.skipped = 0
        self._name = name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> object:
        """One pass now (a subclass's)."""
        raise NotImplementedError

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            if self.gate is not None and not self.gate():
                self.skipped += 1
                continue
            self.run_once()
