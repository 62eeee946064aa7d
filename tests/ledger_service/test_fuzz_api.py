"""Property tests (Hypothesis) of encoding and proofs through the HTTP API, and schema-driven fuzzing of the
whole API with schemathesis against the service's own OpenAPI document.

SQLite only (this module overrides ``db_url``): the properties are about encoding and the API, and the
database-specific paths are pinned by tests in test_rejections.py that run on both databases. Examples are
derandomized so that a CI run is reproducible.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from embedded_pool import deployed_embedded
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from reads import sign_client_in
from schemathesis import APIOperation, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from support import TestConsortium, database_url, now_ms, stored

from contracts.chain import dev_accounts
from device_attestation.errors import AttestationError, ProofMismatch
from device_attestation.keys import DeviceKey
from device_attestation.merkle import verify_inclusion
from device_attestation.reading import Domain, Reading, reading_digest
from device_attestation.sdk import Submission
from device_attestation.signing import sign_digest
from ledger_service.api import create_app
from ledger_service.config import Settings
from ledger_service.service import LedgerService

DAY_MS = 24 * 3_600_000
NOTHING = {"readings": 0, "heads": 0, "equivocations": 0}
INT64_MAX = 2**63 - 1
#: Largest metric magnitudes Reading v1 accepts (value * 10^6 must fit int256).
INT_VALUE_MAX = (2**255 - 1) // 10**6
FLOAT_VALUE_MAX = 5.7e70

PROPERTY = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture
def db_url(tmp_path: Path) -> Iterator[str]:
    """SQLite only, for every test of this module (overrides the conftest's two-database fixture)."""
    yield from database_url("sqlite", tmp_path)


@pytest.fixture
def lenient(client: TestClient) -> Iterator[TestClient]:
    """The running app, answering a crash with a 500 instead of raising it into the test."""
    yield TestClient(client.app, raise_server_exceptions=False)


def sign(key: DeviceKey, r: Reading, domain: Domain) -> dict[str, Any]:
    sig = sign_digest(key, reading_digest(r, domain))
    return {"reading": r.to_json_obj(), "scheme": key.scheme.value, "signature": "0x" + sig.hex()}


# ------------------------------------------------------------------------------------------------ strategies

metric_names = st.from_regex(r"[a-z0-9_]{1,32}", fullmatch=True)
#: Integers within int64: beyond it the service's JSON parser turns them into floats (see
#: test_integer_metric_values_beyond_int64_keep_their_digest).
metric_values = st.one_of(
    st.integers(min_value=-(2**63), max_value=INT64_MAX),
    st.floats(min_value=-FLOAT_VALUE_MAX, max_value=FLOAT_VALUE_MAX, allow_nan=False, allow_infinity=False),
)
metrics = st.dictionaries(metric_names, metric_values, min_size=1, max_size=32)
# the ledger refuses control characters in ids (reading.invalid), so valid readings avoid them
lot_ids = st.none() | st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters=[chr(c) for c in [*range(32), 127]]),
    min_size=1,
    max_size=64,
)


# ------------------------------------------------------------------------------------------- encoding, proofs


