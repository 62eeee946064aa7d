"""Compile the Solidity sources into committed artifacts.

The compiler is driven through py-solc-x: a native ``solc`` on PATH when its
version is the pinned one, otherwise solc-js (the npm ``solc`` package pinned in
``package.json``) through the small ``solc-standard-json.js`` wrapper next to
this file. Every source, ours and OpenZeppelin's, goes into the standard-JSON
``sources``, so both compilers see the same input and produce the same output.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import solcx
from solcx.wrapper import get_solc_version

from contracts.errors import BuildError

#: The pinned compiler version (package.json pins the same for solc-js).
SOLC_VERSION = "0.8.28"

#: Pinned compiler settings. Changing them changes every artifact.
SETTINGS: dict[str, Any] = {
    "optimizer": {"enabled": True, "runs": 200},
    "evmVersion": "cancun",
    "metadata": {"bytecodeHash": "ipfs"},
    "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]}},
}

PACKAGE_DIR = Path(__file__).resolve().parent
SOURCE_DIR = PACKAGE_DIR / "src"
ARTIFACT_DIR = PACKAGE_DIR / "artifacts"
WRAPPER = PACKAGE_DIR / "solc-standard-json.js"
PROJECT_DIR = PACKAGE_DIR.parent

_IMPORT_RE = re.compile(r'^\s*import\s+(?:[^"\']*\s+from\s+)?["\']([^"\']+)["\']\s*;', re.MULTILINE)


@dataclass(frozen=True, kw_only=True)
class BuildResult:
    """What a build produced: artifact paths by contract name, and the sources' hash."""

    artifacts: Mapping[str, Path]
    sources_hash: str
    compiler_version: str


def node_modules_dir() -> Path:
    """The ``node_modules`` holding OpenZeppelin and solc-js (``SUPET_NODE_MODULES`` overrides)."""
    override = os.environ.get("SUPET_NODE_MODULES")
    return Path(override) if override else PROJECT_DIR / "node_modules"


def _resolve(import_path: str, importer: str) -> str:
    if import_path.startswith("."):
        base = Path(importer).parent
        parts: list[str] = []
        for part in (base / import_path).parts:
            if part == "..":
                if not parts:
                    raise BuildError(f"import {import_path!r} in {importer} climbs above the source root")
                parts.pop()
            elif part != ".":
                parts.append(part)
        return "/".join(parts)
    return import_path


def _read_source(unit: str) -> str:
    if unit.startswith("@"):
        path = node_modules_dir() / unit
        hint = "run `npm ci` in the project directory to install the pinned node packages"
    else:
        path = SOURCE_DIR / unit
        hint = "check the import path"
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise BuildError(f"source {unit!r} not found at {path}: {hint}") from e


def collect_sources(roots: Iterable[str] | None = None) -> dict[str, str]:
    """Every source unit reachable from ``roots`` (default: all of ``contracts/src``), by unit name."""
    if roots is None:
        roots = sorted(p.relative_to(SOURCE_DIR).as_posix() for p in SOURCE_DIR.rglob("*.sol"))
    pending = list(roots)
    sources: dict[str, str] = {}
    while pending:
        unit = pending.pop()
        if unit in sources:
            continue
        text = _read_source(unit)
        sources[unit] = text
        pending.extend(_resolve(imp, unit) for imp in _IMPORT_RE.findall(text))
    return dict(sorted(sources.items()))


def sources_hash(sources: Mapping[str, str]) -> str:
    """SHA-256 over every source unit's name and content, in name order."""
    h = hashlib.sha256()
    for name in sorted(sources):
        data = sources[name].encode("utf-8")
        h.update(name.encode("utf-8") + b"\0" + str(len(data)).encode() + b"\0" + data)
    return "0x" + h.hexdigest()


