"""What the access policy costs (issue 14): HTTP batch ingest and a read, with the policy check and
with it bypassed.

    .venv/bin/python bench/bench_policy.py [--db sqlite|postgresql] [--batches 12] [--batch 1000]
                                           [--reads 1500]

Set-up (not timed): the suite on an in-process chain, a factory's P-256 device enrolled, a ledger
service on a fresh database (checks in the request thread), ``--batches`` x ``--batch`` readings
signed ahead and ``--reads`` readings stored and anchored to read back.

Timed, alternating request by request between the two sides (and which goes first), so that both
see the same machine load:

- **ingest**: ``POST /v1/readings`` of a batch (an HTTP request through the app, in process); readings
  acknowledged per second (of the median batch), with the guard (it lets a write through at once)
  and bypassed;
- **read**: ``GET /v1/readings/{digest}`` of a stored reading, p50 and p90 latency of one request.
  *with the policy*: as its owner (a bearer token: verified, the revocation looked up), the guard
  gathering the facts (the reading, its device's owner) and deciding; *as the device*: a
  device-signed request (signature checked against the enrolled key, its nonce spent in the store);
  *bypassed*: the guard replaced by an allow-all (``app.dependency_overrides``), the route reading
  the reading itself: the service as it was before the policy.

"Bypassed" is the policy check (authentication included) taken out, nothing else.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "helpers"))

from reads import bearer
from support import TempPostgresDatabase, TestConsortium, database_url

from contracts.chain import Chain, dev_accounts
from contracts.deploy import deploy_suite
from device_attestation.sdk import DeviceSigner
from ledger_service.access.guard import Granted, guard
from ledger_service.access.policy import ANONYMOUS, Data, Decision, Resource
from ledger_service.api import create_app
from ledger_service.config import Settings
from ledger_service.service import LedgerService

_ALLOW = Granted(ANONYMOUS, Resource(Data.SERVICE), Decision(True, "bench.bypassed"))


async def _allow_all() -> Granted:
    return _ALLOW


def _sign(device: DeviceSigner, n: int, start_ms: int) -> list[dict[str, Any]]:
    return [
        device.sign({"temp_c": 20.0 + i % 100 / 10, "good_units": i % 500}, ts_ms=start_ms + i).to_json_obj()
        for i in range(n)
    ]


def _bypass(client: TestClient, on: bool) -> None:
    overrides = client.app.dependency_overrides  # type: ignore[attr-defined]
    if on:
        overrides[guard] = _allow_all
    else:
        overrides.pop(guard, None)


def _ingest_seconds(client: TestClient, body: list[dict[str, Any]]) -> float:
    t = time.perf_counter()
    r = client.post("/v1/readings", json={"readings": body})
    elapsed = time.perf_counter() - t
    assert r.status_code == 200 and r.json()["rejected"] == 0, r.text[:300]
    return elapsed


def _read_seconds(client: TestClient, path: str, headers: dict[str, str]) -> tuple[float, float]:
    """Wall time and the process's CPU time (every thread: the client's, the app's) of one GET."""
    t, c = time.perf_counter(), time.process_time()
    r = client.get(path, headers=headers)
    elapsed, cpu = time.perf_counter() - t, time.process_time() - c
    assert r.status_code == 200, r.text[:300]
    return elapsed, cpu


def _pct(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(q * len(values)))]


