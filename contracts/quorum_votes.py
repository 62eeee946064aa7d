"""Weakening the members' check on admissions: the consortium members' decision, not the admin's
(issue 12.12).

A role's quorum is how many members must approve an application: the members' check on whom the
consortium admits. The consortium admin may not weaken it alone, in either of two ways:

- Lowering a role's quorum. The admin defines a role and may raise its quorum (``setRoleRule``), which
  refuses a lower quorum for a defined role (``ParticipantRegistryQuorumLowerByVoteOnly``). A lower
  one, 0 above all, is a :class:`QuorumProposal` (:class:`QuorumVotesClient`).
- Letting one more role perform an action whose roles were set already (the admin would otherwise
  define a role with quorum 0 and map the action to it). ``setActionRoles`` then only narrows
  (``ParticipantRegistryActionRoleByVoteOnly``); an added role is an :class:`ActionRoleProposal`
  (:class:`ActionRoleVotesClient`). The first setting of an action's roles stays the admin's.

Both are proposals of ``RoleQuorumVotes.sol``: opened by a member (its vote counts at once) or the
consortium admin, they pass when more than half of the current members approve them within
``MEMBER_PROPOSAL_TTL`` (7 days), like a member change (:mod:`contracts.membership`); both clients read
and approve them through :class:`~contracts.member_votes.ProposalVotes`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount

from contracts.member_votes import Proposal, ProposalSent, ProposalVotes, VoteKind
from contracts.participant_ids import id_name

__all__ = ["ActionRoleProposal", "ActionRoleVotesClient", "QuorumProposal", "QuorumVotesClient"]


@dataclass(frozen=True, kw_only=True)
class QuorumProposal(Proposal):
    """A proposal to lower ``role``'s quorum to ``quorum``, as the chain holds it now."""

    role: bytes
    quorum: int

    def describe(self) -> str:
        return f"proposal {self.id}: lower the quorum of {id_name(self.role)} to {self.quorum}"


class QuorumVotesClient(ProposalVotes[QuorumProposal]):
    """The quorum proposals of one ParticipantRegistry (``registry.quorum_votes``); the vote making the
    majority lowers the quorum."""

    KIND = VoteKind(
        propose="proposeRoleQuorum",
        approve="approveRoleQuorum",
        count="quorumProposalCount",
        proposal="quorumProposal",
        latest="latestQuorumProposal",
        proposed_event="QuorumProposed",
        executed_event="QuorumProposalExecuted",
    )

    def propose(self, proposer: LocalAccount, role: bytes, quorum: int) -> ProposalSent:
        """Open a proposal to lower ``role``'s quorum to ``quorum``; by a member (its vote counts at once)
        or the consortium admin."""
        return self._propose(proposer, role, quorum)

    def _decode(self, fields: Mapping[str, Any], ballot: dict[str, Any]) -> QuorumProposal:
        return QuorumProposal(role=bytes(fields["role"]), quorum=int(fields["quorum"]), **ballot)

    def latest_about(self, role: bytes) -> QuorumProposal | None:
        """The latest proposal about ``role`` (open or not), or None."""
        return self._latest_about(role)

    def open_about(self, role: bytes) -> QuorumProposal | None:
        """The proposal about ``role`` that can still pass now, or None."""
        return self._open_about(role)


@dataclass(frozen=True, kw_only=True)
class ActionRoleProposal(Proposal):
    """A proposal to let ``role`` perform ``action`` too, as the chain holds it now."""

    action: bytes
    role: bytes

    def describe(self) -> str:
        return f"action-role proposal {self.id}: let {id_name(self.role)} perform {id_name(self.action)}"


class ActionRoleVotesClient(ProposalVotes[ActionRoleProposal]):
    """The action-role proposals of one ParticipantRegistry (``registry.action_role_votes``); the vote
    making the majority adds the role."""

    KIND = VoteKind(
        propose="proposeActionRole",
        approve="approveActionRole",
        count="actionRoleProposalCount",
        proposal="actionRoleProposal",
        latest="latestActionRoleProposal",
        proposed_event="ActionRoleProposed",
        executed_event="ActionRoleProposalExecuted",
    )

    def propose(self, proposer: LocalAccount, action: bytes, role: bytes) -> ProposalSent:
        """Open a proposal to let ``role`` perform ``action``; by a member (its vote counts at once) or the
        consortium admin."""
        return self._propose(proposer, action, role)

    def _decode(self, fields: Mapping[str, Any], ballot: dict[str, Any]) -> ActionRoleProposal:
        return ActionRoleProposal(action=bytes(fields["action"]), role=bytes(fields["role"]), **ballot)

    def latest_about(self, action: bytes, role: bytes) -> ActionRoleProposal | None:
        """The latest proposal to let ``role`` perform ``action`` (open or not), or None."""
        return self._latest_about(action, role)

    def open_about(self, action: bytes, role: bytes) -> ActionRoleProposal | None:
        """The proposal to let ``role`` perform ``action`` that can still pass now, or None."""
        return self._open_about(action, role)
