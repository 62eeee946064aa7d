"""Proof bundles served over HTTP from one 10,000-reading batch (issue 17.3).

    .venv/bin/python bench/bench_proofs.py [--db sqlite|postgresql] [--readings 10000] [--clients 8]
        [--seconds 10] [--rounds 1] [--warm] [--page 500] [--skip-bulk] [--profile FILE]

A real ``supet serve`` process on anvil: one device's ``--readings`` signed readings are submitted over
HTTP and anchored as one batch (the default policy closes a batch at 10,000 readings). Then
``--clients`` concurrent keep-alive clients (a minimal HTTP/1.1 client each, as bench_latency.py's, so
that the client's own CPU stays small on the shared cores), signed in as the device's owner, for
``--seconds`` each:

- single: ``GET /v1/readings/{digest}/proof`` of random readings of the batch (each bundle checked
  once against the batch root); ``--rounds`` times (the service keeps serialized bundles: the first
  round builds most of those it serves, the later ones find them built; ``--warm``: every proof is
  fetched once, untimed, before the first round);
- bulk: ``GET /v1/devices/{device_id}/proofs?limit=--page`` paged through the device's readings with
  the cursor (when the service has the route; each page's bundles counted);
- limit: ``GET /healthz`` with the same clients: what the HTTP stack alone serves on this machine.

Printed: proofs/s (requests/s for the limit), p50/p99 per request, the server's CPU per request (its
threads and worker processes, from /proc) and this process's, and the load average before and after.
``--profile FILE``: the server runs under a per-thread cProfile (bench/profile_server.py), its
statistics written to FILE (CPU figures are then the profiler's, several times higher).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

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
from device_attestation.merkle import verify_inclusion


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


async def _get(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str, auth: bytes) -> bytes:
    writer.write(b"GET " + path.encode() + b" HTTP/1.1\r\nHost: bench\r\n" + auth + b"\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    body = await reader.readexactly(length)
    if status != 200:
        raise RuntimeError(f"GET {path}: {status} {body[:300]!r}")
    return body


async def client_loop(port: int, paths: list[str], auth: bytes, seconds: float, lat: list[float]) -> int:
    """GET ``paths`` round and round for ``seconds``; answers the number of proofs received."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    proofs = 0
    try:
        end = time.perf_counter() + seconds
        i = random.randrange(len(paths))
        while time.perf_counter() < end:
            t = time.perf_counter()
            body = await _get(reader, writer, paths[i % len(paths)], auth)
            lat.append(time.perf_counter() - t)
            i += 1
            proofs += body.count(b'"proof":') if b'"proof":' in body else 1
    finally:
        writer.close()
    return proofs


async def bulk_loop(
    port: int, device_id: str, page: int, auth: bytes, seconds: float, lat: list[float]
) -> int:
    """Page through the device's proofs, again and again, for ``seconds``; the proofs received."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    proofs = 0
    try:
        end = time.perf_counter() + seconds
        cursor: str | None = None
        while time.perf_counter() < end:
            path = f"/v1/devices/{device_id}/proofs?limit={page}" + (f"&cursor={cursor}" if cursor else "")
            t = time.perf_counter()
            body = orjson.loads(await _get(reader, writer, path, auth))
            lat.append(time.perf_counter() - t)
            proofs += len(body["proofs"])
            cursor = body["next_cursor"]
    finally:
        writer.close()
    return proofs


def database_cpu(dbname: str | None) -> float:
    """CPU seconds PostgreSQL's backends serving ``dbname`` have used so far (0 for SQLite: in-process)."""
    return sum(process_cpu(p) for p in postgres_backends(dbname)) if dbname else 0.0


async def warm(port: int, paths: list[str], auth: bytes, clients: int) -> None:
    """Fetch each of ``paths`` once, ``clients`` connections sharing them out."""

    async def one(share: list[str]) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for path in share:
                await _get(reader, writer, path, auth)
        finally:
            writer.close()

    await asyncio.gather(*(one(paths[k::clients]) for k in range(clients)))


def measure(
    label: str,
    loops: list[Coroutine[Any, Any, int]],
    lat: list[float],
    cpu: CpuMeter,
    unit: str = "proofs",
    dbname: str | None = None,
) -> float:
    async def go() -> tuple[list[int], float]:
        t = time.perf_counter()
        counts = await asyncio.gather(*loops)
        return list(counts), time.perf_counter() - t

    before = loadavg()
    db0 = database_cpu(dbname)
    cpu.start()
    counts, elapsed = asyncio.run(go())
    cpu.stop()
    db_us = (database_cpu(dbname) - db0) / max(len(lat), 1) * 1e6
    db = f", postgresql backends {db_us:,.0f} us" if dbname else ""
    rate = sum(counts) / elapsed
    ms = [x * 1000 for x in lat]
    print(
        f"  {label}: {sum(counts):,} {unit} in {elapsed:.1f}s = {rate:,.0f} {unit}/s; per request p50 "
        f"{pct(ms, 50):.1f} ms p99 {pct(ms, 99):.1f} ms ({len(ms):,} requests); "
        f"{cpu.per_request(len(ms))}{db}; load average {before} -> {loadavg()}",
        flush=True,
    )
    return rate


