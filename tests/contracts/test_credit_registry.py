"""CreditRegistry on both chains: credit records as commitments (checks, supersession, history, validity
in time), envelopes under consent ids (the factory's standing consent, size, the record's oracle),
consent as salted commitments (the id's encoding against its vector, grant, renew, revoke, expiry, an id
of another factory), the anchored access log, the gate and roles, and every refusal with its exact error
and no state change."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from support import reverts
from web3.logs import DISCARD

from contracts.chain import Chain
from contracts.credit import (
    ACCESS_LOG_ANCHOR_ROLE,
    CONSENT_ACTION,
    PUBLISH_ACTION,
    QUERY_ACTION,
    CreditRegistryClient,
    Envelope,
    InvalidCreditInput,
    currency_code,
    deploy_credit_registry,
    model_version,
)
from contracts.credit_consent import CONSENT_ID_VECTOR, ConsentOpening, InvalidConsentOpening, consent_id
from contracts.credit_envelope import public_key_of
from contracts.errors import DeploymentError
from contracts.participant_ids import ACTIONS
from tests.contracts._chain_time import now, set_time

#: the contract's own rules: on anvil alone (tests/conftest.py CHAIN_KINDS)
pytestmark = pytest.mark.contract_logic

DAY = 86_400
VERSION = model_version("scorecard-2026.11")
COMMITMENT = keccak(b"analytics result")
RECORD = keccak(b"salted record")
ZERO = "0x" + "00" * 20


@dataclass
class World:
    chain: Chain
    gate: Any
    credit: CreditRegistryClient
    operator: LocalAccount
    oracle: LocalAccount
    factory: LocalAccount
    bank: LocalAccount
    insurer: LocalAccount
    outsider: LocalAccount

    def admit(self, party: LocalAccount, action: bytes, admitted: bool = True) -> None:
        self.chain.transact(self.gate.functions.setAdmitted(party.address, action, admitted), self.operator)

    def publish(self, **kw: Any) -> Any:
        args: dict[str, Any] = {
            "record_commitment": RECORD,
            "valid_until": now(self.chain) + 90 * DAY,
            "model_version": VERSION,
            "analytics_commitment": COMMITMENT,
        }
        factory = kw.pop("factory", self.factory.address)
        args.update(kw)
        return self.credit.publish_record(self.oracle, factory, **args)

    def publish_raw(self, *args: Any, sender: LocalAccount | None = None) -> Any:
        """publishRecord with raw arguments (past the client's own checks)."""
        return self.chain.transact(self.credit.contract.functions.publishRecord(*args), sender or self.oracle)

    def records(self) -> tuple[Any, ...]:
        n = self.credit.record_count(self.factory.address)
        return n, [self.credit.record_at(self.factory.address, i) for i in range(n)]

    def consents(self, *ids: bytes) -> tuple[Any, ...]:
        return (
            [self.credit.consent_of(c) for c in ids],
            self.credit.consent_ids_of(self.factory.address),
            self.credit.consent_ids_of(self.outsider.address),
        )


@pytest.fixture
def world(suite: Any) -> World:
    chain: Chain = suite.chain
    op = suite.operator
    gate_address = chain.deploy("StaticAdmissionGate", op, op.address).contract_address
    assert gate_address is not None
    address = deploy_credit_registry(chain, op, deployment=suite.deployment, gate_address=gate_address)
    a = suite.accounts
    w = World(
        chain=chain,
        gate=chain.contract("StaticAdmissionGate", gate_address),
        credit=CreditRegistryClient(chain, address),
        operator=op,
        oracle=a[1],
        factory=a[2],
        bank=a[3],
        insurer=a[4],
        outsider=a[6],
    )
    w.admit(w.oracle, PUBLISH_ACTION)
    w.admit(w.factory, CONSENT_ACTION)
    w.admit(w.bank, QUERY_ACTION)
    w.admit(w.insurer, QUERY_ACTION)
    return w


# ---------------------------------------------------------------- helpers


def test_actions_and_helpers() -> None:
    assert ACTIONS["supet.credit.query"] == QUERY_ACTION == keccak(b"supet.credit.query")
    assert ACTIONS["supet.credit.publish"] == PUBLISH_ACTION
    assert currency_code("CNY") == b"CNY"
    for bad in ("cny", "CN", "CNYY", "C1Y", "ÇNY"):
        with pytest.raises(InvalidCreditInput, match="ISO 4217"):
            currency_code(bad)
    assert model_version("v1") == b"v1" + bytes(30)
    for bad in ("", "x" * 33, "模型"):
        with pytest.raises(InvalidCreditInput, match=r"1\.\.32 ASCII"):
            model_version(bad)


# ---------------------------------------------------------------- records


def test_publish_supersede_and_history(world: World) -> None:
    f = world.factory.address
    assert world.credit.record_count(f) == 0 and not world.credit.is_current_valid(f)
    valid_until = now(world.chain) + 90 * DAY
    result = world.publish(valid_until=valid_until)
    (event,) = world.credit.contract.events.CreditRecordPublished().process_receipt(result.receipt)
    args = event["args"]
    assert (args["factory"], args["index"], args["oracle"]) == (f, 0, world.oracle.address)
    assert (args["recordCommitment"], args["validUntil"]) == (RECORD, valid_until)
    assert (args["modelVersion"], args["analyticsCommitment"]) == (VERSION, COMMITMENT)
    # the event carries nothing else: no grade, PD, limit or currency
    assert set(args) == {
        "factory",
        "index",
        "recordCommitment",
        "validUntil",
        "modelVersion",
        "analyticsCommitment",
        "oracle",
    }

    first = world.credit.current_record(f)
    published_at = world.chain.block(result.block_number)["timestamp"]
    assert (first.index, first.record_commitment, first.valid_until) == (0, RECORD, valid_until)
    assert (first.published_at, first.oracle) == (published_at, world.oracle.address)
    assert (first.model_version_text, first.analytics_commitment) == ("scorecard-2026.11", COMMITMENT)
    assert world.credit.is_current_valid(f)

    # a new record supersedes, the old one stays
    world.publish(record_commitment=keccak(b"second"), valid_until=valid_until - DAY)
    assert world.credit.record_count(f) == 2
    current = world.credit.current_record(f)
    assert (current.index, current.record_commitment) == (1, keccak(b"second"))
    assert world.credit.record_at(f, 0) == first
    assert world.credit.record_at(f, 1) == current


def test_validity_ends_at_valid_until(world: World) -> None:
    valid_until = now(world.chain) + 10 * DAY
    world.publish(valid_until=valid_until)
    set_time(world.chain, valid_until - 1)
    assert world.credit.is_current_valid(world.factory.address)
    set_time(world.chain, valid_until)
    assert not world.credit.is_current_valid(world.factory.address)
    # still the current record, just no longer valid
    assert world.credit.current_record(world.factory.address).valid_until == valid_until


def test_publish_refusals_change_nothing(world: World) -> None:
    world.publish()
    before = world.records()
    t = now(world.chain)
    good: dict[str, Any] = {
        "factory": world.factory.address,
        "record": RECORD,
        "until": t + DAY,
        "version": VERSION,
        "commitment": COMMITMENT,
        "envelopes": [],
    }

    def raw(**kw: Any) -> list[Any]:
        return list({**good, **kw}.values())

    cases: list[tuple[str, list[Any], dict[str, Any]]] = [
        ("CreditRegistryZeroFactory", raw(factory=ZERO), {}),
        ("CreditRegistryZeroRecordCommitment", raw(record=bytes(32)), {}),
        ("CreditRegistryZeroModelVersion", raw(version=bytes(32)), {}),
        ("CreditRegistryZeroAnalyticsCommitment", raw(commitment=bytes(32)), {}),
    ]
    for error, args, expected in cases:
        with reverts(error, **expected):
            world.publish_raw(*args)
    # validUntil not after the block time: the estimate runs on the pending block (time >= now)
    with reverts("CreditRegistryValidityInPast", validUntil=t - 1):
        world.publish_raw(*raw(until=t - 1))
    with reverts("CreditRegistryNotAdmitted", party=world.outsider.address, action=PUBLISH_ACTION):
        world.publish_raw(*raw(), sender=world.outsider)
    # an envelope under a consent id that does not stand refuses the whole record
    unknown = keccak(b"no such consent")
    with reverts("CreditRegistryEnvelopeWithoutConsent", factory=world.factory.address, consentId=unknown):
        world.publish_raw(*raw(envelopes=[(unknown, b"sealed")]))
    assert world.records() == before


# ---------------------------------------------------------------- envelopes


def test_envelope_keys_are_the_callers_own(world: World) -> None:
    bank = world.bank
    assert world.credit.envelope_key_of(bank.address) is None
    key = public_key_of(bytes(bank.key))
    result = world.credit.register_envelope_key(bank, key)
    (event,) = world.credit.contract.events.EnvelopeKeyRegistered().process_receipt(result.receipt)
    assert (event["args"]["account"], event["args"]["publicKey"]) == (bank.address, key)
    assert world.credit.envelope_key_of(bank.address) == key
    # another account's key, a short key, a 0x04-prefixed key: refused, nothing changes
    other = public_key_of(bytes(world.insurer.key))
    for bad in (other, key[:63], b"\x04" + key):
        with reverts("CreditRegistryInvalidEnvelopeKey", account=bank.address, length=len(bad)):
            world.credit.register_envelope_key(bank, bad)
    assert world.credit.envelope_key_of(bank.address) == key


def test_envelopes_go_under_standing_consent_ids(world: World) -> None:
    f, b, i = world.factory.address, world.bank.address, world.insurer.address
    to_bank = world.credit.grant_consent(world.factory, b, expires_at=now(world.chain) + 30 * DAY).consent_id
    result = world.publish(envelopes=[Envelope(consent_id=to_bank, ciphertext=b"sealed for the bank")])
    (event,) = world.credit.contract.events.CreditEnvelope().process_receipt(result.receipt, errors=DISCARD)
    assert (event["args"]["factory"], event["args"]["consentId"], event["args"]["index"]) == (f, to_bank, 0)
    assert set(event["args"]) == {"factory", "consentId", "index", "oracle", "ciphertext"}  # no bank
    assert (event["args"]["oracle"], event["args"]["ciphertext"]) == (
        world.oracle.address,
        b"sealed for the bank",
    )
    (got,) = world.credit.envelopes_for([to_bank])
    assert (got.factory, got.consent_id, got.index, got.oracle, got.ciphertext) == (
        f,
        to_bank,
        0,
        world.oracle.address,
        b"sealed for the bank",
    )
    # a consent consented after the record: the record's oracle delivers under it later
    to_insurer = world.credit.grant_consent(
        world.factory, i, expires_at=now(world.chain) + 30 * DAY
    ).consent_id
    assert world.credit.envelopes_for([to_insurer]) == [] and world.credit.envelopes_for([]) == []
    world.credit.deliver_envelopes(world.oracle, f, 0, [Envelope(consent_id=to_insurer, ciphertext=b"late")])
    assert [e.ciphertext for e in world.credit.envelopes_for([to_insurer], factory=f, index=0)] == [b"late"]
    assert (
        len(world.credit.envelopes_for(None)) == 2
        and len(world.credit.envelopes_for([to_bank, to_insurer])) == 2
    )

    # refusals: not the record's oracle, no such record, no consent (revoked, another factory's,
    # never granted), size
    late = [Envelope(consent_id=to_insurer, ciphertext=b"x")]
    with reverts(
        "CreditRegistryNotRecordOracle", factory=f, caller=world.bank.address, oracle=world.oracle.address
    ):
        world.credit.deliver_envelopes(world.bank, f, 0, late)
    with reverts("CreditRegistryNotRecordOracle", factory=world.outsider.address, oracle=ZERO):
        world.credit.deliver_envelopes(world.oracle, world.outsider.address, 0, late)
    with reverts("CreditRegistryNoRecordAt", factory=f, index=1, count=1):
        world.credit.deliver_envelopes(world.oracle, f, 1, late)
    world.credit.revoke_consent(world.factory, to_insurer)
    with reverts("CreditRegistryEnvelopeWithoutConsent", factory=f, consentId=to_insurer):
        world.credit.deliver_envelopes(world.oracle, f, 0, late)
    world.admit(world.outsider, CONSENT_ACTION)
    others = world.credit.grant_consent(world.outsider, b, expires_at=now(world.chain) + DAY).consent_id
    world.publish(factory=world.outsider.address)
    with reverts("CreditRegistryEnvelopeWithoutConsent", factory=f, consentId=others):
        world.credit.deliver_envelopes(world.oracle, f, 0, [Envelope(consent_id=others, ciphertext=b"x")])
    for size in (0, 4097):
        with reverts("CreditRegistryEnvelopeSize", consentId=to_bank, size=size):
            world.credit.deliver_envelopes(
                world.oracle, f, 0, [Envelope(consent_id=to_bank, ciphertext=b"\x01" * size)]
            )
    world.credit.deliver_envelopes(
        world.oracle, f, 0, [Envelope(consent_id=to_bank, ciphertext=b"\x01" * 4096)]
    )
    assert (
        len(world.credit.envelopes_for([to_bank])) == 2 and len(world.credit.envelopes_for([to_insurer])) == 1
    )


def test_record_views_refuse_what_is_not_there(world: World) -> None:
    f = world.factory.address
    with reverts("CreditRegistryNoRecord", factory=f):
        world.credit.current_record(f)
    with reverts("CreditRegistryNoRecordAt", factory=f, index=0, count=0):
        world.credit.record_at(f, 0)
    world.publish()
    with reverts("CreditRegistryNoRecordAt", factory=f, index=1, count=1):
        world.credit.record_at(f, 1)


def test_one_oracle_per_factory(world: World) -> None:
    """Issue 12, finding 10: a factory is bound to the oracle that first rates it; another admitted
    oracle can neither supersede its record nor make it lapse; the admin rebinds a squatted factory."""
    f, o = world.factory.address, world.oracle.address
    rogue = world.insurer
    world.admit(rogue, PUBLISH_ACTION)
    assert world.credit.oracle_of(f) is None
    result = world.publish()
    (ev,) = world.credit.contract.events.FactoryOracleSet().process_receipt(result.receipt)
    assert (ev["args"]["factory"], ev["args"]["previous"], ev["args"]["oracle"], ev["args"]["by"]) == (
        f,
        ZERO,
        o,
        o,
    )
    assert world.credit.oracle_of(f) == o
    good = world.credit.current_record(f)
    downgrade: dict[str, Any] = {
        "record_commitment": keccak(b"grade 10, no limit"),
        "valid_until": now(world.chain) + 60,
        "model_version": VERSION,
        "analytics_commitment": COMMITMENT,
    }
    # before the fix: the rogue's record superseded the factory's (grade 10, lapsing in a minute)
    with reverts("CreditRegistryNotFactoryOracle", factory=f, caller=rogue.address, oracle=o):
        world.credit.publish_record(rogue, f, **downgrade)
    assert world.credit.current_record(f) == good and world.credit.record_count(f) == 1
    assert world.credit.record_count_by(f, rogue.address) == 0 and world.credit.is_current_valid(f)

    # a rogue oracle squats a factory nobody rated yet; only the admin rebinds it
    other = world.outsider.address
    world.credit.publish_record(rogue, other, **downgrade)
    assert world.credit.oracle_of(other) == rogue.address
    fns = world.credit.contract.functions
    with reverts("AccessControlUnauthorizedAccount", account=o):
        world.credit.set_factory_oracle(world.oracle, other, o)
    with reverts("CreditRegistryZeroOracle"):
        world.chain.transact(fns.setFactoryOracle(other, ZERO), world.operator)
    with reverts("CreditRegistryZeroFactory"):
        world.chain.transact(fns.setFactoryOracle(ZERO, o), world.operator)
    with reverts("CreditRegistryNotAdmitted", party=world.bank.address, action=PUBLISH_ACTION):
        world.credit.set_factory_oracle(world.operator, other, world.bank.address)
    assert world.credit.oracle_of(other) == rogue.address
    result = world.credit.set_factory_oracle(world.operator, other, o)
    (ev,) = world.credit.contract.events.FactoryOracleSet().process_receipt(result.receipt)
    assert (ev["args"]["previous"], ev["args"]["oracle"], ev["args"]["by"]) == (
        rogue.address,
        o,
        world.operator.address,
    )
    # the new oracle has no record of it yet; the rogue's stays readable, chosen by the reader
    with reverts("CreditRegistryNoRecord", factory=other):
        world.credit.current_record(other)
    assert world.credit.record_count(other) == 0 and not world.credit.is_current_valid(other)
    assert world.credit.record_count_by(other, rogue.address) == 1
    assert world.credit.record_at_by(other, rogue.address, 0).record_commitment == keccak(
        b"grade 10, no limit"
    )
    with reverts("CreditRegistryNoRecordAt", factory=other, index=1, count=1):
        world.credit.record_at_by(other, rogue.address, 1)
    with reverts("CreditRegistryNotFactoryOracle", factory=other, caller=rogue.address, oracle=o):
        world.credit.publish_record(rogue, other, **downgrade)
    world.publish(factory=other, record_commitment=keccak(b"grade 4"))
    assert world.credit.current_record(other).record_commitment == keccak(b"grade 4")
    assert world.credit.record_count(other) == 1


# ---------------------------------------------------------------- consent


def test_consent_id_encoding_matches_its_vector_on_chain(world: World) -> None:
    v = CONSENT_ID_VECTOR
    salt = bytes.fromhex(v["salt"][2:])
    assert consent_id(v["factory"], v["bank"], salt) == bytes.fromhex(v["id"][2:])
    on_chain = world.credit.contract.functions.consentIdOf(v["factory"], v["bank"], salt)
    assert bytes(world.chain.call(on_chain)) == bytes.fromhex(v["id"][2:])
    opening = ConsentOpening(factory=v["factory"], bank=v["bank"], salt=salt)
    assert opening.consent_id_hex == v["id"]
    assert ConsentOpening.from_json_obj(opening.to_json_obj()) == opening
    with pytest.raises(InvalidConsentOpening, match="not the one of that consent"):
        ConsentOpening.from_json_obj({**opening.to_json_obj(), "consent_id": "0x" + "00" * 32})
    with pytest.raises(InvalidConsentOpening, match="32 bytes"):
        ConsentOpening(factory=v["factory"], bank=v["bank"], salt=b"short")
    with pytest.raises(InvalidConsentOpening, match="address"):
        ConsentOpening(factory=v["factory"], bank="0xnot", salt=salt)
    with pytest.raises(InvalidConsentOpening, match="itself"):
        ConsentOpening(factory=v["factory"], bank=v["factory"], salt=salt)
    with pytest.raises(InvalidConsentOpening, match="is missing"):
        ConsentOpening.from_json_obj({"factory": v["factory"], "bank": v["bank"]})


def test_consent_grant_renew_revoke(world: World) -> None:
    f, b = world.factory.address, world.bank.address
    expires = now(world.chain) + 30 * DAY
    grant = world.credit.grant_consent(world.factory, b, expires_at=expires)
    cid = grant.consent_id
    assert (
        grant.opening.bank == b and grant.opening.factory == f and cid == consent_id(f, b, grant.opening.salt)
    )
    (event,) = world.credit.contract.events.ConsentGranted().process_receipt(grant.result.receipt)
    assert set(event["args"]) == {"factory", "consentId", "expiresAt"}  # no bank
    assert (event["args"]["factory"], event["args"]["consentId"], event["args"]["expiresAt"]) == (
        f,
        cid,
        expires,
    )
    consent = world.credit.consent_of(cid)
    assert consent.factory == f
    assert consent.granted_at == world.chain.block(grant.result.block_number)["timestamp"]
    assert (consent.expires_at, consent.revoked) == (expires, False)
    assert world.credit.consent_stands(cid) and world.credit.consent_standing(grant.opening).stands_at(
        now(world.chain)
    )
    assert not world.credit.consent_stands(keccak(b"another id"))
    assert world.credit.consent_ids_of(f) == [cid] and world.credit.consent_ids_of(b) == []
    # a second grant to the same bank takes a fresh salt: another id, unlinkable to the first
    again = world.credit.grant_consent(world.factory, b, expires_at=expires)
    assert again.consent_id != cid and world.credit.consent_ids_of(f) == [cid, again.consent_id]

    # renewing the same id replaces the expiry, keeps it listed once
    world.credit.grant_consent(world.factory, b, expires_at=expires + DAY, salt=grant.opening.salt)
    assert world.credit.consent_of(cid).expires_at == expires + DAY
    assert world.credit.consent_ids_of(f) == [cid, again.consent_id]

    result = world.credit.revoke_consent(world.factory, grant.opening)
    (event,) = world.credit.contract.events.ConsentRevoked().process_receipt(result.receipt)
    assert (event["args"]["factory"], event["args"]["consentId"]) == (f, cid)
    assert world.credit.consent_of(cid).revoked_at == world.chain.block(result.block_number)["timestamp"]
    assert not world.credit.consent_stands(cid) and world.credit.consent_stands(again.consent_id)
    # lapsed consents stay listed
    assert world.credit.consent_ids_of(f) == [cid, again.consent_id]
    with reverts("CreditRegistryNoStandingConsent", factory=f, consentId=cid):
        world.credit.revoke_consent(world.factory, cid)
    # granting again lifts the revocation
    world.credit.grant_consent_id(world.factory, cid, expires_at=expires)
    assert world.credit.consent_stands(cid) and not world.credit.consent_of(cid).revoked


def test_consent_lapses_at_expiry_and_the_bank_is_not_the_chains_to_check(world: World) -> None:
    f, b = world.factory.address, world.bank.address
    expires = now(world.chain) + DAY
    cid = world.credit.grant_consent(world.factory, b, expires_at=expires).consent_id
    # the bank's admission is asked off chain now (the service, the oracle): the chain's standing
    # does not move with it
    world.admit(world.bank, QUERY_ACTION, admitted=False)
    assert world.credit.consent_stands(cid)
    world.admit(world.bank, QUERY_ACTION)
    set_time(world.chain, expires - 1)
    assert world.credit.consent_stands(cid)
    set_time(world.chain, expires)
    assert not world.credit.consent_stands(cid)
    assert not world.credit.consent_of(cid).stands_at(now(world.chain))
    with reverts("CreditRegistryNoStandingConsent", factory=f, consentId=cid):
        world.credit.revoke_consent(world.factory, cid)
    assert world.credit.consent_ids_of(f) == [cid]


def test_grant_refusals_change_nothing(world: World) -> None:
    f, b = world.factory.address, world.bank.address
    t = now(world.chain)
    cid = world.credit.grant_consent(world.factory, b, expires_at=t + DAY).consent_id
    world.credit.revoke_consent(world.factory, cid)
    fresh = consent_id(f, world.insurer.address, keccak(b"salt"))
    before = world.consents(cid, fresh)
    with reverts("CreditRegistryNotAdmitted", party=world.outsider.address, action=CONSENT_ACTION):
        world.credit.grant_consent_id(world.outsider, fresh, expires_at=t + DAY)
    with reverts("CreditRegistryZeroConsentId"):
        world.credit.grant_consent_id(world.factory, bytes(32), expires_at=t + DAY)
    with reverts("CreditRegistryExpiryInPast", expiresAt=t - 1):
        world.credit.grant_consent_id(world.factory, fresh, expires_at=t - 1)
    # an id belongs to the factory that granted it first: another admitted factory cannot take it over
    world.admit(world.outsider, CONSENT_ACTION)
    with reverts("CreditRegistryConsentIdTaken", consentId=cid, owner=f, caller=world.outsider.address):
        world.credit.grant_consent_id(world.outsider, cid, expires_at=t + DAY)
    # revoking: a revoked id, another factory's id, an id never granted
    with reverts("CreditRegistryNoStandingConsent", factory=f, consentId=cid):
        world.credit.revoke_consent(world.factory, cid)
    with reverts("CreditRegistryNoStandingConsent", factory=f, consentId=fresh):
        world.credit.revoke_consent(world.factory, fresh)
    theirs = world.credit.grant_consent(world.outsider, b, expires_at=t + DAY).consent_id
    before = (*before[:2], [theirs])
    with reverts("CreditRegistryNoStandingConsent", factory=f, consentId=theirs):
        world.credit.revoke_consent(world.factory, theirs)
    assert world.credit.consent_stands(theirs)
    assert world.consents(cid, fresh) == before
    # the client refuses a malformed id before anything is sent
    with pytest.raises(InvalidConsentOpening, match="32 bytes"):
        world.credit.grant_consent_id(world.factory, b"short", expires_at=t + DAY)
    # a squatter that copies a factory's pending id and grants it first: the factory's opening is
    # then refused by whoever checks it (the factory's own grant reverts ConsentIdTaken, and it takes a
    # fresh salt)
    mine = ConsentOpening(factory=f, bank=b, salt=keccak(b"the factory's salt"))
    world.credit.grant_consent_id(world.outsider, mine.consent_id, expires_at=t + DAY)
    with pytest.raises(InvalidConsentOpening, match=f"was granted by {world.outsider.address}"):
        world.credit.consent_standing(mine)


def test_suspended_factory_may_still_revoke(world: World) -> None:
    b = world.bank.address
    cid = world.credit.grant_consent(world.factory, b, expires_at=now(world.chain) + DAY).consent_id
    world.admit(world.factory, CONSENT_ACTION, admitted=False)
    world.credit.revoke_consent(world.factory, cid)
    assert not world.credit.consent_stands(cid)


# ---------------------------------------------------------------- access log


def test_access_log_anchoring(world: World) -> None:
    op = world.operator
    assert world.credit.is_anchorer(op.address) and world.credit.access_log_batch_count() == 0
    root1, root2 = keccak(b"log batch 1"), keccak(b"log batch 2")
    result = world.credit.anchor_access_log(op, root1, count=40, from_ms=1_000, to_ms=2_000)
    (event,) = world.credit.contract.events.AccessLogAnchored().process_receipt(result.receipt)
    assert (event["args"]["index"], event["args"]["root"], event["args"]["count"]) == (1, root1, 40)
    assert (event["args"]["fromMs"], event["args"]["toMs"]) == (1_000, 2_000)
    world.credit.anchor_access_log(op, root2, count=1, from_ms=3_000, to_ms=3_000)  # a one-instant window
    batch = world.credit.access_log_batch(1)
    assert (batch.index, batch.root, batch.count, batch.from_ms, batch.to_ms) == (1, root1, 40, 1_000, 2_000)
    assert batch.anchored_at == world.chain.block(result.block_number)["timestamp"]
    assert batch.anchored_by == op.address
    assert world.credit.access_log_batch_count() == 2
    assert world.credit.access_log_batch_of(root2) == 2
    assert world.credit.access_log_batch_of(keccak(b"never")) is None

    with reverts("CreditRegistryRootAnchored", root=root1, index=1):
        world.credit.anchor_access_log(op, root1, count=1, from_ms=0, to_ms=1)
    with reverts("CreditRegistryZeroRoot"):
        world.credit.anchor_access_log(op, bytes(32), count=1, from_ms=0, to_ms=1)
    with reverts("CreditRegistryZeroCount"):
        world.credit.anchor_access_log(op, keccak(b"3"), count=0, from_ms=0, to_ms=1)
    with reverts("CreditRegistryInvalidWindow", fromMs=5, toMs=4):
        world.credit.anchor_access_log(op, keccak(b"3"), count=1, from_ms=5, to_ms=4)
    with reverts(
        "AccessControlUnauthorizedAccount", account=world.outsider.address, neededRole=ACCESS_LOG_ANCHOR_ROLE
    ):
        world.credit.anchor_access_log(world.outsider, keccak(b"3"), count=1, from_ms=0, to_ms=1)
    for index in (0, 3):
        with reverts("CreditRegistryUnknownBatch", index=index, count=2):
            world.credit.access_log_batch(index)
    assert world.credit.access_log_batch_count() == 2

    # the admin hands the role to the ledger's anchoring signer
    world.credit.grant_anchor_role(op, world.outsider.address)
    world.credit.anchor_access_log(world.outsider, keccak(b"3"), count=1, from_ms=0, to_ms=1)
    assert world.credit.access_log_batch(3).anchored_by == world.outsider.address


# ---------------------------------------------------------------- gate and deployment


def test_gate_replaced_by_admin_only(world: World) -> None:
    fns = world.credit.contract.functions
    with reverts("AccessControlUnauthorizedAccount", account=world.outsider.address):
        world.chain.transact(fns.setAdmissionGate(world.outsider.address), world.outsider)
    with reverts("CreditRegistryZeroGate"):
        world.chain.transact(fns.setAdmissionGate(ZERO), world.operator)
    new_gate = world.chain.deploy("StaticAdmissionGate", world.operator, world.operator.address)
    world.chain.transact(fns.setAdmissionGate(new_gate.contract_address), world.operator)
    assert world.credit.admission_gate() == new_gate.contract_address
    with reverts("CreditRegistryNotAdmitted", party=world.oracle.address, action=PUBLISH_ACTION):
        world.publish()


def test_deploy_refusals_and_suite(suite: Any) -> None:
    op = suite.operator
    with reverts("CreditRegistryZeroGate"):
        suite.chain.deploy("CreditRegistry", op, op.address, ZERO, op.address)
    with pytest.raises(DeploymentError, match="needs an admission gate"):
        deploy_credit_registry(suite.chain, op, deployment=suite.deployment, gate_address=ZERO)
    # no anchorer when zero
    gate = suite.deployment.address("ParticipantRegistry")
    bare = suite.chain.deploy("CreditRegistry", op, op.address, gate, ZERO).contract_address
    assert not CreditRegistryClient(suite.chain, bare).is_anchorer(op.address)

    client = CreditRegistryClient.from_deployment(suite.chain, suite.deployment)
    assert client.admission_gate() == gate
    assert client.is_anchorer(op.address)  # deploy_suite gives the deployer the anchoring role
