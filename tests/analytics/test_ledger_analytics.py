"""Analytics fed by the real ingest: a simulated factory's devices sign readings, the ledger anchors them,
the profile and the yield model are computed from anchored inputs only, committed, and recomputed.

One module-scoped world (two days, a healthy solar-cell factory and a deteriorating rubber mixer) is
streamed once through the ingest of a service on an embedded chain with a simulated clock.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlmodel import Session

from analytics.charts import profile_chart, yield_chart
from analytics.commitment import CommitmentMismatch, canonical_json, commit
from analytics.yield_model import YieldModelParams
from contracts.chain import Chain, dev_accounts
from contracts.deploy import deploy_suite
from contracts.onboarding import Onboarding
from contracts.order_terms import OrderTerms, write_openings
from contracts.orders import PurchaseOrdersClient, due_day, order_id
from ledger_service.analytics_store.publish import (
    PROFILE_MODEL_V1,
    ProfileParams,
    YieldParams,
    compute_profile,
    list_published,
    publish_profile,
    publish_yield,
    recompute,
    store_result,
)
from ledger_service.analytics_store.source import InputMismatch, LedgerSource, SourceError
from ledger_service.analytics_store.windows import publish_window_set
from ledger_service.config import Settings
from ledger_service.service import LedgerService
from ledger_service.store.models import AnalyticsResultRow
from simulation.factories import simulate_world
from simulation.feed import FeedResult, SimulationFeed
from simulation.kinds import RUBBER_MIXING, SOLAR_CELL, FactorySpec
from simulation.truth import World

DAYS = 2


@dataclass
class Rig:
    service: LedgerService
    source: LedgerSource
    world: World
    feed: FeedResult
    db_path: Path
    start: dt.date

    @property
    def end(self) -> dt.date:
        return self.start + dt.timedelta(days=DAYS - 1)

    def profile_params(self, i: int, *, measured: bool = True) -> ProfileParams:
        """Factory ``i``'s profile parameters; ``measured``: with its meters, cameras and stock counter."""
        spec = self.world.factories[i].spec
        return ProfileParams(
            factory=self.feed.factories[spec.factory_id],
            machines=tuple(spec.machine_ids()),
            interval_s=spec.interval_s,
            start=self.start,
            end=self.end,
            through_batch=self.source.latest_anchored_batch(),
            block=self.service.chain.block_number(),
            meters=tuple(spec.meter_pairs()) if measured else (),
            cameras=tuple(spec.camera_ids()) if measured else (),
            stock_counters=tuple(spec.stock_counter_ids()) if measured else (),
        )


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    today = dt.datetime.now(dt.UTC).date()
    start = today - dt.timedelta(days=DAYS)
    t0 = int(dt.datetime(start.year, start.month, start.day, tzinfo=dt.UTC).timestamp())
    chain = Chain.embedded(start_time=t0 - 86_400)
    operator = dev_accounts(1)[0]
    deployment = deploy_suite(chain, operator)
    onboarding = Onboarding(chain, deployment, operator, seed="test-analytics")
    onboarding.apply_policy()
    db = tmp_path_factory.mktemp("ledger") / "ledger.db"
    settings = Settings(
        database_url=f"sqlite:///{db}",
        verify_workers=0,
        anchoring=False,
        registry_refresh_seconds=0,
        late_window_ms=(DAYS + 2) * 86_400_000,
    )
    service = LedgerService.build(settings, chain=chain, deployment=deployment)
    service.start()
    world = simulate_world(
        [
            FactorySpec(factory_id="sun-a", kind=SOLAR_CELL, seed=11, outages_per_device_week=3.0),
            FactorySpec(factory_id="rub-b", kind=RUBBER_MIXING, seed=12, health="deteriorating"),
        ],
        start,
        DAYS,
    )
    feed = SimulationFeed(
        chain=chain,
        deployment=deployment,
        onboarding=onboarding,
        submit=lambda objs: service.pipeline.submit(objs, source="http"),
    )
    result = feed.run(world)
    service.anchoring.flush(timeout=120)
    yield Rig(service, LedgerService_source(service, result), world, result, db, start)
    service.stop()