def test_random_valid_readings_are_accepted_and_provable(
    client: TestClient, ledger: LedgerService, consortium: TestConsortium
) -> None:
    domain = consortium.domain
    devices = {
        "p256": (consortium.enroll("SN-FZ-P256", "p256"), "SN-FZ-P256"),
        "secp256k1": (consortium.enroll("GW-FZ-K1", "secp256k1"), "GW-FZ-K1"),
    }
    state = {scheme: {"seq": 0, "ts": now_ms() - 6 * DAY_MS} for scheme in devices}
    accepted: dict[str, Reading] = {}

    @PROPERTY
    @given(
        scheme=st.sampled_from(sorted(devices)),
        skipped=st.integers(0, 3),
        later_by=st.integers(0, 3_600_000),
        lot_id=lot_ids,
        values=metrics,
    )
    def accepted_as_signed(
        scheme: str, skipped: int, later_by: int, lot_id: str | None, values: dict[str, Any]
    ) -> None:
        signer, device_id = devices[scheme]
        last = state[scheme]
        seq, ts = last["seq"] + 1 + skipped, last["ts"] + later_by
        r = Reading(device_id=device_id, seq=seq, ts_ms=ts, lot_id=lot_id, metrics=values)
        response = client.post("/v1/readings", json=sign(signer.key, r, domain))
        assert response.status_code == 201, response.text
        digest = "0x" + reading_digest(r, domain).hex()
        assert response.json() == {
            "digest": digest,
            "device_id": device_id,
            "seq": seq,
            "status": "accepted",
            "gap": [last["seq"] + 1, seq - 1] if skipped else None,
        }
        last["seq"], last["ts"] = seq, ts
        accepted[digest] = r

    accepted_as_signed()
    assert stored(ledger)["readings"] == len(accepted) > 20

    # every accepted reading is provable from its bundle alone, and a tampered proof is not
    ledger.anchoring.flush(timeout=60)
    digests = list(accepted)
    sign_client_in(client, consortium.factory)  # the devices' owner reads their proofs
    for i, digest in enumerate(digests):
        r = client.get(f"/v1/readings/{digest}/proof")
        assert r.status_code == 200, r.text
        bundle = r.json()
        raw = bytes.fromhex(digest[2:])
        root = bytes.fromhex(bundle["root"][2:])
        proof = [bytes.fromhex(p[2:]) for p in bundle["proof"]]
        assert Reading.from_json_obj(bundle["reading"]) == accepted[digest]
        assert reading_digest(Reading.from_json_obj(bundle["reading"]), domain) == raw
        verify_inclusion(digest=raw, proof=proof, root=root)
        other = bytes.fromhex(digests[(i + 1) % len(digests)][2:])
        with pytest.raises(ProofMismatch):
            verify_inclusion(digest=other, proof=proof, root=root)
        if proof:
            tampered = [bytes([proof[0][0] ^ 1]) + proof[0][1:], *proof[1:]]
            with pytest.raises(ProofMismatch):
                verify_inclusion(digest=raw, proof=tampered, root=root)


def _mutations(r: Reading, other_device: str) -> st.SearchStrategy[Reading]:
    """Readings that differ from ``r`` in one field (any field), still valid Reading v1."""
    fields = r.to_json_obj()

    def with_(**changes: Any) -> Reading:
        return Reading(**{**fields, **changes})

    names = sorted(r.metrics)
    options = [
        st.just(with_(device_id=other_device)),
        st.integers(1, 2**64 - 1).map(lambda seq: with_(seq=seq)),
        st.integers(0, 2**64 - 1).map(lambda ts: with_(ts_ms=ts)),
        lot_ids.map(lambda lot: with_(lot_id=lot)),
        st.tuples(st.sampled_from(names), metric_values).map(
            lambda nv: with_(metrics={**r.metrics, nv[0]: nv[1]})
        ),
        st.tuples(metric_names, metric_values).map(lambda nv: with_(metrics={**r.metrics, nv[0]: nv[1]})),
        st.tuples(st.sampled_from(names), metric_names).map(
            lambda ab: with_(metrics={(ab[1] if k == ab[0] else k): v for k, v in r.metrics.items()})
        ),
    ]
    if len(names) > 1:
        options.append(
            st.sampled_from(names).map(
                lambda n: with_(metrics={k: v for k, v in r.metrics.items() if k != n})
            )
        )
    return st.one_of(options)


