"""MQTT test helpers (importable as ``mqtt_side``): a Mosquitto of a test's own, a device side that
publishes and collects receipts, and a bridge made and started for a test."""

from __future__ import annotations

import getpass
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from sqlalchemy import func, select
from sqlmodel import Session
from support import require

from ledger_service.mqtt.bridge import MqttBridge
from ledger_service.mqtt.settings import parse_mqtt_url
from ledger_service.service import LedgerService
from ledger_service.store.models import ReadingRow


def wait_for(cond: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


# ---------------------------------------------------------------- a broker of our own


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Mosquitto:
    """A Mosquitto process on a free port, persisting to a directory: restartable."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.dir = workdir
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {workdir}/\n"
            "max_queued_messages 100000\n"
            f"log_dest file {workdir}/mosquitto.log\n"
            # started as root, Mosquitto would switch to the `mosquitto` user and fail to write here
            f"user {getpass.getuser()}\n"
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(["mosquitto", "-c", str(self.conf)], stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"mosquitto exited: {err}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start listening")

    def stop(self) -> None:
        """Stop (SIGTERM: Mosquitto writes its persistence file, queued QoS 1 messages included)."""
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


# ---------------------------------------------------------------- a device side


class DeviceSide:
    """Publishes submissions and collects every receipt published on ``devices/+/receipts``."""

    def __init__(self, url: str) -> None:
        address = parse_mqtt_url(url)
        self.receipts: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"test-device-{uuid.uuid4().hex[:8]}",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        self.client.reconnect_delay_set(1, 2)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect(address.host, address.port)
        self.client.loop_start()
        assert self._subscribed.wait(10), "the device side did not subscribe"

    def _on_connect(self, client: paho.Client, *_: object) -> None:
        client.subscribe("devices/+/receipts", qos=1)

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        with self._lock:
            self.receipts.append((msg.topic, orjson.loads(msg.payload)))

    def publish(self, device_id: str, payload: bytes | dict[str, Any]) -> None:
        body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        info = self.client.publish(f"devices/{device_id}/readings", body, qos=1)
        info.wait_for_publish(10)

    def publish_many(self, items: Sequence[tuple[str, dict[str, Any]]]) -> None:
        infos = [self.client.publish(f"devices/{d}/readings", orjson.dumps(obj), qos=1) for d, obj in items]
        for info in infos:
            info.wait_for_publish(20)

    def wait_connected(self) -> None:
        wait_for(self.client.is_connected, 15, "the device side to reconnect")

    def got(self, n: int, timeout: float = 15.0) -> list[tuple[str, dict[str, Any]]]:
        wait_for(lambda: len(self.receipts) >= n, timeout, f"{n} receipts (have {len(self.receipts)})")
        with self._lock:
            return list(self.receipts)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def make_bridge(url: str, pipeline: Any, **kw: Any) -> MqttBridge:
    kw.setdefault("client_id", f"test-ledger-{uuid.uuid4().hex[:8]}")
    kw.setdefault("store_retry_min", 0.1)
    # a broker restarted on a loaded machine may take seconds to listen: paho's backoff would double
    # up to 30 s between attempts
    kw.setdefault("reconnect_max_delay", 2)
    return MqttBridge(url=url, pipeline=pipeline, **kw)


def started(bridge: MqttBridge) -> MqttBridge:
    bridge.start()
    wait_for(lambda: bridge.connected, 10, "the bridge to connect and subscribe")
    return bridge


def stored(ledger: LedgerService, **where: Any) -> int:
    q = select(func.count()).select_from(ReadingRow)
    for name, value in where.items():
        q = q.where(getattr(ReadingRow, name) == value)
    with Session(ledger.engine) as s:
        return int(s.exec(q).one()[0])  # type: ignore[call-overload]


def stored_pairs(ledger: LedgerService) -> list[tuple[str, int]]:
    with Session(ledger.engine) as s:
        rows = s.exec(select(ReadingRow.device_id, ReadingRow.seq)).all()  # type: ignore[call-overload]
    return [(d, q) for d, q in rows]


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def broker_fixture(tmp_path: Path) -> Iterator[Mosquitto]:
    """The body of a test module's ``broker`` fixture: a Mosquitto of the test's own, started."""
    require(shutil.which("mosquitto") is not None, "mosquitto (the MQTT broker) is not installed")
    workdir = tmp_path / "mosquitto"
    workdir.mkdir()
    b = Mosquitto(workdir)
    b.start()
    try:
        yield b
    finally:
        b.stop()