def spec_lines(f: object) -> int:
    return int(f.spec.lines)  # type: ignore[attr-defined]


def LedgerService_source(service: LedgerService, fed: FeedResult) -> LedgerSource:
    """The analytics' source, with the supplier's openings of its orders' terms (not on chain)."""
    return LedgerSource(service.engine, service.chain, service.deployment, order_terms=fed.order_terms)


def test_every_simulated_reading_went_through_the_ingest_and_was_anchored(rig: Rig) -> None:
    sent = sum(len(r) for r in rig.world.readings.values())
    assert rig.feed.sent == sent and rig.feed.accepted == sent and not rig.feed.rejected
    assert rig.service.anchoring.stats().pending_readings == 0
    # Each factory's devices are found from the chain's enrollments (the enrolling party).
    for f in rig.world.factories:
        assert rig.source.devices_of(rig.feed.factories[f.spec.factory_id]) == sorted(f.spec.device_ids())
        # ... and their roles in the profile, from the metrics they sign
        roles = rig.source.profile_devices(rig.feed.factories[f.spec.factory_id])
        assert roles.machines == tuple(f.spec.machine_ids())
        assert roles.meters == tuple(f.spec.meter_pairs())
        assert roles.cameras == tuple(f.spec.camera_ids())
        assert roles.stock_counters == tuple(f.spec.stock_counter_ids())
    assert rig.feed.chain_time_simulated and len(rig.feed.orders) == 2 * DAYS


def test_profile_from_anchored_readings_matches_the_planted_truth(rig: Rig) -> None:
    for i, f in enumerate(rig.world.factories):
        pub = publish_profile(rig.service.engine, rig.source, rig.profile_params(i))
        truth = f.figures()
        got = pub.result
        # Coverage is exactly what the devices delivered; figures over the reported intervals are
        # close to the truth over every interval (power outages hide a few).
        assert got["coverage"] == pytest.approx(truth["coverage"], abs=1e-9)
        for name in ("availability", "performance", "quality", "first_pass_yield", "oee"):
            assert got[name] == pytest.approx(truth[name], abs=0.03), name
        assert got["orders_due"] == 1  # the first day's order is due inside the two-day period
        assert got["otif"] == truth["otif"]
        # The measured dimensions, from the meters', cameras' and stock counter's signed readings.
        assert got["schema"] == "supet.factory-profile.v2"
        assert got["energy_per_good_unit_kwh"] == pytest.approx(truth["energy_per_good_unit_kwh"], rel=0.03)
        # two days are too few for the factory's own energy reference: insufficient, not a guess
        assert got["energy_days"] == DAYS and got["energy_consistency"] is None
        assert got["energy_inconsistent"] is None
        assert got["raw_material_units"] == pytest.approx(truth["raw_material_units"], rel=0.02)
        assert got["finished_goods_units"] == pytest.approx(truth["finished_goods_units"], rel=0.02)
        assert got["finished_goods_cover_days"] == pytest.approx(truth["finished_goods_cover_days"], rel=0.03)
        assert got["backlog_units"] == truth["backlog_units"] > 0  # the last day's order is still open
        assert got["backlog_coverage_days"] == pytest.approx(truth["backlog_coverage_days"], rel=0.05)
        assert abs(got["unplanned_stops"] - truth["unplanned_stops"]) <= 2
        assert got["equipment_age_days"] == truth["equipment_age_days"]
        assert set(got["equipment"]) == set(f.spec.machine_ids())
        assert got["camera_first_pass_yield"] == pytest.approx(truth["camera_first_pass_yield"], abs=0.03)
        assert len(got["camera_lots"]) == DAYS * spec_lines(f)
        # Inputs: every reading of every named device, this factory's orders and the deliveries
        # accepted up to the block.
        readings = got["readings"] + got["energy_readings"] + got["camera_readings"] + got["stock_counts"]
        assert pub.commitment.n_inputs == readings + DAYS + DAYS * spec_lines(f)
        # Recomputed from the store and the chain, it reproduces its commitment.
        assert (
            recompute(rig.service.engine, rig.source, pub.commitment.commitment).commitment == pub.commitment
        )


