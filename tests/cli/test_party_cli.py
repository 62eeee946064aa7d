"""Party admission through `supet party`, against a real node (anvil).

The suite is deployed with ``deploy_suite`` and the ParticipantRegistry with
``deploy_participant_registry``; the deployment file then names both. Commands run
through ``supet.cli.main`` (our error handling, exit codes) with the party app mounted.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

import supet.cli
from contracts.anvil import AnvilNode
from contracts.chain import Chain, dev_accounts
from contracts.claims import ClaimState
from contracts.deploy import deploy_suite
from contracts.deployment import Deployment
from contracts.participant_ids import ACTIONS, PARTY_ROLES, TOPICS, party_role
from contracts.participants import (
    ParticipantRegistryClient,
    Reason,
    deploy_participant_registry,
    with_participant_registry,
)
from supet.cli import main
from supet.cli import party as party_cli

ACCOUNTS = dev_accounts(8)
ADMIN, SUPPLIER, MEMBER, MEMBER2, OUTSIDER, LICENCE_ISSUER, ISO_ISSUER, RELAYER = ACCOUNTS
KEY = {a.address: "0x" + bytes(a.key).hex() for a in ACCOUNTS}
SUPPLIER_ROLE = PARTY_ROLES["supplier"]

pytestmark = pytest.mark.anvil


@pytest.fixture
def node(anvil_node: AnvilNode) -> Iterator[AnvilNode]:
    snapshot = anvil_node.snapshot()
    yield anvil_node
    anvil_node.revert(snapshot)


@pytest.fixture
def mounted(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run `supet party` through main() whether or not it is wired into the real app yet."""
    if any(group.name == "party" for group in supet.cli.app.registered_groups):
        return
    root = typer.Typer(
        name="supet", no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False
    )
    root.add_typer(party_cli.app, name="party")
    monkeypatch.setattr(supet.cli, "app", root)


@pytest.fixture
def deployment_file(node: AnvilNode, tmp_path: Path) -> Path:
    chain = Chain.connect(node.url)
    deployment = deploy_suite(chain, ADMIN)
    address = deploy_participant_registry(chain, ADMIN, deployment=deployment)
    path = tmp_path / "deployment.json"
    with_participant_registry(deployment, address).save(path)
    return path


class Cli:
    def __init__(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], common: list[str]
    ):
        self.monkeypatch, self.capsys, self.common = monkeypatch, capsys, common

    def __call__(self, *args: str, key: Any = None, chain: bool = True) -> tuple[int, str]:
        if key is None:
            self.monkeypatch.delenv("SUPET_PARTY_KEY", raising=False)
        else:
            self.monkeypatch.setenv("SUPET_PARTY_KEY", KEY[key.address])
        code = 0
        try:
            main(["party", *args, *(self.common if chain else [])])
        except SystemExit as e:
            code = int(e.code or 0)
        out = self.capsys.readouterr()
        # the error console wraps long lines (inside addresses too): unwrap for matching
        return code, out.out + out.err.replace("\n", "")

    def ok(self, *args: str, key: Any = None, chain: bool = True) -> str:
        code, out = self(*args, key=key, chain=chain)
        assert code == 0, out
        return out

    def fails(self, *args: str, key: Any = None, chain: bool = True) -> str:
        got, out = self(*args, key=key, chain=chain)
        assert got == 1, out
        return out

    def usage_error(self, *args: str, key: Any = None, chain: bool = True) -> str:
        """A usage error (exit 2), checked on the party app itself in click's standalone mode.

        (``supet.cli.main`` lets typer's vendored click exceptions escape: typer 0.29 no longer
        raises ``click.ClickException`` subclasses.)
        """
        env = {"SUPET_PARTY_KEY": KEY[key.address]} if key is not None else {}
        result = CliRunner().invoke(party_cli.app, [*args, *(self.common if chain else [])], env=env)
        assert result.exit_code == 2, result.output
        return " ".join(result.output.replace("│", " ").split())


