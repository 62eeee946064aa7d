"""Claims of the ParticipantRegistry: an issuer's EIP-712 signed statement that a party holds a topic.

- :func:`sign_claim` has an issuer sign an EIP-712 ``Claim`` for a registry's :class:`ClaimDomain`;
  :class:`SignedClaim` travels as JSON (``supet party claim issue`` / ``claim add``).
- :class:`StoredClaim` and :class:`ClaimState`: a claim as the registry holds and counts it.
- The client that submits, revokes and reads claims is :mod:`contracts.participants`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any

from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address
from eth_utils.exceptions import ValidationError as EthUtilsValidationError

from contracts.eip712 import EIP712_DOMAIN_TYPE
from contracts.errors import ContractsError
from contracts.participant_ids import id_name

__all__ = [
    "CLAIM_FILE_TYPE",
    "CLAIM_TYPES",
    "DOMAIN_NAME",
    "DOMAIN_VERSION",
    "Claim",
    "ClaimDomain",
    "ClaimError",
    "ClaimState",
    "SignedClaim",
    "StoredClaim",
    "sign_claim",
]

#: The EIP-712 domain name and version of claims.
DOMAIN_NAME = "supET Participants"
DOMAIN_VERSION = "1"
#: The EIP-712 types of a claim (the contract's ``CLAIM_TYPEHASH``).
CLAIM_TYPES: dict[str, list[dict[str, str]]] = {
    "EIP712Domain": EIP712_DOMAIN_TYPE,
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


class ClaimError(ContractsError):
    """A claim file or a claim's fields are unusable (before anything reaches the chain)."""

    code = "party.claim"


class ClaimState(IntEnum):
    """``ParticipantRegistry.ClaimState``: a claim as counted at a block."""

    MISSING = 0
    VALID = 1
    EXPIRED = 2
    REVOKED = 3
    ISSUER_UNTRUSTED = 4


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
