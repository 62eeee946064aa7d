"""Tracing a lot through its lineage, from the store, re-checkable against the chain (issue 15).

- **Downstream**: every lot split off the lot or made from it, transitively, each with its present holder.
- **Upstream**: every lot it was split off or made from, transitively, each with its producer and its
  quality verdicts.

Both come from the store's mirror (:mod:`ledger_service.lots.mirror`: ``lot_mirror``, ``lot_edges``,
``lot_verdicts``, ``recall_notices``) in two recursive queries over the edge index (one for the edges,
one for the lots), then ordered breadth-first from the root in memory: every lot comes after a lot it is
reached from, the order :func:`ledger_service.lots.recall.flag_recall` flags in.

:func:`verify_trace` re-checks a trace against the chain, trusting nothing the store says: each lot's
holder, producer, split parent, transformation and recall notice (``LotRegistry.lot``,
``transformation``, ``recallNoticeOf``), upstream its standing verdict (``QualityCertifier.certificate``),
and that the store left no edge out (``children`` and
``outputsOf`` downstream; the parent and ``inputsOf`` upstream are in ``lot`` and ``transformation``).
Who may see a trace is the access policy's (``Data.LOT_TRACE``, docs/access-policy.md).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from eth_utils import to_checksum_address
from sqlalchemy import Engine, text

from contracts.chain import Chain
from contracts.deployment import Deployment
from contracts.lots import format_gtin
from ledger_service.errors import LedgerError, NotFound

__all__ = [
    "MAX_TRACE_LOTS",
    "Direction",
    "Trace",
    "TraceCheck",
    "TraceEdge",
    "TraceLot",
    "TraceTooLarge",
    "trace_from_store",
    "verify_trace",
]

#: The most lots one trace returns (a larger one is refused: trace from a lot further down).
MAX_TRACE_LOTS = 50_000


class Direction(StrEnum):
    UPSTREAM = "upstream"
    DOWNSTREAM = "downstream"


class TraceTooLarge(LedgerError):
    """The trace reaches more lots than one answer holds."""

    code = "trace.too_large"


@dataclass(frozen=True, kw_only=True, slots=True)
class TraceLot:
    """A lot of a trace, as the store mirrors it; ``depth`` is its distance from the root (0: the root)."""

    key: str
    lot_id: str
    issuer: str
    supplier: str
    custodian: str
    gtin: int
    quantity: str
    unit: str
    status: str
    parent_key: str | None
    produced_by: int | None
    recall_notice: int | None
    depth: int = 0
    verdicts: tuple[dict[str, Any], ...] = ()

    def to_json_obj(self) -> dict[str, Any]:
        return {
            "lot_key": self.key,
            "lot_id": self.lot_id,
            "issuer": self.issuer,
            "producer": self.supplier,
            "holder": self.custodian,
            "gtin": format_gtin(self.gtin),
            "quantity": self.quantity,
            "unit": self.unit,
            "status": self.status,
            "depth": self.depth,
            "recalled": self.recall_notice is not None,
            "recall_notice": self.recall_notice,
            "parent": self.parent_key,
            "transformation_id": self.produced_by,
            "verdicts": list(self.verdicts),
        }

    @classmethod
    def from_json_obj(cls, obj: dict[str, Any]) -> TraceLot:
        """A lot as :meth:`to_json_obj` wrote it (a trace read over the API, to verify it)."""
        return cls(
            key=str(obj["lot_key"]),
            lot_id=str(obj["lot_id"]),
            issuer=str(obj["issuer"]),
            supplier=str(obj["producer"]),
            custodian=str(obj["holder"]),
            gtin=int(obj["gtin"]),
            quantity=str(obj["quantity"]),
            unit=str(obj["unit"]),
            status=str(obj["status"]),
            parent_key=obj.get("parent"),
            produced_by=obj.get("transformation_id"),
            recall_notice=obj.get("recall_notice"),
            depth=int(obj["depth"]),
            verdicts=tuple(obj.get("verdicts", ())),
        )


@dataclass(frozen=True, kw_only=True, slots=True)
class TraceEdge:
    """``child`` was split off (``split``) or made from (``transform``) ``parent``."""

    parent: str
    child: str
    kind: str
    transformation_id: int | None
    quantity: str

    def to_json_obj(self) -> dict[str, Any]:
        return {
            "parent": self.parent,
            "child": self.child,
            "kind": self.kind,
            "transformation_id": self.transformation_id,
            "quantity": self.quantity,
        }


@dataclass(frozen=True, kw_only=True)
class Trace:
    """A lot's trace one way: the root, the lots reached (breadth-first, root excluded), the edges among
    them, and the recall notices any of them is under."""

    direction: Direction
    root: TraceLot
    lots: list[TraceLot]
    edges: list[TraceEdge]
    notices: dict[int, dict[str, Any]] = field(default_factory=dict)

    def to_json_obj(self) -> dict[str, Any]:
        return {
            "direction": str(self.direction),
            "root": self.root.to_json_obj(),
            "count": len(self.lots),
            "lots": [lot.to_json_obj() for lot in self.lots],
            "edges": [e.to_json_obj() for e in self.edges],
            "recall_notices": [self.notices[k] for k in sorted(self.notices)],
        }

    @classmethod
    def from_json_obj(cls, obj: dict[str, Any]) -> Trace:
        """A trace as :meth:`to_json_obj` wrote it (``GET /v1/lots/{lot_id}/trace``'s body)."""
        return cls(
            direction=Direction(obj["direction"]),
            root=TraceLot.from_json_obj(obj["root"]),
            lots=[TraceLot.from_json_obj(x) for x in obj["lots"]],
            edges=[
                TraceEdge(
                    parent=str(e["parent"]),
                    child=str(e["child"]),
                    kind=str(e["kind"]),
                    transformation_id=e.get("transformation_id"),
                    quantity=str(e["quantity"]),
                )
                for e in obj["edges"]
            ],
            notices={int(n["notice_id"]): n for n in obj.get("recall_notices", [])},
        )


_LOT_COLUMNS = (
    "key, lot_id, issuer, supplier, custodian, gtin, quantity, unit, status, parent_key, produced_by, "
    "recall_notice"
)
_EDGE_COLUMNS = "e.parent_key, e.child_key, e.kind, e.transformation_id, e.quantity"
#: The recursive part: the keys reached from :root, following the edges one way.
_REACH = {
    Direction.DOWNSTREAM: (
        "WITH RECURSIVE reach(k) AS (SELECT CAST(:root AS VARCHAR(66)) UNION "
        "SELECT e.child_key FROM lot_edges e JOIN reach r ON e.parent_key = r.k) "
    ),
    Direction.UPSTREAM: (
        "WITH RECURSIVE reach(k) AS (SELECT CAST(:root AS VARCHAR(66)) UNION "
        "SELECT e.parent_key FROM lot_edges e JOIN reach r ON e.child_key = r.k) "
    ),
}
_EDGES_OF_REACH = {
    Direction.DOWNSTREAM: f"SELECT {_EDGE_COLUMNS} FROM lot_edges e JOIN reach r ON e.parent_key = r.k",
    Direction.UPSTREAM: f"SELECT {_EDGE_COLUMNS} FROM lot_edges e JOIN reach r ON e.child_key = r.k",
}


def _lot(row: Any, depth: int = 0, verdicts: tuple[dict[str, Any], ...] = ()) -> TraceLot:
    return TraceLot(
        key=row[0],
        lot_id=row[1],
        issuer=row[2],
        supplier=row[3],
        custodian=row[4],
        gtin=int(row[5]),
        quantity=row[6],
        unit=row[7],
        status=row[8],
        parent_key=row[9],
        produced_by=None if row[10] is None else int(row[10]),
        recall_notice=None if row[11] is None else int(row[11]),
        depth=depth,
        verdicts=verdicts,
    )


def _order(root: str, edges: list[TraceEdge], direction: Direction) -> dict[str, int]:
    """Each reached key's breadth-first depth from the root, in breadth-first order."""
    nxt: dict[str, list[str]] = {}
    for e in edges:
        a, b = (e.parent, e.child) if direction is Direction.DOWNSTREAM else (e.child, e.parent)
        nxt.setdefault(a, []).append(b)
    depth = {root: 0}
    queue = deque([root])
    while queue:
        k = queue.popleft()
        for n in nxt.get(k, ()):
            if n not in depth:
                depth[n] = depth[k] + 1
                queue.append(n)
    return depth


def trace_from_store(
    engine: Engine, root_key: str, direction: Direction, *, max_lots: int = MAX_TRACE_LOTS
) -> Trace:
    """The trace of the lot keyed ``root_key`` (0x-hex) from the store alone.

    :class:`NotFound` (``lot.not_mirrored``) when the store has no such lot; :class:`TraceTooLarge`
    beyond ``max_lots`` lots."""
    root_key = root_key.lower()
    reach = _REACH[direction]
    params = {"root": root_key}
    with engine.connect() as conn:
        root_row = conn.execute(
            text(f"SELECT {_LOT_COLUMNS} FROM lot_mirror WHERE key = :root"), params
        ).first()
        if root_row is None:
            raise NotFound(
                f"the store has no lot {root_key}: it is not on chain, or the service has not mirrored "
                "it yet",
                code="lot.not_mirrored",
            )
        edge_rows = conn.execute(text(reach + _EDGES_OF_REACH[direction]), params).all()
        edges = [
            TraceEdge(
                parent=r[0],
                child=r[1],
                kind=r[2],
                transformation_id=None if r[3] is None else int(r[3]),
                quantity=r[4],
            )
            for r in edge_rows
        ]
        depth = _order(root_key, edges, direction)
        if len(depth) - 1 > max_lots:
            raise TraceTooLarge(
                f"the {direction} trace of {root_key} reaches {len(depth) - 1} lots, more than "
                f"{max_lots}: trace from a lot further along",
                code="trace.too_large",
            )
        lot_rows = conn.execute(
            text(reach + f"SELECT {_LOT_COLUMNS} FROM lot_mirror JOIN reach r ON lot_mirror.key = r.k"),
            params,
        ).all()
        verdicts: dict[str, list[dict[str, Any]]] = {}
        if direction is Direction.UPSTREAM:
            for v in conn.execute(
                text(
                    reach + "SELECT v.lot_key, v.verdict, v.spec_version, v.reason, v.by, v.block_number "
                    "FROM lot_verdicts v JOIN reach r ON v.lot_key = r.k ORDER BY v.block_number, v.log_index"
                ),
                params,
            ):
                verdicts.setdefault(v[0], []).append(
                    {"verdict": v[1], "spec_version": v[2], "reason": v[3], "by": v[4], "block_number": v[5]}
                )
        notice_ids = {int(r[11]) for r in lot_rows if r[11] is not None}
        notices = _notices(conn, notice_ids)
    rows = {r[0]: r for r in lot_rows}
    lots = [
        _lot(rows[k], d, tuple(verdicts.get(k, ()))) for k, d in depth.items() if k != root_key and k in rows
    ]
    root = _lot(root_row, 0, tuple(verdicts.get(root_key, ())))
    return Trace(direction=direction, root=root, lots=lots, edges=edges, notices=notices)


def _notices(conn: Any, ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    out: dict[int, dict[str, Any]] = {}
    for notice_id in sorted(ids):
        r = conn.execute(
            text(
                "SELECT notice_id, root_key, by, at, reason_hash, reason, flagged FROM recall_notices "
                "WHERE notice_id = :n"
            ),
            {"n": notice_id},
        ).first()
        if r is not None:
            out[notice_id] = {
                "notice_id": int(r[0]),
                "root": r[1],
                "by": r[2],
                "at": int(r[3]),
                "reason_hash": r[4],
                "reason": r[5],
                "flagged": int(r[6]),
            }
    return out


# ---------------------------------------------------------------- verification against the chain


@dataclass(kw_only=True)
class TraceCheck:
    """What :func:`verify_trace` compared: lots, edges, chain calls made, and every mismatch found."""

    lots: int = 0
    edges: int = 0
    calls: int = 0
    mismatches: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def to_json_obj(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "lots": self.lots,
            "edges": self.edges,
            "calls": self.calls,
            "mismatches": self.mismatches,
        }


class _ChainView:
    """The registry's views a check needs, each answer kept (a transformation is read once)."""

    def __init__(self, chain: Chain, deployment: Deployment, check: TraceCheck) -> None:
        self.chain = chain
        self.fns = deployment.contract(chain, "LotRegistry").functions
        self.certifier = deployment.contract(chain, "QualityCertifier").functions
        self.check = check
        self.transformations: dict[int, tuple[list[str], list[int], list[str]]] = {}

    def call(self, fn: Any) -> Any:
        self.check.calls += 1
        return self.chain.call(fn)

    def transformation(self, tid: int) -> tuple[list[str], list[int], list[str]]:
        if tid not in self.transformations:
            _by, _at, ins, consumed, outs = self.call(self.fns.transformation(tid))
            self.transformations[tid] = (
                [_hex(k) for k in ins],
                [int(q) for q in consumed],
                [_hex(k) for k in outs],
            )
        return self.transformations[tid]


def _hex(value: bytes) -> str:
    return "0x" + bytes(value).hex()


def _check_lot(view: _ChainView, lot: TraceLot, mismatches: list[str]) -> None:
    key = bytes.fromhex(lot.key[2:])
    on = view.call(view.fns.lot(key))
    supplier, custodian, parent, produced_by = on[8], on[11], on[12], int(on[14])
    if to_checksum_address(custodian) != lot.custodian:
        mismatches.append(f"{lot.key}: held by {custodian} on chain, {lot.custodian} in the store")
    if to_checksum_address(supplier) != lot.supplier:
        mismatches.append(f"{lot.key}: produced by {supplier} on chain, {lot.supplier} in the store")
    chain_parent = None if bytes(parent) == b"\x00" * 32 else _hex(parent)
    if chain_parent != lot.parent_key:
        mismatches.append(f"{lot.key}: split off {chain_parent} on chain, {lot.parent_key} in the store")
    if (produced_by or None) != lot.produced_by:
        mismatches.append(
            f"{lot.key}: made in transformation {produced_by} on chain, {lot.produced_by} in the store"
        )
    notice = int(view.call(view.fns.recallNoticeOf(key)))
    if (notice or None) != lot.recall_notice:
        mismatches.append(f"{lot.key}: recall notice {notice} on chain, {lot.recall_notice} in the store")


_VERDICTS = {1: "certified", 2: "rejected"}


def _check_verdict(view: _ChainView, lot: TraceLot, mismatches: list[str]) -> None:
    """The store's last verdict on the lot is the QualityCertifier's standing one (every change of it emits
    the event the store mirrors): verdict, spec version and who submitted it."""
    status, _reason, spec, _samples, _at, submitter, *_ = view.call(
        view.certifier.certificate(bytes.fromhex(lot.key[2:]))
    )
    on_chain = _VERDICTS.get(int(status))
    last = lot.verdicts[-1] if lot.verdicts else None
    stored = None if last is None else last["verdict"]
    same = on_chain == stored and (
        last is None
        or (int(spec) == int(last["spec_version"]) and to_checksum_address(submitter) == last["by"])
    )
    if not same:
        mismatches.append(
            f"{lot.key}: verdict {on_chain} (spec {spec}, by {submitter}) on chain, "
            f"{stored} in the store ({last})"
        )


def _check_edge(view: _ChainView, edge: TraceEdge, mismatches: list[str]) -> None:
    if edge.kind == "split":
        on = view.call(view.fns.lot(bytes.fromhex(edge.child[2:])))
        if _hex(on[12]) != edge.parent or str(on[6]) != edge.quantity:
            mismatches.append(f"edge {edge.parent} -> {edge.child}: no split of {edge.quantity} on chain")
        return
    ins, consumed, outs = (
        view.transformation(edge.transformation_id or 0) if edge.transformation_id else ([], [], [])
    )
    pairs = dict(zip(ins, consumed, strict=True))
    if edge.child not in outs or str(pairs.get(edge.parent)) != edge.quantity:
        mismatches.append(
            f"edge {edge.parent} -> {edge.child}: transformation {edge.transformation_id} on chain does not "
            f"consume {edge.quantity} of the parent into the child"
        )


def _check_complete(view: _ChainView, trace: Trace, mismatches: list[str]) -> None:
    """The store left out no edge of a reached lot (downstream: its children and outputs)."""
    stored: dict[str, set[str]] = {}
    for e in trace.edges:
        stored.setdefault(e.parent, set()).add(e.child)
    for lot in [trace.root, *trace.lots]:
        key = bytes.fromhex(lot.key[2:])
        on_chain = {_hex(k) for k in view.call(view.fns.children(key))}
        on_chain |= {_hex(k) for k in view.call(view.fns.outputsOf(key))}
        missing = on_chain - stored.get(lot.key, set())
        if missing:
            mismatches.append(
                f"{lot.key}: the store leaves out {len(missing)} lot(s) made from it: {sorted(missing)}"
            )


def _check_complete_upstream(view: _ChainView, trace: Trace, mismatches: list[str]) -> None:
    """The store left out no input of a reached lot's transformation (its split parent is checked per lot)."""
    stored: dict[str, set[str]] = {}
    for e in trace.edges:
        stored.setdefault(e.child, set()).add(e.parent)
    for lot in [trace.root, *trace.lots]:
        if lot.produced_by is None:
            continue
        ins, _, _ = view.transformation(lot.produced_by)
        missing = set(ins) - stored.get(lot.key, set())
        if missing:
            mismatches.append(f"{lot.key}: the store leaves out {len(missing)} input(s): {sorted(missing)}")


def verify_trace(chain: Chain, deployment: Deployment, trace: Trace) -> TraceCheck:
    """Re-check ``trace`` against the chain (see the module docstring); the answer lists every mismatch."""
    check = TraceCheck()
    view = _ChainView(chain, deployment, check)
    for lot in [trace.root, *trace.lots]:
        _check_lot(view, lot, check.mismatches)
        if trace.direction is Direction.UPSTREAM:
            _check_verdict(view, lot, check.mismatches)
        check.lots += 1
    for edge in trace.edges:
        _check_edge(view, edge, check.mismatches)
        check.edges += 1
    if trace.direction is Direction.DOWNSTREAM:
        _check_complete(view, trace, check.mismatches)
    else:
        _check_complete_upstream(view, trace, check.mismatches)
    return check
