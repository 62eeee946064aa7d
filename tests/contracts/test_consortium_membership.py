"""Consortium members are their own governance (issue 12.12), on both chains.

The admin sets the first members once; afterwards only a majority of the current members admits or
removes one, so the admin alone cannot mint the approvals a quorum counts. Nor can it lower a role's
quorum (to 0 above all), nor let one more role perform an action whose roles were set: only a majority
of the members does (``RoleQuorumVotes``, on the ballots of ``MemberVotes``). Every refused call
is checked for its exact custom error and for leaving the membership (members, proposals, votes) and
the block height as they were.
"""

from __future__ import annotations

from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from support import reverts
from web3.logs import DISCARD

from contracts.chain import Chain
from contracts.membership import MembershipClient
from contracts.participant_ids import (
    ACTIONS,
    CONSORTIUM_ADMIN_ROLE,
    CONSORTIUM_MEMBER_ROLE,
    PARTY_ROLES,
    TOPICS,
    party_role,
)
from contracts.participants import ParticipantRegistryClient, deploy_participant_registry
from contracts.quorum_votes import ActionRoleVotesClient, QuorumVotesClient
from tests.contracts._chain_time import now, set_time

#: the contract's own rules: on anvil alone (tests/conftest.py CHAIN_KINDS)
pytestmark = pytest.mark.contract_logic

ZERO = "0x" + "00" * 20
WEEK = 7 * 86_400
BANK = PARTY_ROLES["bank"]
SUPPLIER = PARTY_ROLES["supplier"]
AUDITOR = PARTY_ROLES["auditor"]
LICENCE = TOPICS["business-licence"]
FINANCE = ACTIONS["supet.receivable.finance"]
ENROLL = ACTIONS["supet.device.enroll"]


class World:
    """A fresh ParticipantRegistry: admin account 0; members-to-be 3, 4, 8; outsiders 1, 2, 5."""

    def __init__(self, suite: Any) -> None:
        self.chain: Chain = suite.chain
        a = suite.accounts
        self.admin: LocalAccount = a[0]
        self.m: list[LocalAccount] = [a[3], a[4], a[8]]
        self.outsider, self.newcomer, self.sybil = a[5], a[1], a[2]
        address = deploy_participant_registry(self.chain, self.admin, deployment=suite.deployment)
        self.reg = ParticipantRegistryClient.at(self.chain, address)
        self.ms: MembershipClient = self.reg.membership
        self.qv: QuorumVotesClient = self.reg.quorum_votes
        self.av: ActionRoleVotesClient = self.reg.action_role_votes
        self.fns = self.reg.contract.functions

    def bootstrap(self, count: int = 3) -> None:
        self.ms.bootstrap(self.admin, [m.address for m in self.m[:count]])

    def state(self) -> Any:
        ms, qv, av = self.ms, self.qv, self.av
        proposals = [ms.proposal(i) for i in range(1, ms.count() + 1)]
        quorums = [qv.proposal(i) for i in range(1, qv.count() + 1)]
        action_roles = [av.proposal(i) for i in range(1, av.count() + 1)]
        rules = [self.reg.role_rule(role) for role in self.reg.roles()]
        actions = [(self.reg.action_roles(a), self.reg.action_roles_set(a)) for a in (FINANCE, ENROLL)]
        return (
            self.reg.members(),
            ms.is_bootstrapped(),
            proposals,
            quorums,
            action_roles,
            rules,
            actions,
            self.chain.block_number(),
        )


@pytest.fixture
def world(suite: Any) -> World:
    return World(suite)


