"""MQTT ingest, end to end: devices publish signed readings, the bridge stores them and answers.

Each test runs its own Mosquitto (a free port, persistence in a temporary directory) so that
broker restarts and persistent sessions can be tested without touching the shared broker.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as paho
import pytest
from embedded_pool import deployed_embedded
from fastapi.testclient import TestClient
from mqtt_side import (
    DeviceSide,
    Mosquitto,
    make_bridge,
    started,
    stored,
    stored_pairs,
    uid,
    wait_for,
)
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode
from reads import sign_client_in
from support import TestConsortium, now_ms, require

from contracts.chain import dev_accounts
from device_attestation.merkle import verify_inclusion
from ledger_service.config import Settings
from ledger_service.errors import ConfigError, LedgerError
from ledger_service.ingest.pipeline import IngestPipeline, ItemResult
from ledger_service.mqtt.bridge import MqttBridge
from ledger_service.mqtt.settings import (
    BrokerAddress,
    MqttShareGroupError,
    MqttUrlError,
    parse_mqtt_url,
    readings_filter,
    receipts_topic,
)
from ledger_service.service import LedgerService

SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


# ---------------------------------------------------------------- URLs (no broker)


def test_mqtt_urls() -> None:
    assert parse_mqtt_url("mqtt://127.0.0.1:1883") == BrokerAddress("127.0.0.1", 1883)
    assert parse_mqtt_url("mqtt://broker") == BrokerAddress("broker", 1883)
    tls = parse_mqtt_url("mqtts://ledger:p%40ss%3Aword@broker.example:8884")
    assert tls == BrokerAddress("broker.example", 8884, tls=True, username="ledger", password="p@ss:word")
    assert "p@ss" not in repr(tls) and "p@ss" not in str(tls)
    assert parse_mqtt_url("mqtts://broker.example").port == 8883
    assert parse_mqtt_url("mqtt://[::1]:1884/") == BrokerAddress("::1", 1884)
    for bad in (
        "http://broker:1883",
        "broker:1883",
        "mqtt://",
        "mqtt://broker:99999",
        "mqtt://broker:port",
        "mqtt://broker/topic",
        "mqtt://broker?x=1",
        "mqtt://:secret@broker",
    ):
        with pytest.raises(MqttUrlError) as info:
            parse_mqtt_url(bad)
        assert isinstance(info.value, ConfigError) and isinstance(info.value, LedgerError)
        assert info.value.code == "config.mqtt_url"
    with pytest.raises(MqttUrlError) as info:
        parse_mqtt_url("ftp://user:hunter2@broker")
    assert "hunter2" not in str(info.value)


# ---------------------------------------------------------------- end to end


@pytest.mark.mqtt
def test_publish_store_anchor_prove(
    client: TestClient,
    ledger: LedgerService,
    consortium: TestConsortium,
    broker: Mosquitto,
    devices: DeviceSide,
) -> None:
    wakes: list[int] = []
    bridge = started(make_bridge(broker.url, ledger.pipeline, on_accepted=lambda: wakes.append(1)))
    try:
        p256 = consortium.enroll(uid("SN-MQTT"), "p256")
        k1 = consortium.enroll(uid("GW-MQTT"), "secp256k1")
        subs = [p256.sign({"temp_c": 20.0 + i, "good_units": i}, ts_ms=now_ms() - 1000) for i in range(4)]
        subs += [k1.sign({"temp_c": 21.5}, ts_ms=now_ms() - 500, lot_id="LOT-1") for _ in range(3)]
        devices.publish_many([(s.reading.device_id, s.to_json_obj()) for s in subs])
        got = devices.got(len(subs))
        by_digest = {body["digest"]: (topic, body) for topic, body in got}
        for s in subs:
            topic, body = by_digest["0x" + s.digest.hex()]
            assert topic == f"devices/{s.reading.device_id}/receipts"
            assert body == {
                "digest": "0x" + s.digest.hex(),
                "device_id": s.reading.device_id,
                "seq": s.reading.seq,
                "status": "accepted",
                "gap": None,
            }
        assert stored(ledger, source="mqtt") == len(subs)
        assert wakes, "on_accepted was not called"

        # an identical resubmission: the same receipt, over MQTT and over HTTP; nothing new stored
        devices.publish(p256.device_id, subs[1].to_json_obj())
        again = devices.got(len(subs) + 1)[-1]
        assert again == by_digest["0x" + subs[1].digest.hex()]
        http = client.post("/v1/readings", json=subs[1].to_json_obj())
        assert http.status_code == 201 and http.json() == again[1]
        assert stored(ledger) == len(subs)

        # anchored, and the proof endpoint serves every reading that came over MQTT
        ledger.anchoring.flush(timeout=30)
        sign_client_in(client, dev_accounts(2)[1])  # the devices' owner (the test consortium's factory)
        for s in subs:
            r = client.get(f"/v1/readings/0x{s.digest.hex()}/proof")
            assert r.status_code == 200, r.text
            bundle = r.json()
            assert bundle["digest"] == "0x" + s.digest.hex()
            root = bytes.fromhex(bundle["root"][2:])
            verify_inclusion(
                digest=s.digest, proof=[bytes.fromhex(p[2:]) for p in bundle["proof"]], root=root
            )
        s = bridge.stats()
        assert (s.received, s.accepted, s.rejected) == (len(subs) + 1, len(subs) + 1, 0)
    finally:
        bridge.stop()


@pytest.mark.mqtt
def test_refusals_get_error_receipts(
    ledger: LedgerService, consortium: TestConsortium, broker: Mosquitto, devices: DeviceSide
) -> None:
    ledger.start()
    bridge = started(make_bridge(broker.url, ledger.pipeline))
    try:
        dev = consortium.enroll(uid("SN-BAD"), "p256")
        other = consortium.enroll(uid("SN-OTHER"), "p256")
        good = dev.sign({"temp_c": 1.0}, ts_ms=now_ms() - 100)
        forged = good.to_json_obj()
        sig = bytearray(bytes.fromhex(forged["signature"][2:]))
        sig[5] ^= 0x01
        forged["signature"] = "0x" + sig.hex()
        devices.publish(dev.device_id, forged)  # a bad signature
        devices.publish(dev.device_id, b"{not json")  # garbage
        devices.publish(dev.device_id, other.sign({"temp_c": 2.0}, ts_ms=now_ms() - 100).to_json_obj())
        got = devices.got(3)
        assert all(topic == f"devices/{dev.device_id}/receipts" for topic, _ in got)
        codes = [body["error"]["code"] for _, body in got]
        assert codes[0].startswith("signature."), got[0]
        assert got[0][1]["device_id"] == dev.device_id and got[0][1]["seq"] == 1
        assert codes[1] == "request.bad_json"
        assert codes[2] == "mqtt.topic_mismatch" and got[2][1]["device_id"] == other.device_id
        assert all(body["error"]["message"] for _, body in got)
        assert stored(ledger) == 0
        assert bridge.stats().rejected == 3

        # the refusals were acknowledged: the good reading goes through and nothing is delivered again
        devices.publish(dev.device_id, good.to_json_obj())
        assert "digest" in devices.got(4)[-1][1]
        time.sleep(0.3)
        assert len(devices.receipts) == 4 and stored(ledger) == 1
    finally:
        bridge.stop()


class SlowPipeline:
    """The real pipeline, slowed down: messages stay unacknowledged for a while."""

    def __init__(self, inner: IngestPipeline, delay: float) -> None:
        self.inner = inner
        self.delay = delay

    def submit(self, objs: Sequence[Any], *, source: str) -> list[ItemResult]:
        time.sleep(self.delay)
        return self.inner.submit(objs, source=source)


@pytest.mark.mqtt
def test_broker_restart_loses_nothing(
    ledger: LedgerService, consortium: TestConsortium, broker: Mosquitto, devices: DeviceSide
) -> None:
    ledger.start()
    bridge = started(make_bridge(broker.url, SlowPipeline(ledger.pipeline, 0.15), batch_max=5))
    try:
        signers = [consortium.enroll(uid(f"SN-RST{i}"), "p256") for i in range(2)]
        n, m = 40, 20
        first = [signers[i % 2].sign({"temp_c": float(i)}, ts_ms=now_ms() - 2000) for i in range(n)]
        devices.publish_many([(s.reading.device_id, s.to_json_obj()) for s in first])
        # the broker has every one of them (PUBACKed to the device); many are in flight to the bridge
        wait_for(lambda: bridge.received >= 10, 5, "the bridge to take messages")
        assert stored(ledger) < n, "the bridge was too fast for this test to mean anything"
        broker.restart()
        devices.wait_connected()
        more = [signers[i % 2].sign({"temp_c": float(i)}, ts_ms=now_ms() - 1000) for i in range(m)]
        devices.publish_many([(s.reading.device_id, s.to_json_obj()) for s in more])
        wait_for(lambda: stored(ledger) >= n + m, 20, f"{n + m} stored readings")
        time.sleep(0.5)  # let any further redelivery arrive: it must not add rows
        pairs = stored_pairs(ledger)
        assert len(pairs) == n + m and len(set(pairs)) == n + m
        for sig in signers:
            assert sorted(q for d, q in pairs if d == sig.device_id) == list(range(1, (n + m) // 2 + 1))
        assert bridge.redelivered > 0, "the broker did not redeliver the messages in flight"
        wait_for(lambda: bridge.connected, 10, "the bridge to be connected")
        # every reading got a receipt, none an error
        wait_for(
            lambda: (
                {b.get("digest") for _, b in devices.receipts}
                >= {"0x" + s.digest.hex() for s in first + more}
            ),
            10,
            "a receipt for every reading",
        )
        assert not [b for _, b in devices.receipts if "error" in b]
    finally:
        bridge.stop()


@pytest.mark.mqtt
@SQLITE_ONLY
def test_readings_published_while_stopped_are_delivered(
    ledger: LedgerService, consortium: TestConsortium, broker: Mosquitto, devices: DeviceSide
) -> None:
    ledger.start()
    client_id = uid("test-ledger-session")
    bridge = started(make_bridge(broker.url, ledger.pipeline, client_id=client_id))
    bridge.stop()  # the session stays on the broker, subscribed
    dev = consortium.enroll(uid("SN-AWAY"), "p256")
    subs = [dev.sign({"temp_c": float(i)}, ts_ms=now_ms() - 1000) for i in range(5)]
    devices.publish_many([(dev.device_id, s.to_json_obj()) for s in subs])
    time.sleep(0.2)
    assert stored(ledger) == 0 and devices.receipts == []
    again = started(make_bridge(broker.url, ledger.pipeline, client_id=client_id))  # the service is back
    try:
        got = devices.got(5)
        assert [b["digest"] for _, b in got] == ["0x" + s.digest.hex() for s in subs]
        assert stored(ledger) == 5
    finally:
        again.stop()


@pytest.mark.mqtt
@SQLITE_ONLY
def test_bridge_waits_for_a_broker_that_is_not_up_yet(
    ledger: LedgerService, consortium: TestConsortium, tmp_path: Path
) -> None:
    require(shutil.which("mosquitto") is not None, "mosquitto (the MQTT broker) is not installed")
    ledger.start()
    late = Mosquitto(tmp_path)
    bridge = make_bridge(late.url, ledger.pipeline)
    bridge.start()  # returns at once: the service starts without its broker
    try:
        time.sleep(0.3)
        assert not bridge.connected and bridge.status().startswith("disconnected")
        late.start()
        wait_for(lambda: bridge.connected, 10, "the bridge to connect once the broker is up")
        assert bridge.status() == "ok"
        side = DeviceSide(late.url)
        try:
            dev = consortium.enroll(uid("SN-LATE"), "p256")
            sub = dev.sign({"temp_c": 4.0}, ts_ms=now_ms() - 100)
            side.publish(dev.device_id, sub.to_json_obj())
            assert side.got(1)[0][1]["digest"] == "0x" + sub.digest.hex()
        finally:
            side.close()
    finally:
        bridge.stop()
        late.stop()


class FlakyStore:
    """Answers ``store.unavailable`` for the first ``failures`` calls, then passes through."""

    def __init__(self, inner: IngestPipeline, failures: int) -> None:
        self.inner = inner
        self.failures = failures
        self.calls = 0

    def submit(self, objs: Sequence[Any], *, source: str) -> list[ItemResult]:
        self.calls += 1
        if self.calls <= self.failures:
            return [ItemResult(index=i, code="store.unavailable", message="down") for i in range(len(objs))]
        return self.inner.submit(objs, source=source)


@pytest.mark.mqtt
@SQLITE_ONLY
def test_store_unavailable_leaves_messages_for_redelivery(
    ledger: LedgerService, consortium: TestConsortium, broker: Mosquitto, devices: DeviceSide
) -> None:
    ledger.start()
    flaky = FlakyStore(ledger.pipeline, failures=2)
    bridge = started(make_bridge(broker.url, flaky))
    try:
        dev = consortium.enroll(uid("SN-FLAKY"), "p256")
        subs = [dev.sign({"temp_c": float(i)}, ts_ms=now_ms() - 1000) for i in range(3)]
        devices.publish_many([(dev.device_id, s.to_json_obj()) for s in subs])
        got = devices.got(3)
        time.sleep(0.3)
        assert flaky.calls >= 3
        # nothing was published while the store was down; then one receipt per reading, in order
        assert [b.get("digest") for _, b in devices.receipts] == ["0x" + s.digest.hex() for s in subs]
        assert len(got) == 3 and stored(ledger) == 3
        s = bridge.stats()
        assert s.deferred >= 2 and s.redelivered >= 3 and s.accepted == 3
    finally:
        bridge.stop()


@pytest.mark.mqtt
def test_service_runs_the_bridge(tmp_path: Path, broker: Mosquitto, devices: DeviceSide) -> None:
    with deployed_embedded() as (chain, deployment):  # the process's deployment, rolled back after
        settings = Settings(
            database_url=f"sqlite:///{tmp_path}/ledger.db",
            mqtt_url=broker.url,
            verify_workers=0,
            anchoring=False,
            registry_refresh_seconds=0,
        )
        service = LedgerService.build(settings, chain=chain, deployment=deployment)
        assert service.mqtt is not None and service.readiness()["mqtt"] == "stopped"
        service.start()
        try:
            wait_for(lambda: service.readiness()["mqtt"] == "ok", 10, "mqtt readiness")
            dev = TestConsortium(chain, deployment).enroll("SN-SVC-1", "p256")
            sub = dev.sign({"temp_c": 3.0}, ts_ms=now_ms() - 100)
            devices.publish(dev.device_id, sub.to_json_obj())
            assert devices.got(1)[0][1]["digest"] == "0x" + sub.digest.hex()
            assert stored(service, source="mqtt") == 1
        finally:
            service.stop()
        assert service.readiness()["mqtt"] == "stopped"
        with pytest.raises(MqttUrlError):
            LedgerService.build(
                settings.model_copy(update={"mqtt_url": "tcp://x"}), chain=chain, deployment=deployment
            )


@SQLITE_ONLY
def test_service_without_mqtt(ledger: LedgerService) -> None:
    assert ledger.mqtt is None and ledger.readiness()["mqtt"] == "disabled"


# ---------------------------------------------------------------- poison messages (issue 11, finding 3)


class Watcher:
    """Subscribes to a topic filter and keeps every message (topic, payload, user properties)."""

    def __init__(self, url: str, topic: str) -> None:
        address = parse_mqtt_url(url)
        self.messages: list[tuple[str, bytes, dict[str, str]]] = []
        subscribed = threading.Event()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"test-watch-{uuid.uuid4().hex[:8]}",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.on_message = lambda c, u, msg: self.messages.append(
            (msg.topic, bytes(msg.payload), dict(getattr(msg.properties, "UserProperty", [])))
        )
        self.client.connect(address.host, address.port)
        self.client.loop_start()
        assert subscribed.wait(10), "the watcher did not subscribe"

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class StatusSampler:
    """Samples ``bridge.status()`` every few milliseconds in a thread: what readiness would have said."""

    def __init__(self, bridge: MqttBridge) -> None:
        self.bridge = bridge
        self.seen: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.005):
            self.seen.append(self.bridge.status())

    def stop(self) -> list[str]:
        self._stop.set()
        self._thread.join(5)
        return self.seen


#: Payloads that are not strict JSON: each was a way to stop MQTT ingest or to be ambiguous.
POISON_PAYLOADS = {
    "5000_digit_number": b'{"reading": {"metrics": {"n": ' + b"7" * 5000 + b"}}}",
    "deep_nesting_big_number": b"[" * 150_000 + b"1234567890123456789" + b"]" * 150_000,
    "duplicate_key": b'{"reading": {"metrics": {"n": 1}, "metrics": {"n": 2}}}',
    "nan": b'{"reading": {"metrics": {"n": NaN}}}',
}


@pytest.mark.mqtt
@SQLITE_ONLY
def test_undecodable_payloads_are_answered_as_bad_input(
    ledger: LedgerService, consortium: TestConsortium, broker: Mosquitto, devices: DeviceSide
) -> None:
    """Finding 3: a 5,000-digit number was never acknowledged and redelivered for ever (a ValueError
    escaped the decoder), the bridge reconnected in a loop saying the store was unavailable."""
    ledger.start()
    bridge = started(make_bridge(broker.url, ledger.pipeline, max_payload_bytes=1 << 20))
    sampler = StatusSampler(bridge)
    try:
        dev = consortium.enroll(uid("SN-POISON"), "p256")
        for payload in POISON_PAYLOADS.values():
            devices.publish(dev.device_id, payload)
        got = devices.got(len(POISON_PAYLOADS))
        assert [b["error"]["code"] for _, b in got] == ["request.bad_json"] * len(POISON_PAYLOADS), got
        messages = [b["error"]["message"] for _, b in got]
        assert "number" in messages[0] and "nests" in messages[1] and "twice" in messages[2]
        # acknowledged: nothing comes again, and a good reading right after goes through
        good = dev.sign({"temp_c": 1.0}, ts_ms=now_ms() - 100)
        devices.publish(dev.device_id, good.to_json_obj())
        assert devices.got(len(POISON_PAYLOADS) + 1)[-1][1]["digest"] == "0x" + good.digest.hex()
        time.sleep(0.3)
        assert len(devices.receipts) == len(POISON_PAYLOADS) + 1 and stored(ledger) == 1
        s = bridge.stats()
        assert (s.rejected, s.redelivered, s.deferred, s.dead_lettered) == (len(POISON_PAYLOADS), 0, 0, 0)
    finally:
        seen = sampler.stop()
        bridge.stop()
    assert set(seen) == {"ok"}, f"readiness would have said: {sorted(set(seen))}"


class PoisonPipeline:
    """The real pipeline, but it raises on every batch holding a reading of ``device``."""

    def __init__(self, inner: IngestPipeline, device: str) -> None:
        self.inner = inner
        self.device = device
        self.failures = 0

    def submit(self, objs: Sequence[Any], *, source: str) -> list[ItemResult]:
        if any(o["reading"]["device_id"] == self.device for o in objs):
            self.failures += 1
            raise RuntimeError("the checker crashed on this reading")
        return self.inner.submit(objs, source=source)


@pytest.mark.mqtt
@SQLITE_ONLY
def test_a_message_that_keeps_failing_is_dead_lettered(
    ledger: LedgerService, consortium: TestConsortium, broker: Mosquitto, devices: DeviceSide
) -> None:
    ledger.start()
    poison_dev = consortium.enroll(uid("SN-DEAD"), "p256")
    good_dev = consortium.enroll(uid("SN-ALIVE"), "p256")
    pipeline = PoisonPipeline(ledger.pipeline, poison_dev.device_id)
    bridge = started(
        make_bridge(
            broker.url,
            pipeline,
            max_attempts=3,
            batch_wait=0.2,
            on_dead_letter=ledger.metrics.observe_dead_letter,
        )
    )
    watcher = Watcher(broker.url, "dead-letters/#")
    sampler = StatusSampler(bridge)
    try:
        poison = poison_dev.sign({"temp_c": 9.0}, ts_ms=now_ms() - 100)
        goods = [good_dev.sign({"temp_c": float(i)}, ts_ms=now_ms() - 100) for i in range(3)]
        devices.publish_many(
            [(good_dev.device_id, goods[0].to_json_obj()), (poison_dev.device_id, poison.to_json_obj())]
            + [(good_dev.device_id, g.to_json_obj()) for g in goods[1:]]
        )
        got = devices.got(4, timeout=20)
        by_device = {
            d: [b for t, b in got if t == receipts_topic(d)]
            for d in (good_dev.device_id, poison_dev.device_id)
        }
        # the readings around the failing one were stored and answered at once, in one batch or alone
        assert [b["digest"] for b in by_device[good_dev.device_id]] == ["0x" + g.digest.hex() for g in goods]
        (dead,) = by_device[poison_dev.device_id]
        assert dead["error"]["code"] == "mqtt.dead_letter" and dead["seq"] == 1, dead
        assert pipeline.failures >= 3
        wait_for(lambda: len(watcher.messages) == 1, 10, "the dead letter")
        topic, payload, props = watcher.messages[0]
        assert topic == f"dead-letters/devices/{poison_dev.device_id}/readings"
        assert orjson.loads(payload) == poison.to_json_obj()
        assert props["reason"] == "pipeline_error" and props["attempts"] == "3"
        assert "RuntimeError" in props["error"]
        # acknowledged: not delivered again
        time.sleep(0.5)
        assert len(devices.receipts) == 4 and len(watcher.messages) == 1
        assert stored(ledger) == 3
        s = bridge.stats()
        assert s.dead_lettered == 1 and s.accepted == 3 and s.rejected == 1
        assert b'supet_mqtt_dead_letters_total{reason="pipeline_error"} 1.0' in ledger.metrics.render()
    finally:
        seen = sampler.stop()
        watcher.close()
        bridge.stop()
    # one failing message does not make the service unready while it waits for its redelivery
    assert set(seen) == {"ok"}, f"readiness would have said: {sorted(set(seen))}"


# ---------------------------------------------------------------- several instances (issue 17)


def test_share_group_names() -> None:
    assert readings_filter("supet-ledger") == "$share/supet-ledger/devices/+/readings"
    assert readings_filter(None) == readings_filter("") == "devices/+/readings"
    for bad in ("a/b", "a+", "#", "x\ny"):
        with pytest.raises(MqttShareGroupError) as info:
            readings_filter(bad)
        assert isinstance(info.value, ConfigError) and info.value.code == "config.mqtt_share_group"
    assert make_bridge("mqtt://127.0.0.1:1", None).topic_filter == "$share/supet-ledger/devices/+/readings"
    assert make_bridge("mqtt://127.0.0.1:1", None, share_group=None).topic_filter == "devices/+/readings"


@pytest.mark.mqtt
@SQLITE_ONLY
def test_two_bridges_in_one_group_share_the_readings(
    ledger: LedgerService, consortium: TestConsortium, broker: Mosquitto, devices: DeviceSide
) -> None:
    """Each message goes to one bridge of the group; whichever took it answers on the device's topic."""
    ledger.start()
    group = uid("group")
    bridges = [started(make_bridge(broker.url, ledger.pipeline, share_group=group)) for _ in range(2)]
    try:
        signers = [consortium.enroll(uid(f"SN-SHARE{i}"), "p256") for i in range(3)]
        subs = [signers[i % 3].sign({"temp_c": float(i)}, ts_ms=now_ms() - 1000) for i in range(60)]
        devices.publish_many([(s.reading.device_id, s.to_json_obj()) for s in subs])
        got = devices.got(len(subs))
        time.sleep(0.3)  # nothing more arrives: each reading was taken by one bridge only
        assert len(devices.receipts) == len(subs)
        assert {(t, b["digest"]) for t, b in got} == {
            (receipts_topic(s.reading.device_id), "0x" + s.digest.hex()) for s in subs
        }
        received = [b.stats().received for b in bridges]
        assert all(n > 0 for n in received) and sum(received) == len(subs), received
        assert stored(ledger) == len(subs)
    finally:
        for b in bridges:
            b.stop()


