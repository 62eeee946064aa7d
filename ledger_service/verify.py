"""The auditor's verifier: check a Reading v1 proof bundle with the chain alone.

A proof bundle (``reading-v1.md`` section 6) claims that a signed reading was
anchored in batch ``batch_id`` of one deployment. :func:`verify_bundle` checks
every claim with local code and the chain's state; it trusts the auditor's
deployment file, never the bundle's own ``chain_id`` and ``anchor_contract``,
and never the ledger service. :func:`verify_bundle_on_chain` checks the same
bundle with the contract's own ``ReadingAnchor.verifyReading`` instead of local
cryptography, so the two verdicts can be compared.

The checks, in order (:data:`CHECKS`), each with its typed error::

    deployment     DeploymentMismatch   bundle's chain / anchor contract vs the deployment file
    digest         DigestMismatch       EIP-712 digest recomputed from `reading` vs `digest`
    batch          UnknownBatch         `batch_id` anchored on the anchor contract
    root           RootMismatch         the anchored root vs the bundle's `root`
    inclusion      InclusionError       `proof` leads from the digest's leaf to the root
    device active  DeviceNotEnrolled, DeviceNotActive, AnchoringTimeInvalid
                                        the registry knows the device; active at `ts_ms`;
                                        `ts_ms` no later than the anchoring (+ skew) and,
                                        if revoked, the batch anchored before the revocation
    signature      SignatureInvalid     by the registered key, in the registered scheme
    anchor tx      AnchorTxMismatch, InsufficientConfirmations
                                        `anchor_tx` emitted BatchAnchored(batch_id, root), is
                                        canonical, and has enough blocks on top

Device and signature checks run in the contract's order (enrolled, active,
signature), so the local and on-chain verdicts name the same failure even when a
bundle has several faults. Every error derives from :class:`VerificationError`;
a chain that cannot be reached raises :class:`contracts.errors.ChainError`
instead (no verdict was reached).

The one place bundles are assembled is :func:`build_bundle`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any, ClassVar, Final, TypeVar

import requests
from eth_utils import is_address, is_checksum_address, keccak, to_checksum_address
from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, PlainValidator, ValidationError
from web3.exceptions import BadFunctionCallOutput, BlockNotFound
from web3.types import BlockIdentifier

from contracts.chain import Chain
from contracts.deploy import Deployment
from contracts.errors import ChainError, ContractRevert
from contracts.registry import (
    AnchoredBatch,
    DeviceRecord,
    OnChainScheme,
    ReadingAnchorClient,
    device_id_hash,
    reading_tuple,
    verify_reading_on_chain,
)
from device_attestation.errors import InvalidReading, MerkleError, ProofMismatch, SignatureError
from device_attestation.keys import DevicePublicKey, Scheme, parse_scheme
from device_attestation.merkle import MerkleTree, leaf_hash, process_proof, verify_inclusion
from device_attestation.reading import Domain, Reading, reading_digest, reading_struct
from device_attestation.sdk import Submission
from device_attestation.signing import PublicKeyOrAddress, verify_signature
from supet.errors import SupetError

__all__ = [
    "BATCH_ANCHORED_TOPIC",
    "BUNDLE_KEYS",
    "CHECKS",
    "MAX_PROOF_LENGTH",
    "AnchorTxMismatch",
    "AnchoringTimeInvalid",
    "BundleFormatError",
    "BundleVerifier",
    "DeploymentMismatch",
    "DeviceNotActive",
    "DeviceNotEnrolled",
    "DigestMismatch",
    "InclusionError",
    "InsufficientConfirmations",
    "ProofBundle",
    "RootMismatch",
    "SignatureInvalid",
    "UnknownBatch",
    "VerificationError",
    "VerifiedReading",
    "build_bundle",
    "build_bundle_for",
    "verify_bundle",
    "verify_bundle_against",
    "verify_bundle_on_chain",
]

#: The checks of a bundle, in the order they run (the ``check`` of each error names one).
CHECKS: Final = (
    "deployment",
    "digest",
    "batch",
    "root",
    "inclusion",
    "device active",
    "signature",
    "anchor tx",
)

#: The topic of ``BatchAnchored(uint256 indexed batchId, bytes32 indexed root, uint64 count,
#: address indexed by)``.
BATCH_ANCHORED_TOPIC: Final = keccak(b"BatchAnchored(uint256,bytes32,uint64,address)")
#: The bundle's JSON keys, in the spec's order (section 6).
BUNDLE_KEYS: Final = (
    "reading",
    "scheme",
    "signature",
    "digest",
    "batch_id",
    "root",
    "proof",
    "chain_id",
    "anchor_contract",
    "anchor_tx",
)
#: More siblings than any batch can need (a tree of 2^256 readings); refuses absurd bundles early.
MAX_PROOF_LENGTH: Final = 256

_T = TypeVar("_T")


def _hex(data: bytes) -> str:
    return "0x" + data.hex()


# ================================================================== errors


class VerificationError(SupetError):
    """A proof bundle did not verify. ``code`` is stable; ``check`` names the failed check."""

    code = "verify.error"
    #: The entry of :data:`CHECKS` this error belongs to ("" when none does).
    check: ClassVar[str] = ""


class BundleFormatError(VerificationError):
    """The bundle is not a well-formed Reading v1 proof bundle. ``field`` names the offending field."""

    code = "verify.bundle_format"
    check = "bundle"

    def __init__(self, message: str, *, field: str = "") -> None:
        where = field or "bundle"
        super().__init__(f"{where}: {message}")
        self.field = field


class DeploymentMismatch(VerificationError):
    """The bundle (or the chain) is not the auditor's deployment: other chain id or anchor contract.

    ``expected`` is what the auditor's deployment file says, ``claimed`` what the bundle
    (or the node) says.
    """

    code = "verify.deployment_mismatch"
    check = "deployment"

    def __init__(self, message: str, *, what: str, expected: object, claimed: object) -> None:
        super().__init__(message)
        self.what = what
        self.expected = expected
        self.claimed = claimed


class DigestMismatch(VerificationError):
    """The digest recomputed from the reading is not the bundle's ``digest``.

    ``expected`` is the bundle's digest, ``computed`` the one recomputed from ``reading``
    under the deployment's EIP-712 domain.
    """

    code = "verify.digest_mismatch"
    check = "digest"

    def __init__(
        self, *, expected: bytes, computed: bytes, by: str = "recomputed locally", of: str = "the bundle"
    ) -> None:
        super().__init__(
            f"{of}'s digest is {_hex(expected)} but the reading's EIP-712 digest ({by}) is "
            f"{_hex(computed)}: the reading or the digest was altered, or was made for another "
            "chain id or anchor contract"
        )
        self.expected = expected
        self.computed = computed


class UnknownBatch(VerificationError):
    """No batch with the bundle's ``batch_id`` is anchored on the deployment's anchor contract."""

    code = "verify.unknown_batch"
    check = "batch"

    def __init__(self, *, batch_id: int, batch_count: int | None, anchor: str) -> None:
        have = f"it has {batch_count} batch(es)" if batch_count is not None else "its batch count is unknown"
        super().__init__(
            f"batch {batch_id} is not anchored on ReadingAnchor {anchor} ({have}): the bundle names "
            "a batch that does not exist on this chain, or the anchoring is not mined yet"
        )
        self.batch_id = batch_id
        self.batch_count = batch_count


class RootMismatch(VerificationError):
    """The root anchored for ``batch_id`` is not the bundle's ``root``.

    ``expected`` is the on-chain root, ``computed`` the bundle's.
    """

    code = "verify.root_mismatch"
    check = "root"

    def __init__(self, *, batch_id: int, expected: bytes, computed: bytes) -> None:
        super().__init__(
            f"batch {batch_id} is anchored with root {_hex(expected)} but the bundle says "
            f"{_hex(computed)}: the bundle names the wrong batch or carries a forged root"
        )
        self.batch_id = batch_id
        self.expected = expected
        self.computed = computed


class InclusionError(VerificationError):
    """The inclusion proof does not lead from the reading's leaf to the anchored root.

    ``expected`` is the anchored root, ``computed`` the root the proof leads to.
    """

    code = "verify.not_included"
    check = "inclusion"

    def __init__(self, *, batch_id: int, digest: bytes, expected: bytes, computed: bytes) -> None:
        super().__init__(
            f"the proof does not include digest {_hex(digest)} in batch {batch_id}: expected root "
            f"{_hex(expected)}, computed {_hex(computed)}; the proof or the reading was altered, or "
            "the reading belongs to another batch"
        )
        self.batch_id = batch_id
        self.digest = digest
        self.expected = expected
        self.computed = computed


class DeviceNotEnrolled(VerificationError):
    """The device registry has no device with the reading's ``device_id``."""

    code = "verify.device_not_enrolled"
    check = "device active"

    def __init__(self, *, device_id: str) -> None:
        super().__init__(
            f"device {device_id!r} (id hash {_hex(device_id_hash(device_id))}) is not enrolled in the "
            "device registry: its readings cannot be attributed to any key"
        )
        self.device_id = device_id


