"""Every rejection path of ``POST /v1/readings``: HTTP status, stable code, a message that says what to fix,
and nothing stored (no reading, no device head; equivocation evidence is the one thing a rejection keeps).

The long case tables run as subtests of one test per database, so the service is built once per table.
Each fixed defect keeps the test that found it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from fastapi.testclient import TestClient
from reads import bearer
from sqlalchemy import select
from support import TestConsortium, now_ms, stored

from contracts.chain import dev_accounts
from device_attestation.keys import DeviceKey
from device_attestation.reading import Domain, Reading, reading_digest
from device_attestation.sdk import DeviceSigner
from device_attestation.signing import P256_N, SECP256K1_N, sign_digest
from ledger_service.service import LedgerService
from ledger_service.store.models import DeviceHeadRow, EquivocationRow, ReadingRow

DAY_MS = 24 * 3_600_000
NOTHING = {"readings": 0, "heads": 0, "equivocations": 0}

# ------------------------------------------------------------------------------------------------ helpers


def assert_error(response: Any, status: int, code: str, fragment: str) -> None:
    """The error envelope of a single submission: exactly ``{"error": {"code", "message"}}``."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert body["error"]["code"] == code, body
    assert fragment in body["error"]["message"], body


def assert_item_error(item: dict[str, Any], index: int, code: str, fragment: str) -> None:
    """One rejected item of a batch answer."""
    assert item["index"] == index, item
    assert "receipt" not in item or item["receipt"] is None, item
    assert item["error"]["code"] == code, item
    assert fragment in item["error"]["message"], item


def reading(device_id: str, seq: int = 1, *, ts_ms: int | None = None, **fields: Any) -> Reading:
    fields.setdefault("metrics", {"temp_c": 21.5, "good_units": 120})
    return Reading(device_id=device_id, seq=seq, ts_ms=now_ms() - 1_000 if ts_ms is None else ts_ms, **fields)


def submission(r: Reading, scheme: str, signature: bytes) -> dict[str, Any]:
    return {"reading": r.to_json_obj(), "scheme": scheme, "signature": "0x" + signature.hex()}


def signed(key: DeviceKey, r: Reading, domain: Domain) -> dict[str, Any]:
    return submission(r, key.scheme.value, sign_digest(key, reading_digest(r, domain)))


@pytest.fixture
def lenient(client: TestClient) -> Iterator[TestClient]:
    """The running app, answering a crash with a 500 instead of raising it into the test."""
    yield TestClient(client.app, raise_server_exceptions=False)


@pytest.fixture
def on_postgres(db_url: str) -> bool:
    return db_url.startswith("postgresql")


# ------------------------------------------------------------------------------------------------ schema


@dataclass(frozen=True)
class Bad:
    """A bad submission made from a valid one: the code and a message fragment it must be refused with."""

    id: str
    make: Callable[[dict[str, Any]], Any]
    code: str
    fragment: str


def in_reading(**changes: Any) -> Callable[[dict[str, Any]], Any]:
    """Set (or, with ``...``, remove) fields of the submission's reading."""

    def make(sub: dict[str, Any]) -> dict[str, Any]:
        for name, value in changes.items():
            if value is ...:
                del sub["reading"][name]
            else:
                sub["reading"][name] = value
        return sub

    return make


def in_submission(**changes: Any) -> Callable[[dict[str, Any]], Any]:
    def make(sub: dict[str, Any]) -> dict[str, Any]:
        for name, value in changes.items():
            if value is ...:
                del sub[name]
            else:
                sub[name] = value
        return sub

    return make


