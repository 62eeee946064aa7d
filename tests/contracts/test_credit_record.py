"""The canonical credit record and its envelope, without a chain: the commitment is EIP-712's hashStruct
(checked against eth-account's own implementation), salted; an opening round-trips through JSON; an
envelope opens only with the bank's key, for its record; a mismatch names the field."""

from __future__ import annotations

import dataclasses

import pytest
from eth_account import Account
from eth_account._utils.encode_typed_data.encoding_and_hashing import hash_struct
from eth_utils import keccak

from contracts.credit import CreditRecord, model_version
from contracts.credit_envelope import EnvelopeError, envelope_aad, open_envelope, public_key_of, seal
from contracts.credit_envelope import address_of as envelope_address
from contracts.credit_record import (
    RECORD_TYPE,
    RECORD_TYPEHASH,
    CreditOpening,
    CreditRecordMismatch,
    InvalidOpening,
    check_opening,
    new_salt,
)

FACTORY = "0x" + "11" * 20
ORACLE = "0x" + "22" * 20
REGISTRY = "0x" + "33" * 20


def opening(**kw: object) -> CreditOpening:
    fields: dict[str, object] = {
        "factory": FACTORY,
        "oracle": ORACLE,
        "grade": 4,
        "pd_ppm": 17_350,
        "limit": 1_250_000_00,
        "currency": "CNY",
        "reasons": ("On-time-in-full delivery of 62% is low (costs 38 points)", "Yield is weak"),
        "valid_until": 1_800_000_000,
        "model_version": model_version("scorecard-2026.11"),
        "analytics_commitment": keccak(b"assessment"),
        "salt": bytes(range(32)),
    }
    fields.update(kw)
    return CreditOpening(**fields)  # type: ignore[arg-type]


def on_chain(o: CreditOpening, **kw: object) -> CreditRecord:
    fields: dict[str, object] = {
        "factory": o.factory,
        "index": 0,
        "record_commitment": o.commitment(),
        "valid_until": o.valid_until,
        "published_at": 1_700_000_000,
        "oracle": o.oracle,
        "model_version": o.model_version,
        "analytics_commitment": o.analytics_commitment,
    }
    fields.update(kw)
    return CreditRecord(**fields)  # type: ignore[arg-type]


def test_commitment_is_eip712_hash_struct() -> None:
    o = opening()
    fields = [f.split(" ") for f in RECORD_TYPE[len("CreditRecord(") : -1].split(",")]
    types = {"CreditRecord": [{"type": t, "name": n} for t, n in fields]}
    data = {
        "factory": o.factory,
        "grade": o.grade,
        "pdPpm": o.pd_ppm,
        "limit": o.limit,
        "currency": b"CNY",
        "reasons": list(o.reasons),
        "validUntil": o.valid_until,
        "modelVersion": o.model_version,
        "analyticsCommitment": o.analytics_commitment,
        "salt": o.salt,
    }
    assert keccak(text=RECORD_TYPE) == RECORD_TYPEHASH
    assert o.commitment() == hash_struct("CreditRecord", types, data)
    # every field is bound, the salt too; the locators (oracle, index) are not hashed
    for change in (
        {"grade": 5},
        {"pd_ppm": 17_351},
        {"limit": 1_250_000_01},
        {"currency": "EUR"},
        {"reasons": ("Yield is weak",)},
        {"valid_until": 1_800_000_001},
        {"model_version": model_version("other")},
        {"analytics_commitment": keccak(b"other")},
        {"salt": new_salt()},
        {"factory": ORACLE},
    ):
        assert opening(**change).commitment() != o.commitment(), change
    assert opening(oracle=None, index=3).commitment() == o.commitment()
    assert new_salt() != new_salt() and len(new_salt()) == 32