def test_issue12_the_admin_alone_cannot_mint_a_quorum(world: World) -> None:
    """Before the fix the member role's admin was the consortium admin: grantRole made any quorum."""
    chain, admin, fns = world.chain, world.admin, world.fns
    world.bootstrap()
    world.reg.set_role_rule(admin, BANK, [], 2)
    before = world.state()
    with reverts("ConsortiumMembershipByVoteOnly"):
        chain.transact(fns.grantRole(CONSORTIUM_MEMBER_ROLE, world.sybil.address), admin)
    with reverts("ConsortiumMembershipByVoteOnly"):
        chain.transact(fns.revokeRole(CONSORTIUM_MEMBER_ROLE, world.m[0].address), admin)
    with reverts("ConsortiumMembershipByVoteOnly"):
        chain.transact(fns.renounceRole(CONSORTIUM_MEMBER_ROLE, world.m[0].address), world.m[0])
    with reverts("ConsortiumMembershipAlreadyBootstrapped"):
        world.ms.bootstrap(admin, [world.sybil.address])
    # the admin may propose; its proposal carries no vote, and the admin cannot approve it
    sent = world.ms.propose(admin, world.sybil.address)
    assert not sent.executed
    assert world.state()[0] == before[0]
    with reverts("ConsortiumMembershipNotMember", account=admin.address):
        world.ms.approve(admin, sent.id)
    assert not chain.call(fns.hasRole(CONSORTIUM_MEMBER_ROLE, world.sybil.address))
    assert world.reg.members() == [m.address for m in world.m]


def test_bootstrap_once(world: World) -> None:
    chain, admin, ms = world.chain, world.admin, world.ms
    assert not ms.is_bootstrapped() and world.reg.members() == []
    before = world.state()
    with reverts(
        "AccessControlUnauthorizedAccount", account=world.outsider.address, neededRole=CONSORTIUM_ADMIN_ROLE
    ):
        ms.bootstrap(world.outsider, [world.outsider.address])
    with reverts("ConsortiumMembershipNoMembers"):
        ms.bootstrap(admin, [])
    with reverts("ConsortiumMembershipZeroAccount"):
        ms.bootstrap(admin, [world.m[0].address, ZERO])
    with reverts("ConsortiumMembershipAlreadyMember", account=world.m[0].address):
        ms.bootstrap(admin, [world.m[0].address, world.m[0].address])
    with reverts("ConsortiumMembershipNotBootstrapped"):
        ms.propose(admin, world.m[0].address)
    assert world.state() == before
    result = ms.bootstrap(admin, [m.address for m in world.m])
    (event,) = world.reg.contract.events.MembersBootstrapped().process_receipt(result.receipt, errors=DISCARD)
    assert event["args"]["members"] == [m.address for m in world.m]
    assert event["args"]["by"] == admin.address
    assert ms.is_bootstrapped() and world.reg.members() == [m.address for m in world.m]
    assert ms.needed() == 2
    assert chain.call(world.fns.MEMBER_PROPOSAL_TTL()) == WEEK


def test_a_majority_of_members_admits_and_removes(world: World) -> None:
    chain, ms, (m0, m1, m2) = world.chain, world.ms, world.m
    world.bootstrap()
    events = world.reg.contract.events
    # a member's proposal carries its vote; the second of three makes the majority
    sent = ms.propose(m0, world.newcomer.address)
    (opened,) = events.MemberProposed().process_receipt(sent.tx.receipt, errors=DISCARD)
    assert opened["args"]["id"] == sent.id == 1
    assert opened["args"]["account"] == world.newcomer.address
    assert opened["args"]["admit"] is True
    assert opened["args"]["proposer"] == m0.address
    assert opened["args"]["expiresAt"] == now(chain) + WEEK
    assert not sent.executed and not world.reg.is_member(world.newcomer.address)
    p = ms.proposal(sent.id)
    assert (p.voters, p.approvals, p.executed) == ((m0.address,), 1, False)
    assert ms.open_about(world.newcomer.address) == p
    result = ms.approve(m1, sent.id)
    (approved,) = events.MemberProposalApproved().process_receipt(result.receipt, errors=DISCARD)
    assert (approved["args"]["member"], approved["args"]["approvals"], approved["args"]["needed"]) == (
        m1.address,
        2,
        2,
    )
    (executed,) = events.MemberProposalExecuted().process_receipt(result.receipt, errors=DISCARD)
    assert (executed["args"]["id"], executed["args"]["account"], executed["args"]["admit"]) == (
        1,
        world.newcomer.address,
        True,
    )
    assert world.reg.is_member(world.newcomer.address) and ms.needed() == 3
    assert ms.open_about(world.newcomer.address) is None
    # removal: 3 of 4 needed; a removed member's votes stop counting on other proposals
    other = ms.propose(m2, world.sybil.address)
    removal = ms.propose(world.newcomer, m2.address, admit=False)
    ms.approve(m0, removal.id)
    assert ms.proposal(removal.id).approvals == 2
    result = ms.approve(m1, removal.id)
    assert ms.passed(result) and not world.reg.is_member(m2.address)
    assert ms.proposal(other.id).voters == (m2.address,)
    assert ms.proposal(other.id).approvals == 0  # m2's vote no longer counts


