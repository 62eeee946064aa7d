"""`supet credit finance` against a real node (anvil): a bank finances an offered part with the oracle's
credit-line statement saved from the ledger (issue 15); a statement for another part is refused before
anything is sent."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from backing import suite_deliveries

from contracts.anvil import AnvilNode
from contracts.chain import Chain, dev_accounts
from contracts.credit import CreditRegistryClient
from contracts.deploy import deploy_suite
from contracts.deployment import Deployment
from contracts.onboarding import Onboarding
from contracts.receivables import PartState, ReceivablesClient, StablecoinClient, receivable_reference
from supet.cli import main
from tests.helpers.credit_lines import attest, publish_records

ADMIN = dev_accounts(1)[0]

pytestmark = pytest.mark.anvil


@pytest.fixture
def node(anvil_node: AnvilNode) -> Iterator[AnvilNode]:
    snapshot = anvil_node.snapshot()
    yield anvil_node
    anvil_node.revert(snapshot)


def test_bank_finances_with_the_statement(
    node: AnvilNode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    chain = Chain.connect(node.url)
    deployment = deploy_suite(chain, ADMIN)
    deployment_file = tmp_path / "deployment.json"
    deployment.save(deployment_file)
    ob = Onboarding(chain, Deployment.load(deployment_file), ADMIN)
    ob.apply_policy()
    core, factory, bank, oracle = (ob.account(n) for n in ("core", "factory", "bank-a", "oracle"))
    for party, role in (
        (core, "core-enterprise"),
        (factory, "supplier"),
        (bank, "bank"),
        (oracle, "analytics-oracle"),
    ):
        ob.admit(party, role)
    rc = ReceivablesClient.from_deployment(chain, deployment)
    coin = StablecoinClient.from_deployment(chain, deployment)
    publish_records(
        CreditRegistryClient.from_deployment(chain, deployment),
        oracle,
        [factory.address],
        valid_for=86_400 * 30,
    )
    d = suite_deliveries(chain, deployment, ADMIN, core, factory)  # certified deliveries back them
    parts = []
    for n in (1, 2):
        rid, _ = rc.confirm(
            core,
            supplier=factory.address,
            face_value=100_000,
            due_date=int(chain.block()["timestamp"]) + 86_400 * 20,
            reference=receivable_reference(f"INV-CLI-{n}"),
            order_id=d.order(f"PO-CLI-{n}"),
            lots=[d.lot(f"LOT-CLI-{n}")],
        )
        parts.append(rc.receivable(rid).root_part)
        rc.offer(factory, parts[-1], bank=bank.address, min_price=1)
    coin.mint(ADMIN, bank.address, 200_000)
    coin.approve(bank, rc.address, 200_000)
    line = tmp_path / "line.json"
    line.write_text(json.dumps({"attestation": attest(rc, oracle, bank.address, parts[0]).to_json_obj()}))
    key = tmp_path / "bank.key"
    key.write_text("0x" + bytes(bank.key).hex() + "\n")
    monkeypatch.delenv("SUPET_PARTY_KEY", raising=False)
    common = [
        "credit",
        "finance",
        "--rpc",
        node.url,
        "--deployment",
        str(deployment_file),
        "--key-file",
        str(key),
    ]

    def run(*args: str) -> tuple[int, str]:
        code = 0
        try:
            main([*common, *args])
        except SystemExit as e:
            code = int(e.code or 0)
        out = capsys.readouterr()
        return code, out.out + out.err.replace("\n", "")

    code, out = run(str(parts[1]), "--price", "95000", "--line", str(line))
    assert code != 0 and f"not {bank.address} and {parts[1]}" in out, out
    assert rc.part(parts[1]).state is PartState.OFFERED
    code, out = run(str(parts[0]), "--price", "95000", "--line", str(line))
    assert code == 0 and "outstanding financed amount is now 1,000.00" in out, out
    assert rc.part(parts[0]).state is PartState.FINANCED and rc.outstanding_of(factory.address) == 100_000