def test_a_version_1_profile_still_recomputes(rig: Rig) -> None:
    """A profile committed before the measured dimensions (model version 1) keeps verifying: it is
    recomputed with its own inputs and its own fields, and its commitment is not the version 2 one."""
    params = rig.profile_params(0, measured=False)
    result, inputs = compute_profile(rig.source, params, version=1)
    assert result["schema"] == "supet.factory-profile.v1" and "energy_consistency" not in result
    c = commit(result, inputs, PROFILE_MODEL_V1, params.to_json_obj())
    store_result(rig.service.engine, "profile", params.factory, params.to_json_obj(), c, result)
    assert recompute(rig.service.engine, rig.source, c.commitment).commitment == c
    v2 = publish_profile(rig.service.engine, rig.source, params)
    assert v2.commitment.model_version == "2" and v2.commitment.commitment != c.commitment
    v1 = json.loads(canonical_json(result))  # as stored
    assert {k: v2.result[k] for k in v1 if k != "schema"} == {k: v for k, v in v1.items() if k != "schema"}


def test_readings_after_the_cut_off_batch_are_not_inputs(rig: Rig) -> None:
    params = rig.profile_params(0)
    full = publish_profile(rig.service.engine, rig.source, params)
    assert full.result["readings"] > 0
    cut = publish_profile(
        rig.service.engine, rig.source, ProfileParams(**{**params.__dict__, "through_batch": 0})
    )
    # Nothing anchored up to batch 0: a silent, thin profile; never a guess.
    assert cut.result["readings"] == 0 and cut.result["thin"] is True and cut.result["oee"] is None
    assert cut.commitment.commitment != full.commitment.commitment


@pytest.mark.scenario  # fits the yield model twice (publish, recompute): about a minute
def test_yield_model_from_the_ledger_finds_planted_drivers(rig: Rig) -> None:
    f = rig.world.factories[0]
    spec = f.spec
    line = spec.line_ids()[0]
    params = YieldParams(
        factory=rig.feed.factories[spec.factory_id],
        line_id=line,
        controller=spec.controller_id(line),
        stations=tuple(spec.station_ids(line)),
        interval_s=spec.interval_s,
        start=rig.start,
        end=rig.end,
        through_batch=rig.source.latest_anchored_batch(),
        model=YieldModelParams(n_repeats=2, n_selected=10),
    )
    pub, result = publish_yield(rig.service.engine, rig.source, params)
    keys = set(f.lines[0].key_names())
    assert result.n_parameters >= 200
    assert len(keys & set(result.top(5))) >= 4, (result.top(10), keys)
    assert result.holdout_auc > 0.7
    # Recomputation from the store and the chain gives the same commitment.
    assert recompute(rig.service.engine, rig.source, pub.commitment.commitment).commitment == pub.commitment
    png = yield_chart(result)
    assert png.startswith(b"\x89PNG") and len(png) > 5_000

    # issue 16.3: the line's window set, committed to this yield result, is recomputed through it
    ws, _ = publish_window_set(rig.service.engine, pub.commitment.commitment)
    assert ws.version == 1 and [w.name for w in ws.window_set.windows] == [w.name for w in result.windows]
    assert ws.window_set.devices == tuple(spec.station_ids(line))
    again = recompute(rig.service.engine, rig.source, ws.commitment)
    assert again.kind == "windows" and again.commitment.commitment == ws.commitment
    with Session(rig.service.engine) as s:  # the copy served to readers is edited: named
        row = s.get(AnalyticsResultRow, ws.commitment)
        assert row is not None
        original = row.result_json
        row.result_json = original.replace('"version":1', '"version":7')
        s.add(row)
        s.commit()
    try:
        with pytest.raises(CommitmentMismatch) as e:
            recompute(rig.service.engine, rig.source, ws.commitment)
        assert e.value.fields == ("stored_result",)
    finally:
        with Session(rig.service.engine) as s:
            row = s.get(AnalyticsResultRow, ws.commitment)
            assert row is not None
            row.result_json = original
            s.add(row)
            s.commit()


