"""The demo's first chapters: the consortium, the buyer's specs, enrollment, the production week,
and the lots handed down the chain and certified from their QC readings."""

from __future__ import annotations

import datetime as dt
import math
import time
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from sqlmodel import Session, select

from contracts.certification_package import load_package_obj
from contracts.certifier import CertificateStatus, QualityCertifierClient, SpecMetric
from contracts.chain import Chain, dev_accounts
from contracts.deploy import deploy_suite
from contracts.deployment import Deployment
from contracts.lots import LotRegistryClient
from contracts.onboarding import Onboarding
from finance.features import MIN_LOTS
from ledger_service.analytics_store.source import LedgerSource
from ledger_service.lots.certification import certification_package
from ledger_service.store.models import ReadingRow
from simulation.factories import simulate_world
from simulation.feed import FeedResult, SimulationFeed
from simulation.kinds import RUBBER_MIXING, SOLAR_CELL, FactorySpec
from simulation.truth import World
from supet.demo.report import Report
from supet.demo.scene import FIXED, RUBBER_GTIN, SOLAR_GTIN, Answer, DemoOptions, Scene, Step, day_s
from supet_base.errors import SupetError

__all__ = [
    "PROOF_FACTORY",
    "Cast",
    "consortium",
    "enrollment",
    "lots_and_certification",
    "production_week",
    "the_buyer",
]


#: The factory whose credit record the story grounds in proof (issue 16): every lot of it is judged by the
#: certifier, and its buyer pays it late (:mod:`supet.demo.chapter_proof`).
PROOF_FACTORY = "rub-c"


def _specs(days: int) -> list[FactorySpec]:
    """The three factories. rub-c's mixing process drifts (its key parameters move away from their optima
    over the period; no more failures, no slower machines): its later lots fail the buyer's Mooney band.
    It runs enough lines for the certifier to judge at least ``MIN_LOTS`` of its lots (a lot per line and
    day), so the rejected share is scored rather than a caveat: one line for a week, three for two days."""
    lines = max(1, min(4, math.ceil(MIN_LOTS / days)))
    return [
        FactorySpec(factory_id="sun-a", kind=SOLAR_CELL, seed=101, gtin=SOLAR_GTIN),
        FactorySpec(factory_id="sun-b", kind=SOLAR_CELL, seed=102, health="deteriorating", gtin=SOLAR_GTIN),
        FactorySpec(
            factory_id=PROOF_FACTORY,
            kind=RUBBER_MIXING,
            seed=103,
            gtin=RUBBER_GTIN,
            lines=lines,
            health="deteriorating",
            deterioration_failure_factor=1.0,
            deterioration_speed_loss=0.0,
            deterioration_process_drift=0.5,
        ),
    ]


@dataclass(frozen=True)
class Cast:
    """The simulated world, the feed that plays it through the ledger, the buyer and its certifier."""

    world: World
    feed: SimulationFeed
    buyer: LocalAccount
    certifier: QualityCertifierClient


#: Time the consortium's set-up and the enrollments take on a node before the first simulated day.
_SETUP_MARGIN_S = 600


def require_clock_before(chain: Chain, start: dt.date, *, days: int) -> None:
    """Refuse a node whose clock is already past the simulated period's start.

    The story streams a simulated past week; its devices must be enrolled before their first reading,
    and the DeviceRegistry refuses a back-dated activation (``DeviceRegistryActiveFromInPast``). So the
    node's clock must start before the period, as anvil's ``--timestamp`` allows.
    """
    now_s = int(chain.block("latest")["timestamp"])
    first_s = day_s(start)
    if now_s + _SETUP_MARGIN_S > first_s:
        raise SupetError(
            f"the node's clock ({dt.datetime.fromtimestamp(now_s, dt.UTC):%Y-%m-%d %H:%M} UTC) is past the "
            f"simulated period's start ({start}): devices cannot be enrolled active before their enrollment "
            "block, so the story needs a node whose clock starts earlier, e.g. "
            f"`anvil --hardfork osaka --timestamp $(( $(date +%s) - {days + 2} * 86400 ))`",
            code="demo.node_clock",
        )


def consortium(
    opts: DemoOptions, report: Report, start: dt.date, step: Step
) -> tuple[Chain, Deployment, Onboarding, dict[str, LocalAccount]]:
    """1. Deploy the contracts, apply the rules, admit the parties."""
    step("1. consortium: deploy the contracts, apply the rules, admit the parties")
    admin = dev_accounts(1)[0]
    if opts.rpc == "embedded":
        chain = Chain.embedded(start_time=day_s(start) - 86_400)
    else:
        chain = Chain.connect(opts.rpc)
        require_clock_before(chain, start, days=opts.days)
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
    return chain, deployment, ob, acct