def _solc_binary() -> Path:
    native = shutil.which("solc")
    if native:
        try:
            version = get_solc_version(native)
        except (OSError, subprocess.SubprocessError, ValueError) as e:
            raise BuildError(f"`solc` on PATH ({native}) did not report a version: {e}") from e
        if str(version) == SOLC_VERSION:
            return Path(native)
    if shutil.which("node") is None:
        raise BuildError(
            f"no solc {SOLC_VERSION} on PATH and no `node` to run solc-js: install Node 20 and run "
            "`npm ci` in the project directory (the service itself needs neither: artifacts are committed)"
        )
    if not (node_modules_dir() / "solc").is_dir():
        raise BuildError("solc-js is not installed: run `npm ci` in the project directory")
    return WRAPPER


def compile_sources(sources: Mapping[str, str]) -> dict[str, Any]:
    """Run the compiler on ``sources`` with the pinned settings; return solc's standard-JSON output."""
    binary = _solc_binary()
    standard_input = {
        "language": "Solidity",
        "sources": {name: {"content": text} for name, text in sources.items()},
        "settings": SETTINGS,
    }
    env_node_modules = str(node_modules_dir())
    os.environ.setdefault("SUPET_NODE_MODULES", env_node_modules)
    try:
        output: dict[str, Any] = solcx.compile_standard(standard_input, solc_binary=binary, allow_empty=False)
    except solcx.exceptions.SolcError as e:
        raise BuildError(f"compilation failed:\n{e}") from e
    except (OSError, subprocess.SubprocessError) as e:
        raise BuildError(f"could not run the compiler {binary}: {e}") from e
    errors = [m for m in output.get("errors", []) if m.get("severity") == "error"]
    if errors:
        raise BuildError("compilation failed:\n" + "\n".join(m["formattedMessage"] for m in errors))
    return output


def compiler_version() -> str:
    """The compiler's version and commit (``0.8.28+commit.7893614a``), without the platform.

    The platform suffix (``.Emscripten.clang`` for solc-js, ``.Linux.g++`` for native solc)
    is dropped: both produce the same bytecode, so artifacts must not differ by it.
    """
    full = str(get_solc_version(_solc_binary(), with_commit_hash=True))
    match = re.match(r"^(\d+\.\d+\.\d+\+commit\.[0-9a-f]+)", full)
    if match is None:
        raise BuildError(f"unexpected compiler version string {full!r}")
    return match.group(1)


def render_artifacts(output: Mapping[str, Any], sources: Mapping[str, str], version: str) -> dict[str, str]:
    """The artifact files' text by contract name: one per contract defined in ``contracts/src``."""
    digest = sources_hash(sources)
    rendered: dict[str, str] = {}
    for unit, contracts in sorted(output["contracts"].items()):
        if unit.startswith("@"):
            continue
        for name, data in sorted(contracts.items()):
            bytecode = data["evm"]["bytecode"]["object"]
            if not bytecode:  # interfaces and abstract contracts
                continue
            if name in rendered:
                raise BuildError(f"two contracts are named {name}: artifact names must be unique")
            artifact = {
                "contractName": name,
                "sourceName": unit,
                "abi": data["abi"],
                "bytecode": "0x" + bytecode,
                "deployedBytecode": "0x" + data["evm"]["deployedBytecode"]["object"],
                "compiler": {"name": "solc", "version": version, "settings": SETTINGS},
                "sourcesHash": digest,
            }
            rendered[name] = json.dumps(artifact, indent=1, sort_keys=True) + "\n"
    # interfaces' ABIs are useful too (for decoding errors and events of gates)
    return rendered


def build(out_dir: Path = ARTIFACT_DIR) -> BuildResult:
    """Compile every contract and write ``<Name>.json`` artifacts into ``out_dir``.

    Stale artifacts (of contracts no longer in the sources) are removed.
    """
    sources = collect_sources()
    output = compile_sources(sources)
    version = compiler_version()
    rendered = render_artifacts(output, sources, version)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name, text in rendered.items():
        path = out_dir / f"{name}.json"
        path.write_text(text, encoding="utf-8")
        paths[name] = path
    for stale in out_dir.glob("*.json"):
        if stale.stem not in rendered:
            stale.unlink()
    return BuildResult(artifacts=paths, sources_hash=sources_hash(sources), compiler_version=version)
