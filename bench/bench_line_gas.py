"""Gas of the credit-line check per financing (issue 15, Deliver 4): the same scenario (confirm a
receivable backed by an accepted order and one certified delivered lot, split into 4, offer, finance,
repay the 4 leaves) on the Receivables before the line (the committed artifact of ``BEFORE``, loaded
from git: by default main with the backing, before the line was merged) and on the current one, whose
``finance`` takes the seller's oracle's EIP-712 statement and charges the line, and whose ``repay``
frees it; on both chains. Also the runtime size of both (EIP-170: at most 24,576 bytes).

    PYTHONPATH=. .venv/bin/python bench/bench_line_gas.py [BEFORE]     # BEFORE: a commit, default 33a6694

What the check costs in ``finance``: two calls to the CreditRegistry (``recordCount``, ``recordAt``),
the EIP-712 digest and ``ecrecover`` (SignatureChecker), the statement's calldata (4 words and a 65-byte
signature), the outstanding amount and the part's line (two new storage slots) and ``LineCharged``.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench_gas import certified_delivery, enroll_fresh_devices
from eth_account.signers.local import LocalAccount
from eth_utils import keccak

from contracts.anvil import AnvilNode
from contracts.chain import Chain, dev_accounts
from contracts.credit import PUBLISH_ACTION, CreditRegistryClient
from contracts.deploy import deploy_suite
from contracts.orders import (
    PLACE_ACTION,
    SUPPLY_ACTION,
    PurchaseOrdersClient,
    deploy_purchase_orders,
    due_day,
)
from contracts.receivables import (
    CREATE_ACTION,
    FINANCE_ACTION,
    HOLD_ACTION,
    ReceivablesClient,
    StablecoinClient,
)
from device_attestation.reading import Domain

ROOT = Path(__file__).resolve().parent.parent
ARTIFACT = "contracts/artifacts/Receivables.json"
GTIN = 4006381333931  # the GTIN of bench_gas.certified_delivery's lot


def _artifact(commit: str | None) -> dict[str, Any]:
    if commit is None:
        return dict(json.loads((ROOT / ARTIFACT).read_text()))
    text = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{commit}:{ARTIFACT}"], check=True, capture_output=True, text=True
    ).stdout
    return dict(json.loads(text))


def runtime_size(artifact: dict[str, Any]) -> int:
    return len(bytes.fromhex(str(artifact["deployedBytecode"]).removeprefix("0x")))


def _deploy(chain: Chain, op: LocalAccount, artifact: dict[str, Any], *args: Any) -> str:
    factory = chain.w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    result = chain.transact(factory.constructor(*args), op)
    assert result.contract_address is not None
    return str(result.contract_address)


def backing_device(chain: Chain) -> tuple[Any, tuple[str, Any, Domain]]:
    """The suite (its ReadingAnchor and DeviceRegistry) and an enrolled secp256k1 QC device."""
    admin, factory = dev_accounts(2)
    dep = deploy_suite(chain, admin)
    _, keys = enroll_fresh_devices(chain, dep, admin, factory)
    device_id, key = next((d, k) for d, k in keys.items() if k.scheme == "secp256k1")
    anchor = dep.contract(chain, "ReadingAnchor").address
    return dep, (device_id, key, Domain(chain_id=chain.chain_id, verifying_contract=anchor))


def scenario(
    chain: Chain, before: dict[str, Any], backing: tuple[Any, tuple[str, Any, Domain]], *, with_line: bool
) -> dict[str, int]:
    op, buyer, supplier, bank = dev_accounts(6)[2:6]
    dep, device = backing
    gate_address = chain.deploy("StaticAdmissionGate", op, op.address).contract_address
    gate = chain.contract("StaticAdmissionGate", str(gate_address))
    for party, action in [
        (buyer, CREATE_ACTION),
        (buyer, PLACE_ACTION),
        (supplier, SUPPLY_ACTION),
        (supplier, HOLD_ACTION),
        (bank, FINANCE_ACTION),
        (op, PUBLISH_ACTION),
    ]:
        chain.transact(gate.functions.setAdmitted(party.address, action, True), op)
    # issue 15.3: an accepted order and a certified lot delivered to the buyer back the receivable
    supply, lot = certified_delivery(
        chain, dep, gate, (op, buyer, supplier), device, seq=2_000 if with_line else 1_000
    )
    orders = PurchaseOrdersClient(
        chain, deploy_purchase_orders(chain, op, deployment=dep, gate_address=gate.address)
    )
    placed = orders.place(
        buyer,
        "PO-LINE",
        supplier=supplier.address,
        gtin=GTIN,
        quantity=500,
        unit_price=2_000,
        due_day=due_day(dt.date.today() + dt.timedelta(days=30)),
    )
    orders.accept(supplier, placed.order_id, placed.terms)
    sources = (orders.address, supply["LotRegistry"], supply["QualityCertifier"])
    coin = StablecoinClient(chain, str(chain.deploy("TestStablecoin", op, op.address).contract_address))
    until = int(chain.block()["timestamp"]) + 90 * 86_400
    if with_line:
        credit = CreditRegistryClient(
            chain,
            str(chain.deploy("CreditRegistry", op, op.address, gate.address, op.address).contract_address),
        )
        credit.publish_record(
            op,
            supplier.address,
            record_commitment=secrets.token_bytes(32),
            valid_until=until,
            model_version=secrets.token_bytes(32),
            analytics_commitment=secrets.token_bytes(32),
        )
        address = str(
            chain.deploy(
                "Receivables", op, op.address, gate.address, coin.address, *sources, credit.address
            ).contract_address
        )
    else:
        address = _deploy(chain, op, before, op.address, gate.address, coin.address, *sources)
    rec = ReceivablesClient(chain, address)
    if not with_line:  # the old finance(partId, price); the other calls have the same ABI
        rec.contract = chain.w3.eth.contract(address=rec.contract.address, abi=before["abi"])
    out: dict[str, int] = {}
    rid, _ = rec.confirm(
        buyer,
        supplier=supplier.address,
        face_value=10**6,
        due_date=until,
        reference=keccak(b"INV"),
        order_id=placed.order_id,
        lots=[lot],
    )
    kids, _ = rec.split(supplier, rec.receivable(rid).root_part, [250_000] * 4, [supplier.address] * 4)
    coin.mint(op, bank.address, 10**6)
    coin.approve(bank, rec.address, 10**6)
    for n, kid in enumerate(kids[:2]):
        rec.offer(supplier, kid, bank=bank.address, min_price=240_000)
        label = (
            "finance (first of the seller)" if n == 0 else "finance (second: the line's slot warm-started)"
        )
        if with_line:
            line = rec.credit_line(bank.address, kid, deadline=until - 1).sign(op, rec.line_domain())
            out[label] = rec.finance(bank, kid, 240_000, line).gas_used
        else:
            fn = rec.contract.functions.finance(kid, 240_000)
            out[label] = chain.transact(fn, bank).gas_used
    coin.mint(op, buyer.address, 10**6)
    coin.approve(buyer, rec.address, 10**6)
    out["repay (4 leaves, 2 financed)"] = rec.repay(buyer, rid).gas_used
    return out


def measure(chain: Chain, before: dict[str, Any]) -> dict[str, tuple[int, int]]:
    backing = backing_device(chain)
    old = scenario(chain, before, backing, with_line=False)
    new = scenario(chain, before, backing, with_line=True)
    return {k: (old[k], new[k]) for k in old}


def main() -> int:
    commit = sys.argv[1] if len(sys.argv) > 1 else "33a6694"
    before, after = _artifact(commit), _artifact(None)
    print(
        f"Receivables runtime size: {runtime_size(before):,} bytes at {commit} -> "
        f"{runtime_size(after):,} bytes now (EIP-170 limit 24,576)"
    )
    results = {"embedded (py-evm)": measure(Chain.embedded(), before)}
    with AnvilNode(hardfork="osaka") as node:
        results["anvil --hardfork osaka"] = measure(Chain.connect(node.url), before)
    for where, rows in results.items():
        print(f"\n{where}")
        for k, (old, new) in rows.items():
            print(f"  {k:<50} {old:>9,} -> {new:>9,}  ({new - old:+,})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
