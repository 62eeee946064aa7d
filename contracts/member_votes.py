"""The consortium's proposals, client side: one reading and approving of every kind (``MemberVotes.sol``).

Every decision the consortium admin may not take alone is a proposal of some kind, decided the same
way on chain (``MemberVotes.sol``): a member change (:mod:`contracts.membership`), a lower quorum or a
role newly allowed to perform an action (:mod:`contracts.quorum_votes`). Each kind has its own
functions and events, named by a :class:`VoteKind`; :class:`ProposalVotes` opens, approves and reads
proposals of any kind through them, and each kind's client adds what its proposals are about (the
arguments of ``propose``, ``latest_about`` and ``open_about``, and the fields of its
:class:`Proposal`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from web3.logs import DISCARD

from contracts.chain import TxResult

if TYPE_CHECKING:
    from contracts.participants import ParticipantRegistryClient

__all__ = ["Proposal", "ProposalSent", "ProposalVotes", "VoteKind"]


@dataclass(frozen=True, kw_only=True)
class Proposal(ABC):
    """What every proposal has, whatever its kind, as the chain holds it now (its ``Ballot``)."""

    id: int
    executed: bool
    proposer: str
    expires_at: int
    voters: tuple[str, ...]
    #: Approvals by accounts that are members now.
    approvals: int

    def is_open(self, now: int) -> bool:
        """Whether it can still pass at block time ``now``."""
        return not self.executed and self.expires_at > now

    @abstractmethod
    def describe(self) -> str:
        """One line saying what the proposal would change."""


@dataclass(frozen=True, kw_only=True)
class ProposalSent:
    """A proposal as opened: its id, whether it passed at once (a lone member's), and the transaction."""

    id: int
    executed: bool
    tx: TxResult


@dataclass(frozen=True, kw_only=True)
class VoteKind:
    """The contract's names for one kind of proposal."""

    #: The functions: open one, approve one, how many were opened, read one, the latest about a subject.
    propose: str
    approve: str
    count: str
    proposal: str
    latest: str
    #: The events: one was opened, one passed.
    proposed_event: str
    executed_event: str


P = TypeVar("P", bound=Proposal)


class ProposalVotes(ABC, Generic[P]):
    """The proposals of one kind (:attr:`KIND`) on one ParticipantRegistry."""

    KIND: VoteKind

    def __init__(self, registry: ParticipantRegistryClient) -> None:
        self._reg = registry
        self._fns = registry.contract.functions

    def _fn(self, name: str) -> Any:
        return getattr(self._fns, name)

    def _propose(self, proposer: LocalAccount, *args: Any) -> ProposalSent:
        """Open a proposal with the kind's ``propose`` arguments ``args``."""
        result = self._reg.chain.transact(self._fn(self.KIND.propose)(*args), proposer)
        event = getattr(self._reg.contract.events, self.KIND.proposed_event)
        (opened,) = event().process_receipt(result.receipt, errors=DISCARD)
        return ProposalSent(id=int(opened["args"]["id"]), executed=self.passed(result), tx=result)

    def approve(self, member: LocalAccount, proposal_id: int) -> TxResult:
        """Approve an open proposal as a member; the vote making the majority carries it out."""
        return self._reg.chain.transact(self._fn(self.KIND.approve)(proposal_id), member)

    def passed(self, result: TxResult) -> bool:
        """Whether the transaction carried a proposal out."""
        event = getattr(self._reg.contract.events, self.KIND.executed_event)
        return bool(event().process_receipt(result.receipt, errors=DISCARD))

    def needed(self) -> int:
        """The approvals a proposal needs now (more than half of the current members)."""
        return int(self._reg.chain.call(self._fns.membersNeeded()))

    def count(self) -> int:
        """How many proposals were opened (ids 1 to this)."""
        return int(self._reg.chain.call(self._fn(self.KIND.count)()))

    def proposal(self, proposal_id: int) -> P:
        """Proposal ``proposal_id`` as the chain holds it now (an unknown id reverts)."""
        fn = self._fn(self.KIND.proposal)(proposal_id)
        struct, voters, approvals = self._reg.chain.call(fn)
        names = [c["name"] for c in fn.abi["outputs"][0]["components"]]
        fields = dict(zip(names, struct, strict=True))
        ballot: dict[str, Any] = {
            "id": proposal_id,
            "executed": bool(fields.pop("executed")),
            "proposer": to_checksum_address(fields.pop("proposer")),
            "expires_at": int(fields.pop("expiresAt")),
            "voters": tuple(to_checksum_address(v) for v in voters),
            "approvals": int(approvals),
        }
        return self._decode(fields, ballot)

    @abstractmethod
    def _decode(self, fields: Mapping[str, Any], ballot: dict[str, Any]) -> P:
        """The proposal from what the kind's struct holds besides the ballot (``fields``, by the ABI's
        names) and the ballot's fields (``ballot``, by :class:`Proposal`'s)."""

    def _latest_about(self, *subject: Any) -> P | None:
        """The latest proposal about ``subject`` (the kind's ``latest`` arguments), open or not, or None."""
        proposal_id = int(self._reg.chain.call(self._fn(self.KIND.latest)(*subject)))
        return self.proposal(proposal_id) if proposal_id else None

    def _open_about(self, *subject: Any) -> P | None:
        """The proposal about ``subject`` that can still pass now, or None."""
        latest = self._latest_about(*subject)
        now = int(self._reg.chain.block()["timestamp"])
        return latest if latest is not None and latest.is_open(now) else None
