"""Reading v1: the model, fixed point, the domain and the EIP-712 digest."""

from __future__ import annotations

import math
from typing import Any

import pytest
from eth_abi import encode
from eth_account.messages import _hash_eip191_message, encode_typed_data
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from device_attestation import (
    READING_TYPE,
    READING_TYPEHASH,
    Domain,
    InvalidDomain,
    InvalidReading,
    Reading,
    domain_separator,
    hash_struct,
    reading_digest,
    reading_struct,
    to_fixed_point,
)
from device_attestation._internal.keccak import keccak256

CONTRACT = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
BASE: dict[str, Any] = {
    "device_id": "SN-P256-0001",
    "seq": 1,
    "ts_ms": 1764400000000,
    "lot_id": None,
    "metrics": {"temp_c": 23.5},
}


def with_(**changes: Any) -> dict[str, Any]:
    obj = dict(BASE)
    obj.update(changes)
    return obj


def h(hex_text: str) -> bytes:
    return bytes.fromhex(hex_text.removeprefix("0x"))


# --- the vectors ------------------------------------------------------------------


def test_vector_struct(reading_vector: dict[str, Any]) -> None:
    reading = Reading.from_json_obj(reading_vector["reading"])
    want = reading_vector["struct"]
    got = reading_struct(reading)
    assert got.device_id == h(want["deviceId"])
    assert got.seq == want["seq"]
    assert got.timestamp == want["timestamp"]
    assert got.lot_id == h(want["lotId"])
    assert list(got.metrics) == [h(m) for m in want["metrics"]]
    assert list(got.values) == want["values"]


def test_vector_digest(reading_vector: dict[str, Any], domain: Domain) -> None:
    reading = Reading.from_json_obj(reading_vector["reading"])
    want = h(reading_vector["digest"])
    assert reading_digest(reading, domain) == want
    # the explicit path: 0x1901 || separator || hashStruct(struct)
    explicit = keccak256(b"\x19\x01" + domain_separator(domain) + hash_struct(reading_struct(reading)))
    assert explicit == want


def test_vector_round_trips_through_json(reading_vector: dict[str, Any]) -> None:
    reading = Reading.from_json_obj(reading_vector["reading"])
    assert reading.to_json_obj() == reading_vector["reading"]


def test_type_string_and_typehash() -> None:
    assert READING_TYPE == (
        "Reading(bytes32 deviceId,uint64 seq,uint64 timestamp,bytes32 lotId,"
        "bytes32[] metrics,int256[] values)"
    )
    assert keccak256(READING_TYPE.encode()) == READING_TYPEHASH


# --- an independent reference: eth_account's generic EIP-712 encoder ---------------

_TYPES = {
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "chainId", "type": "uint256"},
        {"name": "verifyingContract", "type": "address"},
    ],
    "Reading": [
        {"name": "deviceId", "type": "bytes32"},
        {"name": "seq", "type": "uint64"},
        {"name": "timestamp", "type": "uint64"},
        {"name": "lotId", "type": "bytes32"},
        {"name": "metrics", "type": "bytes32[]"},
        {"name": "values", "type": "int256[]"},
    ],
}


def reference_digest(reading: Reading, domain: Domain) -> bytes:
    """The digest through eth_account, from the spec's rules written out plainly."""
    names = sorted(reading.metrics)
    message = {
        "deviceId": keccak256(reading.device_id.encode()),
        "seq": reading.seq,
        "timestamp": reading.ts_ms,
        "lotId": bytes(32) if reading.lot_id is None else keccak256(reading.lot_id.encode()),
        "metrics": [n.encode().ljust(32, b"\0") for n in names],
        "values": [to_fixed_point(reading.metrics[n]) for n in names],
    }
    full = {
        "types": _TYPES,
        "primaryType": "Reading",
        "domain": {
            "name": domain.name,
            "version": domain.version,
            "chainId": domain.chain_id,
            "verifyingContract": domain.verifying_contract,
        },
        "message": message,
    }
    return bytes(_hash_eip191_message(encode_typed_data(full_message=full)))


_metric_names = st.from_regex(r"\A[a-z0-9_]{1,32}\Z")
_metric_values = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e30, max_value=1e30),
    st.decimals(places=7, min_value=-1000, max_value=1000, allow_nan=False).map(float),
)
_text = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=64)
readings = st.builds(
    Reading,
    device_id=_text,
    seq=st.integers(min_value=1, max_value=2**64 - 1),
    ts_ms=st.integers(min_value=0, max_value=2**64 - 1),
    lot_id=st.none() | _text,
    metrics=st.dictionaries(_metric_names, _metric_values, min_size=1, max_size=32),
)


@settings(max_examples=150, deadline=None)
@given(reading=readings, chain_id=st.integers(min_value=1, max_value=2**64))
def test_digest_matches_eth_account(reading: Reading, chain_id: int) -> None:
    domain = Domain(chain_id=chain_id, verifying_contract=CONTRACT)
    assert reading_digest(reading, domain) == reference_digest(reading, domain)


