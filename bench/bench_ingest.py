"""Ingest throughput: signed P-256 readings accepted durably through the HTTP batch endpoint.

    .venv/bin/python bench/bench_ingest.py [--readings 100000] [--db sqlite|postgresql|both]
    .venv/bin/python bench/bench_ingest.py --db postgresql --instances 2   # two servers, one database

Set-up (not timed): anvil with the suite deployed, 100 P-256 devices enrolled,
``--readings`` readings signed and pre-encoded as request bodies of ``--batch``
submissions. Timed: ``supet serve`` (a separate process: HTTP + checks in 2 threads
+ the group-commit writer + the anchoring worker) receives the bodies
over ``--concurrency`` connections; the rate is readings acknowledged (accepted
receipts: committed to the database) per second of wall time. The bare P-256
verify rate of both cores (the limit) is measured in the same run.

``--instances N`` starts N servers on the one database (PostgreSQL) and sends the
bodies to them in turn; ``--no-anchoring`` runs them without the anchoring worker
(the ingest path alone: its database cost apart from closing batches).

Where the CPU goes (the machine is shared, so wall time is the share of the cores the run got):
CPU seconds of each server's verify workers (signature: its ``supet-verify`` threads, or its worker
processes in versions before them), its writer thread and the
database's backend processes (database), and the rest of the server process (HTTP:
the server stack, decoding, the pipeline's routing and answers, anchoring), per
reading; and the rate two free cores would reach at that CPU cost, beside the P-256
limit from CPU time (``bench_ingest_mqtt.bare_verify_cpu_limit``).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "helpers"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from http_server import postgres_backends, start_server
from support import TempPostgresDatabase, TestConsortium

from contracts.anvil import AnvilNode, free_port
from contracts.chain import Chain, dev_accounts
from contracts.deploy import deploy_suite

ROOT = Path(__file__).resolve().parent.parent


def _bare_verify(n: int) -> float:
    key = ec.generate_private_key(ec.SECP256R1())
    pub = key.public_key()
    algo = ec.ECDSA(Prehashed(hashes.SHA256()))
    digests = [os.urandom(32) for _ in range(256)]
    sigs = [key.sign(d, algo) for d in digests]
    t = time.perf_counter()
    for i in range(n):
        pub.verify(sigs[i % 256], digests[i % 256], algo)
    return n / (time.perf_counter() - t)


def bare_verify_both_cores(n: int = 40_000) -> float:
    with mp.get_context("spawn").Pool(2) as pool:
        pool.map(_bare_verify, [256, 256])  # warm up: imports and key set-up are not the limit
        t = time.perf_counter()
        pool.map(_bare_verify, [n // 2, n // 2])
        return n / (time.perf_counter() - t)


def sign_bodies(consortium: TestConsortium, readings: int, batch: int, devices: int) -> list[bytes]:
    signers = [consortium.enroll(f"SN-BENCH-{i:04d}", "p256") for i in range(devices)]
    # Dated just before now: a device is active from its enrollment block's time less 55 s (issue 12.2),
    # so readings dated a minute back were refused (device.not_yet_active) for every device enrolled in
    # the last 5 s of the set-up, most of them on a busy machine.
    now = int(time.time() * 1000) - 2_000
    subs = []
    for i in range(readings):
        s = signers[i % devices]
        subs.append(
            s.sign(
                {"temp_c": 20.0 + (i % 100) / 10, "pressure_kpa": 101.325, "good_units": i % 500},
                ts_ms=now + i // devices,
                lot_id="LOT-BENCH",
            ).to_json_obj()
        )
    return [orjson.dumps({"readings": subs[i : i + batch]}) for i in range(0, len(subs), batch)]


_TICK = os.sysconf("SC_CLK_TCK")


def _cpu(path: str) -> tuple[str, float]:
    """(name, CPU seconds) of a /proc stat file; ("", 0) when the process or thread is gone."""
    try:
        text = Path(path).read_text()
    except OSError:
        return "", 0.0
    fields = text[text.rindex(")") + 2 :].split()
    return text[text.index("(") + 1 : text.rindex(")")], (int(fields[11]) + int(fields[12])) / _TICK


def cpu_parts(servers: list[int], dbname: str | None) -> dict[str, float]:
    """CPU seconds so far: signature (verify workers), database (writer threads, PostgreSQL's backends),
    HTTP (the rest of the server processes), and the machine's busy CPU."""
    parts = dict.fromkeys(
        ("signature (verify workers)", "database: writer thread", "HTTP + rest of server"), 0.0
    )
    for pid in servers:
        for tid in os.listdir(f"/proc/{pid}/task"):
            name, secs = _cpu(f"/proc/{pid}/task/{tid}/stat")
            if name == "supet-committer":
                part = "database: writer thread"
            elif name.startswith("supet-verify"):  # the checking threads (ledger_service/ingest/pipeline.py)
                part = "signature (verify workers)"
            else:
                part = "HTTP + rest of server"
            parts[part] += secs
            try:
                kids = Path(f"/proc/{pid}/task/{tid}/children").read_text().split()
            except OSError:
                kids = []
            for kid in kids:
                parts["signature (verify workers)"] += _cpu(f"/proc/{kid}/stat")[1]
    if dbname is not None:
        parts["database: postgresql backends"] = sum(
            _cpu(f"/proc/{p}/stat")[1] for p in postgres_backends(dbname)
        )
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    parts["machine (all processes)"] = (sum(fields[:8]) - fields[3] - fields[4]) / _TICK
    return parts


def warm_up(bodies: list[bytes], ports: list[int]) -> None:
    """One body to each server (not counted: before the CPU snapshot and the clock start)."""
    with httpx.Client(timeout=300) as client:
        for port, body in zip(ports, bodies, strict=False):
            url = f"http://127.0.0.1:{port}/v1/readings"
            r = client.post(url, content=body, headers={"content-type": "application/json"})
            r.raise_for_status()


def measure(bodies: list[bytes], ports: list[int], concurrency: int) -> tuple[int, float]:
    """Send every body but the warm-up ones (the first ``len(ports)``)."""
    urls = [f"http://127.0.0.1:{port}/v1/readings" for port in ports]
    accepted = 0
    rejected: dict[str, int] = {}

    def post(numbered: tuple[int, bytes]) -> int:
        n, body = numbered
        r = client.post(urls[n % len(urls)], content=body, headers={"content-type": "application/json"})
        r.raise_for_status()
        body = orjson.loads(r.content)
        for item in body["results"]:
            if "error" in item:
                rejected[item["error"]["code"]] = rejected.get(item["error"]["code"], 0) + 1
        return int(body["accepted"])

    with httpx.Client(timeout=300, limits=httpx.Limits(max_connections=concurrency)) as client:
        t = time.perf_counter()
        with cf.ThreadPoolExecutor(concurrency) as ex:
            for n in ex.map(post, enumerate(bodies[len(urls) :])):
                accepted += n
        elapsed = time.perf_counter() - t
    if rejected:
        print(f"  rejections: {rejected}")
    return accepted, elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--readings", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--devices", type=int, default=100)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2, help="verify workers (checking threads) of the server")
    ap.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    ap.add_argument("--instances", type=int, default=1, help="servers on the one database (PostgreSQL)")
    ap.add_argument(
        "--no-anchoring", action="store_true", help="servers without the anchoring worker (ingest alone)"
    )
    args = ap.parse_args()
    if args.instances > 1 and args.db != "postgresql":
        ap.error("--instances > 1 needs --db postgresql")

    from bench_ingest_mqtt import bare_verify_cpu_limit

    limit, cpu_limit = bare_verify_both_cores(), bare_verify_cpu_limit()
    print(
        f"bare P-256 verify, 2 processes: {limit:,.0f}/s wall clock, {cpu_limit:,.0f}/s from CPU time "
        f"(2 x verifications per CPU second): the limit"
    )
    print(f"load average before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}")
    results = []
    with AnvilNode() as node, tempfile.TemporaryDirectory() as tmp:
        chain = Chain.connect(node.url)
        dep = deploy_suite(chain, dev_accounts(1)[0])
        dep_file = Path(tmp) / "deployment.json"
        dep.save(dep_file)
        consortium = TestConsortium(chain, dep)
        t = time.perf_counter()
        extra = args.instances * args.batch  # the warm-up bodies
        bodies = sign_bodies(consortium, args.readings + extra, args.batch, args.devices)
        print(f"signed {args.readings + extra:,} readings in {time.perf_counter() - t:.1f}s (set-up)")
        kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
        for kind in kinds:
            pg = TempPostgresDatabase() if kind == "postgresql" else None
            url = pg.__enter__().url if pg else f"sqlite:///{tmp}/bench-{kind}.db"
            env = {
                **os.environ,
                "SUPET_CHAIN": node.url,
                "SUPET_DEPLOYMENT": str(dep_file),
                "SUPET_DATABASE_URL": url,
                "SUPET_VERIFY_WORKERS": str(args.workers),
                "SUPET_ANCHORING": "false" if args.no_anchoring else "true",
                "SUPET_TOKEN_SECRET": "bench-" + os.urandom(24).hex(),  # the same on every instance
            }
            procs: list[subprocess.Popen[bytes]] = []
            try:
                ports = []
                for i in range(args.instances):
                    ports.append(free_port())
                    procs.append(start_server({**env, "SUPET_DATA_DIR": f"{tmp}/data-{kind}-{i}"}, ports[-1]))
                dbname = url.rsplit("/", 1)[-1] if pg else None
                # the warm-up bodies before the CPU snapshot: their readings are not counted (until
                # issue 17.3 they were inside it, a quarter more CPU per reading at the defaults)
                warm_up(bodies, ports)
                before = cpu_parts([p.pid for p in procs], dbname)
                load = os.getloadavg()
                accepted, secs = measure(bodies, ports, args.concurrency)
                after = cpu_parts([p.pid for p in procs], dbname)
            finally:
                for proc in procs:
                    proc.terminate()
                    proc.wait(30)
                if pg:
                    pg.__exit__()
            expected = args.readings
            cpu = {k: after[k] - before.get(k, 0.0) for k in after}
            results.append((kind, accepted, secs))
            print(
                f"{kind:<10} x{args.instances} accepted {accepted:,}/{expected:,} in {secs:.2f}s: "
                f"{accepted / secs:,.0f} readings/s wall clock ({accepted / secs / limit:.0%} of the limit "
                f"{limit:,.0f}/s); load average {load[0]:.2f} at the start"
            )
            service = sum(v for k, v in cpu.items() if not k.startswith("machine"))
            if accepted and service:
                rate = 2 * accepted / service
                print(
                    f"  from CPU time: {1e6 * service / accepted:,.0f} CPU-us a reading, ledger side: "
                    f"{rate:,.0f} readings/s on 2 free cores, {rate / cpu_limit:.0%} of the limit "
                    f"{cpu_limit:,.0f}/s"
                )
                for part, secs_used in sorted(cpu.items(), key=lambda kv: -kv[1]):
                    print(
                        f"    {part:<32} {secs_used:7.2f} s  ({1e6 * secs_used / accepted:6.1f} us/reading)"
                    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
