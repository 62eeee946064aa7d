"""Two ``supet serve`` processes share MQTT ingest (issue 17): an MQTT 5 shared subscription.

Both instances run on one PostgreSQL database and the machine's running Mosquitto
(``SUPET_TEST_MQTT_URL``, default ``mqtt://127.0.0.1:1883``), each with its own client id, in one
share group of this test's own (so no other subscriber of the shared broker takes a share). Only
the first anchors (``SUPET_ANCHORING=false`` on the second: one anchoring leader is another
change). Devices publish signed readings at QoS 1 to ``devices/<id>/readings`` and wait for
their receipts on ``devices/<id>/receipts``.

Checked: both instances took a share (each one's ``supet_readings_accepted_total{source="mqtt"}``),
every reading got its receipt on its device's topic, whichever instance took it; every reading is
stored once and anchored once (count in = count stored = count anchored), and the proof bundles
served verify against the chain.
"""

from __future__ import annotations

import os
import re
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import paho.mqtt.client as paho
import pytest
from faults import (
    Deployed,
    Fleet,
    all_anchored,
    assert_exactly_once,
    assert_served_proofs_verify,
    deploy_on,
    describe_store,
    own_anvil,
    sample,
    wait_for,
)
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from reads import bearer
from service_process import SUPET, ServiceProcess, service_env
from support import database_url, require

from device_attestation.sdk import Submission
from ledger_service.mqtt.settings import parse_mqtt_url, receipts_topic
from ledger_service.store.engine import make_engine

BROKER = os.environ.get("SUPET_TEST_MQTT_URL", "mqtt://127.0.0.1:1883")


def broker_up() -> bool:
    address = parse_mqtt_url(BROKER)
    try:
        import socket

        with socket.create_connection((address.host, address.port), timeout=1):
            return True
    except OSError:
        return False


class Devices:
    """The devices' side: publishes at QoS 1 and keeps every reply on their receipts topics."""

    def __init__(self, url: str, device_ids: list[str]) -> None:
        address = parse_mqtt_url(url)
        self.replies: dict[str, list[dict[str, Any]]] = {d: [] for d in device_ids}
        self._lock = threading.Lock()
        subscribed = threading.Event()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"test-devices-{uuid.uuid4().hex[:8]}",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        self.client.max_inflight_messages_set(100)
        topics = [(receipts_topic(d), 1) for d in device_ids]
        self.client.on_connect = lambda c, *_: c.subscribe(topics)
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(address.host, address.port)
        self.client.loop_start()
        assert subscribed.wait(10), "the devices did not subscribe to their receipts"

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        device = msg.topic.split("/")[1]
        with self._lock:
            self.replies[device].append(orjson.loads(msg.payload))

    def publish(self, subs: list[Submission]) -> None:
        topics = [f"devices/{s.reading.device_id}/readings" for s in subs]
        infos = [
            self.client.publish(topic, orjson.dumps(s.to_json_obj()), qos=1)
            for topic, s in zip(topics, subs, strict=True)
        ]
        for info in infos:
            info.wait_for_publish(30)

    def receipts(self) -> dict[str, set[str]]:
        """Per device: the digests its receipts name."""
        with self._lock:
            return {d: {r["digest"] for r in rs if "digest" in r} for d, rs in self.replies.items()}

    def errors(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r for rs in self.replies.values() for r in rs if "error" in r]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def accepted_over_mqtt(url: str) -> int:
    """The instance's own count of readings accepted from MQTT (its /metrics)."""
    text = httpx.get(f"{url}/metrics", timeout=5).text
    m = re.search(r'^supet_readings_accepted_total\{source="mqtt"\} ([0-9.e+]+)$', text, re.M)
    return int(float(m.group(1))) if m else 0


def start_all(services: list[ServiceProcess]) -> None:
    """Start the instances at once (a start takes seconds: imports, the chain, the database)."""
    failures: list[BaseException] = []

    def start(svc: ServiceProcess) -> None:
        try:
            svc.start(timeout=90)
        except BaseException as e:
            failures.append(e)

    threads = [threading.Thread(target=start, args=(svc,)) for svc in services]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    if failures:
        raise failures[0]


