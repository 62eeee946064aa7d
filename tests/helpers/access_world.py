"""The world of ``tests/ledger_service/test_access_policy.py`` (issue 14): a consortium on a fresh
embedded chain with every kind of caller the access policy knows, and the data each may or may not read.

A factory (its device, two lots, a published profile), a rival factory, four admitted banks (no consent,
a revoked one, an expired one, a standing one), the buyer that now holds lot A (a custodian), the
auditor the buyer named for lot A, the operator (the deployer), a core enterprise that owes the factory
a receivable. Lot D was disclosed by the factory (its holder); lot A was not.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from backing import suite_deliveries
from eth_account.signers.local import LocalAccount
from fastapi.testclient import TestClient
from profiles import store_sample_profile
from reads import token
from sample_windows import store_sample_yield
from support import TestConsortium

from contracts.credit import CreditRegistryClient
from contracts.lots import LotRegistryClient
from contracts.onboarding import Onboarding
from contracts.receivables import ReceivablesClient, receivable_reference
from device_attestation.sdk import DeviceSigner
from ledger_service.credit_desk.consents import register_opening
from ledger_service.service import LedgerService
from tests.contracts._chain_time import set_time

LOT_A, LOT_D = "LOT-ACL-A", "LOT-ACL-D"
#: The factory's line with an operating-window set (its device's temperature windowed).
LINE = "acl-l1"
GTIN = "04006381333931"
DEVICE = "SN-ACL-1"

ANON, DEV, OWNER, RIVAL = "anonymous", "device", "owner", "rival"
BANK_NONE, BANK_REVOKED, BANK_EXPIRED, BANK_OK = "bank_none", "bank_revoked", "bank_expired", "bank_ok"
CUSTODIAN, AUDITOR, OPERATOR = "custodian", "auditor", "operator"
CALLERS = (
    ANON,
    DEV,
    OWNER,
    RIVAL,
    BANK_NONE,
    BANK_REVOKED,
    BANK_EXPIRED,
    BANK_OK,
    CUSTODIAN,
    AUDITOR,
    OPERATOR,
)
BANKS = (BANK_NONE, BANK_REVOKED, BANK_EXPIRED, BANK_OK)


@dataclass
class World:
    service: LedgerService
    client: TestClient
    parties: dict[str, LocalAccount]
    device: DeviceSigner
    reading_a: str
    reading_d: str
    receivable_id: int
    tokens: dict[str, str] = field(default_factory=dict)

    def token(self, who: str) -> str:
        if who not in self.tokens:
            self.tokens[who] = token(self.client, self.parties[who])
        return self.tokens[who]

    def address(self, who: str) -> str:
        return self.parties[who].address


def profile_row(service: LedgerService, factory: str) -> None:
    store_sample_profile(service.engine, factory)


def window_set_row(service: LedgerService, factory: str) -> None:
    """A published window set of the factory's line :data:`LINE`, from a made-up yield result."""
    from ledger_service.analytics_store.windows import publish_window_set

    publish_window_set(
        service.engine, store_sample_yield(service.engine, factory, LINE, (DEVICE,), [("temp_c", 4.2, 4.8)])
    )


def admit_parties(ob: Onboarding, admin: LocalAccount) -> dict[str, LocalAccount]:
    roles = {
        OWNER: "supplier",
        RIVAL: "supplier",
        BANK_NONE: "bank",
        BANK_REVOKED: "bank",
        BANK_EXPIRED: "bank",
        BANK_OK: "bank",
        CUSTODIAN: "distributor",
        AUDITOR: "auditor",
        "core": "core-enterprise",
    }
    parties = {OPERATOR: admin}
    for name, role in roles.items():
        parties[name] = ob.account(f"acl-{name}")
        ob.admit(parties[name], role)
    return parties


def lots_and_readings(service: LedgerService, p: dict[str, LocalAccount]) -> tuple[DeviceSigner, str, str]:
    chain, deployment = service.chain, service.deployment
    devices = TestConsortium(chain, deployment)
    devices.factory = p[OWNER]
    sensor = devices.enroll(DEVICE, "p256")
    lots = LotRegistryClient.from_deployment(chain, deployment)
    for lot in (LOT_A, LOT_D):
        lots.open_lot(
            p[OWNER], lot_id=lot, gtin=GTIN, quantity=500, unit="kg", produced_from_ms=0, produced_to_ms=1
        )
    opened_ms = int(chain.block("latest")["timestamp"]) * 1000
    subs = [
        sensor.sign({"temp_c": 4.0}, ts_ms=opened_ms + 1000, lot_id=LOT_A),
        sensor.sign({"temp_c": 4.5}, ts_ms=opened_ms + 1500, lot_id=LOT_A),
        sensor.sign({"temp_c": 5.0}, ts_ms=opened_ms + 2000, lot_id=LOT_D),
    ]
    results = service.pipeline.submit([s.to_json_obj() for s in subs], source="http")
    assert all(r.code is None for r in results), [(r.code, r.message) for r in results]
    service.anchoring.flush(timeout=60)
    lots.propose_transfer(p[OWNER], LOT_A, p[CUSTODIAN].address)
    lots.accept_transfer(p[CUSTODIAN], LOT_A)
    return sensor, "0x" + subs[0].digest.hex(), "0x" + subs[2].digest.hex()


def consents_and_receivable(service: LedgerService, p: dict[str, LocalAccount]) -> int:
    chain, deployment = service.chain, service.deployment
    credit = CreditRegistryClient.from_deployment(chain, deployment)
    now = int(chain.block("latest")["timestamp"])
    # issue 14: the chain holds consent ids only; the factory registers each opening with the service
    grants = {
        bank: credit.grant_consent(p[OWNER], p[bank].address, expires_at=now + days)
        for bank, days in ((BANK_OK, 90 * 86_400), (BANK_REVOKED, 90 * 86_400), (BANK_EXPIRED, 30))
    }
    for g in grants.values():
        register_opening(credit, service.engine, g.opening)
    credit.revoke_consent(p[OWNER], grants[BANK_REVOKED].opening)
    rc = ReceivablesClient.from_deployment(chain, deployment)
    # issue 15: the receivable is for an order of the core's, delivered in a certified lot
    d = suite_deliveries(chain, deployment, p[OPERATOR], p["core"], p[OWNER])
    rid, _ = rc.confirm(
        p["core"],
        supplier=p[OWNER].address,
        face_value=1_000_00,
        due_date=now + 60 * 86_400,
        reference=receivable_reference("INV-ACL-1"),
        order_id=d.order("PO-ACL-1"),
        lots=[d.lot("LOT-ACL-BACKING")],
    )
    # the expired consent lapses: the chain's clock moves past it
    set_time(chain, int(chain.block("latest")["timestamp"]) + 120)
    return rid


def share(client: TestClient, p: dict[str, LocalAccount]) -> None:
    buyer = {"Authorization": f"Bearer {token(client, p[CUSTODIAN])}"}
    owner = {"Authorization": f"Bearer {token(client, p[OWNER])}"}
    r = client.post(f"/v1/lots/{LOT_A}/auditors", json={"auditor": p[AUDITOR].address}, headers=buyer)
    assert r.status_code == 200, r.text
    r = client.post(f"/v1/lots/{LOT_D}/disclosure", json={}, headers=owner)
    assert r.status_code == 200, r.text
