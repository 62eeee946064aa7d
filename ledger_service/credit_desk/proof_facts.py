"""The proof facts of a factory (issue 16), gathered from the store's mirror and the chain for its credit
assessment (:class:`finance.proof.ProofFacts`; definitions and thresholds in docs/credit-model.md).

Every window ends at the chain time ``now_s`` the facts are read at (the latest block's):

* **lot verdicts**: the factory's lots are the mirrored lots it supplied (``lot_mirror.supplier``:
  the lots it opened and their split-off children); a verdict is in the window when its block is at or
  after the first block of the window (found by bisection on block times). A lot counts once; it counts
  as rejected when any of its verdicts in the window is a rejection. The window is
  :data:`~finance.features.LOT_WINDOW_DAYS`, or the days since the first verdict on its lots if fewer.
* **recalls**: the distinct notices its lots are recalled or flagged under (``lot_mirror.recall_notice``)
  issued in the window (``recall_notices.at``); the window is
  :data:`~finance.features.RECALL_WINDOW_DAYS`, or the days since its first lot was opened.
* **buyers' payments**: the Receivables contract's ``ReceivableConfirmed`` events with the factory as
  supplier (read from the chain: the store keeps no receivables); one counts when it was paid in the
  window (days late = paid - due, 0 when on time) or fell due in it unpaid (days late so far = now -
  due, a lower bound), grouped by debtor (the buyer that confirmed it).
* **energy-vs-output consistency**: the published profile's ``energy_consistency`` (a version-2
  profile: the share of the reported output its metered energy backs) and ``energy_days`` when it has
  them (None: not measured).
* **yield gain still open**: the latest published yield model of each of the factory's lines
  (``analytics_results`` kind ``yield``, ``params.factory``): ``model_gain`` averaged over the lines,
  weighted by their units; its age is the days from the models' last data day to ``now_s``.

Reads only; the lot mirror is brought up to date first (:func:`ledger_service.lots.mirror.sync_lots`).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from eth_utils import to_checksum_address
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from contracts.chain import Chain
from contracts.deployment import Deployment
from contracts.receivables import CONTRACT_NAME as RECEIVABLES
from contracts.receivables import ReceivablesClient
from finance.features import LOT_WINDOW_DAYS, RECALL_WINDOW_DAYS, RECEIVABLE_WINDOW_DAYS
from finance.proof import BuyerPayments, LotVerdicts, ProofFacts, RecallFacts, ReceivableFacts, YieldGain
from ledger_service.analytics_store.publish import list_published
from ledger_service.lots.mirror import mirror_mark, sync_lots
from ledger_service.store.models import LotMirrorRow, LotVerdictRow, RecallNoticeRow

__all__ = ["DAY_S", "ReceivableEvent", "gather_proof_facts", "lot_facts", "receivable_facts", "yield_facts"]

DAY_S: Final = 86_400


def _days(seconds: float) -> int:
    """Days covered by ``seconds``, to the nearest day (at least 1 once any time has passed)."""
    return max(1, round(seconds / DAY_S)) if seconds > 0 else 0


@dataclass(frozen=True, slots=True)
class ReceivableEvent:
    """One confirmed receivable of the factory as the chain holds it (times in Unix seconds; paid_at 0:
    unpaid)."""

    receivable_id: int
    debtor: str
    due_date: int
    paid_at: int


class _BlockClock:
    """Block number <-> chain time, with the few ``eth_getBlockByNumber`` calls cached."""

    def __init__(self, chain: Chain) -> None:
        self.chain = chain
        self.cache: dict[int, int] = {}

    def time(self, number: int) -> int:
        if number not in self.cache:
            self.cache[number] = int(self.chain.block(number)["timestamp"])
        return self.cache[number]

    def first_at_or_after(self, ts: int, head: int) -> int:
        """The first block whose time is >= ``ts`` (``head + 1`` when none is): block times never fall."""
        lo, hi = 0, head + 1
        while lo < hi:
            mid = (lo + hi) // 2
            if self.time(mid) >= ts:
                hi = mid
            else:
                lo = mid + 1
        return lo


def lot_facts(
    engine: Engine, factory: str, *, now_s: int, clock: _BlockClock, head: int
) -> tuple[LotVerdicts | None, RecallFacts | None]:
    """The verdicts on ``factory``'s lots and the recalls on them, in their windows (module docstring);
    None for each when the factory has no lot (or no verdict) in the mirror."""
    factory = to_checksum_address(factory)
    with Session(engine) as s:
        lots = s.exec(select(LotMirrorRow).where(col(LotMirrorRow.supplier) == factory)).all()
        keys = [lot.key for lot in lots]
        verdicts = (
            s.exec(select(LotVerdictRow).where(col(LotVerdictRow.lot_key).in_(keys))).all() if keys else []
        )
        notice_ids = {lot.recall_notice for lot in lots if lot.recall_notice is not None}
        notices = (
            s.exec(select(RecallNoticeRow).where(col(RecallNoticeRow.notice_id).in_(notice_ids))).all()
            if notice_ids
            else []
        )
    if not lots:
        return None, None
    ids = {lot.key: lot.lot_id for lot in lots}
    verdict_facts: LotVerdicts | None = None
    if verdicts:
        first = clock.time(min(v.block_number for v in verdicts))
        start_block = clock.first_at_or_after(now_s - LOT_WINDOW_DAYS * DAY_S, head)
        judged: dict[str, bool] = {}
        for v in sorted(verdicts, key=lambda v: (v.block_number, v.log_index)):
            if v.block_number >= start_block:
                judged[v.lot_key] = judged.get(v.lot_key, False) or v.verdict == "rejected"
        rejected = sorted(ids[k] for k, bad in judged.items() if bad)
        verdict_facts = LotVerdicts(
            judged=len(judged),
            rejected=len(rejected),
            window_days=min(LOT_WINDOW_DAYS, _days(now_s - first)),
            rejected_lots=tuple(rejected),
        )
    opened = clock.time(min(lot.opened_block for lot in lots))
    since = now_s - RECALL_WINDOW_DAYS * DAY_S
    in_window = {n.notice_id for n in notices if n.at >= since and n.by}
    recall_facts = RecallFacts(
        notices=len(in_window),
        lots=sum(1 for lot in lots if lot.recall_notice in in_window),
        window_days=min(RECALL_WINDOW_DAYS, _days(now_s - opened)),
    )
    return verdict_facts, recall_facts


def factory_receivables(chain: Chain, deployment: Deployment, factory: str) -> list[ReceivableEvent]:
    """The receivables confirmed to ``factory`` (as supplier), from the chain."""
    client = ReceivablesClient.from_deployment(chain, deployment)
    supplier = to_checksum_address(factory)
    event = client.contract.events.ReceivableConfirmed
    logs = chain.request(
        lambda: event.get_logs(from_block=deployment.block, argument_filters={"supplier": supplier}),
        context="ReceivableConfirmed logs",
    )
    out = []
    for log in logs:
        r = client.receivable(int(log["args"]["receivableId"]))
        out.append(ReceivableEvent(r.id, r.debtor, int(r.due_date), int(r.paid_at)))
    return out


def receivable_facts(
    events: list[ReceivableEvent], *, now_s: int, names: Mapping[str, str] | None = None
) -> ReceivableFacts | None:
    """The buyers' payments of ``events`` in the window (module docstring); None without any receivable
    that was paid or fell due."""
    since = now_s - RECEIVABLE_WINDOW_DAYS * DAY_S
    settled = [
        (e, e.paid_at if e.paid_at else e.due_date) for e in events if e.paid_at or e.due_date <= now_s
    ]
    if not settled:
        return None
    by_buyer: dict[str, list[tuple[float, bool]]] = defaultdict(list)
    for e, when in settled:
        if when < since or when > now_s:
            continue
        late_s = (e.paid_at - e.due_date) if e.paid_at else (now_s - e.due_date)
        by_buyer[e.debtor].append((max(0, late_s) / DAY_S, not e.paid_at))
    names = {to_checksum_address(k): v for k, v in (names or {}).items()}
    buyers = tuple(
        BuyerPayments(
            buyer=names.get(debtor, debtor),
            receivables=len(rows),
            days_late=sum(d for d, _ in rows) / len(rows),
            unpaid=sum(1 for _, unpaid in rows if unpaid),
        )
        for debtor, rows in sorted(by_buyer.items())
    )
    first = min(min(e.due_date, when) for e, when in settled)  # the first that fell due (or was paid)
    return ReceivableFacts(buyers=buyers, window_days=min(RECEIVABLE_WINDOW_DAYS, _days(now_s - first)))


def yield_facts(engine: Engine, factory: str, *, now_s: int) -> YieldGain | None:
    """The open yield gain of ``factory``'s lines from their latest published yield models; None without
    one."""
    latest: dict[str, dict[str, Any]] = {}
    for pub in list_published(engine, kind="yield"):  # newest first
        params = pub.params
        if str(params.get("factory", "")).lower() != factory.lower():
            continue
        line = str(params.get("line_id"))
        if line not in latest:
            latest[line] = {**pub.result, "_start": params["start"], "_end": params["end"]}
    if not latest:
        return None
    units = sum(float(r["n_units"]) for r in latest.values())
    gain = sum(float(r["model_gain"]) * float(r["n_units"]) for r in latest.values()) / units
    end = max(r["_end"] for r in latest.values())
    today = dt.datetime.fromtimestamp(now_s, dt.UTC).date()
    return YieldGain(
        gain=max(-1.0, min(1.0, gain)),
        lines=tuple(sorted(latest)),
        start=min(r["_start"] for r in latest.values()),
        end=end,
        age_days=max(0, (today - dt.date.fromisoformat(end)).days),
    )


def gather_proof_facts(
    engine: Engine,
    chain: Chain,
    deployment: Deployment,
    factory: str,
    *,
    profile: Mapping[str, Any] | None = None,
    names: Mapping[str, str] | None = None,
    confirmations: int = 0,
    sync: bool = True,
) -> ProofFacts:
    """``factory``'s proof facts as of the latest block (module docstring).

    @param profile       the published profile's JSON the assessment is made from (its energy-vs-output
                         consistency, when it has one)
    @param names         buyer address -> the name a reason gives it (default: the address)
    @param confirmations the depth the lot mirror is synced to first (``sync``)
    """
    factory = to_checksum_address(factory)
    if sync:
        sync_lots(engine, chain, deployment, confirmations=confirmations)
    head_block = chain.block("latest")
    head, now_s = int(head_block["number"]), int(head_block["timestamp"])
    clock = _BlockClock(chain)
    clock.cache[head] = now_s
    lots, recalls = lot_facts(engine, factory, now_s=now_s, clock=clock, head=head)
    receivables = (
        receivable_facts(factory_receivables(chain, deployment, factory), now_s=now_s, names=names)
        if RECEIVABLES in deployment.contracts
        else None
    )
    energy = (profile or {}).get("energy_consistency")  # a version-2 profile's (docs/analytics-profile.md)
    energy_days = (profile or {}).get("energy_days")
    return ProofFacts(
        as_of=dt.datetime.fromtimestamp(now_s, dt.UTC).date().isoformat(),
        lots=lots,
        recalls=recalls,
        receivables=receivables,
        energy_output_consistency=None if energy is None else float(energy),
        energy_days=None if energy is None or energy_days is None else int(energy_days),
        yield_gain=yield_facts(engine, factory, now_s=now_s),
        source=(
            ("block", head),
            ("chain_time", now_s),
            ("lot_mirror_block", mirror_mark(engine, deployment).block),
        ),
    )
