"""Consortium members: set once, then changed only by a majority of the members (issue 12.12).

The ParticipantRegistry's members approve applications, and a role's quorum counts their approvals:
whoever made members alone could make any quorum. The contract (``ConsortiumMembership.sol``)
therefore lets the consortium admin set the first members once (:meth:`MembershipClient.bootstrap`,
done by ``supet consortium apply`` on a fresh registry); afterwards a member is admitted or removed
only by a :class:`MemberProposal` that more than half of the current members approve within
``MEMBER_PROPOSAL_TTL`` (7 days). The admin may open proposals; it never passes them. They are read
and approved like every kind of proposal (:class:`~contracts.member_votes.ProposalVotes`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address

from contracts.chain import TxResult
from contracts.member_votes import Proposal, ProposalSent, ProposalVotes, VoteKind

__all__ = ["MemberProposal", "MembershipClient", "ProposalSent"]


@dataclass(frozen=True, kw_only=True)
class MemberProposal(Proposal):
    """A proposal to admit (``admit``) or remove ``account``, as the chain holds it now."""

    account: str
    admit: bool

    def describe(self) -> str:
        what = "admit" if self.admit else "remove"
        return f"proposal {self.id}: {what} {self.account}"


class MembershipClient(ProposalVotes[MemberProposal]):
    """The member governance of one ParticipantRegistry (``registry.membership``)."""

    KIND = VoteKind(
        propose="proposeMember",
        approve="approveMemberProposal",
        count="memberProposalCount",
        proposal="memberProposal",
        latest="latestMemberProposal",
        proposed_event="MemberProposed",
        executed_event="MemberProposalExecuted",
    )

    def bootstrap(self, admin: LocalAccount, members: Sequence[str]) -> TxResult:
        """Set the first members (once, by the consortium admin)."""
        accounts = [to_checksum_address(m) for m in members]
        return self._reg.chain.transact(self._fns.bootstrapMembers(accounts), admin)

    def propose(self, proposer: LocalAccount, account: str, *, admit: bool = True) -> ProposalSent:
        """Open a proposal to admit (or, with ``admit=False``, remove) ``account``; by a member (its vote
        counts at once) or the consortium admin."""
        return self._propose(proposer, to_checksum_address(account), admit)

    def is_bootstrapped(self) -> bool:
        return bool(self._reg.chain.call(self._fns.membersBootstrapped()))

    def _decode(self, fields: Mapping[str, Any], ballot: dict[str, Any]) -> MemberProposal:
        account = to_checksum_address(fields["account"])
        return MemberProposal(account=account, admit=bool(fields["admit"]), **ballot)

    def latest_about(self, account: str) -> MemberProposal | None:
        """The latest proposal about ``account`` (open or not), or None."""
        return self._latest_about(to_checksum_address(account))

    def open_about(self, account: str) -> MemberProposal | None:
        """The proposal about ``account`` that can still pass now, or None."""
        return self._open_about(to_checksum_address(account))