def ready(svc: ServiceProcess) -> bool:
    try:
        return httpx.get(f"{svc.url}/readyz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def deployed(tmp_path: Path) -> Iterator[Deployed]:
    with own_anvil() as node:
        yield deploy_on(node, tmp_path)


@pytest.fixture
def pg_url(tmp_path: Path) -> Iterator[str]:
    yield from database_url("postgresql", tmp_path)


@pytest.mark.anvil
@pytest.mark.postgres
@pytest.mark.mqtt
def test_two_instances_share_mqtt_ingest(deployed: Deployed, pg_url: str, tmp_path: Path) -> None:
    require(broker_up(), f"no MQTT broker at {BROKER} (set SUPET_TEST_MQTT_URL)")
    assert SUPET.exists(), f"{SUPET} is missing: install the project (pip install -e .)"
    run = uuid.uuid4().hex[:8]
    fleet = Fleet(deployed.consortium, 6, seed=1717, prefix=f"MQ2-{run}")
    base = service_env(deployed, pg_url)
    base.update(
        SUPET_MQTT_URL=BROKER,
        SUPET_MQTT_SHARE_GROUP=f"test-share-{run}",
        # the shared broker keeps a session this long after the test: then it is gone
        SUPET_MQTT_SESSION_EXPIRY_SECONDS="30",
        SUPET_TOKEN_SECRET="t" * 40,  # both instances accept each other's tokens
    )
    services = [
        ServiceProcess(
            env={**base, "SUPET_MQTT_CLIENT_ID": f"test-ledger-{run}-{i}"}
            | ({} if i == 0 else {"SUPET_ANCHORING": "false"}),
            cwd=tmp_path,
            log=tmp_path / f"serve-{i}.log",
        )
        for i in range(2)
    ]
    engine = make_engine(pg_url)
    devices = Devices(BROKER, [d.device_id for d in fleet.devices])
    try:
        start_all(services)
        for svc in services:
            wait_for(
                lambda svc=svc: ready(svc),
                timeout=30,
                what="the instance to be ready (broker connected and subscribed)",
                detail=svc.tail,
            )
        subs = fleet.sign(120) + fleet.sign(120)
        devices.publish(subs[:120])
        devices.publish(subs[120:])
        expected: dict[str, set[str]] = {d.device_id: set() for d in fleet.devices}
        for s in subs:
            expected[s.reading.device_id].add("0x" + s.digest.hex())
        wait_for(
            lambda: all(devices.receipts()[d] >= want for d, want in expected.items()),
            timeout=45,
            what="a receipt for every reading on its device's topic",
            detail=lambda: (
                {d: len(want - devices.receipts()[d]) for d, want in expected.items()},
                devices.errors()[:3],
                services[0].tail(1500),
                services[1].tail(1500),
            ),
        )
        assert devices.errors() == [], devices.errors()[:3]
        shares = [accepted_over_mqtt(svc.url) for svc in services]
        assert all(n > 0 for n in shares), f"an instance took no share: {shares}"
        assert sum(shares) >= len(subs), f"accepted over MQTT by the instances: {shares}"

        digests = {s.digest for s in subs}
        wait_for(
            lambda: all_anchored(engine),
            timeout=45,
            what="every reading anchored by the one anchoring instance",
            detail=lambda: (describe_store(engine), services[0].tail(1500)),
        )
        result = assert_exactly_once(engine, deployed.chain, deployed.deployment, expected=digests)
        assert result.readings == len(subs)  # count in = count stored = count anchored, none twice

        # the proofs served (by the instance that does not anchor) verify against the chain
        chosen = sample(digests)
        url = services[1].url
        with httpx.Client(base_url=url, timeout=10) as client:
            headers = bearer(client, deployed.consortium.factory)
            bundles = []
            for d in chosen:
                r = client.get(f"/v1/readings/0x{d.hex()}/proof", headers=headers)
                assert r.status_code == 200, r.text
                bundles.append(r.json())
        assert_served_proofs_verify(bundles, deployed.chain, deployed.deployment, expected=chosen)
    finally:
        devices.close()
        for svc in services:
            svc.kill()
        engine.dispose()
