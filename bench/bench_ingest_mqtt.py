"""How many readings per second does MQTT ingest store durably? (SQLite and PostgreSQL)

Usage::

    .venv/bin/python bench/bench_ingest_mqtt.py                         # both databases, 20,000 readings
    .venv/bin/python bench/bench_ingest_mqtt.py --db sqlite --readings 5000
    .venv/bin/python bench/bench_ingest_mqtt.py --db postgresql --per-message 20   # 20 readings a message
    .venv/bin/python bench/bench_ingest_mqtt.py --profile      # cProfile of the bridge's threads
    .venv/bin/python bench/bench_ingest_mqtt.py --mqtt-url mqtt://127.0.0.1:1883   # an existing broker

For each database: build the ledger service (embedded chain, a fresh database,
``verify_workers`` checking threads, anchoring off unless ``--anchoring``) with
MQTT ingest on, start it and settle the garbage collector as ``supet serve`` does
(``ledger_service.collector``), enroll ``--devices`` P-256 devices, pre-sign ``--readings``
readings round-robin over them, then a separate publisher process publishes
them all at QoS 1 (``max_inflight`` raised) to ``devices/<id>/readings``, one
reading a message, or ``--per-message`` readings of one device a message
(``{"readings": [...]}``).

Measured from the first PUBLISH to the last reading acknowledged by the bridge
(a PUBACK goes out only after the database commit, so that is "accepted
durably"); the committed rows are counted in the database at the end and must
equal ``--readings``. The publisher's own rate (broker PUBACKs) is shown beside.

The limit is measured in the same run: the bare P-256 verify rate of two processes
(``bench_ingest.bare_verify_both_cores``, before each database's run); ``share`` is the ingest rate
over it. Where the time goes: the CPU seconds each part used during the timed run (the bridge's
network thread, its worker and its answer thread, the writer, the verify workers (the checking
threads, or worker processes in versions before them), PostgreSQL's backends of the bench database,
the broker, the publisher) and the whole machine's busy CPU (other work on the machine
shows as the difference). On a machine shared with other work the wall-clock rate is the share of
the cores the run got; so the rate two free cores would reach is also given from CPU time (the
ledger's side: all but the publisher), beside the limit from CPU time (verifications per CPU second
of two processes, times two). ``--profile`` adds a cProfile of the bridge's and the writer's threads.

By default a private Mosquitto is started on a free port, without persistence
and with no limit on queued messages: a stock broker keeps at most 1000 queued
QoS 1 messages per session and drops the rest, which a publisher this fast
overruns.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import getpass
import io
import multiprocessing as mp
import os
import platform
import pstats
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
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
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ingest import _bare_verify, bare_verify_both_cores
from http_server import postgres_backends
from support import TempPostgresDatabase, TestConsortium, postgres_available

from contracts.chain import Chain, dev_accounts
from contracts.deploy import deploy_suite
from ledger_service.collector import settle_collector
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
    limit: float
    cpu_limit: float
    cpu: dict[str, float]

    @property
    def rate(self) -> float:
        return self.readings / self.ingest_s if self.ingest_s > 0 else 0.0

    @property
    def service_cpu(self) -> float:
        """CPU seconds the ledger's side used: everything measured but the publisher (the devices)."""
        others = ("publisher", "machine (all processes)", "wall")
        return sum(v for k, v in self.cpu.items() if k not in others)

    @property
    def cpu_rate(self) -> float:
        """Readings per second two free cores would ingest at this CPU cost per reading."""
        return 2 * self.readings / self.service_cpu if self.service_cpu > 0 else 0.0


def _verify_cpu(n: int) -> tuple[int, float]:
    t = time.process_time()
    _bare_verify(n)
    return n, time.process_time() - t


