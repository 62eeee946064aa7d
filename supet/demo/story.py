"""The whole supET story, end to end, on the embedded chain (or any node): what ``supet demo`` runs.

1. A consortium applies its rules; a buyer, three factories, two banks, an analytics oracle, a
   distributor, a tier-2 supplier and an auditor are admitted by them (claims + approvals).
2. The ledger service starts (in process, with its HTTP API on a local port); the buyer sets the
   quality specs of its two products.
3. Three factories (one deteriorating) enroll their devices; a simulated production week is
   streamed through the ledger's HTTP ingest; orders, lots and deliveries go on chain at the
   simulated times; batches are anchored.
4. Each factory's last lot is certified on chain from its QC readings, and every lot of rub-c: one
   fails its spec and the demo names the reading and the bound.
5. Profiles and yield models are computed from anchored data only, committed and charted; sun-b's first
   line gets its operating windows and new readings of its stations are checked against them (issue 16).
6. The buyer pays rub-c three receivables late (the chain's clock moves past their due date); the oracle
   publishes credit records, rub-c's citing its rejected lots and the late-paying buyer; a factory
   consents to one bank; that bank's query is answered, another bank's is refused; both are in the
   factory's access log.
7. The buyer confirms a receivable to a factory, which splits it with its tier-2 supplier and
   has its part financed by the consenting bank; at maturity the buyer repays the holders.
8. An auditor re-verifies a lot from the chain and the proof bundles alone.
9. Across tiers (issue 15): the tier-2 supplier's wafers are consumed by sun-a in a transformation into
   cells delivered to the buyer and certified; the supplier recalls the wafers, the service's recall
   worker flags every lot made from them and the trace names each and its holder; a receivable backed by
   those cells is refused financing (:mod:`.chapter_recall`).

Issue 14, along the way: bank B (no consent) is refused sun-a's record, profile and readings by the
ledger, and finds only commitments on its own node (no envelope opens with its key); an anonymous client
is refused a raw reading, its proof and an undisclosed lot (:mod:`.chapter_private`).

A report (HTML with the charts) is written to the output directory.

The chapters are in :mod:`.chapters_production` (1-4), :mod:`.chapters_analytics` (5-6),
:mod:`.chapter_proof` (the window breaches of 5 and the late payments of 6), :mod:`.chapters_finance` (7-8)
and :mod:`.chapter_recall` (9); what they share in :mod:`.scene`.
"""

from __future__ import annotations

import datetime as dt
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn

from contracts.chain import Chain
from contracts.credit import CreditRegistryClient
from contracts.deployment import Deployment
from ledger_service.api import create_app
from ledger_service.config import Settings
from ledger_service.service import LedgerService
from supet.demo.chapter_proof import late_payments, window_breaches
from supet.demo.chapter_recall import across_tiers
from supet.demo.chapters_analytics import analytics, credit
from supet.demo.chapters_finance import audit, finance
from supet.demo.chapters_production import (
    consortium,
    enrollment,
    lots_and_certification,
    production_week,
    the_buyer,
)
from supet.demo.report import Report
from supet.demo.scene import Api, DemoOptions, DemoResult, Progress, Scene, Step

__all__ = ["DemoOptions", "DemoResult", "run_demo"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _serve(service: LedgerService, port: int) -> Iterator[str]:
    """The ledger's HTTP API on 127.0.0.1:port in a thread (the service is already started)."""
    # log_config=None: leave the process's logging alone (uvicorn would reconfigure it globally)
    config = uvicorn.Config(
        create_app(service=service), host="127.0.0.1", port=port, log_config=None, access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="supet-demo-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the demo's API server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


class _Timer:
    """Announces each part of the story and times it, for the report."""

    def __init__(self, res: DemoResult, announce: Step) -> None:
        self.res = res
        self.announce = announce
        self.current: list[tuple[str, float]] = []

    def step(self, text: str) -> None:
        now = time.perf_counter()
        if self.current:
            name, since = self.current.pop()
            self.res.timings[name] = now - since
        self.current.append((text.split(":")[0], now))
        self.announce(text)

    def stop(self) -> None:
        if self.current:
            name, since = self.current.pop()
            self.res.timings[name] = time.perf_counter() - since


def run_demo(opts: DemoOptions, *, step: Step, progress: Progress) -> DemoResult:
    """Run the story (module docstring); ``step`` announces each part, ``progress`` long loops."""
    res = DemoResult()
    out = opts.out_dir
    out.mkdir(parents=True, exist_ok=True)
    report = Report(title="supET Ledger demo", directory=out)
    t_all = time.perf_counter()
    timer = _Timer(res, step)

    today = dt.datetime.now(dt.UTC).date()
    start = today - dt.timedelta(days=opts.days)
    end = today - dt.timedelta(days=1)

    chain, deployment, ob, acct = consortium(opts, report, start, timer.step)
    res.chain, res.deployment = chain, deployment
    timer.step("2. the ledger service starts; the buyer sets its quality specs")
    port = _free_port()
    service = _build_ledger(opts, out, port, chain, deployment)
    CreditRegistryClient.from_deployment(chain, deployment).grant_anchor_role(
        ob.admin, service.anchor_signer.address
    )
    service.start()
    try:
        with _serve(service, port) as base:
            scene = Scene(
                opts=opts,
                res=res,
                report=report,
                chain=chain,
                deployment=deployment,
                service=service,
                ob=ob,
                acct=acct,
                api=Api(base),
                start=start,
                end=end,
                step=timer.step,
                progress=progress,
            )
            _story(scene)
    finally:
        service.stop()
    timer.stop()
    res.timings["total"] = time.perf_counter() - t_all
    report.section("Timings")
    report.table(["part", "seconds"], [[k, f"{v:.1f}"] for k, v in res.timings.items()])
    res.report = report.write()
    return res


def _build_ledger(
    opts: DemoOptions, out: Path, port: int, chain: Chain, deployment: Deployment
) -> LedgerService:
    """The ledger service of the story, on a fresh SQLite store in ``out`` (not started)."""
    settings = Settings(
        database_url=f"sqlite:///{out / 'ledger.db'}",
        public_url=f"http://127.0.0.1:{port}",
        verify_workers=2,
        anchoring=True,
        # Batches close at the flush after the simulated period, not while it streams: the chain's
        # clock is warped day by day, and a batch anchored at 08:00 of a simulated day would hold
        # readings of that afternoon, which a reading's anchoring-time rule (ReadingAnchor) refuses.
        batch_max_seconds=86_400,
        batch_max_readings=100_000,
        registry_refresh_seconds=0,
        late_window_ms=(opts.days + 3) * 86_400_000,
    )
    if (out / "ledger.db").exists():
        for suffix in ("", "-wal", "-shm"):
            (out / f"ledger.db{suffix}").unlink(missing_ok=True)
    return LedgerService.build(settings, chain=chain, deployment=deployment)


def _story(scene: Scene) -> None:
    """Chapters 2 (the buyer's specs) to 8, the ledger running; the report's order is 1..8, the
    audit runs before the receivable because repaying it moves the chain's clock."""
    cast = the_buyer(scene)
    enrollment(scene, cast)
    fed, source = production_week(scene, cast)
    lots_and_certification(scene, cast)
    analytics(scene, cast, fed, source)
    window_breaches(scene, cast, fed)
    late_payments(scene, cast)  # moves the chain's clock past the receivables' due date, before the records
    credit(scene, cast, fed)
    audit(scene, cast)
    across_tiers(scene, cast)  # before the receivable: repaying it moves the chain's clock past the records
    finance(scene, cast.feed)