INVALID = "reading.invalid"
SCHEMA_CASES = [
    # the submission object
    Bad("not_an_object_in_batch", lambda s: [s], INVALID, "a submission is a JSON object"),
    Bad("extra_top_field", in_submission(extra=1), INVALID, "unknown submission field(s) ['extra']"),
    Bad("missing_reading", in_submission(reading=...), INVALID, "reading: missing"),
    Bad("missing_scheme", in_submission(scheme=...), INVALID, "scheme: missing"),
    Bad("missing_signature", in_submission(signature=...), INVALID, "signature: missing"),
    Bad("reading_not_object", in_submission(reading=[1]), INVALID, "valid dictionary"),
    # the reading's fields
    Bad(
        "extra_reading_field", in_reading(firmware="1.2"), INVALID, "firmware: Extra inputs are not permitted"
    ),
    Bad("missing_device_id", in_reading(device_id=...), INVALID, "device_id: Field required"),
    Bad("missing_seq", in_reading(seq=...), INVALID, "seq: Field required"),
    Bad("missing_ts_ms", in_reading(ts_ms=...), INVALID, "ts_ms: Field required"),
    Bad("missing_metrics", in_reading(metrics=...), INVALID, "metrics: Field required"),
    Bad("device_id_empty", in_reading(device_id=""), INVALID, "device_id: String should have at least 1"),
    Bad("device_id_65", in_reading(device_id="D" * 65), INVALID, "device_id: String should have at most 64"),
    Bad("device_id_int", in_reading(device_id=7), INVALID, "device_id: Input should be a valid string"),
    Bad("device_id_null", in_reading(device_id=None), INVALID, "device_id: Input should be a valid string"),
    Bad("seq_0", in_reading(seq=0), INVALID, "seq: Input should be greater than or equal to 1"),
    Bad("seq_negative", in_reading(seq=-5), INVALID, "seq: Input should be greater than or equal to 1"),
    Bad("seq_float", in_reading(seq=2.0), INVALID, "seq: Input should be a valid integer"),
    Bad("seq_bool", in_reading(seq=True), INVALID, "seq: Input should be a valid integer"),
    Bad("seq_string", in_reading(seq="2"), INVALID, "seq: Input should be a valid integer"),
    Bad("seq_2_64", in_reading(seq=2**64), INVALID, "seq: Input should be"),
    Bad("ts_negative", in_reading(ts_ms=-1), INVALID, "ts_ms: Input should be greater than or equal to 0"),
    Bad("ts_float", in_reading(ts_ms=1.5e12), INVALID, "ts_ms: Input should be a valid integer"),
    Bad("lot_id_65", in_reading(lot_id="L" * 65), INVALID, "lot_id: String should have at most 64"),
    Bad("lot_id_empty", in_reading(lot_id=""), INVALID, "lot_id: String should have at least 1"),
    Bad("lot_id_int", in_reading(lot_id=3), INVALID, "lot_id: Input should be a valid string"),
    # metrics
    Bad("metrics_empty", in_reading(metrics={}), INVALID, "metrics: Dictionary should have at least 1 item"),
    Bad(
        "metrics_33",
        in_reading(metrics={f"m{i}": i for i in range(33)}),
        INVALID,
        "metrics: Dictionary should have at most 32 items",
    ),
    Bad("metrics_list", in_reading(metrics=[1, 2]), INVALID, "metrics: Input should be a valid dictionary"),
    Bad("name_upper", in_reading(metrics={"Temp_c": 1}), INVALID, "metric name 'Temp_c' is invalid"),
    Bad("name_space", in_reading(metrics={"temp c": 1}), INVALID, "metric name 'temp c' is invalid"),
    Bad(
        "name_33_bytes", in_reading(metrics={"t" * 33: 1}), INVALID, "use 1..32 characters of a-z, 0-9 and _"
    ),
    Bad(
        "name_non_ascii",
        in_reading(metrics={"temp_\u00e9": 1}),
        INVALID,
        "metric name 'temp_\u00e9' is invalid",
    ),
    Bad("name_empty", in_reading(metrics={"": 1}), INVALID, "metric name '' is invalid"),
    Bad("name_dash", in_reading(metrics={"temp-c": 1}), INVALID, "use 1..32 characters of a-z, 0-9 and _"),
    Bad("value_bool", in_reading(metrics={"ok": True}), INVALID, "metrics.ok: value True is a bool"),
    Bad("value_string", in_reading(metrics={"t": "21.5"}), INVALID, "metrics.t: value '21.5' is a str"),
    Bad("value_null", in_reading(metrics={"t": None}), INVALID, "metrics.t: value None is a NoneType"),
    Bad("value_list", in_reading(metrics={"t": [1]}), INVALID, "send a JSON number"),
    Bad("value_object", in_reading(metrics={"t": {"v": 1}}), INVALID, "send a JSON number"),
    Bad("value_beyond_int256", in_reading(metrics={"t": 10**71}), INVALID, "does not fit int256"),
    Bad("value_float_beyond_int256", in_reading(metrics={"t": 1e71}), INVALID, "does not fit int256"),
    # scheme and signature encoding
    Bad("scheme_unknown", in_submission(scheme="ed25519"), "signature.unknown_scheme", "use one of: p256"),
    Bad("scheme_upper", in_submission(scheme="P256"), "signature.unknown_scheme", "'P256'"),
    Bad("scheme_null", in_submission(scheme=None), "signature.unknown_scheme", "use one of: p256, secp256k1"),
    Bad("scheme_int", in_submission(scheme=1), "signature.unknown_scheme", "use one of: p256, secp256k1"),
    Bad(
        "signature_not_hex", in_submission(signature="0x" + "zz" * 64), "signature.encoding", "not valid hex"
    ),
    Bad(
        "signature_odd_length", in_submission(signature="0x" + "a" * 127), "signature.encoding", "even number"
    ),
    Bad("signature_no_0x", in_submission(signature="ab" * 64), "signature.encoding", "0x-prefixed hex"),
    Bad("signature_int", in_submission(signature=12), "signature.encoding", "0x-prefixed hex"),
    Bad("signature_65_for_p256", in_submission(signature="0x" + "ab" * 65), "signature.length", "64 bytes"),
    Bad("signature_32_for_p256", in_submission(signature="0x" + "ab" * 32), "signature.length", "64 bytes"),
    Bad("signature_empty", in_submission(signature="0x"), "signature.length", "got 0"),
]


def test_schema_rejections(
    client: TestClient, ledger: LedgerService, consortium: TestConsortium, subtests: Any
) -> None:
    device = consortium.enroll("SN-SCHEMA-1", "p256")
    good = device.sign({"temp_c": 21.5, "good_units": 120}, ts_ms=now_ms() - 1_000).to_json_obj()
    bad = [(case, case.make(copy.deepcopy(good))) for case in SCHEMA_CASES]

    for case, body in bad:
        if case.id == "not_an_object_in_batch":
            continue  # a list at the top level is a shape error of the request (test_request_shape)
        with subtests.test(case.id):
            assert_error(client.post("/v1/readings", json=body), 422, case.code, case.fragment)
    assert stored(ledger) == NOTHING

    # the same submissions in one batch, the valid one last: each refused alone, the valid one accepted
    r = client.post("/v1/readings", json={"readings": [body for _, body in bad] + [good]})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["accepted"] == 1 and answer["rejected"] == len(bad)
    for i, (case, _) in enumerate(bad):
        with subtests.test(f"batch-{case.id}"):
            assert_item_error(answer["results"][i], i, case.code, case.fragment)
    assert answer["results"][-1]["receipt"]["seq"] == 1
    assert stored(ledger) == {"readings": 1, "heads": 1, "equivocations": 0}