def bare_verify_cpu_limit(n: int = 20_000) -> float:
    """The P-256 limit of two cores from CPU time, not wall time: verifications per CPU second of two
    processes, times two. On a machine shared with other work the wall-clock limit is whatever share
    of the cores the run got; this one is what two free cores would do."""
    with mp.get_context("spawn").Pool(2) as pool:
        pool.map(_verify_cpu, [256, 256])
        done = pool.map(_verify_cpu, [n // 2, n // 2])
    return 2 * sum(k for k, _ in done) / sum(c for _, c in done)


# ---------------------------------------------------------------- where the CPU goes

_TICK = os.sysconf("SC_CLK_TCK")


def _stat(path: str) -> tuple[str, float] | None:
    """(name, CPU seconds) of a /proc stat file, or None when the process or thread is gone."""
    try:
        text = Path(path).read_text()
    except OSError:
        return None
    name = text[text.index("(") + 1 : text.rindex(")")]
    fields = text[text.rindex(")") + 2 :].split()
    return name, (int(fields[11]) + int(fields[12])) / _TICK


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            out += [int(c) for c in Path(f"/proc/{pid}/task/{tid}/children").read_text().split()]
        except OSError:
            continue
    return out


def _machine_busy() -> float:
    """Busy CPU seconds of the whole machine (all cores) since boot."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / _TICK


def _thread_part(name: str) -> str:
    if name.startswith("paho-mqtt-client"):
        return "bridge network thread"
    if name.startswith("supet-verify"):  # the pipeline's checking threads (ingest/pipeline.py)
        return "verify workers"
    return {
        "supet-mqtt-ingest": "bridge worker",
        "supet-mqtt-answer": "bridge answer thread",
        "supet-committer": "writer (committer)",
    }.get(name, "service, other threads")


def cpu_snapshot(dbname: str | None, broker_pid: int | None, publisher_pid: int | None) -> dict[str, float]:
    """CPU seconds used so far by each part of the run (see the module's docstring)."""
    me = os.getpid()
    parts: dict[str, float] = {}

    def add(part: str, got: tuple[str, float] | None) -> None:
        if got is not None:
            parts[part] = parts.get(part, 0.0) + got[1]

    names = {t.native_id: t.name for t in threading.enumerate()}
    for tid in os.listdir(f"/proc/{me}/task"):
        add(_thread_part(names.get(int(tid), "")), _stat(f"/proc/{me}/task/{tid}/stat"))
    for child in _children(me):
        add("verify workers" if child != publisher_pid else "publisher", _stat(f"/proc/{child}/stat"))
    if broker_pid is not None:
        add("broker", _stat(f"/proc/{broker_pid}/stat"))
    if dbname is not None:
        for pid in postgres_backends(dbname):
            add("postgresql backends", _stat(f"/proc/{pid}/stat"))
    parts["machine (all processes)"] = _machine_busy()
    return parts


def cpu_used(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: v - before.get(k, 0.0) for k, v in after.items()}


# ---------------------------------------------------------------- profiling the service's threads


class ThreadProfiles:
    """cProfile of chosen threads of the service (``--profile``): each wraps the thread's target."""

    def __init__(self) -> None:
        self.profiles: dict[str, cProfile.Profile] = {}

    def wrap(self, name: str, target: Any) -> Any:
        # the thread's CPU time, not wall time: on a shared machine wall time counts waiting for a core
        prof = cProfile.Profile(time.thread_time)
        self.profiles[name] = prof

        def run(*a: Any, **kw: Any) -> Any:
            prof.enable()
            try:
                return target(*a, **kw)
            finally:
                prof.disable()

        return run

    def report(self, top: int = 18) -> str:
        out = io.StringIO()
        for name, prof in self.profiles.items():
            out.write(f"\n==== {name} ====\n")
            pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(top)
        return out.getvalue()


# ---------------------------------------------------------------- broker


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Broker:
    url: str
    pid: int | None  # a private broker's process (its CPU is measured)


@contextmanager
def private_broker() -> Iterator[Broker]:
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
            yield Broker(f"mqtt://127.0.0.1:{port}", proc.pid)
        finally:
            proc.terminate()
            proc.wait(10)


# ---------------------------------------------------------------- publisher process


def publisher(url: str, payloads_path: str, ready: Any, go: Any, started: Any, done: Any) -> None:
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
    ready.put(os.getpid())
    go.get(timeout=120)
    t0 = time.time()
    started.put(t0)
    infos = [c.publish(topic, payload, qos=1) for topic, payload in items]
    for info in infos:
        info.wait_for_publish(300)
    done.put(time.time())
    c.disconnect()
    c.loop_stop()


# ---------------------------------------------------------------- one run


def stored_count(service: LedgerService) -> int:
    with Session(service.engine) as s:
        return int(s.exec(select(func.count()).select_from(ReadingRow)).one()[0])  # type: ignore[call-overload]


def sign_messages(signers: list[Any], readings: int, per_message: int) -> list[tuple[str, str]]:
    """(topic, payload) of ``readings`` readings round-robin over the devices; ``per_message`` > 1:
    that many consecutive readings of one device a message, ``{"readings": [...]}``."""
    ts = int(time.time() * 1000)  # devices are active from the enrollment block's time less 55 s
    per_device: dict[str, list[Any]] = {}
    order: list[str] = []
    for i in range(readings):
        s = signers[i % len(signers)].sign(
            {"temp_c": 20.0 + (i % 50) / 10, "good_units": i, "rejects": 0}, ts_ms=ts
        )
        per_device.setdefault(s.reading.device_id, []).append(s.to_json_obj())
        order.append(s.reading.device_id)
    items: list[tuple[str, str]] = []
    if per_message <= 1:
        taken = dict.fromkeys(per_device, 0)
        for device in order:
            obj = per_device[device][taken[device]]
            taken[device] += 1
            items.append((f"devices/{device}/readings", orjson.dumps(obj).decode()))
        return items
    chunks = {
        d: [subs[i : i + per_message] for i in range(0, len(subs), per_message)]
        for d, subs in per_device.items()
    }
    for k in range(max(len(c) for c in chunks.values())):
        for device, cs in chunks.items():
            if k < len(cs):
                items.append((f"devices/{device}/readings", orjson.dumps({"readings": cs[k]}).decode()))
    return items


def run(db: str, db_url: str, broker: Broker, args: argparse.Namespace) -> Result:
    limit = bare_verify_both_cores()
    cpu_limit = bare_verify_cpu_limit()
    print(
        f"  [{db}] the limit: bare P-256 verify, 2 processes: {limit:,.0f}/s (wall clock), "
        f"{cpu_limit:,.0f}/s (2 x verifications per CPU second)",
        flush=True,
    )
    chain = Chain.embedded()
    deployment = deploy_suite(chain, dev_accounts(1)[0])
    settings = Settings(
        database_url=db_url,
        mqtt_url=broker.url,
        verify_workers=args.verify_workers,
        anchoring=args.anchoring,
        registry_refresh_seconds=0,
    )
    service = LedgerService.build(settings, chain=chain, deployment=deployment)
    bridge = service.mqtt
    assert bridge is not None
    if args.batch_max:
        bridge.batch_max = args.batch_max
        bridge.receive_maximum = min(65_535, 2 * args.batch_max)
    profiles = ThreadProfiles() if args.profile else None
    if profiles is not None:
        bridge._run = profiles.wrap("bridge worker", bridge._run)  # type: ignore[method-assign]
        client = bridge._client
        client._thread_main = profiles.wrap("bridge network thread", client._thread_main)  # type: ignore[method-assign]
        thread = service.committer._thread
        thread._target = profiles.wrap("writer (committer)", thread._target)  # type: ignore[attr-defined]
    consortium = TestConsortium(chain, deployment)
    signers = [consortium.enroll(f"BENCH-{db}-{i:03d}", "p256") for i in range(args.devices)]
    service.registry.refresh()
    t_sign = time.perf_counter()
    items = sign_messages(signers, args.readings, args.per_message)
    print(
        f"  [{db}] signed {args.readings} readings in {len(items)} messages in "
        f"{time.perf_counter() - t_sign:.1f}s",
        flush=True,
    )

    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        f.write(orjson.dumps(items))
        payloads = f.name
    dbname = db_url.rsplit("/", 1)[-1] if db == "postgresql" else None
    service.start()
    settle_collector()  # as `supet serve` does once started (ledger_service/collector.py)
    try:
        deadline = time.monotonic() + 10
        while not bridge.connected:
            if time.monotonic() > deadline:
                raise SystemExit(f"the bridge did not connect to {broker.url}: {bridge.status()}")
            time.sleep(0.02)
        ctx = mp.get_context("spawn")
        ready_q, go_q, started_q, done_q = ctx.Queue(), ctx.Queue(), ctx.Queue(), ctx.Queue()
        proc = ctx.Process(target=publisher, args=(broker.url, payloads, ready_q, go_q, started_q, done_q))
        proc.start()
        pub_pid: int = ready_q.get(timeout=120)
        base = bridge.stats().accepted
        cpu0 = cpu_snapshot(dbname, broker.pid, pub_pid)
        go_q.put(True)
        t0: float = started_q.get(timeout=120)
        t_last = t0
        last = base
        limit_t = time.monotonic() + args.timeout
        while time.monotonic() < limit_t:
            time.sleep(0.005)
            st = bridge.stats()
            now = st.accepted
            if now != last:
                last, t_last = now, time.time()
            if now + st.rejected - base >= args.readings:
                break
        cpu = cpu_used(cpu0, cpu_snapshot(dbname, broker.pid, pub_pid))
        cpu["wall"] = time.time() - t0
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
            limit=limit,
            cpu_limit=cpu_limit,
            cpu=cpu,
        )
    finally:
        service.stop()
        gc.unfreeze()  # this service's objects: the next run freezes its own
        os.unlink(payloads)
        if profiles is not None:
            print(profiles.report())


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
    parser.add_argument("--per-message", type=int, default=1, help="readings of one device per message")
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--verify-workers", type=int, default=2)
    parser.add_argument(
        "--batch-max", type=int, default=0, help="the bridge's micro-batch size (0: its default)"
    )
    parser.add_argument("--anchoring", action="store_true", help="run the anchoring worker meanwhile")
    parser.add_argument(
        "--profile", action="store_true", help="cProfile the bridge's and the writer's threads"
    )
    parser.add_argument("--mqtt-url", default=None, help="use this broker instead of a private one")
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args(argv)

    dbs = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    print(
        f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs; "
        f"{args.readings} P-256 readings from {args.devices} devices, {args.per_message} a message; "
        f"verify_workers={args.verify_workers}, batch_max={args.batch_max or 'default'}, "
        f"anchoring={'on' if args.anchoring else 'off'}",
        flush=True,
    )
    results: list[Result] = []
    with nullcontext(Broker(args.mqtt_url, None)) if args.mqtt_url else private_broker() as broker:
        print(f"broker: {broker.url}", flush=True)
        for db in dbs:
            with database(db) as db_url:
                results.append(run(db, db_url, broker, args))
    print()
    head = (
        f"{'database':<11} {'readings':>8} {'stored':>8} {'publish s':>9} {'ingest s':>9} "
        f"{'readings/s':>10} {'limit/s':>8} {'share':>6} {'batches':>7} {'avg batch':>9} "
        f"{'redeliv.':>8} {'rejected':>8}"
    )
    print(head)
    print("-" * len(head))
    ok = True
    for r in results:
        print(
            f"{r.db:<11} {r.readings:>8} {r.stored:>8} {r.publish_s:>9.2f} {r.ingest_s:>9.2f} "
            f"{r.rate:>10,.0f} {r.limit:>8,.0f} {r.rate / r.limit:>6.0%} {r.batches:>7} "
            f"{r.readings / max(r.batches, 1):>9.0f} {r.redelivered:>8} {r.rejected:>8}"
        )
        ok = ok and r.stored == r.readings and r.rejected == 0
    print(
        "\nFrom CPU time (what two free cores would do; the wall-clock rate above is the share of the "
        "machine this run got):"
    )
    for r in results:
        print(
            f"  {r.db}: the ledger's side used {1e6 * r.service_cpu / r.readings:,.0f} CPU-us a reading: "
            f"{r.cpu_rate:,.0f} readings/s on 2 cores; the P-256 limit {r.cpu_limit:,.0f}/s; "
            f"share {r.cpu_rate / r.cpu_limit:.0%}"
        )
    for r in results:
        wall = r.cpu.pop("wall")
        print(f"\nCPU seconds during the {r.db} run ({wall:.2f} s wall, {2 * wall:.2f} CPU-s on 2 cores):")
        for part, secs in sorted(r.cpu.items(), key=lambda kv: -kv[1]):
            print(f"  {part:<28} {secs:7.2f}  ({1e6 * secs / r.readings:6.1f} us/reading)")
    if not ok:
        print("\nNOT ALL READINGS WERE STORED (or some were rejected): see above", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
