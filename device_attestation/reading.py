"""Reading v1: the model a device sends and the EIP-712 digest it signs.

Spec: ``reading-v1.md`` sections 1 and 2. In short::

    Reading(bytes32 deviceId,uint64 seq,uint64 timestamp,bytes32 lotId,
            bytes32[] metrics,int256[] values)

    deviceId = keccak256(utf8(device_id)); lotId = keccak256(utf8(lot_id)) or 0x00..00
    metrics sorted by name; metrics[i] = name right-padded to 32 bytes
    values[i] = value * 10^6, rounded half-to-even (6-decimal fixed point)
    digest = keccak256(0x1901 || domainSeparator || hashStruct(Reading))

The digest is computed by hand from 32-byte words and keccak (not through a
generic typed-data encoder, which is two orders of magnitude slower): it
bounds how fast the ledger can ingest readings.
"""

from __future__ import annotations

import decimal
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from types import MappingProxyType
from typing import Annotated, Any, Final, NamedTuple, NewType

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StringConstraints,
    ValidationError,
    field_serializer,
    field_validator,
)

from ._internal.hexutil import address_bytes, to_checksum_address
from ._internal.keccak import keccak256
from .errors import InvalidDomain, InvalidReading

__all__ = [
    "DOMAIN_NAME",
    "DOMAIN_VERSION",
    "EIP712_DOMAIN_TYPE",
    "EIP712_DOMAIN_TYPEHASH",
    "FIXED_POINT_DECIMALS",
    "MAX_METRICS",
    "READING_TYPE",
    "READING_TYPEHASH",
    "Domain",
    "Micro",
    "Reading",
    "ReadingFields",
    "ReadingStruct",
    "cached_domain",
    "domain_separator",
    "hash_struct",
    "reading_digest",
    "reading_struct",
    "to_fixed_point",
]

#: The EIP-712 type string of a reading (spec section 2).
READING_TYPE: Final = (
    "Reading(bytes32 deviceId,uint64 seq,uint64 timestamp,bytes32 lotId,bytes32[] metrics,int256[] values)"
)
#: keccak256 of :data:`READING_TYPE`.
READING_TYPEHASH: Final = keccak256(READING_TYPE.encode("ascii"))

