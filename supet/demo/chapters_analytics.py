"""The demo's middle chapters: factory profiles and yield models from anchored data only, then the
credit records they feed, a factory's consent to one bank, and that bank's query (another refused)."""

from __future__ import annotations

from typing import Any

from analytics.charts import profile_chart, yield_chart
from analytics.yield_model import YieldModelParams
from contracts.credit import CreditRegistryClient
from ledger_service.analytics_store.publish import (
    ProfileParams,
    YieldParams,
    publish_profile,
    publish_yield,
    recompute,
)
from ledger_service.analytics_store.source import LedgerSource
from ledger_service.credit_desk.desk import desk_of
from simulation.feed import FeedResult
from supet.demo.chapter_private import bank_b_tries, privacy_rows, reading_of
from supet.demo.chapter_proof import proof_rows
from supet.demo.chapter_sealed import register_bank_keys, sealed_rows, sealed_story
from supet.demo.chapters_production import Cast
from supet.demo.scene import BUYER_NAME, Scene, pct

__all__ = ["analytics", "credit"]


def analytics(scene: Scene, cast: Cast, fed: FeedResult, source: LedgerSource) -> None:
    """5. Profiles and yield models, computed from anchored data only, committed and charted."""
    scene.step("5. factory profiles and yield models from anchored data only")
    block = scene.chain.block_number()
    through = source.latest_anchored_batch()
    prof_rows, measured_rows = _profiles(scene, cast, fed, source, through, block=block)
    yield_rows = _yield_models(scene, cast, fed, source, through)
    for c in [r["commitment"] for r in scene.res.profiles.values()][:1]:
        recompute(scene.service.engine, source, c)
        scene.res.recomputed.append(c)
    report = scene.report
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
        [
            "factory",
            "kWh / good unit",
            "energy backs output",
            "stock cover (raw / finished)",
            "order backlog",
            "unplanned stops",
            "availability trend",
            "camera first-pass yield",
        ],
        measured_rows,
    )
    report.table(
        ["line", "top drivers", "planted found", "held-out AUC", "yield now -> in windows"], yield_rows
    )


def _profiles(
    scene: Scene, cast: Cast, fed: FeedResult, source: LedgerSource, through: int, *, block: int
) -> tuple[list[list[Any]], list[list[Any]]]:
    """Each factory's profile, published and charted; the rows of its two tables (the classic figures,
    and the dimensions measured by meters, stock counts, orders, the equipment register and cameras)."""
    prof_rows: list[list[Any]] = []
    measured_rows: list[list[Any]] = []
    for f in cast.world.factories:
        spec = f.spec
        pub = publish_profile(
            scene.service.engine,
            source,
            ProfileParams(
                factory=fed.factories[spec.factory_id],
                machines=tuple(spec.machine_ids()),
                interval_s=spec.interval_s,
                start=scene.start,
                end=scene.end,
                through_batch=through,
                block=block,
                meters=tuple(spec.meter_pairs()),
                cameras=tuple(spec.camera_ids()),
                stock_counters=tuple(spec.stock_counter_ids()),
            ),
        )
        scene.res.profiles[spec.factory_id] = {**pub.result, "commitment": pub.commitment.commitment}
        p = pub.result
        prof_rows.append(
            [
                spec.factory_id,
                f"{p['capacity_units_per_day']:,.0f}" if p["capacity_units_per_day"] is not None else "-",
                pct(p["oee"]),
                pct(p["first_pass_yield"]),
                pct(p["otif"]),
                pct(p["coverage"]),
                f"{p['trend_units_per_day']:+,.0f}" if p["trend_units_per_day"] is not None else "-",
                pub.commitment.commitment[:18] + "…",
            ]
        )
        measured_rows.append(_measured_row(spec.factory_id, p))
        scene.report.image(
            f"profile-{spec.factory_id}.png",
            profile_chart(p, factory_name=spec.factory_id),
            f"{spec.factory_id}: daily output",
        )
    return prof_rows, measured_rows


def _days(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f} d"


def _measured_row(factory: str, p: dict[str, Any]) -> list[Any]:
    """A profile's measured dimensions as a table row ("-": too little data for the figure)."""
    kwh = p.get("energy_per_good_unit_kwh")
    consistency = p.get("energy_consistency")
    backs = (
        "-" if consistency is None else pct(consistency) + (" FLAG" if p.get("energy_inconsistent") else "")
    )
    backlog = p.get("backlog_units")
    trend = p.get("availability_trend_per_day")
    return [
        factory,
        "-" if kwh is None else f"{kwh:.3f}",
        backs,
        f"{_days(p.get('raw_material_cover_days'))} / {_days(p.get('finished_goods_cover_days'))}",
        "-"
        if backlog is None
        else f"{backlog:,.0f} units = {_days(p.get('backlog_coverage_days'))} of capacity",
        f"{p.get('unplanned_stops', 0)}",
        "-" if trend is None else f"{100 * trend:+.2f} pts/day",
        pct(p.get("camera_first_pass_yield")),
    ]


