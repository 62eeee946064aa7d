"""How many readings per second does MQTT ingest store durably? (SQLite and PostgreSQL)

Usage::

    .venv/bin/python bench/bench_ingest_mqtt.py                         # both databases, 20,000 readings
    .venv/bin/python bench/bench_ingest_mqtt.py --db sqlite --readings 5000
    .venv/bin/python bench/bench_ingest_mqtt.py --mqtt-url mqtt://127.0.0.1:1883   # an existing broker

For each database: build the ledger service (embedded chain, a fresh database,
``verify_workers`` checking processes, anchoring off unless ``--anchoring``) with
MQTT ingest on, enroll ``--devices`` P-256 devices, pre-sign ``--readings``
readings round-robin over them, then a separate publisher process publishes
them all at QoS 1 (``max_inflight`` raised) to ``devices/<id>/readings``.

Measured from the first PUBLISH to the last reading acknowledged by the bridge
(a PUBACK goes out only after the database commit, so that is "accepted
durably"); the committed rows are counted in the database at the end and must
equal ``--readings``. The publisher's own rate (broker PUBACKs) is shown beside.

By default a private Mosquitto is started on a free port, without persistence
and with no limit on queued messages: a stock broker keeps at most 1000 queued
QoS 1 messages per session and drops the rest, which a publisher this fast
overruns.
"""

from __future__ import annotations

import argparse
import getpass
import multiprocessing as mp
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import func, select
from sqlmodel import Session

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "helpers"))
from support import TempPostgresDatabase, TestConsortium, postgres_available

from contracts.chain import Chain, dev_accounts
from contracts.deploy import deploy_suite
from ledger_service.config import Settings
from ledger_service.mqtt.settings import parse_mqtt_url
from ledger_service.service import LedgerService
from ledger_service.store.models import ReadingRow


@dataclass
class Result:
    db: str
    readings: int
    publish_s: float
    ingest_s: float
    stored: int
    batches: int
    redelivered: int
    rejected: int

    @property
    def rate(self) -> float:
        return self.readings / self.ingest_s if self.ingest_s > 0 else 0.0


# ---------------------------------------------------------------- broker


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def private_broker() -> Iterator[str]:
    """A Mosquitto of our own (no persistence, unlimited queue) for the run."""
    if shutil.which("mosquitto") is None:
        raise SystemExit("mosquitto is not installed; give --mqtt-url of a running broker")
    with tempfile.TemporaryDirectory(prefix="bench-mqtt-") as tmp:
        port = _free_port()
        conf = Path(tmp) / "mosquitto.conf"
        conf.write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            f"max_queued_messages 1000000\nlog_dest none\nuser {getpass.getuser()}\n"
        )
        proc = subprocess.Popen(["mosquitto", "-c", str(conf)])
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                        break
                except OSError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise SystemExit("the private mosquitto did not start") from None
                    time.sleep(0.05)
            yield f"mqtt://127.0.0.1:{port}"
        finally:
            proc.terminate()
            proc.wait(10)


# ---------------------------------------------------------------- publisher process


def publisher(url: str, payloads_path: str, started: Any, done: Any) -> None:
    """Publish every (topic, payload) of the file at QoS 1; report start and end times."""
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

    items: list[tuple[str, bytes]] = [
        (t, p.encode()) for t, p in orjson.loads(Path(payloads_path).read_bytes())
    ]
    address = parse_mqtt_url(url)
    c = paho.Client(
        CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{os.getpid()}", protocol=MQTTProtocolVersion.MQTTv5
    )
    c.max_inflight_messages_set(1000)
    c.max_queued_messages_set(0)
    c.connect(address.host, address.port)
    c.loop_start()
    t0 = time.time()
    started.put(t0)
    infos = [c.publish(topic, payload, qos=1) for topic, payload in items]
    for info in infos:
        info.wait_for_publish(120)
    done.put(time.time())
    c.disconnect()
    c.loop_stop()


# ---------------------------------------------------------------- one run


def stored_count(service: LedgerService) -> int:
    with Session(service.engine) as s:
        return int(s.exec(select(func.count()).select_from(ReadingRow)).one()[0])  # type: ignore[call-overload]


