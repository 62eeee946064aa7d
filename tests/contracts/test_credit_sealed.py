"""Sealed credit records on both chains: the oracle publishes a commitment with envelopes; a consented
bank reads and opens its records from its own node and verifies them; another bank opens nothing; a
tampered field is named; after revocation no new envelope reaches the bank, and what it already
received stays readable (what revocation cannot take back)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import pytest
from chain_scan import brute_force, chain_bytes, figure_patterns, find_leaks, public_salts, storage_values
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from support import reverts

from contracts.chain import Chain
from contracts.credit import (
    CONSENT_ACTION,
    PUBLISH_ACTION,
    QUERY_ACTION,
    CreditRegistryClient,
    deploy_credit_registry,
    model_version,
)
from contracts.credit_bank import (
    open_delivered,
    read_bank_records,
    register_bank_key,
    seal_for_bank,
    verify_record,
)
from contracts.credit_envelope import EnvelopeError
from contracts.credit_record import CreditOpening, CreditRecordMismatch, new_salt

DAY = 86_400


@dataclass
class Sealed:
    chain: Chain
    credit: CreditRegistryClient
    oracle: LocalAccount
    factories: list[LocalAccount]
    bank: LocalAccount
    other_bank: LocalAccount

    def now(self) -> int:
        return int(self.chain.block()["timestamp"])

    def opening(self, factory: str, grade: int, pd_ppm: int, limit: int) -> CreditOpening:
        return CreditOpening(
            factory=factory,
            oracle=self.oracle.address,
            grade=grade,
            pd_ppm=pd_ppm,
            limit=limit,
            currency="CNY",
            reasons=(f"Yield of 9{grade}% is low (costs {grade * 7} points)",),
            valid_until=self.now() + 90 * DAY,
            model_version=model_version("scorecard-2026.11"),
            analytics_commitment=keccak(f"assessment {factory} {grade} {pd_ppm}".encode()),
            salt=new_salt(),
        )

    def publish(self, o: CreditOpening, banks: list[str]) -> Any:
        envelopes = [seal_for_bank(self.credit, o, b) for b in banks]
        return self.credit.publish_record(
            self.oracle,
            o.factory,
            record_commitment=o.commitment(),
            valid_until=o.valid_until,
            model_version=o.model_version,
            analytics_commitment=o.analytics_commitment,
            envelopes=envelopes,
        )


def sealed_world(suite: Any, n_factories: int = 1) -> Sealed:
    chain: Chain = suite.chain
    op = suite.operator
    gate_address = chain.deploy("StaticAdmissionGate", op, op.address).contract_address
    assert gate_address is not None
    gate = chain.contract("StaticAdmissionGate", gate_address)
    address = deploy_credit_registry(chain, op, deployment=suite.deployment, gate_address=gate_address)
    a = suite.accounts
    w = Sealed(
        chain=chain,
        credit=CreditRegistryClient(chain, address),
        oracle=a[1],
        factories=[a[5 + i] for i in range(n_factories)],
        bank=a[3],
        other_bank=a[4],
    )
    admissions = [(w.oracle, PUBLISH_ACTION), (w.bank, QUERY_ACTION), (w.other_bank, QUERY_ACTION)]
    admissions += [(f, CONSENT_ACTION) for f in w.factories]
    for party, action in admissions:
        chain.transact(gate.functions.setAdmitted(party.address, action, True), op)
    for bank in (w.bank, w.other_bank):
        register_bank_key(w.credit, bank)
    return w


@pytest.fixture
def world(suite: Any) -> Sealed:
    return sealed_world(suite)


def test_consented_bank_reads_and_verifies_from_its_node(world: Sealed) -> None:
    w = world
    factory = w.factories[0]
    w.credit.grant_consent(factory, w.bank.address, expires_at=w.now() + 30 * DAY)
    o = w.opening(factory.address, grade=4, pd_ppm=17_350, limit=1_250_000_00)
    with pytest.raises(EnvelopeError, match="registered no envelope key"):
        seal_for_bank(w.credit, o, w.oracle.address)
    w.publish(o, [w.bank.address])

    (got,) = read_bank_records(w.credit, bytes(w.bank.key))
    assert got.verified and got.opening == o and got.opening is not None and got.opening.index == 0
    assert got.record.record_commitment == o.commitment() and got.envelope.bank == w.bank.address
    # another bank has nothing sealed for it, and cannot open the bank's envelope
    assert read_bank_records(w.credit, bytes(w.other_bank.key)) == []
    (env,) = w.credit.envelopes_for(w.bank.address)
    with pytest.raises(EnvelopeError):
        open_delivered(w.credit, dataclasses.replace(env, bank=w.other_bank.address), bytes(w.other_bank.key))

    # verification: the record as held verifies; a tampered field is named
    assert verify_record(w.credit, o) == got.record
    assert verify_record(w.credit, dataclasses.replace(o, index=None)) == got.record  # found by commitment
    with pytest.raises(CreditRecordMismatch) as info:
        verify_record(w.credit, dataclasses.replace(o, grade=2), bank_key=bytes(w.bank.key))
    assert info.value.fields == ("grade",)
    with pytest.raises(CreditRecordMismatch) as info:
        verify_record(w.credit, dataclasses.replace(o, limit=5_000_000_00, index=0))
    assert info.value.fields == ("record_commitment",)  # no envelope to compare with: the hash alone
    with pytest.raises(CreditRecordMismatch) as info:
        verify_record(w.credit, dataclasses.replace(o, valid_until=o.valid_until + 1))
    assert info.value.fields == ("valid_until",)
    with pytest.raises(CreditRecordMismatch) as info:
        verify_record(w.credit, dataclasses.replace(o, index=5))
    assert info.value.fields == ("index",)


def test_revocation_stops_new_envelopes_not_old_ones(world: Sealed) -> None:
    w = world
    factory = w.factories[0]
    w.credit.grant_consent(factory, w.bank.address, expires_at=w.now() + 30 * DAY)
    first = w.opening(factory.address, grade=5, pd_ppm=31_000, limit=800_000_00)
    w.publish(first, [w.bank.address])
    w.credit.revoke_consent(factory, w.bank.address)

    second = w.opening(factory.address, grade=6, pd_ppm=52_000, limit=400_000_00)
    with reverts("CreditRegistryEnvelopeWithoutConsent", factory=factory.address, bank=w.bank.address):
        w.publish(second, [w.bank.address])
    w.publish(second, [])
    late = [seal_for_bank(w.credit, second, w.bank.address)]
    with reverts("CreditRegistryEnvelopeWithoutConsent", factory=factory.address, bank=w.bank.address):
        w.credit.deliver_envelopes(w.oracle, factory.address, 1, late)
    # what was delivered before the revocation stays in the chain's logs, readable by the bank's key
    records = read_bank_records(w.credit, bytes(w.bank.key))
    assert [r.opening for r in records] == [first] and records[0].verified

    # consent again: the oracle delivers the current record to the bank
    w.credit.grant_consent(factory, w.bank.address, expires_at=w.now() + 30 * DAY)
    w.credit.deliver_envelopes(w.oracle, factory.address, 1, late)
    assert [r.opening for r in read_bank_records(w.credit, bytes(w.bank.key))] == [first, second]


# ---------------------------------------------------------------- a consortium member with a full node


def test_a_full_node_finds_no_figure_and_cannot_brute_force(suite: Any) -> None:
    w = sealed_world(suite, n_factories=4)
    start = w.chain.block_number()
    for f in w.factories:
        w.credit.grant_consent(f, w.bank.address, expires_at=w.now() + 30 * DAY)
    figures = [
        (3, 7_250, 2_000_000_00),
        (5, 31_415, 750_000_00),
        (7, 96_020, 120_000_00),
        (9, 287_300, 45_000_00),
    ]
    published: list[tuple[CreditOpening, Any]] = []
    for f, (grade, pd, limit) in zip(w.factories, figures, strict=True):
        o = w.opening(f.address, grade=grade, pd_ppm=pd, limit=limit)
        published.append((o, w.publish(o, [w.bank.address])))
    again = dataclasses.replace(w.opening(w.factories[0].address, 4, 12_345, 1_500_000_00))
    published.append((again, w.publish(again, [w.bank.address])))  # a superseding record

    # the bank opens all five from its node: the figures are on chain, sealed
    assert [r.opening for r in read_bank_records(w.credit, bytes(w.bank.key))] == [o for o, _ in published]

    # the member reads every transaction input, every log and every storage slot of the registry
    seen = chain_bytes(w.chain, start) + [("storage", v) for v in storage_values(w.chain, w.credit.address)]
    assert len(seen) > 20 and any(where == "storage" for where, _ in seen)
    assert (
        find_leaks({f"{o.factory} #{i}": figure_patterns(o) for i, (o, _) in enumerate(published)}, seen)
        == []
    )
    # the commitment is on chain; so the test would see a figure if one were there
    assert any(published[0][0].commitment() in data for _, data in seen)

    # brute force: all grades x the PD table x candidate limits (the true one among them), with every
    # salt derivable from public values: nothing matches; with the real salt the true record does
    for o, result in published:
        salts = public_salts(o, bytes.fromhex(result.tx_hash[2:]))
        limits = sorted({o.limit, 0, 100_000_00, 500_000_00, 1_000_000_00, 2_000_000_00})
        assert brute_force(o, salts, limits) == []
        assert brute_force(o, [o.salt], limits) == [(o.grade, o.pd_ppm, o.limit)]