def test_lone_member_and_the_last_member(world: World) -> None:
    ms, m0 = world.ms, world.m[0]
    world.bootstrap(1)
    assert ms.needed() == 1
    sent = ms.propose(m0, world.m[1].address)  # a lone member's proposal passes at once
    assert sent.executed and world.reg.is_member(world.m[1].address)
    removal = ms.propose(m0, world.m[1].address, admit=False)  # 2 of 2 needed
    ms.approve(world.m[1], removal.id)
    assert world.reg.members() == [m0.address]
    before = world.state()
    with reverts("ConsortiumMembershipLastMember", account=m0.address):
        ms.propose(m0, m0.address, admit=False)
    assert world.state() == before


def test_proposal_refusals_change_nothing(world: World) -> None:
    chain, ms, admin, (m0, m1, m2) = world.chain, world.ms, world.admin, world.m
    world.bootstrap()
    sent = ms.propose(m0, world.newcomer.address)
    before = world.state()
    with reverts("ConsortiumMembershipNotProposer", caller=world.outsider.address):
        ms.propose(world.outsider, world.sybil.address)
    with reverts("ConsortiumMembershipZeroAccount"):
        ms.propose(m0, ZERO)
    with reverts("ConsortiumMembershipAlreadyMember", account=m1.address):
        ms.propose(m0, m1.address)
    with reverts("ConsortiumMembershipNotMember", account=world.sybil.address):
        ms.propose(m0, world.sybil.address, admit=False)
    with reverts("ConsortiumMembershipProposalPending", account=world.newcomer.address, id=sent.id):
        ms.propose(admin, world.newcomer.address)
    with reverts("ConsortiumMembershipNotMember", account=world.outsider.address):
        ms.approve(world.outsider, sent.id)
    with reverts("ConsortiumMembershipAlreadyVoted", member=m0.address, id=sent.id):
        ms.approve(m0, sent.id)
    for bad in (0, sent.id + 1):
        with reverts("ConsortiumMembershipUnknownProposal", id=bad):
            ms.approve(m1, bad)
        with reverts("ConsortiumMembershipUnknownProposal", id=bad):
            chain.call(world.fns.memberProposal(bad))
    assert world.state() == before
    ms.approve(m1, sent.id)
    passed = world.state()
    with reverts("ConsortiumMembershipProposalExecuted", id=sent.id):
        ms.approve(m2, sent.id)
    assert world.state() == passed


def test_a_proposal_lapses_after_a_week(world: World) -> None:
    chain, ms, (m0, m1, _) = world.chain, world.ms, world.m
    world.bootstrap()
    sent = ms.propose(m0, world.newcomer.address)
    expires = ms.proposal(sent.id).expires_at
    set_time(chain, expires)
    before = world.state()
    with reverts("ConsortiumMembershipProposalExpired", id=sent.id, expiresAt=expires):
        ms.approve(m1, sent.id)
    assert world.state() == before
    assert ms.open_about(world.newcomer.address) is None
    again = ms.propose(m1, world.newcomer.address)  # a lapsed proposal no longer blocks a new one
    assert again.id == sent.id + 1
    assert ms.passed(ms.approve(m0, again.id))


# ---------------------------------------------------------------- a role's quorum is lowered by vote only


