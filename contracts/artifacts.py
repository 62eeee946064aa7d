"""The compiled contract artifacts shipped with the package (no node or solc needed)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from contracts.errors import ArtifactError

#: The contracts the suite deploys, in deployment order (``TestStablecoin`` only when asked).
SUITE = (
    "ReadingAnchor",
    "DeviceRegistry",
    "ParticipantRegistry",
    "LotRegistry",
    "QualityCertifier",
    "PurchaseOrders",
    "CreditRegistry",
    "TestStablecoin",
    "Receivables",
)


@dataclass(frozen=True, kw_only=True)
class Artifact:
    """One compiled contract: ABI, creation and runtime bytecode, and what built it."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: str
    deployed_bytecode: str
    compiler_version: str
    sources_hash: str
    file_hash: str


def _artifact_dir() -> Path:
    # A plain path next to this module: package data is installed as files (no zip imports).
    return Path(__file__).resolve().parent / "artifacts"


@cache
def load_artifact(name: str) -> Artifact:
    """The artifact of contract ``name``; :class:`ArtifactError` when there is none."""
    path = _artifact_dir() / f"{name}.json"
    try:
        raw = path.read_bytes()
    except FileNotFoundError as e:
        known = ", ".join(artifact_names()) or "none"
        raise ArtifactError(
            f"no artifact for contract {name!r} (known: {known}); run `supet contracts build`"
        ) from e
    try:
        data = json.loads(raw)
        return Artifact(
            name=data["contractName"],
            abi=data["abi"],
            bytecode=data["bytecode"],
            deployed_bytecode=data["deployedBytecode"],
            compiler_version=data["compiler"]["version"],
            sources_hash=data["sourcesHash"],
            file_hash="0x" + hashlib.sha256(raw).hexdigest(),
        )
    except (ValueError, KeyError, TypeError) as e:
        raise ArtifactError(
            f"artifact {name}.json is corrupt ({e}); rebuild with `supet contracts build`"
        ) from e


def artifact_names() -> list[str]:
    """Names of every shipped artifact."""
    return sorted(p.name.removesuffix(".json") for p in _artifact_dir().iterdir() if p.name.endswith(".json"))


def all_abis() -> dict[str, list[dict[str, Any]]]:
    """Every shipped ABI by contract name (used to decode custom errors and events)."""
    return {name: load_artifact(name).abi for name in artifact_names()}
