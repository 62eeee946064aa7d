"""Routes that read the chain answer 503 with the error envelope while the chain is unreachable."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from reads import sign_client_in

from contracts.chain import dev_accounts
from contracts.errors import ChainError
from ledger_service.service import LedgerService


@pytest.mark.parametrize(
    "path",
    [
        "/v1/lots/LOT-1/history",
        "/v1/lots/LOT-1/epcis",
        "/v1/lots/LOT-1/certification-package",
        "/v1/parties/0x70997970C51812dc3A010C7d01b50e0d17dc79C8/admission",
    ],
)
def test_chain_down_is_a_503(
    client: TestClient, ledger: LedgerService, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    def down(*_: object, **__: object) -> object:
        raise ChainError("the chain at http://node is unreachable (connection refused)")

    sign_client_in(client, dev_accounts(2)[1])  # the party asked about: the policy lets it read
    monkeypatch.setattr(ledger.chain, "request", down)
    monkeypatch.setattr(ledger.chain, "call", down)
    r = client.get(path)
    assert r.status_code == 503, r.text
    assert r.json()["error"]["code"] == "chain.unavailable"
    assert "retry later" in r.json()["error"]["message"]
