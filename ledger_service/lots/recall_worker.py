"""The recall worker (issue 15): a recall recorded by anyone ends with every downstream lot flagged on chain.

A recall notice may be recorded by a party outside this service (an auditor with its own node, a producer
with ``cast``); ``LotRegistry.flagDownstream`` is open to anyone. Every ``SUPET_RECALL_INTERVAL_SECONDS``
the worker (a background thread of the service, started where anchoring runs: it sends with the anchoring
key, ``SUPET_ANCHOR_KEY``):

1. brings the store's lot mirror up to date (:func:`ledger_service.lots.mirror.sync_lots`, to
   ``SUPET_CONFIRMATIONS`` blocks below the head, the depth anchoring waits for), so the trace, the lot
   pages and the holders' recall lists show a recall within one interval, whoever asks;
2. for each recall notice whose downstream (from the store) has lots not flagged yet, flags them in
   batches of ``SUPET_RECALL_FLAG_BATCH``, breadth-first, each lot checked on chain first
   (:meth:`contracts.lot_recall.LotRecallClient.flag_downstream` skips flagged lots, as the registry does);
3. syncs again when it flagged anything, so the store shows the flags.

**Idempotent**: a pass flags only what is not flagged; a lot flagged in blocks the mirror has not taken
yet is skipped by the on-chain check. **Two instances**: the flagging is claimed in the store (``meta``
row ``recall_flagger``: the instance and a lease of twice the chain timeout, renewed before every batch);
an instance that finds another's live claim only syncs. A claim lapsed mid-batch costs at worst one
duplicate transaction, which the registry answers by skipping the flagged lots. **Chain down**: the pass
fails as a whole or for a notice (logged, ``last_error``) and the next one retries; nothing is half-done
that the next pass does not finish. **Reorgs**: the mirror takes confirmed blocks only and rebuilds itself
when its last block leaves the canonical chain; a batch naming a lot a reorg took away reverts in the gas
estimate (nothing sent) and is retried from the rebuilt mirror.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_account.signers.local import LocalAccount
from sqlalchemy import Engine, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlmodel import Session, col, select

from contracts.chain import Chain
from contracts.deployment import Deployment
from contracts.errors import ChainError, ContractRevert
from contracts.lot_recall import MAX_FLAG_BATCH, LotRecallClient
from ledger_service.errors import LedgerError
from ledger_service.lots.mirror import sync_lots
from ledger_service.lots.recall import unflagged_downstream
from ledger_service.periodic import PeriodicWorker
from ledger_service.store.models import MetaRow, RecallNoticeRow

__all__ = ["CLAIM_KEY", "RecallFlagger", "RecallPass", "RecallWorker", "claim_flagging", "release_flagging"]

log = logging.getLogger(__name__)

#: The ``meta`` row of the flagging claim: ``<instance>:<lease end, ms>``.
CLAIM_KEY = "recall_flagger"


def _instance_id() -> str:
    """This worker among the instances sharing the store: host, process, and a random tag."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _now_ms() -> int:
    return int(time.time() * 1000)


def claim_flagging(engine: Engine, instance: str, lease_ms: int, *, now_ms: int | None = None) -> str | None:
    """Take (or renew) the flagging claim for ``lease_ms``; None when taken, else the instance holding a
    live claim. The first statement writes the row, so two claimers are serialised (as the mirror's page)."""
    now = _now_ms() if now_ms is None else now_ms
    with Session(engine) as s:
        s.exec(update(MetaRow).where(col(MetaRow.key) == CLAIM_KEY).values(value=col(MetaRow.value)))
        row = s.get(MetaRow, CLAIM_KEY)
        if row is not None:
            holder, _, until = row.value.rpartition(":")
            if holder != instance and until.isdigit() and int(until) > now:
                s.rollback()
                return holder
        s.merge(MetaRow(key=CLAIM_KEY, value=f"{instance}:{now + lease_ms}"))
        try:
            s.commit()
        except IntegrityError:  # another instance created the row first: its claim stands
            s.rollback()
            return "another instance"
    return None


def release_flagging(engine: Engine, instance: str) -> None:
    """End ``instance``'s claim (another instance may flag at once)."""
    with Session(engine) as s:
        row = s.get(MetaRow, CLAIM_KEY)
        if row is not None and row.value.rpartition(":")[0] == instance:
            row.value = f"{instance}:0"
            s.add(row)
            s.commit()


