"""`supet consortium apply` and `show` against a real node (anvil), through ``supet.cli.main``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from contracts.anvil import AnvilNode
from contracts.chain import Chain, dev_accounts
from contracts.deploy import deploy_suite
from contracts.deployment import Deployment
from contracts.participant_ids import ACTIONS, PARTY_ROLES
from contracts.participants import ParticipantRegistryClient
from supet.cli import main

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "consortium-policy.example.json"
ADMIN, SUPPLIER = dev_accounts(2)

pytestmark = pytest.mark.anvil


@pytest.fixture
def node(anvil_node: AnvilNode) -> Iterator[AnvilNode]:
    snapshot = anvil_node.snapshot()
    yield anvil_node
    anvil_node.revert(snapshot)


@pytest.fixture
def deployment_file(node: AnvilNode, tmp_path: Path) -> Path:
    path = tmp_path / "deployment.json"
    deploy_suite(Chain.connect(node.url), ADMIN).save(path)
    return path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = 0
    try:
        main(["consortium", *args])
    except SystemExit as e:
        code = int(e.code or 0)
    out = capsys.readouterr()
    return code, out.out + out.err.replace("\n", "")


def test_apply_and_show(
    node: AnvilNode,
    deployment_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    common = ["--rpc", node.url, "--deployment", str(deployment_file)]
    key = tmp_path / "admin.key"
    key.write_text("0x" + bytes(ADMIN.key).hex() + "\n")
    monkeypatch.delenv("SUPET_PARTY_KEY", raising=False)
    chain = Chain.connect(node.url)
    reg = ParticipantRegistryClient(chain, Deployment.load(deployment_file))

    code, out = run(capsys, "show", *common)
    assert code == 0, out
    assert "roles: none defined" in out and "DeviceRegistry: none (roles only)" in out
    assert "LotRegistry: ParticipantRegistry" in out

    # dry run: the steps, nothing sent
    block = chain.block_number()
    code, out = run(capsys, "apply", "--policy", str(EXAMPLE), *common, "--dry-run")
    assert code == 0, out
    assert "would: role supplier: requires [business-licence, iso-9001], quorum 0" in out
    steps = 1 + 3 + 11 + len(json.loads(EXAMPLE.read_text())["actions"]) + 1  # members, issuers, roles, ...
    assert f"{steps} step(s) to apply" in out and chain.block_number() == block

    code, out = run(capsys, "apply", "--policy", str(EXAMPLE), *common, "--key-file", str(key))
    assert code == 0, out
    assert "action supet.receivable.finance: allowed to [bank] (tx 0x" in out
    assert "DeviceRegistry: admission gate no gate (roles only) -> ParticipantRegistry" in out
    assert f"applied {steps} step(s)" in out
    assert reg.action_roles(ACTIONS["supet.lot.open"]) == [PARTY_ROLES["supplier"]]

    # again: nothing to do, no transaction
    block = chain.block_number()
    code, out = run(capsys, "apply", "--policy", str(EXAMPLE), *common, "--key-file", str(key))
    assert code == 0, out
    assert "nothing to do: the policy is applied already" in out and chain.block_number() == block

    # a new member after the first ones is a proposal the members decide (issue 12.12), listed until then
    grown = json.loads(EXAMPLE.read_text())
    grown["members"].append(SUPPLIER.address)
    grown_file = tmp_path / "grown.json"
    grown_file.write_text(json.dumps(grown))
    code, out = run(capsys, "apply", "--policy", str(grown_file), *common, "--key-file", str(key))
    assert code == 0, out
    assert f"propose to admit consortium member {SUPPLIER.address}" in out
    waiting = f"waiting for the members: proposal 1: admit {SUPPLIER.address} has 0 approval(s)"
    assert waiting in out and "supet party member approve 1" in out
    assert not reg.is_member(SUPPLIER.address)
    code, out = run(capsys, "apply", "--policy", str(grown_file), *common, "--key-file", str(key))
    assert code == 0 and waiting in out and "nothing to do" not in out, out

    code, out = run(capsys, "show", *common)
    assert code == 0, out
    assert "supplier: business-licence, iso-9001; quorum 0" in out
    assert "bank: business-licence, banking-licence; quorum 1" in out
    transfer = "supplier, core-enterprise, distributor, logistics, warehouse, marketplace"
    assert f"supet.lot.transfer: {transfer}" in out
    assert "iso-9001: 0x14dC79964da2C08b23698B3D3cc7Ca32193d9955" in out
    assert "DeviceRegistry: ParticipantRegistry" in out
    code, out = run(capsys, "show", *common, "--json")
    assert code == 0, out
    shown = json.loads(out)
    example = json.loads(EXAMPLE.read_text())
    assert shown["roles"] == example["roles"] and shown["actions"] == example["actions"]
    assert shown["members"] == example["members"]


def test_apply_refusals(
    node: AnvilNode,
    deployment_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    common = ["--rpc", node.url, "--deployment", str(deployment_file)]
    chain = Chain.connect(node.url)
    block = chain.block_number()
    data = json.loads(EXAMPLE.read_text())
    data["actions"]["supet.spec.set"] = ["core-enterprise", "regulator"]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    monkeypatch.setenv("SUPET_PARTY_KEY", "0x" + bytes(ADMIN.key).hex())
    code, out = run(capsys, "apply", "--policy", str(bad), *common)
    assert code == 1, out
    assert "(consortium.policy)" in out
    assert "action supet.spec.set allows role 'regulator', which the policy does not define" in out
    # not the admin: refused before any transaction
    monkeypatch.setenv("SUPET_PARTY_KEY", "0x" + bytes(SUPPLIER.key).hex())
    code, out = run(capsys, "apply", "--policy", str(EXAMPLE), *common)
    assert code == 1, out
    assert "lacks the consortium admin role of ParticipantRegistry" in out
    code, out = run(capsys, "apply", "--policy", str(tmp_path / "missing.json"), *common)
    assert code == 1 and "cannot read the policy file" in out
    assert chain.block_number() == block


def test_votes_the_admin_alone_cannot_pass(
    node: AnvilNode,
    deployment_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A policy that lowers a quorum or adds a role to an action whose roles were set only opens the
    proposals (issue 12.12) and says so; the members pass them with approve-quorum / approve-action-role,
    or open their own with propose-quorum / propose-action-role."""
    common = ["--rpc", node.url, "--deployment", str(deployment_file)]
    chain = Chain.connect(node.url)
    reg = ParticipantRegistryClient(chain, Deployment.load(deployment_file))
    accounts = dev_accounts(5)
    m3, m4, outsider = accounts[3], accounts[4], accounts[2]
    monkeypatch.setenv("SUPET_PARTY_KEY", "0x" + bytes(ADMIN.key).hex())
    code, out = run(capsys, "apply", "--policy", str(EXAMPLE), *common)
    assert code == 0, out
    finance, bank, auditor = ACTIONS["supet.receivable.finance"], PARTY_ROLES["bank"], PARTY_ROLES["auditor"]

    # the attack through the policy file: auditor (quorum 0) may finance, and bank's quorum is 0
    data = json.loads(EXAMPLE.read_text())
    data["actions"]["supet.receivable.finance"] = ["bank", "auditor"]
    data["roles"]["bank"]["quorum"] = 0
    widened = tmp_path / "widened.json"
    widened.write_text(json.dumps(data))
    code, out = run(capsys, "apply", "--policy", str(widened), *common)
    assert code == 0, out
    assert "propose to lower the quorum of bank from 1 to 0 (a majority of the members must approve)" in out
    assert (
        "propose to let auditor perform supet.receivable.finance (a majority of the members must approve)"
        in out
    )
    assert (
        "waiting for the members: action-role proposal 1: let auditor perform supet.receivable.finance has "
        "0 approval(s)" in out
    )
    assert "supet consortium approve-action-role supet.receivable.finance auditor" in out
    assert "supet consortium approve-quorum bank" in out
    assert reg.action_roles(finance) == [bank] and reg.role_rule(bank).quorum == 1
    block = chain.block_number()
    code, out = run(capsys, "apply", "--policy", str(widened), *common)  # no second proposal
    assert code == 0 and "waiting for the members" in out and "nothing to do" not in out, out
    assert chain.block_number() == block

    # the admin does not vote; the members do, one by one
    code, out = run(capsys, "approve-action-role", "supet.receivable.finance", "auditor", *common)
    assert code == 1 and "ConsortiumMembershipNotMember" in out, out
    monkeypatch.setenv("SUPET_PARTY_KEY", "0x" + bytes(m3.key).hex())
    code, out = run(capsys, "approve-action-role", "supet.receivable.finance", "auditor", *common)
    assert code == 0, out
    assert "let auditor perform supet.receivable.finance approved: 1 approval(s) of the 2 needed" in out
    code, out = run(capsys, "approve-quorum", "bank", *common)
    assert code == 0 and "1 approval(s) of the 2 needed" in out, out
    monkeypatch.setenv("SUPET_PARTY_KEY", "0x" + bytes(m4.key).hex())
    code, out = run(capsys, "approve-action-role", "supet.receivable.finance", "auditor", *common)
    assert code == 0 and "action-role proposal 1: let auditor perform supet.receivable.finance passed" in out
    code, out = run(capsys, "approve-quorum", "bank", *common)
    assert code == 0 and "proposal 1: lower the quorum of bank to 0 passed" in out, out
    assert reg.action_roles(finance) == [bank, auditor] and reg.role_rule(bank).quorum == 0
    monkeypatch.setenv("SUPET_PARTY_KEY", "0x" + bytes(ADMIN.key).hex())
    code, out = run(capsys, "apply", "--policy", str(widened), *common)
    assert code == 0 and "nothing to do: the policy is applied already" in out, out

    # by hand: a member's proposal carries its vote
    monkeypatch.setenv("SUPET_PARTY_KEY", "0x" + bytes(m3.key).hex())
    code, out = run(capsys, "propose-quorum", "analytics-oracle", "0", *common)
    assert code == 0, out
    assert (
        "proposal 2: lower the quorum of analytics-oracle to 0 opened: 1 approval(s) of the 2 needed" in out
    )
    code, out = run(capsys, "propose-action-role", "supet.spec.set", "auditor", *common)
    assert code == 0 and "action-role proposal 2: let auditor perform supet.spec.set opened" in out, out
    monkeypatch.setenv("SUPET_PARTY_KEY", "0x" + bytes(m4.key).hex())
    code, out = run(capsys, "approve-quorum", "analytics-oracle", *common)
    assert code == 0 and "passed" in out, out
    code, out = run(capsys, "approve-action-role", "supet.spec.set", "auditor", *common)
    assert code == 0 and "passed" in out, out
    assert reg.role_rule(PARTY_ROLES["analytics-oracle"]).quorum == 0
    assert reg.action_roles(ACTIONS["supet.spec.set"]) == [PARTY_ROLES["core-enterprise"], auditor]

    # refusals send nothing
    block = chain.block_number()
    code, out = run(capsys, "approve-quorum", "bank", *common)
    assert code == 2 and "no proposal to lower the quorum of bank is open" in out, out
    code, out = run(capsys, "approve-action-role", "supet.lot.open", "bank", *common)
    assert code == 2 and "no proposal to let bank perform supet.lot.open is open" in out, out
    code, out = run(capsys, "propose-quorum", "Not A Role", "0", *common)
    assert code == 2 and "is not a role name" in out, out
    code, out = run(capsys, "propose-quorum", "supplier", "0", *common)
    assert code == 1 and "RoleQuorumVotesNotLower" in out, out
    code, out = run(capsys, "propose-action-role", "supet.receivable.finance", "bank", *common)
    assert code == 1 and "ParticipantRegistryRoleAlreadyAllowed" in out, out
    monkeypatch.setenv("SUPET_PARTY_KEY", "0x" + bytes(outsider.key).hex())
    code, out = run(capsys, "propose-action-role", "supet.lot.open", "bank", *common)
    assert code == 1 and "RoleQuorumVotesNotProposer" in out, out
    assert chain.block_number() == block