@pytest.mark.mqtt
@SQLITE_ONLY
def test_a_message_may_carry_several_readings(
    ledger: LedgerService, consortium: TestConsortium, broker: Mosquitto, devices: DeviceSide
) -> None:
    ledger.start()
    bridge = started(make_bridge(broker.url, ledger.pipeline, max_readings=4))
    try:
        dev = consortium.enroll(uid("SN-MANY"), "p256")
        other = consortium.enroll(uid("SN-ELSE"), "p256")
        subs = [dev.sign({"temp_c": float(i)}, ts_ms=now_ms() - 1000) for i in range(3)]
        stray = other.sign({"temp_c": 9.0}, ts_ms=now_ms() - 1000)
        batch = [subs[0].to_json_obj(), stray.to_json_obj(), subs[1].to_json_obj(), subs[2].to_json_obj()]
        devices.publish(dev.device_id, {"readings": batch})
        devices.publish(dev.device_id, {"readings": batch + batch})  # too many for one message
        devices.publish(dev.device_id, {"readings": []})
        (t1, first), (_, too_many), (_, empty) = devices.got(3)
        assert t1 == receipts_topic(dev.device_id)
        assert (first["accepted"], first["rejected"]) == (3, 1)
        results = first["results"]
        assert [r["index"] for r in results] == [0, 1, 2, 3]
        assert [r["receipt"]["digest"] for i, r in enumerate(results) if i != 1] == [
            "0x" + s.digest.hex() for s in subs
        ]
        assert results[1]["error"]["code"] == "mqtt.topic_mismatch"
        assert results[1]["device_id"] == other.device_id
        assert too_many["error"]["code"] == "request.too_many"
        assert empty["error"]["code"] == "request.bad_shape"
        assert stored(ledger) == 3
        s = bridge.stats()
        assert (s.received, s.accepted, s.rejected) == (3, 3, 3)
    finally:
        bridge.stop()


