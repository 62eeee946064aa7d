"""The proof bundle's wire format (Reading v1, ``reading-v1.md`` section 6): parse, serialise, build.

:class:`ProofBundle` is the bundle as a frozen model; :meth:`ProofBundle.from_json` and
:meth:`ProofBundle.from_json_obj` refuse malformed input with :class:`~auditor.errors.BundleFormatError`
naming the offending field. :func:`build_bundle` is the one place bundles are assembled (the
ledger service calls it to serve its readings' bundles). Well-formed says nothing about valid: that
is :func:`auditor.verify.verify_bundle`'s job.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Annotated, Any, Final

from eth_utils import is_address, is_checksum_address, to_checksum_address
from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, PlainValidator, ValidationError

from auditor._internal import hex0x
from auditor.errors import BundleFormatError, DigestMismatch
from contracts.deployment import Deployment
from device_attestation.errors import InvalidReading, SignatureError
from device_attestation.keys import Scheme, parse_scheme
from device_attestation.merkle import MerkleTree, verify_inclusion
from device_attestation.reading import Domain, Reading, reading_digest
from device_attestation.sdk import Submission

__all__ = [
    "BUNDLE_KEYS",
    "MAX_PROOF_LENGTH",
    "ProofBundle",
    "build_bundle",
    "build_bundle_for",
    "deployment_domain",
]

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
    return _checked_address(value)


@lru_cache(maxsize=256)
def _checked_address(value: str) -> str:
    """``value`` checked and checksummed (once per address: a directory's bundles name one anchor)."""
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


_AsHex = PlainSerializer(hex0x, return_type=str)
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
            "signature": hex0x(self.signature),
            "digest": hex0x(self.digest),
            "batch_id": self.batch_id,
            "root": hex0x(self.root),
            "proof": [hex0x(p) for p in self.proof],
            "chain_id": self.chain_id,
            "anchor_contract": self.anchor_contract,
            "anchor_tx": hex0x(self.anchor_tx),
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
    domain = deployment_domain(deployment)
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


def deployment_domain(deployment: Deployment) -> Domain:
    """The EIP-712 domain of ``deployment``'s readings (its chain id and ReadingAnchor)."""
    return Domain(chain_id=deployment.chain_id, verifying_contract=deployment.address("ReadingAnchor"))
