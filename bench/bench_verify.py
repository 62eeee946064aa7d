"""How fast an auditor verifies proof bundles, offline and against a node.

    .venv/bin/python bench/bench_verify.py [--bundles 4000] [--batch-size 500] [--chain-reads 2000]
                                           [--on-chain 1000] [--many-batch-size 20]

Starts its own anvil (osaka: the EIP-7951 P-256 precompile is on), deploys the
suite, enrolls 8 devices (4 P-256, 4 secp256k1), signs ``--bundles`` readings,
anchors them in batches of ``--batch-size`` and builds every proof bundle. Then:

(a) the chain-free part (``verify_bundle_against``: digest, root, inclusion, device
    active, signature) with the chain state read once and cached (one ``batch()``
    per batch, one ``device()`` per device), plus each of its parts alone;
(b) full ``BundleVerifier.verify`` (every chain read and the anchor-tx check, per
    bundle) with one verifier reused, and ``verify_bundle`` (a new verifier per
    bundle: one more read, the anchor's ``registry()``), on the first ``--chain-reads``;
(c) ``verify_on_chain`` (the contract's ``verifyReading`` through ``eth_call``) on
    the first ``--on-chain`` bundles;
(d) ``BundleVerifier.verify_many`` (issue 17.3: a directory verified as one run, each batch,
    device, anchoring receipt and block read once, in JSON-RPC batch requests) on all the
    bundles: anchored in one batch, in batches of ``--batch-size``, and in batches of
    ``--many-batch-size`` (a second and third deployment on the same node), the last also with
    sequential reads (``batching=False``);
(e) ``supet verify DIR`` in this process (``verify_directory``: the files read and parsed, one
    line printed per file, to /dev/null) on the ``--batch-size`` bundles.

Single process, single thread; the node is local, so (b)-(e) measure the verifier and anvil's
JSON-RPC round trips, not a network. The load average is printed before and after (the machine
may be shared).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from auditor.bundle import ProofBundle, build_bundle_for
from auditor.checks import verify_bundle_against
from auditor.verify import BundleVerifier, verify_bundle
from contracts.anvil import AnvilNode
from contracts.chain import Chain, dev_accounts
from contracts.deploy import deploy_suite
from supet.cli import verify as verify_cli

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "helpers"))
from support import TestConsortium

from contracts.registry import AnchoredBatch, DeviceRecord, DeviceRegistryClient, ReadingAnchorClient
from device_attestation.keys import DevicePublicKey, Scheme
from device_attestation.merkle import MerkleTree, verify_inclusion
from device_attestation.reading import reading_digest
from device_attestation.signing import PublicKeyOrAddress, verify_signature


def setup(chain: Chain, *, bundles: int, batch_size: int) -> tuple[BundleVerifier, list[ProofBundle]]:
    (operator,) = dev_accounts(1)
    dep = deploy_suite(chain, operator)
    registry, anchor = DeviceRegistryClient(chain, dep), ReadingAnchorClient(chain, dep)
    # real enrollments (issue 12.2: the CA's birth attestation and the device's proof of possession),
    # active from their block's time; the readings are dated from the last enrollment on
    consortium = TestConsortium(chain, dep)
    signers = [
        consortium.enroll(f"SN-BENCH-{i}", "p256" if i % 2 == 0 else "secp256k1", active_from_ms=0)
        for i in range(8)
    ]
    t0 = max(registry.device(s.device_id).active_from_ms for s in signers)
    out: list[ProofBundle] = []
    for start in range(0, bundles, batch_size):
        subs = [
            signers[i % 8].sign(
                {"temp_c": 20 + (i % 100) / 10, "good_units": i}, ts_ms=t0 + i, lot_id="LOT-B"
            )
            for i in range(start, min(start + batch_size, bundles))
        ]
        tree = MerkleTree.build([s.digest for s in subs])
        tx = anchor.anchor_batch(operator, tree.root, len(tree)).tx_hash
        batch_id = anchor.batch_count()
        out += [build_bundle_for(s, tree=tree, batch_id=batch_id, deployment=dep, anchor_tx=tx) for s in subs]
    return BundleVerifier(chain=chain, deployment=dep), out


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg()) + f" ({os.cpu_count()} cores)"


def cli_directory(verifier: BundleVerifier, bundles: Sequence[ProofBundle]) -> tuple[str, int, float]:
    """``supet verify DIR`` on ``bundles`` written as files, its lines printed to /dev/null."""
    with tempfile.TemporaryDirectory() as tmp, open(os.devnull, "w") as devnull:
        directory = Path(tmp) / "bundles"
        directory.mkdir()
        dep_file = Path(tmp) / "deployment.json"
        verifier.deployment.save(dep_file)
        for i, b in enumerate(bundles):
            (directory / f"{i:06}.json").write_text(b.to_json())
        verify_cli.console.file = devnull
        start = time.perf_counter()
        verify_cli.verify_directory(
            directory, verifier.chain.rpc, dep_file, min_confirmations=0, on_chain=False
        )
        seconds = time.perf_counter() - start
    return "(e) supet verify DIR (anvil, files parsed, lines printed)", len(bundles), seconds


def rate(
    label: str, items: Sequence[ProofBundle], fn: Callable[[ProofBundle], object]
) -> tuple[str, int, float]:
    start = time.perf_counter()
    for b in items:
        fn(b)
    return label, len(items), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundles", type=int, default=4000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--chain-reads", type=int, default=2000, help="bundles for the (b) rows")
    parser.add_argument("--on-chain", type=int, default=1000, help="bundles for the (c) row")
    parser.add_argument(
        "--many-batch-size", type=int, default=20, help="batch size of the (d) many-batch rows"
    )
    args = parser.parse_args()
    print(f"before: {load()}")

    with AnvilNode(hardfork="osaka") as node:
        chain = Chain.connect(node.url)
        t = time.perf_counter()
        verifier, bundles = setup(chain, bundles=args.bundles, batch_size=args.batch_size)
        print(f"setup: {len(bundles)} bundles in {len({b.batch_id for b in bundles})} batches, "
              f"{time.perf_counter() - t:.1f}s")  # fmt: skip

        # (a) chain state read once, then no chain at all
        batches: dict[int, AnchoredBatch] = {i: verifier.read_batch(i) for i in {b.batch_id for b in bundles}}
        devices: dict[str, DeviceRecord] = {
            d: verifier.read_device(d) for d in {b.reading.device_id for b in bundles}
        }
        domain = verifier.domain
        keys: dict[str, PublicKeyOrAddress] = {
            d: DevicePublicKey(
                scheme=Scheme.P256, x=int.from_bytes(r.key_x, "big"), y=int.from_bytes(r.key_y, "big")
            )
            if r.key_x != bytes(32)
            else r.signer
            for d, r in devices.items()
        }

        def signature(b: ProofBundle) -> None:
            verify_signature(b.scheme, keys[b.reading.device_id], b.digest, b.signature)

        p256 = [b for b in bundles if b.scheme is Scheme.P256]
        k1 = [b for b in bundles if b.scheme is Scheme.SECP256K1]

        def offline(b: ProofBundle) -> object:
            return verify_bundle_against(
                b, domain=domain, batch=batches[b.batch_id], device=devices[b.reading.device_id]
            )

        some, few = bundles[: args.chain_reads], bundles[: args.on_chain]

        def inclusion(b: ProofBundle) -> None:
            verify_inclusion(digest=b.digest, proof=b.proof, root=b.root)

        def fresh(b: ProofBundle) -> object:
            return verify_bundle(b, chain=chain, deployment=verifier.deployment)

        rate("warm-up", bundles, offline)  # fill the per-key and per-name caches once
        rows = [
            rate("(a) offline, cached state: all", bundles, offline),
            rate("(a) offline, cached state: p256", p256, offline),
            rate("(a) offline, cached state: secp256k1", k1, offline),
            rate("    digest alone", bundles, lambda b: reading_digest(b.reading, domain)),
            rate("    inclusion alone", bundles, inclusion),
            rate("    signature alone: p256", p256, signature),
            rate("    signature alone: secp256k1", k1, signature),
            rate("(b) BundleVerifier.verify (anvil)", some, verifier.verify),
            rate("(b) verify_bundle (anvil, new verifier each)", some, fresh),
            rate("(c) verify_on_chain: verifyReading (anvil)", few, verifier.verify_on_chain),
        ]
        one_verifier, one_batch = setup(chain, bundles=args.bundles, batch_size=args.bundles)
        many_verifier, many = setup(chain, bundles=args.bundles, batch_size=args.many_batch_size)

        def run(v: BundleVerifier, items: Sequence[ProofBundle], **kw: bool) -> tuple[int, float]:
            start = time.perf_counter()
            verdicts = v.verify_many(items, **kw)
            seconds = time.perf_counter() - start
            assert all(not isinstance(x, Exception) for x in verdicts), "a bench bundle failed"
            return len(items), seconds

        n_batches = len({b.batch_id for b in bundles})
        n_many = len({b.batch_id for b in many})
        rows += [
            ("(d) verify_many: 1 batch (anvil, JSON-RPC batches)", *run(one_verifier, one_batch)),
            (f"(d) verify_many: {n_batches} batches (anvil, JSON-RPC batches)", *run(verifier, bundles)),
            (f"(d) verify_many: {n_many} batches (anvil, JSON-RPC batches)", *run(many_verifier, many)),
            (f"(d) verify_many: {n_many} batches (anvil, sequential reads)",
             *run(many_verifier, many, batching=False)),
            cli_directory(verifier, bundles),
        ]  # fmt: skip

    width = max(len(r[0]) for r in rows)
    print(f"{'mode':<{width}}  {'bundles':>8}  {'seconds':>8}  {'bundles/s':>10}")
    for label, n, seconds in rows:
        print(f"{label:<{width}}  {n:>8}  {seconds:>8.2f}  {n / seconds:>10,.0f}")
    print(f"after: {load()}")


if __name__ == "__main__":
    main()
