"""The whole supET story, end to end, on the embedded chain (or any node): what ``supet demo`` runs.

1. A consortium applies its rules; a buyer, three factories, two banks, an analytics oracle, a
   distributor, a tier-2 supplier and an auditor are admitted by them (claims + approvals).
2. The ledger service starts (in process, with its HTTP API on a local port); the buyer sets the
   quality specs of its two products.
3. Three factories (one deteriorating) enroll their devices; a simulated production week is
   streamed through the ledger's HTTP ingest; orders, lots and deliveries go on chain at the
   simulated times; batches are anchored.
4. Each factory's last lot is certified on chain from its QC readings: one fails its spec and
   the demo names the reading and the bound.
5. Profiles and yield models are computed from anchored data only, committed and charted.
6. The oracle publishes credit records; a factory consents to one bank; that bank's query is
   answered, another bank's is refused; both are in the factory's access log.
7. The buyer confirms a receivable to a factory, which splits it with its tier-2 supplier and
   has its part financed by the consenting bank; at maturity the buyer repays the holders.
8. An auditor re-verifies a lot from the chain and the proof bundles alone.

A report (HTML with the charts) is written to the output directory.
"""

from __future__ import annotations

import datetime as dt
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from sqlmodel import Session, select

from analytics.charts import profile_chart, yield_chart
from analytics.yield_model import YieldModelParams
from auditor.lot_chain import lot_chain_steps
from contracts.certification_package import load_package_obj
from contracts.chain import Chain, dev_accounts
from contracts.credit import CreditRegistryClient
from contracts.deploy import Deployment, deploy_suite
from contracts.lots import (
    CertificateStatus,
    LotRegistryClient,
    QualityCertifierClient,
    SpecMetric,
)
from contracts.onboarding import Onboarding
from contracts.receivables import ReceivablesClient, StablecoinClient, receivable_reference
from device_attestation.sim_feed import SimulationFeed
from device_attestation.simulator import RUBBER_MIXING, SOLAR_CELL, FactorySpec, World, simulate_world
from ledger_service.analytics_store.publish import (
    ProfileParams,
    YieldParams,
    publish_profile,
    publish_yield,
    recompute,
)
from ledger_service.analytics_store.source import LedgerSource
from ledger_service.api import create_app
from ledger_service.certification import certification_package
from ledger_service.config import Settings
from ledger_service.credit_desk.desk import desk_of
from ledger_service.service import LedgerService
from ledger_service.store.models import ReadingRow
from supet.demo.report import Report

__all__ = ["DemoOptions", "DemoResult", "run_demo"]

Step = Callable[[str], None]
Progress = Callable[[str, int, int], None]

SOLAR_GTIN = "09506000134352"
RUBBER_GTIN = "09506000134369"
FIXED = 1_000_000  # Reading v1 fixed point


@dataclass(frozen=True)
class DemoOptions:
    """Knobs of the story (defaults: a week at 10-minute intervals, about two minutes on 2 cores)."""

    out_dir: Path
    rpc: str = "embedded"
    days: int = 7
    interval_s: int = 600
    seed: int = 7


@dataclass
class DemoResult:
    """What the story produced, for the summary, the report and the tests."""

    report: Path | None = None
    readings: int = 0
    rejected: int = 0
    batches: int = 0
    certificates: dict[str, str] = field(default_factory=dict)
    failed_lot: str | None = None
    failures: dict[str, str] = field(default_factory=dict)
    failed_reason: str | None = None
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    yields: dict[str, dict[str, Any]] = field(default_factory=dict)
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    bank_answer: int = 0
    refused_answer: tuple[int, str] = (0, "")
    access_log: list[dict[str, Any]] = field(default_factory=list)
    receivable: dict[str, Any] = field(default_factory=dict)
    audit: dict[str, Any] = field(default_factory=dict)
    recomputed: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    chain_time_simulated: bool = False


def _day_s(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp())


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