def test_opening_json_round_trip_and_refusals() -> None:
    o = opening(index=2)
    assert CreditOpening.from_json_obj(o.to_json_obj()) == o
    assert CreditOpening.from_bytes(o.to_bytes()).index == 2
    assert o.to_json_obj()["record_commitment"] == "0x" + o.commitment().hex()
    for bad in ({"grade": 0}, {"grade": 11}, {"pd_ppm": 0}, {"pd_ppm": 1_000_001}, {"currency": "cny"}):
        with pytest.raises(InvalidOpening):
            opening(**bad)
    obj = o.to_json_obj()
    for broken in (
        {**obj, "schema": "x"},
        {k: v for k, v in obj.items() if k != "salt"},
        {**obj, "salt": "0x1234"},
        {**obj, "reasons": "one"},
    ):
        with pytest.raises(InvalidOpening):
            CreditOpening.from_json_obj(broken)
    with pytest.raises(InvalidOpening):
        CreditOpening.from_bytes(b"not json")


def test_envelope_opens_only_for_its_bank_and_record() -> None:
    bank, other = Account.create(), Account.create()
    key = public_key_of(bytes(bank.key))
    assert len(key) == 64 and envelope_address(key) == bank.address.lower()
    aad = envelope_aad(31337, REGISTRY, FACTORY, bank.address, keccak(b"record"))
    plain = opening().to_bytes()
    sealed = seal(plain, key, aad)
    assert sealed[0] == 1 and len(sealed) == len(plain) + 1 + 33 + 12 + 16
    assert seal(plain, key, aad) != sealed  # a fresh ephemeral key and nonce each time
    assert open_envelope(sealed, bytes(bank.key), aad) == plain
    with pytest.raises(EnvelopeError):
        open_envelope(sealed, bytes(other.key), aad)  # another bank's key
    for other_aad in (
        envelope_aad(31337, REGISTRY, FACTORY, bank.address, keccak(b"another record")),
        envelope_aad(1, REGISTRY, FACTORY, bank.address, keccak(b"record")),
        envelope_aad(31337, REGISTRY, FACTORY, other.address, keccak(b"record")),
    ):
        with pytest.raises(EnvelopeError):
            open_envelope(sealed, bytes(bank.key), other_aad)
    flipped = bytearray(sealed)
    flipped[-20] ^= 1
    with pytest.raises(EnvelopeError):
        open_envelope(bytes(flipped), bytes(bank.key), aad)
    with pytest.raises(EnvelopeError, match="version-1"):
        open_envelope(b"\x02" + sealed[1:], bytes(bank.key), aad)
    with pytest.raises(EnvelopeError):
        seal(plain, b"\x05" * 64, aad)  # not a curve point


def test_check_opening_names_the_field() -> None:
    good = opening()
    record = on_chain(good)
    check_opening(good, record)
    # a clear field is named from the chain itself
    with pytest.raises(CreditRecordMismatch) as info:
        check_opening(opening(valid_until=good.valid_until + 1), record)
    assert info.value.fields == ("valid_until",) and info.value.code == "credit.record.mismatch"
    with pytest.raises(CreditRecordMismatch) as info:
        check_opening(opening(analytics_commitment=keccak(b"x")), record)
    assert info.value.fields == ("analytics_commitment",)
    # a hidden field: named against a reference that opens the commitment (the bank's envelope) ...
    tampered = dataclasses.replace(good, grade=2)
    with pytest.raises(CreditRecordMismatch) as info:
        check_opening(tampered, record, reference=good)
    assert info.value.fields == ("grade",) and "grade differs" in str(info.value)
    with pytest.raises(CreditRecordMismatch) as info:
        check_opening(dataclasses.replace(good, limit=9_999_999_00, pd_ppm=2_000), record, reference=good)
    assert info.value.fields == ("pd_ppm", "limit")
    # ... and without one (or with a reference that does not open it), only the commitment is named
    for reference in (None, tampered):
        with pytest.raises(CreditRecordMismatch) as info:
            check_opening(tampered, record, reference=reference)
        assert info.value.fields == ("record_commitment",)
