"""Trace times (issue 15.2): a full downstream trace from the store over a graph of 100,000 lots in 6 tiers,
and the cost of re-checking a trace against the chain.

    PYTHONPATH=. .venv/bin/python bench/bench_trace.py [--lots 100000] [--runs 7] [--postgres URL]

The graph: tier 1 (most upstream: raw material lots) to tier 6 (finished goods), tier sizes in the ratio
2 : 4 : 8 : 16 : 30 : 40 (100,000 lots). Every lot of tier t > 1 is split off one lot of tier t - 1 (40 %)
or made, in a transformation, from two lots of tier t - 1 (60 %), picked at random (seed 15). The rows are
bulk-inserted straight into the store's tables (``lot_mirror``, ``lot_edges``) through their models, on a
schema the migrations built (so with the indexes the trace uses: the edges' primary pair and
``ix_lot_edges_child``). A full downstream trace from a tier-1 lot (median of ``--runs``, with the number
of lots it returns) and an upstream one from a tier-6 lot are timed with
:func:`ledger_service.lots.trace.trace_from_store`.

Verification: the same shape (a tier-1 lot, 6 tiers, the same split/transform mix) is built for real on
the embedded chain (py-evm), mirrored into a store, traced downstream and re-checked with
:func:`ledger_service.lots.trace.verify_trace`; the time is given per lot, per edge and per chain call.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import Engine, insert

from contracts.chain import Chain, dev_accounts
from contracts.deploy import deploy_suite
from contracts.lots import OPEN_ACTION, TRANSFER_ACTION, LotRegistryClient, TransformInput, TransformOutput
from ledger_service.lots.mirror import sync_lots
from ledger_service.lots.trace import Direction, trace_from_store, verify_trace
from ledger_service.store.engine import create_schema, make_engine
from ledger_service.store.models import LotEdgeRow, LotMirrorRow

RATIOS = (2, 4, 8, 16, 30, 40)
PARTY = "0x" + "11" * 20


def _key(i: int) -> str:
    return f"0x{i:064x}"


def build_graph(engine: Engine, total: int, seed: int = 15) -> list[list[int]]:
    """Insert ``total`` lots in 6 tiers with their edges; the lot numbers of each tier."""
    rng = random.Random(seed)
    sizes = [total * r // sum(RATIOS) for r in RATIOS]
    sizes[-1] += total - sum(sizes)
    tiers: list[list[int]] = []
    lots: list[dict[str, object]] = []
    edges: list[dict[str, object]] = []
    n = 0
    tid = 0
    for t, size in enumerate(sizes):
        tier = list(range(n, n + size))
        n += size
        for i in tier:
            row: dict[str, object] = {
                "key": _key(i),
                "lot_id": f"T{t + 1}-{i}",
                "issuer": PARTY,
                "supplier": PARTY,
                "custodian": PARTY,
                "gtin": 4006381333931,
                "quantity": "100",
                "unit": "kg",
                "status": "active",
                "parent_key": None,
                "produced_by": None,
                "opened_block": t,
                "recall_notice": None,
            }
            if t > 0:
                prev = tiers[-1]
                if rng.random() < 0.4:
                    parent = rng.choice(prev)
                    row["parent_key"] = _key(parent)
                    edges.append(_edge(parent, i, "split", None, t))
                else:
                    tid += 1
                    row["produced_by"] = tid
                    for parent in rng.sample(prev, 2):
                        edges.append(_edge(parent, i, "transform", tid, t))
            lots.append(row)
        tiers.append(tier)
    with engine.begin() as conn:
        for start in range(0, len(lots), 5000):
            conn.execute(insert(LotMirrorRow), lots[start : start + 5000])
        for start in range(0, len(edges), 5000):
            conn.execute(insert(LotEdgeRow), edges[start : start + 5000])
    with engine.begin() as conn:  # statistics for the planner, as autovacuum would gather after a bulk load
        conn.exec_driver_sql("ANALYZE")
    return tiers


def _edge(parent: int, child: int, kind: str, tid: int | None, block: int) -> dict[str, object]:
    return {
        "parent_key": _key(parent),
        "child_key": _key(child),
        "kind": kind,
        "transformation_id": tid,
        "quantity": "10",
        "block_number": block,
    }


def time_traces(engine: Engine, root: str, direction: Direction, runs: int) -> tuple[float, int]:
    """Median ms of ``runs`` traces (after one warm-up) and the lots returned."""
    count = len(trace_from_store(engine, root, direction).lots)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        trace_from_store(engine, root, direction)
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), count


def store_bench(url: str, label: str, total: int, runs: int) -> None:
    engine = make_engine(url)
    create_schema(engine)
    t = time.perf_counter()
    tiers = build_graph(engine, total)
    print(
        f"[{label}] {total:,} lots, tiers {[len(x) for x in tiers]}, "
        f"inserted in {time.perf_counter() - t:.1f} s"
    )
    rng = random.Random(7)
    for root in rng.sample(tiers[0], 3):
        ms, count = time_traces(engine, _key(root), Direction.DOWNSTREAM, runs)
        print(
            f"[{label}] downstream from tier-1 lot {root}: {count:,} lots, median {ms:.1f} ms ({runs} runs)"
        )
    for root in rng.sample(tiers[-1], 2):
        ms, count = time_traces(engine, _key(root), Direction.UPSTREAM, runs)
        print(f"[{label}] upstream from tier-6 lot {root}: {count:,} lots, median {ms:.1f} ms ({runs} runs)")
    engine.dispose()


def chain_bench(per_tier: tuple[int, ...] = (1, 2, 4, 8, 12, 16)) -> None:
    """A real graph on the embedded chain (tier sizes ``per_tier``), mirrored, traced and verified."""
    chain = Chain.embedded()
    op, party = dev_accounts(2)
    deployment = deploy_suite(chain, op)
    gate_address = chain.deploy("StaticAdmissionGate", op, op.address).contract_address
    assert gate_address is not None
    gate = chain.contract("StaticAdmissionGate", gate_address)
    chain.transact(deployment.contract(chain, "LotRegistry").functions.setAdmissionGate(gate_address), op)
    for action in (OPEN_ACTION, TRANSFER_ACTION):
        chain.transact(gate.functions.setAdmitted(party.address, action, True), op)
    lots = LotRegistryClient.from_deployment(chain, deployment)
    rng = random.Random(15)
    lots.open_lot(
        party,
        lot_id="T1-0",
        gtin="04006381333931",
        quantity=10**9,
        unit="kg",
        produced_from_ms=0,
        produced_to_ms=1,
    )
    prev = ["T1-0"]
    for t, size in enumerate(per_tier[1:], start=2):
        tier = []
        for i in range(size):
            name = f"T{t}-{i}"
            if rng.random() < 0.4 or len(prev) < 2:
                lots.split_lot(party, rng.choice(prev), {name: 10 ** (9 - t)})
            else:
                ins = [TransformInput(lot=p, quantity=1, unit="kg") for p in rng.sample(prev, 2)]
                out = TransformOutput(
                    lot_id=name,
                    gtin="04006381333931",
                    quantity=10**6,
                    unit="kg",
                    produced_from_ms=0,
                    produced_to_ms=1,
                )
                lots.transform(party, ins, [out])
            tier.append(name)
        prev = tier
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'trace.db'}")
        create_schema(engine)
        t0 = time.perf_counter()
        sync_lots(engine, chain, deployment)
        sync_s = time.perf_counter() - t0
        root = "0x" + lots.key("T1-0", issuer=party.address).hex()
        trace = trace_from_store(engine, root, Direction.DOWNSTREAM)
        t0 = time.perf_counter()
        check = verify_trace(chain, deployment, trace)
        verify_s = time.perf_counter() - t0
        engine.dispose()
    assert check.ok, check.mismatches
    print(
        f"[embedded chain] mirrored {sum(per_tier)} lots in {sync_s:.2f} s; downstream trace of "
        f"{len(trace.lots)} lots, {len(trace.edges)} edges verified in {verify_s * 1000:.0f} ms: "
        f"{check.calls} chain calls, {verify_s * 1000 / check.calls:.2f} ms per call, "
        f"{verify_s * 1000 / check.edges:.1f} ms per edge (all checks of a trace / its edges), "
        f"{verify_s * 1000 / check.lots:.1f} ms per lot"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lots", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--postgres", help="also on this PostgreSQL URL (an empty database)")
    parser.add_argument("--skip-chain", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store_bench(f"sqlite:///{Path(tmp) / 'bench.db'}", "SQLite", args.lots, args.runs)
    if args.postgres:
        store_bench(args.postgres, "PostgreSQL", args.lots, args.runs)
    if not args.skip_chain:
        chain_bench()
    return 0


if __name__ == "__main__":
    sys.exit(main())