def test_issue12_the_admin_alone_cannot_lower_a_quorum(world: World) -> None:
    """Before the fix the consortium admin set any role's quorum, down to 0 (claims alone admit), with
    ``setRoleRule``: the members' check on admissions was the admin's to drop."""
    admin, reg = world.admin, world.reg
    world.bootstrap()
    reg.set_role_rule(admin, BANK, [LICENCE], 2)
    before = world.state()
    for lower in (0, 1):
        with reverts("ParticipantRegistryQuorumLowerByVoteOnly", role=BANK, current=2, quorum=lower):
            reg.set_role_rule(admin, BANK, [LICENCE], lower)
        with reverts("ParticipantRegistryQuorumLowerByVoteOnly", role=BANK, current=2, quorum=lower):
            reg.set_role_rule(admin, BANK, [], lower)  # changing the topics too changes nothing
    assert world.state() == before
    # the admin still defines roles (any quorum up to the members), raises a quorum, changes topics
    reg.set_role_rule(admin, SUPPLIER, [LICENCE], 0)
    reg.set_role_rule(admin, BANK, [], 2)
    reg.set_role_rule(admin, BANK, [LICENCE], 3)
    assert (reg.role_rule(BANK).quorum, reg.role_rule(BANK).topics) == (3, (LICENCE,))
    # its proposal carries no vote: the quorum stays until a majority of the members approves
    sent = world.qv.propose(admin, BANK, 0)
    assert not sent.executed and reg.role_rule(BANK).quorum == 3
    with reverts("ConsortiumMembershipNotMember", account=admin.address):
        world.qv.approve(admin, sent.id)
    assert not world.qv.passed(world.qv.approve(world.m[0], sent.id))
    assert reg.role_rule(BANK).quorum == 3


def test_a_majority_of_members_lowers_a_quorum(world: World) -> None:
    chain, qv, (m0, m1, m2) = world.chain, world.qv, world.m
    world.bootstrap()
    world.reg.set_role_rule(world.admin, BANK, [LICENCE], 3)
    events = world.reg.contract.events
    # a member's proposal carries its vote; the second of three makes the majority
    sent = qv.propose(m0, BANK, 1)
    (opened,) = events.QuorumProposed().process_receipt(sent.tx.receipt, errors=DISCARD)
    assert (opened["args"]["id"], opened["args"]["role"], opened["args"]["proposer"]) == (1, BANK, m0.address)
    assert (opened["args"]["current"], opened["args"]["quorum"]) == (3, 1)
    assert opened["args"]["expiresAt"] == now(chain) + WEEK
    p = qv.proposal(sent.id)
    assert (p.role, p.quorum, p.voters, p.approvals, p.executed) == (BANK, 1, (m0.address,), 1, False)
    assert qv.open_about(BANK) == p and world.reg.role_rule(BANK).quorum == 3
    result = qv.approve(m1, sent.id)
    (approved,) = events.QuorumProposalApproved().process_receipt(result.receipt, errors=DISCARD)
    assert (approved["args"]["member"], approved["args"]["approvals"], approved["args"]["needed"]) == (
        m1.address,
        2,
        2,
    )
    (executed,) = events.QuorumProposalExecuted().process_receipt(result.receipt, errors=DISCARD)
    assert (executed["args"]["id"], executed["args"]["role"], executed["args"]["quorum"]) == (1, BANK, 1)
    (rule_set,) = events.RoleRuleSet().process_receipt(result.receipt, errors=DISCARD)
    assert (rule_set["args"]["role"], rule_set["args"]["topics"], rule_set["args"]["quorum"]) == (
        BANK,
        [LICENCE],
        1,
    )
    rule = world.reg.role_rule(BANK)
    assert (rule.quorum, rule.topics) == (1, (LICENCE,))  # the topics stay
    assert qv.open_about(BANK) is None and qv.latest_about(BANK) == qv.proposal(sent.id)
    # to 0: a member who loses its seat mid-vote stops counting
    to_zero = qv.propose(m2, BANK, 0)
    removal = world.ms.propose(m0, m2.address, admit=False)
    world.ms.approve(m1, removal.id)
    assert not world.reg.is_member(m2.address) and qv.proposal(to_zero.id).approvals == 0
    assert not qv.passed(qv.approve(m0, to_zero.id))  # 1 of the 2 needed
    assert qv.passed(qv.approve(m1, to_zero.id))
    assert world.reg.role_rule(BANK).quorum == 0