REQUEST_SHAPE_CASES = [
    ("not_json", b"not json", 400, "request.bad_json", "the body is not valid JSON"),
    ("empty_body", b"", 400, "request.bad_json", "the body is not valid JSON"),
    ("truncated", b'{"reading": {"device_id": ', 400, "request.bad_json", "not valid JSON"),
    ("nan", b'{"reading": {"metrics": {"t": NaN}}}', 400, "request.bad_json", "not valid JSON"),
    ("infinity", b'{"reading": {"metrics": {"t": 1e400}}}', 400, "request.bad_json", "infinity"),
    ("bad_utf8", b'{"reading": "\xff\xfe"}', 400, "request.bad_json", "not valid JSON"),
    ("lone_surrogate", b'{"reading": "\\ud800"}', 400, "request.bad_json", "surrogate"),
    ("top_list", b"[]", 400, "request.bad_shape", 'send one submission object or {"readings": [...]}'),
    ("top_string", b'"reading"', 400, "request.bad_shape", "send one submission object"),
    ("top_number", b"42", 400, "request.bad_shape", "send one submission object"),
    ("top_null", b"null", 400, "request.bad_shape", "send one submission object"),
    ("readings_object", b'{"readings": {}}', 400, "request.bad_shape", "`readings` must be a list"),
    ("readings_null", b'{"readings": null}', 400, "request.bad_shape", "`readings` must be a list"),
    ("empty_object", b"{}", 422, "reading.invalid", "reading: missing"),
    ("batch_and_more", b'{"readings": [], "x": 1}', 422, "reading.invalid", "unknown submission field(s)"),
]


def test_request_shape(client: TestClient, ledger: LedgerService, subtests: Any) -> None:
    headers = {"content-type": "application/json"}
    for name, body, status, code, fragment in REQUEST_SHAPE_CASES:
        with subtests.test(name):
            assert_error(client.post("/v1/readings", content=body, headers=headers), status, code, fragment)
    r = client.post("/v1/readings", json={"readings": []})
    assert r.status_code == 200 and r.json() == {"accepted": 0, "rejected": 0, "results": []}
    assert stored(ledger) == NOTHING


# ------------------------------------------------------------------------------------------------ size limits


def test_size_limits(
    client: TestClient, ledger: LedgerService, consortium: TestConsortium, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = {"content-type": "application/json"}
    # the defaults: 16 MiB, 10,000 submissions
    limit = ledger.settings.max_body_bytes
    body = b'{"readings": [' + b" " * limit + b"]}"
    r = client.post("/v1/readings", content=body, headers=headers)
    assert_error(r, 413, "request.too_large", f"the body exceeds {limit} bytes: split the batch")
    n = ledger.settings.max_batch_submissions + 1
    r = client.post("/v1/readings", json={"readings": [{}] * n})
    assert_error(r, 413, "request.too_many", f"a batch holds at most {n - 1} submissions, got {n}: split it")
    assert stored(ledger) == NOTHING

    # the limits are exact, and the body limit also holds without a Content-Length (chunked)
    small = {"max_body_bytes": 4096, "max_batch_submissions": 3}
    monkeypatch.setattr(ledger, "settings", ledger.settings.model_copy(update=small))
    device = consortium.enroll("SN-SIZE-1", "p256")
    subs = [device.sign({"n": i}, ts_ms=now_ms() - 1_000).to_json_obj() for i in range(5)]
    raw = orjson.dumps(subs[0])
    at_limit = raw[:-1] + b" " * (4096 - len(raw)) + b"}"
    over = raw[:-1] + b" " * (4097 - len(raw)) + b"}"
    assert len(at_limit) == 4096 and len(over) == 4097
    assert_error(client.post("/v1/readings", content=over, headers=headers), 413, "request.too_large", "4096")
    chunked = client.post("/v1/readings", content=iter([over[:2000], over[2000:]]), headers=headers)
    assert "content-length" not in chunked.request.headers
    assert_error(chunked, 413, "request.too_large", "exceeds 4096 bytes")
    r = client.post("/v1/readings", json={"readings": subs[1:]})
    assert_error(r, 413, "request.too_many", "a batch holds at most 3 submissions, got 4")
    assert stored(ledger) == NOTHING
    assert client.post("/v1/readings", content=at_limit, headers=headers).status_code == 201
    r = client.post("/v1/readings", json={"readings": subs[1:4]})
    assert r.status_code == 200 and r.json()["accepted"] == 3
    assert stored(ledger)["readings"] == 4


def test_chunked_body_is_refused_without_being_buffered_whole(
    client: TestClient, ledger: LedgerService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Driven through the ASGI interface: the TestClient's transport would buffer the body itself."""
    import asyncio

    monkeypatch.setattr(ledger, "settings", ledger.settings.model_copy(update={"max_body_bytes": 4096}))
    sent: list[int] = []
    answers: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        i = len(sent)
        sent.append(i)
        return {"type": "http.request", "body": b" " * 1024, "more_body": i < 199}

    async def send(message: dict[str, Any]) -> None:
        answers.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/readings",
        "raw_path": b"/v1/readings",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"host", b"test")],
        "server": ("test", 80),
        "client": ("test", 1234),
    }
    asyncio.run(client.app(scope, receive, send))  # type: ignore[arg-type]
    start = next(m for m in answers if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in answers if m["type"] == "http.response.body")
    assert start["status"] == 413 and b"request.too_large" in body and b"exceeds 4096 bytes" in body
    assert len(sent) <= 8, f"the service read {len(sent)} KiB of a body limited to 4 KiB"


