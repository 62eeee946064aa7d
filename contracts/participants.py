"""Typed client of the ParticipantRegistry: rule-based admission of supply-chain parties.

- Identifiers: party roles (``keccak256("supet.party.supplier")``), claim topics
  (``keccak256("supet.topic.iso-9001")``) and actions (``keccak256("supet.device.enroll")``),
  by name in :data:`PARTY_ROLES`, :data:`TOPICS`, :data:`ACTIONS`, or from any name with
  :func:`party_role`, :func:`claim_topic`, :func:`action_id`.
- Claims: :func:`sign_claim` has an issuer sign an EIP-712 ``Claim`` for the registry's
  domain; :class:`SignedClaim` travels as JSON (``supet party claim issue`` / ``claim add``).
- :class:`ParticipantRegistryClient`: every write and view of the contract, with
  :meth:`~ParticipantRegistryClient.why_not_admitted` decoded into :class:`AdmissionStatus`;
  its ``membership`` (:class:`~contracts.membership.MembershipClient`) changes the members, which
  the admin alone cannot.
- :func:`deploy_participant_registry` deploys the contract next to a suite.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any, NewType

from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address
from eth_utils.exceptions import ValidationError as EthUtilsValidationError
from web3.types import BlockIdentifier

from contracts.artifacts import load_artifact
from contracts.chain import Chain, TxResult
from contracts.deploy import Deployment
from contracts.errors import ContractsError, DeploymentError
from contracts.membership import MembershipClient

#: The artifact and deployment-file name of the contract.
CONTRACT_NAME = "ParticipantRegistry"

RoleId = NewType("RoleId", bytes)
"""A party role id: ``keccak256("supet.party.<name>")``."""
TopicId = NewType("TopicId", bytes)
"""A claim topic id: ``keccak256("supet.topic.<name>")``."""
ActionId = NewType("ActionId", bytes)
"""An action id: ``keccak256("supet.<area>.<verb>")``."""

#: The EIP-712 domain name and version of claims.
DOMAIN_NAME = "supET Participants"
DOMAIN_VERSION = "1"
#: The EIP-712 types of a claim (the contract's ``CLAIM_TYPEHASH``).
CLAIM_TYPES: dict[str, list[dict[str, str]]] = {
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "chainId", "type": "uint256"},
        {"name": "verifyingContract", "type": "address"},
    ],
    "Claim": [
        {"name": "subject", "type": "address"},
        {"name": "topic", "type": "bytes32"},
        {"name": "issuer", "type": "address"},
        {"name": "dataHash", "type": "bytes32"},
        {"name": "issuedAt", "type": "uint64"},
        {"name": "expiresAt", "type": "uint64"},
    ],
}

#: The ``type`` of a claim file (v2: with the issue time; v1 files predate it and are refused).
CLAIM_FILE_TYPE = "supet.claim.v2"

#: Governance roles of the contract (OpenZeppelin AccessControl).
DEFAULT_ADMIN_ROLE = bytes(32)
CONSORTIUM_ADMIN_ROLE = keccak(b"supet.role.consortium-admin")
CONSORTIUM_MEMBER_ROLE = keccak(b"supet.role.consortium-member")

ROLE_PREFIX = "supet.party."
TOPIC_PREFIX = "supet.topic."


def party_role(name: str) -> RoleId:
    """The id of party role ``name`` (``"supplier"`` or ``"supet.party.supplier"``)."""
    full = name if name.startswith(ROLE_PREFIX) else ROLE_PREFIX + name
    return RoleId(keccak(full.encode("utf-8")))


def claim_topic(name: str) -> TopicId:
    """The id of claim topic ``name`` (``"iso-9001"`` or ``"supet.topic.iso-9001"``)."""
    full = name if name.startswith(TOPIC_PREFIX) else TOPIC_PREFIX + name
    return TopicId(keccak(full.encode("utf-8")))


def action_id(name: str) -> ActionId:
    """The id of action ``name`` (``"supet.device.enroll"``; ``"device.enroll"`` is completed)."""
    full = name if name.startswith("supet.") else "supet." + name
    return ActionId(keccak(full.encode("utf-8")))


#: The party roles of the issue, by short name.
PARTY_ROLES: dict[str, RoleId] = {
    name: party_role(name)
    for name in (
        "supplier",
        "core-enterprise",
        "distributor",
        "logistics",
        "warehouse",
        "marketplace",
        "bank",
        "insurer",
        "auditor",
        "analytics-oracle",
        "consortium-member",
    )
}

#: Claim topics the consortium is expected to use, by short name (any other name works too).
TOPICS: dict[str, TopicId] = {
    name: claim_topic(name)
    for name in (
        "business-licence",
        "iso-9001",
        "banking-licence",
        "insurance-licence",
        "audit-accreditation",
        "logistics-licence",
        "warehouse-licence",
        "kyc",
    )
}

#: The actions supET contracts ask the gate about, by full name.
ACTIONS: dict[str, ActionId] = {
    name: action_id(name)
    for name in (
        "supet.device.enroll",
        "supet.lot.open",
        "supet.lot.transfer",
        "supet.spec.set",
        "supet.consent.grant",
        "supet.credit.publish",
        "supet.receivable.create",
        "supet.receivable.finance",
        "supet.order.place",
        "supet.credit.query",
        "supet.receivable.hold",
    )
}


def id_name(value: bytes) -> str:
    """A known role, topic or action name for ``value``, else its 0x-hex."""
    for table in (PARTY_ROLES, TOPICS, ACTIONS):
        for name, known in table.items():
            if known == value:
                return name
    return "0x" + bytes(value).hex()


# ---------------------------------------------------------------- errors


class ClaimError(ContractsError):
    """A claim file or a claim's fields are unusable (before anything reaches the chain)."""

    code = "party.claim"


