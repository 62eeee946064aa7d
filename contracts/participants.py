"""Typed client of the ParticipantRegistry: rule-based admission of supply-chain parties.

- :class:`ParticipantRegistryClient`: every write and view of the contract, with
  :meth:`~ParticipantRegistryClient.why_not_admitted` decoded into :class:`AdmissionStatus`;
  its ``membership`` (:class:`~contracts.membership.MembershipClient`) changes the members, and
  its ``quorum_votes`` (:class:`~contracts.quorum_votes.QuorumVotesClient`) lowers a role's quorum,
  and its ``action_role_votes`` (:class:`~contracts.quorum_votes.ActionRoleVotesClient`) lets one more
  role perform an action whose roles were set, both of which the admin alone cannot.
- :func:`deploy_participant_registry` deploys the contract next to a suite.
- Its identifiers (roles, topics, actions) are :mod:`contracts.participant_ids`; its claims (signed,
  stored, counted) :mod:`contracts.claims`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from web3.types import BlockIdentifier

from contracts.artifacts import load_artifact
from contracts.chain import Chain, TxResult
from contracts.claims import Claim, ClaimDomain, ClaimError, ClaimState, SignedClaim, StoredClaim, sign_claim
from contracts.deployment import Deployment
from contracts.errors import DeploymentError
from contracts.membership import MembershipClient
from contracts.participant_ids import CONSORTIUM_MEMBER_ROLE, id_name
from contracts.quorum_votes import ActionRoleVotesClient, QuorumVotesClient

__all__ = [
    "CONTRACT_NAME",
    "AdmissionStatus",
    "Application",
    "ParticipantRegistryClient",
    "Reason",
    "RoleRule",
    "Suspension",
    "deploy_participant_registry",
    "with_participant_registry",
]

#: The artifact and deployment-file name of the contract.
CONTRACT_NAME = "ParticipantRegistry"


# ---------------------------------------------------------------- records


class Reason(IntEnum):
    """``ParticipantRegistry.Reason``: why a party is not admitted in a role."""

    ADMITTED = 0
    UNKNOWN_ROLE = 1
    SUSPENDED = 2
    NOT_APPLIED = 3
    MISSING_CLAIM = 4
    CLAIM_EXPIRED = 5
    CLAIM_REVOKED = 6
    ISSUER_UNTRUSTED = 7
    NO_QUORUM = 8


@dataclass(frozen=True, kw_only=True)
class AdmissionStatus:
    """The decoded answer of ``whyNotAdmitted(party, role)``."""

    party: str
    role: bytes
    reason: Reason
    topic: bytes
    approvals: int
    needed: int

    @property
    def admitted(self) -> bool:
        return self.reason is Reason.ADMITTED

    def explain(self) -> str:
        """One line for people: what holds the party back, and what to do next."""
        topic = id_name(self.topic)
        match self.reason:
            case Reason.ADMITTED:
                quorum = f" ({self.approvals}/{self.needed} approvals)" if self.needed else ""
                return f"admitted{quorum}"
            case Reason.UNKNOWN_ROLE:
                return "no rule is defined for this role (the consortium admin sets one with role-rule)"
            case Reason.SUSPENDED:
                return "suspended by the consortium (see the suspension reason)"
            case Reason.NOT_APPLIED:
                return "has not applied for this role (supet party apply)"
            case Reason.MISSING_CLAIM:
                return f"holds no claim for topic {topic} (have a trusted issuer sign one, then claim add)"
            case Reason.CLAIM_EXPIRED:
                return f"its claim for topic {topic} expired (add a renewed claim)"
            case Reason.CLAIM_REVOKED:
                return f"its claim for topic {topic} was revoked by its issuer"
            case Reason.ISSUER_UNTRUSTED:
                return f"the issuer of its claim for topic {topic} is no longer trusted for it"
            case Reason.NO_QUORUM:
                return f"needs {self.needed} consortium approvals, has {self.approvals}"
        raise AssertionError(self.reason)  # pragma: no cover - every member is matched


@dataclass(frozen=True, kw_only=True)
class RoleRule:
    """A role's rule: required claim topics and the quorum of approvals (``defined`` False: none)."""

    role: bytes
    defined: bool
    quorum: int
    topics: tuple[bytes, ...]


