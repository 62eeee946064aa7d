"""Typed clients for the DeviceRegistry and ReadingAnchor contracts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from functools import lru_cache
from typing import Any, Protocol

from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address
from web3.types import BlockIdentifier

from contracts.chain import Chain, TxResult
from contracts.deployment import Deployment

ENROLLER_ROLE = keccak(b"supet.role.enroller")
OPERATOR_ROLE = keccak(b"supet.role.operator")
ANCHOR_ROLE = keccak(b"supet.role.anchor")
#: DeviceRegistry role of the contracts that record verdicts (the QualityCertifier): pins used evidence.
EVIDENCE_ROLE = keccak(b"supet.role.evidence")
DEFAULT_ADMIN_ROLE = bytes(32)


class OnChainScheme(IntEnum):
    """``DeviceRegistry.Scheme``."""

    NONE = 0
    P256 = 1
    SECP256K1 = 2


@lru_cache(maxsize=65_536)
def device_id_hash(device_id: str) -> bytes:
    """``keccak256(utf8(device_id))``, the registry's and Reading v1's device id (cached: hot in ingest)."""
    return keccak(device_id.encode("utf-8"))


@dataclass(frozen=True, kw_only=True)
class DeviceRecord:
    """A device as the registry holds it."""

    device_id_hash: bytes
    scheme: OnChainScheme
    owner: str
    signer: str
    active_from_ms: int
    revoked_at_ms: int
    key_x: bytes
    key_y: bytes
    cert_fingerprint: bytes
    ca_key_hash: bytes

    @classmethod
    def from_call(cls, device_id_hash: bytes, d: Sequence[Any]) -> DeviceRecord:
        """From the tuple ``DeviceRegistry.device(id)`` returns."""
        return cls(
            device_id_hash=device_id_hash,
            scheme=OnChainScheme(d[0]),
            owner=d[1],
            signer=d[2],
            active_from_ms=d[3],
            revoked_at_ms=d[4],
            key_x=d[5],
            key_y=d[6],
            cert_fingerprint=d[7],
            ca_key_hash=d[8],
        )

    @property
    def enrolled(self) -> bool:
        return self.scheme is not OnChainScheme.NONE

    def active_at(self, ts_ms: int) -> bool:
        """The same rule as ``DeviceRegistry.isActiveAt``."""
        return (
            self.enrolled
            and ts_ms >= self.active_from_ms
            and (self.revoked_at_ms == 0 or ts_ms < self.revoked_at_ms)
        )


@dataclass(frozen=True, kw_only=True)
class AnchoredBatch:
    """A batch as the anchor contract holds it."""

    batch_id: int
    root: bytes
    count: int
    anchored_at: int


class DeviceRegistryClient:
    """Reads and writes of the DeviceRegistry of one deployment."""

    def __init__(self, chain: Chain, deployment: Deployment) -> None:
        self.chain = chain
        self.contract = deployment.contract(chain, "DeviceRegistry")

    def trust_ca(self, operator: LocalAccount, key_x: int, key_y: int, label: str) -> TxResult:
        """Register and trust a manufacturer CA's P-256 key (x, y); its id on chain is
        :meth:`ca_key_hash_of` (keccak-256 of its SubjectPublicKeyInfo)."""
        fn = self.contract.functions.trustCA(key_x.to_bytes(32, "big"), key_y.to_bytes(32, "big"), label)
        return self.chain.transact(fn, operator)

    def ca_key_hash_of(self, key_x: int, key_y: int) -> bytes:
        """``DeviceRegistry.caKeyHashOf``: the id of a CA key."""
        fn = self.contract.functions.caKeyHashOf(key_x.to_bytes(32, "big"), key_y.to_bytes(32, "big"))
        return bytes(self.chain.call(fn))

    def ca_key(self, ca_key_hash: bytes) -> tuple[bool, int, int]:
        """The registered CA key: (trusted, x, y); all zero when never registered."""
        trusted, x, y = self.chain.call(self.contract.functions.caKey(ca_key_hash))
        return bool(trusted), int.from_bytes(x, "big"), int.from_bytes(y, "big")

    def distrust_ca(self, operator: LocalAccount, ca_key_hash: bytes) -> TxResult:
        return self.chain.transact(self.contract.functions.distrustCA(ca_key_hash), operator)

    def is_trusted_ca(self, ca_key_hash: bytes) -> bool:
        return bool(self.chain.call(self.contract.functions.isTrustedCA(ca_key_hash)))

    def grant_enroller(self, admin: LocalAccount, party: str) -> TxResult:
        return self.chain.transact(
            self.contract.functions.grantRole(ENROLLER_ROLE, to_checksum_address(party)), admin
        )

    def enroll_p256(
        self,
        party: LocalAccount,
        *,
        device_id: str,
        x: int,
        y: int,
        cert_fingerprint: bytes,
        ca_key_hash: bytes,
        active_from_ms: int,
        birth_signature: bytes,
        possession_signature: bytes,
    ) -> TxResult:
        """Enroll a P-256 device on the CA's birth attestation and the device's proof of possession
        for ``party`` (``device_attestation.birth``); ``active_from_ms`` 0: the block's time."""
        fn = self.contract.functions.enrollP256(
            device_id_hash(device_id),
            x.to_bytes(32, "big"),
            y.to_bytes(32, "big"),
            cert_fingerprint,
            ca_key_hash,
            active_from_ms,
            birth_signature,
            possession_signature,
        )
        return self.chain.transact(fn, party)

    def enroll_secp256k1(
        self,
        party: LocalAccount,
        *,
        device_id: str,
        address: str,
        cert_fingerprint: bytes,
        ca_key_hash: bytes,
        active_from_ms: int,
        birth_signature: bytes,
        possession_signature: bytes,
    ) -> TxResult:
        """Enroll a secp256k1 device, as :meth:`enroll_p256` (the proof is 65 bytes, r || s || v)."""
        fn = self.contract.functions.enrollSecp256k1(
            device_id_hash(device_id),
            to_checksum_address(address),
            cert_fingerprint,
            ca_key_hash,
            active_from_ms,
            birth_signature,
            possession_signature,
        )
        return self.chain.transact(fn, party)

    def grant_evidence_role(self, admin: LocalAccount, certifier: str) -> TxResult:
        """Let ``certifier`` (a QualityCertifier) pin the evidence its verdicts use."""
        fn = self.contract.functions.grantRole(EVIDENCE_ROLE, to_checksum_address(certifier))
        return self.chain.transact(fn, admin)

    def revoke(self, party: LocalAccount, device_id: str, at_ms: int = 0) -> TxResult:
        """Revoke from ``at_ms`` (0: now). The time only moves earlier; an owner's is at most now and
        after any pinned evidence (:meth:`pinned_evidence_ms`): otherwise the contract reverts
        (``DeviceRegistryRevocationNotEarlier``, ``...InFuture``, ``...EvidencePinned``)."""
        return self.chain.transact(self.contract.functions.revoke(device_id_hash(device_id), at_ms), party)

    def revoke_with_reason(self, operator: LocalAccount, device_id: str, at_ms: int, reason: str) -> TxResult:
        """The operator's ruling: revoke from ``at_ms`` (0: now), even before pinned evidence, with
        ``reason`` (1..1024 bytes), emitted in ``DeviceRevocationRuled``."""
        fn = self.contract.functions.revokeWithReason(device_id_hash(device_id), at_ms, reason)
        return self.chain.transact(fn, operator)

    def pinned_evidence_ms(self, device_id: str | bytes, *, block: BlockIdentifier = "latest") -> int | None:
        """The latest reading time of the device used in a recorded verdict (None: none yet)."""
        did = device_id_hash(device_id) if isinstance(device_id, str) else device_id
        pinned, latest = self.chain.call(self.contract.functions.pinnedEvidence(did), block=block)
        return int(latest) if pinned else None

    def device(self, device_id: str | bytes, *, block: BlockIdentifier = "latest") -> DeviceRecord:
        did = device_id_hash(device_id) if isinstance(device_id, str) else device_id
        d = self.chain.call(self.contract.functions.device(did), block=block)
        return DeviceRecord.from_call(did, d)


