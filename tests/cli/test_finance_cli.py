"""`supet finance check RECEIVABLE` against a real node (anvil), through ``supet.cli.main``: the backing
package (order -> lots -> custody -> quality -> confirmation -> value) passes step by step for a receivable
backed by certified deliveries and the order's opening; each failing step is named and exits 1 (no
opening, a face value above delivered quantity x unit price, a lot rejected after confirmation, an
unknown receivable). The delivered quantity leaves out what the supplier split off before delivery."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from backing import suite_deliveries

from contracts.anvil import AnvilNode
from contracts.chain import Chain, dev_accounts
from contracts.deploy import deploy_suite
from contracts.lots import lot_key
from contracts.onboarding import Onboarding
from contracts.order_terms import write_openings
from contracts.receivables import ReceivablesClient, receivable_reference
from supet.cli import main

ADMIN = dev_accounts(1)[0]

pytestmark = pytest.mark.anvil


@pytest.fixture
def node(anvil_node: AnvilNode) -> Iterator[AnvilNode]:
    snapshot = anvil_node.snapshot()
    yield anvil_node
    anvil_node.revert(snapshot)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = 0
    try:
        main(["finance", *args])
    except SystemExit as e:
        code = int(e.code or 0)
    out = capsys.readouterr()
    return code, out.out + out.err


def test_bank_checks_the_backing_package(
    node: AnvilNode, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chain = Chain.connect(node.url)
    deployment = deploy_suite(chain, ADMIN)
    deployment_file = tmp_path / "deployment.json"
    deployment.save(deployment_file)
    ob = Onboarding(chain, deployment, ADMIN)
    ob.apply_policy()
    core, factory = ob.account("core"), ob.account("factory")
    ob.admit(core, "core-enterprise")
    ob.admit(factory, "supplier")
    d = suite_deliveries(chain, deployment, ADMIN, core, factory)
    order = d.order("PO-CHECK", quantity=1_000, unit_price=250)
    # the supplier splits 100 off the first lot before delivering it: 400 of its 500 reach the buyer
    d.lots.open_lot(
        factory, lot_id="LOT-CK1", gtin=d.gtin, quantity=500, unit="pcs", produced_from_ms=0, produced_to_ms=1
    )
    first = lot_key("LOT-CK1", factory.address)
    d.lots.split_lot(factory, first, {"LOT-CK1-KEPT": 100})
    d.lots.propose_transfer(factory, first, core.address)
    d.lots.accept_transfer(core, first)
    d.judge(first, "LOT-CK1", good=True)
    second = d.lot("LOT-CK2", quantity=300)
    rc = ReceivablesClient.from_deployment(chain, deployment)
    due = int(chain.block()["timestamp"]) + 60 * 86_400

    def confirm(face: int, ref: str, lots: list[bytes]) -> int:
        rid, _ = rc.confirm(
            core,
            supplier=factory.address,
            face_value=face,
            due_date=due,
            reference=receivable_reference(ref),
            order_id=order,
            lots=lots,
        )
        return rid

    rid = confirm(700 * 250, "INV-CK-1", [first, second])  # exactly (400 + 300) x 250
    terms = tmp_path / "terms.json"
    write_openings(terms, d.terms.values())
    common = ["--rpc", node.url, "--deployment", str(deployment_file)]

    code, out = run(capsys, "check", str(rid), *common, "--order-terms", str(terms))
    assert code == 0, out
    for step in ("receivable", "order", "lots", "custody", "quality", "confirmation", "value"):
        assert f"PASS  {step}" in out, out
    assert "175000 <= 700 delivered x unit price 250" in out and "backed: every step" in out

    code, out = run(capsys, "check", str(rid), *common, "--json")
    report = json.loads(out)
    assert code == 1 and not report["ok"]
    assert [s["step"] for s in report["steps"] if not s["ok"]] == ["value"]
    assert "no order-terms opening" in report["steps"][-1]["detail"]

    # a receivable worth more than its lots delivered: the chain cannot see it, the check does
    third = d.lot("LOT-CK3", quantity=10)
    inflated = confirm(10 * 250 + 1, "INV-CK-2", [third])
    code, out = run(capsys, "check", str(inflated), *common, "--order-terms", str(terms))
    assert code == 1 and "FAIL  value" in out and "exceeds 10 delivered x 250 = 2500" in out, out

    # a lot rejected after confirmation: quality and confirmation fail
    d.judge(second, "LOT-CK2", good=False)
    code, out = run(capsys, "check", str(rid), *common, "--order-terms", str(terms))
    assert code == 1 and "FAIL  quality" in out and "FAIL  confirmation" in out and "NOT backed" in out, out

    code, out = run(capsys, "check", "99", *common)
    assert code == 1 and "FAIL  receivable" in out and "ReceivablesUnknownReceivable" in out, out