class DeviceNotActive(VerificationError):
    """The device was not active at the reading's ``ts_ms`` (before ``active_from``, or revoked).

    The rule is the registry's: ``active_from <= ts_ms`` and (``revoked_at == 0`` or
    ``ts_ms < revoked_at``). ``revoked_at`` is 0 when the device is not revoked.
    """

    code = "verify.device_not_active"
    check = "device active"

    def __init__(self, *, device_id: str, ts_ms: int, active_from: int, revoked_at: int) -> None:
        if ts_ms < active_from:
            why = f"its readings count from {active_from} (active from), {active_from - ts_ms} ms later"
        else:
            why = f"it was revoked at {revoked_at}; readings measured at or after that time do not count"
        super().__init__(f"device {device_id!r} was not active at ts_ms {ts_ms}: {why}")
        self.device_id = device_id
        self.ts_ms = ts_ms
        self.active_from = active_from
        self.revoked_at = revoked_at


#: How far a reading's time may lie after its batch's anchoring (``ReadingAnchor.MAX_CLOCK_SKEW_MS``).
MAX_CLOCK_SKEW_MS = 60_000


class AnchoringTimeInvalid(VerificationError):
    """The reading is not bound to its anchoring time (``ReadingAnchor``'s rule, issue 12.8): its
    ``ts_ms`` lies after the batch's anchoring (``anchored_at_ms``) plus :data:`MAX_CLOCK_SKEW_MS`,
    or the device is revoked (``revoked_at``) and the batch was anchored at or after the revocation.
    """

    code = "verify.anchoring_time"
    check = "device active"

    def __init__(self, *, device_id: str, ts_ms: int, anchored_at_ms: int, revoked_at: int) -> None:
        if ts_ms > anchored_at_ms + MAX_CLOCK_SKEW_MS:
            why = (
                f"its time lies {ts_ms - anchored_at_ms} ms after its batch was anchored ({anchored_at_ms}): "
                "a batch cannot hold a reading taken after it"
            )
        else:
            why = (
                f"its batch was anchored at {anchored_at_ms}, at or after the device's revocation at "
                f"{revoked_at}: readings anchored after a revocation do not count, whatever time they claim"
            )
        super().__init__(f"reading of device {device_id!r} at ts_ms {ts_ms} does not count: {why}")
        self.device_id = device_id
        self.ts_ms = ts_ms
        self.anchored_at_ms = anchored_at_ms
        self.revoked_at = revoked_at