class ReadingAnchorClient:
    """Reads and writes of the ReadingAnchor of one deployment."""

    def __init__(self, chain: Chain, deployment: Deployment) -> None:
        self.chain = chain
        self.contract = deployment.contract(chain, "ReadingAnchor")

    def anchor_batch(self, signer: LocalAccount, root: bytes, count: int) -> TxResult:
        return self.chain.transact(self.contract.functions.anchorBatch(root, count), signer)

    def batch(self, batch_id: int, *, block: BlockIdentifier = "latest") -> AnchoredBatch:
        root, count, anchored_at = self.chain.call(self.contract.functions.batch(batch_id), block=block)
        return AnchoredBatch(batch_id=batch_id, root=root, count=count, anchored_at=anchored_at)

    def batch_count(self) -> int:
        return int(self.chain.call(self.contract.functions.batchCount()))

    def batch_of_root(self, root: bytes) -> int:
        return int(self.chain.call(self.contract.functions.batchOfRoot(root)))

    def domain_separator(self) -> bytes:
        return bytes(self.chain.call(self.contract.functions.domainSeparator()))


class ReadingStructLike(Protocol):
    """The fields of ``device_attestation.reading.ReadingStruct`` (EIP-712 form of a reading)."""

    @property
    def device_id(self) -> bytes: ...
    @property
    def seq(self) -> int: ...
    @property
    def timestamp(self) -> int: ...
    @property
    def lot_id(self) -> bytes: ...
    @property
    def metrics(self) -> Sequence[bytes]: ...
    @property
    def values(self) -> Sequence[int]: ...


def reading_tuple(s: ReadingStructLike) -> tuple[object, ...]:
    """The ABI tuple of a Reading v1 struct."""
    return (s.device_id, s.seq, s.timestamp, s.lot_id, list(s.metrics), list(s.values))


def verify_reading_on_chain(
    anchor: ReadingAnchorClient,
    struct: ReadingStructLike,
    signature: bytes,
    batch_id: int,
    proof: list[bytes],
    *,
    block: BlockIdentifier = "latest",
) -> bytes:
    """``ReadingAnchor.verifyReading``: the digest, or :class:`ContractRevert` naming what failed."""
    fn = anchor.contract.functions.verifyReading(reading_tuple(struct), signature, batch_id, proof)
    return bytes(anchor.chain.call(fn, block=block))
