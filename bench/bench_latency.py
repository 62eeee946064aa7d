"""Latency: single-reading submits from 200 concurrent devices, and submit-to-anchored time.

    .venv/bin/python bench/bench_latency.py [--devices 200] [--per-device 25] [--db sqlite|postgresql]
        [--instances N]

Each simulated device (an asyncio task with its own connection) sends its readings
one at a time, each after the previous one was acknowledged, like a sensor would.
Reported: p50/p90/p99/max of the time from sending a reading to its 201 receipt
(durably committed), the submits per second, the server's and this process's CPU per submit, and
beside them the limit measured in the same run: P-256 signature verifications per second on one
core (``verify_signature`` on the run's own readings, in this process, before the HTTP run; issue
17.3 asks for at least 25 % of it over HTTP). Then, at the default batch policy (10,000 readings or 5 s),
the time from a reading's receipt to its proof bundle being served (anchored),
sampled over readings submitted at different moments.

The devices are a closed loop (each waits for its receipt before sending the next), so the mean latency
is the number of devices over the rate (Little's law): p99 < 50 ms from 200 devices takes at least
4,000 submits/s. On PostgreSQL the database's own CPU per submit (its backends serving this run's
database, those opened during the run included) is printed beside the server's.

``--instances N`` (PostgreSQL only) runs N ``supet serve`` processes on the one database, each on its own
port, sharing a token secret (docs/deployment.md, "Several instances"); the devices are dealt to them
in turn (as a proxy spreading connections would) and the servers' CPU is their sum. One process uses one
core at most (the GIL): on two cores, this is how the service uses the second one.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "helpers"))

from http_server import CpuMeter, postgres_backends, process_cpu, start_server
from reads import token
from support import TempPostgresDatabase, TestConsortium

from contracts.anvil import AnvilNode, free_port
from contracts.chain import Chain, dev_accounts
from contracts.deploy import deploy_suite
from device_attestation.sdk import Submission
from device_attestation.signing import verify_signature


def verify_limit(subs: list[Submission], keys: dict[str, object], seconds: float = 3.0) -> float:
    """P-256 verifications per second on one core: ``verify_signature`` round the given submissions."""
    n = 0
    t = time.process_time()
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for sub in subs:
            verify_signature(sub.scheme, keys[sub.reading.device_id], sub.digest, sub.signature)  # type: ignore[arg-type]
        n += len(subs)
    return n / (time.process_time() - t)


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


async def device_loop(
    port: int, bodies: list[bytes], lat: list[float], digests: list[tuple[str, float]]
) -> None:
    """One device on its own keep-alive connection. A minimal HTTP/1.1 client: with 200 devices on the
    same 2 cores, a full client library's own CPU would be measured instead of the service."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for body in bodies:
            t = time.perf_counter()
            writer.write(
                b"POST /v1/readings HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = int(
                next(
                    line.split(b":", 1)[1]
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
            )
            answer = await reader.readexactly(length)
            lat.append(time.perf_counter() - t)
            if status != 201:
                raise RuntimeError(f"submit failed: {status} {answer!r}")
            digests.append((orjson.loads(answer)["digest"], time.perf_counter()))
    finally:
        writer.close()


async def run(
    ports: list[int], per_device: list[list[bytes]]
) -> tuple[list[float], list[tuple[str, float]], float]:
    """Every device's loop at once, device ``i`` on ``ports[i % len(ports)]``."""
    lat: list[float] = []
    digests: list[tuple[str, float]] = []
    t = time.perf_counter()
    await asyncio.gather(
        *(device_loop(ports[i % len(ports)], b, lat, digests) for i, b in enumerate(per_device))
    )
    return lat, digests, time.perf_counter() - t


async def time_to_anchor(port: int, samples: list[tuple[str, float]], auth: dict[str, str]) -> list[float]:
    """Seconds from each sampled receipt to its proof being served (to its owner: proofs are not public)."""
    out: list[float] = []
    async with httpx.AsyncClient(timeout=30, headers=auth) as client:
        pending = dict(samples)
        deadline = time.perf_counter() + 120
        while pending and time.perf_counter() < deadline:
            for digest, acked in list(pending.items()):
                r = await client.get(f"http://127.0.0.1:{port}/v1/readings/{digest}/proof")
                if r.status_code == 200:
                    out.append(time.perf_counter() - acked)
                    del pending[digest]
            await asyncio.sleep(0.05)
        if pending:
            raise RuntimeError(f"{len(pending)} readings not anchored within 120 s")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", type=int, default=200)
    ap.add_argument("--per-device", type=int, default=25)
    ap.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--profile", metavar="FILE", help="run the server under cProfile, statistics to FILE")
    ap.add_argument(
        "--instances", type=int, default=1, help="supet serve processes on the one database (PostgreSQL)"
    )
    args = ap.parse_args()
    if args.instances < 1 or (args.instances > 1 and args.db != "postgresql"):
        ap.error(
            "--instances N takes N >= 1, and more than one only with --db postgresql (one per SQLite file)"
        )
    with AnvilNode() as node, tempfile.TemporaryDirectory() as tmp:
        chain = Chain.connect(node.url)
        dep = deploy_suite(chain, dev_accounts(1)[0])
        dep_file = Path(tmp) / "deployment.json"
        dep.save(dep_file)
        consortium = TestConsortium(chain, dep)
        signers = [consortium.enroll(f"SN-LAT-{i:04d}") for i in range(args.devices)]
        # from now on: enrolling 200 devices takes over a minute on a loaded machine, and a reading
        # from before its device's activation is refused
        now = int(time.time() * 1000)
        subs = [
            [s.sign({"temp_c": 21.0, "good_units": k}, ts_ms=now + k) for k in range(args.per_device)]
            for s in signers
        ]
        per_device = [[orjson.dumps(sub.to_json_obj()) for sub in row] for row in subs]
        keys: dict[str, object] = {s.device_id: s.key.public_key for s in signers}
        limit = verify_limit([row[0] for row in subs], keys)
        pg = TempPostgresDatabase() if args.db == "postgresql" else None
        url = pg.__enter__().url if pg else f"sqlite:///{tmp}/lat.db"
        env = {
            **os.environ,
            "SUPET_CHAIN": node.url,
            "SUPET_DEPLOYMENT": str(dep_file),
            "SUPET_DATABASE_URL": url,
        }
        if args.instances > 1:  # the instances accept each other's tokens (docs/deployment.md)
            env["SUPET_TOKEN_SECRET"] = secrets.token_hex(32)
        ports: list[int] = []
        procs = []
        try:
            for k in range(args.instances):
                ports.append(free_port())
                profile = f"{args.profile}.{k}" if args.profile and k else args.profile
                procs.append(start_server(env, ports[-1], profile=profile))
        except BaseException:
            for started in procs:
                started.terminate()
            raise
        port = ports[0]
        cpu = CpuMeter(procs[0].pid, others=[p.pid for p in procs[1:]])
        try:
            load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
            dbname = url.rsplit("/", 1)[-1]
            db_before = {b: process_cpu(b) for b in postgres_backends(dbname)} if pg else {}
            cpu.start()
            lat, digests, total = asyncio.run(run(ports, per_device))
            cpu.stop()
            # backends opened during the run count whole (their CPU is this run's)
            db_cpu = (
                sum(process_cpu(b) - db_before.get(b, 0.0) for b in postgres_backends(dbname)) if pg else 0.0
            )
            load_after = " ".join(f"{x:.2f}" for x in os.getloadavg())
            ms = [x * 1000 for x in lat]
            print(
                f"{args.db}{f' ({args.instances} instances)' if args.instances > 1 else ''}: "
                f"{len(ms):,} single submits from {args.devices} concurrent devices in "
                f"{total:.1f}s ({len(ms) / total:,.0f}/s)"
            )
            print(
                f"  P-256 verification limit (one core, same run): {limit:,.0f}/s; submits are "
                f"{len(ms) / total / limit:.0%} of it; {cpu.per_request(len(ms))}; load average "
                f"{load_before} -> {load_after}"
            )
            if pg:
                print(f"  PostgreSQL backends' CPU per submit: {db_cpu / len(ms) * 1e6:,.0f} us")
            # on a shared machine a microsecond of CPU is worth more or less from run to run; the run's
            # own verification rate is the yardstick: 25 % of the limit on one core takes <= 4 of them
            print(
                f"  server CPU per submit = {cpu.server / len(ms) * limit:.1f} verifications' worth "
                f"(one core's throughput: {1 / (cpu.server / len(ms) * limit):.0%} of the limit)"
            )
            print(
                f"  submit->receipt ms: p50 {pct(ms, 50):.1f}  p90 {pct(ms, 90):.1f}  p99 {pct(ms, 99):.1f}  "
                f"max {max(ms):.1f}; mean {statistics.fmean(ms):.1f} (each device waits for its receipt: "
                f"the mean is devices / rate, so p99 < 50 ms needs at least {args.devices / 0.05:,.0f}/s)",
                flush=True,
            )
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
                auth = {"Authorization": f"Bearer {token(client, consortium.factory)}"}
            step = max(1, len(digests) // 40)
            anchored = asyncio.run(time_to_anchor(port, digests[::step], auth))
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(30)
            if pg:
                pg.__exit__()
    print(
        f"  receipt->anchored (proof served) s, default policy (10,000 readings or 5 s): "
        f"p50 {statistics.median(anchored):.2f}  max {max(anchored):.2f}  (n={len(anchored)})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