def test_any_change_to_a_signed_reading_breaks_its_signature(
    client: TestClient, ledger: LedgerService, consortium: TestConsortium
) -> None:
    domain = consortium.domain
    signers = {
        "p256": (consortium.enroll("SN-MUT-A", "p256"), "SN-MUT-B"),
        "secp256k1": (consortium.enroll("GW-MUT-A", "secp256k1"), "GW-MUT-B"),
    }
    consortium.enroll("SN-MUT-B", "p256")
    consortium.enroll("GW-MUT-B", "secp256k1")

    @PROPERTY
    @given(data=st.data(), scheme=st.sampled_from(sorted(signers)), lot_id=lot_ids, values=metrics)
    def refused(data: st.DataObject, scheme: str, lot_id: str | None, values: dict[str, Any]) -> None:
        signer, other = signers[scheme]
        original = Reading(
            device_id=signer.device_id, seq=1, ts_ms=now_ms() - 1_000, lot_id=lot_id, metrics=values
        )
        signature = sign(signer.key, original, domain)["signature"]
        changed = data.draw(_mutations(original, other))
        assume(reading_digest(changed, domain) != reading_digest(original, domain))
        body = {"reading": changed.to_json_obj(), "scheme": scheme, "signature": signature}
        r = client.post("/v1/readings", json=body)
        assert r.status_code == 422, r.text
        assert r.json()["error"]["code"] == "signature.bad", r.text
        assert "this exact reading for this chain id and anchor contract" in r.json()["error"]["message"]

    refused()
    assert stored(ledger) == NOTHING


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=80),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def _json_mutation(sub: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """``sub`` with one place (top level, reading, a metric) replaced, deleted or added to."""

    def at(path: tuple[str, ...], value: Any) -> dict[str, Any]:
        out = json.loads(json.dumps(sub))
        node = out
        for part in path[:-1]:
            node = node[part]
        if value is _DELETE:
            node.pop(path[-1], None)
        else:
            node[path[-1]] = value
        return out

    places: list[tuple[str, ...]] = [("reading",), ("scheme",), ("signature",)]
    places += [("reading", k) for k in ("device_id", "seq", "ts_ms", "lot_id", "metrics")]
    places += [("reading", "metrics", k) for k in sub["reading"]["metrics"]]
    new_places = st.text(max_size=12).flatmap(
        lambda name: st.sampled_from([(name,), ("reading", name), ("reading", "metrics", name)])
    )
    return st.tuples(st.sampled_from(places) | new_places, st.one_of(st.just(_DELETE), json_values)).map(
        lambda pv: at(*pv)
    )


_DELETE = object()


def test_random_damage_to_a_submission_is_refused_as_device_attestation_says(
    lenient: TestClient, ledger: LedgerService, consortium: TestConsortium
) -> None:
    """The service's verdict on an arbitrarily damaged submission is the one device_attestation (the
    spec's reference code) gives: the same error code for a malformed one, a signature error for a
    well-formed one that no longer matches its signature. Never a 5xx, nothing stored."""
    domain = consortium.domain
    signer = consortium.enroll("SN-DMG-1", "p256")
    enrolled = {"SN-DMG-1", "SN-DMG-2"}
    consortium.enroll("SN-DMG-2", "p256")
    original = signer.sign({"temp_c": 21.5, "good_units": 120}, ts_ms=now_ms() - 1_000, lot_id="LOT-7")
    sub = original.to_json_obj()

    @settings(PROPERTY, max_examples=150)
    @given(damaged=_json_mutation(sub))
    def refused(damaged: dict[str, Any]) -> None:
        try:
            parsed = Submission.from_json_obj(damaged, domain=domain)
        except AttestationError as e:
            expected = e.code if e.code != "supet.error" else "reading.invalid"
        else:
            assume(not (parsed.digest == original.digest and parsed.signature == original.signature))
            expected = "signature." if parsed.reading.device_id in enrolled else "device.unknown"
        r = lenient.post(
            "/v1/readings", content=json.dumps(damaged).encode(), headers={"content-type": "application/json"}
        )
        assert r.status_code == 422, r.text
        assert r.json()["error"]["code"].startswith(expected), (expected, r.text)

    refused()
    assert stored(ledger) == NOTHING


def test_integer_metric_values_beyond_int64_keep_their_digest(
    client: TestClient, ledger: LedgerService, consortium: TestConsortium
) -> None:
    device = consortium.enroll("SN-BIGINT-1", "p256")
    for i, value in enumerate([2**64, -(2**63) - 1, 10**30, INT_VALUE_MAX]):
        sub = device.sign({"units": value}, ts_ms=now_ms() - 1_000 + i)
        r = client.post("/v1/readings", json=sub.to_json_obj())
        assert r.status_code == 201, (value, r.text)
        assert r.json()["digest"] == "0x" + sub.digest.hex()


# ---------------------------------------------------------------------------------------------- schemathesis

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
#: Headers the transport adds that mean nothing in-process.
_DROP_HEADERS = {"connection", "accept-encoding", "content-length"}


def _send(client: TestClient, case: Any) -> Any:
    kwargs = case.as_transport_kwargs(base_url="http://testserver")
    headers = {k: v for k, v in (kwargs.get("headers") or {}).items() if k.lower() not in _DROP_HEADERS}
    if "json" in kwargs:
        content: bytes | None = json.dumps(kwargs["json"]).encode()  # NaN stays NaN: the API must refuse it
    else:
        data = kwargs.get("data")
        content = data.encode() if isinstance(data, str) else data
    try:
        request = client.build_request(
            kwargs["method"],
            kwargs["url"],
            params=kwargs.get("params") or None,
            headers=headers,
            content=content,
        )
    except (UnicodeEncodeError, ValueError):
        assume(False)  # not expressible as an HTTP request (e.g. a non-latin-1 header)
    return client.send(request)


@functools.cache
def _operations() -> list[APIOperation]:
    """The operations of the service's OpenAPI document (building it needs no running service; the
    document does not depend on the service, so it is built and parsed once per process)."""
    schema = schemathesis.openapi.from_dict(create_app().openapi())
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result
        operations.append(result.ok())
    return operations


def _operation(label: str) -> APIOperation:
    (op,) = [op for op in _operations() if op.label == label]
    return op


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, LedgerService]]:
    """One running service for every operation the fuzzer tries (a lenient client: a crash is a 500, not
    an exception), with the documented example's device enrolled so that its bodies reach the checks.

    Shared by the ~65 operations: a service built, started and enrolled for each cost about a quarter of
    this module's CPU. The fuzzer stores nothing (its readings cannot be validly signed, and each
    operation asserts the store still empty), so each operation meets the same state as with a service of
    its own; an answer that depended on what an earlier operation's requests left would be a finding."""
    tmp = tmp_path_factory.mktemp("fuzz")
    urls = database_url("sqlite", tmp)
    with deployed_embedded("DeviceRegistryHarness") as (chain, deployment):
        settings = Settings(
            database_url=next(urls),
            data_dir=tmp,
            verify_workers=0,
            anchoring=False,
            registry_refresh_seconds=0,
        )
        service = LedgerService.build(settings, chain=chain, deployment=deployment)
        try:
            with TestClient(create_app(service=service)) as client:
                TestConsortium(chain, deployment, registry="harness").enroll("SN-P256-0001", "p256")
                yield TestClient(client.app, raise_server_exceptions=False), service
        finally:
            service.stop()
    next(urls, None)


