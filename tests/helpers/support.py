"""Helpers shared by tests (importable as ``support``: pytest puts tests/helpers on sys.path)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from contracts.errors import ContractRevert

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(condition: bool, reason: str) -> None:
    """Skip (locally) or fail (under CI) when a needed service is missing."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI=true and a required service is missing: {reason}", pytrace=False)
    pytest.skip(reason)


VECTORS_PATH = Path(__file__).parent.parent / "vectors" / "reading-v1-vectors.json"


def load_vectors() -> dict[str, Any]:
    """The Reading v1 vectors (an exact copy of the shared spec's file)."""
    return json.loads(VECTORS_PATH.read_text(encoding="utf-8"))


@contextmanager
def reverts(error_name: str, **expected_args: Any) -> Iterator[pytest.ExceptionInfo[ContractRevert]]:
    """Expect a :class:`ContractRevert` with this custom error and (a subset of) these arguments."""
    with pytest.raises(ContractRevert) as info:
        yield info
    err = info.value
    assert err.error_name == error_name, f"expected {error_name}, got {err.error_name}: {err}"
    for key, value in expected_args.items():
        got = err.error_args.get(key)
        if isinstance(value, bytes):
            value = "0x" + value.hex()
        if isinstance(value, str) and isinstance(got, str):
            assert got.lower() == value.lower(), f"{error_name}.{key}: expected {value}, got {got}"
        else:
            assert got == value, f"{error_name}.{key}: expected {value!r}, got {got!r}"


def b32(hex_str: str) -> bytes:
    """A 0x-hex string as bytes."""
    return bytes.fromhex(hex_str.removeprefix("0x"))
