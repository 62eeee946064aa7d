"""`supet audit lot`: the whole history of a lot re-verified from the chain and the bundles alone.

The scenario (a lot opened, two anchored batches of its readings around a custody transfer, a
certification, one reading pending) is ``build_lot`` of ``tests/ledger_service/test_lot_history.py``,
on a ledger service over the embedded chain; the command's chain connection is that chain.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import click
import pytest
from click.testing import CliRunner as ClickRunner
from embedded_pool import deployed_embedded
from fastapi.testclient import TestClient
from reads import bearer

import supet.cli
from contracts.deployment import Deployment
from ledger_service.api import create_app
from ledger_service.config import Settings
from ledger_service.service import LedgerService
from supet.cli import audit as audit_cli


def _scenario_module() -> ModuleType:
    path = Path(__file__).parent.parent / "ledger_service" / "test_lot_history.py"
    spec = importlib.util.spec_from_file_location("lot_history_scenario", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


scenario = _scenario_module()


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[LedgerService]:
    with deployed_embedded() as (chain, deployment):  # the process's deployment, rolled back after
        settings = Settings(
            database_url=f"sqlite:///{tmp_path}/ledger.db",
            verify_workers=0,
            anchoring=False,
            registry_refresh_seconds=0,
        )
        service = LedgerService.build(settings, chain=chain, deployment=deployment)
        try:
            yield service
        finally:
            service.stop()


@pytest.fixture
def client(ledger: LedgerService) -> Iterator[TestClient]:
    with TestClient(create_app(service=ledger)) as c:
        yield c


@pytest.fixture
def undisclosed(
    ledger: LedgerService, client: TestClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Any:
    """The scenario built; the command connects to the ledger's chain, and `--ledger` to the test app."""
    sc = scenario.build_lot(ledger, client)
    monkeypatch.setattr(audit_cli, "open_deployment", lambda rpc, path: (ledger.chain, Deployment.load(path)))
    monkeypatch.setattr(audit_cli, "_ledger_client", lambda base_url: _Borrowed(client))
    ledger.deployment.save(tmp_path / "deployment.json")
    return sc


@pytest.fixture
def lot(undisclosed: Any, client: TestClient) -> Any:
    """The scenario, its lot disclosed by its holder (issue 14): anyone may audit it through the ledger."""
    r = client.post(
        f"/v1/lots/{undisclosed.lot_id}/disclosure", json={}, headers=bearer(client, undisclosed.recipient)
    )
    assert r.status_code == 200, r.text
    return undisclosed


class _Borrowed:
    """The test client as a context manager that does not close it."""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    def __enter__(self) -> TestClient:
        return self.client

    def __exit__(self, *exc: object) -> None:
        return None


def _bundles_dir(client: TestClient, lot_id: str, directory: Path) -> list[Path]:
    directory.mkdir()
    steps = client.get(f"/v1/lots/{lot_id}/history").json()["steps"]
    paths = []
    for step in steps:
        ref = step["reference"]
        if step["kind"] == "reading" and ref["status"] == "anchored":
            path = directory / f"{ref['digest']}.json"
            path.write_text(json.dumps(ref["proof"]), encoding="utf-8")
            paths.append(path)
    return paths


def _audit(tmp_path: Path, lot_id: str, *extra: str) -> tuple[int, str]:
    """Run `supet audit lot` through the command's entry point (:func:`supet.cli.main`, as the installed
    `supet` script does), so the exit code is the one a shell sees."""
    args = ["audit", "lot", lot_id, "--rpc", "http://unused.invalid:8545"]
    args += ["--deployment", str(tmp_path / "deployment.json"), *extra]
    result = ClickRunner().invoke(_entry_point, args)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.pass_context
def _entry_point(ctx: click.Context) -> None:
    supet.cli.main(list(ctx.args))


def _verdicts(output: str) -> list[str]:
    return [line for line in output.splitlines() if line[:1] in ("✓", "✗", "·")]


def test_offline_audit_verifies_the_whole_lot(lot: Any, client: TestClient, tmp_path: Path) -> None:
    paths = _bundles_dir(client, lot.lot_id, tmp_path / "bundles")
    assert len(paths) == 5
    (tmp_path / "bundles" / "again.json").write_bytes(paths[0].read_bytes())  # judged once
    code, out = _audit(tmp_path, lot.lot_id, "--bundles", str(tmp_path / "bundles"))
    assert code == 0, out
    lines = _verdicts(out)
    kinds = [line.split()[2] for line in lines]
    assert kinds == [
        "opened",
        "reading",
        "reading",
        "reading",
        "transfer_proposed",
        "transfer_accepted",
        "reading",
        "reading",
        "certified",
    ]
    assert all(line.startswith("✓") for line in lines)
    assert lot.txs["transfer_accepted"] in out and "VERIFIED" in out and "NOT VERIFIED" not in out