@settings(max_examples=50, deadline=None)
@given(reading=readings)
def test_metric_order_does_not_change_the_digest(reading: Reading) -> None:
    domain = Domain(chain_id=1, verifying_contract=CONTRACT)
    reordered = Reading(
        device_id=reading.device_id,
        seq=reading.seq,
        ts_ms=reading.ts_ms,
        lot_id=reading.lot_id,
        metrics=dict(reversed(list(reading.metrics.items()))),
    )
    assert reading_digest(reordered, domain) == reading_digest(reading, domain)


@pytest.mark.parametrize(
    "change",
    [
        {"device_id": "SN-P256-0002"},
        {"seq": 2},
        {"ts_ms": 1764400000001},
        {"lot_id": "LOT-1"},
        {"metrics": {"temp_c": 23.500001}},
        {"metrics": {"temp_d": 23.5}},
        {"metrics": {"temp_c": 23.5, "x": 0}},
    ],
    ids=lambda c: next(iter(c)) + "=" + str(next(iter(c.values()))),
)
def test_every_field_is_bound_by_the_digest(change: dict[str, Any]) -> None:
    domain = Domain(chain_id=31337, verifying_contract=CONTRACT)
    base = reading_digest(Reading.from_json_obj(BASE), domain)
    assert reading_digest(Reading.from_json_obj(with_(**change)), domain) != base


