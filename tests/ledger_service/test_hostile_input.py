"""Hostile input against every POST route, over HTTP and MQTT (issue 11, findings 1, 3, 7 and 9).

Each case must get a typed 4xx (``{"error": {"code", "message"}}``) or, over MQTT, an error receipt or a
dead letter; the process must survive; nothing may be stored; ``/healthz`` must keep answering fast.

- In process (TestClient, every POST route found by walking ``app.routes``, so a new route is covered
  without touching this file; authenticated and not): nesting at every depth with and without big
  numbers, duplicate and huge keys, huge numbers, NaN/Infinity, bad UTF-8, oversized and chunked bodies;
  readings with control and unicode characters in ids and names (Hypothesis), values beyond int256
  after x10^6, -0, thousands of metrics, a duplicated ``metrics``.
- Against a real ``supet serve`` (a subprocess, so a segfault shows as a dead process): the bodies that
  killed it (150,000 ``[`` around a 19-digit number) on every POST route, a 64 MiB body announced,
  chunked and slow bodies, with ``/healthz`` probed during the attack; MQTT poison messages with
  ``/readyz`` probed; and SIGKILL of the server, after which its signature workers must exit.

SQLite only: refusals happen before any database work (the database-specific paths of ingest are pinned
by test_rejections.py on both databases).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import paho.mqtt.client as paho
import pytest
from eth_account.messages import encode_defunct
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from sqlalchemy import create_engine, func, select
from sqlmodel import SQLModel
from support import TestConsortium, database_url, now_ms, require

from contracts.anvil import free_port
from contracts.chain import dev_accounts
from ledger_service.api import create_app
from ledger_service.api.errors import http_status
from ledger_service.config import Settings
from ledger_service.jsonio import MAX_DEPTH, BodyDecodeError, loads_strict, nesting_depth
from ledger_service.service import LedgerService

SUPET = Path(sys.executable).with_name("supet")
#: The body that segfaulted the service (issue 11, finding 1): 300 KB.
CRASH_BODY = b"[" * 150_000 + b"1234567890123456789" + b"]" * 150_000
#: Codes a refusal of a hostile body may carry, by status.
TYPED = {400, 401, 403, 404, 405, 408, 409, 413, 422}
EXAMPLES = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.fixture
def db_url(tmp_path: Path) -> Iterator[str]:
    """SQLite only, for every test of this module (overrides the conftest's two-database fixture)."""
    yield from database_url("sqlite", tmp_path)


# ------------------------------------------------------------------------------------------------ routes


def post_routes(app: Any) -> list[str]:
    """Every POST path of the app, walking included routers (FastAPI keeps them nested)."""
    found: list[str] = []

    def walk(routes: list[Any], prefix: str) -> None:
        for route in routes:
            inner = getattr(route, "original_router", None)
            if inner is not None:
                walk(inner.routes, prefix + route.include_context.prefix)
            elif "POST" in (getattr(route, "methods", None) or ()):
                found.append(prefix + route.path)

    walk(list(app.routes), "")
    documented = {p for p, ops in app.openapi()["paths"].items() if "post" in ops}
    assert documented <= set(found), f"routes the walk missed: {documented - set(found)}"
    return sorted(set(found))


def concrete(path: str) -> str:
    """A path template with every parameter filled (a refusal must come before any lookup)."""
    out = path
    while "{" in out:
        start = out.index("{")
        out = out[:start] + "x" + out[out.index("}", start) + 1 :]
    return out


def nested(depth: int, inner: bytes = b"1", *, objects: bool = False) -> bytes:
    if objects:
        return b'{"a":' * depth + inner + b"}" * depth
    return b"[" * depth + inner + b"]" * depth


#: Bodies no strict JSON reader may accept (all under 64 KiB unless named "big").
HOSTILE_JSON: dict[str, bytes] = {
    **{f"nested_{d}": nested(d) for d in (MAX_DEPTH + 1, 100, 1_000, 20_000)},
    **{f"nested_{d}_bignum": nested(d, b"1234567890123456789") for d in (MAX_DEPTH + 1, 20_000)},
    "nested_objects_10000_bignum": nested(10_000, b"1" * 30, objects=True),
    "nested_mixed_deep_in_valid": b'{"address": ' + nested(5_000, b'"0x00"') + b"}",
    "big_crash_body": CRASH_BODY,
    "duplicate_key": b'{"address": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", "address": "x"}',
    "duplicate_key_deep": b'{"a": {"b": {"c": 1, "c": 2}}}',
    "number_5000_digits": b'{"address": ' + b"9" * 5_000 + b"}",
    "number_101_digits": b'{"amount": ' + b"9" * 101 + b"}",
    "nan": b'{"amount": NaN}',
    "infinity": b'{"amount": Infinity}',
    "minus_infinity": b'{"amount": -Infinity}',
    "overflow": b'{"amount": 1e400}',
    "not_utf8": b'{"address": "\xff\xfe"}',
    "lone_surrogate": b'{"address": "\\ud800"}',
}


def cap_for(path: str, settings: Settings) -> int:
    return settings.max_body_bytes if path == "/v1/readings" else settings.max_request_bytes


def expected(path: str, body: bytes, settings: Settings) -> tuple[int, str]:
    if len(body) > cap_for(path, settings):
        return 413, "request.too_large"
    return 400, "request.bad_json"


def table_rows(engine: Any) -> dict[str, int]:
    """Rows of every table of the store: a refused request changes none of them."""
    out: dict[str, int] = {}
    with engine.connect() as conn:
        for table in SQLModel.metadata.sorted_tables:
            try:
                out[table.name] = conn.execute(select(func.count()).select_from(table)).scalar_one()
            except Exception:  # a table of another part not created in this store
                conn.rollback()
    return out


def sign_in(http: Callable[..., Any], account: Any) -> str:
    """A bearer token for ``account`` by the EIP-4361 sign-in (``http`` posts and returns a response)."""
    challenge = http("/v1/auth/challenge", json={"address": account.address})
    assert challenge.status_code == 200, challenge.text
    message = challenge.json()["message"]
    signature = account.sign_message(encode_defunct(text=message)).signature.to_0x_hex()
    r = http("/v1/auth/token", json={"message": message, "signature": signature})
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def assert_typed(r: Any, status: int | None = None, code: str | None = None) -> None:
    assert r.status_code in TYPED, f"{r.request.method} {r.request.url.path}: {r.status_code} {r.text[:300]}"
    err = r.json()["error"]
    assert isinstance(err["code"], str) and err["code"] and isinstance(err["message"], str) and err["message"]
    if status is not None:
        assert (r.status_code, err["code"]) == (status, code), (r.request.url.path, r.text[:300])


# ------------------------------------------------------------------------------------------- the decoder


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**90), max_value=10**90)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.sampled_from('ab"\\[]{}:,\u00e9\u2028\U0001f600 '), max_size=8),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(st.sampled_from('k"\\[{:'), max_size=4), children, max_size=4)
    ),
    max_leaves=30,
)