class SignatureInvalid(VerificationError):
    """The signature is not the registered device key's over the digest.

    ``reason`` keeps the underlying cause's code (``"signature.high_s"``,
    ``"signature.length"``, ``"signature.bad"``, ``"signature.scheme_mismatch"``...).
    """

    code = "verify.signature_invalid"
    check = "signature"

    def __init__(self, message: str, *, device_id: str, scheme: str, reason: str) -> None:
        super().__init__(f"signature of device {device_id!r} ({scheme}) is invalid: {message}")
        self.device_id = device_id
        self.scheme = scheme
        self.reason = reason


class AnchorTxMismatch(VerificationError):
    """``anchor_tx`` is not a canonical, successful transaction that anchored this batch and root."""

    code = "verify.anchor_tx_mismatch"
    check = "anchor tx"

    def __init__(self, message: str, *, anchor_tx: bytes) -> None:
        super().__init__(f"anchor tx {_hex(anchor_tx)} {message}")
        self.anchor_tx = anchor_tx


class InsufficientConfirmations(VerificationError):
    """The anchoring is valid but has fewer blocks on top than required. Retry later."""

    code = "verify.insufficient_confirmations"
    check = "anchor tx"

    def __init__(self, *, anchor_tx: bytes, block: int, confirmations: int, required: int) -> None:
        super().__init__(
            f"anchor tx {_hex(anchor_tx)} in block {block} has {confirmations} block(s) on top; "
            f"{required} required: wait for more blocks and verify again"
        )
        self.anchor_tx = anchor_tx
        self.block = block
        self.confirmations = confirmations
        self.required = required


# ================================================================== the bundle model


_HEX: Final = re.compile(r"[0-9a-fA-F]*")


def _json_type(value: object) -> str:
    """What ``value`` is, in JSON's words ("a number", "an array", ...)."""
    if value is None:
        return "null"
    for kinds, name in (
        (bool, "a boolean"),
        (int | float, "a number"),
        (str, "a string"),
        (list | tuple, "an array"),
        (Mapping, "an object"),
    ):
        if isinstance(value, kinds):
            return name
    return f"a {type(value).__name__}"


