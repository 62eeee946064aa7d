"""The access policy's decisions, pure (no store, no chain): ``decide(caller, resource)``.

The HTTP table of every route and caller is ``test_access_policy.py``; here the rules themselves, each
with the case that separates it from its neighbours.
"""

from __future__ import annotations

import pytest

from ledger_service.access.policy import (
    ANONYMOUS,
    FINANCE,
    ROUTES,
    BankStanding,
    Caller,
    CallerKind,
    ConsentState,
    Data,
    LotParties,
    Resource,
    decide,
)

FACTORY, RIVAL, BANK, BUYER, AUDITOR = (f"0x{c * 40}" for c in "abcde")


def party(address: str, *, operator: bool = False) -> Caller:
    return Caller(CallerKind.PARTY, party=address, operator=operator)


def device(device_id: str) -> Caller:
    return Caller(CallerKind.DEVICE, device_id=device_id, device_owner=FACTORY)


LOT = LotParties(FACTORY, frozenset({FACTORY, BUYER}), frozenset({AUDITOR}))
READING = Resource(Data.READING, owner=FACTORY, device_id="SN-1", lots=(LOT,))


def code(caller: Caller, resource: Resource) -> str:
    return decide(caller, resource).code


def test_a_reading_is_its_owners_its_devices_and_its_lots_parties() -> None:
    assert code(party(FACTORY), READING) == "access.owner"
    assert code(device("SN-1"), READING) == "access.device"
    assert code(device("SN-2"), READING) == "access.not_owner"  # another device, same owner
    assert code(party(BUYER), READING) == "access.custodian"
    assert code(party(AUDITOR), READING) == "access.auditor"
    assert code(party(RIVAL), READING) == "access.not_owner"
    assert code(party(BANK, operator=True), READING) == "access.not_owner"  # operations data only
    assert code(ANONYMOUS, READING) == "access.anonymous"
    off_lot = Resource(Data.READING, owner=FACTORY, device_id="SN-1")
    assert code(party(BUYER), off_lot) == "access.not_owner"


def test_disclosure_opens_a_lot_to_anyone_and_only_that_lot() -> None:
    disclosed = LotParties(FACTORY, frozenset({FACTORY}), disclosed=True)
    for data in (Data.LOT_EVIDENCE, Data.EPCIS, Data.READING):
        assert code(ANONYMOUS, Resource(data, owner=FACTORY, lots=(disclosed,))) == "access.disclosed"
        assert code(ANONYMOUS, Resource(data, owner=FACTORY, lots=(LOT,))) == "access.anonymous"
    assert code(party(RIVAL), Resource(Data.LOT_EVIDENCE, lots=(LOT,))) == "access.not_custodian"
    assert code(device("SN-1"), Resource(Data.LOT_EVIDENCE, lots=(LOT,))) == "access.not_custodian"


def test_what_does_not_exist_is_refused_anonymously_and_absent_otherwise() -> None:
    for data in (Data.READING, Data.DEVICE_HISTORY, Data.LOT_EVIDENCE, Data.RECEIVABLE, Data.ADMISSION):
        gone = Resource(data, exists=False)
        assert code(ANONYMOUS, gone) == "access.anonymous"
        assert code(party(RIVAL), gone) == "access.absent"  # the route answers its own 404


def test_device_records_are_operations_data_histories_are_not() -> None:
    record = Resource(Data.DEVICE_RECORD, owner=FACTORY, device_id="SN-1")
    history = Resource(Data.DEVICE_HISTORY, owner=FACTORY, device_id="SN-1")
    assert code(party(RIVAL, operator=True), record) == "access.operator"
    assert code(party(RIVAL, operator=True), history) == "access.not_owner"
    assert code(party(RIVAL), record) == "access.not_owner"


@pytest.mark.parametrize(
    ("standing", "expected"),
    [
        (BankStanding(admitted=True, consent=ConsentState.STANDING), "access.consent"),
        (BankStanding(admitted=True, consent=ConsentState.NEVER), "finance.no_consent"),
        (BankStanding(admitted=True, consent=ConsentState.REVOKED), "finance.no_consent"),
        (BankStanding(admitted=True, consent=ConsentState.EXPIRED), "finance.consent_expired"),
        (BankStanding(admitted=False, consent=ConsentState.STANDING), "finance.not_a_bank"),
    ],
)
def test_a_bank_reads_finance_data_only_while_the_consent_stands(
    standing: BankStanding, expected: str
) -> None:
    for data in (Data.CREDIT, Data.PROFILE):
        assert code(party(BANK), Resource(data, owner=FACTORY, bank=standing)) == expected
    revoked = decide(party(BANK), Resource(Data.CREDIT, owner=FACTORY, bank=standing))
    assert revoked.allowed == (expected == "access.consent")


def test_a_lines_window_breaches_are_the_factorys_and_its_consented_banks() -> None:
    standing = BankStanding(admitted=True, consent=ConsentState.STANDING)
    never = BankStanding(admitted=True, consent=ConsentState.NEVER)
    data = Data.WINDOW_BREACHES
    assert code(party(FACTORY), Resource(data, owner=FACTORY)) == "access.owner"
    assert code(party(BANK), Resource(data, owner=FACTORY, bank=standing)) == "access.consent"
    assert code(party(BANK), Resource(data, owner=FACTORY, bank=never)) == "finance.no_consent"
    assert code(party(RIVAL), Resource(data, owner=FACTORY, bank=BankStanding(admitted=False))) == (
        "finance.not_a_bank"
    )
    assert code(device("SN-1"), Resource(data, owner=FACTORY)) == "finance.not_a_bank"
    assert code(ANONYMOUS, Resource(data, owner=FACTORY)) == "access.anonymous"
    assert data in FINANCE  # a refusal is written down like one of the factory's profile


def test_a_factorys_consents_and_log_are_its_own_and_receivables_their_parties() -> None:
    for data in (Data.CONSENTS, Data.ACCESS_LOG):
        assert code(party(FACTORY), Resource(data, owner=FACTORY)) == "access.owner"
        assert code(party(BANK), Resource(data, owner=FACTORY)) == "finance.not_the_factory"
    receivable = Resource(Data.RECEIVABLE, owner=FACTORY, parties=frozenset({FACTORY, BANK}))
    assert code(party(BANK), receivable) == "access.party"
    assert code(party(RIVAL), receivable) == "access.not_a_party"
    assert code(device("SN-1"), receivable) == "access.not_a_party"


def test_every_data_kind_has_a_rule_and_service_data_is_public() -> None:
    for data in Data:
        decide(ANONYMOUS, Resource(data))  # no KeyError: every kind has a rule
    public = {p for p, rule in ROUTES.items() if decide(ANONYMOUS, Resource(rule.data)).allowed}
    assert "/v1/readings/{digest}" not in public and "/healthz" in public and "/v1/deployment" in public


def test_a_read_route_the_policy_does_not_name_is_refused_to_everyone() -> None:
    """Deny by default: a GET route added without a policy entry answers nobody (the guard refuses it
    before the route runs), and the table test names it (test_access_policy.py)."""
    from fastapi.testclient import TestClient

    from ledger_service.api import create_app

    app = create_app()

    @app.get("/v1/not-in-the-policy")
    def leak() -> dict[str, int]:
        return {"secret": 42}

    r = TestClient(app).get("/v1/not-in-the-policy")
    assert r.status_code == 403 and r.json()["error"]["code"] == "access.no_policy"