def submit_and_anchor(port: int, bodies: list[bytes], auth: dict[str, str]) -> tuple[list[str], bytes]:
    """Submit the signed readings, wait until the last is anchored; the digests and the batch root."""
    digests: list[str] = []
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=600) as client:
        for i in range(0, len(bodies), 2000):
            r = client.post(
                "/v1/readings",
                content=b'{"readings":[' + b",".join(bodies[i : i + 2000]) + b"]}",
                headers={"content-type": "application/json"},
            )
            r.raise_for_status()
            out = r.json()
            if out["rejected"]:
                raise RuntimeError(f"rejected: {out['results'][:3]}")
            digests += [item["receipt"]["digest"] for item in out["results"]]
        deadline = time.monotonic() + 300
        while True:
            r = client.get(f"/v1/readings/{digests[-1]}/proof", headers=auth)
            if r.status_code == 200:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"not anchored in 300 s: {r.text}")
            time.sleep(0.5)
        first = client.get(f"/v1/readings/{digests[0]}/proof", headers=auth).json()
        last = r.json()
    if first["batch_id"] != last["batch_id"]:
        raise RuntimeError("the readings went into more than one batch; raise SUPET_BATCH_MAX_READINGS")
    root = bytes.fromhex(last["root"][2:])
    verify_inclusion(
        digest=bytes.fromhex(first["digest"][2:]),
        proof=[bytes.fromhex(p[2:]) for p in first["proof"]],
        root=root,
    )
    return digests, root


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--readings", type=int, default=10_000)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--rounds", type=int, default=1, help="measure the single proofs this many times")
    ap.add_argument("--warm", action="store_true", help="fetch every proof once before measuring")
    ap.add_argument("--page", type=int, default=500)
    ap.add_argument("--profile", metavar="FILE", help="run the server under cProfile, statistics to FILE")
    ap.add_argument("--skip-bulk", action="store_true", help="measure only the limit and single proofs")
    args = ap.parse_args()
    with AnvilNode() as node, tempfile.TemporaryDirectory() as tmp:
        chain = Chain.connect(node.url)
        dep = deploy_suite(chain, dev_accounts(1)[0])
        dep_file = Path(tmp) / "deployment.json"
        dep.save(dep_file)
        consortium = TestConsortium(chain, dep)
        signer = consortium.enroll("SN-PROOFS-0001")
        now = int(time.time() * 1000) - 50_000
        t = time.perf_counter()
        bodies = [
            orjson.dumps(signer.sign({"temp_c": 21.0, "good_units": k}, ts_ms=now + k // 10).to_json_obj())
            for k in range(args.readings)
        ]
        print(f"signed {len(bodies):,} readings in {time.perf_counter() - t:.1f}s", flush=True)
        pg = TempPostgresDatabase() if args.db == "postgresql" else None
        url = pg.__enter__().url if pg else f"sqlite:///{tmp}/proofs.db"
        dbname = pg.name if pg else None
        env = {
            **os.environ,
            "SUPET_CHAIN": node.url,
            "SUPET_DEPLOYMENT": str(dep_file),
            "SUPET_DATABASE_URL": url,
            "SUPET_BATCH_MAX_READINGS": str(max(args.readings, 1)),
            "SUPET_BATCH_MAX_SECONDS": "600",
        }
        port = free_port()
        proc = start_server(env, port, profile=args.profile)
        cpu = CpuMeter(proc.pid)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
                tok = token(client, consortium.factory)
            auth = {"Authorization": f"Bearer {tok}"}
            t = time.perf_counter()
            digests, _root = submit_and_anchor(port, bodies, auth)
            print(
                f"{args.db}: {len(digests):,} readings submitted and anchored as one batch in "
                f"{time.perf_counter() - t:.1f}s; {args.clients} clients, {args.seconds:.0f}s each",
                flush=True,
            )
            head = f"Authorization: Bearer {tok}\r\n".encode()
            paths = [f"/v1/readings/{d}/proof" for d in digests]
            random.shuffle(paths)
            lat: list[float] = []
            measure(
                "limit  GET /healthz",
                [client_loop(port, ["/healthz"], b"", args.seconds, lat) for _ in range(args.clients)],
                lat,
                cpu,
                "requests",
                dbname,
            )
            if args.warm:
                t = time.perf_counter()
                asyncio.run(warm(port, paths, head, args.clients))
                print(f"  warmed: every proof fetched once in {time.perf_counter() - t:.1f}s", flush=True)
            for k in range(args.rounds):
                lat = []
                measure(
                    "single GET /v1/readings/{digest}/proof" + (f" round {k + 1}" if args.rounds > 1 else ""),
                    [client_loop(port, paths, head, args.seconds, lat) for _ in range(args.clients)],
                    lat,
                    cpu,
                    dbname=dbname,
                )
            if args.skip_bulk:
                return 0
            probe = httpx.get(
                f"http://127.0.0.1:{port}/v1/devices/{signer.device_id}/proofs?limit=1", headers=auth
            )
            if probe.status_code == 404 and "proofs" not in probe.text:
                print("  bulk: GET /v1/devices/{device_id}/proofs is not served by this version")
            else:
                lat = []
                measure(
                    f"bulk   GET /v1/devices/{{device_id}}/proofs?limit={args.page}",
                    [
                        bulk_loop(port, signer.device_id, args.page, head, args.seconds, lat)
                        for _ in range(args.clients)
                    ],
                    lat,
                    cpu,
                )
        finally:
            proc.terminate()
            proc.wait(30)
            if pg:
                pg.__exit__()
    return 0


if __name__ == "__main__":
    sys.exit(main())