@pytest.mark.mqtt
@SQLITE_ONLY
def test_a_resumed_session_drops_its_plain_subscription(
    ledger: LedgerService, consortium: TestConsortium, broker: Mosquitto, devices: DeviceSide
) -> None:
    """An instance that subscribed without a group before (an upgrade) resumes its session with the
    shared subscription only: every reading is delivered once, not once per subscription."""
    ledger.start()
    client_id = uid("test-ledger-upgrade")
    started(make_bridge(broker.url, ledger.pipeline, client_id=client_id, share_group=None)).stop()
    bridge = started(make_bridge(broker.url, ledger.pipeline, client_id=client_id, share_group="g"))
    try:
        dev = consortium.enroll(uid("SN-UPG"), "p256")
        subs = [dev.sign({"temp_c": float(i)}, ts_ms=now_ms() - 1000) for i in range(3)]
        devices.publish_many([(dev.device_id, s.to_json_obj()) for s in subs])
        devices.got(3)
        time.sleep(0.5)
        assert len(devices.receipts) == 3 and bridge.stats().received == 3
    finally:
        bridge.stop()


def test_a_taken_over_session_stops_ingest() -> None:
    """A broker that says so (DISCONNECT 0x8E, session taken over: another client connected with our
    client id): the bridge stops and says why, instead of taking the session back (the two would take
    it from each other at every reconnect)."""
    bridge = make_bridge("mqtt://127.0.0.1:1", None, client_id="twin")
    bridge._running = True
    bridge._connected = bridge._subscribed = True
    bridge._on_disconnect(
        bridge._client,
        None,
        paho.DisconnectFlags(is_disconnect_packet_from_server=True),
        ReasonCode(PacketTypes.DISCONNECT, identifier=142),
        None,
    )
    assert not bridge.connected
    assert bridge.status().startswith("disconnected: session taken over") and "SUPET_MQTT_CLIENT_ID" in (
        bridge.status()
    )