class _Api:
    """A party's HTTP session with the ledger (EIP-4361 sign-in)."""

    def __init__(self, base: str) -> None:
        self.http = httpx.Client(base_url=base, timeout=120)
        self.tokens: dict[str, str] = {}

    def headers(self, who: LocalAccount) -> dict[str, str]:
        if who.address not in self.tokens:
            msg = self.http.post("/v1/auth/challenge", json={"address": who.address}).json()["message"]
            sig = who.sign_message(encode_defunct(text=msg)).signature.to_0x_hex()
            r = self.http.post("/v1/auth/token", json={"message": msg, "signature": sig})
            r.raise_for_status()
            self.tokens[who.address] = r.json()["access_token"]
        return {"Authorization": f"Bearer {self.tokens[who.address]}"}


@dataclass(frozen=True)
class _Answer:
    code: str | None


def _specs(days: int) -> list[FactorySpec]:
    return [
        FactorySpec(factory_id="sun-a", kind=SOLAR_CELL, seed=101, gtin=SOLAR_GTIN),
        FactorySpec(factory_id="sun-b", kind=SOLAR_CELL, seed=102, health="deteriorating", gtin=SOLAR_GTIN),
        FactorySpec(factory_id="rub-c", kind=RUBBER_MIXING, seed=103, gtin=RUBBER_GTIN),
    ]


def run_demo(opts: DemoOptions, *, step: Step, progress: Progress) -> DemoResult:
    """Run the story (module docstring); ``step`` announces each part, ``progress`` long loops."""
    res = DemoResult()
    out = opts.out_dir
    out.mkdir(parents=True, exist_ok=True)
    report = Report(title="supET Ledger demo", directory=out)
    t_all = time.perf_counter()
    announce = step
    current: list[tuple[str, float]] = []

    def timed_step(text: str) -> None:  # time each part of the story for the report
        now = time.perf_counter()
        if current:
            name, since = current.pop()
            res.timings[name] = now - since
        current.append((text.split(":")[0], now))
        announce(text)

    today = dt.datetime.now(dt.UTC).date()
    start = today - dt.timedelta(days=opts.days)
    end = today - dt.timedelta(days=1)

    # ------------------------------------------------------------ 1. consortium
    timed_step("1. consortium: deploy the contracts, apply the rules, admit the parties")
    admin = dev_accounts(1)[0]
    if opts.rpc == "embedded":
        chain = Chain.embedded(start_time=_day_s(start) - 86_400)
    else:
        chain = Chain.connect(opts.rpc)
    deployment: Deployment = deploy_suite(chain, admin)
    ob = Onboarding(chain, deployment, admin, seed=f"demo-{opts.seed}-{int(time.time())}")
    n_rules = ob.apply_policy()
    parties = {
        "bank-a": "bank",
        "bank-b": "bank",
        "oracle": "analytics-oracle",
        "distributor": "distributor",
        "tier2": "supplier",
        "auditor": "auditor",
    }
    acct = {name: ob.account(name) for name in parties}
    for name, role in parties.items():
        ob.admit(acct[name], role)
    report.section(
        "1. Consortium",
        f"Contracts deployed on chain {chain.chain_id} ({opts.rpc}); the policy was applied with {n_rules} "
        "transactions; every party below was admitted by claims from trusted issuers and members' approvals.",
    )
    report.table(["contract", "address"], [[k, v] for k, v in sorted(deployment.contracts.items())])

    # ------------------------------------------------------------ 2. the ledger
    timed_step("2. the ledger service starts; the buyer sets its quality specs")
    port = _free_port()
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
    service = LedgerService.build(settings, chain=chain, deployment=deployment)
    credit = CreditRegistryClient.from_deployment(chain, deployment)
    credit.grant_anchor_role(admin, service.anchor_signer.address)
    service.start()
    try:
        with _serve(service, port) as base:
            api = _Api(base)
            _story(
                opts, res, report, chain, deployment, service, ob, acct, api, start, end, timed_step, progress
            )
    finally:
        service.stop()
    if current:
        name, since = current.pop()
        res.timings[name] = time.perf_counter() - since
    res.timings["total"] = time.perf_counter() - t_all
    report.section("Timings")
    report.table(["part", "seconds"], [[k, f"{v:.1f}"] for k, v in res.timings.items()])
    res.report = report.write()
    return res