def depth_of(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((depth_of(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth_of(v) for v in value), default=0)
    return 0


@EXAMPLES
@given(value=json_values, wrap=st.integers(0, 40))
def test_strict_decoder_is_exact_and_measures_depth(value: Any, wrap: int) -> None:
    """Any JSON value round-trips exactly (big integers too); nesting is measured outside strings."""
    doc = value
    for _ in range(wrap):
        doc = [doc]
    body = json.dumps(doc, ensure_ascii=False).encode()
    assert nesting_depth(body) == depth_of(doc)
    if depth_of(doc) > MAX_DEPTH:
        with pytest.raises(BodyDecodeError) as info:
            loads_strict(body)
        assert info.value.code == "request.bad_json" and "nests" in info.value.message
    else:
        assert loads_strict(body) == doc


@pytest.mark.parametrize("name", sorted(HOSTILE_JSON))
def test_strict_decoder_refuses_hostile_json_with_one_typed_error(name: str) -> None:
    body = HOSTILE_JSON[name]
    with pytest.raises(BodyDecodeError) as info:
        loads_strict(body)
    assert info.value.code == "request.bad_json" and http_status(info.value) == 400


def test_the_crash_body_is_refused_in_a_process_that_raised_the_recursion_limit() -> None:
    """Finding 1 in isolation: with py_ecc's recursion limit, the old decoder segfaulted here."""
    code = (
        "import sys; import ledger_service.api; assert sys.getrecursionlimit() >= 100_000\n"
        "from ledger_service.jsonio import loads_strict, BodyDecodeError\n"
        "body = b'[' * 150_000 + b'1234567890123456789' + b']' * 150_000\n"
        "try:\n    loads_strict(body)\nexcept BodyDecodeError as e:\n    print(e.code)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-2000:]}"
    assert done.stdout.strip() == "request.bad_json"


# ------------------------------------------------------------------------------------------------ in-process


@pytest.fixture
def small_ledger(ledger: LedgerService, monkeypatch: pytest.MonkeyPatch) -> LedgerService:
    """The ledger with a 1 MiB ingest cap (the crash body fits; an oversized body stays cheap)."""
    monkeypatch.setattr(ledger, "settings", ledger.settings.model_copy(update={"max_body_bytes": 1 << 20}))
    return ledger


def test_every_post_route_refuses_hostile_json_before_auth(
    client: TestClient, small_ledger: LedgerService, consortium: TestConsortium
) -> None:
    settings = small_ledger.settings
    routes = post_routes(client.app)
    assert {"/v1/readings", "/v1/auth/challenge", "/v1/auth/token"} <= set(routes)
    assert any(p.endswith("/prepare") for p in routes), routes
    token = sign_in(client.post, consortium.factory)
    before = table_rows(small_ledger.engine)
    for path in routes:
        url = concrete(path)
        for auth in ({}, {"Authorization": f"Bearer {token}"}):
            for name, body in HOSTILE_JSON.items():
                headers = {"content-type": "application/json", **auth}
                r = client.post(url, content=body, headers=headers)
                status, code = expected(path, body, settings)
                assert_typed(r, status, code)
                assert r.status_code != 401, f"{name} on {path} reached authentication"
            # oversized: announced by Content-Length, and chunked (no Content-Length)
            over = b"[" + b"0," * (cap_for(path, settings) // 2) + b"0]"
            assert_typed(client.post(url, content=over, headers=auth), 413, "request.too_large")
            chunked = client.post(url, content=iter([over[:1000], over[1000:]]), headers=auth)
            assert "content-length" not in chunked.request.headers
            assert_typed(chunked, 413, "request.too_large")
    assert table_rows(small_ledger.engine) == before
    assert client.get("/healthz").status_code == 200


def test_a_form_body_is_not_read_as_json_but_still_capped(client: TestClient, ledger: LedgerService) -> None:
    """The portal's forms are not JSON: not decoded here, but held to the same cap."""
    cap = ledger.settings.max_request_bytes
    r = client.post(
        "/portal/logout",
        content=b"a=" + b"b" * (cap + 1),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert_typed(r, 413, "request.too_large")


def signed_body(signer: Any, metrics: dict[str, Any], **reading: Any) -> tuple[dict[str, Any], str]:
    sub = signer.sign(metrics, ts_ms=now_ms() - 1000, **reading)
    return sub.to_json_obj(), "0x" + sub.digest.hex()


def test_readings_with_hostile_values_get_typed_refusals(
    client: TestClient, ledger: LedgerService, consortium: TestConsortium
) -> None:
    dev = consortium.enroll("SN-HOSTILE-1", "p256")
    ledger.registry.refresh()  # the mirror's copy of the enrollment is not the request's doing
    before = table_rows(ledger.engine)
    good, _ = signed_body(dev, {"t": 1})
    cases: dict[str, Any] = {}
    limit = (2**255 - 1) // 10**6
    for name, value in (("int256_over", limit + 1), ("int256_under", -limit - 2), ("huge_int", 10**99)):
        body = json.loads(json.dumps(good))
        body["reading"]["metrics"] = {"t": value}
        cases[name] = json.dumps(body).encode()
    for n in (33, 5_000):
        body = json.loads(json.dumps(good))
        body["reading"]["metrics"] = {f"m{i}": i for i in range(n)}
        cases[f"metrics_{n}"] = json.dumps(body).encode()
    body = json.loads(json.dumps(good))
    body["reading"]["metrics"] = {"k" * 60_000: 1}
    cases["huge_metric_name"] = json.dumps(body).encode()
    cases["huge_extra_key"] = json.dumps({**good, "x" * 60_000: 1}).encode()
    for name, raw in cases.items():
        r = client.post("/v1/readings", content=raw, headers={"content-type": "application/json"})
        assert_typed(r)
        assert r.status_code in (400, 413, 422), (name, r.text[:300])
    # the same cases in a batch: one result per item, each refused
    batch = b'{"readings": [' + b",".join(v for k, v in cases.items() if not k.startswith("huge")) + b"]}"
    r = client.post("/v1/readings", content=batch, headers={"content-type": "application/json"})
    assert r.status_code == 200 and r.json()["accepted"] == 0, r.text[:500]
    assert table_rows(ledger.engine) == before


def test_duplicate_metrics_key_is_refused_and_minus_zero_is_zero(
    client: TestClient, ledger: LedgerService, consortium: TestConsortium
) -> None:
    """Finding 9: ``metrics`` twice was accepted, the last value signed and stored."""
    dev = consortium.enroll("SN-DUP-1", "p256")
    ledger.registry.refresh()  # the mirror's copy of the enrollment is not the request's doing
    obj, _ = signed_body(dev, {"t": 2})
    raw = json.dumps(obj).encode()
    twice = raw.replace(b'"metrics": {"t": 2}', b'"metrics": {"t": 1}, "metrics": {"t": 2}')
    assert twice != raw
    before = table_rows(ledger.engine)
    r = client.post("/v1/readings", content=twice, headers={"content-type": "application/json"})
    assert_typed(r, 400, "request.bad_json")
    assert "twice" in r.json()["error"]["message"]
    batch = b'{"readings": [' + twice + b"]}"
    assert_typed(client.post("/v1/readings", content=batch), 400, "request.bad_json")
    assert table_rows(ledger.engine) == before
    # -0 and -0.0 are 0 to every parser: the device's digest for 0 is the stored one
    zero, zero_digest = signed_body(dev, {"z": 0})
    for minus in (b'"z": -0}', b'"z": -0.0}'):
        raw = json.dumps(zero).encode().replace(b'"z": 0}', minus)
        r = client.post("/v1/readings", content=raw, headers={"content-type": "application/json"})
        assert r.status_code == 201 and r.json()["digest"] == zero_digest, r.text


control_or_odd = st.text(
    st.characters(
        blacklist_categories=("Cs",),
        whitelist_categories=("Cc", "Cf", "Zs", "Zl", "Zp", "Mn", "So", "Lo"),
    ),
    min_size=1,
    max_size=80,
)


def test_control_and_unicode_characters_in_ids_and_names(
    client: TestClient, ledger: LedgerService, consortium: TestConsortium
) -> None:
    dev = consortium.enroll("SN-UNI-1", "p256")
    ledger.registry.refresh()  # the mirror's copy of the enrollment is not the request's doing
    good, _ = signed_body(dev, {"t": 1})
    before = table_rows(ledger.engine)

    @EXAMPLES
    @given(text=control_or_odd, where=st.sampled_from(["device_id", "lot_id", "metric", "scheme"]))
    def refused(text: str, where: str) -> None:
        body = json.loads(json.dumps(good))
        if where == "metric":
            body["reading"]["metrics"] = {text: 1}
        elif where == "scheme":
            body["scheme"] = text
        else:
            body["reading"][where] = text
        r = client.post(
            "/v1/readings", content=json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")
        )
        assert_typed(r)
        # a changed field no longer matches the device's signature, or names no enrolled device
        assert r.status_code in (400, 404, 409, 422), r.text[:300]

    refused()
    assert table_rows(ledger.engine) == before


# ------------------------------------------------------------------------------------------------ server


class Server:
    """``supet serve`` on the embedded chain in a subprocess of its own session."""

    def __init__(self, tmp: Path, **env: str) -> None:
        self.dir = tmp
        self.port = free_port()
        self.log = tmp / "serve.log"
        base = {k: v for k, v in os.environ.items() if not k.startswith("SUPET_")}
        base.update(
            SUPET_DATABASE_URL=f"sqlite:///{tmp}/ledger.db",
            SUPET_DEPLOYMENT=str(tmp / "deployment.json"),
            SUPET_MAX_BODY_BYTES=str(1 << 20),
            SUPET_REQUEST_BODY_TIMEOUT_SECONDS="1",
            SUPET_REGISTRY_REFRESH_SECONDS="0",
            SUPET_BATCH_MAX_SECONDS="0.5",
            SUPET_PUBLIC_URL=f"http://127.0.0.1:{self.port}",
            **env,
        )
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [str(SUPET), "serve", "--port", str(self.port), "--log-level", "warning"],
                env=base,
                cwd=tmp,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 90
        while True:
            assert self.proc.poll() is None, f"supet serve exited with {self.proc.returncode}: {self.tail()}"
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"supet serve did not start: {self.tail()}"
            time.sleep(0.1)
        self.http = httpx.Client(base_url=self.url, timeout=30)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""

    def rows(self) -> dict[str, int]:
        engine = create_engine(f"sqlite:///{self.dir}/ledger.db")
        try:
            return table_rows(engine)
        finally:
            engine.dispose()

    def stop(self) -> None:
        self.http.close()
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)


class Prober:
    """Asks ``url`` every 20 ms in a thread and keeps each answer's latency (seconds) and status."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with httpx.Client(timeout=5) as c:
            while not self._stop.wait(0.02):
                start = time.perf_counter()
                try:
                    status = c.get(self.url).status_code
                except httpx.HTTPError:
                    status = 0
                self.samples.append((time.perf_counter() - start, status))

    def stop(self) -> list[tuple[float, int]]:
        self._stop.set()
        self._thread.join(10)
        return self.samples


def assert_responsive(samples: list[tuple[float, int]], what: str) -> None:
    """Every probe answered 200; 9 in 10 within 250 ms, none over 2 s.

    The margin is for the CPU, not the server: the suite runs on two workers over 2 shared cores, so
    the other worker's test competes with this one; a server blocked by the attack takes seconds.
    """
    assert len(samples) >= 5, f"too few probes during {what}"
    latencies = sorted(s for s, _ in samples)
    assert {status for _, status in samples} == {200}, f"{what}: {samples}"
    p90 = latencies[int(0.9 * (len(latencies) - 1))]
    assert p90 < 0.25 and latencies[-1] < 2.0, (
        f"{what}: /healthz p50 {statistics.median(latencies) * 1000:.0f} ms, p90 {p90 * 1000:.0f} ms, "
        f"max {latencies[-1] * 1000:.0f} ms"
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    s = Server(tmp_path_factory.mktemp("served"), SUPET_VERIFY_WORKERS="0")
    try:
        yield s
    finally:
        s.stop()


def routes_of_the_service() -> list[str]:
    return post_routes(create_app(Settings(database_url="sqlite:///:memory:")))


@pytest.mark.slow
def test_the_crash_bodies_leave_a_real_server_alive(server: Server) -> None:
    """Finding 1: one anonymous 300 KB body segfaulted the process; now every route answers 400/413."""
    token = sign_in(server.http.post, dev_accounts(1)[0])
    before = server.rows()
    settings = Settings(max_body_bytes=1 << 20)
    prober = Prober(f"{server.url}/healthz")
    try:
        for path in routes_of_the_service():
            for auth in ({}, {"Authorization": f"Bearer {token}"}):
                for name in (
                    "big_crash_body",
                    "nested_20000_bignum",
                    "nested_objects_10000_bignum",
                    "number_5000_digits",
                    "duplicate_key",
                    "nan",
                ):
                    body = HOSTILE_JSON[name]
                    r = server.http.post(
                        concrete(path), content=body, headers={"content-type": "application/json", **auth}
                    )
                    status, code = expected(path, body, settings)
                    assert_typed(r, status, code)
                    assert server.alive(), f"{name} on {path} killed the server: {server.tail()}"
    finally:
        samples = prober.stop()
    assert_responsive(samples, "the crash bodies")
    assert server.rows() == before


def raw_request(port: int, head: bytes, parts: list[bytes], pause: float = 0.0) -> tuple[float, bytes]:
    """Send a request by hand (pausing between parts); the seconds until the answer, and the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=15) as sock:
        start = time.perf_counter()
        sock.sendall(head)
        for i, part in enumerate(parts):
            if i:
                time.sleep(pause)
            try:
                sock.sendall(part)
            except OSError:  # the server answered and closed: read its answer
                break
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        return time.perf_counter() - start, answer


@pytest.mark.slow
def test_oversized_chunked_and_slow_bodies_on_a_real_server(server: Server) -> None:
    """Finding 7: a 64 MB body was read and parsed whole; a slow body was held with no timeout."""
    before = server.rows()
    prober = Prober(f"{server.url}/healthz")
    try:
        # announced 64 MiB: refused on the Content-Length, nothing read
        head = (
            b"POST /v1/auth/challenge HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 67108864\r\n\r\n"
        )
        took, answer = raw_request(server.port, head, [b"{" * 1000])
        assert answer.startswith(b"HTTP/1.1 413") and b"request.too_large" in answer, answer[:300]
        # chunked, no length: refused once past 64 KiB, long before the 64 MiB the client would send
        head = (
            b"POST /v1/auth/challenge HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        chunk = b"4000\r\n" + b" " * 0x4000 + b"\r\n"
        took, answer = raw_request(server.port, head, [chunk] * 4096)
        assert answer.startswith(b"HTTP/1.1 413") and b"request.too_large" in answer, answer[:300]
        # slow: 10 bytes of 100, then nothing: 408 after the 1 s body timeout (test setting)
        for path in ("/v1/auth/challenge", "/v1/readings"):
            head = (
                f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                "Content-Length: 100\r\n\r\n"
            ).encode()
            took, answer = raw_request(server.port, head, [b'{"address"'])
            assert answer.startswith(b"HTTP/1.1 408") and b"request.timeout" in answer, answer[:300]
            assert 0.9 < took < 3, took
        # slow chunked: one byte a second never finishes a body
        head = b"POST /v1/readings HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        took, answer = raw_request(server.port, head, [b"1\r\n \r\n"] * 5, pause=0.5)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:300]
        # an oversized ingest batch by httpx: 413 with the envelope
        r = server.http.post("/v1/readings", content=b"[" + b"0," * (1 << 20) + b"0]")
        assert_typed(r, 413, "request.too_large")
        assert server.alive()
    finally:
        samples = prober.stop()
    assert_responsive(samples, "oversized and slow bodies")
    assert server.rows() == before


@pytest.mark.mqtt
@pytest.mark.slow
def test_mqtt_poison_messages_on_a_real_server(tmp_path: Path) -> None:
    """Finding 3 end to end: poison messages get error receipts; /readyz stays 200; nothing stored."""
    require(_broker_up(), "no MQTT broker on 127.0.0.1:1883")
    server = Server(
        tmp_path,
        SUPET_VERIFY_WORKERS="0",
        SUPET_MQTT_URL="mqtt://127.0.0.1:1883",
        SUPET_MQTT_CLIENT_ID=f"hostile-{uuid.uuid4().hex[:8]}",
        # a group of its own: the shared broker may hold sessions of killed servers in the default
        # group, which Mosquitto keeps giving their turns (docs/deployment.md section 2)
        SUPET_MQTT_SHARE_GROUP=f"hostile-{uuid.uuid4().hex[:8]}",
    )
    device = f"SN-HOSTILE-{uuid.uuid4().hex[:6]}"
    receipts: list[dict[str, Any]] = []
    subscribed = threading.Event()
    side = paho.Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
    side.on_connect = lambda c, *_: c.subscribe(f"devices/{device}/receipts", qos=1)
    side.on_subscribe = lambda *a: subscribed.set()
    side.on_message = lambda c, u, m: receipts.append(orjson.loads(m.payload))
    side.connect("127.0.0.1", 1883)
    side.loop_start()
    try:
        assert subscribed.wait(10)
        deadline = time.monotonic() + 15
        while server.http.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, server.http.get("/readyz").text
            time.sleep(0.2)
        before = server.rows()
        prober = Prober(f"{server.url}/readyz")
        payloads = [
            HOSTILE_JSON["nested_20000_bignum"],
            CRASH_BODY[:30_000] + CRASH_BODY[-30_000:],
            b'{"reading": {"device_id": "' + device.encode() + b'", "metrics": {"n": ' + b"7" * 5000 + b"}}}",
            b'{"reading": {"metrics": {"a": 1}, "metrics": {"a": 2}}}',
            b'{"reading": {"metrics": {"a": NaN}}}',
            b'{"reading": {"device_id": "' + device.encode() + b'", "seq": 1, "ts_ms": 1, "lot_id": null, '
            b'"metrics": {"t\\u0000": 1}}, "scheme": "p256", "signature": "0x00"}',
            b'{"reading": {"device_id": "' + device.encode() + b'", "seq": 1, "ts_ms": 1, "lot_id": null, '
            b'"metrics": {'
            + b",".join(b'"m%d": %d' % (i, i) for i in range(3000))
            + b'}}, "scheme": "p256", '
            b'"signature": "0x00"}',
        ]
        try:
            for p in payloads:
                side.publish(f"devices/{device}/readings", p, qos=1).wait_for_publish(10)
            deadline = time.monotonic() + 60
            while len(receipts) < len(payloads):
                assert time.monotonic() < deadline, f"{len(receipts)} receipts: {receipts}"
                time.sleep(0.05)
            time.sleep(1)
        finally:
            samples = prober.stop()
        assert len(receipts) == len(payloads), receipts  # each answered once: acknowledged
        codes = [r["error"]["code"] for r in receipts]
        assert codes[:5] == ["request.bad_json"] * 5, codes
        assert all(c.startswith(("reading.", "request.", "signature.", "device.")) for c in codes), codes
        assert {s for _, s in samples} == {200}, "readiness went down during the MQTT attack"
        assert server.alive() and server.rows() == before
        metrics = server.http.get("/metrics").text
        assert 'supet_mqtt_dead_letters_total{reason="pipeline_error"} 0.0' in metrics
    finally:
        side.disconnect()
        side.loop_stop()
        server.stop()


def _broker_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 1883), timeout=1):
            return True
    except OSError:
        return False


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(c) for c in (task / "children").read_text().split()]
    return out


def _running(pid: int) -> bool:
    """Alive and not a zombie (an exited child nobody reaped yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.slow
def test_worker_process_dies_with_a_killed_server(tmp_path: Path) -> None:
    """Finding 1's side note: after the crash, two ~290 MB signature workers were left running. The
    signatures are checked in threads now; the one worker process left (the anchoring's Merkle trees,
    started with the service) must not outlive a killed server either."""
    require(Path("/proc/self/task").exists(), "needs Linux /proc")
    server = Server(tmp_path, SUPET_VERIFY_WORKERS="2")
    try:
        deadline = time.monotonic() + 20
        workers: list[int] = []
        while len(workers) < 1:
            workers = [
                c
                for c in _children(server.proc.pid)
                if "spawn_main" in Path(f"/proc/{c}/cmdline").read_text()
            ]
            assert time.monotonic() < deadline, f"no worker process: {_children(server.proc.pid)}"
            time.sleep(0.2)
        os.kill(server.proc.pid, signal.SIGKILL)  # the server only: not its process group
        server.proc.wait(10)
        deadline = time.monotonic() + 10
        while any(_running(w) for w in workers):
            assert time.monotonic() < deadline, f"workers still running after the server died: {workers}"
            time.sleep(0.1)
    finally:
        for w in workers if "workers" in locals() else []:
            if _running(w):
                os.kill(w, signal.SIGKILL)
        server.stop()


def test_slow_headers_hold_at_most_the_connection_limit_and_big_headers_are_refused(tmp_path: Path) -> None:
    """Slowloris: connections that never finish their headers take at most SUPET_MAX_CONNECTIONS
    places; beyond it a request is answered 503 at once (not queued), and the service serves again as
    soon as they go. Request line plus headers over 16 KiB are refused, not buffered."""
    server = Server(tmp_path, SUPET_VERIFY_WORKERS="0", SUPET_MAX_CONNECTIONS="4")
    held: list[socket.socket] = []
    try:
        for _ in range(4):
            s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # headers never finished
            held.append(s)
        time.sleep(0.3)
        t = time.perf_counter()
        busy = httpx.get(f"{server.url}/healthz", timeout=5)
        assert busy.status_code == 503, busy.text
        assert time.perf_counter() - t < 1.0
        for s in held:
            s.close()
        held.clear()
        deadline = time.monotonic() + 5
        while httpx.get(f"{server.url}/healthz", timeout=5).status_code != 200:
            assert time.monotonic() < deadline, "the service did not serve again after the slow clients left"
            time.sleep(0.1)

        # a header line that never ends: cut off once the unfinished head passes 64 KiB
        # (plain httptools, uvicorn's default parser, buffered 200 MB of it: +300 MB resident)
        sent = 0
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
            with pytest.raises(OSError):
                while sent < 64 * 1024 * 1024:
                    s.sendall(b"a" * 8192)
                    sent += 8192
                    time.sleep(0.0005)  # let the server read as it comes
        assert sent < 4 * 1024 * 1024, f"the server read {sent} bytes of one unfinished header"
        assert server.alive()
        assert httpx.get(f"{server.url}/healthz", timeout=5).status_code == 200
    finally:
        for s in held:
            s.close()
        server.stop()
