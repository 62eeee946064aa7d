"""The canonical credit record, its salted commitment, and checking an opened record against the chain.

The chain holds a record's **commitment** only (``CreditRegistry``): the EIP-712 struct hash of

    CreditRecord(address factory,uint8 grade,uint32 pdPpm,uint256 limit,bytes3 currency,
                 string[] reasons,uint64 validUntil,bytes32 modelVersion,bytes32 analyticsCommitment,
                 bytes32 salt)

that is ``keccak256(abi.encode(RECORD_TYPEHASH, factory, grade, pdPpm, limit, currency,
keccak256(keccak256(reason_0) || ... ), validUntil, modelVersion, analyticsCommitment, salt))`` (EIP-712
``hashStruct``: a string is hashed, a ``string[]`` is the hash of its elements' hashes concatenated).
The ``salt`` is 32 bytes from :mod:`secrets`, fresh per record: without it, a grade of 1..10, a PD and a
limit cannot be tried against the commitment. docs/credit-commitments.md has the whole scheme.

A :class:`CreditOpening` is the record with its salt: what a consented bank receives (from the service,
or in its envelope on chain). :func:`check_opening` compares one with the on-chain
:class:`~contracts.credit.CreditRecord` and raises :class:`CreditRecordMismatch` naming the fields that
differ: a clear field (validity, model version, analytics commitment, factory, oracle) directly; a hidden
one (grade, PD, limit, currency, reasons, salt) against a reference opening that does open the
commitment (the bank's own envelope), or, without one, as ``record_commitment``.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final

from eth_abi import encode
from eth_utils import is_address, keccak, to_checksum_address

from contracts.credit import CreditRecord, InvalidCreditInput, currency_code, model_version
from contracts.errors import ContractsError

__all__ = [
    "BEST_GRADE",
    "CLEAR_FIELDS",
    "HIDDEN_FIELDS",
    "OPENING_SCHEMA",
    "PPM",
    "RECORD_TYPE",
    "RECORD_TYPEHASH",
    "WORST_GRADE",
    "CreditOpening",
    "CreditRecordMismatch",
    "InvalidOpening",
    "check_opening",
    "new_salt",
    "record_commitment",
]

#: The EIP-712 type of the committed record.
RECORD_TYPE: Final = (
    "CreditRecord(address factory,uint8 grade,uint32 pdPpm,uint256 limit,bytes3 currency,string[] reasons,"
    "uint64 validUntil,bytes32 modelVersion,bytes32 analyticsCommitment,bytes32 salt)"
)
RECORD_TYPEHASH: Final = keccak(text=RECORD_TYPE)
OPENING_SCHEMA: Final = "supet.credit-opening.v1"
#: Master scale: grade 1 is the best (lowest risk), 10 the worst; a PD of one is 1,000,000 ppm.
BEST_GRADE: Final = 1
WORST_GRADE: Final = 10
PPM: Final = 1_000_000
#: Fields the chain shows in clear (compared directly) and fields only the commitment binds.
CLEAR_FIELDS: Final = ("factory", "oracle", "valid_until", "model_version", "analytics_commitment")
HIDDEN_FIELDS: Final = ("grade", "pd_ppm", "limit", "currency", "reasons", "salt")


class InvalidOpening(ContractsError):
    """An opened record is malformed (a figure out of range, a missing field, bad hex)."""

    code = "credit.opening.invalid"


class CreditRecordMismatch(ContractsError):
    """An opened record does not match the chain; ``fields`` names what differs."""

    code = "credit.record.mismatch"

    def __init__(self, message: str, *, fields: Sequence[str]) -> None:
        super().__init__(message)
        self.fields: tuple[str, ...] = tuple(fields)


def new_salt() -> bytes:
    """A fresh 256-bit salt (:func:`secrets.token_bytes`)."""
    return secrets.token_bytes(32)


def _b32(value: bytes, name: str) -> bytes:
    if len(value) != 32:
        raise InvalidOpening(f"{name} is 32 bytes, got {len(value)}")
    return bytes(value)


@dataclass(frozen=True, kw_only=True)
class CreditOpening:
    """A credit record with its salt (``limit`` in minor units of ``currency``; times in Unix seconds).

    ``oracle`` and ``index`` locate it on chain (``recordAtBy(factory, oracle, index)``); they are not
    hashed (the chain keeps them). ``index`` may be unknown (None) until the record is mined.
    """

    factory: str
    grade: int
    pd_ppm: int
    limit: int
    currency: str
    reasons: tuple[str, ...]
    valid_until: int
    model_version: bytes
    analytics_commitment: bytes
    salt: bytes
    oracle: str | None = None
    index: int | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not is_address(self.factory):
            raise InvalidOpening(f"factory {self.factory!r} is not an address")
        if not BEST_GRADE <= self.grade <= WORST_GRADE:
            raise InvalidOpening(f"grade {self.grade} is not {BEST_GRADE}..{WORST_GRADE}")
        if not 1 <= self.pd_ppm <= PPM:
            raise InvalidOpening(f"pd_ppm {self.pd_ppm} is not 1..{PPM}")
        if not 0 <= self.limit < 2**256:
            raise InvalidOpening(f"limit {self.limit} is not a uint256")
        if not 0 < self.valid_until < 2**64:
            raise InvalidOpening(f"valid_until {self.valid_until} is not a uint64")
        try:
            currency_code(self.currency)
        except InvalidCreditInput as e:
            raise InvalidOpening(str(e)) from e
        for name in ("model_version", "analytics_commitment", "salt"):
            _b32(getattr(self, name), name)

    @property
    def pd(self) -> float:
        return self.pd_ppm / PPM

    @property
    def grade_name(self) -> str:
        return f"S{self.grade}"

    @property
    def model_version_text(self) -> str:
        return bytes(self.model_version).rstrip(b"\0").decode("ascii", errors="replace")

    def commitment(self) -> bytes:
        """The record's commitment (what ``CreditRegistry`` stores)."""
        return record_commitment(self)

    def to_json_obj(self) -> dict[str, Any]:
        """The opening as JSON (hex with 0x; ``model_version`` as text, ``limit_minor`` in minor units)."""
        return {
            "schema": OPENING_SCHEMA,
            "factory": to_checksum_address(self.factory),
            "oracle": to_checksum_address(self.oracle) if self.oracle else None,
            "index": self.index,
            "grade": self.grade,
            "pd_ppm": self.pd_ppm,
            "limit_minor": self.limit,
            "currency": self.currency,
            "reasons": list(self.reasons),
            "valid_until": self.valid_until,
            "model_version": self.model_version_text,
            "analytics_commitment": "0x" + self.analytics_commitment.hex(),
            "salt": "0x" + self.salt.hex(),
            "record_commitment": "0x" + self.commitment().hex(),
        }

    def to_bytes(self) -> bytes:
        """Canonical JSON bytes (sorted keys, no whitespace): an envelope's plaintext."""
        return json.dumps(self.to_json_obj(), sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def from_json_obj(cls, obj: Mapping[str, Any]) -> CreditOpening:
        """Parse :meth:`to_json_obj`'s form; :class:`InvalidOpening` naming what is wrong."""
        if obj.get("schema") != OPENING_SCHEMA:
            raise InvalidOpening(f"not a {OPENING_SCHEMA} object (schema {obj.get('schema')!r})")
        try:
            reasons = obj["reasons"]
            if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
                raise InvalidOpening("reasons is a list of strings")
            return cls(
                factory=str(obj["factory"]),
                oracle=str(obj["oracle"]) if obj.get("oracle") else None,
                index=int(obj["index"]) if obj.get("index") is not None else None,
                grade=int(obj["grade"]),
                pd_ppm=int(obj["pd_ppm"]),
                limit=int(obj["limit_minor"]),
                currency=str(obj["currency"]),
                reasons=tuple(reasons),
                valid_until=int(obj["valid_until"]),
                model_version=model_version(str(obj["model_version"])),
                analytics_commitment=_hex32(obj["analytics_commitment"], "analytics_commitment"),
                salt=_hex32(obj["salt"], "salt"),
            )
        except KeyError as e:
            raise InvalidOpening(f"the opening has no {e.args[0]!r}") from e
        except (TypeError, ValueError, InvalidCreditInput) as e:
            raise InvalidOpening(f"the opening is malformed: {e}") from e

    @classmethod
    def from_bytes(cls, raw: bytes) -> CreditOpening:
        try:
            obj = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise InvalidOpening(f"an opening is JSON: {e}") from e
        if not isinstance(obj, dict):
            raise InvalidOpening("an opening is a JSON object")
        return cls.from_json_obj(obj)

    def located(self, *, oracle: str, index: int) -> CreditOpening:
        return replace(self, oracle=to_checksum_address(oracle), index=index)


def _hex32(value: Any, name: str) -> bytes:
    text = str(value)
    try:
        raw = bytes.fromhex(text.removeprefix("0x"))
    except ValueError as e:
        raise InvalidOpening(f"{name} is not hex: {text!r}") from e
    return _b32(raw, name)


def _reasons_hash(reasons: Sequence[str]) -> bytes:
    return keccak(b"".join(keccak(text=r) for r in reasons))


def record_commitment(o: CreditOpening) -> bytes:
    """The EIP-712 ``hashStruct`` of the record (see the module docstring)."""
    encoded = encode(
        [
            "bytes32",
            "address",
            "uint8",
            "uint32",
            "uint256",
            "bytes3",
            "bytes32",
            "uint64",
            "bytes32",
            "bytes32",
            "bytes32",
        ],
        [
            RECORD_TYPEHASH,
            to_checksum_address(o.factory),
            o.grade,
            o.pd_ppm,
            o.limit,
            currency_code(o.currency),
            _reasons_hash(o.reasons),
            o.valid_until,
            o.model_version,
            o.analytics_commitment,
            o.salt,
        ],
    )
    return keccak(encoded)


def _clear_diffs(o: CreditOpening, r: CreditRecord) -> list[str]:
    chain = {
        "factory": to_checksum_address(r.factory),
        "oracle": to_checksum_address(r.oracle),
        "valid_until": r.valid_until,
        "model_version": r.model_version,
        "analytics_commitment": r.analytics_commitment,
    }
    held = {
        "factory": to_checksum_address(o.factory),
        "oracle": to_checksum_address(o.oracle) if o.oracle else chain["oracle"],
        "valid_until": o.valid_until,
        "model_version": o.model_version,
        "analytics_commitment": o.analytics_commitment,
    }
    return [f for f in CLEAR_FIELDS if held[f] != chain[f]]


def check_opening(
    opening: CreditOpening, record: CreditRecord, *, reference: CreditOpening | None = None
) -> None:
    """Raise :class:`CreditRecordMismatch` unless ``opening`` opens ``record``'s commitment.

    Clear fields that differ from the chain are named; when only hidden fields differ, they are named
    against ``reference`` (an opening known to open the commitment, such as the bank's own envelope),
    and without one the error names ``record_commitment``: a hash alone says that, not which field.
    """
    fields = _clear_diffs(opening, record)
    if opening.commitment() == record.record_commitment and not fields:
        return
    if reference is not None and reference.commitment() == record.record_commitment:
        fields += [f for f in HIDDEN_FIELDS if getattr(opening, f) != getattr(reference, f)]
    fields = fields or ["record_commitment"]
    where = f"record {record.index} of {record.factory} (oracle {record.oracle})"
    raise CreditRecordMismatch(
        f"the credit record does not match {where} on chain: {', '.join(fields)} "
        + ("differs" if len(fields) == 1 else "differ"),
        fields=fields,
    )