@dataclass(frozen=True, kw_only=True)
class Application:
    """A party's latest application for a role."""

    active: bool
    round: int
    applied_at: int


@dataclass(frozen=True, kw_only=True)
class Suspension:
    """A party's suspension state and the reason for its last change (``since`` 0: never)."""

    suspended: bool
    since: int
    reason: str


# ---------------------------------------------------------------- the client


class ParticipantRegistryClient:
    """Reads and writes of one ParticipantRegistry."""

    def __init__(self, chain: Chain, deployment: Deployment) -> None:
        self._bind(chain, deployment.address(CONTRACT_NAME))

    @classmethod
    def at(cls, chain: Chain, address: str) -> ParticipantRegistryClient:
        """A client for the registry at ``address`` (without a deployment file)."""
        client = cls.__new__(cls)
        client._bind(chain, address)
        return client

    def _bind(self, chain: Chain, address: str) -> None:
        self.chain = chain
        self.address = to_checksum_address(address)
        self.contract = chain.contract(CONTRACT_NAME, self.address)

    @property
    def membership(self) -> MembershipClient:
        """The members' own governance: the first members once, then proposals a majority passes."""
        return MembershipClient(self)

    @property
    def quorum_votes(self) -> QuorumVotesClient:
        """Lowering a role's quorum: proposals a majority of the members passes."""
        return QuorumVotesClient(self)

    @property
    def action_role_votes(self) -> ActionRoleVotesClient:
        """Letting one more role perform an action whose roles were set: proposals a majority passes."""
        return ActionRoleVotesClient(self)

    @property
    def domain(self) -> ClaimDomain:
        """The EIP-712 domain claims for this registry are signed under."""
        return ClaimDomain(chain_id=self.chain.chain_id, verifying_contract=self.address)

    def _tx(self, fn: Any, sender: LocalAccount) -> TxResult:
        return self.chain.transact(fn, sender)

    def _call(self, fn: Any, block: BlockIdentifier = "latest") -> Any:
        return self.chain.call(fn, block=block)

    # ------------------------------------------------------------ consortium admin

    def set_role_rule(
        self, admin: LocalAccount, role: bytes, topics: Sequence[bytes], quorum: int
    ) -> TxResult:
        return self._tx(self.contract.functions.setRoleRule(role, list(topics), quorum), admin)

    def set_action_roles(self, admin: LocalAccount, action: bytes, roles: Sequence[bytes]) -> TxResult:
        return self._tx(self.contract.functions.setActionRoles(action, list(roles)), admin)

    def add_trusted_issuer(self, admin: LocalAccount, topic: bytes, issuer: str) -> TxResult:
        return self._tx(self.contract.functions.addTrustedIssuer(topic, to_checksum_address(issuer)), admin)

    def remove_trusted_issuer(self, admin: LocalAccount, topic: bytes, issuer: str) -> TxResult:
        return self._tx(
            self.contract.functions.removeTrustedIssuer(topic, to_checksum_address(issuer)), admin
        )

    def suspend(self, admin: LocalAccount, party: str, reason: str) -> TxResult:
        return self._tx(self.contract.functions.suspend(to_checksum_address(party), reason), admin)

    def reinstate(self, admin: LocalAccount, party: str, reason: str) -> TxResult:
        return self._tx(self.contract.functions.reinstate(to_checksum_address(party), reason), admin)

    # ------------------------------------------------------------ claims

    def sign_claim(
        self,
        issuer: LocalAccount,
        *,
        subject: str,
        topic: bytes,
        data_hash: bytes,
        expires_at: int,
        issued_at: int | None = None,
    ) -> SignedClaim:
        """:func:`sign_claim` under this registry's domain."""
        return sign_claim(
            issuer,
            subject=subject,
            topic=topic,
            data_hash=data_hash,
            expires_at=expires_at,
            domain=self.domain,
            issued_at=issued_at,
        )

    def add_claim(self, sender: LocalAccount, signed: SignedClaim) -> TxResult:
        """Submit a signed claim; :class:`ClaimError` if it was signed for another registry."""
        if signed.domain != self.domain:
            raise ClaimError(
                f"the claim was signed for registry {signed.domain.verifying_contract} on chain "
                f"{signed.domain.chain_id}, not {self.address} on chain {self.chain.chain_id}: "
                "have the issuer sign it again for this deployment"
            )
        return self._tx(self.contract.functions.addClaim(signed.claim.as_tuple(), signed.signature), sender)

    def revoke_claim(self, issuer: LocalAccount, claim: Claim) -> TxResult:
        """Revoke ``claim`` (only its issuer may); see :meth:`StoredClaim.claim` to rebuild one."""
        return self._tx(self.contract.functions.revokeClaim(claim.as_tuple()), issuer)

    def claim_id_of(self, claim: Claim) -> bytes:
        return bytes(self._call(self.contract.functions.claimIdOf(claim.as_tuple())))

    def claim_of(self, subject: str, topic: bytes, *, block: BlockIdentifier = "latest") -> StoredClaim:
        address = to_checksum_address(subject)
        issuer, expires_at, revoked, claim_id, data_hash, issued_at = self._call(
            self.contract.functions.claimOf(address, topic), block
        )
        return StoredClaim(
            subject=address,
            topic=bytes(topic),
            issuer=to_checksum_address(issuer),
            expires_at=expires_at,
            revoked=revoked,
            claim_id=bytes(claim_id),
            data_hash=bytes(data_hash),
            issued_at=issued_at,
        )

    def claim_state(self, subject: str, topic: bytes, *, block: BlockIdentifier = "latest") -> ClaimState:
        return ClaimState(
            self._call(self.contract.functions.claimState(to_checksum_address(subject), topic), block)
        )

    def revoke_before(
        self, subject: str, topic: bytes, issuer: str, *, block: BlockIdentifier = "latest"
    ) -> int:
        """The revocation epoch of ``issuer``'s claims for ``subject`` and ``topic``: a claim of theirs
        issued before it (Unix seconds) no longer counts nor can be added (0: none revoked)."""
        fn = self.contract.functions.revokeBefore(
            to_checksum_address(subject), topic, to_checksum_address(issuer)
        )
        return int(self._call(fn, block))

    def is_claim_revoked(self, claim_id: bytes) -> bool:
        return bool(self._call(self.contract.functions.isClaimRevoked(claim_id)))

    def is_trusted_issuer(self, topic: bytes, issuer: str) -> bool:
        return bool(self._call(self.contract.functions.isTrustedIssuer(topic, to_checksum_address(issuer))))

    def trusted_issuers(self, topic: bytes) -> list[str]:
        return [to_checksum_address(a) for a in self._call(self.contract.functions.trustedIssuers(topic))]

    # ------------------------------------------------------------ parties and members

    def apply(self, party: LocalAccount, role: bytes) -> TxResult:
        return self._tx(self.contract.functions.applyFor(role), party)

    def withdraw(self, party: LocalAccount, role: bytes) -> TxResult:
        return self._tx(self.contract.functions.withdraw(role), party)

    def approve(self, member: LocalAccount, party: str, role: bytes) -> TxResult:
        return self._tx(self.contract.functions.approve(to_checksum_address(party), role), member)

    def is_member(self, account: str) -> bool:
        fn = self.contract.functions.hasRole(CONSORTIUM_MEMBER_ROLE, to_checksum_address(account))
        return bool(self._call(fn))

    def members(self) -> list[str]:
        return [
            to_checksum_address(a)
            for a in self._call(self.contract.functions.getRoleMembers(CONSORTIUM_MEMBER_ROLE))
        ]

    # ------------------------------------------------------------ views

    def is_admitted(self, party: str, action: bytes, *, block: BlockIdentifier = "latest") -> bool:
        return bool(self._call(self.contract.functions.isAdmitted(to_checksum_address(party), action), block))

    def is_admitted_as(self, party: str, role: bytes, *, block: BlockIdentifier = "latest") -> bool:
        return bool(self._call(self.contract.functions.isAdmittedAs(to_checksum_address(party), role), block))

    def why_not_admitted(
        self, party: str, role: bytes, *, block: BlockIdentifier = "latest"
    ) -> AdmissionStatus:
        address = to_checksum_address(party)
        reason, topic, approvals, needed = self._call(
            self.contract.functions.whyNotAdmitted(address, role), block
        )
        return AdmissionStatus(
            party=address,
            role=bytes(role),
            reason=Reason(reason),
            topic=bytes(topic),
            approvals=int(approvals),
            needed=int(needed),
        )

    def role_rule(self, role: bytes) -> RoleRule:
        defined, quorum, topics = self._call(self.contract.functions.roleRule(role))
        return RoleRule(
            role=bytes(role), defined=defined, quorum=quorum, topics=tuple(bytes(t) for t in topics)
        )

    def roles(self) -> list[bytes]:
        return [bytes(r) for r in self._call(self.contract.functions.roles())]

    def action_roles(self, action: bytes) -> list[bytes]:
        return [bytes(r) for r in self._call(self.contract.functions.actionRoles(action))]

    def action_roles_set(self, action: bytes) -> bool:
        """Whether ``action``'s roles were set (then the admin only narrows them; an added role is a vote)."""
        return bool(self._call(self.contract.functions.actionRolesSet(action)))

    def application(self, party: str, role: bytes) -> Application:
        active, round_, applied_at = self._call(
            self.contract.functions.application(to_checksum_address(party), role)
        )
        return Application(active=active, round=round_, applied_at=applied_at)

    def approvers(self, party: str, role: bytes) -> list[str]:
        fn = self.contract.functions.approvers(to_checksum_address(party), role)
        return [to_checksum_address(a) for a in self._call(fn)]

    def has_approved(self, member: str, party: str, role: bytes) -> bool:
        fn = self.contract.functions.hasApproved(
            to_checksum_address(member), to_checksum_address(party), role
        )
        return bool(self._call(fn))

    def suspension(self, party: str) -> Suspension:
        suspended, since, reason = self._call(self.contract.functions.suspension(to_checksum_address(party)))
        return Suspension(suspended=suspended, since=since, reason=reason)


