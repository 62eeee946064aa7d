"""Consortium members: set once, then changed only by a majority of the members (issue 12.12).

The ParticipantRegistry's members approve applications, and a role's quorum counts their approvals:
whoever made members alone could make any quorum. The contract (``ConsortiumMembership.sol``)
therefore lets the consortium admin set the first members once (:meth:`MembershipClient.bootstrap`,
done by ``supet consortium apply`` on a fresh registry); afterwards a member is admitted or removed
only by a :class:`MemberProposal` that more than half of the current members approve within
``MEMBER_PROPOSAL_TTL`` (7 days). The admin may open proposals; it never passes them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from web3.logs import DISCARD

from contracts.chain import TxResult

if TYPE_CHECKING:
    from contracts.participants import ParticipantRegistryClient

__all__ = ["MemberProposal", "MembershipClient", "ProposalSent"]


@dataclass(frozen=True, kw_only=True)
class MemberProposal:
    """A proposal to admit (``admit``) or remove ``account``, as the chain holds it now."""

    id: int
    account: str
    admit: bool
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
        what = "admit" if self.admit else "remove"
        return f"proposal {self.id}: {what} {self.account}"


@dataclass(frozen=True, kw_only=True)
class ProposalSent:
    """A proposal as opened: its id, whether it passed at once (a lone member's), and the transaction."""

    id: int
    executed: bool
    tx: TxResult


class MembershipClient:
    """The member governance of one ParticipantRegistry (``registry.membership``)."""

    def __init__(self, registry: ParticipantRegistryClient) -> None:
        self._reg = registry
        self._fns = registry.contract.functions

    def bootstrap(self, admin: LocalAccount, members: Sequence[str]) -> TxResult:
        """Set the first members (once, by the consortium admin)."""
        accounts = [to_checksum_address(m) for m in members]
        return self._reg.chain.transact(self._fns.bootstrapMembers(accounts), admin)

    def propose(self, proposer: LocalAccount, account: str, *, admit: bool = True) -> ProposalSent:
        """Open a proposal to admit (or, with ``admit=False``, remove) ``account``; by a member (its vote
        counts at once) or the consortium admin."""
        result = self._reg.chain.transact(
            self._fns.proposeMember(to_checksum_address(account), admit), proposer
        )
        events = self._reg.contract.events
        (opened,) = events.MemberProposed().process_receipt(result.receipt, errors=DISCARD)
        executed = events.MemberProposalExecuted().process_receipt(result.receipt, errors=DISCARD)
        return ProposalSent(id=int(opened["args"]["id"]), executed=bool(executed), tx=result)

    def approve(self, member: LocalAccount, proposal_id: int) -> TxResult:
        """Approve an open proposal as a member; the vote making the majority carries it out."""
        return self._reg.chain.transact(self._fns.approveMemberProposal(proposal_id), member)

    def passed(self, result: TxResult) -> bool:
        """Whether the transaction carried a proposal out."""
        return bool(
            self._reg.contract.events.MemberProposalExecuted().process_receipt(result.receipt, errors=DISCARD)
        )

    def is_bootstrapped(self) -> bool:
        return bool(self._reg.chain.call(self._fns.membersBootstrapped()))

    def needed(self) -> int:
        """The approvals a proposal needs now (more than half of the current members)."""
        return int(self._reg.chain.call(self._fns.membersNeeded()))

    def count(self) -> int:
        """How many proposals were opened (ids 1 to this)."""
        return int(self._reg.chain.call(self._fns.memberProposalCount()))

    def proposal(self, proposal_id: int) -> MemberProposal:
        (account, admit, executed, proposer, expires_at), voters, approvals = self._reg.chain.call(
            self._fns.memberProposal(proposal_id)
        )
        return MemberProposal(
            id=proposal_id,
            account=to_checksum_address(account),
            admit=bool(admit),
            executed=bool(executed),
            proposer=to_checksum_address(proposer),
            expires_at=int(expires_at),
            voters=tuple(to_checksum_address(v) for v in voters),
            approvals=int(approvals),
        )

    def latest_about(self, account: str) -> MemberProposal | None:
        """The latest proposal about ``account`` (open or not), or None."""
        proposal_id = int(self._reg.chain.call(self._fns.latestMemberProposal(to_checksum_address(account))))
        return self.proposal(proposal_id) if proposal_id else None

    def open_about(self, account: str) -> MemberProposal | None:
        """The proposal about ``account`` that can still pass now, or None."""
        latest = self.latest_about(account)
        now = int(self._reg.chain.block()["timestamp"])
        return latest if latest is not None and latest.is_open(now) else None
