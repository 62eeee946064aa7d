"""``/metrics`` and ``/readyz``: the counters move by exactly what was submitted and anchored; chain,
database and broker health are probed for real (a stopped anvil, a database file that is no
longer a database, a broker port nobody listens on).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from embedded_pool import deployed_embedded
from fastapi.testclient import TestClient
from faults import Fleet, deploy_on, in_process_service, own_anvil, wait_for
from prometheus_client.parser import text_string_to_metric_families
from reads import bearer
from support import TestConsortium, now_ms, require

from device_attestation.keys import DeviceKey
from device_attestation.sdk import DeviceSigner
from ledger_service.api import create_app
from ledger_service.config import Settings
from ledger_service.metrics import LedgerMetrics
from ledger_service.service import LedgerService

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(client: TestClient) -> Samples:
    """Every sample of ``/metrics``, keyed by (sample name, labels)."""
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain"), r.text
    out: Samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_ingest_and_anchoring_counters(
    client: TestClient, ledger: LedgerService, consortium: TestConsortium
) -> None:
    dev = consortium.enroll("SN-MET-1", "p256")
    before = scrape(client)
    assert value(before, "supet_readings_accepted_total", source="http") == 0
    assert value(before, "supet_anchor_backlog_readings") == 0

    good = [dev.sign({"temp_c": 20.0 + i}, ts_ms=now_ms() - 1000) for i in range(3)]
    future = dev.sign({"temp_c": 1.0}, ts_ms=now_ms() + 3_600_000)  # an hour ahead: refused
    # a device nobody enrolled, signing for the same domain
    stranger = DeviceSigner(device_id="SN-NOBODY", key=DeviceKey.generate("p256"), domain=consortium.domain)
    unknown = stranger.sign({"temp_c": 1.0}, ts_ms=now_ms() - 1000)
    body = {"readings": [s.to_json_obj() for s in [*good, future, unknown]]}
    r = client.post("/v1/readings", json=body)
    assert r.status_code == 200 and r.json()["accepted"] == 3 and r.json()["rejected"] == 2, r.text
    # an identical resubmission is answered with its receipt: counted as accepted again
    assert client.post("/v1/readings", json=good[0].to_json_obj()).status_code == 201
    # MQTT submissions go through the same pipeline, labelled by their source
    mqtt = dev.sign({"temp_c": 30.0}, ts_ms=now_ms() - 500)
    assert ledger.pipeline.submit([mqtt.to_json_obj()], source="mqtt")[0].accepted

    mid = scrape(client)
    assert value(mid, "supet_readings_accepted_total", source="http") == 4
    assert value(mid, "supet_readings_accepted_total", source="mqtt") == 1
    assert value(mid, "supet_readings_rejected_total", source="http", code="reading.future_timestamp") == 1
    assert value(mid, "supet_readings_rejected_total", source="http", code="device.unknown") == 1
    assert value(mid, "supet_anchor_backlog_readings") == 4  # 3 + 1 over MQTT: committed, not anchored
    assert value(mid, "supet_batches_anchored_total") == 0

    ledger.anchoring.flush(timeout=30)
    after = scrape(client)
    assert value(after, "supet_anchor_backlog_readings") == 0
    assert value(after, "supet_batches_anchored_total") == 1
    assert value(after, "supet_readings_anchored_total") == 4
    assert value(after, "supet_anchoring_latency_seconds_count") == 1
    assert 0 < value(after, "supet_anchoring_latency_seconds_sum") < 60
    # nothing else moved
    assert value(after, "supet_readings_accepted_total", source="http") == 4
    assert value(after, "supet_readings_rejected_total", source="http", code="device.unknown") == 1

    # HTTP durations by route template, never by raw path
    owner = bearer(client, consortium.factory)  # the device's owner reads its proof
    proof = client.get(f"/v1/readings/0x{good[1].digest.hex()}/proof", headers=owner)
    assert proof.status_code == 200
    timed = scrape(client)
    route = "/v1/readings/{digest}/proof"
    assert (
        value(timed, "supet_http_request_duration_seconds_count", method="GET", route=route, status="200")
        == 1
    )
    assert (
        value(
            timed,
            "supet_http_request_duration_seconds_count",
            method="POST",
            route="/v1/readings",
            status="200",
        )
        == 1
    )
    assert (
        value(
            timed,
            "supet_http_request_duration_seconds_count",
            method="POST",
            route="/v1/readings",
            status="201",
        )
        == 1
    )
    assert not any(f"0x{good[1].digest.hex()}" in str(labels) for _, labels in timed)
    client.get("/no/such/path")
    assert (
        value(
            scrape(client),
            "supet_http_request_duration_seconds_count",
            method="GET",
            route="<unmatched>",
            status="404",
        )
        == 1
    )


def test_each_service_has_its_own_registry() -> None:
    a, b = LedgerMetrics(), LedgerMetrics()
    a.readings_accepted.labels(source="http").inc(5)
    assert b'source="http"' not in b.render()
    assert b'supet_readings_accepted_total{source="http"} 5.0' in a.render()


# ------------------------------------------------------------------------------------ readiness


def test_readiness_reports_each_component(client: TestClient, ledger: LedgerService) -> None:
    r = client.get("/readyz")
    body = r.json()
    assert r.status_code == 200 and body["ready"] is True and body["degraded"] is False, body
    comps = body["components"]
    assert set(comps) == {"chain", "database", "broker"}
    assert comps["chain"]["state"] == "ok" and comps["database"]["state"] == "ok"
    assert comps["broker"]["state"] == "disabled"
    since = comps["database"]["since_ms"]
    assert now_ms() - 60_000 < since <= now_ms()
    time.sleep(0.01)
    again = client.get("/readyz").json()["components"]
    assert again["database"]["since_ms"] == since  # unchanged state: unchanged since
    assert again["database"]["last_ok_ms"] > since
    m = scrape(client)
    assert value(m, "supet_database_up") == 1 and value(m, "supet_chain_up") == 1
    assert value(m, "supet_broker_connected") == 0
    assert value(m, "supet_chain_block") == ledger.chain.block_number()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_database_down_is_not_ready(client: TestClient, ledger: LedgerService, db_url: str) -> None:
    path = Path(db_url.removeprefix("sqlite:///"))
    assert client.get("/readyz").status_code == 200
    ledger.committer.stop()
    ledger.engine.dispose()
    saved = path.with_suffix(".saved")
    path.rename(saved)
    for extra in ("-wal", "-shm"):
        Path(f"{path}{extra}").unlink(missing_ok=True)
    path.write_bytes(b"this is not a database" * 100)
    try:
        r = client.get("/readyz")
        body = r.json()
        assert r.status_code == 503 and body["ready"] is False, body
        assert body["database"].startswith("error: ") and body["components"]["database"]["state"] == "down"
        assert "DatabaseError" in body["components"]["database"]["detail"]
        down_since = body["components"]["database"]["since_ms"]
        assert value(scrape(client), "supet_database_up") == 0
        assert value(scrape(client), "supet_anchor_backlog_readings") == -1  # unknown: said so
    finally:
        ledger.engine.dispose()
        path.unlink()
        saved.rename(path)
    r = client.get("/readyz")
    assert r.status_code == 200 and r.json()["components"]["database"]["since_ms"] >= down_since
    assert r.json()["components"]["database"]["last_ok_ms"] >= down_since


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def mqtt_service(tmp_path: Path) -> Iterator[tuple[LedgerService, int]]:
    with deployed_embedded() as (chain, deployment):  # the process's deployment, rolled back after
        port = free_port()
        settings = Settings(
            database_url=f"sqlite:///{tmp_path}/ledger.db",
            mqtt_url=f"mqtt://127.0.0.1:{port}",
            verify_workers=0,
            anchoring=False,
            registry_refresh_seconds=0,
            health_interval_seconds=0.1,
        )
        service = LedgerService.build(settings, chain=chain, deployment=deployment)
        try:
            yield service, port
        finally:
            service.stop()


@pytest.mark.mqtt
def test_broker_down_is_not_ready_and_up_is(mqtt_service: tuple[LedgerService, int], tmp_path: Path) -> None:
    service, port = mqtt_service
    with TestClient(create_app(service=service)) as client:
        r = client.get("/readyz")
        body = r.json()
        assert r.status_code == 503 and body["ready"] is False, body
        assert body["components"]["broker"]["state"] == "down"
        assert (
            body["components"]["database"]["state"] == "ok" and body["components"]["chain"]["state"] == "ok"
        )
        assert value(scrape(client), "supet_broker_connected") == 0
        mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        require(Path(mosquitto).exists(), "mosquitto is not installed")
        conf = tmp_path / "m.conf"
        conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
        proc = subprocess.Popen(
            [mosquitto, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            wait_for(lambda: client.get("/readyz").status_code == 200, timeout=20, what="broker connected")
            body = client.get("/readyz").json()
            assert body["components"]["broker"]["state"] == "ok" and body["mqtt"] == "ok"
            assert value(scrape(client), "supet_broker_connected") == 1
        finally:
            proc.terminate()
            proc.wait(10)
        wait_for(lambda: client.get("/readyz").status_code == 503, timeout=20, what="broker loss seen")
        assert client.get("/readyz").json()["components"]["broker"]["state"] == "down"


@pytest.mark.anvil
def test_chain_down_reported_but_ready(tmp_path: Path) -> None:
    with own_anvil() as node:
        deployed = deploy_on(node, tmp_path)
        fleet = Fleet(deployed.consortium, 1, seed=5)
        service = in_process_service(
            deployed, f"sqlite:///{tmp_path}/ledger.db", health_interval_seconds=0.1, anchoring=False
        )
        with TestClient(create_app(service=service)) as client:
            # one probe sets the chain's gauges one after another: wait for the last of them, the balance
            def balance_read() -> Samples | None:
                m = scrape(client)
                return m if value(m, "supet_anchor_signer_balance_wei") > 0 else None

            m = wait_for(balance_read, timeout=10, what="chain up, its signer's balance read")
            assert value(m, "supet_chain_up") == 1
            assert value(m, "supet_chain_block") == deployed.chain.block_number() > 0
            last_block = value(m, "supet_chain_block")
            node.stop()
            wait_for(lambda: value(scrape(client), "supet_chain_up") == 0, timeout=10, what="chain down seen")
            m = scrape(client)
            assert value(m, "supet_chain_block") == last_block  # the last block seen stays
            r = client.get("/readyz")
            body = r.json()
            assert r.status_code == 200 and body["ready"] is True and body["degraded"] is True, body
            chain = body["components"]["chain"]
            assert chain["state"] == "down" and "unreachable" in chain["detail"]
            assert chain["since_ms"] > chain["last_ok_ms"] > 0
            # ingest still acknowledges readings
            sub = fleet.sign(1)[0]
            assert client.post("/v1/readings", json=sub.to_json_obj()).status_code == 201
            assert value(scrape(client), "supet_readings_accepted_total", source="http") == 1
            node.start()
            wait_for(lambda: value(scrape(client), "supet_chain_up") == 1, timeout=10, what="chain back")
            assert client.get("/readyz").json()["degraded"] is False


# ------------------------------------------------------------------------------------ the guide


def test_deployment_guide_lists_every_setting() -> None:
    """docs/deployment.md holds exactly the generated settings table: every field, current defaults."""
    from ledger_service.config import settings_markdown

    doc = (Path(__file__).parents[2] / "docs" / "deployment.md").read_text()
    begin, end = "<!-- settings:begin -->\n", "<!-- settings:end -->"
    assert begin in doc and end in doc
    table = doc.split(begin, 1)[1].split(end, 1)[0]
    assert table == settings_markdown(), "regenerate with: python -m ledger_service.config"
    for name in Settings.model_fields:
        assert f"| `SUPET_{name.upper()}` |" in table, name
    # every metric the service exports is documented
    exported = {f.name for f in text_string_to_metric_families(LedgerMetrics().render().decode())}
    for name in exported - {n for n in exported if n.endswith("_created")}:
        assert f"supet_{name.removeprefix('supet_')}" in doc, name


def test_kept_series_count_like_labels_each_time() -> None:
    """The series kept at hand for HTTP durations and accepted readings (issue 17.3) count as
    ``labels()`` does: one series per label set, each observation once, a new label set its own series;
    past the cache's size, series are still counted (looked up each time)."""
    from ledger_service import metrics as metrics_module

    m = LedgerMetrics()

    def sample(name: str, **labels: str) -> float | None:
        return m.registry.get_sample_value(name, labels)

    for _ in range(3):
        m.observe_http("POST", "/v1/readings", 201, 0.004)
    m.observe_http("POST", "/v1/readings", 422, 0.2)
    m.observe_http("GET", "/v1/readings", 201, 0.001)
    assert (
        sample("supet_http_request_duration_seconds_count", method="POST", route="/v1/readings", status="201")
        == 3
    )
    assert sample(
        "supet_http_request_duration_seconds_sum", method="POST", route="/v1/readings", status="201"
    ) == (pytest.approx(0.012))
    assert (
        sample(
            "supet_http_request_duration_seconds_bucket",
            method="POST",
            route="/v1/readings",
            status="201",
            le="0.005",
        )
        == 3
    )
    assert (
        sample("supet_http_request_duration_seconds_count", method="POST", route="/v1/readings", status="422")
        == 1
    )
    assert (
        sample("supet_http_request_duration_seconds_count", method="GET", route="/v1/readings", status="201")
        == 1
    )

    class Accepted:
        code = None

    m.observe_ingest([Accepted(), Accepted()], "http")  # type: ignore[list-item]
    m.observe_ingest([Accepted()], "http")  # type: ignore[list-item]
    m.observe_ingest([Accepted()], "mqtt")  # type: ignore[list-item]
    assert sample("supet_readings_accepted_total", source="http") == 3
    assert sample("supet_readings_accepted_total", source="mqtt") == 1

    # beyond the cache: still one series per label set, counted each time
    for k in range(metrics_module._SERIES_CACHED + 5):
        m.observe_http("GET", f"/r{k}", 200, 0.001)
    m.observe_http("GET", f"/r{metrics_module._SERIES_CACHED + 4}", 200, 0.001)
    assert len(m._http_series) == metrics_module._SERIES_CACHED
    last = f"/r{metrics_module._SERIES_CACHED + 4}"
    assert sample("supet_http_request_duration_seconds_count", method="GET", route=last, status="200") == 2
