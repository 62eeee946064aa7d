"""The chain-free checks of a bundle, against chain state already read (:func:`verify_bundle_against`).

Each check raises the :class:`~auditor.errors.VerificationError` subclass of its entry of
:data:`~auditor.errors.CHECKS`; :class:`auditor.verify.BundleVerifier` runs them between its chain
reads, in the contract's order (enrolled, active, signature), so the local and on-chain verdicts
name the same failure.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any, Final

from eth_utils import keccak

from auditor._internal import hex0x
from auditor.bundle import ProofBundle
from auditor.errors import (
    MAX_CLOCK_SKEW_MS,
    AnchoringTimeInvalid,
    AnchorTxMismatch,
    BundleFormatError,
    DeploymentMismatch,
    DeviceNotActive,
    DeviceNotEnrolled,
    DigestMismatch,
    InclusionError,
    InsufficientConfirmations,
    RootMismatch,
    SignatureInvalid,
)
from contracts.registry import AnchoredBatch, DeviceRecord, OnChainScheme, device_id_hash
from device_attestation.errors import MerkleError, ProofMismatch, SignatureError
from device_attestation.keys import DevicePublicKey, Scheme
from device_attestation.merkle import verify_inclusion
from device_attestation.reading import Domain, reading_digest
from device_attestation.signing import PublicKeyOrAddress, verify_signature

__all__ = [
    "BATCH_ANCHORED_TOPIC",
    "check_anchor_tx",
    "check_claims",
    "check_device",
    "check_digest",
    "check_inclusion",
    "check_root",
    "check_scheme_claim",
    "check_signature",
    "registered_scheme",
    "verify_bundle_against",
]

#: The topic of ``BatchAnchored(uint256 indexed batchId, bytes32 indexed root, uint64 count,
#: address indexed by)``.
BATCH_ANCHORED_TOPIC: Final = keccak(b"BatchAnchored(uint256,bytes32,uint64,address)")


def check_claims(bundle: ProofBundle, domain: Domain) -> None:
    if bundle.chain_id != domain.chain_id:
        raise DeploymentMismatch(
            f"the bundle is for chain {bundle.chain_id} but the deployment is on chain "
            f"{domain.chain_id}: verify it with the deployment file of chain {bundle.chain_id}",
            what="chain_id",
            expected=domain.chain_id,
            claimed=bundle.chain_id,
        )
    if bundle.anchor_contract != domain.verifying_contract:
        raise DeploymentMismatch(
            f"the bundle names anchor contract {bundle.anchor_contract} but the deployment's "
            f"ReadingAnchor is {domain.verifying_contract}: the bundle belongs to another "
            "deployment (only the auditor's deployment file is trusted)",
            what="anchor_contract",
            expected=domain.verifying_contract,
            claimed=bundle.anchor_contract,
        )


def check_digest(bundle: ProofBundle, domain: Domain) -> bytes:
    computed = reading_digest(bundle.reading, domain)
    if computed != bundle.digest:
        raise DigestMismatch(expected=bundle.digest, computed=computed)
    return computed


def check_root(bundle: ProofBundle, batch: AnchoredBatch) -> None:
    if batch.root != bundle.root:
        raise RootMismatch(batch_id=bundle.batch_id, expected=batch.root, computed=bundle.root)


def check_inclusion(bundle: ProofBundle, digest: bytes, root: bytes) -> None:
    try:
        verify_inclusion(digest=digest, proof=bundle.proof, root=root)
    except ProofMismatch as e:
        raise InclusionError(
            batch_id=bundle.batch_id, digest=digest, expected=e.expected, computed=e.computed
        ) from e
    except MerkleError as e:  # malformed nodes: the model already refuses them
        raise BundleFormatError(e.message, field="proof") from e


def check_device(bundle: ProofBundle, device: DeviceRecord, anchored_at: int) -> None:
    """Enrolled, active at the reading's time, and the reading bound to its batch's anchoring
    (``anchored_at``, Unix seconds), in the contract's order."""
    reading = bundle.reading
    if not device.enrolled:
        raise DeviceNotEnrolled(device_id=reading.device_id)
    if not device.active_at(reading.ts_ms):
        raise DeviceNotActive(
            device_id=reading.device_id,
            ts_ms=reading.ts_ms,
            active_from=device.active_from_ms,
            revoked_at=device.revoked_at_ms,
        )
    anchored_ms = anchored_at * 1000
    revoked = device.revoked_at_ms
    if reading.ts_ms > anchored_ms + MAX_CLOCK_SKEW_MS or (revoked and anchored_ms >= revoked):
        raise AnchoringTimeInvalid(
            device_id=reading.device_id, ts_ms=reading.ts_ms, anchored_at_ms=anchored_ms, revoked_at=revoked
        )


def registered_scheme(device: DeviceRecord) -> Scheme:
    return Scheme.P256 if device.scheme is OnChainScheme.P256 else Scheme.SECP256K1


def check_scheme_claim(bundle: ProofBundle, device: DeviceRecord) -> Scheme:
    registered = registered_scheme(device)
    if bundle.scheme is not registered:
        raise SignatureInvalid(
            f"the bundle says {bundle.scheme.value} but the device is registered with "
            f"{registered.value}; a reading is checked with the registered key only",
            device_id=bundle.reading.device_id,
            scheme=bundle.scheme.value,
            reason="signature.scheme_mismatch",
        )
    return registered