def test_tampered_bundle_fails(lot: Any, client: TestClient, tmp_path: Path) -> None:
    paths = _bundles_dir(client, lot.lot_id, tmp_path / "bundles")
    bundle = json.loads(paths[1].read_text(encoding="utf-8"))
    bundle["reading"]["metrics"]["temp_c"] = 9.9  # out of spec, had it been signed
    paths[1].write_text(json.dumps(bundle), encoding="utf-8")
    code, out = _audit(tmp_path, lot.lot_id, "--bundles", str(tmp_path / "bundles"))
    assert code == 1, out
    failed = [line for line in _verdicts(out) if line.startswith("✗")]
    assert len(failed) == 1 and "reading" in failed[0] and "digest" in failed[0].lower()
    assert "NOT VERIFIED" in out


def test_bundle_of_another_lot_fails(lot: Any, client: TestClient, tmp_path: Path) -> None:
    _bundles_dir(client, lot.lot_id, tmp_path / "bundles")
    other = lot.other_lot[0]  # a reading of another lot, as its owner reads it
    proof = client.get(f"/v1/readings/0x{other.digest.hex()}/proof", headers=bearer(client, lot.supplier))
    assert proof.status_code == 200, proof.text
    (tmp_path / "bundles" / "other.json").write_text(proof.text, encoding="utf-8")
    (tmp_path / "bundles" / "garbage.json").write_text("{not json", encoding="utf-8")
    code, out = _audit(tmp_path, lot.lot_id, "--bundles", str(tmp_path / "bundles"))
    assert code == 1, out
    failed = [line for line in _verdicts(out) if line.startswith("✗")]
    assert len(failed) == 2
    assert any("LOT-HIST-OTHER" in line for line in failed)
    assert any("garbage.json" in line for line in failed)


def test_audit_through_the_ledger(lot: Any, tmp_path: Path) -> None:
    code, out = _audit(tmp_path, lot.lot_id)
    assert code == 1, out  # one reading is not anchored yet
    failed = [line for line in _verdicts(out) if line.startswith("✗")]
    assert len(failed) == 1 and "not anchored yet" in failed[0]
    code, out = _audit(tmp_path, lot.lot_id, "--allow-pending")
    assert code == 0, out
    assert sum(1 for line in _verdicts(out) if line.startswith("✓")) == 9


def test_an_undisclosed_lot_is_audited_by_its_custodian(undisclosed: Any, tmp_path: Path) -> None:
    """Issue 14: without a disclosure the ledger shows the lot only to its custodians and the auditors its
    holder named; the command says so, and reads it signed in with --key-file."""
    code, out = _audit(tmp_path, undisclosed.lot_id, "--allow-pending")
    assert code == 1 and "access.anonymous" in out and "--key-file" in out, out
    key = tmp_path / "holder.key"
    key.write_text(undisclosed.recipient.key.to_0x_hex(), encoding="utf-8")
    code, out = _audit(tmp_path, undisclosed.lot_id, "--allow-pending", "--key-file", str(key))
    assert code == 0, out
    assert sum(1 for line in _verdicts(out) if line.startswith("✓")) == 9


def test_unknown_lot_fails(lot: Any, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    code, out = _audit(tmp_path, "LOT-NEVER", "--bundles", str(tmp_path / "empty"))
    assert code == 1 and "never opened on chain" in out


def test_ledger_claims_are_compared_with_the_chain(lot: Any, ledger: LedgerService) -> None:
    from auditor.lot_audit import judge_ledger_claims
    from auditor.lot_chain import lot_chain_steps

    ours = lot_chain_steps(ledger.chain, ledger.deployment, lot.lot_id)
    theirs = [s.to_json_obj() for s in ours]
    assert judge_ledger_claims(ours, theirs) == []
    forged = dict(theirs[1], kind="transfer_rejected")
    verdicts = judge_ledger_claims(ours, [theirs[0], forged, *theirs[2:-1]])
    texts = sorted(v.text for v in verdicts)
    assert all(v.failed for v in verdicts) and len(texts) == 2
    assert any("transfer_rejected" in t and "does not have" in t for t in texts)
    assert any("omits the certified" in t for t in texts)