def test_recompute_names_a_tampered_reading_and_a_tampered_batch(rig: Rig) -> None:
    pub = publish_profile(rig.service.engine, rig.source, rig.profile_params(1))
    assert recompute(rig.service.engine, rig.source, pub.commitment.commitment).commitment == pub.commitment
    assert any(p.commitment == pub.commitment for p in list_published(rig.service.engine, kind="profile"))
    png = profile_chart(pub.result)
    assert png.startswith(b"\x89PNG")

    machine = rig.world.factories[1].spec.machine_ids()[0]
    db = sqlite3.connect(rig.db_path)
    try:
        row_id, text, digest = db.execute(
            "select id, reading_json, digest from readings where device_id = ? order by seq limit 1 offset 5",
            (machine,),
        ).fetchone()
        # 1. The content changes (one more good unit): the reading no longer gives its digest.
        obj = json.loads(text)
        obj["metrics"]["good_units"] = obj["metrics"].get("good_units", 0) + 1
        db.execute("update readings set reading_json = ? where id = ?", (json.dumps(obj), row_id))
        db.commit()
        with pytest.raises(InputMismatch, match=f"0x{bytes(digest).hex()}.*{machine}"):
            recompute(rig.service.engine, rig.source, pub.commitment.commitment)
        # 2. Content and digest change together: the batch no longer rebuilds its anchored root.
        from device_attestation.reading import Domain, Reading, reading_digest

        domain = Domain(
            chain_id=rig.service.chain.chain_id,
            verifying_contract=rig.service.deployment.address("ReadingAnchor"),
        )
        forged = reading_digest(Reading.from_json_obj(obj), domain)
        db.execute("update readings set digest = ? where id = ?", (forged, row_id))
        db.commit()
        with pytest.raises(InputMismatch, match=r"batch \d+: the store's"):
            recompute(rig.service.engine, rig.source, pub.commitment.commitment)
        # Restored, it recomputes again.
        db.execute("update readings set reading_json = ?, digest = ? where id = ?", (text, digest, row_id))
        db.commit()
        recompute(rig.service.engine, rig.source, pub.commitment.commitment)
        # 3. The stored copy of the result is edited (a better OEE): named as such.
        stored = json.loads(
            db.execute(
                "select result_json from analytics_results where commitment = ?", (pub.commitment.commitment,)
            ).fetchone()[0]
        )
        stored["oee"] = 0.99
        db.execute(
            "update analytics_results set result_json = ? where commitment = ?",
            (json.dumps(stored), pub.commitment.commitment),
        )
        db.commit()
        with pytest.raises(CommitmentMismatch, match="stored_result"):
            recompute(rig.service.engine, rig.source, pub.commitment.commitment)
    finally:
        db.close()


def test_recompute_names_changed_parameters_in_the_commitment(rig: Rig) -> None:
    pub = publish_profile(rig.service.engine, rig.source, rig.profile_params(0))
    db = sqlite3.connect(rig.db_path)
    try:
        params = json.loads(
            db.execute(
                "select params_json from analytics_results where commitment = ?", (pub.commitment.commitment,)
            ).fetchone()[0]
        )
        params["thin_coverage"] = 0.5  # someone relaxes the thin-profile threshold after publication
        db.execute(
            "update analytics_results set params_json = ? where commitment = ?",
            (json.dumps(params), pub.commitment.commitment),
        )
        db.commit()
    finally:
        db.close()
    with pytest.raises(CommitmentMismatch) as info:
        recompute(rig.service.engine, rig.source, pub.commitment.commitment)
    assert "params_hash" in str(info.value)


