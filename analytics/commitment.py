"""Canonical JSON of analytics results and the commitment that binds a result to its inputs.

**Canonical JSON** (:func:`canonical_json`): UTF-8, keys sorted, no whitespace
(``separators=(",", ":")``), tuples as arrays, NumPy scalars as Python numbers, every float rounded
to :data:`FLOAT_DECIMALS` decimals (``-0.0`` written as ``0.0``) so that the last bits of a
floating-point computation do not change the bytes; NaN and infinities are refused.

**Commitment** (:func:`commit`): a record of

* ``inputs_root``: the Merkle root of the input records' 32-byte digests (reading digests or batch
  roots), built as :class:`device_attestation.merkle.MerkleTree` builds a batch (the OpenZeppelin
  standard tree, so the order of the inputs does not matter and a single input can be proven
  against the root), and ``n_inputs``;
* ``model``: the model name and version; ``code_version``: ``supet_base.__version__``;
* ``params_hash``: keccak256 of the canonical JSON of the parameters;
* ``result_hash``: keccak256 of the canonical JSON of the result;
* ``commitment``: keccak256 of the canonical JSON of all of the above (with ``schema``), the one
  32-byte value to anchor.

:func:`verify_commitment` recomputes every part from the claimed result, inputs, model and
parameters and raises :class:`CommitmentMismatch` naming each part that differs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol, runtime_checkable

import numpy as np
from eth_utils import keccak

import supet_base
from device_attestation.errors import MerkleError
from device_attestation.merkle import MerkleTree
from supet_base.errors import SupetError

__all__ = [
    "FLOAT_DECIMALS",
    "SCHEMA",
    "Commitment",
    "CommitmentError",
    "CommitmentMismatch",
    "ModelId",
    "canonical_json",
    "commit",
    "inputs_root",
    "verify_commitment",
]

#: Decimals every float is rounded to in canonical JSON.
FLOAT_DECIMALS: Final = 9
#: Schema of the commitment record.
SCHEMA: Final = "supet.analytics-commitment.v1"


class CommitmentError(SupetError):
    """A value cannot be committed to (not JSON-able, NaN, bad input digests)."""

    code = "analytics.commitment"


class CommitmentMismatch(CommitmentError):
    """A commitment does not match the result / inputs / model / parameters claimed for it.

    ``fields`` names every part that differs (``"inputs_root"``, ``"result_hash"``, ...).
    """

    code = "analytics.commitment.mismatch"

    def __init__(self, fields: Sequence[str]) -> None:
        self.fields: tuple[str, ...] = tuple(fields)
        super().__init__(f"commitment mismatch in: {', '.join(self.fields)}")


@runtime_checkable
class JsonObj(Protocol):
    """Anything with a ``to_json_obj()`` (the result and parameter dataclasses)."""

    def to_json_obj(self) -> Any: ...


@dataclass(frozen=True, slots=True)
class ModelId:
    """A model's name and version."""

    name: str
    version: str


def _normalize(value: Any, path: str) -> Any:
    if isinstance(value, JsonObj):
        return _normalize(value.to_json_obj(), path)
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        f = float(value)
        if not math.isfinite(f):
            raise CommitmentError(
                f"{path} is {f}; canonical JSON holds finite numbers only",
                code="analytics.commitment.not_finite",
            )
        r = round(f, FLOAT_DECIMALS)
        return 0.0 if r == 0 else r
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise CommitmentError(f"{path} has a non-text key {k!r}", code="analytics.commitment.bad_key")
            out[k] = _normalize(v, f"{path}.{k}")
        return out
    if isinstance(value, list | tuple | np.ndarray):
        return [_normalize(v, f"{path}[{i}]") for i, v in enumerate(value)]
    raise CommitmentError(
        f"{path} is a {type(value).__name__}, not JSON-able", code="analytics.commitment.type"
    )