EIP712_DOMAIN_TYPE: Final = (
    "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)
EIP712_DOMAIN_TYPEHASH: Final = keccak256(EIP712_DOMAIN_TYPE.encode("ascii"))

DOMAIN_NAME: Final = "supET Ledger"
DOMAIN_VERSION: Final = "1"

#: Metric values are fixed point with this many decimals.
FIXED_POINT_DECIMALS: Final = 6
MAX_METRICS: Final = 32

#: A metric value in millionths (the ``int256`` that goes into the digest).
Micro = NewType("Micro", int)

_UINT64_MAX: Final = 2**64 - 1
_INT256_MIN: Final = -(2**255)
_INT256_MAX: Final = 2**255 - 1
_SCALE: Final = 10**FIXED_POINT_DECIMALS
# Below this magnitude a float's fixed-point value surely fits int256;
# at or above it the exact check decides.
_FLOAT_SAFE: Final = 5.7e70
_METRIC_NAME = re.compile(r"[a-z0-9_]{1,32}")
_ZERO32: Final = bytes(32)
_PREFIX_1901: Final = b"\x19\x01"

# A context wide enough for any float scaled by 10^6 (about 315 digits), so
# scaling and quantizing are exact before the int256 range check.
_DEC_CTX: Final = decimal.Context(
    prec=400, rounding=decimal.ROUND_HALF_EVEN, traps=[decimal.InvalidOperation]
)
_DEC_ONE: Final = decimal.Decimal(1)


# --- fixed point ------------------------------------------------------------------


@lru_cache(maxsize=65536)
def _float_to_fixed(value: float) -> int:
    d = decimal.Decimal(repr(value))  # the shortest repr: 23.5 -> "23.5", not 23.4999..
    return int(_DEC_CTX.quantize(_DEC_CTX.scaleb(d, FIXED_POINT_DECIMALS), _DEC_ONE))


def to_fixed_point(value: int | float) -> Micro:
    """``value * 10^6`` rounded half-to-even, computed exactly in decimal.

    A float is taken by its shortest ``repr`` (the number as JSON wrote it),
    so ``23.5 -> 23_500_000`` and ``101.325 -> 101_325_000`` exactly. Raises
    :class:`InvalidReading` for bools, non-finite floats and results outside
    ``int256``.
    """
    if type(value) is int:
        fixed = value * _SCALE
    elif type(value) is float:
        if not math.isfinite(value):
            raise InvalidReading(
                f"metric value {value!r} is not a finite number; send a JSON number",
                code="reading.metric_value",
            )
        fixed = _float_to_fixed(value)
    else:
        raise InvalidReading(
            f"metric value {value!r} is a {type(value).__name__}; send a JSON number "
            "(integer or decimal, not a string or boolean)",
            code="reading.metric_value",
        )
    if not _INT256_MIN <= fixed <= _INT256_MAX:
        raise InvalidReading(
            f"metric value {value!r} times 10^6 does not fit int256; send a value of magnitude below 5.7e70",
            code="reading.metric_range",
        )
    return Micro(fixed)


# --- the model --------------------------------------------------------------------


def _check_metric_name(name: object) -> str:
    if type(name) is not str or _METRIC_NAME.fullmatch(name) is None:
        raise ValueError(f"metric name {name!r} is invalid: use 1..32 characters of a-z, 0-9 and _")
    return name


def _check_metric_value(value: object) -> int | float:
    if type(value) is int:
        if not _INT256_MIN <= value * _SCALE <= _INT256_MAX:
            raise ValueError(
                f"value {value!r} times 10^6 does not fit int256; send a value of magnitude below 5.7e70"
            )
        return value
    if type(value) is float:
        if not math.isfinite(value):
            raise ValueError(f"value {value!r} is not finite; send a finite JSON number")
        if abs(value) >= _FLOAT_SAFE:  # near the int256 limit: decide exactly
            try:
                to_fixed_point(value)
            except InvalidReading as e:
                raise ValueError(e.message) from None
        return value
    raise ValueError(
        f"value {value!r} is a {type(value).__name__}; send a JSON number "
        "(integer or decimal, not a string or boolean)"
    )


_Text64 = Annotated[str, StringConstraints(min_length=1, max_length=64)]
_MetricName = Annotated[str, PlainValidator(_check_metric_name)]
_MetricValue = Annotated[int | float, PlainValidator(_check_metric_value)]


def _loc_to_path(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc if part != "[key]")


def _to_invalid_reading(error: ValidationError) -> InvalidReading:
    first = error.errors(include_url=False)[0]
    path = _loc_to_path(first["loc"])
    msg = first["msg"].removeprefix("Value error, ")
    more = error.error_count() - 1
    suffix = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
    where = path or "reading"
    return InvalidReading(f"{where}: {msg}{suffix}", path=path)


class Reading(BaseModel):
    """One reading as a device sends it (spec section 1). Immutable.

    Build it with keyword arguments or :meth:`from_json_obj`; both raise
    :class:`InvalidReading` naming the offending field. ``metrics`` keeps the
    order it was given in and is read-only; the digest sorts it by name.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    device_id: _Text64
    seq: Annotated[int, Field(ge=1, le=_UINT64_MAX)]
    ts_ms: Annotated[int, Field(ge=0, le=_UINT64_MAX)]
    lot_id: _Text64 | None = None
    metrics: Annotated[Mapping[_MetricName, _MetricValue], Field(min_length=1, max_length=MAX_METRICS)]

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as e:
            raise _to_invalid_reading(e) from e

    @classmethod
    def from_json_obj(cls, obj: object) -> Reading:
        """A reading from its decoded JSON object; raises :class:`InvalidReading`."""
        try:
            return cls.model_validate(obj)
        except ValidationError as e:
            raise _to_invalid_reading(e) from e

    def to_json_obj(self) -> dict[str, Any]:
        """The reading's JSON object (spec section 1), ``lot_id`` always present."""
        return {
            "device_id": self.device_id,
            "seq": self.seq,
            "ts_ms": self.ts_ms,
            "lot_id": self.lot_id,
            "metrics": dict(self.metrics),
        }

    @field_validator("metrics")
    @classmethod
    def _freeze_metrics(cls, value: Mapping[str, int | float]) -> Mapping[str, int | float]:
        return MappingProxyType(dict(value))

    @field_serializer("metrics")
    def _serialize_metrics(self, value: Mapping[str, int | float]) -> dict[str, int | float]:
        return dict(value)

    def __hash__(self) -> int:
        return hash((self.device_id, self.seq, self.ts_ms, self.lot_id, tuple(self.metrics.items())))


# --- the domain -------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Domain:
    """The EIP-712 domain: binds a signature to one anchor contract on one chain.

    ``verifying_contract`` is normalised to its EIP-55 checksummed form; a
    mixed-case address with a wrong checksum is refused. The separator is
    computed once, at construction.
    """

    chain_id: int
    verifying_contract: str
    name: str = DOMAIN_NAME
    version: str = DOMAIN_VERSION
    _separator: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if type(self.chain_id) is not int or not 1 <= self.chain_id <= 2**256 - 1:
            raise InvalidDomain(
                f"chain id {self.chain_id!r} is invalid; give the chain's positive integer id "
                "(e.g. 31337 for a local anvil)",
                code="domain.chain_id",
            )
        try:
            raw = address_bytes(self.verifying_contract)
        except ValueError as e:
            raise InvalidDomain(
                f"verifying contract {self.verifying_contract!r}: {e}; give the deployed "
                "anchor contract's 0x-prefixed address",
                code="domain.verifying_contract",
            ) from e
        object.__setattr__(self, "verifying_contract", to_checksum_address(raw))
        separator = keccak256(
            EIP712_DOMAIN_TYPEHASH
            + keccak256(self.name.encode("utf-8"))
            + keccak256(self.version.encode("utf-8"))
            + self.chain_id.to_bytes(32, "big")
            + bytes(12)
            + raw
        )
        object.__setattr__(self, "_separator", separator)

    @property
    def separator(self) -> bytes:
        """The EIP-712 domain separator (32 bytes)."""
        return self._separator


@lru_cache(maxsize=16)
def cached_domain(chain_id: int, verifying_contract: str) -> Domain:
    """The :class:`Domain` of ``chain_id`` and ``verifying_contract``, built once (its checksum and
    separator are keccaks: for hot paths that meet the same few deployments again and again)."""
    return Domain(chain_id=chain_id, verifying_contract=verifying_contract)


def domain_separator(domain: Domain) -> bytes:
    """The EIP-712 domain separator of ``domain`` (cached on the domain)."""
    return domain._separator


# --- the struct and the digest ----------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class ReadingStruct:
    """The EIP-712 ``Reading`` struct, as the contracts see it."""

    device_id: bytes
    seq: int
    timestamp: int
    lot_id: bytes
    metrics: tuple[bytes, ...]
    values: tuple[int, ...]


@lru_cache(maxsize=65536)
def _text_hash(text: str) -> bytes:
    return keccak256(text.encode("utf-8"))


@lru_cache(maxsize=4096)
def _padded_name(name: str) -> bytes:
    return name.encode("ascii").ljust(32, b"\0")


@lru_cache(maxsize=4096)
def _names_hash(names: tuple[str, ...]) -> bytes:
    return keccak256(b"".join(_padded_name(n) for n in names))


def _fixed(value: int | float) -> int:
    # Hot path of to_fixed_point for values the model has already checked.
    if type(value) is int:
        return value * _SCALE
    return _float_to_fixed(value)


def _sorted_metrics(reading: Reading) -> tuple[tuple[str, ...], list[int]]:
    items = sorted(reading.metrics.items())
    names = tuple(name for name, _ in items)
    values = [_fixed(value) for _, value in items]
    return names, values


def reading_struct(reading: Reading) -> ReadingStruct:
    """The EIP-712 struct of ``reading``: hashed ids, sorted names, fixed-point values."""
    names, values = _sorted_metrics(reading)
    return ReadingStruct(
        device_id=_text_hash(reading.device_id),
        seq=reading.seq,
        timestamp=reading.ts_ms,
        lot_id=_ZERO32 if reading.lot_id is None else _text_hash(reading.lot_id),
        metrics=tuple(_padded_name(n) for n in names),
        values=tuple(values),
    )


def hash_struct(struct: ReadingStruct) -> bytes:
    """EIP-712 ``hashStruct`` of a :class:`ReadingStruct` (32 bytes)."""
    return keccak256(
        READING_TYPEHASH
        + struct.device_id
        + struct.seq.to_bytes(32, "big")
        + struct.timestamp.to_bytes(32, "big")
        + struct.lot_id
        + keccak256(b"".join(struct.metrics))
        + keccak256(b"".join(v.to_bytes(32, "big", signed=True) for v in struct.values))
    )


@lru_cache(maxsize=4096)
def _metric_order(names: tuple[str, ...]) -> tuple[tuple[str, ...], bytes]:
    """A reading's metric names (in its own order) sorted, and the hash of the sorted names."""
    ordered = tuple(sorted(names))
    return ordered, _names_hash(ordered)


class ReadingFields(NamedTuple):
    """A reading's fields as :func:`reading_digest` reads them, for a caller that has checked them
    already (the ingest workers' fast parse, a stored reading): no :class:`Reading` model built."""

    device_id: str
    seq: int
    ts_ms: int
    lot_id: str | None
    metrics: Mapping[str, int | float]


def reading_digest(reading: Reading | ReadingFields, domain: Domain) -> bytes:
    """The 32-byte EIP-712 digest a device signs for ``reading`` under ``domain``.

    Equal to ``keccak256(0x1901 || domain_separator(domain) ||
    hash_struct(reading_struct(reading)))`` (what OpenZeppelin
    ``EIP712._hashTypedDataV4`` computes), with the per-name and per-id hashes
    cached (and the order of each set of metric names).
    """
    metrics = reading.metrics
    names, names_hash = _metric_order(tuple(metrics))
    lot = reading.lot_id
    struct_hash = keccak256(
        b"".join(
            (
                READING_TYPEHASH,
                _text_hash(reading.device_id),
                reading.seq.to_bytes(32, "big"),
                reading.ts_ms.to_bytes(32, "big"),
                _ZERO32 if lot is None else _text_hash(lot),
                names_hash,
                keccak256(b"".join([_fixed(metrics[n]).to_bytes(32, "big", signed=True) for n in names])),
            )
        )
    )
    return keccak256(_PREFIX_1901 + domain._separator + struct_hash)