def test_party_admission_through_the_cli(
    mounted: None,
    node: AnvilNode,
    deployment_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cli = Cli(monkeypatch, capsys, ["--rpc", node.url, "--deployment", str(deployment_file)])
    chain = Chain.connect(node.url)
    reg = ParticipantRegistryClient(chain, Deployment.load(deployment_file))
    s = SUPPLIER.address

    # consortium admin: the first members (once), rule, action, issuers
    out = cli.ok("member", "bootstrap", MEMBER.address, key=ADMIN)
    assert f"the consortium members are {MEMBER.address}" in out
    assert "ConsortiumMembershipAlreadyBootstrapped" in cli.fails(
        "member", "bootstrap", OUTSIDER.address, key=ADMIN
    )
    # later members by proposal: the lone member's passes at once; the admin's needs the members
    out = cli.ok("member", "add", MEMBER2.address, key=MEMBER)
    assert f"proposal 1 to admit {MEMBER2.address} passed at once" in out
    assert reg.members() == [MEMBER.address, MEMBER2.address]
    out = cli.ok(
        "role-rule",
        "supplier",
        "--topic",
        "business-licence",
        "--topic",
        "iso-9001",
        "--quorum",
        "1",
        key=ADMIN,
    )
    assert "rule of supplier: business-licence, iso-9001; quorum 1" in out
    out = cli.ok("action-roles", "supet.device.enroll", "--role", "supplier", key=ADMIN)
    assert "supet.device.enroll may be performed by: supplier" in out
    cli.ok("issuer", "add", "--topic", "business-licence", "--issuer", LICENCE_ISSUER.address, key=ADMIN)
    cli.ok("issuer", "add", "--topic", "iso-9001", "--issuer", ISO_ISSUER.address, key=ADMIN)
    assert reg.trusted_issuers(TOPICS["iso-9001"]) == [ISO_ISSUER.address]
    # a custom role name is allowed but flagged; bad names and addresses are usage errors
    out = cli.ok("role-rule", "recycler", "--quorum", "0", key=ADMIN)
    assert "is not a standard role" in out
    assert "is not a role name" in cli.usage_error("role-rule", "Supplier", key=ADMIN)
    assert "is not an Ethereum address" in cli.usage_error("member", "add", "0x1234", key=ADMIN)
    # only the admin: the contract's error is named, nothing changes
    out = cli.fails("issuer", "add", "--topic", "kyc", "--issuer", OUTSIDER.address, key=OUTSIDER)
    assert "AccessControlUnauthorizedAccount" in out
    assert reg.trusted_issuers(TOPICS["kyc"]) == []

    out = cli.ok("status", s, "--role", "supplier")
    assert "supplier: not admitted: has not applied for this role" in out
    out = cli.ok("apply", "supplier", key=SUPPLIER)
    assert "applied for supplier" in out and "holds no claim for topic business-licence" in out

    # issuers sign offline (only the deployment file), the supplier and a relayer submit
    evidence = tmp_path / "licence.pdf"
    evidence.write_bytes(b"%PDF business licence no. 91310000")
    lic, iso = tmp_path / "licence.claim.json", tmp_path / "iso.claim.json"
    out = cli.ok(
        "claim", "issue", "--subject", s, "--topic", "business-licence", "--evidence", str(evidence),
        "--valid-days", "365", "--out", str(lic), "--deployment", str(deployment_file),
        key=LICENCE_ISSUER, chain=False,
    )  # fmt: skip
    assert f"by {LICENCE_ISSUER.address}" in out and lic.exists()
    claim = json.loads(lic.read_text())
    assert claim["topicName"] == "business-licence" and claim["subject"] == s
    expiry = str(chain.block()["timestamp"] + 100 * 86_400)
    cli.ok(
        "claim", "issue", "--subject", s, "--topic", "iso-9001", "--data-hash", "0x" + "ab" * 32,
        "--expires-at", expiry, "--out", str(iso), "--deployment", str(deployment_file),
        key=ISO_ISSUER, chain=False,
    )  # fmt: skip
    assert "exactly one of --evidence" in cli.usage_error(
        "claim", "issue", "--subject", s, "--topic", "kyc", "--valid-days", "1", "--out", str(tmp_path / "x"),
        "--deployment", str(deployment_file), key=ISO_ISSUER, chain=False,
    )  # fmt: skip

    # a tampered file is refused before reaching the chain; a claim by an untrusted issuer on chain
    tampered = tmp_path / "tampered.json"
    tampered.write_text(lic.read_text().replace(str(claim["expiresAt"]), str(claim["expiresAt"] + 1)))
    assert "the file was altered" in cli.fails("claim", "add", str(tampered), key=SUPPLIER)
    forged = tmp_path / "forged.json"
    cli.ok(
        "claim", "issue", "--subject", s, "--topic", "iso-9001", "--data-hash", "0x" + "cd" * 32,
        "--valid-days", "30", "--out", str(forged), "--deployment", str(deployment_file),
        key=OUTSIDER, chain=False,
    )  # fmt: skip
    out = cli.fails("claim", "add", str(forged), key=SUPPLIER)
    assert "ParticipantRegistryUntrustedIssuer" in out and OUTSIDER.address in out
    assert reg.claim_state(s, TOPICS["iso-9001"]) is ClaimState.MISSING

    out = cli.ok("claim", "add", str(lic), key=SUPPLIER)
    assert "added" in out
    cli.ok("claim", "add", str(iso), key=RELAYER)
    assert "ParticipantRegistryClaimAlreadyAdded" in cli.fails("claim", "add", str(iso), key=RELAYER)
    out = cli.ok("status", s)
    assert "supplier: not admitted: needs 1 consortium approvals, has 0" in out
    assert "claim business-licence: valid from " + LICENCE_ISSUER.address in out

    # members approve; others cannot
    out = cli.fails("approve", s, "supplier", key=OUTSIDER)
    assert f"ParticipantRegistryNotMember(account={OUTSIDER.address})" in out
    out = cli.ok("approve", s, "supplier", key=MEMBER)
    assert "now: admitted (1/1 approvals)" in out
    assert "ParticipantRegistryAlreadyApproved" in cli.fails("approve", s, "supplier", key=MEMBER)
    assert reg.approvers(s, SUPPLIER_ROLE) == [MEMBER.address]
    out = cli.ok("status", s)
    assert "supplier: admitted (1/1 approvals)" in out
    # a custom role has no standard name: it is shown by id
    assert f"0x{party_role('recycler').hex()}: not admitted: has not applied" in out
    assert reg.is_admitted(s, ACTIONS["supet.device.enroll"])

    # the issuer revokes the licence claim: admission lapses
    out = cli.ok("claim", "revoke", str(lic), key=LICENCE_ISSUER)
    assert "revoked by " + LICENCE_ISSUER.address in out
    out = cli.ok("status", s, "--role", "supplier")
    assert "its claim for topic business-licence was revoked by its issuer" in out
    assert "claim business-licence: revoked" in out
    # revoking again, naming the stored claim instead of the file
    out = cli.fails("claim", "revoke", "--subject", s, "--topic", "business-licence", key=LICENCE_ISSUER)
    assert f"ParticipantRegistryClaimAlreadyRevoked(claimId={claim['claimId']})" in out
    assert "give CLAIM_FILE, or both --subject and --topic" in cli.usage_error(
        "claim", "revoke", "--subject", s, key=LICENCE_ISSUER
    )
    renewed = tmp_path / "licence2.claim.json"
    cli.ok(
        "claim", "issue", "--subject", s, "--topic", "business-licence", "--data-hash", "0x" + "ef" * 32,
        "--valid-days", "365", "--out", str(renewed), "--deployment", str(deployment_file),
        key=LICENCE_ISSUER, chain=False,
    )  # fmt: skip
    cli.ok("claim", "add", str(renewed), key=SUPPLIER)
    assert reg.is_admitted_as(s, SUPPLIER_ROLE)

    # suspension with a reason, then reinstatement
    assert "ParticipantRegistryEmptyReason" in cli.fails("suspend", s, "--reason", "", key=ADMIN)
    cli.ok("suspend", s, "--reason", "late quality reports", key=ADMIN)
    out = cli.ok("status", s, "--role", "supplier")
    assert "SUSPENDED since" in out and "late quality reports" in out
    assert "supplier: not admitted: suspended by the consortium" in out
    assert reg.why_not_admitted(s, SUPPLIER_ROLE).reason is Reason.SUSPENDED
    cli.ok("reinstate", s, "--reason", "reports delivered", key=ADMIN)
    out = cli.ok("status", s, "--role", "supplier")
    assert "reinstated" in out and "reports delivered" in out and "supplier: admitted" in out

    # withdrawing drops the application
    cli.ok("withdraw", "supplier", key=SUPPLIER)
    assert reg.why_not_admitted(s, SUPPLIER_ROLE).reason is Reason.NOT_APPLIED
    cli.ok("issuer", "remove", "--topic", "iso-9001", "--issuer", ISO_ISSUER.address, key=ADMIN)
    out = cli.ok("member", "remove", MEMBER2.address, key=ADMIN)
    assert f"proposal 2 to remove {MEMBER2.address} is open for 7 days" in out
    out = cli.ok("member", "approve", "2", key=MEMBER)
    assert f"proposal 2: remove {MEMBER2.address}: 1 approval(s), 2 needed" in out
    assert "ConsortiumMembershipAlreadyVoted" in cli.fails("member", "approve", "2", key=MEMBER)
    out = cli.ok("member", "approve", "2", key=MEMBER2)
    assert f"proposal 2: remove {MEMBER2.address} passed" in out
    assert reg.members() == [MEMBER.address]