def _yield_models(
    scene: Scene, cast: Cast, fed: FeedResult, source: LedgerSource, through: int
) -> list[list[Any]]:
    """Each factory's first line's yield model, published and charted; the rows of its table."""
    factories = cast.world.factories
    yield_rows = []
    for i, f in enumerate(factories):
        spec = f.spec
        line = spec.line_ids()[0]
        scene.progress("yield models", i, len(factories))
        ypub, yres = publish_yield(
            scene.service.engine,
            source,
            YieldParams(
                factory=fed.factories[spec.factory_id],
                line_id=line,
                controller=spec.controller_id(line),
                stations=tuple(spec.station_ids(line)),
                interval_s=spec.interval_s,
                start=scene.start,
                end=scene.end,
                through_batch=through,
                model=YieldModelParams(n_repeats=2, seed=scene.opts.seed),
            ),
        )
        keys = set(f.lines[0].key_names())
        found = [n for n in yres.top(len(keys)) if n in keys]
        scene.res.yields[line] = {
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
        scene.report.image(f"yield-{line}.png", yield_chart(yres), f"{line}: yield drivers and windows")
    scene.progress("yield models", len(factories), len(factories))
    return yield_rows


def credit(scene: Scene, cast: Cast, fed: FeedResult) -> None:
    """6. The oracle publishes credit records; sun-a consents to bank A, whose query is answered;
    bank B's is refused; both are in sun-a's access log."""
    scene.step("6. credit records, a consent, a bank query and a refused one")
    res, api, acct = scene.res, scene.api, scene.acct
    bank_a, bank_b = acct["bank-a"], acct["bank-b"]
    register_bank_keys(scene, bank_a, bank_b)
    rec_rows = _credit_records(scene, cast, fed)
    sun_a = cast.feed.parties["sun-a"]
    registry = CreditRegistryClient.from_deployment(scene.chain, scene.deployment)
    now_chain = int(scene.chain.block("latest")["timestamp"])
    grant = registry.grant_consent(sun_a, bank_a.address, expires_at=now_chain + 30 * 86_400)
    # the chain holds the consent's id only; sun-a registers its opening (bank, salt) with the ledger
    opening = {"bank": bank_a.address, "salt": "0x" + grant.opening.salt.hex()}
    api.http.post("/v1/consents/openings", json=opening, headers=api.headers(sun_a)).raise_for_status()
    r = api.http.get(f"/v1/bank/factories/{sun_a.address}/credit", headers=api.headers(bank_a))
    res.bank_answer = r.status_code
    served = r.json().get("current") if r.status_code == 200 else None
    res.sealed = sealed_story(scene, sun_a.address, bank_a, bank_b, served)
    # bank B, admitted but not consented: the ledger refuses it, and its own node shows commitments only
    spec_a = next(f.spec for f in cast.world.factories if f.spec.factory_id == "sun-a")
    digest = reading_of(scene, list(spec_a.device_ids()))
    res.bank_b = bank_b_tries(scene, sun_a.address, digest, bank_b, [bank_a.address, bank_b.address])
    res.refused_answer = (res.bank_b["credit"]["status"], res.bank_b["credit"]["code"])
    log = api.http.get(f"/v1/factories/{sun_a.address}/access-log", headers=api.headers(sun_a))
    log.raise_for_status()
    body = log.json()
    entries = body.get("entries", body if isinstance(body, list) else [])
    res.access_log = list(entries)
    _credit_report(scene, rec_rows)


def _credit_records(scene: Scene, cast: Cast, fed: FeedResult) -> list[list[Any]]:
    """The oracle's record of each factory, published through the credit desk; the table's rows."""
    desk = desk_of(scene.service)
    # the chain knows the buyer by its address; the desk names it in the factories' reasons
    desk.party_names[cast.buyer.address] = BUYER_NAME
    oracle = scene.acct["oracle"]
    price = {"solar-cell": 0.9, "rubber-mixing": 260.0}
    rec_rows = []
    for f in cast.world.factories:
        spec = f.spec
        factory = fed.factories[spec.factory_id]
        pubn = desk.publish(
            oracle,
            factory,
            scene.res.profiles[spec.factory_id]["commitment"],
            price=price[spec.kind.name],
            currency="CNY",
        )
        a = pubn.assessment
        scene.res.openings[spec.factory_id] = pubn.opening
        scene.res.records[spec.factory_id] = {
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
    return rec_rows


def _credit_report(scene: Scene, rec_rows: list[list[Any]]) -> None:
    res, report = scene.res, scene.report
    report.section(
        "6. Credit records and consent",
        "The analytics oracle assessed each factory (grade on the S1..S10 master scale, PD, limit, reasons) "
        "and published on chain only a salted commitment to the record, with its validity, model version "
        "and analytics commitment; the record itself reaches a bank only while the factory's consent "
        "stands, encrypted to the bank's key on chain and from the ledger. sun-a consented to bank A only.",
    )
    proof = res.proof
    if proof.get("receivables"):
        report.para(
            f"Before the records were assessed, the buyer ({proof['buyer']}) confirmed "
            f"{len(proof['receivables'])} receivables to {proof['factory']} on its certified lots and paid "
            "them late (the chain's clock moved past their due date); the desk reads them from the chain, "
            f"and {proof['factory']}'s lots' verdicts from the certifier, into its record's reasons:"
        )
        report.table(["receivable", "backing lot", "face (tCNY)", "due", "paid", "late"], proof_rows(proof))
    elif proof.get("skipped"):
        report.para(f"The buyer's late payments were not played: {proof['skipped']}.")
    report.table(["factory", "grade", "PD (12 months)", "limit", "top reasons"], rec_rows)
    if res.sealed:
        report.table(["who", "sees of sun-a's record"], sealed_rows(res.sealed))
    report.table(
        ["who", "tried", "got"],
        [
            ["bank A (consented)", "sun-a's credit record, from the ledger", f"HTTP {res.bank_answer}"],
            *privacy_rows(res.bank_b, {}),
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
