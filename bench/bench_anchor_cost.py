"""Anchoring cost: gas per reading at batch sizes 1, 100 and 10,000, against a naive design.

    .venv/bin/python bench/bench_anchor_cost.py

ReadingAnchor writes one Merkle root per batch (the same transaction whatever the
batch size); the naive design (contracts/src/testing/NaiveAnchor.sol) writes each
reading's digest in its own transaction. Both run on anvil in the same run, and the
embedded chain for comparison.
"""

from __future__ import annotations

import os
import sys

from contracts.anvil import AnvilNode
from contracts.chain import Chain, dev_accounts
from contracts.deploy import deploy_suite
from device_attestation.merkle import MerkleTree

SIZES = (1, 100, 10_000)
NAIVE_SAMPLE = 100  # naive transactions actually sent per size (gas is the same for each)


def measure(chain: Chain) -> list[tuple[int, int, float, int, float]]:
    op = dev_accounts(1)[0]
    dep = deploy_suite(chain, op)
    anchor = dep.contract(chain, "ReadingAnchor")
    naive = chain.contract("NaiveAnchor", chain.deploy("NaiveAnchor", op).contract_address or "")
    rows = []
    for size in SIZES:
        digests = [os.urandom(32) for _ in range(size)]
        tree = MerkleTree.build(digests)
        batch_gas = chain.transact(anchor.functions.anchorBatch(tree.root, size), op).gas_used
        sample = digests[: min(size, NAIVE_SAMPLE)]
        naive_gas = [chain.transact(naive.functions.anchor(d), op).gas_used for d in sample]
        naive_each = sum(naive_gas) / len(naive_gas)
        rows.append((size, batch_gas, batch_gas / size, round(naive_each * size), naive_each))
    return rows


def main() -> int:
    with AnvilNode() as node:
        runs = {"anvil": measure(Chain.connect(node.url))}
    runs["embedded"] = measure(Chain.embedded())
    for name, rows in runs.items():
        print(f"\n{name}: gas per batch and per reading")
        print(
            f"{'readings':>9} {'anchorBatch':>12} {'per reading':>12} {'naive total':>14} "
            f"{'naive/reading':>14} {'saving':>8}"
        )
        for size, batch, per, naive_total, naive_each in rows:
            print(
                f"{size:>9,} {batch:>12,} {per:>12,.1f} {naive_total:>14,} {naive_each:>14,.0f} "
                f"{naive_total / batch:>7,.1f}x"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