def _byte_field(length: int | None, max_length: int | None = None) -> Callable[[object], bytes]:
    def validate(value: object) -> bytes:
        if isinstance(value, bytes | bytearray):
            raw = bytes(value)
        elif isinstance(value, str):
            if not value.startswith("0x"):
                raise ValueError("expected a 0x-prefixed hex string")
            body = value[2:]
            if len(body) % 2 or _HEX.fullmatch(body) is None:  # bytes.fromhex would skip spaces
                raise ValueError("not valid hex (an even number of 0-9a-f digits after 0x)")
            raw = bytes.fromhex(body)
        else:
            raise ValueError(f"expected a 0x-prefixed hex string, got {_json_type(value)}")
        if length is not None and len(raw) != length:
            raise ValueError(f"expected {length} bytes, got {len(raw)}")
        if max_length is not None and len(raw) > max_length:
            raise ValueError(f"at most {max_length} bytes, got {len(raw)}")
        return raw

    return validate


def _address(value: object) -> str:
    if not isinstance(value, str) or not value.startswith("0x") or len(value) != 42:
        raise ValueError("expected a 0x-prefixed 20-byte address")
    body = value[2:]
    if not is_address(value):
        raise ValueError("not a hex address; copy it again from its source")
    if body != body.lower() and body != body.upper() and not is_checksum_address(value):
        raise ValueError("the address has an invalid EIP-55 checksum; copy it again from its source")
    return str(to_checksum_address(value))


def _scheme(value: object) -> Scheme:
    if not isinstance(value, str):
        raise ValueError(f"expected 'p256' or 'secp256k1', got {_json_type(value)}")
    try:
        return parse_scheme(value)
    except SignatureError as e:
        raise ValueError(e.message) from None


_AsHex = PlainSerializer(_hex, return_type=str)
Bytes32 = Annotated[bytes, PlainValidator(_byte_field(32)), _AsHex]
SignatureBytes = Annotated[bytes, PlainValidator(_byte_field(None, max_length=1024)), _AsHex]
Address = Annotated[str, PlainValidator(_address)]
SchemeField = Annotated[Scheme, PlainValidator(_scheme), PlainSerializer(lambda s: s.value, return_type=str)]

_MESSAGES = {
    "missing": "missing; a Reading v1 proof bundle needs it (reading-v1.md section 6)",
    "extra_forbidden": "unknown field; a proof bundle has only the keys of reading-v1.md section 6",
    "tuple_type": "expected an array of 0x-hex 32-byte sibling hashes",
}


def _format_error(error: ValidationError) -> BundleFormatError:
    first = error.errors(include_url=False)[0]
    field = ".".join(str(p) for p in first["loc"] if p != "[key]")
    msg = _MESSAGES.get(first["type"], first["msg"].removeprefix("Value error, "))
    more = error.error_count() - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    return BundleFormatError(msg + suffix, field=field)


class ProofBundle(BaseModel):
    """A Reading v1 proof bundle (spec section 6). Immutable.

    Byte fields hold bytes (``signature``, ``digest``, ``root``, ``proof``, ``anchor_tx``)
    and are written as 0x-hex; ``anchor_contract`` is EIP-55 checksummed. Build it with
    keyword arguments, :meth:`from_json_obj` or :meth:`from_json`, which raise
    :class:`BundleFormatError` naming the offending field, or with :func:`build_bundle`.
    The format says nothing about validity: that is :func:`verify_bundle`'s job (a
    signature of the wrong length is well-formed and fails the signature check).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    reading: Reading
    scheme: SchemeField
    signature: SignatureBytes
    digest: Bytes32
    batch_id: Annotated[int, Field(ge=1, le=2**256 - 1)]
    root: Bytes32
    proof: Annotated[tuple[Bytes32, ...], Field(max_length=MAX_PROOF_LENGTH, strict=False)]  # JSON: a list
    chain_id: Annotated[int, Field(ge=1, le=2**256 - 1)]
    anchor_contract: Address
    anchor_tx: Bytes32

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as e:
            raise _format_error(e) from e
        except InvalidReading as e:
            raise BundleFormatError(e.message.split(": ", 1)[-1], field=_reading_path(e)) from e

    @classmethod
    def from_json_obj(cls, obj: object) -> ProofBundle:
        """A bundle from its decoded JSON object; raises :class:`BundleFormatError`."""
        if not isinstance(obj, Mapping):
            raise BundleFormatError(f"a proof bundle is a JSON object, got {_json_type(obj)}")
        try:
            return cls.model_validate(obj)
        except ValidationError as e:
            raise _format_error(e) from e
        except InvalidReading as e:
            raise BundleFormatError(e.message.split(": ", 1)[-1], field=_reading_path(e)) from e

    @classmethod
    def from_json(cls, text: str | bytes) -> ProofBundle:
        """A bundle from JSON text. Duplicate keys are refused (what would the bundle mean?)."""
        try:
            if isinstance(text, bytes):
                text = text.decode("utf-8")  # RFC 8259: JSON exchanged between systems is UTF-8
            obj = json.loads(text, object_pairs_hook=_no_duplicates)
        except UnicodeDecodeError as e:
            raise BundleFormatError(f"not UTF-8 text ({e.reason} at byte {e.start})") from e
        except json.JSONDecodeError as e:
            raise BundleFormatError(f"not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from e
        except _DuplicateKey as e:
            raise BundleFormatError(f"key {e.key!r} appears twice; a bundle states each field once") from e
        return cls.from_json_obj(obj)

    def to_json_obj(self) -> dict[str, Any]:
        """The bundle's JSON object, with exactly the spec's keys in the spec's order."""
        return {
            "reading": self.reading.to_json_obj(),
            "scheme": self.scheme.value,
            "signature": _hex(self.signature),
            "digest": _hex(self.digest),
            "batch_id": self.batch_id,
            "root": _hex(self.root),
            "proof": [_hex(p) for p in self.proof],
            "chain_id": self.chain_id,
            "anchor_contract": self.anchor_contract,
            "anchor_tx": _hex(self.anchor_tx),
        }

    def to_json(self, *, indent: int | None = None) -> str:
        """The bundle as JSON text (:meth:`to_json_obj`)."""
        return json.dumps(self.to_json_obj(), indent=indent)

    def replace(self, **changes: Any) -> ProofBundle:
        """A copy with ``changes`` applied and validated again (handy for tests and tools)."""
        data: dict[str, Any] = {name: getattr(self, name) for name in BUNDLE_KEYS}
        data.update(changes)
        return ProofBundle(**data)


