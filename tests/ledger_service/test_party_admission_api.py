"""GET /v1/parties/{address}/admission: the live admission answer of the ParticipantRegistry."""

from __future__ import annotations

import time

from eth_utils import keccak
from fastapi.testclient import TestClient
from reads import sign_client_in

from contracts.chain import dev_accounts
from contracts.claims import sign_claim
from contracts.participant_ids import claim_topic, party_role
from contracts.participants import ParticipantRegistryClient
from ledger_service.service import LedgerService


def test_admission_status_follows_the_registry(client: TestClient, ledger: LedgerService) -> None:
    admin, supplier, issuer = dev_accounts(8)[0], dev_accounts(8)[5], dev_accounts(8)[6]
    registry = ParticipantRegistryClient(ledger.chain, ledger.deployment)
    licence = claim_topic("business-licence")
    registry.set_role_rule(admin, party_role("supplier"), [licence], 0)
    registry.add_trusted_issuer(admin, licence, issuer.address)
    assert client.get(f"/v1/parties/{supplier.address}/admission").status_code == 401  # not public
    sign_client_in(client, supplier)  # the party reads its own admission

    body = client.get(f"/v1/parties/{supplier.address}/admission").json()
    row = next(r for r in body["roles"] if r["role"] == "supplier")
    assert (row["admitted"], row["reason"]) == (False, "NOT_APPLIED")
    assert "apply" in row["explanation"]

    registry.apply(supplier, party_role("supplier"))
    row = next(
        r
        for r in client.get(f"/v1/parties/{supplier.address}/admission").json()["roles"]
        if r["role"] == "supplier"
    )
    assert (row["reason"], row["topic"]) == ("MISSING_CLAIM", "business-licence")

    claim = sign_claim(
        issuer,
        subject=supplier.address,
        topic=licence,
        data_hash=keccak(b"licence no. 42"),
        expires_at=int(time.time()) + 3600,
        domain=registry.domain,
    )
    registry.add_claim(supplier, claim)
    body = client.get(f"/v1/parties/{supplier.address}/admission").json()
    row = next(r for r in body["roles"] if r["role"] == "supplier")
    assert row["admitted"] is True and row["reason"] == "ADMITTED"
    assert body["suspended"] is False

    bad = client.get("/v1/parties/not-an-address/admission")
    assert bad.status_code == 404 and bad.json()["error"]["code"] == "party.bad_address"
