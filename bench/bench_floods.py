"""Floods: oversized bodies and invalid signatures against `supet serve`, with a concurrent reader.

    .venv/bin/python bench/bench_floods.py [--seconds 20] [--attackers 8] [--db sqlite|postgresql]

Set-up (not timed): anvil with the suite deployed, 20 P-256 devices enrolled, 200 readings
accepted (the reader's data), `supet serve` in its own process (2 signature workers).

Then three phases of ``--seconds`` each, the same reader in all three: one client that reads a
stored reading's status (``GET /v1/readings/{digest}``) and ``GET /healthz`` in a loop, one request
at a time, and records each latency.

1. quiet: the reader alone (its baseline p50/p99);
2. oversized bodies: ``--attackers`` connections each sending, in a loop, bodies past the caps:
   a declared 64 MiB to ``POST /v1/auth/challenge`` (refused on its Content-Length), and a chunked
   body with no length to ``POST /v1/readings`` that streams 1 MiB pieces until the server answers;
3. invalid signatures: ``--attackers`` connections each posting batches of 1,000 well-formed readings
   of enrolled devices whose signatures do not verify.

Reported per phase: attack requests answered per second (and readings refused per second in the
signature flood), the answers' status codes, the server's peak resident memory (its process and
its worker processes, sampled every 50 ms from /proc), and the reader's p50/p99/max.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "helpers"))

from http_server import start_server
from support import TempPostgresDatabase, TestConsortium

from contracts.anvil import AnvilNode, free_port
from contracts.chain import Chain, dev_accounts
from contracts.deploy import deploy_suite


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))] if values else float("nan")


def tree_rss_mib(pid: int) -> float:
    """Resident memory of a process and its children (MiB), from /proc."""
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    total = 0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


class Sampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.stop = pid, 0.0, threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.peak = max(self.peak, tree_rss_mib(self.pid))
            time.sleep(0.05)


def reader(port: int, digest: str, until: float, lat: list[float]) -> None:
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as c:
        i = 0
        while time.monotonic() < until:
            path = f"/v1/readings/{digest}" if i % 2 == 0 else "/healthz"
            t = time.perf_counter()
            r = c.get(path)
            lat.append(time.perf_counter() - t)
            if r.status_code != 200:
                raise RuntimeError(f"reader got {r.status_code} on {path}: {r.text[:200]}")
            i += 1


async def _read_answer(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await reader.readexactly(length)
    return status


async def oversized(port: int, until: float, codes: Counter[int], n: list[int]) -> None:
    piece = b"[" * (1 << 20)
    while time.monotonic() < until:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        try:
            if n[0] % 2 == 0:  # declared too large: the server must answer without reading it
                w.write(
                    b"POST /v1/auth/challenge HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 67108864\r\n\r\n" + piece[:65536]
                )
                await w.drain()
                codes[await asyncio.wait_for(_read_answer(r), 30)] += 1
            else:  # chunked, no length: streamed until the server answers (it must cut it off)
                w.write(
                    b"POST /v1/readings HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                    b"Transfer-Encoding: chunked\r\n\r\n"
                )
                answer = asyncio.ensure_future(_read_answer(r))
                sent = 0
                while not answer.done() and sent < 256 and time.monotonic() < until + 5:
                    w.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                    try:
                        await w.drain()
                    except ConnectionError:
                        break
                    sent += 1
                    await asyncio.sleep(0)
                codes[await asyncio.wait_for(answer, 30)] += 1
            n[0] += 1
        except (ConnectionError, asyncio.IncompleteReadError):
            codes[0] += 1  # the server closed the connection on us: also a refusal
            n[0] += 1
        except TimeoutError:
            codes[-1] += 1  # no answer within 30 s: the server held the request
            n[0] += 1
        finally:
            w.close()


async def bad_signatures(port: int, body: bytes, until: float, codes: Counter[int], n: list[int]) -> None:
    r, w = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.monotonic() < until:
            w.write(
                b"POST /v1/readings HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            codes[await _read_answer(r)] += 1
            n[0] += 1
    finally:
        w.close()


def phase(name: str, port: int, pid: int, digest: str, seconds: float, attack) -> None:  # type: ignore[no-untyped-def]
    lat: list[float] = []
    codes: Counter[int] = Counter()
    n = [0]
    sampler = Sampler(pid)
    sampler.start()
    until = time.monotonic() + seconds
    t = threading.Thread(target=reader, args=(port, digest, until, lat))
    t0 = time.perf_counter()
    t.start()
    if attack is not None:
        asyncio.run(attack(until, codes, n))
    t.join()
    elapsed = time.perf_counter() - t0
    sampler.stop.set()
    sampler.join()
    rate = f"{n[0] / elapsed:,.1f} attack requests/s, answers {dict(codes)}; " if attack else ""
    print(
        f"{name:<20} {rate}peak RSS {sampler.peak:,.0f} MiB; reader ({len(lat):,} requests) "
        f"p50 {statistics.median(lat) * 1000:.1f} ms, p99 {pct(lat, 99) * 1000:.1f} ms, "
        f"max {max(lat) * 1000:.1f} ms"
    )
    return n[0]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--attackers", type=int, default=8)
    ap.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    args = ap.parse_args()

    with AnvilNode() as node, tempfile.TemporaryDirectory() as tmp:
        chain = Chain.connect(node.url)
        dep = deploy_suite(chain, dev_accounts(1)[0])
        dep_file = Path(tmp) / "deployment.json"
        dep.save(dep_file)
        consortium = TestConsortium(chain, dep)
        signers = [consortium.enroll(f"SN-FLOOD-{i:03d}", "p256") for i in range(20)]
        now = int(time.time() * 1000) - 60_000
        good = [
            signers[i % 20].sign({"temp_c": 20.5, "good_units": i}, ts_ms=now + i).to_json_obj()
            for i in range(200)
        ]
        forged = []
        for i in range(1000):
            sub = signers[i % 20].sign({"temp_c": 21.0, "good_units": i}, ts_ms=now + 1000 + i).to_json_obj()
            sig = bytearray(bytes.fromhex(sub["signature"][2:]))
            sig[5] ^= 0x01  # still low-S and well-formed, no longer a signature of this digest
            forged.append({**sub, "signature": "0x" + sig.hex()})
        forged_body = orjson.dumps({"readings": forged})

        pg = TempPostgresDatabase() if args.db == "postgresql" else None
        url = pg.__enter__().url if pg else f"sqlite:///{tmp}/flood.db"
        env = {
            **os.environ,
            "SUPET_CHAIN": node.url,
            "SUPET_DEPLOYMENT": str(dep_file),
            "SUPET_DATABASE_URL": url,
            "SUPET_DATA_DIR": f"{tmp}/data",
            "SUPET_VERIFY_WORKERS": "2",
        }
        port = free_port()
        proc = start_server(env, port)
        try:
            r = httpx.post(f"http://127.0.0.1:{port}/v1/readings", json={"readings": good}, timeout=60)
            r.raise_for_status()
            digest = r.json()["results"][0]["receipt"]["digest"]
            print(f"server pid {proc.pid}, {args.attackers} attackers, {args.seconds:.0f} s/phase, {args.db}")
            phase("quiet", port, proc.pid, digest, args.seconds, None)

            async def attack_oversized(until, codes, n):  # type: ignore[no-untyped-def]
                await asyncio.gather(*(oversized(port, until, codes, n) for _ in range(args.attackers)))

            phase("oversized bodies", port, proc.pid, digest, args.seconds, attack_oversized)

            async def attack_sigs(until, codes, n):  # type: ignore[no-untyped-def]
                await asyncio.gather(
                    *(bad_signatures(port, forged_body, until, codes, n) for _ in range(args.attackers))
                )

            t = time.perf_counter()
            requests = phase("invalid signatures", port, proc.pid, digest, args.seconds, attack_sigs)
            print(f"{'':<20} {requests * 1000 / (time.perf_counter() - t):,.0f} forged readings refused/s")
            alive = proc.poll() is None
            print(f"server alive after the floods: {alive}")
        finally:
            proc.terminate()
            proc.wait(30)
            if pg:
                pg.__exit__()
    return 0


if __name__ == "__main__":
    sys.exit(main())
