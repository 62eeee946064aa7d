"""Sealed credit records on both chains: the oracle publishes a commitment with envelopes addressed by
consent id; a consented bank reads and opens its records from its own node and verifies them; another
bank opens nothing; a tampered field is named; after revocation no new envelope reaches the bank, and
what it already received stays readable (what revocation cannot take back). A consortium member with
a full node finds no credit figure and no bank linked to a factory, and brute-forces neither a record
commitment nor a consent id."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import pytest
from chain_scan import brute_force, chain_bytes, figure_patterns, find_leaks, public_salts
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
from contracts.credit_consent import ConsentOpening, InvalidConsentOpening, consent_id
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

    def publish(self, o: CreditOpening, consents: list[ConsentOpening]) -> Any:
        envelopes = [seal_for_bank(self.credit, o, c) for c in consents]
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
    grant = w.credit.grant_consent(factory, w.bank.address, expires_at=w.now() + 30 * DAY)
    o = w.opening(factory.address, grade=4, pd_ppm=17_350, limit=1_250_000_00)
    to_oracle = ConsentOpening(factory=factory.address, bank=w.oracle.address, salt=new_salt())
    with pytest.raises(EnvelopeError, match="registered no envelope key"):
        seal_for_bank(w.credit, o, to_oracle)
    other_factory = ConsentOpening(factory=w.bank.address, bank=w.other_bank.address, salt=new_salt())
    with pytest.raises(InvalidConsentOpening, match="seal under the factory's own consent"):
        seal_for_bank(w.credit, o, other_factory)
    w.publish(o, [grant.opening])

    (got,) = read_bank_records(w.credit, bytes(w.bank.key))
    assert got.verified and got.opening == o and got.opening is not None and got.opening.index == 0
    assert got.record.record_commitment == o.commitment() and got.envelope.consent_id == grant.consent_id
    # by the consent ids of the openings it holds: the same record
    assert read_bank_records(w.credit, bytes(w.bank.key), consents=[grant.opening]) == [got]
    with pytest.raises(InvalidConsentOpening, match=f"not to {w.other_bank.address}"):
        read_bank_records(w.credit, bytes(w.other_bank.key), consents=[grant.opening])
    # another bank has nothing sealed for it, and cannot open the bank's envelope
    assert read_bank_records(w.credit, bytes(w.other_bank.key)) == []
    (env,) = w.credit.envelopes_for([grant.consent_id])
    with pytest.raises(EnvelopeError):
        open_delivered(w.credit, env, bytes(w.other_bank.key))

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
    grant = w.credit.grant_consent(factory, w.bank.address, expires_at=w.now() + 30 * DAY)
    cid = grant.consent_id
    first = w.opening(factory.address, grade=5, pd_ppm=31_000, limit=800_000_00)
    w.publish(first, [grant.opening])
    w.credit.revoke_consent(factory, grant.opening)

    second = w.opening(factory.address, grade=6, pd_ppm=52_000, limit=400_000_00)
    with reverts("CreditRegistryEnvelopeWithoutConsent", factory=factory.address, consentId=cid):
        w.publish(second, [grant.opening])
    w.publish(second, [])
    late = [seal_for_bank(w.credit, second, grant.opening)]
    with reverts("CreditRegistryEnvelopeWithoutConsent", factory=factory.address, consentId=cid):
        w.credit.deliver_envelopes(w.oracle, factory.address, 1, late)
    # what was delivered before the revocation stays in the chain's logs, readable by the bank's key
    records = read_bank_records(w.credit, bytes(w.bank.key), consents=[grant.opening])
    assert [r.opening for r in records] == [first] and records[0].verified

    # consent again (the same consent renewed): the oracle delivers the current record to the bank
    w.credit.grant_consent(factory, w.bank.address, expires_at=w.now() + 30 * DAY, salt=grant.opening.salt)
    w.credit.deliver_envelopes(w.oracle, factory.address, 1, late)
    assert [r.opening for r in read_bank_records(w.credit, bytes(w.bank.key))] == [first, second]


# ---------------------------------------------------------------- a consortium member with a full node


def storage_slots(chain: Chain, address: str) -> dict[bytes, bytes]:
    """Every non-zero storage slot of the contract at ``address``, keys with values (chain_scan reads
    the values only): its key (the slot number on anvil; ``keccak(slot)`` on the embedded chain, whose
    state trie is keyed so; :func:`holds_slot` compares either) and its value, as 32-byte words."""
    if chain.is_embedded:
        import rlp
        from eth_utils import to_canonical_address
        from trie import HexaryTrie
        from trie.iter import NodeIterator

        state = chain.w3.provider.ethereum_tester.backend.chain.get_vm().state  # type: ignore[attr-defined]
        accounts = state._account_db
        root = accounts._get_storage_root(to_canonical_address(address))
        trie = HexaryTrie(accounts._raw_store_db, root)
        return {bytes(k): rlp.decode(v).rjust(32, b"\0") for k, v in NodeIterator(trie).items()}
    import gzip
    import json

    raw = chain.w3.provider.make_request("anvil_dumpState", [])["result"]  # type: ignore[arg-type]
    state = json.loads(gzip.decompress(bytes.fromhex(raw.removeprefix("0x"))))
    storage = state["accounts"][address.lower()]["storage"]
    return {int(k, 16).to_bytes(32, "big"): int(v, 16).to_bytes(32, "big") for k, v in storage.items()}


def holds_slot(chain: Chain, keys: set[bytes], slot: bytes) -> bool:
    """Whether storage slot ``slot`` (32 bytes) is among ``keys`` of :func:`storage_slots`."""
    return (keccak(slot) if chain.is_embedded else slot) in keys


def registry_bytes(chain: Chain, from_block: int, registry: str) -> list[tuple[str, bytes]]:
    """What :func:`chain_scan.chain_bytes` reads of the contract ``registry``: inputs of transactions
    to it, and its logs."""
    mine = (f" to {registry}", f" from {registry}")
    return [(where, data) for where, data in chain_bytes(chain, from_block) if where.endswith(mine)]


def address_patterns(party: str) -> dict[str, bytes]:
    """How an address shows when in clear: raw 20 bytes (an ABI word or a packed slot hold them), hex
    text in either case."""
    raw = bytes.fromhex(party[2:])
    return {"raw": raw, "hex": party[2:].lower().encode(), "checksummed": party[2:].encode()}


def linked_slots(factory: str, bank: str, max_slot: int = 16) -> list[bytes]:
    """Every storage slot a contract would key by the pair (factory, bank) in a (nested) mapping at a
    declared slot below ``max_slot``: what the old ``_consents[factory][bank]`` was."""
    f, b = (bytes.fromhex(a[2:]).rjust(32, b"\0") for a in (factory, bank))
    out = []
    for p in range(max_slot):
        base = p.to_bytes(32, "big")
        out += [keccak(b + keccak(f + base)), keccak(f + keccak(b + base))]
    return out


def test_a_full_node_finds_no_figure_no_bank_and_cannot_brute_force(suite: Any) -> None:
    w = sealed_world(suite, n_factories=4)
    start = w.chain.block_number() + 1  # the first block after the banks registered their keys
    grants = [w.credit.grant_consent(f, w.bank.address, expires_at=w.now() + 30 * DAY) for f in w.factories]
    figures = [
        (3, 7_250, 2_000_000_00),
        (5, 31_415, 750_000_00),
        (7, 96_020, 120_000_00),
        (9, 287_300, 45_000_00),
    ]
    published: list[tuple[CreditOpening, Any]] = []
    for f, g, (grade, pd, limit) in zip(w.factories, grants, figures, strict=True):
        o = w.opening(f.address, grade=grade, pd_ppm=pd, limit=limit)
        published.append((o, w.publish(o, [g.opening])))
    again = dataclasses.replace(w.opening(w.factories[0].address, 4, 12_345, 1_500_000_00))
    published.append((again, w.publish(again, [grants[0].opening])))  # a superseding record
    # a second bank consented later gets the current record delivered; then the first factory revokes
    late = w.credit.grant_consent(w.factories[0], w.other_bank.address, expires_at=w.now() + 30 * DAY)
    w.credit.deliver_envelopes(
        w.oracle, w.factories[0].address, 1, [seal_for_bank(w.credit, again, late.opening)]
    )
    w.credit.revoke_consent(w.factories[0], grants[0].opening)

    # the banks open theirs from their nodes: the figures are on chain, sealed
    assert [r.opening for r in read_bank_records(w.credit, bytes(w.bank.key))] == [o for o, _ in published]
    assert [r.opening for r in read_bank_records(w.credit, bytes(w.other_bank.key))] == [again]

    # the member reads every transaction input, every log and every storage slot of the registry
    slots = storage_slots(w.chain, w.credit.address)
    seen = chain_bytes(w.chain, start) + [("storage", v) for v in slots.values()]
    assert len(seen) > 20 and any(where == "storage" for where, _ in seen)
    assert (
        find_leaks({f"{o.factory} #{i}": figure_patterns(o) for i, (o, _) in enumerate(published)}, seen)
        == []
    )
    # the commitment is on chain; so the test would see a figure if one were there
    assert any(published[0][0].commitment() in data for _, data in seen)

    # no bank linked to a factory: since the consents were given, no input, log or storage value of the
    # registry holds a bank's address in any form, and no storage slot is keyed by a (factory, bank) pair
    registry = registry_bytes(w.chain, start, w.credit.address) + [("storage", v) for v in slots.values()]
    banks = [w.bank.address, w.other_bank.address]
    assert find_leaks({bank: address_patterns(bank) for bank in banks}, registry) == []
    keys = set(slots)
    assert [
        (f.address, bank)
        for f in w.factories
        for bank in banks
        for slot in linked_slots(f.address, bank)
        if holds_slot(w.chain, keys, slot)
    ] == []
    # the scan would see them: the factories' addresses are in the registry's logs and storage, and a
    # bank's address is on chain where it registered its envelope key (before the consents: who is a
    # bank, which membership reveals anyway)
    assert all(any(address_patterns(f.address)["raw"] in d for _, d in registry) for f in w.factories)
    assert any(
        address_patterns(w.bank.address)["raw"] in d for _, d in registry_bytes(w.chain, 0, w.credit.address)
    )

    # and the slot scan finds a slot keyed by a bank where there is one: its envelope key's
    assert any(
        holds_slot(
            w.chain, keys, keccak(bytes.fromhex(w.bank.address[2:]).rjust(32, b"\0") + p.to_bytes(32, "big"))
        )
        for p in range(16)
    )

    # the consent ids on chain: what a member sees of consents is a factory, an id and its times
    granted = w.credit.contract.events.ConsentGranted().get_logs(from_block=start)
    assert {(log["args"]["factory"], bytes(log["args"]["consentId"])) for log in granted} == {
        (g.opening.factory, g.consent_id) for g in [*grants, late]
    }
    assert w.credit.consent_ids_of(w.factories[0].address) == [grants[0].consent_id, late.consent_id]

    # brute force of a consent id: every admitted party (and every account the node knows) as the bank,
    # with every salt derivable from public values: nothing matches; with the real salt the bank does
    candidates = sorted({a.address for a in suite.accounts} | {w.oracle.address, *banks})
    for log, g in zip(granted, [*grants, late], strict=True):
        public = [bytes(log["args"]["consentId"]), bytes(log["transactionHash"]), bytes(log["blockHash"])]
        salts = [
            bytes(32),
            *public,
            *(keccak(p) for p in public),
            keccak(bytes.fromhex(g.opening.factory[2:])),
        ]
        salts.append(int(log["args"]["expiresAt"]).to_bytes(32, "big"))
        salts.append(int(log["blockNumber"]).to_bytes(32, "big"))
        target = bytes(log["args"]["consentId"])
        hits = [(b, s) for b in candidates for s in salts if consent_id(g.opening.factory, b, s) == target]
        assert hits == []
        assert [b for b in candidates if consent_id(g.opening.factory, b, g.opening.salt) == target] == [
            g.opening.bank
        ]

    # brute force of a record: all grades x the PD table x candidate limits (the true one among them),
    # with every salt derivable from public values: nothing matches; with the real salt the true record does
    for o, result in published:
        salts = public_salts(o, bytes.fromhex(result.tx_hash[2:]))
        limits = sorted({o.limit, 0, 100_000_00, 500_000_00, 1_000_000_00, 2_000_000_00})
        assert brute_force(o, salts, limits) == []
        assert brute_force(o, [o.salt], limits) == [(o.grade, o.pd_ppm, o.limit)]
