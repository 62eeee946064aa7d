"""Batch tree building: ours (Python) against @openzeppelin/merkle-tree (node), same digests.

    .venv/bin/python bench/bench_tree.py [--leaves 100000]

Both build StandardMerkleTree.of(digests.map(d => [d]), ["bytes32"]); the roots must
be equal. Times are the build alone (best of 3 for ours; one node run).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from device_attestation.merkle import MerkleTree

HERE = Path(__file__).resolve().parent


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--leaves", type=int, default=100_000)
    args = ap.parse_args()
    digests = [os.urandom(32) for _ in range(args.leaves)]
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        tree = MerkleTree.build(digests)
        best = min(best, time.perf_counter() - t)
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join("0x" + d.hex() for d in digests))
        name = f.name
    try:
        out = subprocess.run(
            ["node", str(HERE / "merkle_tree_js.js"), name], check=True, capture_output=True, text=True
        ).stdout
    finally:
        os.unlink(name)
    js = json.loads(out)
    same = js["root"] == "0x" + tree.root.hex()
    print(
        f"{args.leaves:,} digests: ours {best * 1000:,.0f} ms, @openzeppelin/merkle-tree {js['ms']:,.0f} ms "
        f"(ratio {js['ms'] / (best * 1000):.1f}x), same root: {same}"
    )
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
