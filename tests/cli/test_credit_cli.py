"""`supet credit` against a real node (anvil), through ``supet.cli.main``: a bank registers its envelope
key, reads and opens the records sealed for it from the node alone, and verifies a record it holds;
a tampered record fails with the field named."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_utils import keccak

from contracts.anvil import AnvilNode
from contracts.chain import Chain, dev_accounts
from contracts.credit import CreditRegistryClient, model_version
from contracts.credit_bank import seal_for_bank
from contracts.credit_record import CreditOpening, new_salt
from contracts.deploy import deploy_suite
from contracts.deployment import Deployment
from contracts.onboarding import Onboarding
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
        main(["credit", *args])
    except SystemExit as e:
        code = int(e.code or 0)
    out = capsys.readouterr()
    return code, out.out + out.err.replace("\n", "")


def test_bank_registers_reads_and_verifies(
    node: AnvilNode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    chain = Chain.connect(node.url)
    deployment = deploy_suite(chain, ADMIN)
    deployment_file = tmp_path / "deployment.json"
    deployment.save(deployment_file)
    ob = Onboarding(chain, Deployment.load(deployment_file), ADMIN)
    ob.apply_policy()
    oracle, factory, bank = ob.account("oracle"), ob.account("factory"), ob.account("bank-a")
    for party, role in ((oracle, "analytics-oracle"), (factory, "supplier"), (bank, "bank")):
        ob.admit(party, role)
    credit = CreditRegistryClient.from_deployment(chain, deployment)
    key = tmp_path / "bank.key"
    key.write_text("0x" + bytes(bank.key).hex() + "\n")
    monkeypatch.delenv("SUPET_PARTY_KEY", raising=False)
    common = ["--rpc", node.url, "--deployment", str(deployment_file)]

    code, out = run(capsys, "register-key", *common, "--key-file", str(key))
    assert code == 0 and f"registered the envelope key of {bank.address}" in out, out
    assert credit.envelope_key_of(bank.address) is not None
    code, out = run(capsys, "records", *common, "--key-file", str(key))
    assert code == 0 and "no credit record is sealed" in out, out

    now = int(chain.block()["timestamp"])
    grant = credit.grant_consent(factory, bank.address, expires_at=now + 30 * 86_400)
    o = CreditOpening(
        factory=factory.address,
        oracle=oracle.address,
        grade=6,
        pd_ppm=61_250,
        limit=300_000_00,
        currency="CNY",
        reasons=("Yield of 91% is low (costs 22 points)",),
        valid_until=now + 90 * 86_400,
        model_version=model_version("scorecard-2026.11"),
        analytics_commitment=keccak(b"assessment"),
        salt=new_salt(),
    )
    credit.publish_record(
        oracle,
        factory.address,
        record_commitment=o.commitment(),
        valid_until=o.valid_until,
        model_version=o.model_version,
        analytics_commitment=o.analytics_commitment,
        envelopes=[seal_for_bank(credit, o, grant.opening)],
    )

    code, out = run(capsys, "records", *common, "--key-file", str(key))
    assert code == 0 and "ok " in out and "grade S6" in out and "300,000.00 CNY" in out, out
    code, out = run(capsys, "records", *common, "--key-file", str(key), "--json")
    (got,) = json.loads(out)
    assert got["problem"] is None and CreditOpening.from_json_obj(got["opening"]) == o
    # by the consent ids of the openings the bank holds, as GET /v1/bank/factories serves them
    consents = tmp_path / "factories.json"
    consents.write_text(json.dumps({"factories": [{"consents": [grant.opening.to_json_obj()]}]}))
    code, out = run(capsys, "records", *common, "--key-file", str(key), "--consents", str(consents), "--json")
    (by_id,) = json.loads(out)
    assert code == 0 and by_id == got, out
    # an opening of another bank's consent is refused, naming it
    other = ob.account("bank-b")
    theirs = credit.grant_consent(factory, other.address, expires_at=now + 86_400).opening
    consents.write_text(json.dumps([theirs.to_json_obj()]))
    code, out = run(capsys, "records", *common, "--key-file", str(key), "--consents", str(consents))
    assert code == 1 and "credit.consent.invalid" in out and f"is to {other.address}" in out, out

    held = tmp_path / "record.json"
    held.write_text(json.dumps({"current": {"opening": got["opening"]}}))  # as the service serves it
    code, out = run(capsys, "verify", str(held), *common)
    assert code == 0 and "VERIFIED" in out, out

    tampered = {**got["opening"], "grade": 2}
    held.write_text(json.dumps(tampered))
    code, out = run(capsys, "verify", str(held), *common, "--key-file", str(key))
    assert code == 1 and "credit.record.mismatch" in out and "grade differs" in out, out
    code, out = run(capsys, "verify", str(held), *common)
    assert code == 1 and "record_commitment differs" in out, out


def test_rerate_publishes_a_superseding_record_once(
    node: AnvilNode, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`supet credit rerate`, as the oracle runs it against a node and the ledger's database: a worse
    profile stored since the record publishes a superseding record with its reason; a second run, on the
    same data, publishes nothing."""
    from profiles import store_sample_profile

    from ledger_service.config import Settings
    from ledger_service.credit_desk.desk import desk_of
    from ledger_service.service import LedgerService

    chain = Chain.connect(node.url)
    deployment = deploy_suite(chain, ADMIN)
    deployment_file = tmp_path / "deployment.json"
    deployment.save(deployment_file)
    ob = Onboarding(chain, Deployment.load(deployment_file), ADMIN)
    ob.apply_policy()
    oracle, factory = ob.account("oracle"), ob.account("factory")
    ob.admit(oracle, "analytics-oracle")
    ob.admit(factory, "supplier")
    database = f"sqlite:///{tmp_path / 'ledger.db'}"
    settings = Settings(database_url=database, verify_workers=0, anchoring=False, registry_refresh_seconds=0)
    service = LedgerService.build(settings, chain=chain, deployment=deployment)
    try:
        good = store_sample_profile(service.engine, factory.address, days=30, delivered_units=23_500.0)
        desk_of(service).publish(oracle, factory.address, good, price=12.5, valid_days=90)
        store_sample_profile(
            service.engine,
            factory.address,
            days=30,
            delivered_units=23_500.0,
            first_pass_yield=0.80,
            oee=0.52,
        )
    finally:
        service.stop()
    key = tmp_path / "oracle.key"
    key.write_text("0x" + bytes(oracle.key).hex() + "\n")
    common = ["--rpc", node.url, "--deployment", str(deployment_file), "--database", database]
    common += ["--key-file", str(key)]
    credit = CreditRegistryClient.from_deployment(chain, deployment)
    assert credit.record_count(factory.address) == 1

    code, out = run(capsys, "rerate", *common, "--json")
    assert code == 0, out
    (outcome,) = json.loads(out)["outcomes"]
    assert outcome["action"] == "published" and "First-pass yield 96.0% -> 80.0%" in outcome["detail"], out
    assert credit.record_count(factory.address) == 2

    code, out = run(capsys, "rerate", *common)
    assert code == 0 and "0 records published" in out, out
    assert credit.record_count(factory.address) == 2