def canonical_json(value: Any) -> bytes:
    """The canonical JSON bytes of ``value`` (see the module docstring).

    @raise CommitmentError for NaN / infinity, non-text keys or values JSON cannot hold
    """
    return json.dumps(
        _normalize(value, "$"), sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def _digest_bytes(d: bytes | str, i: int) -> bytes:
    if isinstance(d, str):
        text = d[2:] if d.startswith(("0x", "0X")) else d
        try:
            d = bytes.fromhex(text)
        except ValueError:
            raise CommitmentError(f"inputs[{i}] is not hex", code="analytics.commitment.bad_input") from None
    if len(d) != 32:
        raise CommitmentError(
            f"inputs[{i}] must be a 32-byte digest, got {len(d)} bytes", code="analytics.commitment.bad_input"
        )
    return bytes(d)


def inputs_root(inputs: Sequence[bytes | str]) -> bytes:
    """The Merkle root (OpenZeppelin standard tree) of the input digests (bytes or hex).

    @raise CommitmentError for no inputs, a digest that is not 32 bytes, or a duplicate
    """
    digests = [_digest_bytes(d, i) for i, d in enumerate(inputs)]
    try:
        return MerkleTree.build(digests).root
    except MerkleError as e:
        raise CommitmentError(f"bad inputs: {e.message}", code="analytics.commitment.bad_input") from e


def _model_json(model: ModelId | tuple[str, str]) -> dict[str, str]:
    name, version = (model.name, model.version) if isinstance(model, ModelId) else model
    return {"name": name, "version": version}


@dataclass(frozen=True, slots=True)
class Commitment:
    """The commitment record (all hashes ``0x``-hex keccak256).

    @param model_name    the model
    @param model_version its version
    @param code_version  ``supet_base.__version__`` of the code that produced the result
    @param params_hash   hash of the canonical parameters
    @param inputs_root   Merkle root of the input digests
    @param n_inputs      number of input digests
    @param result_hash   hash of the canonical result
    @param commitment    hash of the canonical record of all the above
    """

    model_name: str
    model_version: str
    code_version: str
    params_hash: str
    inputs_root: str
    n_inputs: int
    result_hash: str
    commitment: str

    def body(self) -> dict[str, Any]:
        """The committed fields (everything but ``commitment``) with the schema."""
        return {
            "schema": SCHEMA,
            "model": {"name": self.model_name, "version": self.model_version},
            "code_version": self.code_version,
            "params_hash": self.params_hash,
            "inputs_root": self.inputs_root,
            "n_inputs": self.n_inputs,
            "result_hash": self.result_hash,
        }

    def to_json_obj(self) -> dict[str, Any]:
        """The full record as a JSON object."""
        return {**self.body(), "commitment": self.commitment}


def _hex_hash(value: Any) -> str:
    return "0x" + keccak(canonical_json(value)).hex()


def commit(
    result: Any,
    inputs: Sequence[bytes | str],
    model: ModelId | tuple[str, str],
    params: Any,
    *,
    code_version: str | None = None,
) -> Commitment:
    """Commit to ``result`` computed by ``model`` with ``params`` from ``inputs``.

    @param result       the result (a JSON-able value or an object with ``to_json_obj()``)
    @param inputs       the 32-byte digests (or batch roots) of the input records
    @param model        the model's name and version
    @param params       the parameters (JSON-able or with ``to_json_obj()``)
    @param code_version the code version (default ``supet_base.__version__``)
    @return the :class:`Commitment`
    @raise CommitmentError when a part cannot be canonicalized or the inputs are malformed
    """
    m = _model_json(model)
    root = inputs_root(inputs)
    record = Commitment(
        model_name=m["name"],
        model_version=m["version"],
        code_version=code_version if code_version is not None else supet_base.__version__,
        params_hash=_hex_hash(params),
        inputs_root="0x" + root.hex(),
        n_inputs=len(inputs),
        result_hash=_hex_hash(result),
        commitment="",
    )
    return Commitment(**{**_fields(record), "commitment": _hex_hash(record.body())})


def _fields(c: Commitment) -> dict[str, Any]:
    return {f: getattr(c, f) for f in Commitment.__dataclass_fields__}


def verify_commitment(
    commitment: Commitment,
    result: Any,
    inputs: Sequence[bytes | str],
    model: ModelId | tuple[str, str],
    params: Any,
    *,
    code_version: str | None = None,
) -> None:
    """Check that ``commitment`` commits to exactly this result, inputs, model and parameters.

    @raise CommitmentMismatch naming every differing part: ``model``, ``code_version``,
           ``params_hash``, ``inputs_root``, ``n_inputs``, ``result_hash``, and ``commitment`` when
           the record's own hash does not match its fields (the record itself was altered)
    """
    expected = commit(result, inputs, model, params, code_version=code_version)
    diff: list[str] = []
    if (commitment.model_name, commitment.model_version) != (expected.model_name, expected.model_version):
        diff.append("model")
    diff.extend(
        f
        for f in ("code_version", "params_hash", "inputs_root", "n_inputs", "result_hash")
        if getattr(commitment, f) != getattr(expected, f)
    )
    if commitment.commitment != _hex_hash(commitment.body()):
        diff.append("commitment")
    if diff:
        raise CommitmentMismatch(diff)