@pytest.mark.parametrize("label", [op.label for op in _operations()])
def test_schemathesis_fuzz(fuzzed: tuple[TestClient, LedgerService], label: str) -> None:
    """One operation of the OpenAPI document, with schema-valid and schema-violating inputs: no 5xx (503
    included: the database is up), the status code documented, the body as documented where documented;
    and nothing stored (fuzzed readings cannot be validly signed)."""
    lenient, ledger = fuzzed
    op = _operation(label)
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

        @settings(
            # 15 a mode for each of the ~65 operations (25 before: this module was the suite's costliest
            # file, 128 CPU-s; derandomized, so each run tries the same cases), 50 for the ingest
            max_examples=50 if label == "POST /v1/readings" else 15,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=op.as_strategy(generation_mode=mode))
        def conforms(case: Any) -> None:
            response = _send(lenient, case)
            case.validate_response(response, checks=CHECKS)

        try:
            conforms()
        except Unsatisfiable:
            if mode is GenerationMode.POSITIVE:
                raise
            # no schema-violating request exists for this operation (no parameters, or only free strings)
    assert stored(ledger) == NOTHING


def test_proof_404_is_the_documented_body(lenient: TestClient, ledger: LedgerService) -> None:
    op = _operation("GET /v1/readings/{digest}/proof")
    sign_client_in(lenient, dev_accounts(2)[1])  # signed in: the policy lets the lookup through
    for digest in ("0x12", "0x" + "00" * 32):
        case = op.Case(path_parameters={"digest": digest})
        response = _send(lenient, case)
        assert response.status_code == 404
        case.validate_response(response, checks=CHECKS)


def test_a_body_that_is_not_utf8_gets_the_error_envelope(lenient: TestClient, ledger: LedgerService) -> None:
    with_body = [
        op
        for op in _operations()
        if "application/json" in (op.definition.raw.get("requestBody") or {}).get("content", {})
    ]
    assert len(with_body) > 1
    failed = []
    for op in with_body:
        path = {p.name: "x" for p in op.path_parameters}
        r = lenient.request(
            op.method.upper(),
            op.path.format(**path),
            content=b'{"x": "\xff"}',  # invalid UTF-8 inside a string
            headers={"content-type": "application/json", "authorization": "Bearer x"},
        )
        documented = set(op.definition.raw["responses"])
        if str(r.status_code) not in documented or "error" not in r.json():
            failed.append(f"{op.label}: {r.status_code} {r.text}")
    assert not failed, failed