# ------------------------------------------------------------------------------------------------ signatures


def _flip_bit(sig: bytes, byte: int, bit: int = 0) -> bytes:
    out = bytearray(sig)
    out[byte] ^= 1 << bit
    return bytes(out)


def _high_s_p256(sig: bytes) -> bytes:
    s = int.from_bytes(sig[32:], "big")
    return sig[:32] + (P256_N - s).to_bytes(32, "big")


def _high_s_k1(sig: bytes) -> bytes:
    s = int.from_bytes(sig[32:64], "big")
    return sig[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes([55 - sig[64]])  # v: 27 <-> 28


def test_signature_rejections(
    client: TestClient, ledger: LedgerService, consortium: TestConsortium, subtests: Any
) -> None:
    p256 = consortium.enroll("SN-SIG-P256", "p256")
    k1 = consortium.enroll("GW-SIG-K1", "secp256k1")
    other_p256 = consortium.enroll("SN-SIG-OTHER", "p256")
    other_k1 = consortium.enroll("GW-SIG-OTHER", "secp256k1")
    domain = consortium.domain
    rp, rk = reading("SN-SIG-P256"), reading("GW-SIG-K1")
    dp, dk = reading_digest(rp, domain), reading_digest(rk, domain)
    sp, sk = sign_digest(p256.key, dp), sign_digest(k1.key, dk)
    r_p, s_p = int.from_bytes(sp[:32], "big"), int.from_bytes(sp[32:], "big")
    other_chain = Domain(chain_id=1, verifying_contract=domain.verifying_contract)
    other_contract = Domain(
        chain_id=domain.chain_id, verifying_contract=ledger.deployment.address("DeviceRegistry")
    )
    stray_k1 = DeviceKey.generate("secp256k1")  # never enrolled

    does_not_verify = "does not verify for this digest and the enrolled key"
    other_address = "recovers to another address than the enrolled one"
    cases: list[tuple[str, dict[str, Any], str, str]] = [
        ("p256_flipped_bit_r", submission(rp, "p256", _flip_bit(sp, 31)), "signature.bad", does_not_verify),
        ("p256_flipped_bit_s", submission(rp, "p256", _flip_bit(sp, 63)), "signature.bad", does_not_verify),
        ("k1_flipped_bit_r", submission(rk, "secp256k1", _flip_bit(sk, 31)), "signature.bad", "secp256k1"),
        ("k1_flipped_bit_s", submission(rk, "secp256k1", _flip_bit(sk, 63)), "signature.bad", "secp256k1"),
        ("p256_high_s", submission(rp, "p256", _high_s_p256(sp)), "signature.high_s", "s := n - s"),
        ("k1_high_s", submission(rk, "secp256k1", _high_s_k1(sk)), "signature.high_s", "flip v"),
        (
            "k1_v_0",
            submission(rk, "secp256k1", sk[:64] + bytes([sk[64] - 27])),
            "signature.bad_v",
            "27 or 28",
        ),
        ("k1_v_1", submission(rk, "secp256k1", sk[:64] + b"\x01"), "signature.bad_v", "v = 1"),
        ("k1_v_29", submission(rk, "secp256k1", sk[:64] + bytes([29])), "signature.bad_v", "v = 29"),
        (
            "p256_r_zero",
            submission(rp, "p256", bytes(32) + sp[32:]),
            "signature.out_of_range",
            "outside [1, n-1]",
        ),
        (
            "p256_s_n",
            submission(rp, "p256", sp[:32] + P256_N.to_bytes(32, "big")),
            "signature.out_of_range",
            "outside [1, n-1]",
        ),
        (
            "k1_r_n",
            submission(rk, "secp256k1", SECP256K1_N.to_bytes(32, "big") + sk[32:]),
            "signature.out_of_range",
            "outside [1, n-1]",
        ),
        (
            "p256_der_encoded",
            submission(rp, "p256", encode_dss_signature(r_p, s_p)),
            "signature.length",
            "not DER",
        ),
        ("k1_64_bytes", submission(rk, "secp256k1", sk[:64]), "signature.length", "65 bytes"),
        ("p256_other_chain_id", signed(p256.key, rp, other_chain), "signature.bad", does_not_verify),
        ("p256_other_contract", signed(p256.key, rp, other_contract), "signature.bad", does_not_verify),
        ("k1_other_chain_id", signed(k1.key, rk, other_chain), "signature.bad", other_address),
        ("k1_other_contract", signed(k1.key, rk, other_contract), "signature.bad", other_address),
        (
            "p256_device_sends_secp256k1",
            signed(stray_k1, rp, domain),
            "signature.scheme_mismatch",
            "enrolled with a p256 key, but the submission says secp256k1",
        ),
        (
            "k1_device_sends_p256",
            signed(other_p256.key, rk, domain),
            "signature.scheme_mismatch",
            "enrolled with a secp256k1 key, but the submission says p256",
        ),
        ("p256_other_devices_key", signed(other_p256.key, rp, domain), "signature.bad", does_not_verify),
        ("k1_other_devices_key", signed(other_k1.key, rk, domain), "signature.bad", other_address),
        (
            "p256_signature_of_other_reading",
            submission(rp, "p256", sign_digest(p256.key, reading_digest(reading("SN-SIG-P256", 2), domain))),
            "signature.bad",
            does_not_verify,
        ),
    ]
    for name, body, code, fragment in cases:
        with subtests.test(name):
            assert_error(client.post("/v1/readings", json=body), 422, code, fragment)
    assert stored(ledger) == NOTHING

    # in one batch with both correctly signed readings: those two accepted, the rest refused one by one
    r = client.post(
        "/v1/readings",
        json={
            "readings": [body for _, body, _, _ in cases]
            + [submission(rp, "p256", sp), submission(rk, "secp256k1", sk)]
        },
    )
    answer = r.json()
    assert answer["accepted"] == 2 and answer["rejected"] == len(cases)
    for i, (name, _, code, fragment) in enumerate(cases):
        with subtests.test(f"batch-{name}"):
            assert_item_error(answer["results"][i], i, code, fragment)
    assert [x["receipt"]["digest"] for x in answer["results"][-2:]] == ["0x" + dp.hex(), "0x" + dk.hex()]
    assert stored(ledger) == {"readings": 2, "heads": 2, "equivocations": 0}


# ------------------------------------------------------------------------------------------------ devices


def test_unknown_or_not_yet_active_device(
    client: TestClient, ledger: LedgerService, consortium: TestConsortium
) -> None:
    stranger = signed(DeviceKey.generate("p256"), reading("SN-NEVER-ENROLLED"), consortium.domain)
    assert_error(
        client.post("/v1/readings", json=stranger),
        422,
        "device.unknown",
        "device 'SN-NEVER-ENROLLED' is not enrolled in the registry: enroll it",
    )
    active_from = now_ms() - 60_000
    device = consortium.enroll("SN-ACT-1", "p256", active_from_ms=active_from)
    early = device.sign({"t": 1}, ts_ms=active_from - 1)
    assert_error(
        client.post("/v1/readings", json=early.to_json_obj()),
        422,
        "device.not_yet_active",
        f"is active from {active_from} but the reading is from {active_from - 1}",
    )
    assert stored(ledger) == NOTHING
    on_time = device.sign({"t": 1}, ts_ms=active_from)
    assert client.post("/v1/readings", json=on_time.to_json_obj()).status_code == 201


def test_revocation_is_enforced_once_the_mirror_has_it(
    client: TestClient, ledger: LedgerService, consortium: TestConsortium
) -> None:
    device = consortium.enroll("SN-REV-1", "p256")
    first = device.sign({"t": 1}, ts_ms=now_ms() - 120_000)
    assert client.post("/v1/readings", json=first.to_json_obj()).status_code == 201
    revoked_at = now_ms() - 60_000
    consortium.registry.revoke(consortium.factory, "SN-REV-1", revoked_at)
    ledger.registry.refresh()
    before = stored(ledger)

    at = device.sign({"t": 2}, ts_ms=revoked_at)
    assert_error(
        client.post("/v1/readings", json=at.to_json_obj()),
        422,
        "device.revoked",
        f"was revoked from {revoked_at}; this reading ({revoked_at}) is after its revocation",
    )
    after = device.sign({"t": 3}, ts_ms=now_ms() - 1_000)
    assert_error(client.post("/v1/readings", json=after.to_json_obj()), 422, "device.revoked", "revoked from")
    assert stored(ledger) == before
    # store-and-forward data measured before the revocation still counts
    late = DeviceSigner(device_id="SN-REV-1", key=device.key, domain=consortium.domain, start_seq=10)
    r = client.post("/v1/readings", json=late.sign({"t": 4}, ts_ms=revoked_at - 1).to_json_obj())
    assert r.status_code == 201, r.text


def test_revocation_is_seen_promptly(
    client: TestClient, ledger: LedgerService, consortium: TestConsortium
) -> None:
    device = consortium.enroll("SN-REV-2", "p256")
    first = device.sign({"t": 1}, ts_ms=now_ms() - 120_000)
    assert client.post("/v1/readings", json=first.to_json_obj()).status_code == 201
    revoked_at = now_ms() - 60_000
    consortium.registry.revoke(consortium.factory, "SN-REV-2", revoked_at)
    before = stored(ledger)
    after = device.sign({"t": 2}, ts_ms=now_ms() - 1_000)
    assert_error(client.post("/v1/readings", json=after.to_json_obj()), 422, "device.revoked", "revoked from")
    assert stored(ledger) == before


# ------------------------------------------------------------------------------------------------ time


def test_default_time_window(client: TestClient, ledger: LedgerService, consortium: TestConsortium) -> None:
    device = consortium.enroll("SN-TIME-1", "p256")
    skew, window = ledger.settings.max_future_skew_ms, ledger.settings.late_window_ms
    assert (skew, window) == (60_000, 7 * DAY_MS)
    ahead = device.sign({"t": 1}, ts_ms=now_ms() + skew + 600_000)
    assert_error(
        client.post("/v1/readings", json=ahead.to_json_obj()),
        422,
        "reading.future_timestamp",
        f"ahead of the ledger's clock (allowed: {skew} ms): check the device's clock (NTP)",
    )
    too_old = device.sign({"t": 2}, ts_ms=now_ms() - 8 * DAY_MS)
    assert_error(
        client.post("/v1/readings", json=too_old.to_json_obj()),
        422,
        "reading.too_late",
        f"older than the store-and-forward window of {window} ms",
    )
    assert stored(ledger) == NOTHING
    # late store-and-forward data inside the window, and a clock slightly ahead: accepted
    late = device.sign({"t": 3}, ts_ms=now_ms() - 6 * DAY_MS)
    assert client.post("/v1/readings", json=late.to_json_obj()).status_code == 201
    slightly_ahead = device.sign({"t": 4}, ts_ms=now_ms() + skew // 2)
    assert client.post("/v1/readings", json=slightly_ahead.to_json_obj()).status_code == 201
    assert stored(ledger)["readings"] == 2


def test_time_limits_are_configurable(
    client: TestClient, ledger: LedgerService, consortium: TestConsortium, monkeypatch: pytest.MonkeyPatch
) -> None:
    tight = ledger.settings.model_copy(update={"late_window_ms": 60_000, "max_future_skew_ms": 1_000})
    monkeypatch.setattr(ledger.pipeline, "settings", tight)
    device = consortium.enroll("SN-TIME-3", "p256")
    old = device.sign({"t": 1}, ts_ms=now_ms() - 120_000)
    assert_error(client.post("/v1/readings", json=old.to_json_obj()), 422, "reading.too_late", "60000 ms")
    ahead = device.sign({"t": 2}, ts_ms=now_ms() + 30_000)
    assert_error(
        client.post("/v1/readings", json=ahead.to_json_obj()), 422, "reading.future_timestamp", "1000 ms"
    )
    assert stored(ledger) == NOTHING
    recent = device.sign({"t": 3}, ts_ms=now_ms() - 30_000)
    assert client.post("/v1/readings", json=recent.to_json_obj()).status_code == 201


# ------------------------------------------------------------------------------------------------ sequence


def test_equivocation_is_refused_and_kept_as_evidence(
    client: TestClient, ledger: LedgerService, consortium: TestConsortium
) -> None:
    device = consortium.enroll("SN-EQ-1", "p256")
    key, domain = device.key, consortium.domain
    ts = now_ms() - 1_000
    honest = reading("SN-EQ-1", 1, ts_ms=ts, metrics={"good_units": 120})
    forged = reading("SN-EQ-1", 1, ts_ms=ts, metrics={"good_units": 12})
    assert client.post("/v1/readings", json=signed(key, honest, domain)).status_code == 201
    conflicting = signed(key, forged, domain)

    r = client.post("/v1/readings", json=conflicting)
    honest_digest, forged_digest = reading_digest(honest, domain), reading_digest(forged, domain)
    assert_error(
        r,
        409,
        "reading.equivocation",
        f"already signed a different reading with seq 1 (0x{honest_digest.hex()}); this conflicting "
        "reading was recorded as evidence",
    )
    assert stored(ledger) == {"readings": 1, "heads": 1, "equivocations": 1}
    with ledger.engine.connect() as conn:
        (row,) = conn.execute(select(EquivocationRow.__table__)).mappings().all()  # type: ignore[attr-defined]
        (head,) = conn.execute(select(DeviceHeadRow.__table__)).mappings().all()  # type: ignore[attr-defined]
        (kept,) = conn.execute(select(ReadingRow.digest)).all()  # type: ignore[call-overload]
    assert row["device_id"] == "SN-EQ-1" and row["seq"] == 1
    assert (
        bytes(row["accepted_digest"]) == honest_digest and bytes(row["conflicting_digest"]) == forged_digest
    )
    assert orjson.loads(row["conflicting_submission"]) == conflicting
    assert (head["last_seq"], head["readings"]) == (1, 1)
    assert bytes(kept[0]) == honest_digest  # the first reading stands

    # also against a seq below the head: the device moved on to 3, then signs another seq 2
    later = [signed(key, reading("SN-EQ-1", seq, ts_ms=ts + seq), domain) for seq in (2, 3)]
    assert client.post("/v1/readings", json={"readings": later}).json()["accepted"] == 2
    forged2 = signed(key, reading("SN-EQ-1", 2, ts_ms=ts + 2, metrics={"good_units": 7}), domain)
    assert_error(client.post("/v1/readings", json=forged2), 409, "reading.equivocation", "with seq 2")
    assert stored(ledger) == {"readings": 3, "heads": 1, "equivocations": 2}


def test_equivocation_in_one_batch_is_recorded_once(
    client: TestClient, ledger: LedgerService, consortium: TestConsortium
) -> None:
    device = consortium.enroll("SN-EQ-3", "p256")
    key, domain = device.key, consortium.domain
    ts = now_ms() - 1_000
    honest = signed(key, reading("SN-EQ-3", 1, ts_ms=ts, metrics={"v": 1}), domain)
    forged = signed(key, reading("SN-EQ-3", 1, ts_ms=ts, metrics={"v": 2}), domain)
    answer = client.post("/v1/readings", json={"readings": [honest, forged, forged]}).json()
    assert answer["accepted"] == 1 and answer["results"][0]["receipt"]["seq"] == 1
    assert_item_error(answer["results"][1], 1, "reading.equivocation", "recorded as evidence")
    assert_item_error(answer["results"][2], 2, "reading.equivocation", "recorded as evidence")
    assert stored(ledger) == {"readings": 1, "heads": 1, "equivocations": 1}
    # a third, different reading with the same seq is new evidence
    third = signed(key, reading("SN-EQ-3", 1, ts_ms=ts, metrics={"v": 3}), domain)
    assert_error(client.post("/v1/readings", json=third), 409, "reading.equivocation", "with seq 1")
    assert stored(ledger) == {"readings": 1, "heads": 1, "equivocations": 2}


def test_repeated_equivocation_does_not_duplicate_evidence(
    client: TestClient, ledger: LedgerService, consortium: TestConsortium
) -> None:
    device = consortium.enroll("SN-EQ-4", "p256")
    key, domain = device.key, consortium.domain
    ts = now_ms() - 1_000
    assert (
        client.post("/v1/readings", json=signed(key, reading("SN-EQ-4", 1, ts_ms=ts), domain)).status_code
        == 201
    )
    forged = signed(key, reading("SN-EQ-4", 1, ts_ms=ts, metrics={"v": 2}), domain)
    for _ in range(2):
        assert_error(client.post("/v1/readings", json=forged), 409, "reading.equivocation", "with seq 1")
    assert stored(ledger) == {"readings": 1, "heads": 1, "equivocations": 1}


def test_sequence_must_agree_with_time(
    client: TestClient, ledger: LedgerService, consortium: TestConsortium
) -> None:
    device = consortium.enroll("SN-SEQ-1", "p256")
    key, domain = device.key, consortium.domain
    t = now_ms() - 100_000
    first = [signed(key, reading("SN-SEQ-1", seq, ts_ms=t + seq * 1_000), domain) for seq in (1, 5)]
    assert client.post("/v1/readings", json={"readings": first}).json()["accepted"] == 2
    before = stored(ledger)
    out_of_order = [
        (
            signed(key, reading("SN-SEQ-1", 6, ts_ms=t + 4_000), domain),
            "seq 6 of device 'SN-SEQ-1' comes after seq 5",
        ),
        (signed(key, reading("SN-SEQ-1", 3, ts_ms=t + 9_000), domain), "comes before seq 5, but its ts_ms"),
        (signed(key, reading("SN-SEQ-1", 2, ts_ms=t), domain), "comes after seq 1, but its ts_ms"),
    ]
    answer = client.post("/v1/readings", json={"readings": [body for body, _ in out_of_order]}).json()
    assert answer["accepted"] == 0
    for i, (_, fragment) in enumerate(out_of_order):
        assert_item_error(answer["results"][i], i, "reading.out_of_order", fragment)
        assert "check the device's counter and clock" in answer["results"][i]["error"]["message"]
    single = client.post("/v1/readings", json=out_of_order[0][0])
    assert_error(single, 409, "reading.out_of_order", "seq 6 of device 'SN-SEQ-1' comes after seq 5")
    assert stored(ledger) == before
    with ledger.engine.connect() as conn:
        seqs = sorted(s for (s,) in conn.execute(select(ReadingRow.seq)))  # type: ignore[call-overload]
        head = conn.execute(select(DeviceHeadRow.__table__)).mappings().one()  # type: ignore[attr-defined]
    assert seqs == [1, 5]
    assert (head["last_seq"], head["readings"], head["gaps"], head["missing"]) == (5, 2, 1, 3)


# ------------------------------------------------------------------------------------------------ batches


def test_batch_isolates_every_kind_of_bad_item(
    client: TestClient, ledger: LedgerService, consortium: TestConsortium
) -> None:
    domain = consortium.domain
    a = consortium.enroll("SN-MIX-A", "p256")
    b = consortium.enroll("GW-MIX-B", "secp256k1")
    c = consortium.enroll("SN-MIX-C", "p256")
    late_start = now_ms() - 60_000
    d = consortium.enroll("SN-MIX-D", "p256", active_from_ms=late_start)
    e = consortium.enroll("SN-MIX-E", "p256")
    ka, kc, ke = a.key, c.key, e.key
    # earlier: C has seq 1 and 5 stored; E is revoked
    t = now_ms() - 100_000
    c1 = signed(kc, reading("SN-MIX-C", 1, ts_ms=t + 1_000), domain)
    c5 = signed(kc, reading("SN-MIX-C", 5, ts_ms=t + 5_000), domain)
    assert client.post("/v1/readings", json={"readings": [c1, c5]}).json()["accepted"] == 2
    revoked_at = now_ms() - 30_000
    consortium.registry.revoke(consortium.factory, "SN-MIX-E", revoked_at)
    ledger.registry.refresh()
    before = stored(ledger)

    good_a1 = signed(ka, reading("SN-MIX-A", 1), domain)
    good_a2 = signed(ka, reading("SN-MIX-A", 2), domain)
    flipped = signed(ka, reading("SN-MIX-A", 3), domain)
    flipped["signature"] = flipped["signature"][:-1] + ("0" if flipped["signature"][-1] != "0" else "1")
    ra4 = reading("SN-MIX-A", 4)
    high_s = submission(ra4, "p256", _high_s_p256(sign_digest(ka, reading_digest(ra4, domain))))
    items: list[tuple[Any, str | None, str]] = [
        (good_a1, None, ""),
        (in_reading(seq=0)(copy.deepcopy(good_a1)), "reading.invalid", "seq: Input should be greater"),
        (5, "reading.invalid", "a submission is a JSON object, got int"),
        (None, "reading.invalid", "a submission is a JSON object"),
        (
            signed(DeviceKey.generate("p256"), reading("SN-MIX-NOBODY"), domain),
            "device.unknown",
            "not enrolled",
        ),
        (flipped, "signature.bad", "does not verify"),
        (high_s, "signature.high_s", "s > n/2"),
        (
            signed(ka, reading("GW-MIX-B", 1), domain),
            "signature.scheme_mismatch",
            "enrolled with a secp256k1",
        ),
        (
            signed(ka, reading("SN-MIX-A", 5, ts_ms=now_ms() + 3_600_000), domain),
            "reading.future_timestamp",
            "NTP",
        ),
        (
            signed(ka, reading("SN-MIX-A", 6, ts_ms=now_ms() - 30 * DAY_MS), domain),
            "reading.too_late",
            "window",
        ),
        (
            signed(d.key, reading("SN-MIX-D", 1, ts_ms=late_start - 1), domain),
            "device.not_yet_active",
            "from",
        ),
        (signed(ke, reading("SN-MIX-E", 1), domain), "device.revoked", "was revoked from"),
        (b.sign({"temp_c": 20.5}, ts_ms=now_ms() - 1_000).to_json_obj(), None, ""),
        (signed(kc, reading("SN-MIX-C", 1, metrics={"v": 2}), domain), "reading.equivocation", "with seq 1"),
        (signed(kc, reading("SN-MIX-C", 3, ts_ms=t + 9_000), domain), "reading.out_of_order", "before seq 5"),
        (c1, None, ""),  # identical resubmission: its receipt again
        (good_a2, None, ""),
        (good_a2, None, ""),  # the same reading twice in one batch
    ]
    r = client.post("/v1/readings", json={"readings": [body for body, _, _ in items]})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert [x["index"] for x in answer["results"]] == list(range(len(items)))
    for i, ((_, code, fragment), result) in enumerate(zip(items, answer["results"], strict=True)):
        if code is None:
            assert result.get("error") is None and result["receipt"]["status"] == "accepted", (i, result)
        else:
            assert_item_error(result, i, code, fragment)
    assert answer["accepted"] == sum(code is None for _, code, _ in items) == 5
    assert answer["rejected"] == len(items) - 5
    assert (
        answer["results"][15]["receipt"]["digest"]
        == "0x" + reading_digest(Reading.from_json_obj(c1["reading"]), domain).hex()
    )  # C's seq 1 again, not a new reading
    assert answer["results"][16]["receipt"] == answer["results"][17]["receipt"]
    # stored: A's seq 1 and 2 and B's seq 1 (two new device heads), and one piece of evidence against C
    assert stored(ledger) == {
        "readings": before["readings"] + 3,
        "heads": before["heads"] + 2,
        "equivocations": before["equivocations"] + 1,
    }


# -------------------------------------------------------------------------------- values the store can't hold

# The store keeps seq in signed 64-bit columns: a larger (valid uint64) seq is refused before the commit,
# alone, with reading.seq_too_large, and never blocks the other readings of its group.


def test_seq_beyond_int64_is_refused_alone(
    lenient: TestClient, ledger: LedgerService, consortium: TestConsortium
) -> None:
    device = consortium.enroll("SN-BIG-1", "p256")
    key, domain = device.key, consortium.domain
    huge = signed(key, reading("SN-BIG-1", 2**63), domain)
    single = lenient.post("/v1/readings", json=huge)
    assert single.status_code == 422, single.text
    assert (
        single.json()["error"]["code"].startswith("reading.") and "seq" in single.json()["error"]["message"]
    )
    good = signed(key, reading("SN-BIG-1", 1), domain)
    r = lenient.post("/v1/readings", json={"readings": [huge, good]})
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["results"][0]["error"]["code"].startswith("reading.")
    assert answer["results"][1]["receipt"]["seq"] == 1
    assert stored(ledger) == {"readings": 1, "heads": 1, "equivocations": 0}


def test_nul_in_lot_id_never_blocks_other_readings(
    request: pytest.FixtureRequest,
    lenient: TestClient,
    ledger: LedgerService,
    consortium: TestConsortium,
    on_postgres: bool,
) -> None:
    device = consortium.enroll("SN-NUL-1", "p256")
    key, domain = device.key, consortium.domain
    nul = signed(key, reading("SN-NUL-1", 1, lot_id="LOT\x00-1"), domain)
    good = signed(key, reading("SN-NUL-1", 2), domain)
    r = lenient.post("/v1/readings", json={"readings": [nul, good]})
    assert r.status_code == 200, r.text
    first, second = r.json()["results"]
    assert (second.get("receipt") or {}).get("seq") == 2, second  # the good reading is not held back
    assert first.get("receipt") or first["error"]["code"] == "reading.invalid", first


# ------------------------------------------------------------------------------------------------ read API


def test_history_cursor_beyond_int64_is_a_client_error(lenient: TestClient, ledger: LedgerService) -> None:
    owner = bearer(lenient, dev_accounts(2)[1])  # a signed-in party: the policy lets the query through
    r = lenient.get("/v1/devices/SN-1/readings", params={"after_seq": 2**64}, headers=owner)
    assert_error(r, 422, "request.invalid", "after_seq")


def test_history_of_a_nul_device_id(
    request: pytest.FixtureRequest, lenient: TestClient, ledger: LedgerService, on_postgres: bool
) -> None:
    r = lenient.get("/v1/devices/%00/readings", headers=bearer(lenient, dev_accounts(2)[1]))
    assert r.status_code < 500, r.text