def test_unknown_commitment_is_a_typed_error(rig: Rig) -> None:
    with pytest.raises(SourceError, match="no published result"):
        recompute(rig.service.engine, rig.source, "0x" + "ab" * 32)


def test_cli_publishes_recomputes_and_names_a_mismatch(
    rig: Rig, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    import supet.cli.analytics as cli_analytics
    from supet.cli import app

    # The embedded chain lives in this process: hand the CLI the rig's chain instead of a node.
    monkeypatch.setattr(
        cli_analytics, "open_deployment", lambda rpc, dep: (rig.service.chain, rig.service.deployment)
    )
    db = f"sqlite:///{rig.db_path}"
    factory = rig.feed.factories["sun-a"]
    chart = tmp_path / "p.png"
    runner = CliRunner()
    period = ["--factory", factory, "--start", rig.start.isoformat(), "--end", rig.end.isoformat()]
    chain_args = ["--rpc", "http://unused", "--deployment", str(tmp_path / "d.json"), "--database", db]
    # the chain holds only commitments to the orders' quantities: without the supplier's openings the
    # profile is refused, naming the order
    out = runner.invoke(app, ["analytics", "profile", *period, *chain_args])
    assert out.exit_code == 1 and isinstance(out.exception, SourceError), out.output
    assert out.exception.code == "analytics.source.order_terms_missing"
    openings = tmp_path / "terms.json"
    write_openings(openings, rig.source.order_terms.values())
    common = [*chain_args, "--order-terms", str(openings)]
    out = runner.invoke(
        app,
        [
            "analytics",
            "profile",
            "--factory",
            factory,
            "--start",
            rig.start.isoformat(),
            "--end",
            rig.end.isoformat(),
            "--chart",
            str(chart),
            *common,
        ],
    )
    assert out.exit_code == 0, out.output
    commitment = json.loads(out.output[: out.output.rindex("}") + 1])["commitment"]["commitment"]
    assert chart.read_bytes().startswith(b"\x89PNG")
    out = runner.invoke(app, ["analytics", "recompute", commitment, *common])
    assert out.exit_code == 0 and "reproduced: profile" in out.output, out.output
    out = runner.invoke(app, ["analytics", "list", "--database", db])
    assert commitment in out.output
    # Tamper one machine reading: recompute exits 1 and names the reading.
    con = sqlite3.connect(rig.db_path)
    try:
        row_id, text = con.execute(
            "select id, reading_json from readings where device_id = 'sun-a-l1-ctl' order by seq limit 1"
        ).fetchone()
        obj = json.loads(text)
        obj["metrics"]["defect_units"] = obj["metrics"].get("defect_units", 0) + 3
        con.execute("update readings set reading_json = ? where id = ?", (json.dumps(obj), row_id))
        con.commit()
        out = runner.invoke(app, ["analytics", "recompute", commitment, *common])
        # (`supet` prints a SupetError's message and exits 1; the runner hands us the error itself.)
        assert out.exit_code == 1 and isinstance(out.exception, InputMismatch), out.output
        assert "sun-a-l1-ctl, seq 1" in str(out.exception)
    finally:
        con.execute("update readings set reading_json = ? where id = ?", (text, row_id))
        con.commit()
        con.close()


def test_cli_profile_has_every_dimension(rig: Rig, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`supet analytics profile` finds the factory's devices as the service does
    (LedgerSource.profile_devices): machines, kWh meters, cameras and the stock counter, so its profile
    is the one computed from every device, with energy, stock and camera figures."""
    from typer.testing import CliRunner

    import supet.cli.analytics as cli_analytics
    from supet.cli import app

    monkeypatch.setattr(
        cli_analytics, "open_deployment", lambda rpc, dep: (rig.service.chain, rig.service.deployment)
    )
    openings = tmp_path / "terms.json"
    write_openings(openings, rig.source.order_terms.values())
    out = CliRunner().invoke(
        app,
        [
            "analytics",
            "profile",
            "--factory",
            rig.feed.factories["sun-a"],
            "--start",
            rig.start.isoformat(),
            "--end",
            rig.end.isoformat(),
            "--rpc",
            "http://unused",
            "--deployment",
            str(tmp_path / "d.json"),
            "--database",
            f"sqlite:///{rig.db_path}",
            "--order-terms",
            str(openings),
        ],
    )
    assert out.exit_code == 0, out.output
    got = json.loads(out.output[: out.output.rindex("}") + 1])["profile"]
    assert rig.world.factories[0].spec.factory_id == "sun-a"
    expected, _ = compute_profile(rig.source, rig.profile_params(0, measured=True))
    assert got == json.loads(canonical_json(expected))  # as stored
    assert got["energy_readings"] > 0 and got["energy_per_good_unit_kwh"] is not None
    assert got["camera_readings"] > 0 and got["camera_first_pass_yield"] is not None
    assert got["stock_counts"] == DAYS and got["finished_goods_units"] is not None


def test_only_orders_the_supplier_accepted_are_inputs(rig: Rig) -> None:
    """Issue 12, finding 11: an order counts for a factory's OTIF only once the factory accepted it on
    chain; a buyer cannot load a supplier's record with orders it never took on."""
    svc = rig.service
    onboarding = Onboarding(svc.chain, svc.deployment, dev_accounts(1)[0], seed="test-analytics")
    buyer, supplier = onboarding.account("buyer"), onboarding.account("factory-sun-a")
    assert supplier.address == rig.feed.factories["sun-a"]
    orders = PurchaseOrdersClient.from_deployment(svc.chain, svc.deployment)
    before = rig.source.chain_inputs(supplier.address, block=svc.chain.block_number())
    assert before.orders, "the simulated week placed accepted orders"
    placed_order = orders.place(
        buyer,
        "PO-NEVER-ACCEPTED",
        supplier=supplier.address,
        gtin=int(rig.world.factories[0].spec.gtin),
        quantity=500,
        unit_price=900,
        due_day=due_day(rig.end + dt.timedelta(days=30)),
    )
    placed = rig.source.chain_inputs(supplier.address, block=svc.chain.block_number())
    assert placed.orders == before.orders and placed.digests == before.digests
    orders.accept(supplier, "PO-NEVER-ACCEPTED", placed_order.terms, buyer=buyer.address)
    # issue 14: the chain holds only the commitment to its quantity: without the opening the order
    # cannot count, and an altered opening is caught against the commitment
    block = svc.chain.block_number()
    key = placed_order.order_id
    with pytest.raises(SourceError, match="terms are not opened here") as missing:
        rig.source.chain_inputs(supplier.address, block=block)
    assert missing.value.code == "analytics.source.order_terms_missing"
    terms = placed_order.terms
    altered = OrderTerms(order_id=key, quantity=5_000, unit_price=terms.unit_price, salt=terms.salt)
    rig.source.add_order_terms([altered])
    with pytest.raises(InputMismatch, match="does not open its terms commitment") as mismatch:
        rig.source.chain_inputs(supplier.address, block=block)
    assert mismatch.value.code == "analytics.input_mismatch.order_terms"
    rig.source.add_order_terms([terms])
    accepted = rig.source.chain_inputs(supplier.address, block=block)
    new = {o.order_id for o in accepted.orders} - {o.order_id for o in before.orders}
    assert new == {"0x" + order_id(buyer.address, "PO-NEVER-ACCEPTED").hex()}
    (order,) = [o for o in accepted.orders if o.order_id == "0x" + key.hex()]
    assert order.quantity == 500
