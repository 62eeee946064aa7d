"""Shared fixtures: the Reading v1 vectors (the repository's copy) and their domain."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from device_attestation import Domain

VECTORS_PATH = Path(__file__).resolve().parents[1] / "vectors" / "reading-v1-vectors.json"


def load_vectors() -> dict[str, Any]:
    return json.loads(VECTORS_PATH.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def vectors() -> dict[str, Any]:
    return load_vectors()


@pytest.fixture(scope="session")
def domain(vectors: dict[str, Any]) -> Domain:
    d = vectors["domain"]
    assert (d["name"], d["version"]) == ("supET Ledger", "1")
    return Domain(chain_id=d["chainId"], verifying_contract=d["verifyingContract"])


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``reading_vector``: one test per reading in the vectors file."""
    if "reading_vector" in metafunc.fixturenames:
        readings = load_vectors()["readings"]
        ids = [f"{r['reading']['device_id']}-seq{r['reading']['seq']}" for r in readings]
        metafunc.parametrize("reading_vector", readings, ids=ids)