# ---------------------------------------------------------------- deployment


def deploy_participant_registry(
    chain: Chain, deployer: LocalAccount, *, deployment: Deployment, admin: str | None = None
) -> str:
    """Deploy a ParticipantRegistry for ``deployment``'s chain; return its address.

    ``admin`` (default: the deployer) gets the default admin (handed over in two steps) and consortium
    admin roles. The registry has no members until the policy's first members are set
    (``membership.bootstrap``, done by :func:`contracts.consortium.apply_policy`).
    The caller records the address in the deployment (``contracts["ParticipantRegistry"]``)
    and decides when contracts start asking it (``DeviceRegistry.setAdmissionGate``): until
    rules, issuers and action roles are set, the gate admits nobody.
    """
    if chain.chain_id != deployment.chain_id:
        raise DeploymentError(
            f"the deployment is for chain {deployment.chain_id} but the node serves chain "
            f"{chain.chain_id}: deploy the participant registry next to its suite"
        )
    result = chain.deploy(CONTRACT_NAME, deployer, to_checksum_address(admin or deployer.address))
    if result.contract_address is None:  # pragma: no cover - a mined constructor always has an address
        raise DeploymentError("the ParticipantRegistry constructor was mined without a contract address")
    return str(result.contract_address)


def with_participant_registry(deployment: Deployment, address: str) -> Deployment:
    """``deployment`` with the registry at ``address`` added (name and artifact hash)."""
    return dataclasses.replace(
        deployment,
        contracts={**deployment.contracts, CONTRACT_NAME: to_checksum_address(address)},
        artifact_hashes={**deployment.artifact_hashes, CONTRACT_NAME: load_artifact(CONTRACT_NAME).file_hash},
    )
