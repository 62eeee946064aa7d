"""Anchoring: batches of digests closed in the store, their Merkle roots anchored on chain.

One generic batch anchorer (:mod:`.batcher`: the send / confirm / adopt state machine, with retries,
dropped transactions, nonces) serves both kinds of batch: the readings (:mod:`.readings`, the
``ReadingAnchor`` contract; with reorg checks and lost-batch recovery, :mod:`.recovery`) and the
credit desk's access log (:mod:`.access_log`, ``CreditRegistry.anchorAccessLog``). Where a batch
stands (``BatchStatus``) and a readings batch's tree as stored are the store's
(:mod:`ledger_service.store.batch_status`, :mod:`ledger_service.store.batch_tree`);
``BatchAnchored`` events are read in bounded block ranges (:mod:`.chain_logs`). Of several instances
sharing a database only the anchoring leader runs them, its batch writes fenced by its epoch
(:mod:`.leader`).
"""

from ledger_service.anchoring.chain_logs import batch_anchored_logs
from ledger_service.anchoring.readings import AnchoringWorker, AnchorStats, BatchConfirmed
from ledger_service.anchoring.recovery import LostBatch

__all__ = [
    "AnchorStats",
    "AnchoringWorker",
    "BatchConfirmed",
    "LostBatch",
    "batch_anchored_logs",
]
