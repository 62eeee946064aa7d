"""Gas of QualityCertifier.certifyLot with 10 and 50 readings, P-256 and secp256k1 devices, on both chains.

    .venv/bin/python bench/bench_certify_gas.py [--sizes 10,50] [--filler 100] [--json]

Each measurement certifies a fresh lot (first verdict: fresh storage) from readings signed by 4
devices of one scheme, every reading carrying 3 metrics checked against a 3-metric spec. The readings
are split over 2 anchored batches; each batch also holds ``--filler`` other readings (digests only),
so the multiproofs are those of a real batch, not of a tree of the lot alone. The gas is the mined
transaction's ``gasUsed``.

The embedded chain (py-evm) has no P-256 precompile, so OpenZeppelin's P256 verifies in Solidity
there; anvil with ``--hardfork osaka`` has the EIP-7951 precompile (6,900 gas a verification).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils import keccak

from contracts.anvil import AnvilNode
from contracts.certifier import SPEC_ACTION, QualityCertifierClient, SpecMetric, batch_readings
from contracts.chain import Chain, dev_accounts
from contracts.deploy import deploy_suite
from contracts.lots import OPEN_ACTION, TRANSFER_ACTION, LotRegistryClient, deploy_supply_chain
from contracts.registry import DeviceRegistryClient

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "helpers"))
from support import TestConsortium  # a trusted test CA, an admitted factory

from device_attestation.merkle import MerkleTree
from device_attestation.sdk import DeviceSigner, Submission

GTIN = "04006381333931"
M = 1_000_000
SPEC = [
    SpecMetric(name="temp_c", min=2 * M, max=8 * M),
    SpecMetric(name="humidity", min=30 * M, max=60 * M),
    SpecMetric(name="weight_g", min=990 * M, max=1010 * M, required=False),
]
DEVICES_PER_SCHEME = 4


@dataclass
class Env:
    chain: Chain
    operator: LocalAccount
    supplier: LocalAccount
    anchor: Any
    lots: LotRegistryClient
    certifier: QualityCertifierClient
    devices: dict[str, list[DeviceSigner]]
    start_ms: int  # the devices' latest activation: readings count from then on


def setup(chain: Chain) -> Env:
    op, factory, _, enterprise = dev_accounts(4)
    supplier = factory  # the lots' supplier owns the devices measuring them (certifyLot counts only those)
    deployment = deploy_suite(chain, op)
    gate_address = chain.deploy("StaticAdmissionGate", op, op.address).contract_address
    assert gate_address is not None
    gate = chain.contract("StaticAdmissionGate", gate_address)
    chain.transact(gate.functions.setAdmitted(supplier.address, OPEN_ACTION, True), op)
    chain.transact(gate.functions.setAdmitted(enterprise.address, SPEC_ACTION, True), op)
    addresses = deploy_supply_chain(chain, op, deployment=deployment, gate_address=gate_address)
    # real enrollments (issue 12.2: the CA's birth attestation, the device's proof of possession) by the
    # consortium's factory, active from their block's time
    consortium = TestConsortium(chain, deployment)
    assert consortium.factory.address == factory.address
    devices: dict[str, list[DeviceSigner]] = {"p256": [], "secp256k1": []}
    for scheme, signers in devices.items():
        for i in range(DEVICES_PER_SCHEME):
            signers.append(consortium.enroll(f"BENCH-{scheme}-{i}", scheme, active_from_ms=0))
    certifier = QualityCertifierClient(chain, addresses["QualityCertifier"])
    certifier.set_spec_owner(op, GTIN, enterprise.address)
    certifier.set_spec(enterprise, GTIN, SPEC, min_samples=5)
    lots = LotRegistryClient(chain, addresses["LotRegistry"])
    return Env(
        chain=chain,
        operator=op,
        supplier=supplier,
        anchor=deployment.contract(chain, "ReadingAnchor"),
        lots=lots,
        certifier=certifier,
        devices=devices,
        start_ms=max(
            DeviceRegistryClient(chain, deployment).device(s.device_id).active_from_ms
            for signers in devices.values()
            for s in signers
        ),
    )


def anchor(env: Env, subs: list[Submission], filler: int, tag: str) -> tuple[int, MerkleTree]:
    digests = [s.digest for s in subs] + [keccak(f"{tag} filler {i}".encode()) for i in range(filler)]
    tree = MerkleTree.build(digests)
    env.chain.transact(env.anchor.functions.anchorBatch(tree.root, len(digests)), env.operator)
    return int(env.chain.call(env.anchor.functions.batchCount())), tree


def measure(env: Env, scheme: str, n: int, filler: int) -> int:
    lot_id = f"LOT-BENCH-{scheme}-{n}"
    env.lots.open_lot(
        env.supplier,
        lot_id=lot_id,
        gtin=GTIN,
        quantity=1000,
        unit="kg",
        produced_from_ms=0,
        produced_to_ms=1,
    )
    signers = env.devices[scheme]
    ts = env.start_ms
    subs = [
        signers[i % len(signers)].sign(
            {"temp_c": 4 + (i % 7) * 0.25, "humidity": 45 - i % 5, "weight_g": 1000 + i % 9},
            ts_ms=ts + i,
            lot_id=lot_id,
        )
        for i in range(n)
    ]
    half = n // 2
    batches = []
    for part, tag in ((subs[:half], "a"), (subs[half:], "b")):
        batch_id, tree = anchor(env, part, filler, f"{lot_id}-{tag}")
        batches.append(batch_readings(batch_id, tree, part))
    result = env.certifier.certify_lot(env.operator, lot_id, batches)
    if not env.certifier.certificate(lot_id).certified:  # pragma: no cover - a benchmark sanity check
        raise SystemExit(f"{lot_id} was not certified: {env.certifier.certificate(lot_id)}")
    return result.gas_used


def signature_check_gas(env: Env, scheme: str) -> int:
    """Gas of one ``ReadingAnchor.checkDeviceSignature`` (a view, cold accounts and slots, less the
    21,000 of a transaction) for a device of ``scheme``: what each reading's check costs at most."""
    signer = env.devices[scheme][0]
    sub = signer.sign({"temp_c": 4}, ts_ms=time.time_ns() // 1_000_000, lot_id="x")
    fn = env.anchor.functions.checkDeviceSignature(
        keccak(signer.device_id.encode()), sub.reading.ts_ms, sub.digest, sub.signature
    )
    return env.chain.estimate_gas(fn, env.operator.address) - 21_000


def lot_operations(env: Env, retailer: LocalAccount) -> dict[str, int]:
    """Gas of the lot and custody steps (one each, on a fresh lot)."""
    gate = env.chain.call(env.lots.contract.functions.admissionGate())
    gate_contract = env.chain.contract("StaticAdmissionGate", gate)
    env.chain.transact(
        gate_contract.functions.setAdmitted(retailer.address, TRANSFER_ACTION, True), env.operator
    )
    out = {}
    out["openLot"] = env.lots.open_lot(
        env.supplier,
        lot_id="LOT-OPS",
        gtin=GTIN,
        quantity=100,
        unit="kg",
        produced_from_ms=0,
        produced_to_ms=1,
    ).gas_used
    out["proposeTransfer"] = env.lots.propose_transfer(env.supplier, "LOT-OPS", retailer.address).gas_used
    out["acceptTransfer"] = env.lots.accept_transfer(retailer, "LOT-OPS").gas_used
    out["splitLot (2 children)"] = env.lots.split_lot(
        retailer, "LOT-OPS", {"LOT-OPS-A": 30, "LOT-OPS-B": 20}
    ).gas_used
    return out


def run(chain: Chain, sizes: list[int], filler: int) -> dict[str, int]:
    env = setup(chain)
    out: dict[str, int] = lot_operations(env, dev_accounts(5)[4])
    for scheme in ("p256", "secp256k1"):
        for n in sizes:
            out[f"{scheme} x{n}"] = measure(env, scheme, n, filler)
        out[f"{scheme} checkDeviceSignature"] = signature_check_gas(env, scheme)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10,50", help="reading counts, comma-separated (default 10,50)")
    parser.add_argument("--filler", type=int, default=100, help="other readings per batch (default 100)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    started = time.monotonic()
    results = {"embedded (py-evm, P-256 in Solidity)": run(Chain.embedded(), sizes, args.filler)}
    with AnvilNode(hardfork="osaka") as node:
        results["anvil --hardfork osaka (EIP-7951)"] = run(Chain.connect(node.url), sizes, args.filler)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0

    chains = list(results)
    print(f"certifyLot gas: 2 batches of n/2 lot readings + {args.filler} others each; 3 metrics a reading")
    print(f"{'':<34}" + "".join(f"{c:>40}" for c in chains))
    for scheme in ("p256", "secp256k1"):
        for n in sizes:
            key = f"{scheme} x{n}"
            cells = "".join(f"{results[c][key]:>24,} ({results[c][key] // n:>7,}/reading)" for c in chains)
            print(f"{'certifyLot ' + scheme + ', ' + str(n) + ' readings':<34}{cells}")
        if len(sizes) >= 2:
            lo, hi = sizes[0], sizes[-1]
            cells = "".join(
                f"{(results[c][f'{scheme} x{hi}'] - results[c][f'{scheme} x{lo}']) // (hi - lo):>40,}"
                for c in chains
            )
            print(f"{'  marginal gas per reading':<34}{cells}")
        key = f"{scheme} checkDeviceSignature"
        cells = "".join(f"{results[c][key]:>40,}" for c in chains)
        print(f"{'  checkDeviceSignature, alone':<34}{cells}")
    for op in ("openLot", "proposeTransfer", "acceptTransfer", "splitLot (2 children)"):
        print(f"{op:<34}" + "".join(f"{results[c][op]:>40,}" for c in chains))
    print(f"({time.monotonic() - started:.0f} s; python {sys.version.split()[0]}, pid {os.getpid()})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
