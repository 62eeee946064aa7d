"""Gas of anchorBatch and of verifyReading per signature scheme, and of the finance contracts'
writes (orders, credit records, consent, receivables), on both chains.

    .venv/bin/python bench/bench_gas.py

Uses the Reading v1 vectors (a batch of 6: proofs of 2-3 siblings). The embedded
chain (py-evm) has no P-256 precompile, so OpenZeppelin's P256 falls back to
Solidity there; anvil with --hardfork osaka has the EIP-7951 precompile.
verifyReading is a view: its gas is what eth_estimateGas reports for a call.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from eth_utils import keccak

from contracts.anvil import AnvilNode
from contracts.chain import Chain, dev_accounts
from contracts.deploy import deploy_suite

VECTORS = json.loads((Path(__file__).parent.parent / "tests/vectors/reading-v1-vectors.json").read_text())


def b32(h: str) -> bytes:
    return bytes.fromhex(h[2:])


def struct_of(v: dict[str, Any]) -> tuple[Any, ...]:
    s = v["struct"]
    return (
        b32(s["deviceId"]),
        s["seq"],
        s["timestamp"],
        b32(s["lotId"]),
        [b32(m) for m in s["metrics"]],
        s["values"],
    )


def measure(chain: Chain) -> dict[str, int]:
    accounts = dev_accounts(3)
    op, factory = accounts[0], accounts[1]
    dep = deploy_suite(chain, op)
    registry, anchor = dep.contract(chain, "DeviceRegistry"), dep.contract(chain, "ReadingAnchor")
    ca = keccak(b"bench CA")
    chain.transact(registry.functions.trustCA(ca, "bench"), op)
    chain.transact(registry.functions.grantRole(keccak(b"supet.role.enroller"), factory.address), op)
    out: dict[str, int] = {}
    for d in VECTORS["devices"]:
        did = keccak(d["device_id"].encode())
        if d["scheme"] == "p256":
            r = chain.transact(
                registry.functions.enrollP256(
                    did, b32(d["public_key_x"]), b32(d["public_key_y"]), keccak(b"fp1"), ca, 0
                ),
                factory,
            )
        else:
            r = chain.transact(
                registry.functions.enrollSecp256k1(did, d["address"], keccak(b"fp2"), ca, 0), factory
            )
        out[f"enroll ({d['scheme']})"] = r.gas_used
    first = chain.transact(anchor.functions.anchorBatch(b32(VECTORS["batch_root"]), 6), op)
    second = chain.transact(anchor.functions.anchorBatch(keccak(b"another root"), 10_000), op)
    out["anchorBatch (first batch)"] = first.gas_used
    out["anchorBatch (later batch)"] = second.gas_used
    for v in VECTORS["readings"][:2]:
        fn = anchor.functions.verifyReading(
            struct_of(v), b32(v["signature"]), 1, [b32(p) for p in v["proof"]]
        )
        out[f"verifyReading ({v['scheme']}, proof of {len(v['proof'])})"] = chain.estimate_gas(fn, op.address)
    out.update(measure_finance(chain, dep))
    return out


def measure_finance(chain: Chain, dep: Any) -> dict[str, int]:
    """The finance contracts' writes, against a test gate that admits the parties."""
    from contracts.credit import (
        CONSENT_ACTION,
        PUBLISH_ACTION,
        QUERY_ACTION,
        deploy_credit_registry,
        model_version,
    )
    from contracts.orders import PLACE_ACTION, SUPPLY_ACTION, deploy_purchase_orders, order_id
    from contracts.receivables import (
        CREATE_ACTION,
        FINANCE_ACTION,
        HOLD_ACTION,
        ReceivablesClient,
        StablecoinClient,
        deploy_finance_settlement,
    )

    op, buyer, supplier, bank = dev_accounts(6)[2:6]
    gate_address = chain.deploy("StaticAdmissionGate", op, op.address).contract_address
    assert gate_address is not None
    gate = chain.contract("StaticAdmissionGate", gate_address)
    for party, action in [
        (buyer, PLACE_ACTION),
        (supplier, SUPPLY_ACTION),
        (op, PUBLISH_ACTION),
        (supplier, CONSENT_ACTION),
        (bank, QUERY_ACTION),
        (buyer, CREATE_ACTION),
        (supplier, HOLD_ACTION),
        (bank, FINANCE_ACTION),
    ]:
        chain.transact(gate.functions.setAdmitted(party.address, action, True), op)
    out: dict[str, int] = {}
    orders = chain.contract(
        "PurchaseOrders", deploy_purchase_orders(chain, op, deployment=dep, gate_address=gate_address)
    )
    r = chain.transact(
        orders.functions.placeOrder(keccak(b"PO-1"), supplier.address, 4006381333931, 500, 20_600), buyer
    )
    out["placeOrder"] = r.gas_used
    out["acceptOrder"] = chain.transact(
        orders.functions.acceptOrder(order_id(buyer.address, keccak(b"PO-1"))), supplier
    ).gas_used
    credit = chain.contract(
        "CreditRegistry", deploy_credit_registry(chain, op, deployment=dep, gate_address=gate_address)
    )
    until = int(chain.block()["timestamp"]) + 90 * 86_400
    fn = credit.functions.publishRecord(
        supplier.address, 3, 12_500, 10**8, b"CNY", until, model_version("v1"), keccak(b"result")
    )
    out["publishRecord (first)"] = chain.transact(fn, op).gas_used
    out["publishRecord (superseding)"] = chain.transact(fn, op).gas_used
    out["grantConsent"] = chain.transact(
        credit.functions.grantConsent(bank.address, until), supplier
    ).gas_used
    out["anchorAccessLog"] = chain.transact(
        credit.functions.anchorAccessLog(keccak(b"log"), 100, 1, 2), op
    ).gas_used
    addrs = deploy_finance_settlement(chain, op, deployment=dep, gate_address=gate_address)
    rec, coin = (
        ReceivablesClient(chain, addrs["Receivables"]),
        StablecoinClient(chain, addrs["TestStablecoin"]),
    )
    rid, r = rec.confirm(
        buyer, supplier=supplier.address, face_value=10**6, due_date=until, reference=keccak(b"INV")
    )
    out["Receivables.confirm"] = r.gas_used
    kids, r = rec.split(supplier, rec.receivable(rid).root_part, [250_000] * 4, [supplier.address] * 4)
    out["Receivables.split (4 children)"] = r.gas_used
    out["Receivables.offer"] = rec.offer(supplier, kids[0], bank=bank.address, min_price=240_000).gas_used
    coin.mint(op, bank.address, 10**6)
    coin.approve(bank, rec.address, 10**6)
    out["Receivables.finance"] = rec.finance(bank, kids[0], 240_000).gas_used
    coin.mint(op, buyer.address, 10**6)
    coin.approve(buyer, rec.address, 10**6)
    out["Receivables.repay (4 leaves)"] = rec.repay(buyer, rid).gas_used
    return out


def main() -> int:
    results = {"embedded (py-evm, no P-256 precompile)": measure(Chain.embedded())}
    with AnvilNode(hardfork="osaka") as node:
        results["anvil --hardfork osaka (EIP-7951 precompile)"] = measure(Chain.connect(node.url))
    rows = list(next(iter(results.values())))
    names = list(results)
    width = max(len(r) for r in rows) + 2
    print(f"{'gas':<{width}}" + "".join(f"{n:>48}" for n in names))
    for row in rows:
        print(f"{row:<{width}}" + "".join(f"{results[n][row]:>48,}" for n in names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