def test_quorum_proposal_refusals_change_nothing(world: World) -> None:
    chain, qv, admin, (m0, m1, m2) = world.chain, world.qv, world.admin, world.m
    world.bootstrap()
    world.reg.set_role_rule(admin, BANK, [LICENCE], 2)
    sent = qv.propose(m0, BANK, 0)
    before = world.state()
    with reverts("RoleQuorumVotesNotProposer", caller=world.outsider.address):
        qv.propose(world.outsider, BANK, 0)
    with reverts("ParticipantRegistryUnknownRole", role=SUPPLIER):
        qv.propose(m0, SUPPLIER, 0)
    for not_lower in (2, 3):
        with reverts("RoleQuorumVotesNotLower", role=BANK, current=2, quorum=not_lower):
            qv.propose(m1, BANK, not_lower)
    with reverts("RoleQuorumVotesProposalPending", role=BANK, id=sent.id):
        qv.propose(admin, BANK, 1)
    with reverts("ConsortiumMembershipNotMember", account=world.outsider.address):
        qv.approve(world.outsider, sent.id)
    with reverts("RoleQuorumVotesAlreadyVoted", member=m0.address, id=sent.id):
        qv.approve(m0, sent.id)
    for bad in (0, sent.id + 1):
        with reverts("RoleQuorumVotesUnknownProposal", id=bad):
            qv.approve(m1, bad)
        with reverts("RoleQuorumVotesUnknownProposal", id=bad):
            chain.call(world.fns.quorumProposal(bad))
    assert world.state() == before
    qv.approve(m1, sent.id)
    passed = world.state()
    with reverts("RoleQuorumVotesProposalExecuted", id=sent.id):
        qv.approve(m2, sent.id)
    with reverts("RoleQuorumVotesNotLower", role=BANK, current=0, quorum=0):
        qv.propose(m2, BANK, 0)
    assert world.state() == passed


def test_a_quorum_proposal_lapses_after_a_week(world: World) -> None:
    chain, qv, (m0, m1, _) = world.chain, world.qv, world.m
    world.bootstrap()
    world.reg.set_role_rule(world.admin, BANK, [], 2)
    sent = qv.propose(m0, BANK, 0)
    expires = qv.proposal(sent.id).expires_at
    set_time(chain, expires)
    before = world.state()
    with reverts("RoleQuorumVotesProposalExpired", id=sent.id, expiresAt=expires):
        qv.approve(m1, sent.id)
    assert world.state() == before and world.reg.role_rule(BANK).quorum == 2
    assert qv.open_about(BANK) is None
    again = qv.propose(m1, BANK, 1)  # a lapsed proposal no longer blocks a new one
    assert again.id == sent.id + 1
    assert qv.passed(qv.approve(m0, again.id)) and world.reg.role_rule(BANK).quorum == 1


# ---------------------------------------------------------------- a role is added to an action by vote only


def configure_finance(world: World) -> None:
    """Three members; bank (quorum 2) finances; supplier (quorum 0) and auditor (quorum 0) are defined."""
    admin, reg = world.admin, world.reg
    world.bootstrap()
    reg.set_role_rule(admin, BANK, [LICENCE], 2)
    reg.set_role_rule(admin, SUPPLIER, [], 0)
    reg.set_role_rule(admin, AUDITOR, [], 0)
    reg.set_action_roles(admin, FINANCE, [BANK])