# ---------------------------------------------------------------- enums and records


class ClaimState(IntEnum):
    """``ParticipantRegistry.ClaimState``: a claim as counted at a block."""

    MISSING = 0
    VALID = 1
    EXPIRED = 2
    REVOKED = 3
    ISSUER_UNTRUSTED = 4


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
class StoredClaim:
    """A subject's claim for a topic as stored (issuer zero: none), whether or not it counts now."""

    subject: str
    topic: bytes
    issuer: str
    expires_at: int
    revoked: bool
    claim_id: bytes
    data_hash: bytes
    issued_at: int

    @property
    def present(self) -> bool:
        return int(self.issuer, 16) != 0

    def claim(self) -> Claim:
        """The claim as its issuer signed it (to revoke it without the claim file)."""
        if not self.present:
            raise ClaimError(f"{self.subject} holds no claim for topic {id_name(self.topic)}")
        return Claim(
            subject=self.subject,
            topic=self.topic,
            issuer=self.issuer,
            data_hash=self.data_hash,
            issued_at=self.issued_at,
            expires_at=self.expires_at,
        )


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


# ---------------------------------------------------------------- claims


@dataclass(frozen=True, kw_only=True)
class ClaimDomain:
    """The EIP-712 domain of one registry: claims signed for it count nowhere else."""

    chain_id: int
    verifying_contract: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": self.chain_id,
            "verifyingContract": to_checksum_address(self.verifying_contract),
        }


@dataclass(frozen=True, kw_only=True)
class Claim:
    """A claim as an issuer signs it: ``subject`` holds ``topic``, evidenced by ``data_hash``, from
    ``issued_at`` (Unix seconds: revoking it also revokes the issuer's older claims for the same
    subject and topic) until ``expires_at``."""

    subject: str
    topic: bytes
    issuer: str
    data_hash: bytes
    issued_at: int
    expires_at: int

    def __post_init__(self) -> None:
        for name in ("topic", "data_hash"):
            value = getattr(self, name)
            if not isinstance(value, bytes) or len(value) != 32:
                raise ClaimError(f"claim {name} must be 32 bytes, got {value!r}")
        if not 0 < self.expires_at < 2**64:
            raise ClaimError(
                f"claim expiry must be a Unix time in seconds that fits 64 bits, not {self.expires_at}"
            )
        if not 0 <= self.issued_at < self.expires_at:
            raise ClaimError(
                f"claim issue time must be a Unix time in seconds before its expiry {self.expires_at}, "
                f"not {self.issued_at}"
            )
        for name in ("subject", "issuer"):
            try:
                to_checksum_address(getattr(self, name))
            except (ValueError, TypeError, EthUtilsValidationError) as e:
                raise ClaimError(f"claim {name} {getattr(self, name)!r} is not an address") from e

    def message(self) -> dict[str, Any]:
        return {
            "subject": to_checksum_address(self.subject),
            "topic": self.topic,
            "issuer": to_checksum_address(self.issuer),
            "dataHash": self.data_hash,
            "issuedAt": self.issued_at,
            "expiresAt": self.expires_at,
        }

    def typed_data(self, domain: ClaimDomain) -> dict[str, Any]:
        """The full EIP-712 message (for eth_account or a wallet's ``eth_signTypedData_v4``)."""
        return {
            "types": CLAIM_TYPES,
            "primaryType": "Claim",
            "domain": domain.as_dict(),
            "message": self.message(),
        }

    def claim_id(self, domain: ClaimDomain) -> bytes:
        """The claim's id under ``domain``: its EIP-712 digest (the contract's ``claimIdOf``)."""
        signable = encode_typed_data(full_message=self.typed_data(domain))
        return keccak(b"\x19" + signable.version + signable.header + signable.body)

    def as_tuple(self) -> tuple[str, bytes, str, bytes, int, int]:
        """The ABI tuple of ``ParticipantRegistry.Claim``."""
        return (
            to_checksum_address(self.subject),
            self.topic,
            to_checksum_address(self.issuer),
            self.data_hash,
            self.issued_at,
            self.expires_at,
        )