def run(db_url: str, args: argparse.Namespace) -> None:
    chain = Chain.embedded()
    # the TEST-ONLY registry harness: the device is active from 0, so readings dated an hour back count
    deployment = deploy_suite(chain, dev_accounts(1)[0], device_registry="DeviceRegistryHarness")
    consortium = TestConsortium(chain, deployment, registry="harness")
    device = consortium.enroll("SN-BENCH-POLICY", "p256")
    settings = Settings(database_url=db_url, verify_workers=0, anchoring=False, registry_refresh_seconds=0)
    service = LedgerService.build(settings, chain=chain, deployment=deployment)
    now = int(time.time() * 1000) - 3_600_000
    stored = _sign(device, args.reads, now)
    fresh = _sign(device, args.batch * args.batches, now + args.reads)
    batches = [fresh[i : i + args.batch] for i in range(0, len(fresh), args.batch)]
    with TestClient(create_app(service=service)) as client:
        paths = []
        for i in range(0, len(stored), 1000):
            answer = client.post("/v1/readings", json={"readings": stored[i : i + 1000]}).json()
            paths += [f"/v1/readings/{r['receipt']['digest']}" for r in answer["results"]]
        service.anchoring.flush(timeout=120)
        owner = bearer(client, consortium.factory)
        for path in paths[:50]:  # warm up every path
            _read_seconds(client, path, owner)
            _read_seconds(client, path, device.request_headers("GET", path))
        ingest: dict[str, list[float]] = {"policy": [], "bypassed": []}
        reads: dict[str, list[tuple[float, float]]] = {"owner": [], "device": [], "bypassed": []}
        # alternate request by request (and which side goes first), so both see the same machine load
        for i, body in enumerate(batches):
            side = "bypassed" if (i + i // 2) % 2 else "policy"
            _bypass(client, side == "bypassed")
            ingest[side].append(_ingest_seconds(client, body) / len(body))
        for i, path in enumerate(paths):
            order = ("bypassed", "owner", "device") if i % 2 else ("owner", "device", "bypassed")
            for side in order:
                _bypass(client, side == "bypassed")
                headers = {"bypassed": {}, "owner": owner}.get(side) or device.request_headers("GET", path)
                reads[side].append(_read_seconds(client, path, headers))
        _bypass(client, False)
    service.stop()
    _report(db_url.split(":", 1)[0], args, ingest, reads)


def _report(
    kind: str,
    args: argparse.Namespace,
    ingest: dict[str, list[float]],
    reads: dict[str, list[tuple[float, float]]],
) -> None:
    with_policy = 1 / statistics.median(ingest["policy"])
    bypassed = 1 / statistics.median(ingest["bypassed"])
    print(f"\n## {kind}: requests alternating between the two sides")
    print(f"ingest ({args.batches} batches of {args.batch}, readings/s, median batch):")
    print(f"  with the policy {with_policy:10.0f}")
    print(f"  bypassed        {bypassed:10.0f}")
    print(f"  added           {100 * (bypassed - with_policy) / bypassed:9.2f} %  (limit: 5 %)")
    print(f"read GET /v1/readings/{{digest}} ({len(reads['bypassed'])} requests each, ms; wall time, and the")
    print("process's CPU time, which the machine's other load does not inflate):")
    print(f"  {'caller':<26}{'p50':>8}{'p90':>8}{'p50 added':>11}{'CPU p50':>9}{'CPU added':>11}")
    base = statistics.median(w for w, _ in reads["bypassed"]) * 1000
    base_cpu = statistics.median(c for _, c in reads["bypassed"]) * 1000
    for name, label in (("bypassed", "bypassed (no policy)"), ("owner", "owner (bearer token)"),
                        ("device", "device (signed request)")):  # fmt: skip
        wall = [w for w, _ in reads[name]]
        p50, p90 = statistics.median(wall) * 1000, _pct(wall, 0.9) * 1000
        cpu = statistics.median(c for _, c in reads[name]) * 1000
        added = "" if name == "bypassed" else f"{p50 - base:+11.3f}{cpu:9.3f}{cpu - base_cpu:+11.3f}"
        print(f"  {label:<26}{p50:8.3f}{p90:8.3f}" + (added or f"{'':11}{cpu:9.3f}"))
    print("  (limit: 1 ms added at p50)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    ap.add_argument("--batches", type=int, default=40, help="batches posted (half each side)")
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--reads", type=int, default=1500, help="readings read back (each by every caller)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if args.db == "sqlite":
            urls = database_url("sqlite", Path(tmp))
            run(next(urls), args)
        else:
            with TempPostgresDatabase() as db:
                from ledger_service.store.engine import create_schema, make_engine

                create_schema(make_engine(db.url))
                run(db.url, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
