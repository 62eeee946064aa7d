"""The certification package: a lot's QC readings with one multiproof per anchored batch.

What ``QualityCertifier.certifyLot`` takes, as a JSON file (format ``supet.certification-package.v1``):
the ledger service serves it (``GET /v1/lots/{lot_id}/certification-package``) and ``supet lot certify
--package`` submits it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from supet_base.errors import SupetError

_HEX = re.compile(r"^0x([0-9a-fA-F]{2})*$")


class PackageError(SupetError):
    """A certification package is unreadable or malformed."""

    code = "lot.package"


def _hex(b: bytes) -> str:
    return "0x" + bytes(b).hex()


def package_json(lot_id: str, batches: Sequence[tuple[Any, ...]]) -> dict[str, Any]:
    """A certification package: ``batches`` as :func:`contracts.certifier.batch_readings` gives them."""
    out: list[dict[str, Any]] = []
    for batch_id, readings, signatures, proof, flags in batches:
        out.append(
            {
                "batch_id": int(batch_id),
                "readings": [
                    {
                        "device_id": _hex(r[0]),
                        "seq": int(r[1]),
                        "timestamp": int(r[2]),
                        "lot_id": _hex(r[3]),
                        "metrics": [_hex(n) for n in r[4]],
                        "values": [str(int(v)) for v in r[5]],
                    }
                    for r in readings
                ],
                "signatures": [_hex(s) for s in signatures],
                "proof": [_hex(p) for p in proof],
                "proof_flags": [bool(f) for f in flags],
            }
        )
    return {"format": "supet.certification-package.v1", "lot_id": lot_id, "batches": out}


def _bytes(value: object, where: str, size: int | None = None) -> bytes:
    if not isinstance(value, str) or not _HEX.match(value):
        raise PackageError(f"{where} is not 0x-hex: {value!r}")
    raw = bytes.fromhex(value[2:])
    if size is not None and len(raw) != size:
        raise PackageError(f"{where} has {len(raw)} bytes, not {size}")
    return raw


def _int(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise PackageError(f"{where} is not an integer: {value!r}")
    try:
        return int(value)
    except ValueError:
        raise PackageError(f"{where} is not an integer: {value!r}") from None


def _list(obj: dict[str, Any], key: str, where: str) -> list[Any]:
    value = obj.get(key)
    if not isinstance(value, list):
        raise PackageError(f"{where}.{key} is missing or not a list")
    return value


def load_package(path: Path) -> tuple[str | None, list[tuple[Any, ...]]]:
    """The lot id (if the package names one) and the ``BatchReadings`` tuples of a package file."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PackageError(f"no certification package at {path}") from None
    except (OSError, ValueError) as e:
        raise PackageError(f"{path} is not a JSON certification package: {e}") from None
    return load_package_obj(data, where=str(path))


def load_package_obj(data: Any, *, where: str = "package") -> tuple[str | None, list[tuple[Any, ...]]]:
    """:func:`load_package` of an already decoded JSON object (the ledger's HTTP answer, say)."""
    path = where
    if not isinstance(data, dict):
        raise PackageError(f"{path}: a certification package is a JSON object")
    lot_id = data.get("lot_id")
    if lot_id is not None and not isinstance(lot_id, str):
        raise PackageError(f"{path}: lot_id is not text")
    batches: list[tuple[Any, ...]] = []
    for i, b in enumerate(_list(data, "batches", "package")):
        w = f"batches[{i}]"
        if not isinstance(b, dict):
            raise PackageError(f"{w} is not an object")
        readings = []
        for j, r in enumerate(_list(b, "readings", w)):
            rw = f"{w}.readings[{j}]"
            if not isinstance(r, dict):
                raise PackageError(f"{rw} is not an object")
            readings.append(
                (
                    _bytes(r.get("device_id"), f"{rw}.device_id", 32),
                    _int(r.get("seq"), f"{rw}.seq"),
                    _int(r.get("timestamp"), f"{rw}.timestamp"),
                    _bytes(r.get("lot_id"), f"{rw}.lot_id", 32),
                    [_bytes(n, f"{rw}.metrics[{k}]", 32) for k, n in enumerate(_list(r, "metrics", rw))],
                    [_int(v, f"{rw}.values[{k}]") for k, v in enumerate(_list(r, "values", rw))],
                )
            )
        flags = _list(b, "proof_flags", w)
        if not all(isinstance(f, bool) for f in flags):
            raise PackageError(f"{w}.proof_flags holds something other than true/false")
        batches.append(
            (
                _int(b.get("batch_id"), f"{w}.batch_id"),
                readings,
                [_bytes(s, f"{w}.signatures[{k}]") for k, s in enumerate(_list(b, "signatures", w))],
                [_bytes(p, f"{w}.proof[{k}]", 32) for k, p in enumerate(_list(b, "proof", w))],
                flags,
            )
        )
    if not batches:
        raise PackageError(f"{path} holds no batches")
    return lot_id, batches