def test_a_majority_of_members_adds_a_role_to_an_action(world: World) -> None:
    chain, av, reg, (m0, m1, m2) = world.chain, world.av, world.reg, world.m
    configure_finance(world)
    events = reg.contract.events
    # a member's proposal carries its vote; the second of three makes the majority
    sent = av.propose(m0, FINANCE, SUPPLIER)
    (opened,) = events.ActionRoleProposed().process_receipt(sent.tx.receipt, errors=DISCARD)
    assert (opened["args"]["id"], opened["args"]["action"], opened["args"]["role"]) == (1, FINANCE, SUPPLIER)
    assert (opened["args"]["proposer"], opened["args"]["expiresAt"]) == (m0.address, now(chain) + WEEK)
    p = av.proposal(sent.id)
    assert (p.action, p.role, p.voters, p.approvals, p.executed) == (
        FINANCE,
        SUPPLIER,
        (m0.address,),
        1,
        False,
    )
    assert not sent.executed and av.open_about(FINANCE, SUPPLIER) == p and reg.action_roles(FINANCE) == [BANK]
    result = av.approve(m1, sent.id)
    (approved,) = events.ActionRoleProposalApproved().process_receipt(result.receipt, errors=DISCARD)
    assert (approved["args"]["member"], approved["args"]["approvals"], approved["args"]["needed"]) == (
        m1.address,
        2,
        2,
    )
    (executed,) = events.ActionRoleProposalExecuted().process_receipt(result.receipt, errors=DISCARD)
    assert (executed["args"]["id"], executed["args"]["action"], executed["args"]["role"]) == (
        1,
        FINANCE,
        SUPPLIER,
    )
    (roles_set,) = events.ActionRolesSet().process_receipt(result.receipt, errors=DISCARD)
    assert (roles_set["args"]["action"], roles_set["args"]["roles"]) == (FINANCE, [BANK, SUPPLIER])
    assert reg.action_roles(FINANCE) == [BANK, SUPPLIER]
    assert av.open_about(FINANCE, SUPPLIER) is None and av.latest_about(FINANCE, SUPPLIER) == av.proposal(
        sent.id
    )
    assert av.latest_about(FINANCE, AUDITOR) is None
    # the admin's proposal carries no vote; a member who loses its seat mid-vote stops counting
    by_admin = av.propose(world.admin, FINANCE, AUDITOR)
    assert not by_admin.executed and av.proposal(by_admin.id).voters == ()
    av.approve(m2, by_admin.id)
    removal = world.ms.propose(m0, m2.address, admit=False)
    world.ms.approve(m1, removal.id)
    assert av.proposal(by_admin.id).approvals == 0
    assert not av.passed(av.approve(m0, by_admin.id))  # 1 of the 2 needed
    assert av.passed(av.approve(m1, by_admin.id))
    assert reg.action_roles(FINANCE) == [BANK, SUPPLIER, AUDITOR]


def test_an_action_role_proposal_on_an_action_never_set(world: World) -> None:
    """A proposal may set an action's roles first; the admin may also set them while it is open, the
    proposal then adds nothing twice. Either way the action's roles were set: the admin only narrows."""
    av, reg, admin, (m0, m1, _) = world.av, world.reg, world.admin, world.m
    configure_finance(world)
    assert not reg.action_roles_set(ENROLL)
    sent = av.propose(m0, ENROLL, SUPPLIER)
    reg.set_action_roles(admin, ENROLL, [SUPPLIER, AUDITOR])  # the first setting stays the admin's
    assert av.passed(av.approve(m1, sent.id))
    assert reg.action_roles(ENROLL) == [SUPPLIER, AUDITOR]
    reg.set_action_roles(admin, ENROLL, [])
    again = av.propose(m0, ENROLL, SUPPLIER)
    assert av.passed(av.approve(m1, again.id))
    assert reg.action_roles(ENROLL) == [SUPPLIER] and reg.action_roles_set(ENROLL)
    with reverts("ParticipantRegistryActionRoleByVoteOnly", action=ENROLL, role=AUDITOR):
        reg.set_action_roles(admin, ENROLL, [AUDITOR])


