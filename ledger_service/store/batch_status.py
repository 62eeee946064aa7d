"""Where a batch stands on chain: the one status enum of both kinds of batch (readings, access log).

A batch row moves ``closed`` -> ``submitted`` -> ``anchored`` (the state machine is
:class:`ledger_service.anchoring.batcher.BatchAnchorer`'s). The members are the strings the
``status`` columns of ``batches`` and ``access_log_batches`` hold: a ``StrEnum``, so a member is
written as its string and compares equal to the string read back.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["BatchStatus"]


class BatchStatus(StrEnum):
    """A batch's status, as the store's ``status`` columns hold it."""

    CLOSED = "closed"
    """Its root computed and stored; sent when ``next_attempt_ms`` is due."""
    SUBMITTED = "submitted"
    """Its transaction sent; anchored once the receipt is there (and deep enough)."""
    ANCHORED = "anchored"
    """Recorded with where it is on chain."""