@dataclass(frozen=True, kw_only=True)
class SignedClaim:
    """A claim, its issuer's signature and the domain it was signed for."""

    claim: Claim
    domain: ClaimDomain
    signature: bytes

    @property
    def claim_id(self) -> bytes:
        return self.claim.claim_id(self.domain)

    def to_json(self) -> str:
        c = self.claim
        data = {
            "type": CLAIM_FILE_TYPE,
            "subject": to_checksum_address(c.subject),
            "topic": "0x" + c.topic.hex(),
            "topicName": id_name(c.topic),
            "issuer": to_checksum_address(c.issuer),
            "dataHash": "0x" + c.data_hash.hex(),
            "issuedAt": c.issued_at,
            "expiresAt": c.expires_at,
            "chainId": self.domain.chain_id,
            "verifyingContract": to_checksum_address(self.domain.verifying_contract),
            "claimId": "0x" + self.claim_id.hex(),
            "signature": "0x" + self.signature.hex(),
        }
        return json.dumps(data, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, *, source: str = "claim") -> SignedClaim:
        """Parse :meth:`to_json` output; :class:`ClaimError` names what is wrong."""
        try:
            data = json.loads(text)
            if data.get("type") == "supet.claim.v1":
                raise ClaimError(
                    f"{source} is a claim file of the old format (supet.claim.v1, without an issue time), "
                    "which registries no longer accept: have the issuer sign it again"
                )
            if data.get("type") != CLAIM_FILE_TYPE:
                raise ClaimError(f"{source} is not a supET claim file (type {data.get('type')!r})")
            signed = cls(
                claim=Claim(
                    subject=data["subject"],
                    topic=_hex32(data["topic"], "topic"),
                    issuer=data["issuer"],
                    data_hash=_hex32(data["dataHash"], "dataHash"),
                    issued_at=int(data["issuedAt"]),
                    expires_at=int(data["expiresAt"]),
                ),
                domain=ClaimDomain(
                    chain_id=int(data["chainId"]), verifying_contract=data["verifyingContract"]
                ),
                signature=bytes.fromhex(str(data["signature"]).removeprefix("0x")),
            )
        except ClaimError:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise ClaimError(f"{source} is not a valid claim file ({type(e).__name__}: {e})") from e
        stated = data.get("claimId")
        if stated is not None and stated.lower() != "0x" + signed.claim_id.hex():
            raise ClaimError(f"{source}: its claimId does not match its fields; the file was altered")
        return signed

    @classmethod
    def load(cls, path: Path) -> SignedClaim:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise ClaimError(f"cannot read the claim file {path}: {e.strerror}") from e
        return cls.from_json(text, source=str(path))


def _hex32(value: Any, name: str) -> bytes:
    raw = bytes.fromhex(str(value).removeprefix("0x"))
    if len(raw) != 32:
        raise ClaimError(f"claim {name} must be 32 bytes of hex, got {len(raw)} bytes")
    return raw


def sign_claim(
    issuer: LocalAccount,
    *,
    subject: str,
    topic: bytes,
    data_hash: bytes,
    expires_at: int,
    domain: ClaimDomain,
    issued_at: int | None = None,
) -> SignedClaim:
    """Have ``issuer`` sign a claim about ``subject`` for ``topic`` (EIP-712, low-S), issued at
    ``issued_at`` (Unix seconds; default now)."""
    claim = Claim(
        subject=subject,
        topic=topic,
        issuer=issuer.address,
        data_hash=data_hash,
        issued_at=int(time.time()) if issued_at is None else issued_at,
        expires_at=expires_at,
    )
    signed = issuer.sign_message(encode_typed_data(full_message=claim.typed_data(domain)))
    return SignedClaim(claim=claim, domain=domain, signature=bytes(signed.signature))


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
