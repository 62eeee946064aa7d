"""`supet trace` through the ledger (signed in; re-checked on chain with --verify) and `supet lot recall`
(the notice, then every downstream lot flagged in batches), on the graph of
tests/ledger_service/test_lot_trace.py over the embedded chain."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from embedded_pool import deployed_embedded
from eth_account.signers.local import LocalAccount
from fastapi.testclient import TestClient

from contracts.deployment import Deployment
from contracts.lot_recall import LotRecallClient
from ledger_service.api import create_app
from ledger_service.config import Settings
from ledger_service.service import LedgerService
from supet.cli import trace as trace_cli
from tests.ledger_service.test_lot_trace import Graph, build_graph

LEDGER = "http://testserver"


def _key(account: LocalAccount) -> str:
    return "0x" + bytes(account.key).hex()


class _Borrowed:
    def __init__(self, client: TestClient) -> None:
        self.client = client

    def __enter__(self) -> TestClient:
        return self.client

    def __exit__(self, *exc: object) -> None:
        return None


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Graph, Path]]:
    with deployed_embedded() as (chain, deployment):
        settings = Settings(
            database_url=f"sqlite:///{tmp_path}/ledger.db",
            data_dir=tmp_path,
            verify_workers=0,
            anchoring=False,
            registry_refresh_seconds=0,
        )
        service = LedgerService.build(settings, chain=chain, deployment=deployment)
        try:
            with TestClient(create_app(service=service)) as client:
                graph = build_graph(service)
                path = tmp_path / "deployment.json"
                deployment.save(path)
                monkeypatch.setattr(trace_cli, "open_deployment", lambda rpc, p: (chain, Deployment.load(p)))
                monkeypatch.setattr(trace_cli, "_ledger_client", lambda base: _Borrowed(client))
                yield graph, path
        finally:
            service.stop()


def test_trace_verify_and_refusal(world: tuple[Graph, Path], cli: Callable[..., tuple[int, str]]) -> None:
    g, dep = world
    args = ("trace", "FIN-X", "--upstream", "--ledger", LEDGER)
    code, out = cli(*args, "--verify", "--rpc", "x", "--deployment", str(dep), key=_key(g.retailer))
    assert code == 0, out
    assert "upstream trace of FIN-X" in out and "4 lot(s)" in out
    assert f"RAW 1000 kg active producer {g.supplier.address}" in out
    assert "verified on chain: 5 lot(s), 4 edge(s)" in out and "no mismatch" in out
    code, out = cli(*args, key=_key(g.outsider))
    assert code != 0 and "access.not_custodian" in out
    code, out = cli("trace", "FIN-X", "--ledger", LEDGER, key=_key(g.retailer))
    assert code != 0 and "give one of --upstream and --downstream" in out
    code, out = cli(*args, "--verify", key=_key(g.retailer))
    assert code != 0 and "--verify needs --rpc and --deployment" in out


def test_lot_recall_flags_downstream(world: tuple[Graph, Path], cli: Callable[..., tuple[int, str]]) -> None:
    g, dep = world
    chain_args = ("--rpc", "x", "--deployment", str(dep))
    code, out = cli("lot", "recall", "RAW", "--reason", " ", *chain_args, key=_key(g.supplier))
    assert code != 0 and "say why" in out
    code, out = cli("lot", "recall", "FIN", "--reason", "cracks", *chain_args, key=_key(g.retailer))
    assert code != 0 and "LotRegistryNotRecaller" in out
    code, out = cli(
        "lot", "recall", "RAW", "--reason", "lead", "--batch", "2", *chain_args, key=_key(g.supplier)
    )
    assert code == 0, out
    assert "recall notice 1 on RAW" in out and "flagged 5 downstream lot(s) of 5 in 3 transaction(s)" in out
    recalls = LotRecallClient(g.lots)
    assert all(recalls.is_recalled(bytes.fromhex(g.keys[n][2:])) for n in ("FIN", "FIN-B", "FIN-X", "RAW-B"))
    code, out = cli("trace", "RAW", "--downstream", "--ledger", LEDGER, key=_key(g.supplier))
    assert code == 0 and out.count("RECALLED (notice 1)") == 6 and "recall notice 1 on" in out