@dataclass(kw_only=True)
class RecallPass:
    """What one pass did: events mirrored, notices with lots left to flag, lots newly flagged and
    transactions sent, the claim's holder when another instance flags, and each notice that failed."""

    synced: int = 0
    notices: int = 0
    flagged: int = 0
    txs: int = 0
    claimed_by: str | None = None
    errors: dict[int, str] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class RecallFlagger:
    """One pass of the worker (module docstring) over one store, chain and sender."""

    engine: Engine
    chain: Chain
    deployment: Deployment
    sender: LocalAccount
    batch: int = MAX_FLAG_BATCH
    confirmations: int = 0
    lease_ms: int = 120_000
    instance: str = field(
        default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    )

    def pending(self) -> list[tuple[int, list[bytes]]]:
        """Each mirrored notice whose downstream has lots the store has not seen flagged, with their keys."""
        with Session(self.engine) as s:
            notices = s.exec(
                select(RecallNoticeRow.notice_id, RecallNoticeRow.root_key)
                .where(col(RecallNoticeRow.block_number) > 0)
                .order_by(col(RecallNoticeRow.notice_id))
            ).all()
        out = []
        for notice_id, root in notices:
            keys = unflagged_downstream(self.engine, root)
            if keys:
                out.append((int(notice_id), keys))
        return out

    def run(self) -> RecallPass:
        """Sync, flag what is left of every notice, sync again if anything was flagged."""
        started = time.monotonic()
        report = RecallPass()
        report.synced = self._sync()
        todo = self.pending()
        report.notices = len(todo)
        if todo:
            report.claimed_by = claim_flagging(self.engine, self.instance, self.lease_ms)
            if report.claimed_by is None:
                try:
                    self._flag_all(todo, report)
                finally:
                    release_flagging(self.engine, self.instance)
                if report.txs:
                    report.synced += self._sync()
        report.seconds = time.monotonic() - started
        return report

    def _sync(self) -> int:
        return sync_lots(self.engine, self.chain, self.deployment, confirmations=self.confirmations)

    def _flag_all(self, todo: Sequence[tuple[int, list[bytes]]], report: RecallPass) -> None:
        recalls = LotRecallClient.from_deployment(self.chain, self.deployment)
        for notice_id, keys in todo:
            try:
                for start in range(0, len(keys), self.batch):
                    holder = claim_flagging(self.engine, self.instance, self.lease_ms)  # renew the lease
                    if holder is not None:
                        report.claimed_by = holder
                        return
                    done = recalls.flag_downstream(
                        self.sender, notice_id, keys[start : start + self.batch], batch=self.batch
                    )
                    report.flagged += done.flagged
                    report.txs += len(done.txs)
            except ContractRevert as e:  # the store is behind or ahead of the chain: the next pass retries
                report.errors[notice_id] = str(e)
                log.warning("recall notice %d: flagging refused, retried next pass: %s", notice_id, e)
            except ChainError as e:  # the chain is down: no use trying the other notices now
                report.errors[notice_id] = str(e)
                log.warning("recall notice %d: chain unreachable, retried next pass: %s", notice_id, e)
                return


class RecallWorker(PeriodicWorker):
    """Runs ``make_flagger().run()`` every ``interval`` seconds until stopped (the first pass one interval
    after the start); a failed pass is logged and retried at the next interval."""

    def __init__(self, make_flagger: Callable[[], RecallFlagger], interval: float) -> None:
        super().__init__(interval, name="supet-recall", what="recall worker's")
        self.make_flagger = make_flagger
        self.last_pass: RecallPass | None = None
        self._flagger: RecallFlagger | None = None

    @classmethod
    def for_service(cls, service: Any) -> RecallWorker:
        """The worker of a :class:`~ledger_service.service.LedgerService`, as its settings say."""
        settings = service.settings

        def make() -> RecallFlagger:
            return RecallFlagger(
                engine=service.engine,
                chain=service.chain,
                deployment=service.deployment,
                sender=service.anchor_signer,
                batch=settings.recall_flag_batch,
                confirmations=settings.confirmations,
                lease_ms=int(2_000 * settings.anchor_timeout_seconds),
            )

        return cls(make, settings.recall_interval_seconds)

    def run_once(self) -> RecallPass | None:
        """One pass now; its report, or None when it failed as a whole (logged, ``last_error``)."""
        if self._flagger is None:
            self._flagger = self.make_flagger()  # one instance id for the worker's life
        try:
            report = self._flagger.run()
        except (ChainError, ContractRevert, LedgerError, SQLAlchemyError) as e:
            self.last_error = f"{type(e).__name__}: {e}"
            log.warning("recall pass failed, retried in %.0f s: %s", self.interval, e)
            return None
        self.passes += 1
        self.last_pass = report
        self.last_error = next(iter(report.errors.values()), None)
        if report.flagged or report.errors:
            log.info(
                "recall pass: %d events mirrored, %d notices with lots left, %d lots flagged in %d txs, "
                "%d notices failed, %.2f s",
                report.synced,
                report.notices,
                report.flagged,
                report.txs,
                len(report.errors),
                report.seconds,
            )
        return report