def test_action_role_proposal_refusals_change_nothing(world: World) -> None:
    chain, av, admin, (m0, m1, m2) = world.chain, world.av, world.admin, world.m
    configure_finance(world)
    sent = av.propose(m0, FINANCE, SUPPLIER)
    before = world.state()
    pirate = party_role("pirate")
    with reverts("RoleQuorumVotesNotProposer", caller=world.outsider.address):
        av.propose(world.outsider, FINANCE, AUDITOR)
    with reverts("ParticipantRegistryZeroAction"):
        av.propose(m1, bytes(32), AUDITOR)
    with reverts("ParticipantRegistryUnknownRole", role=pirate):
        av.propose(m1, FINANCE, pirate)
    with reverts("ParticipantRegistryRoleAlreadyAllowed", action=FINANCE, role=BANK):
        av.propose(m1, FINANCE, BANK)
    with reverts("RoleQuorumVotesActionRolePending", action=FINANCE, role=SUPPLIER, id=sent.id):
        av.propose(admin, FINANCE, SUPPLIER)
    with reverts("ConsortiumMembershipNotMember", account=world.outsider.address):
        av.approve(world.outsider, sent.id)
    with reverts("ConsortiumMembershipNotMember", account=admin.address):
        av.approve(admin, sent.id)
    with reverts("RoleQuorumVotesAlreadyVoted", member=m0.address, id=sent.id):
        av.approve(m0, sent.id)
    for bad in (0, sent.id + 1):
        with reverts("RoleQuorumVotesUnknownProposal", id=bad):
            av.approve(m1, bad)
        with reverts("RoleQuorumVotesUnknownProposal", id=bad):
            chain.call(world.fns.actionRoleProposal(bad))
    assert world.state() == before
    av.approve(m1, sent.id)
    passed = world.state()
    with reverts("RoleQuorumVotesProposalExecuted", id=sent.id):
        av.approve(m2, sent.id)
    with reverts("ParticipantRegistryRoleAlreadyAllowed", action=FINANCE, role=SUPPLIER):
        av.propose(m2, FINANCE, SUPPLIER)
    assert world.state() == passed


def test_an_action_role_proposal_needs_room(world: World) -> None:
    """An action holds at most MAX_ROLES_PER_ACTION roles: a proposal for one more is refused, and so is
    the vote that would pass a second proposal opened while there was room for one."""
    av, reg, admin, (m0, m1, m2) = world.av, world.reg, world.admin, world.m
    configure_finance(world)
    extra = [party_role(f"r{i}") for i in range(17)]
    for role in extra:
        reg.set_role_rule(admin, role, [], 0)
    reg.set_action_roles(admin, ENROLL, extra[:15])
    first = av.propose(m0, ENROLL, extra[15])
    second = av.propose(m0, ENROLL, extra[16])
    assert av.passed(av.approve(m1, first.id))
    before = world.state()
    with reverts("ParticipantRegistryTooManyRoles", count=17, max=16):
        av.propose(m0, ENROLL, SUPPLIER)
    with reverts("ParticipantRegistryTooManyRoles", count=17, max=16):
        av.approve(m2, second.id)
    assert world.state() == before and len(reg.action_roles(ENROLL)) == 16
    # once the admin narrows the action, the vote passes
    reg.set_action_roles(admin, ENROLL, extra[1:16])
    assert av.passed(av.approve(m2, second.id))
    assert reg.action_roles(ENROLL) == [*extra[1:16], extra[16]]


def test_an_action_role_proposal_lapses_after_a_week(world: World) -> None:
    chain, av, (m0, m1, _) = world.chain, world.av, world.m
    configure_finance(world)
    sent = av.propose(m0, FINANCE, AUDITOR)
    expires = av.proposal(sent.id).expires_at
    set_time(chain, expires)
    before = world.state()
    with reverts("RoleQuorumVotesProposalExpired", id=sent.id, expiresAt=expires):
        av.approve(m1, sent.id)
    assert world.state() == before and world.reg.action_roles(FINANCE) == [BANK]
    assert av.open_about(FINANCE, AUDITOR) is None
    again = av.propose(m1, FINANCE, AUDITOR)  # a lapsed proposal no longer blocks a new one
    assert again.id == sent.id + 1
    assert av.passed(av.approve(m0, again.id)) and world.reg.action_roles(FINANCE) == [BANK, AUDITOR]
