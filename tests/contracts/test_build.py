"""The committed artifacts are exactly what the pinned compiler makes of the sources."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from support import load_vectors, require

from contracts import build
from contracts.artifacts import SUITE, artifact_names, load_artifact
from contracts.errors import ArtifactError, BuildError


def _compiler_available() -> bool:
    return shutil.which("node") is not None and (build.node_modules_dir() / "solc").is_dir()


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require(_compiler_available(), "node and the npm solc package are needed to rebuild (run `npm ci`)")
    out = tmp_path_factory.mktemp("artifacts")
    build.build(out)
    return out


@pytest.mark.node
def test_committed_artifacts_match_a_fresh_build_byte_for_byte(rebuilt: Path) -> None:
    fresh = sorted(p.name for p in rebuilt.glob("*.json"))
    committed = sorted(p.name for p in build.ARTIFACT_DIR.glob("*.json"))
    assert fresh == committed, "a contract was added or removed: run `supet contracts build`"
    for name in fresh:
        assert (rebuilt / name).read_bytes() == (build.ARTIFACT_DIR / name).read_bytes(), (
            f"{name} is stale: run `supet contracts build` and commit the artifacts"
        )


def test_artifacts_record_compiler_settings_and_sources_hash() -> None:
    for name in SUITE:
        art = load_artifact(name)
        assert art.compiler_version.startswith(build.SOLC_VERSION + "+commit.")
        assert art.bytecode.startswith("0x6") and len(art.deployed_bytecode) > 100
        assert art.deployed_bytecode[-100:] in art.bytecode  # the runtime code (with metadata) is inside
        assert art.sources_hash == build.sources_hash(build.collect_sources())


def test_sources_include_openzeppelin_imports() -> None:
    sources = build.collect_sources()
    assert "ReadingAnchor.sol" in sources
    assert "@openzeppelin/contracts/utils/cryptography/P256.sol" in sources
    assert "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol" in sources


def test_unknown_artifact_is_a_typed_error() -> None:
    with pytest.raises(ArtifactError, match=r"no artifact for contract .Nope..*supet contracts build"):
        load_artifact("Nope")
    assert "ReadingAnchor" in artifact_names()


def test_missing_import_is_a_typed_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUPET_NODE_MODULES", str(tmp_path))
    with pytest.raises(BuildError, match="npm ci"):
        build.collect_sources(["ReadingAnchor.sol"])


def test_vectors_copy_is_present() -> None:
    assert load_vectors()["spec"] == "supET Ledger Reading v1"