def _story(
    opts: DemoOptions,
    res: DemoResult,
    report: Report,
    chain: Chain,
    deployment: Deployment,
    service: LedgerService,
    ob: Onboarding,
    acct: dict[str, LocalAccount],
    api: _Api,
    start: dt.date,
    end: dt.date,
    step: Step,
    progress: Progress,
) -> None:
    specs = [FactorySpec(**{**s.__dict__, "interval_s": opts.interval_s}) for s in _specs(opts.days)]
    world: World = simulate_world(specs, start, opts.days)

    def submit(objs: list[dict[str, Any]]) -> list[_Answer]:
        r = api.http.post("/v1/readings", json={"readings": objs})
        r.raise_for_status()
        return [_Answer(None if "receipt" in it else it["error"]["code"]) for it in r.json()["results"]]

    feed = SimulationFeed(
        chain=chain, deployment=deployment, onboarding=ob, submit=submit, progress=progress, chunk=2_000
    )
    buyer_acct = ob.account("buyer")
    ob.admit(buyer_acct, "core-enterprise")
    certifier = QualityCertifierClient.from_deployment(chain, deployment)
    for gtin in (SOLAR_GTIN, RUBBER_GTIN):  # the consortium admin assigns the buyer its products' bars
        certifier.set_spec_owner(ob.admin, gtin, buyer_acct.address)
    # The buyer's specs: solar cells at least 22.0 % efficient, rubber Mooney 54..62 MU, and at
    # least 40 % of each QC sample A grade; six QC samples per lot at least.
    certifier.set_spec(
        buyer_acct,
        SOLAR_GTIN,
        [
            SpecMetric(name="a_grade_share", min=int(0.4 * FIXED), max=FIXED),
            SpecMetric(name="cell_eff_pct", min=22 * FIXED, max=25 * FIXED),
        ],
        min_samples=6,
    )
    certifier.set_spec(
        buyer_acct,
        RUBBER_GTIN,
        [
            SpecMetric(name="a_grade_share", min=int(0.4 * FIXED), max=FIXED),
            SpecMetric(name="mooney_mu", min=54 * FIXED, max=62 * FIXED),
        ],
        min_samples=6,
    )

    # ------------------------------------------------------------ 3. the production week
    step("3. three factories enroll their devices; a production week streams through the ingest")
    feed.setup(world)
    fed = feed.run(world)
    service.anchoring.flush(timeout=300)
    res.readings, res.rejected = fed.accepted, sum(fed.rejected.values())
    res.chain_time_simulated = fed.chain_time_simulated
    stats = service.anchoring.stats()
    source = LedgerSource(service.engine, chain, deployment)
    res.batches = source.latest_anchored_batch()
    report.section(
        "2-3. Factories and their production week",
        f"{len(fed.devices)} devices enrolled by 3 factories; {fed.sent:,} signed readings sent through the "
        f"HTTP ingest ({fed.accepted:,} accepted, {res.rejected} refused), "
        f"anchored in {res.batches} batches; "
        f"{len(fed.orders)} purchase orders and {len(fed.lots)} lots on chain"
        + ("" if fed.chain_time_simulated else " (the node's clock could not follow the simulated days)")
        + f". Backlog after anchoring: {stats.pending_readings}.",
    )
    report.table(
        ["factory", "party", "kind", "health", "devices"],
        [
            [
                f.spec.factory_id,
                fed.factories[f.spec.factory_id],
                f.spec.kind.name,
                f.spec.health,
                len(f.spec.device_ids()),
            ]
            for f in world.factories
        ],
    )

    # ------------------------------------------------------------ 4. lots down the chain, certified
    step("4. lots handed down the chain and certified from their QC readings")
    lots = LotRegistryClient.from_deployment(chain, deployment)
    distributor = acct["distributor"]
    rows = []
    for f in world.factories:
        lot_id = f"LOT-{f.spec.line_ids()[0]}-{end.strftime('%Y%m%d')}"
        package = certification_package(service, lot_id)
        _, batches = load_package_obj(package)
        certifier.certify_lot(buyer_acct, lot_id, batches)
        cert = certifier.certificate(lot_id)
        verdict = "certified" if cert.status is CertificateStatus.CERTIFIED else "REJECTED"
        detail = f"{cert.samples} samples" if cert.certified else cert.explain()
        if not cert.certified:
            with Session(service.engine) as s:
                row = s.exec(select(ReadingRow).where(ReadingRow.digest == cert.evidence)).first()
            if row is not None:
                when = dt.datetime.fromtimestamp(row.ts_ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M")
                detail += (
                    f" (reading 0x{cert.evidence.hex()[:16]}… of {row.device_id}, seq {row.seq}, {when} UTC)"
                )
            res.failures[lot_id] = detail
            if res.failed_lot is None:
                res.failed_lot, res.failed_reason = lot_id, detail
        else:
            lots.propose_transfer(buyer_acct, lot_id, distributor.address)
            lots.accept_transfer(distributor, lot_id)
            detail += "; handed on to the distributor"
        res.certificates[lot_id] = verdict
        rows.append([lot_id, f.spec.factory_id, verdict, detail])
    report.section(
        "4. Lots and certification", "Each factory's last lot, certified on chain from its QC readings."
    )
    report.table(["lot", "factory", "verdict", "detail"], rows)

    # ------------------------------------------------------------ 5. analytics
    step("5. factory profiles and yield models from anchored data only")
    block = chain.block_number()
    through = source.latest_anchored_batch()
    prof_rows = []
    for f in world.factories:
        spec = f.spec
        pub = publish_profile(
            service.engine,
            source,
            ProfileParams(
                factory=fed.factories[spec.factory_id],
                machines=tuple(spec.machine_ids()),
                interval_s=spec.interval_s,
                start=start,
                end=end,
                through_batch=through,
                block=block,
            ),
        )
        res.profiles[spec.factory_id] = {**pub.result, "commitment": pub.commitment.commitment}
        p = pub.result
        prof_rows.append(
            [
                spec.factory_id,
                f"{p['capacity_units_per_day']:,.0f}" if p["capacity_units_per_day"] is not None else "-",
                _pct(p["oee"]),
                _pct(p["first_pass_yield"]),
                _pct(p["otif"]),
                _pct(p["coverage"]),
                f"{p['trend_units_per_day']:+,.0f}" if p["trend_units_per_day"] is not None else "-",
                pub.commitment.commitment[:18] + "…",
            ]
        )
        report.image(
            f"profile-{spec.factory_id}.png",
            profile_chart(p, factory_name=spec.factory_id),
            f"{spec.factory_id}: daily output",
        )
    yield_rows = []
    for i, f in enumerate(world.factories):
        spec = f.spec
        line = spec.line_ids()[0]
        progress("yield models", i, len(world.factories))
        ypub, yres = publish_yield(
            service.engine,
            source,
            YieldParams(
                factory=fed.factories[spec.factory_id],
                line_id=line,
                controller=spec.controller_id(line),
                stations=tuple(spec.station_ids(line)),
                interval_s=spec.interval_s,
                start=start,
                end=end,
                through_batch=through,
                model=YieldModelParams(n_repeats=2, seed=opts.seed),
            ),
        )
        keys = set(f.lines[0].key_names())
        found = [n for n in yres.top(len(keys)) if n in keys]
        res.yields[line] = {
            "top": list(yres.top(5)),
            "planted": sorted(keys),
            "found": len(found),
            "auc": yres.holdout_auc,
            "gain": yres.expected_gain,
            "commitment": ypub.commitment.commitment,
        }
        yield_rows.append(
            [
                line,
                ", ".join(yres.top(5)),
                f"{len(found)}/{len(keys)}",
                f"{yres.holdout_auc:.3f}",
                f"{100 * yres.observed_yield:.1f}% -> {100 * yres.predicted_yield_in_windows:.1f}%",
            ]
        )
        report.image(f"yield-{line}.png", yield_chart(yres), f"{line}: yield drivers and windows")
    progress("yield models", len(world.factories), len(world.factories))
    for c in [r["commitment"] for r in res.profiles.values()][:1]:
        recompute(service.engine, source, c)
        res.recomputed.append(c)
    report.section(
        "5. Factory profiles and yield models",
        "Computed from anchored readings and on-chain orders and deliveries only; each result is committed "
        "(inputs root, model and code version, parameters, result hash) and can be re-derived with "
        "`supet analytics recompute COMMITMENT`.",
    )
    report.table(
        ["factory", "capacity/day", "OEE", "first-pass yield", "OTIF", "coverage", "trend", "commitment"],
        prof_rows,
    )
    report.table(
        ["line", "top drivers", "planted found", "held-out AUC", "yield now -> in windows"], yield_rows
    )

    # ------------------------------------------------------------ 6. credit and consent
    step("6. credit records, a consent, a bank query and a refused one")
    desk = desk_of(service)
    oracle, bank_a, bank_b = acct["oracle"], acct["bank-a"], acct["bank-b"]
    price = {"solar-cell": 0.9, "rubber-mixing": 260.0}
    rec_rows = []
    for f in world.factories:
        spec = f.spec
        factory = fed.factories[spec.factory_id]
        pubn = desk.publish(
            oracle,
            factory,
            res.profiles[spec.factory_id]["commitment"],
            price=price[spec.kind.name],
            currency="CNY",
        )
        a = pubn.assessment
        res.records[spec.factory_id] = {
            "grade": a.grade,
            "pd": a.pd,
            "limit": a.limit,
            "reasons": [r.text for r in a.reasons],
        }
        rec_rows.append(
            [
                spec.factory_id,
                a.grade,
                f"{100 * a.pd:.2f}%",
                f"{a.limit:,} {a.currency}",
                "; ".join(r.text for r in a.reasons),
            ]
        )
    sun_a = feed.parties["sun-a"]
    credit = CreditRegistryClient.from_deployment(chain, deployment)
    now_chain = int(chain.block("latest")["timestamp"])
    credit.grant_consent(sun_a, bank_a.address, expires_at=now_chain + 30 * 86_400)
    r = api.http.get(f"/v1/bank/factories/{sun_a.address}/credit", headers=api.headers(bank_a))
    res.bank_answer = r.status_code
    r2 = api.http.get(f"/v1/bank/factories/{sun_a.address}/credit", headers=api.headers(bank_b))
    res.refused_answer = (r2.status_code, r2.json().get("error", {}).get("code", ""))
    log = api.http.get(f"/v1/factories/{sun_a.address}/access-log", headers=api.headers(sun_a))
    log.raise_for_status()
    body = log.json()
    entries = body.get("entries", body if isinstance(body, list) else [])
    res.access_log = list(entries)
    report.section(
        "6. Credit records and consent",
        "The analytics oracle published each factory's record on chain (grade on the S1..S10 master scale, "
        "PD, limit, validity, model version, analytics commitment). sun-a consented to bank A only.",
    )
    report.table(["factory", "grade", "PD (12 months)", "limit", "top reasons"], rec_rows)
    report.table(
        ["who", "asked", "answer"],
        [
            ["bank A (consented)", "sun-a's credit record", f"HTTP {res.bank_answer}"],
            [
                "bank B (no consent)",
                "sun-a's credit record",
                f"HTTP {res.refused_answer[0]} {res.refused_answer[1]}",
            ],
        ],
    )
    report.table(
        ["when", "party", "action", "outcome"],
        [
            [
                e.get("at") or e.get("time") or e.get("ts_ms"),
                e.get("party"),
                e.get("action"),
                e.get("outcome"),
            ]
            for e in res.access_log
        ],
    )

    # ------------------------------------------------------------ 8 (before time moves). audit
    step("7. an auditor re-verifies a lot from the chain and the proof bundles alone")
    audit_lot = next(lot for lot, v in res.certificates.items() if v == "certified")
    res.audit = _audit(chain, deployment, api, audit_lot)
    report.section(
        "8. Audit",
        f"Lot {audit_lot}: {res.audit['chain_steps']} chain steps and {res.audit['readings']} readings "
        f"re-verified from the chain and the proof bundles alone: "
        + ("VERIFIED" if res.audit["ok"] else f"NOT VERIFIED ({res.audit['failed']} failed)"),
    )

    # ------------------------------------------------------------ 7. receivable
    step("8. a receivable confirmed, split, financed and repaid")
    res.receivable = _receivable(chain, deployment, ob, feed, acct, res)
    rcv = res.receivable
    report.section(
        "7. Receivables financing",
        f"The buyer confirmed a receivable of {rcv['face']:,.2f} tCNY to sun-a; sun-a split off "
        f"{rcv['tier2_part']:,.2f} to its tier-2 supplier and had its {rcv['kept_part']:,.2f} "
        "financed by bank A "
        f"at {rcv['price']:,.2f} (grade {rcv['grade']}, {rcv['rate'] * 100:.1f}% a year "
        f"for {rcv['days']} days); "
        f"at maturity the buyer repaid the holders.",
    )
    report.table(["account", "tCNY before", "tCNY after"], rcv["balances"])


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def _audit(chain: Chain, deployment: Deployment, api: _Api, lot_id: str) -> dict[str, Any]:
    from auditor.lot_audit import judge_bundles, judge_chain_steps
    from supet.cli.audit import _ledger_sources, fetch_ledger_history

    steps = fetch_ledger_history(api.http, lot_id)
    sources, pending = _ledger_sources(steps)
    chain_steps = lot_chain_steps(chain, deployment, lot_id)
    verdicts = judge_chain_steps(chain_steps, head=chain.block_number(), min_confirmations=0)
    verdicts += judge_bundles(sources, lot_id, chain=chain, deployment=deployment, min_confirmations=0)
    failed = [v for v in verdicts if v.failed]
    return {
        "lot": lot_id,
        "ok": not failed and not pending,
        "failed": len(failed),
        "chain_steps": len(chain_steps),
        "readings": sum(1 for v in verdicts if v.kind == "reading" and v.ok),
        "lines": [("ok " if v.ok else "FAIL ") + v.text for v in verdicts],
    }


def _receivable(
    chain: Chain,
    deployment: Deployment,
    ob: Onboarding,
    feed: SimulationFeed,
    acct: dict[str, LocalAccount],
    res: DemoResult,
) -> dict[str, Any]:
    rc = ReceivablesClient.from_deployment(chain, deployment)
    coin = StablecoinClient.from_deployment(chain, deployment)
    buyer, sun_a, tier2, bank_a = feed.parties["buyer"], feed.parties["sun-a"], acct["tier2"], acct["bank-a"]
    admin = ob.admin
    face = 1_000_000_00  # 1,000,000.00 tCNY (2 decimals)
    days = 60
    now = int(chain.block("latest")["timestamp"])
    due = now + days * 86_400
    before = {
        n: coin.balance_of(a.address) for n, a in (("bank A", bank_a), ("sun-a", sun_a), ("tier-2", tier2))
    }
    rid, _ = rc.confirm(
        buyer,
        supplier=sun_a.address,
        face_value=face,
        due_date=due,
        reference=receivable_reference(f"INV-{now}"),
    )
    root = rc.parts_of(rid)[0]
    kept, passed = 600_000_00, 400_000_00
    (kept_id, tier2_id), _ = rc.split(sun_a, root, [kept, passed], [sun_a.address, tier2.address])
    grade = res.records["sun-a"]["grade"]
    rank = int(grade.lstrip("S")) if grade.lstrip("S").isdigit() else 5
    rate = 0.03 + 0.01 * (rank - 1)  # the bank's documented pricing: 3 % a year for S1, +1 % per grade
    price = int(kept * (1 - rate * days / 365))
    rc.offer(sun_a, kept_id, bank=bank_a.address, min_price=price)
    coin.mint(admin, bank_a.address, price)
    coin.approve(bank_a, rc.address, price)
    rc.finance(bank_a, kept_id, price)
    coin.mint(admin, buyer.address, face)
    coin.approve(buyer, rc.address, face)
    if chain.can_warp:
        chain.warp(due)
    rc.repay(buyer, rid)
    after = {
        n: coin.balance_of(a.address) for n, a in (("bank A", bank_a), ("sun-a", sun_a), ("tier-2", tier2))
    }
    parts = [rc.part(p) for p in (kept_id, tier2_id)]
    return {
        "id": rid,
        "face": face / 100,
        "kept_part": kept / 100,
        "tier2_part": passed / 100,
        "price": price / 100,
        "rate": rate,
        "days": days,
        "grade": grade,
        "paid": rc.receivable(rid).paid and all(p.state.name == "PAID" for p in parts),
        "balances": [[n, f"{before[n] / 100:,.2f}", f"{after[n] / 100:,.2f}"] for n in before],
        "bank_gain": (after["bank A"] - before["bank A"]) / 100,
    }