def the_buyer(scene: Scene) -> Cast:
    """2 (once the ledger runs). The week is simulated; the buyer is admitted and sets its quality specs."""
    opts, chain, deployment, ob, api = scene.opts, scene.chain, scene.deployment, scene.ob, scene.api
    specs = [FactorySpec(**{**s.__dict__, "interval_s": opts.interval_s}) for s in _specs(opts.days)]
    world: World = simulate_world(specs, scene.start, opts.days)

    def submit(objs: list[dict[str, Any]]) -> list[Answer]:
        r = api.http.post("/v1/readings", json={"readings": objs})
        r.raise_for_status()
        return [Answer(None if "receipt" in it else it["error"]["code"]) for it in r.json()["results"]]

    feed = SimulationFeed(
        chain=chain, deployment=deployment, onboarding=ob, submit=submit, progress=scene.progress, chunk=2_000
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
    return Cast(world=world, feed=feed, buyer=buyer_acct, certifier=certifier)


def enrollment(scene: Scene, cast: Cast) -> None:
    """3, first half. The three factories enroll their devices (and open orders and lots)."""
    scene.step("3. three factories enroll their devices; a production week streams through the ingest")
    cast.feed.setup(cast.world)


def production_week(scene: Scene, cast: Cast) -> tuple[FeedResult, LedgerSource]:
    """3, second half. A production week streams through the HTTP ingest and is anchored."""
    res, service, world = scene.res, scene.service, cast.world
    fed = cast.feed.run(world)
    service.anchoring.flush(timeout=300)
    res.readings, res.rejected = fed.accepted, sum(fed.rejected.values())
    res.chain_time_simulated = fed.chain_time_simulated
    stats = service.anchoring.stats()
    source = LedgerSource(service.engine, scene.chain, scene.deployment, order_terms=fed.order_terms)
    res.batches = source.latest_anchored_batch()
    scene.report.section(
        "2-3. Factories and their production week",
        f"{len(fed.devices)} devices enrolled by 3 factories; {fed.sent:,} signed readings sent through the "
        f"HTTP ingest ({fed.accepted:,} accepted, {res.rejected} refused), "
        f"anchored in {res.batches} batches; "
        f"{len(fed.orders)} purchase orders and {len(fed.lots)} lots on chain"
        + ("" if fed.chain_time_simulated else " (the node's clock could not follow the simulated days)")
        + f". Backlog after anchoring: {stats.pending_readings}.",
    )
    scene.report.table(
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
    return fed, source


def lots_and_certification(scene: Scene, cast: Cast) -> None:
    """4. Each factory's last lot is certified on chain from its QC readings, and every lot of
    :data:`PROOF_FACTORY` (its credit record weighs its lots' verdicts); each factory's last lot, when
    certified, is handed on to the distributor; a rejected one names the reading and the bound."""
    scene.step("4. lots handed down the chain and certified from their QC readings")
    res = scene.res
    lots = LotRegistryClient.from_deployment(scene.chain, scene.deployment)
    distributor = scene.acct["distributor"]
    rows = []
    for f in cast.world.factories:
        last = f"LOT-{f.spec.line_ids()[0]}-{scene.end.strftime('%Y%m%d')}"
        judged = [last]
        if f.spec.factory_id == PROOF_FACTORY:
            delivered = {d.lot_id for d in f.deliveries if d.quantity > 0}
            judged = sorted(delivered | {last}, key=lambda lot: (lot[-8:], lot))
        for lot_id in judged:
            certified, detail = _certify(scene, cast, lot_id)
            if certified and lot_id == last:
                lots.propose_transfer(cast.buyer, lot_id, distributor.address)
                lots.accept_transfer(distributor, lot_id)
                detail += "; handed on to the distributor"
            rows.append([lot_id, f.spec.factory_id, res.certificates[lot_id], detail])
    scene.report.section(
        "4. Lots and certification",
        "Each factory's last lot, certified on chain from its QC readings; and every lot of "
        f"{PROOF_FACTORY}, whose credit record weighs its lots' verdicts.",
    )
    scene.report.table(["lot", "factory", "verdict", "detail"], rows)


def _certify(scene: Scene, cast: Cast, lot_id: str) -> tuple[bool, str]:
    """The buyer's certifier judges ``lot_id`` from its anchored QC readings; (certified, in words). A
    rejection names the reading and the bound (``res.failures``; the first is ``res.failed_lot``)."""
    res, service, certifier = scene.res, scene.service, cast.certifier
    package = certification_package(service, lot_id)
    _, batches = load_package_obj(package)
    certifier.certify_lot(cast.buyer, lot_id, batches)
    cert = certifier.certificate(lot_id)
    res.certificates[lot_id] = "certified" if cert.status is CertificateStatus.CERTIFIED else "REJECTED"
    if cert.certified:
        return True, f"{cert.samples} samples"
    detail = cert.explain()
    with Session(service.engine) as s:
        row = s.exec(select(ReadingRow).where(ReadingRow.digest == cert.evidence)).first()
    if row is not None:
        when = dt.datetime.fromtimestamp(row.ts_ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M")
        detail += f" (reading 0x{cert.evidence.hex()[:16]}… of {row.device_id}, seq {row.seq}, {when} UTC)"
    res.failures[lot_id] = detail
    if res.failed_lot is None:
        res.failed_lot, res.failed_reason = lot_id, detail
    return False, detail
