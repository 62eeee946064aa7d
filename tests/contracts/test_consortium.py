"""The consortium bootstrap on both chains: the example policy applied to a fresh suite gates device
enrollment and lot opening by admission; claims admit, expiry refuses again; re-applying sends
nothing; a bad policy is refused before any transaction."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from enrollments import attested_secp256k1, trust_test_ca
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from support import reverts

from contracts.chain import Chain
from contracts.consortium import apply_policy, pending_member_changes, plan_policy
from contracts.consortium_policy import ConsortiumPolicy, PolicyError
from contracts.consortium_state import GATED_CONTRACTS, read_state
from contracts.lots import LotRegistryClient
from contracts.participant_ids import ACTIONS, PARTY_ROLES, TOPICS
from contracts.participants import ParticipantRegistryClient, Reason
from tests.contracts._chain_time import now, set_time

#: the contract's own rules: on anvil alone (tests/conftest.py CHAIN_KINDS)
pytestmark = pytest.mark.contract_logic

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "consortium-policy.example.json"
SUPPLIER = PARTY_ROLES["supplier"]
BANK = PARTY_ROLES["bank"]
LICENCE, ISO = TOPICS["business-licence"], TOPICS["iso-9001"]
GTIN = "04006381333931"
T0 = 1_764_400_000_000
DAY = 86_400


def example() -> ConsortiumPolicy:
    return ConsortiumPolicy.load(EXAMPLE)


class World:
    """The suite (admin: account 0) with the example policy's parties: 1 supplier, 3/4 members,
    6 licence issuer, 7 ISO issuer, 9 banking issuer."""

    def __init__(self, suite: Any) -> None:
        self.chain: Chain = suite.chain
        self.deployment = suite.deployment
        a = suite.accounts
        self.admin, self.supplier = a[0], a[1]
        self.members = [a[3], a[4]]
        self.licence_issuer, self.iso_issuer = a[6], a[7]
        self.reg = ParticipantRegistryClient(self.chain, self.deployment)
        self.devices = suite.contract("DeviceRegistry")
        self.lots = LotRegistryClient.from_deployment(self.chain, self.deployment)
        trust_test_ca(self.chain, self.devices, self.admin)
        self.serial = 0

    def enroll(self, party: LocalAccount) -> None:
        self.serial += 1
        fn = attested_secp256k1(self.chain, self.devices, party.address, f"SN-{self.serial}")
        self.chain.transact(fn, party)

    def open_lot(self, party: LocalAccount, lot_id: str) -> None:
        self.lots.open_lot(
            party,
            lot_id=lot_id,
            gtin=GTIN,
            quantity=100,
            unit="kg",
            produced_from_ms=T0,
            produced_to_ms=T0 + 3_600_000,
        )

    def claim(self, subject: LocalAccount, topic: bytes, issuer: LocalAccount, expires_at: int) -> None:
        signed = self.reg.sign_claim(
            issuer, subject=subject.address, topic=topic, data_hash=keccak(b"evidence"), expires_at=expires_at
        )
        self.reg.add_claim(subject, signed)


@pytest.fixture
def world(suite: Any) -> World:
    return World(suite)


def test_fresh_suite_is_not_gated_and_plan_lists_every_step(world: World) -> None:
    state = read_state(world.chain, world.deployment)
    assert state.gates["DeviceRegistry"] == "0x" + "00" * 20
    assert not state.gated() and not state.rules and not state.members
    steps = plan_policy(world.chain, world.deployment, example())
    text = [s.description for s in steps]
    # the first members (one step), 3 issuers, 11 roles, the actions, DeviceRegistry's gate (the others
    # ask it since deployment)
    assert len(steps) == 1 + 3 + 11 + len(example().actions) + 1, text
    assert text[0] == "set the first consortium members " + ", ".join(example().members)
    assert text[-1].startswith("DeviceRegistry")


def test_example_policy_gates_enrollment_and_lots(world: World) -> None:
    chain, reg, supplier = world.chain, world.reg, world.supplier
    policy = example()
    applied = apply_policy(chain, world.deployment, world.admin, policy)
    assert len(applied) == 1 + 3 + 11 + len(policy.actions) + 1 and all(s.tx_hash for s in applied)
    state = read_state(chain, world.deployment)
    assert state.gated() and set(state.gates) == set(GATED_CONTRACTS)
    assert len(state.rules) == 11 and len(state.members) == 2
    assert reg.role_rule(SUPPLIER).topics == (LICENCE, ISO)
    assert reg.role_rule(BANK).quorum == 1
    assert reg.action_roles(ACTIONS["supet.device.enroll"]) == [SUPPLIER]
    assert len(reg.action_roles(ACTIONS["supet.lot.transfer"])) == 6
    assert reg.trusted_issuers(ISO) == [world.iso_issuer.address]
    # exported state reads back as the same policy
    assert ConsortiumPolicy.from_json(state.to_policy_json()).role_rules() == policy.role_rules()

    # no claims: refused by every gated contract
    with reverts("DeviceRegistryNotAdmitted", party=supplier.address):
        world.enroll(supplier)
    with reverts("LotRegistryNotAdmitted", party=supplier.address):
        world.open_lot(supplier, "LOT-0")
    assert reg.why_not_admitted(supplier.address, SUPPLIER).reason is Reason.NOT_APPLIED

    # claims from the trusted issuers, then the application (quorum 0 for suppliers)
    t = now(chain)
    world.claim(supplier, LICENCE, world.licence_issuer, t + 365 * DAY)
    world.claim(supplier, ISO, world.iso_issuer, t + 30 * DAY)
    reg.apply(supplier, SUPPLIER)
    assert reg.why_not_admitted(supplier.address, SUPPLIER).admitted
    world.enroll(supplier)
    world.open_lot(supplier, "LOT-1")
    assert world.lots.custodian("LOT-1") == supplier.address

    # the ISO certificate lapses: refused again, with the reason
    set_time(chain, t + 30 * DAY + 1)
    status = reg.why_not_admitted(supplier.address, SUPPLIER)
    assert status.reason is Reason.CLAIM_EXPIRED and status.topic == ISO
    with reverts("DeviceRegistryNotAdmitted", party=supplier.address):
        world.enroll(supplier)
    with reverts("LotRegistryNotAdmitted", party=supplier.address):
        world.open_lot(supplier, "LOT-2")

    # re-applying the same policy is a no-op: nothing planned, no transaction
    block = chain.block_number()
    assert plan_policy(chain, world.deployment, policy) == []
    assert apply_policy(chain, world.deployment, world.admin, policy) == []
    assert chain.block_number() == block


def test_policy_changes_converge(world: World) -> None:
    """A changed policy sends only the differences, removing issuers it no longer names and proposing to
    remove members it no longer names (the members decide)."""
    chain, members = world.chain, world.members
    apply_policy(chain, world.deployment, world.admin, example())
    data = json.loads(EXAMPLE.read_text())
    data["members"] = data["members"][:1]
    data["trusted_issuers"]["iso-9001"] = [world.licence_issuer.address]
    data["roles"]["supplier"]["quorum"] = 1
    del data["actions"]["supet.consent.grant"]
    changed = ConsortiumPolicy.model_validate(data)
    steps = [s.description for s in apply_policy(chain, world.deployment, world.admin, changed)]
    assert len(steps) == 5, steps
    assert any(s.startswith(f"trust {world.licence_issuer.address} for iso-9001") for s in steps)
    assert any(s.startswith(f"stop trusting {world.iso_issuer.address}") for s in steps)
    assert any(s.startswith("role supplier") and "quorum 1" in s for s in steps)
    assert any(s == "action supet.consent.grant: allowed to nobody" for s in steps)
    assert steps[-1] == (
        f"propose to remove consortium member {members[1].address} (a majority of the members must approve)"
    )
    assert world.reg.action_roles(ACTIONS["supet.consent.grant"]) == []
    # the admin only proposed: both members are still there until a majority (2 of 2) approves
    (pending,) = pending_member_changes(chain, world.deployment, changed)
    assert (pending.account, pending.admit, pending.approvals) == (members[1].address, False, 0)
    assert apply_policy(chain, world.deployment, world.admin, changed) == []  # no second proposal
    world.reg.membership.approve(members[0], pending.id)
    world.reg.membership.approve(members[1], pending.id)
    assert world.reg.members() == [data["members"][0]]
    assert pending_member_changes(chain, world.deployment, changed) == []
    assert apply_policy(chain, world.deployment, world.admin, changed) == []


def test_issue12_policy_members_after_the_first_are_proposals(world: World) -> None:
    """Once the first members are set, a policy naming a new member only proposes it; the admin cannot
    raise a quorum past the members the consortium has (only the members can admit more)."""
    chain, members, newcomer = world.chain, world.members, world.supplier
    apply_policy(chain, world.deployment, world.admin, example())
    data = json.loads(EXAMPLE.read_text())
    data["members"].append(newcomer.address)
    grown = ConsortiumPolicy.model_validate(data)
    (step,) = apply_policy(chain, world.deployment, world.admin, grown)
    assert step.description.startswith(f"propose to admit consortium member {newcomer.address}")
    assert not world.reg.is_member(newcomer.address)
    data["roles"]["bank"]["quorum"] = 3
    block = chain.block_number()
    with pytest.raises(PolicyError, match="role bank needs a quorum of 3 but the consortium has 2 member"):
        apply_policy(chain, world.deployment, world.admin, ConsortiumPolicy.model_validate(data))
    assert chain.block_number() == block
    (pending,) = pending_member_changes(chain, world.deployment, grown)
    world.reg.membership.approve(members[0], pending.id)
    world.reg.membership.approve(members[1], pending.id)
    assert world.reg.members() == [m.address for m in members] + [newcomer.address]
    (step,) = apply_policy(chain, world.deployment, world.admin, ConsortiumPolicy.model_validate(data))
    assert step.description == "role bank: requires [business-licence, banking-licence], quorum 3"


def test_issue12_a_policy_lowering_a_quorum_only_proposes_it(world: World) -> None:
    """The admin alone may not lower a role's quorum (to 0 above all): a policy that does keeps the
    quorum, changes the rest of the rule, and opens a quorum proposal that the members pass."""
    chain, members, qv = world.chain, world.members, world.reg.quorum_votes
    apply_policy(chain, world.deployment, world.admin, example())
    data = json.loads(EXAMPLE.read_text())
    data["roles"]["bank"]["quorum"] = 2  # raising is the admin's alone
    (step,) = apply_policy(chain, world.deployment, world.admin, ConsortiumPolicy.model_validate(data))
    assert step.description == "role bank: requires [business-licence, banking-licence], quorum 2"
    data["roles"]["bank"] = {"topics": ["business-licence"], "quorum": 0}
    lowered = ConsortiumPolicy.model_validate(data)
    steps = [s.description for s in apply_policy(chain, world.deployment, world.admin, lowered)]
    assert steps == [
        "role bank: requires [business-licence], quorum 2",
        "propose to lower the quorum of bank from 2 to 0 (a majority of the members must approve)",
    ]
    assert (world.reg.role_rule(BANK).topics, world.reg.role_rule(BANK).quorum) == ((LICENCE,), 2)
    assert apply_policy(chain, world.deployment, world.admin, lowered) == []  # no second proposal
    data["roles"]["bank"]["quorum"] = 1
    block = chain.block_number()
    with pytest.raises(
        PolicyError, match="proposal 1: lower the quorum of bank to 0 is open, and the policy"
    ):
        apply_policy(chain, world.deployment, world.admin, ConsortiumPolicy.model_validate(data))
    assert chain.block_number() == block
    pending = qv.open_about(BANK)
    assert pending is not None and (pending.quorum, pending.approvals) == (0, 0)  # the admin does not vote
    qv.approve(members[0], pending.id)
    assert qv.passed(qv.approve(members[1], pending.id))  # 2 of the 2 members
    assert world.reg.role_rule(BANK).quorum == 0
    assert apply_policy(chain, world.deployment, world.admin, lowered) == []


def test_bad_policies_are_refused_before_any_transaction(world: World) -> None:
    chain = world.chain
    block = chain.block_number()
    data = json.loads(EXAMPLE.read_text())
    data["actions"]["supet.lot.open"] = ["supplier", "farmer"]
    with pytest.raises(
        PolicyError,
        match=re.escape("policy: action supet.lot.open allows role 'farmer', which the policy does not"),
    ):
        ConsortiumPolicy.from_json(json.dumps(data))
    bad: list[tuple[dict[str, Any], str]] = [
        ({"members": []}, "role bank needs a quorum of 1 but the policy names 0 member"),
        ({"members": ["0x1234"]}, "is not a non-zero Ethereum address"),
        ({"trusted_issuers": {"iso-9001": ["0x" + "00" * 20]}}, "not a non-zero Ethereum address"),
        ({"roles": {"Supplier!": {"topics": []}}}, "is not a role name"),
        ({"roles": {"supplier": {"topics": ["kyc", "kyc"]}}}, "listed twice"),
        ({"roles": {"supplier": {"topics": [], "quorum": -1}}}, "greater than or equal to 0"),
        ({"extra": 1}, "extra: Extra inputs are not permitted"),
    ]
    for change, message in bad:
        with pytest.raises(PolicyError, match=message):
            ConsortiumPolicy.from_json(json.dumps({**json.loads(EXAMPLE.read_text()), **change}))
    # an account without the admin roles is refused before the first transaction
    with pytest.raises(PolicyError, match="lacks the consortium admin role of ParticipantRegistry"):
        apply_policy(chain, world.deployment, world.supplier, example())
    assert chain.block_number() == block