def _reading_path(e: InvalidReading) -> str:
    return "reading" + (f".{e.path}" if e.path else "")


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


# ================================================================== assembling bundles


def build_bundle(
    *,
    reading: Reading,
    scheme: Scheme | str,
    signature: bytes,
    tree: MerkleTree,
    batch_id: int,
    deployment: Deployment,
    anchor_tx: str | bytes,
) -> ProofBundle:
    """Assemble the proof bundle of one signed reading of an anchored batch.

    The digest is computed under the deployment's EIP-712 domain and its proof taken
    from ``tree``; the bundle is checked to be self-consistent (the proof leads to
    ``tree.root``) before it is returned. The signature is not checked here (that
    needs the registry): :func:`verify_bundle` does it.

    Raises :class:`device_attestation.errors.MerkleError` when the reading is not in
    ``tree`` and :class:`BundleFormatError` for malformed inputs.
    """
    domain = _domain(deployment)
    digest = reading_digest(reading, domain)
    proof = tree.proof(digest)
    verify_inclusion(digest=digest, proof=proof, root=tree.root)
    return ProofBundle(
        reading=reading,
        scheme=scheme,
        signature=signature,
        digest=digest,
        batch_id=batch_id,
        root=tree.root,
        proof=tuple(proof),
        chain_id=domain.chain_id,
        anchor_contract=domain.verifying_contract,
        anchor_tx=anchor_tx,
    )


def build_bundle_for(
    submission: Submission,
    *,
    tree: MerkleTree,
    batch_id: int,
    deployment: Deployment,
    anchor_tx: str | bytes,
) -> ProofBundle:
    """:func:`build_bundle` for a :class:`~device_attestation.sdk.Submission`.

    Raises :class:`DigestMismatch` when the submission's digest was computed under
    another domain than the deployment's.
    """
    bundle = build_bundle(
        reading=submission.reading,
        scheme=submission.scheme,
        signature=submission.signature,
        tree=tree,
        batch_id=batch_id,
        deployment=deployment,
        anchor_tx=anchor_tx,
    )
    if submission.digest != bundle.digest:
        raise DigestMismatch(
            expected=submission.digest,
            computed=bundle.digest,
            by="under the deployment's domain",
            of="the submission",
        )
    return bundle


# ================================================================== the result


@dataclass(frozen=True, kw_only=True)
class VerifiedReading:
    """What a verified bundle establishes.

    ``confirmations`` counts the blocks on top of ``anchor_block`` (0 when the
    anchoring is in the latest block), as :meth:`contracts.chain.Chain.wait` does.
    ``anchored_at`` is the anchoring block's time (Unix seconds), as the contract keeps it.
    """

    digest: bytes
    device_id: str
    seq: int
    batch_id: int
    root: bytes
    anchor_block: int
    anchored_at: int
    scheme: Scheme
    confirmations: int


# ================================================================== the chain-free checks


def _domain(deployment: Deployment) -> Domain:
    return Domain(chain_id=deployment.chain_id, verifying_contract=deployment.address("ReadingAnchor"))


def _check_claims(bundle: ProofBundle, domain: Domain) -> None:
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


