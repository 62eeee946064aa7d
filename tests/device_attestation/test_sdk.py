"""The device SDK: consecutive sequence numbers and the spec's submission JSON."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from device_attestation import (
    DeviceKey,
    DeviceSigner,
    Domain,
    InvalidReading,
    Reading,
    Scheme,
    SignatureLengthError,
    Submission,
    UnknownScheme,
    check_reading,
    reading_digest,
)


@pytest.fixture(params=list(Scheme), ids=lambda s: s.value)
def key(request: pytest.FixtureRequest) -> DeviceKey:
    return DeviceKey.generate(request.param)


def enrolled(key: DeviceKey) -> Any:
    return key.public_key if key.scheme is Scheme.P256 else key.public_key.eth_address


def test_sign_produces_verifiable_consecutive_readings(key: DeviceKey, domain: Domain) -> None:
    signer = DeviceSigner(device_id="SN-1", key=key, domain=domain, start_seq=41)
    first = signer.sign({"temp_c": 23.5}, ts_ms=1764400000000, lot_id="LOT-1")
    second = signer.sign({"temp_c": 23.6, "good_units": 3}, ts_ms=1764400001000)
    assert (first.reading.seq, second.reading.seq, signer.next_seq) == (41, 42, 43)
    for sub in (first, second):
        assert sub.scheme is key.scheme
        assert sub.digest == reading_digest(sub.reading, domain)
        check_reading(sub.reading, sub.scheme, sub.signature, enrolled(key), domain)


def test_submission_json_is_the_spec_shape(key: DeviceKey, domain: Domain) -> None:
    signer = DeviceSigner(device_id="SN-1", key=key, domain=domain)
    sub = signer.sign({"temp_c": 23.5, "good_units": 120}, ts_ms=1764400000000)
    obj = sub.to_json_obj()
    assert list(obj) == ["reading", "scheme", "signature"]
    assert obj["reading"] == {
        "device_id": "SN-1",
        "seq": 1,
        "ts_ms": 1764400000000,
        "lot_id": None,
        "metrics": {"temp_c": 23.5, "good_units": 120},
    }
    assert obj["scheme"] == key.scheme.value
    assert obj["signature"] == "0x" + sub.signature.hex()
    # it survives JSON and parses back to the same submission
    again = Submission.from_json_obj(json.loads(json.dumps(obj)), domain=domain)
    assert again == sub


def test_vector_submissions_parse(reading_vector: dict[str, Any], domain: Domain) -> None:
    obj = {k: reading_vector[k] for k in ("reading", "scheme", "signature")}
    sub = Submission.from_json_obj(obj, domain=domain)
    assert "0x" + sub.digest.hex() == reading_vector["digest"]
    assert sub.to_json_obj() == obj


def test_default_timestamp_is_now(domain: Domain) -> None:
    signer = DeviceSigner(device_id="SN-1", key=DeviceKey.generate(Scheme.P256), domain=domain)
    before = time.time_ns() // 1_000_000
    sub = signer.sign({"x": 1})
    after = time.time_ns() // 1_000_000
    assert before <= sub.reading.ts_ms <= after


def test_invalid_metrics_do_not_consume_a_seq(domain: Domain) -> None:
    signer = DeviceSigner(device_id="SN-1", key=DeviceKey.generate(Scheme.P256), domain=domain)
    with pytest.raises(InvalidReading, match=r"metrics\.Temp"):
        signer.sign({"Temp": 1})
    assert signer.sign({"temp": 1}).reading.seq == 1


def test_constructor_checks_its_arguments(domain: Domain) -> None:
    key = DeviceKey.generate(Scheme.P256)
    with pytest.raises(InvalidReading, match="seq: Input should be greater than or equal to 1"):
        DeviceSigner(device_id="SN-1", key=key, domain=domain, start_seq=0)
    with pytest.raises(InvalidReading, match="device_id"):
        DeviceSigner(device_id="", key=key, domain=domain)


def test_signer_is_thread_safe(domain: Domain) -> None:
    signer = DeviceSigner(device_id="SN-1", key=DeviceKey.generate(Scheme.P256), domain=domain)
    seqs: list[int] = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(50):
            s = signer.sign({"x": 1}, ts_ms=1).reading.seq
            with lock:
                seqs.append(s)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(seqs) == list(range(1, 201))


@pytest.mark.parametrize(
    ("obj", "error", "fragment"),
    [
        ([], InvalidReading, "a submission is a JSON object"),
        ({"reading": {}, "scheme": "p256"}, InvalidReading, "signature: missing"),
        (
            {"reading": {}, "scheme": "p256", "signature": "0x", "extra": 1},
            InvalidReading,
            r"unknown submission field\(s\) \['extra'\]",
        ),
        ({"reading": {}, "scheme": "p256", "signature": "0x"}, InvalidReading, "Field required"),
        ("valid-reading", UnknownScheme, "unknown signature scheme 'ed25519'"),
        ("valid-reading-bad-hex", SignatureLengthError, "0x-prefixed hex"),
    ],
)
def test_bad_submissions(obj: Any, error: type[Exception], fragment: str, domain: Domain) -> None:
    reading = Reading(device_id="SN-1", seq=1, ts_ms=0, metrics={"x": 1}).to_json_obj()
    if obj == "valid-reading":
        obj = {"reading": reading, "scheme": "ed25519", "signature": "0x00"}
    elif obj == "valid-reading-bad-hex":
        obj = {"reading": reading, "scheme": "p256", "signature": "00ff"}
    with pytest.raises(error, match=fragment):
        Submission.from_json_obj(obj, domain=domain)


def test_repr_does_not_leak_the_key(domain: Domain) -> None:
    key = DeviceKey.generate(Scheme.P256)
    signer = DeviceSigner(device_id="SN-1", key=key, domain=domain)
    text = repr(signer)
    assert text == "DeviceSigner(device_id='SN-1', scheme='p256', next_seq=1)"
