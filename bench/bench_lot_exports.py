"""The cost of a lot's exports for one anonymous GET: the EPCIS document and the certification package.

    .venv/bin/python bench/bench_lot_exports.py [--readings 3000] [--batch-size 500] [--profile]

Set-up (not timed): the embedded chain with the suite deployed, a lot opened by the test factory,
4 secp256k1 devices of that factory, ``--readings`` readings of the lot signed, ingested and
anchored in batches of ``--batch-size``. Timed, over HTTP (``TestClient``, in process, so the CPU
time is the request's): for each export, every page (following the ``Link`` rel=next headers,
default page sizes) ``cold`` (nothing cached, no event hash remembered), ``changed`` (the lot
changed: no page cached, but the event hashes are remembered) and ``warm`` (the same GETs again,
served from the page cache); CPU seconds (``time.process_time``), wall seconds, bytes, pages.
``--profile`` prints the top of a cProfile of one cold EPCIS page.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "helpers"))

from fastapi.testclient import TestClient
from support import TestConsortium

from contracts.chain import Chain, dev_accounts
from contracts.deploy import deploy_suite
from contracts.lots import OPEN_ACTION, LotRegistryClient
from ledger_service.api import create_app
from ledger_service.config import Settings
from ledger_service.lots import epcis_hash
from ledger_service.lots.epcis import export_cache_of, lot_epcis_page
from ledger_service.service import LedgerService

LOT = "LOT-BENCH-EXPORT"
GTIN = "04006381333931"


def build(readings: int, batch_size: int, db: Path) -> tuple[LedgerService, TestClient]:
    chain = Chain.embedded()
    op = dev_accounts(1)[0]
    deployment = deploy_suite(chain, op)
    settings = Settings(
        database_url=f"sqlite:///{db}",
        verify_workers=0,
        anchoring=False,
        registry_refresh_seconds=0,
        max_future_skew_ms=3_600_000,
    )
    service = LedgerService.build(settings, chain=chain, deployment=deployment)
    consortium = TestConsortium(chain, deployment)
    gate_address = chain.deploy("StaticAdmissionGate", op, op.address).contract_address
    assert gate_address is not None
    gate = chain.contract("StaticAdmissionGate", gate_address)
    chain.transact(deployment.contract(chain, "LotRegistry").functions.setAdmissionGate(gate_address), op)
    chain.transact(gate.functions.setAdmitted(consortium.factory.address, OPEN_ACTION, True), op)
    LotRegistryClient.from_deployment(chain, deployment).open_lot(
        consortium.factory,
        lot_id=LOT,
        gtin=GTIN,
        quantity=500,
        unit="kg",
        produced_from_ms=0,
        produced_to_ms=1,
    )
    client = TestClient(create_app(service=service))
    client.__enter__()  # starts the service (the writer)
    signers = [consortium.enroll(f"SN-EXPORT-{i}", "secp256k1") for i in range(4)]
    base = int(chain.block("latest")["timestamp"]) * 1000 + 1000
    subs = [
        signers[i % 4]
        .sign({"temp_c": 4.0 + (i % 30) / 10, "humidity": 80 + i % 5}, ts_ms=base + i * 10, lot_id=LOT)
        .to_json_obj()
        for i in range(readings)
    ]
    for i in range(0, len(subs), batch_size):
        results = service.pipeline.submit(subs[i : i + batch_size], source="http")
        assert all(r.code is None for r in results), [(r.code, r.message) for r in results[:3]]
        service.anchoring.flush(timeout=120)
    return service, client


def get_all(client: TestClient, url: str, key: str) -> tuple[float, float, int, int, int]:
    """GET every page of ``url`` (following ``next`` links); CPU s, wall s, bytes, pages, items."""
    cpu, wall = time.process_time(), time.perf_counter()
    size = pages = items = 0
    next_url: str | None = url
    while next_url is not None:
        r = client.get(next_url)
        assert r.status_code == 200, r.text[:500]
        size += len(r.content)
        pages += 1
        body: dict[str, Any] = r.json()
        items += count(body, key)
        next_url = r.links.get("next", {}).get("url") if r.links else None
    return time.process_time() - cpu, time.perf_counter() - wall, size, pages, items


def clear_caches(service: LedgerService, *, hashes: bool) -> None:
    """Forget the rendered pages (and the remembered event hashes when ``hashes``)."""
    export_cache_of(service).clear()
    if hashes:
        epcis_hash._MEMO.clear()


def count(body: dict[str, Any], key: str) -> int:
    if key == "events":
        return len(body["epcisBody"]["eventList"])
    return sum(len(b["readings"]) for b in body["batches"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--readings", type=int, default=3000)
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        service, client = build(args.readings, args.batch_size, Path(tmp) / "ledger.db")
        print(f"set-up: {args.readings} readings anchored in {time.perf_counter() - t:.1f} s")
        exports = [
            ("epcis", f"/v1/lots/{LOT}/epcis", "events"),
            ("certification-package", f"/v1/lots/{LOT}/certification-package", "readings"),
        ]
        cache = getattr(service, "lot_export_cache", None)
        if args.profile:
            prof = cProfile.Profile()
            prof.enable()
            lot_epcis_page(service, LOT)
            prof.disable()
            pstats.Stats(prof).sort_stats("cumulative").print_stats(25)
        for name, url, key in exports:
            for run in ("cold", "changed", "warm"):
                # cold: nothing remembered; changed: the lot changed (cache keys differ) but the event
                # hashes are remembered; warm: the same GETs again (served from the page cache)
                if run in ("cold", "changed"):
                    clear_caches(service, hashes=run == "cold")
                cpu, wall, size, pages, items = get_all(client, url, key)
                print(
                    f"{name:22s} {run:7s}: {cpu:7.3f} s CPU, {wall:7.3f} s wall, {size / 1e6:6.2f} MB, "
                    f"{pages} page(s), {items} {key}"
                )
        del cache
        client.__exit__(None, None, None)
        service.stop()


if __name__ == "__main__":
    main()