def _check_digest(bundle: ProofBundle, domain: Domain) -> bytes:
    computed = reading_digest(bundle.reading, domain)
    if computed != bundle.digest:
        raise DigestMismatch(expected=bundle.digest, computed=computed)
    return computed


def _check_root(bundle: ProofBundle, batch: AnchoredBatch) -> None:
    if batch.root != bundle.root:
        raise RootMismatch(batch_id=bundle.batch_id, expected=batch.root, computed=bundle.root)


def _check_inclusion(bundle: ProofBundle, digest: bytes, root: bytes) -> None:
    try:
        verify_inclusion(digest=digest, proof=bundle.proof, root=root)
    except ProofMismatch as e:
        raise InclusionError(
            batch_id=bundle.batch_id, digest=digest, expected=e.expected, computed=e.computed
        ) from e
    except MerkleError as e:  # malformed nodes: the model already refuses them
        raise BundleFormatError(e.message, field="proof") from e


def _check_device(bundle: ProofBundle, device: DeviceRecord, anchored_at: int) -> None:
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


def _registered_scheme(device: DeviceRecord) -> Scheme:
    return Scheme.P256 if device.scheme is OnChainScheme.P256 else Scheme.SECP256K1


def _check_scheme_claim(bundle: ProofBundle, device: DeviceRecord) -> Scheme:
    registered = _registered_scheme(device)
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


def _check_signature(bundle: ProofBundle, digest: bytes, device: DeviceRecord) -> Scheme:
    scheme = _registered_scheme(device)
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
    return _check_scheme_claim(bundle, device)


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
    digest = _check_digest(bundle, domain)
    _check_root(bundle, batch)
    _check_inclusion(bundle, digest, batch.root)
    _check_device(bundle, device, batch.anchored_at)
    _check_signature(bundle, digest, device)
    return digest


# ================================================================== the verifier


