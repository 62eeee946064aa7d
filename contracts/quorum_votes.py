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
``MEMBER_PROPOSAL_TTL`` (7 days), like a member change (:mod:`contracts.membership`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from web3.logs import DISCARD

from contracts.chain import TxResult
from contracts.membership import ProposalSent
from contracts.participant_ids import id_name

if TYPE_CHECKING:
    from contracts.participants import ParticipantRegistryClient

__all__ = ["ActionRoleProposal", "ActionRoleVotesClient", "QuorumProposal", "QuorumVotesClient"]


@dataclass(frozen=True, kw_only=True)
class QuorumProposal:
    """A proposal to lower ``role``'s quorum to ``quorum``, as the chain holds it now."""

    id: int
    role: bytes
    quorum: int
    executed: bool
    proposer: str
    expires_at: int
    voters: tuple[str, ...]
    #: Approvals by accounts that are members now.
    approvals: int

    def is_open(self, now: int) -> bool:
        """Whether it can still pass at block time ``now``."""
        return not self.executed and self.expires_at > now

    def describe(self) -> str:
        return f"proposal {self.id}: lower the quorum of {id_name(self.role)} to {self.quorum}"


class QuorumVotesClient:
    """The quorum proposals of one ParticipantRegistry (``registry.quorum_votes``)."""

    def __init__(self, registry: ParticipantRegistryClient) -> None:
        self._reg = registry
        self._fns = registry.contract.functions

    def propose(self, proposer: LocalAccount, role: bytes, quorum: int) -> ProposalSent:
        """Open a proposal to lower ``role``'s quorum to ``quorum``; by a member (its vote counts at once)
        or the consortium admin."""
        result = self._reg.chain.transact(self._fns.proposeRoleQuorum(role, quorum), proposer)
        events = self._reg.contract.events
        (opened,) = events.QuorumProposed().process_receipt(result.receipt, errors=DISCARD)
        return ProposalSent(id=int(opened["args"]["id"]), executed=self.passed(result), tx=result)

    def approve(self, member: LocalAccount, proposal_id: int) -> TxResult:
        """Approve an open proposal as a member; the vote making the majority lowers the quorum."""
        return self._reg.chain.transact(self._fns.approveRoleQuorum(proposal_id), member)

    def passed(self, result: TxResult) -> bool:
        """Whether the transaction carried a proposal out."""
        events = self._reg.contract.events
        return bool(events.QuorumProposalExecuted().process_receipt(result.receipt, errors=DISCARD))

    def count(self) -> int:
        """How many proposals were opened (ids 1 to this)."""
        return int(self._reg.chain.call(self._fns.quorumProposalCount()))

    def proposal(self, proposal_id: int) -> QuorumProposal:
        (role, proposer, expires_at, quorum, executed), voters, approvals = self._reg.chain.call(
            self._fns.quorumProposal(proposal_id)
        )
        return QuorumProposal(
            id=proposal_id,
            role=bytes(role),
            quorum=int(quorum),
            executed=bool(executed),
            proposer=to_checksum_address(proposer),
            expires_at=int(expires_at),
            voters=tuple(to_checksum_address(v) for v in voters),
            approvals=int(approvals),
        )

    def latest_about(self, role: bytes) -> QuorumProposal | None:
        """The latest proposal about ``role`` (open or not), or None."""
        proposal_id = int(self._reg.chain.call(self._fns.latestQuorumProposal(role)))
        return self.proposal(proposal_id) if proposal_id else None

    def open_about(self, role: bytes) -> QuorumProposal | None:
        """The proposal about ``role`` that can still pass now, or None."""
        latest = self.latest_about(role)
        now = int(self._reg.chain.block()["timestamp"])
        return latest if latest is not None and latest.is_open(now) else None


@dataclass(frozen=True, kw_only=True)
class ActionRoleProposal:
    """A proposal to let ``role`` perform ``action`` too, as the chain holds it now."""

    id: int
    action: bytes
    role: bytes
    executed: bool
    proposer: str
    expires_at: int
    voters: tuple[str, ...]
    #: Approvals by accounts that are members now.
    approvals: int

    def is_open(self, now: int) -> bool:
        """Whether it can still pass at block time ``now``."""
        return not self.executed and self.expires_at > now

    def describe(self) -> str:
        return f"action-role proposal {self.id}: let {id_name(self.role)} perform {id_name(self.action)}"


class ActionRoleVotesClient:
    """The action-role proposals of one ParticipantRegistry (``registry.action_role_votes``)."""

    def __init__(self, registry: ParticipantRegistryClient) -> None:
        self._reg = registry
        self._fns = registry.contract.functions

    def propose(self, proposer: LocalAccount, action: bytes, role: bytes) -> ProposalSent:
        """Open a proposal to let ``role`` perform ``action``; by a member (its vote counts at once) or the
        consortium admin."""
        result = self._reg.chain.transact(self._fns.proposeActionRole(action, role), proposer)
        events = self._reg.contract.events
        (opened,) = events.ActionRoleProposed().process_receipt(result.receipt, errors=DISCARD)
        return ProposalSent(id=int(opened["args"]["id"]), executed=self.passed(result), tx=result)

    def approve(self, member: LocalAccount, proposal_id: int) -> TxResult:
        """Approve an open proposal as a member; the vote making the majority adds the role."""
        return self._reg.chain.transact(self._fns.approveActionRole(proposal_id), member)

    def passed(self, result: TxResult) -> bool:
        """Whether the transaction carried a proposal out."""
        events = self._reg.contract.events
        return bool(events.ActionRoleProposalExecuted().process_receipt(result.receipt, errors=DISCARD))

    def count(self) -> int:
        """How many proposals were opened (ids 1 to this)."""
        return int(self._reg.chain.call(self._fns.actionRoleProposalCount()))

    def proposal(self, proposal_id: int) -> ActionRoleProposal:
        (action, role, proposer, expires_at, executed), voters, approvals = self._reg.chain.call(
            self._fns.actionRoleProposal(proposal_id)
        )
        return ActionRoleProposal(
            id=proposal_id,
            action=bytes(action),
            role=bytes(role),
            executed=bool(executed),
            proposer=to_checksum_address(proposer),
            expires_at=int(expires_at),
            voters=tuple(to_checksum_address(v) for v in voters),
            approvals=int(approvals),
        )

    def latest_about(self, action: bytes, role: bytes) -> ActionRoleProposal | None:
        """The latest proposal to let ``role`` perform ``action`` (open or not), or None."""
        proposal_id = int(self._reg.chain.call(self._fns.latestActionRoleProposal(action, role)))
        return self.proposal(proposal_id) if proposal_id else None

    def open_about(self, action: bytes, role: bytes) -> ActionRoleProposal | None:
        """The proposal to let ``role`` perform ``action`` that can still pass now, or None."""
        latest = self.latest_about(action, role)
        now = int(self._reg.chain.block()["timestamp"])
        return latest if latest is not None and latest.is_open(now) else None