# --- fixed point ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "fixed"),
    [
        (23.5, 23_500_000),
        (101.325, 101_325_000),
        (120, 120_000_000),
        (-3, -3_000_000),
        (0, 0),
        (-0.0, 0),
        (0.1, 100_000),
        (0.000001, 1),
        (1e-7, 0),
        (5e-7, 0),  # half to even: 0.5 -> 0
        (1.5e-6, 2),  # 1.5 -> 2
        (2.5e-6, 2),  # 2.5 -> 2
        (3.5e-6, 4),
        (-2.5e-6, -2),
        (-3.5e-6, -4),
        (0.1234565, 123_456),  # 123456.5 -> even
        (0.1234575, 123_458),  # 123457.5 -> even
        (1e20, 10**26),
        (2**255 // 10**6, (2**255 // 10**6) * 10**6),
        (-(2**255 // 10**6), -(2**255 // 10**6) * 10**6),
        (5.7e70, 57 * 10**75),
    ],
)
def test_fixed_point(value: float, fixed: int) -> None:
    assert to_fixed_point(value) == fixed


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (2**255 // 10**6 + 1, "does not fit int256"),
        (-(2**255 // 10**6) - 1, "does not fit int256"),
        (5.8e70, "does not fit int256"),
        (1e308, "does not fit int256"),
        (math.inf, "not a finite number"),
        (math.nan, "not a finite number"),
        (True, "is a bool"),
        ("1.5", "is a str"),
    ],
)
def test_fixed_point_refuses(value: Any, fragment: str) -> None:
    with pytest.raises(InvalidReading, match=fragment):
        to_fixed_point(value)


# --- validation -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("obj", "path", "fragment"),
    [
        ({k: v for k, v in BASE.items() if k != "device_id"}, "device_id", "Field required"),
        (with_(device_id=""), "device_id", "at least 1 character"),
        (with_(device_id="x" * 65), "device_id", "at most 64 characters"),
        (with_(device_id=7), "device_id", "valid string"),
        (
            with_(device_id="SN-\ud800"),
            "device_id",
            "valid string, unable to parse raw data as a unicode string",
        ),
        (with_(seq=0), "seq", "greater than or equal to 1"),
        (with_(seq=2**64), "seq", "less than or equal to 18446744073709551615"),
        (with_(seq=True), "seq", "valid integer"),
        (with_(seq=1.0), "seq", "valid integer"),
        (with_(seq="1"), "seq", "valid integer"),
        (with_(ts_ms=-1), "ts_ms", "greater than or equal to 0"),
        (with_(ts_ms=2**64), "ts_ms", "less than or equal to"),
        (with_(lot_id=""), "lot_id", "at least 1 character"),
        (with_(lot_id="L" * 65), "lot_id", "at most 64 characters"),
        (with_(metrics={}), "metrics", "at least 1 item"),
        (with_(metrics={f"m{i}": i for i in range(33)}), "metrics", "at most 32 items"),
        (with_(metrics=[1, 2]), "metrics", "valid dictionary"),
        (with_(metrics={"Temp": 1}), "metrics.Temp", "a-z, 0-9 and _"),
        (with_(metrics={"temp-c": 1}), "metrics.temp-c", "a-z, 0-9 and _"),
        (with_(metrics={"": 1}), "metrics.", "a-z, 0-9 and _"),
        (with_(metrics={"a" * 33: 1}), "metrics." + "a" * 33, "1..32 characters"),
        (with_(metrics={"temp_\u00e9": 1}), "metrics.temp_\u00e9", "a-z, 0-9 and _"),
        (with_(metrics={"t": True}), "metrics.t", "is a bool"),
        (with_(metrics={"t": "1.5"}), "metrics.t", "is a str"),
        (with_(metrics={"t": None}), "metrics.t", "is a NoneType"),
        (with_(metrics={"t": math.nan}), "metrics.t", "not finite"),
        (with_(metrics={"t": math.inf}), "metrics.t", "not finite"),
        (with_(metrics={"t": 10**71}), "metrics.t", "does not fit int256"),
        (with_(metrics={"t": 6e70}), "metrics.t", "does not fit int256"),
        (with_(extra=1), "extra", "Extra inputs are not permitted"),
        ([BASE], "", "valid dictionary"),
    ],
)
def test_invalid_readings_name_the_field(obj: Any, path: str, fragment: str) -> None:
    with pytest.raises(InvalidReading, match=fragment) as caught:
        Reading.from_json_obj(obj)
    assert caught.value.path == path
    assert caught.value.code == "reading.invalid"
    assert str(caught.value).startswith(f"{path or 'reading'}:")


def test_constructor_raises_invalid_reading_too() -> None:
    with pytest.raises(InvalidReading, match="seq: Input should be greater") as caught:
        Reading(device_id="a", seq=0, ts_ms=0, metrics={"x": 1})
    assert caught.value.path == "seq"


def test_several_problems_are_counted() -> None:
    with pytest.raises(InvalidReading, match=r"\(and 2 more problems\)"):
        Reading.from_json_obj(with_(seq=0, ts_ms=-1, lot_id=""))


@pytest.mark.parametrize(
    "obj",
    [
        with_(device_id="x" * 64, lot_id="L" * 64),
        with_(device_id="Gerät-\u6e29\u5ea6"),
        with_(seq=2**64 - 1, ts_ms=2**64 - 1),
        with_(ts_ms=0),
        with_(metrics={f"m{i}": i for i in range(32)}),
        with_(metrics={"a" * 32: -1.25, "0": 0, "_": 1e-9}),
        {k: v for k, v in BASE.items() if k != "lot_id"},
    ],
)
def test_edge_readings_are_accepted(obj: dict[str, Any]) -> None:
    reading = Reading.from_json_obj(obj)
    assert reading.to_json_obj()["device_id"] == obj["device_id"]


def test_reading_is_immutable() -> None:
    reading = Reading.from_json_obj(BASE)
    with pytest.raises(ValidationError, match="frozen"):
        reading.seq = 2
    with pytest.raises(TypeError):
        reading.metrics["temp_c"] = 99  # type: ignore[index]
    assert reading == Reading.from_json_obj(BASE)
    assert hash(reading) == hash(Reading.from_json_obj(BASE))


def test_model_dump_is_plain_json() -> None:
    reading = Reading.from_json_obj(BASE)
    assert reading.model_dump() == BASE
    assert Reading.model_validate_json(reading.model_dump_json()) == reading


# --- the domain -------------------------------------------------------------------


def test_domain_separator_is_eip712(domain: Domain) -> None:
    typehash = keccak256(
        b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
    )
    want = keccak256(
        encode(
            ["bytes32", "bytes32", "bytes32", "uint256", "address"],
            [typehash, keccak256(b"supET Ledger"), keccak256(b"1"), 31337, CONTRACT],
        )
    )
    assert domain_separator(domain) == want == domain.separator


def test_domain_normalises_the_address() -> None:
    lower = Domain(chain_id=1, verifying_contract=CONTRACT.lower())
    assert lower.verifying_contract == CONTRACT
    assert lower == Domain(chain_id=1, verifying_contract=CONTRACT)


@pytest.mark.parametrize(
    ("kwargs", "code", "fragment"),
    [
        ({"chain_id": 0, "verifying_contract": CONTRACT}, "domain.chain_id", "positive integer"),
        ({"chain_id": True, "verifying_contract": CONTRACT}, "domain.chain_id", "chain id"),
        (
            {"chain_id": 1, "verifying_contract": CONTRACT.replace("F", "f", 1)},
            "domain.verifying_contract",
            "invalid EIP-55 checksum",
        ),
        ({"chain_id": 1, "verifying_contract": "0x1234"}, "domain.verifying_contract", "20 bytes"),
        (
            {"chain_id": 1, "verifying_contract": CONTRACT[2:]},
            "domain.verifying_contract",
            "0x-prefixed",
        ),
    ],
)
def test_bad_domains(kwargs: dict[str, Any], code: str, fragment: str) -> None:
    with pytest.raises(InvalidDomain, match=fragment) as caught:
        Domain(**kwargs)
    assert caught.value.code == code


@pytest.mark.parametrize(
    "other",
    [
        Domain(chain_id=1, verifying_contract=CONTRACT),
        Domain(chain_id=31337, verifying_contract="0x" + "11" * 20),
        Domain(chain_id=31337, verifying_contract=CONTRACT, version="2"),
    ],
)
def test_the_domain_binds_the_digest(domain: Domain, other: Domain) -> None:
    reading = Reading.from_json_obj(BASE)
    assert reading_digest(reading, other) != reading_digest(reading, domain)
