"""``supet demo``: the foundation story on the embedded chain, with nothing to start.

What exists so far (the full demo with ingest, lots, analytics and finance comes
with later issues): deploy the contract suite; create a manufacturer CA and trust
it on chain; two devices (a P-256 secure element and a secp256k1 gateway) get
certificates and enroll with proof of possession; they sign readings; the
readings are checked, batched and anchored; every reading is verified on chain;
a revoked device's later reading is refused.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from contracts.chain import Chain, dev_accounts
from contracts.deploy import deploy_suite
from contracts.errors import ContractRevert
from contracts.registry import DeviceRegistryClient, ReadingAnchorClient, verify_reading_on_chain
from device_attestation.certificates import (
    ca_key_hash,
    create_manufacturer_ca,
    issue_device_certificate,
    make_device_csr,
)
from device_attestation.enrollment import enroll_with_device_key
from device_attestation.keys import DeviceKey, Scheme
from device_attestation.merkle import MerkleTree
from device_attestation.reading import Domain, Reading, reading_digest, reading_struct
from device_attestation.signing import check_reading, sign_digest

console = Console(soft_wrap=True)


def demo(
    rpc: Annotated[
        str,
        typer.Option("--rpc", help="'embedded' (default, nothing to start) or a JSON-RPC URL of a dev node."),
    ] = "embedded",
    readings: Annotated[int, typer.Option("--readings", min=1, max=10_000, help="Readings per device.")] = 50,
) -> None:
    """Run the end-to-end story of what exists so far and print a summary."""
    started = time.monotonic()
    chain = Chain.from_rpc(rpc)
    operator, factory = dev_accounts(2)
    console.rule("[bold]supET Ledger demo")
    deployment = deploy_suite(chain, operator)
    registry = DeviceRegistryClient(chain, deployment)
    anchor = ReadingAnchorClient(chain, deployment)
    console.print(
        f"1. deployed on chain {chain.chain_id} ({rpc}): "
        + ", ".join(f"{k} {v}" for k, v in sorted(deployment.contracts.items()))
    )

    ca_key, ca_cert = create_manufacturer_ca(
        common_name="Demo Sensors Co. Device CA", organization="Demo Sensors Co.", valid_days=365
    )
    registry.trust_ca(operator, ca_key_hash(ca_cert), "Demo Sensors Co. Device CA")
    registry.grant_enroller(operator, factory.address)
    console.print(
        f"2. operator trusted manufacturer CA 0x{ca_key_hash(ca_cert).hex()[:16]}... "
        f"and admitted factory {factory.address}"
    )

    now = dt.datetime.now(dt.UTC)
    devices: dict[str, DeviceKey] = {}
    for device_id, scheme in (("SN-P256-DEMO-1", Scheme.P256), ("GW-K1-DEMO-1", Scheme.SECP256K1)):
        key = DeviceKey.generate(scheme)
        cert = issue_device_certificate(
            ca_key=ca_key, ca_cert=ca_cert, csr=make_device_csr(key, device_id), valid_days=365
        )
        enrolled = enroll_with_device_key(
            registry=registry,
            party=factory,
            certificate=cert,
            ca_certificates=[ca_cert],
            device_key=key,
            now=now,
            active_from_ms=int(now.timestamp() * 1000) - 3_600_000,
        )
        devices[device_id] = key
        console.print(
            f"3. enrolled {device_id} ({scheme}) with certificate + proof of possession, "
            f"tx {enrolled.tx_hash[:12]}..."
        )

    domain = Domain(chain_id=chain.chain_id, verifying_contract=deployment.address("ReadingAnchor"))
    signed = []
    t0 = int(now.timestamp() * 1000) - 600_000
    for device_id, key in devices.items():
        for seq in range(1, readings + 1):
            reading = Reading(
                device_id=device_id,
                seq=seq,
                ts_ms=t0 + seq * 1000,
                lot_id="LOT-DEMO-0001",
                metrics={"temp_c": round(23.0 + 0.01 * seq, 2), "good_units": 100 + seq},
            )
            signature = sign_digest(key, reading_digest(reading, domain))
            public = key.public_key if key.scheme is Scheme.P256 else key.public_key.eth_address
            digest = check_reading(reading, key.scheme, signature, public, domain)
            signed.append((reading, signature, digest))
    console.print(f"4. devices signed {len(signed)} readings; every signature checked (low-S, domain-bound)")

    tree = MerkleTree.build([d for _, _, d in signed])
    result = anchor.anchor_batch(operator, tree.root, len(tree))
    batch_id = anchor.batch_count()
    console.print(
        f"5. anchored batch {batch_id}: root 0x{tree.root.hex()[:16]}..., {len(tree)} readings, "
        f"{result.gas_used:,} gas"
    )

    verified = 0
    for reading, signature, digest in signed[:: max(1, len(signed) // 10)]:
        got = verify_reading_on_chain(
            anchor, reading_struct(reading), signature, batch_id, tree.proof(digest)
        )
        assert got == digest
        verified += 1
    console.print(f"6. verified {verified} sampled readings on chain (inclusion, signature, device active)")

    victim = "GW-K1-DEMO-1"
    cut = signed[len(signed) - readings // 2]
    registry.revoke(factory, victim, cut[0].ts_ms)
    try:
        verify_reading_on_chain(anchor, reading_struct(cut[0]), cut[1], batch_id, tree.proof(cut[2]))
        refused = "NOT refused (unexpected)"
    except ContractRevert as e:
        refused = f"refused: {e.error_name}"
    console.print(f"7. revoked {victim} from {cut[0].ts_ms}; its reading seq {cut[0].seq} is now {refused}")

    table = Table(title="summary")
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_row("chain", f"{rpc} (id {chain.chain_id})")
    table.add_row("devices enrolled", str(len(devices)))
    table.add_row("readings signed and checked", str(len(signed)))
    table.add_row("batches anchored", str(anchor.batch_count()))
    table.add_row("on-chain verifications", str(verified))
    table.add_row("elapsed", f"{time.monotonic() - started:.1f} s")
    console.print(table)
