"""Gas of lineage (issue 15.1): ``LotRegistry.transform`` with 1 input -> 1 output and 3 inputs -> 2
outputs, each input partly or wholly consumed, next to ``openLot`` and a one-child ``splitLot`` for
scale, on both chains.

    .venv/bin/python bench/bench_lineage_gas.py

A transformation opens its outputs as ``openLot`` does (the id string, the custody chain, the events)
and adds, per input, the consumption (remaining, consumed, the ``consumedBy`` index, ``LotConsumed``)
and the stored record (input key and quantity), per output its link (``producedBy``, ``LotProduced``),
and one ``LotTransformed``.
"""

from __future__ import annotations

import sys

from eth_account.signers.local import LocalAccount

from contracts.anvil import AnvilNode
from contracts.chain import Chain, dev_accounts
from contracts.lots import OPEN_ACTION, LotRegistryClient, TransformInput, TransformOutput

GTIN = "04006381333931"
GTIN_FINISHED = "00036000291452"
T0 = 1_764_400_000_000


def _open(lots: LotRegistryClient, party: LocalAccount, lot_id: str, quantity: int = 1000) -> int:
    tx = lots.open_lot(
        party, lot_id=lot_id, gtin=GTIN, quantity=quantity, unit="kg", produced_from_ms=T0, produced_to_ms=T0
    )
    return tx.gas_used


def _out(lot_id: str) -> TransformOutput:
    return TransformOutput(
        lot_id=lot_id, gtin=GTIN_FINISHED, quantity=10, unit="pcs", produced_from_ms=T0, produced_to_ms=T0
    )


def measure(chain: Chain) -> dict[str, int]:
    op, factory = dev_accounts(2)
    gate_address = chain.deploy("StaticAdmissionGate", op, op.address).contract_address
    assert gate_address is not None
    chain.transact(
        chain.contract("StaticAdmissionGate", gate_address).functions.setAdmitted(
            factory.address, OPEN_ACTION, True
        ),
        op,
    )
    address = chain.deploy("LotRegistry", op, op.address, gate_address).contract_address
    assert address is not None
    lots = LotRegistryClient(chain, address)
    out: dict[str, int] = {"openLot (reference)": _open(lots, factory, "REF-OPEN")}
    out["splitLot, 1 child (reference)"] = lots.split_lot(factory, "REF-OPEN", {"REF-CHILD": 10}).gas_used
    for name in ("A", "B", "C", "D", "E", "F", "G", "H"):
        _open(lots, factory, f"IN-{name}")

    def transform(inputs: list[tuple[str, int]], outputs: list[str]) -> int:
        ins = [TransformInput(lot=lot, quantity=q, unit="kg") for lot, q in inputs]
        return lots.transform(factory, ins, [_out(o) for o in outputs]).tx.gas_used

    out["transform 1 -> 1, input partly consumed"] = transform([("IN-A", 300)], ["OUT-1"])
    out["transform 1 -> 1, input partly consumed (its 2nd)"] = transform([("IN-A", 300)], ["OUT-2"])
    out["transform 1 -> 1, input wholly consumed"] = transform([("IN-B", 1000)], ["OUT-3"])
    out["transform 3 -> 2, inputs partly consumed"] = transform(
        [("IN-C", 100), ("IN-D", 200), ("IN-E", 300)], ["OUT-4", "OUT-5"]
    )
    out["transform 3 -> 2, inputs wholly consumed"] = transform(
        [("IN-F", 1000), ("IN-G", 1000), ("IN-H", 1000)], ["OUT-6", "OUT-7"]
    )
    return out


def main() -> int:
    results = {"embedded (py-evm)": measure(Chain.embedded())}
    with AnvilNode(hardfork="osaka") as node:
        results["anvil --hardfork osaka"] = measure(Chain.connect(node.url))
    rows = list(dict.fromkeys(row for r in results.values() for row in r))
    names = list(results)
    width = max(len(r) for r in rows) + 2
    print(f"{'gas':<{width}}" + "".join(f"{n:>26}" for n in names))
    for row in rows:
        print(f"{row:<{width}}" + "".join(f"{results[n][row]:>26,}" for n in names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