@lru_cache(maxsize=4096)
def _p256_key(x: bytes, y: bytes) -> DevicePublicKey:
    """The registered P-256 key (checked on the curve once per key, not once per reading)."""
    return DevicePublicKey(scheme=Scheme.P256, x=int.from_bytes(x, "big"), y=int.from_bytes(y, "big"))


def check_signature(bundle: ProofBundle, digest: bytes, device: DeviceRecord) -> Scheme:
    scheme = registered_scheme(device)
    try:
        key: PublicKeyOrAddress = (
            _p256_key(device.key_x, device.key_y) if scheme is Scheme.P256 else device.signer
        )
        # The registered scheme decides how the signature is read, as on chain; the
        # bundle's own claim is checked after, so both verifiers name the same failure.
        verify_signature(scheme, key, digest, bundle.signature)
    except SignatureError as e:
        raise SignatureInvalid(
            e.message, device_id=bundle.reading.device_id, scheme=scheme.value, reason=e.code
        ) from e
    return check_scheme_claim(bundle, device)


def verify_bundle_against(
    bundle: ProofBundle, *, domain: Domain, batch: AnchoredBatch, device: DeviceRecord
) -> bytes:
    """The chain-free checks of a bundle, against chain state the caller read and trusts.

    Runs digest, root, inclusion, device active and signature, in that order, and
    returns the digest. Nothing here touches a chain: ``batch`` must be what the
    anchor contract holds for ``bundle.batch_id`` and ``device`` what the registry
    holds for the reading's device (cache them to verify many bundles fast).
    Deployment and anchor-tx checks are :func:`verify_bundle`'s.

    Preconditions (checked first, ``ValueError``): ``domain.chain_id`` and
    ``domain.verifying_contract`` are the bundle's claims, ``batch.batch_id`` is the
    bundle's, ``device.device_id_hash`` is the reading's device id hash.
    """
    if (domain.chain_id, domain.verifying_contract) != (bundle.chain_id, bundle.anchor_contract):
        raise ValueError("verify_bundle_against: the domain is not the bundle's; check the deployment first")
    if batch.batch_id != bundle.batch_id:
        raise ValueError(
            f"verify_bundle_against: batch {batch.batch_id} given for bundle batch {bundle.batch_id}"
        )
    if device.device_id_hash != device_id_hash(bundle.reading.device_id):
        raise ValueError("verify_bundle_against: the device record is not the reading's device")
    digest = check_digest(bundle, domain)
    check_root(bundle, batch)
    check_inclusion(bundle, digest, batch.root)
    check_device(bundle, device, batch.anchored_at)
    check_signature(bundle, digest, device)
    return digest


def check_anchor_tx(
    bundle: ProofBundle,
    *,
    root: bytes,
    anchor: str,
    chain_id: int,
    receipt: Any,
    block_hash: Callable[[int], bytes | None],
    head: int,
    min_confirmations: int,
) -> int:
    """``bundle.anchor_tx`` (its ``receipt``, None when the chain has none) emitted
    ``BatchAnchored(batch_id, root)`` from ``anchor``, sits in the canonical block
    (``block_hash(number)``: the canonical block's hash, None when there is none) no later than
    ``head``, with ``min_confirmations`` blocks on top. Returns its block number."""
    tx = bundle.anchor_tx
    if receipt is None:
        raise AnchorTxMismatch(
            f"has no receipt on chain {chain_id}: it does not exist, is not mined yet, "
            "or was dropped by a reorganisation",
            anchor_tx=tx,
        )
    if receipt["status"] != 1:
        raise AnchorTxMismatch("failed (status 0): it anchored nothing", anchor_tx=tx)
    wanted = (BATCH_ANCHORED_TOPIC, bundle.batch_id.to_bytes(32, "big"), root)
    found = any(
        str(log["address"]).lower() == anchor.lower()
        and not log.get("removed", False)
        and tuple(bytes(t) for t in log["topics"][:3]) == wanted
        for log in receipt["logs"]
    )
    if not found:
        raise AnchorTxMismatch(
            f"emitted no BatchAnchored(batchId={bundle.batch_id}, root={hex0x(root)}) from "
            f"ReadingAnchor {anchor}: it is another transaction",
            anchor_tx=tx,
        )
    number = int(receipt["blockNumber"])
    receipt_hash = bytes(receipt["blockHash"])
    if block_hash(number) != receipt_hash:
        raise AnchorTxMismatch(
            f"was mined in block {number} ({hex0x(receipt_hash)}) which is no longer on the "
            "canonical chain: wait for the service to anchor the batch again",
            anchor_tx=tx,
        )
    if number > head:
        raise AnchorTxMismatch(
            f"is in block {number}, after block {head} the batch was read at: the chain "
            "reorganised during verification; verify again",
            anchor_tx=tx,
        )
    confirmations = head - number
    if confirmations < min_confirmations:
        raise InsufficientConfirmations(
            anchor_tx=tx, block=number, confirmations=confirmations, required=min_confirmations
        )
    return number