class BundleVerifier:
    """Verifies bundles against one trusted deployment on one chain.

    Construction reads the anchor's registry address once (and checks it against the
    deployment file); reuse one verifier to check many bundles. Raises
    :class:`DeploymentMismatch` when the chain is not the deployment's chain, the
    anchor has no code, or the deployment's DeviceRegistry is not the anchor's.
    """

    def __init__(self, *, chain: Chain, deployment: Deployment) -> None:
        if chain.chain_id != deployment.chain_id:
            raise DeploymentMismatch(
                f"the node at {chain.rpc} serves chain {chain.chain_id} but the deployment file is "
                f"for chain {deployment.chain_id}: connect to the deployment's chain",
                what="chain_id",
                expected=deployment.chain_id,
                claimed=chain.chain_id,
            )
        self.chain = chain
        self.deployment = deployment
        self.domain = _domain(deployment)
        self._anchor = ReadingAnchorClient(chain, deployment)
        registry_address = str(self._read(lambda: chain.call(self._anchor.contract.functions.registry())))
        listed = deployment.contracts.get("DeviceRegistry")
        if listed is not None and to_checksum_address(listed) != registry_address:
            raise DeploymentMismatch(
                f"the deployment file lists DeviceRegistry {listed} but ReadingAnchor "
                f"{self.domain.verifying_contract} consults {registry_address}: the file is "
                "inconsistent; fetch the deployment file again",
                what="DeviceRegistry",
                expected=listed,
                claimed=registry_address,
            )
        self.registry_address = registry_address
        self._registry = chain.contract("DeviceRegistry", registry_address)

    # ------------------------------------------------------------------ chain reads

    def _read(self, thunk: Callable[[], _T]) -> _T:
        try:
            return thunk()
        except BadFunctionCallOutput as e:
            raise DeploymentMismatch(
                f"a contract of the deployment answered nothing on chain {self.chain.chain_id} "
                f"({e}): there is no code at its address; the chain was reset or the deployment "
                "file is from another network",
                what="code",
                expected="contract code",
                claimed="none",
            ) from e
        except (requests.ConnectionError, requests.Timeout, ConnectionError, TimeoutError) as e:
            raise ChainError(f"the chain at {self.chain.rpc} is unreachable ({e})") from e

    def _head(self) -> int:
        return self._read(self.chain.block_number)

    def read_batch(self, batch_id: int, *, block: BlockIdentifier = "latest") -> AnchoredBatch:
        """The anchored batch ``batch_id``; :class:`UnknownBatch` when there is none."""
        try:
            return self._read(lambda: self._anchor.batch(batch_id, block=block))
        except ContractRevert as e:
            if e.error_name != "ReadingAnchorUnknownBatch":
                raise
            count: int | None
            try:
                count = int(self.chain.call(self._anchor.contract.functions.batchCount(), block=block))
            except ContractRevert:
                count = None
            raise UnknownBatch(
                batch_id=batch_id, batch_count=count, anchor=self.domain.verifying_contract
            ) from e

    def read_device(self, device_id: str, *, block: BlockIdentifier = "latest") -> DeviceRecord:
        """The registry's record of ``device_id`` (scheme NONE when not enrolled)."""
        did = device_id_hash(device_id)
        d = self._read(lambda: self.chain.call(self._registry.functions.device(did), block=block))
        return DeviceRecord.from_call(did, d)

    # ------------------------------------------------------------------ anchor tx

    def _check_anchor_tx(self, bundle: ProofBundle, root: bytes, head: int, min_confirmations: int) -> int:
        tx = bundle.anchor_tx
        receipt = self._read(lambda: self.chain.receipt(_hex(tx)))
        if receipt is None:
            raise AnchorTxMismatch(
                f"has no receipt on chain {self.chain.chain_id}: it does not exist, is not mined yet, "
                "or was dropped by a reorganisation",
                anchor_tx=tx,
            )
        if receipt["status"] != 1:
            raise AnchorTxMismatch("failed (status 0): it anchored nothing", anchor_tx=tx)
        anchor = self.domain.verifying_contract.lower()
        wanted = (BATCH_ANCHORED_TOPIC, bundle.batch_id.to_bytes(32, "big"), root)
        found = any(
            str(log["address"]).lower() == anchor
            and not log.get("removed", False)
            and tuple(bytes(t) for t in log["topics"][:3]) == wanted
            for log in receipt["logs"]
        )
        if not found:
            raise AnchorTxMismatch(
                f"emitted no BatchAnchored(batchId={bundle.batch_id}, root={_hex(root)}) from "
                f"ReadingAnchor {self.domain.verifying_contract}: it is another transaction",
                anchor_tx=tx,
            )
        number = int(receipt["blockNumber"])
        receipt_hash = bytes(receipt["blockHash"])
        try:
            # Chain has no public block read; its _rpc serialises the embedded chain's I/O and
            # maps transport errors, as the ledger service's own raw reads do.
            block = self._read(lambda: self.chain.block(number))
        except BlockNotFound:
            block = None
        if block is None or bytes(block["hash"]) != receipt_hash:
            raise AnchorTxMismatch(
                f"was mined in block {number} ({_hex(receipt_hash)}) which is no longer on the "
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

    # ------------------------------------------------------------------ verdicts

    def verify(self, bundle: ProofBundle, *, min_confirmations: int = 0) -> VerifiedReading:
        """Verify ``bundle`` with local code and the chain's state; see :func:`verify_bundle`."""
        if min_confirmations < 0:
            raise ValueError(f"min_confirmations must be >= 0, got {min_confirmations}")
        _check_claims(bundle, self.domain)
        digest = _check_digest(bundle, self.domain)
        head = self._head()  # every read below is of this one block: a consistent view
        batch = self.read_batch(bundle.batch_id, block=head)
        _check_root(bundle, batch)
        _check_inclusion(bundle, digest, batch.root)
        device = self.read_device(bundle.reading.device_id, block=head)
        _check_device(bundle, device, batch.anchored_at)
        scheme = _check_signature(bundle, digest, device)
        block = self._check_anchor_tx(bundle, batch.root, head, min_confirmations)
        return VerifiedReading(
            digest=digest,
            device_id=bundle.reading.device_id,
            seq=bundle.reading.seq,
            batch_id=bundle.batch_id,
            root=batch.root,
            anchor_block=block,
            anchored_at=batch.anchored_at,
            scheme=scheme,
            confirmations=head - block,
        )

    def verify_on_chain(self, bundle: ProofBundle, *, min_confirmations: int = 0) -> bytes:
        """Verify ``bundle`` with the contract's code; see :func:`verify_bundle_on_chain`."""
        if min_confirmations < 0:
            raise ValueError(f"min_confirmations must be >= 0, got {min_confirmations}")
        _check_claims(bundle, self.domain)
        head = self._head()
        struct = reading_struct(bundle.reading)
        on_chain_digest = bytes(
            self._read(
                lambda: self.chain.call(
                    self._anchor.contract.functions.digest(reading_tuple(struct)), block=head
                )
            )
        )
        if on_chain_digest != bundle.digest:
            raise DigestMismatch(
                expected=bundle.digest, computed=on_chain_digest, by="ReadingAnchor.digest on chain"
            )
        batch = self.read_batch(bundle.batch_id, block=head)
        _check_root(bundle, batch)
        try:
            digest = self._read(
                lambda: verify_reading_on_chain(
                    self._anchor, struct, bundle.signature, bundle.batch_id, list(bundle.proof), block=head
                )
            )
        except ContractRevert as e:
            raise self._explain_revert(e, bundle, on_chain_digest, batch, head) from e
        device = self.read_device(bundle.reading.device_id, block=head)
        _check_scheme_claim(bundle, device)
        self._check_anchor_tx(bundle, batch.root, head, min_confirmations)
        return digest

    def _explain_revert(
        self, e: ContractRevert, bundle: ProofBundle, digest: bytes, batch: AnchoredBatch, head: int
    ) -> VerificationError:
        device_id = bundle.reading.device_id
        name = e.error_name
        if name == "ReadingAnchorNotIncluded":
            computed = process_proof(leaf_hash(digest), bundle.proof)
            return InclusionError(
                batch_id=bundle.batch_id, digest=digest, expected=batch.root, computed=computed
            )
        if name == "ReadingAnchorUnknownBatch":
            return UnknownBatch(
                batch_id=bundle.batch_id, batch_count=None, anchor=self.domain.verifying_contract
            )
        if name == "ReadingAnchorUnknownDevice":
            return DeviceNotEnrolled(device_id=device_id)
        if name == "ReadingAnchorDeviceNotActive":
            record = self.read_device(device_id, block=head)
            return DeviceNotActive(
                device_id=device_id,
                ts_ms=bundle.reading.ts_ms,
                active_from=record.active_from_ms,
                revoked_at=record.revoked_at_ms,
            )
        if name in ("ReadingAnchorReadingAfterAnchoring", "ReadingAnchorAnchoredAfterRevocation"):
            record = self.read_device(device_id, block=head)
            return AnchoringTimeInvalid(
                device_id=device_id,
                ts_ms=bundle.reading.ts_ms,
                anchored_at_ms=batch.anchored_at * 1000,
                revoked_at=record.revoked_at_ms,
            )
        if name in ("ReadingAnchorBadSignature", "ReadingAnchorInvalidSignatureLength"):
            record = self.read_device(device_id, block=head)
            reason = "signature.bad" if name == "ReadingAnchorBadSignature" else "signature.length"
            return SignatureInvalid(
                f"ReadingAnchor.verifyReading refused it ({e.message})",
                device_id=device_id,
                scheme=_registered_scheme(record).value,
                reason=reason,
            )
        return VerificationError(
            f"ReadingAnchor.verifyReading refused the reading with an unexpected error: {e.message}",
            code="verify.contract_revert",
        )


def verify_bundle(
    bundle: ProofBundle, *, chain: Chain, deployment: Deployment, min_confirmations: int = 0
) -> VerifiedReading:
    """Verify a proof bundle with local code and the chain's state; return what it establishes.

    Preconditions: ``deployment`` is the auditor's own, trusted deployment file (the
    bundle's ``chain_id`` and ``anchor_contract`` are claims checked against it, never
    trusted); ``chain`` serves the deployment's chain (checked: :class:`DeploymentMismatch`);
    ``min_confirmations >= 0`` (``ValueError``).

    Checks, in the order of :data:`CHECKS`: the bundle's deployment claims; the EIP-712
    digest recomputed from ``reading`` under the deployment's domain equals ``digest``;
    batch ``batch_id`` exists and its anchored root is ``root``; ``proof`` includes the
    digest under that root; the device is enrolled in the anchor's registry and active
    at ``ts_ms`` (``activeFrom <= ts < revokedAt``, or not revoked); the signature is the
    registered key's, in the registered scheme (the bundle's ``scheme`` must agree);
    ``anchor_tx`` succeeded, emitted ``BatchAnchored(batch_id, root)`` from the anchor,
    is in a canonical block and has at least ``min_confirmations`` blocks on top.
    Contract state is read at one block (the head when verification starts).

    Raises the :class:`VerificationError` subclass of the first failed check, or
    :class:`contracts.errors.ChainError` when the chain cannot be reached.
    """
    return BundleVerifier(chain=chain, deployment=deployment).verify(
        bundle, min_confirmations=min_confirmations
    )


def verify_bundle_on_chain(
    bundle: ProofBundle, *, chain: Chain, deployment: Deployment, min_confirmations: int = 0
) -> bytes:
    """Verify a proof bundle with ``ReadingAnchor.verifyReading``; return the digest.

    The reading itself (inclusion, device enrolled and active, signature) is judged by
    the contract's code, whose custom errors become the same :class:`VerificationError`
    subclasses :func:`verify_bundle` raises. The bundle's claims the contract does not
    see are checked as :func:`verify_bundle` checks them: deployment, ``digest`` (against
    the contract's ``digest()``), ``root`` (against ``batch()``), ``scheme`` (against the
    registry) and ``anchor_tx``. Same preconditions as :func:`verify_bundle`.
    """
    verifier = BundleVerifier(chain=chain, deployment=deployment)
    return verifier.verify_on_chain(bundle, min_confirmations=min_confirmations)