def run(db: str, db_url: str, url: str, args: argparse.Namespace) -> Result:
    chain = Chain.embedded()
    deployment = deploy_suite(chain, dev_accounts(1)[0])
    settings = Settings(
        database_url=db_url,
        mqtt_url=url,
        verify_workers=args.verify_workers,
        anchoring=args.anchoring,
        registry_refresh_seconds=0,
    )
    service = LedgerService.build(settings, chain=chain, deployment=deployment)
    bridge = service.mqtt
    assert bridge is not None
    bridge.batch_max = args.batch_max
    bridge.receive_maximum = min(65_535, 2 * args.batch_max)
    consortium = TestConsortium(chain, deployment)
    signers = [consortium.enroll(f"BENCH-{db}-{i:03d}", "p256") for i in range(args.devices)]
    service.registry.refresh()
    t_sign = time.perf_counter()
    ts = int(time.time() * 1000) - 60_000
    items = []
    for i in range(args.readings):
        s = signers[i % len(signers)].sign(
            {"temp_c": 20.0 + (i % 50) / 10, "good_units": i, "rejects": 0}, ts_ms=ts
        )
        items.append((f"devices/{s.reading.device_id}/readings", orjson.dumps(s.to_json_obj()).decode()))
    print(f"  [{db}] signed {args.readings} readings in {time.perf_counter() - t_sign:.1f}s", flush=True)

    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        f.write(orjson.dumps(items))
        payloads = f.name
    service.start()
    try:
        deadline = time.monotonic() + 10
        while not bridge.connected:
            if time.monotonic() > deadline:
                raise SystemExit(f"the bridge did not connect to {url}: {bridge.status()}")
            time.sleep(0.02)
        ctx = mp.get_context("spawn")
        started_q, done_q = ctx.Queue(), ctx.Queue()
        proc = ctx.Process(target=publisher, args=(url, payloads, started_q, done_q))
        base = bridge.stats().accepted
        proc.start()
        t0: float = started_q.get(timeout=120)
        t_last = t0
        last = base
        limit = time.monotonic() + args.timeout
        while last - base < args.readings and time.monotonic() < limit:
            time.sleep(0.005)
            now = bridge.stats().accepted
            if now != last:
                last, t_last = now, time.time()
        t_pub: float = done_q.get(timeout=args.timeout)
        proc.join(30)
        stats = bridge.stats()
        stored = stored_count(service)
        return Result(
            db=db,
            readings=args.readings,
            publish_s=t_pub - t0,
            ingest_s=t_last - t0,
            stored=stored,
            batches=stats.batches,
            redelivered=stats.redelivered,
            rejected=stats.rejected,
        )
    finally:
        service.stop()
        os.unlink(payloads)


@contextmanager
def database(db: str) -> Iterator[str]:
    if db == "sqlite":
        with tempfile.TemporaryDirectory(prefix="bench-ledger-") as tmp:
            yield f"sqlite:///{tmp}/ledger.db"
    else:
        if not postgres_available():
            raise SystemExit("PostgreSQL is not running on 127.0.0.1:5432")
        with TempPostgresDatabase() as pg:
            yield pg.url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--readings", type=int, default=20_000)
    parser.add_argument("--devices", type=int, default=8)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--verify-workers", type=int, default=2)
    parser.add_argument("--batch-max", type=int, default=500, help="the bridge's micro-batch size")
    parser.add_argument("--anchoring", action="store_true", help="run the anchoring worker meanwhile")
    parser.add_argument("--mqtt-url", default=None, help="use this broker instead of a private one")
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args(argv)

    dbs = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    print(
        f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs; "
        f"{args.readings} P-256 readings from {args.devices} devices; verify_workers={args.verify_workers}, "
        f"batch_max={args.batch_max}, anchoring={'on' if args.anchoring else 'off'}",
        flush=True,
    )
    results: list[Result] = []
    with nullcontext(args.mqtt_url) if args.mqtt_url else private_broker() as url:
        print(f"broker: {url}", flush=True)
        for db in dbs:
            with database(db) as db_url:
                results.append(run(db, db_url, url, args))
    print()
    head = (
        f"{'database':<11} {'readings':>8} {'stored':>8} {'publish s':>9} {'ingest s':>9} "
        f"{'readings/s':>10} {'batches':>7} {'avg batch':>9} {'redeliv.':>8} {'rejected':>8}"
    )
    print(head)
    print("-" * len(head))
    ok = True
    for r in results:
        print(
            f"{r.db:<11} {r.readings:>8} {r.stored:>8} {r.publish_s:>9.2f} {r.ingest_s:>9.2f} "
            f"{r.rate:>10,.0f} {r.batches:>7} {r.readings / max(r.batches, 1):>9.0f} "
            f"{r.redelivered:>8} {r.rejected:>8}"
        )
        ok = ok and r.stored == r.readings and r.rejected == 0
    if not ok:
        print("\nNOT ALL READINGS WERE STORED (or some were rejected): see above", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