@pytest.mark.mqtt
@SQLITE_ONLY
def test_one_client_id_used_twice_is_reported(
    ledger: LedgerService, broker: Mosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    """Mosquitto 2.0 closes the older connection without a reason: the two bridges take the session
    from each other in turn; the log says what is probably wrong."""
    ledger.start()
    client_id = uid("test-ledger-twin")
    twins = [make_bridge(broker.url, ledger.pipeline, client_id=client_id) for _ in range(2)]
    try:
        with caplog.at_level(logging.ERROR, logger="ledger_service.mqtt"):
            for b in twins:
                b.start()
            wait_for(
                lambda: any("SUPET_MQTT_CLIENT_ID" in r.getMessage() for r in caplog.records),
                20,
                "the bridges to report the client id used twice",
            )
    finally:
        for b in twins:
            b.stop()


class RecordingPipeline:
    """The real pipeline; keeps how many submissions each call had."""

    def __init__(self, inner: IngestPipeline) -> None:
        self.inner = inner
        self.sizes: list[int] = []

    def submit(self, objs: Sequence[Any], *, source: str) -> list[ItemResult]:
        self.sizes.append(len(objs))
        return self.inner.submit(objs, source=source)


@pytest.mark.mqtt
@SQLITE_ONLY
def test_a_micro_batch_is_bounded_in_bytes(
    ledger: LedgerService, consortium: TestConsortium, broker: Mosquitto, devices: DeviceSide
) -> None:
    """Messages carry up to max_readings each: a micro-batch stops growing at batch_max_bytes."""
    ledger.start()
    pipeline = RecordingPipeline(ledger.pipeline)
    bridge = started(make_bridge(broker.url, pipeline, batch_wait=0.3, batch_max_bytes=1500))
    try:
        dev = consortium.enroll(uid("SN-BYTES"), "p256")
        subs = [dev.sign({"temp_c": float(i)}, ts_ms=now_ms() - 1000) for i in range(12)]
        chunks = [subs[i : i + 3] for i in range(0, 12, 3)]  # about 1,000 bytes a message
        devices.publish_many([(dev.device_id, {"readings": [s.to_json_obj() for s in c]}) for c in chunks])
        got = devices.got(4)
        assert sum(b["accepted"] for _, b in got) == 12 and stored(ledger) == 12
        assert max(pipeline.sizes) <= 6 and sum(pipeline.sizes) == 12, pipeline.sizes
    finally:
        bridge.stop()
