"""The profile's measured dimensions (issue 16): energy, stock, backlog, equipment, camera.

Hand-computed small cases for every formula (docs/analytics-profile.md, section 4), the simulator's
planted truth recovered from its signed readings (an honest factory with outages, a deteriorating
one, and one that inflates its reported output while its meter stays flat: flagged), and the
version-1 / version-2 result encodings.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from datetime import date
from typing import Any

import pytest

from analytics.commitment import canonical_json
from analytics.period_profile import FactoryProfile, build_profile
from analytics.profile import Delivery, Order, day_inputs_from_readings, summarize_inputs
from analytics.profile_base import DAY_MS, Factory, ProfileError, day_start_ms
from device_attestation.reading import Reading
from ledger_service.analytics_store.publish import profile_json
from simulation.factories import simulate_factory
from simulation.kinds import RUBBER_MIXING, SOLAR_CELL, FactorySpec
from simulation.truth import FactoryTruth, _match

# 6-hour interval: 4 slots a day.
F = Factory(
    "F1",
    ("A", "B"),
    interval_s=21_600,
    meters=(("MA", "A"), ("MB", "B")),
    cameras=("CAM",),
    stock_counters=("STK",),
)
SLOT_MS = 21_600_000
D1 = date(2026, 3, 2)


def r(
    device: str, day: date, slot: int, lot: str | None = None, seq: int = 1, **metrics: float
) -> dict[str, Any]:
    return Reading(
        device_id=device, seq=seq, ts_ms=day_start_ms(day) + slot * SLOT_MS + 5, lot_id=lot, metrics=metrics
    ).to_json_obj()


def summary(day: date, objs: list[dict[str, Any]], factory: Factory = F):  # type: ignore[no-untyped-def]
    return summarize_inputs(factory, day, day_inputs_from_readings(objs, factory))


def machine_day(day: date, units: float, *, kwh: float, meter: bool = True) -> list[dict[str, Any]]:
    """A's 4 slots: running, running, unplanned, planned down; its meter in every slot; B silent."""
    objs = [
        r("A", day, 0, state=1, good_units=units, ideal_rate_uph=100),
        r("A", day, 1, state=1, good_units=units, defect_units=0, ideal_rate_uph=100),
        r("A", day, 2, state=2),
        r("A", day, 3, state=0),
    ]
    if meter:
        objs += [r("MA", day, s, energy_kwh=kwh if s < 2 else 1.0) for s in range(4)]
    return objs


def test_energy_per_good_unit_counts_production_intervals_both_devices_reported() -> None:
    objs = [
        r("A", D1, 0, state=1, good_units=90, rework_units=5, defect_units=5, ideal_rate_uph=100),
        r("A", D1, 1, state=1, good_units=80, ideal_rate_uph=100),  # its meter is silent: not matched
        r("A", D1, 2, state=2),  # a stop: standby energy, not production
        r("MA", D1, 0, energy_kwh=50.0),
        r("MA", D1, 2, energy_kwh=4.0),
        r("MA", D1, 3, energy_kwh=1.0),
        r("MA", D1, 0, seq=2, energy_kwh=999.0),  # same slot again: ignored
    ]
    s = summary(D1, objs)
    ma, mb = s.meters
    assert (ma.kwh, ma.readings, ma.expected) == (55.0, 3, 4)
    assert (ma.matched_kwh, ma.matched_units, ma.matched_good) == (50.0, 100.0, 90.0)
    assert (mb.kwh, mb.readings) == (0.0, 0)
    p = build_profile(F, D1, D1, [s])
    assert p.energy_kwh == 55.0
    assert p.energy_per_good_unit_kwh == pytest.approx(50 / 90)
    assert p.energy_coverage == pytest.approx(3 / 8)
    assert p.energy_days == 1 and p.energy_per_unit_daily == (0.5,)
    # one day is too thin for a reference rate: no consistency, no flag, never a guess
    assert p.energy_reference_kwh_per_unit is None and p.energy_consistency is None
    assert p.energy_inconsistent is None


def test_output_inflated_while_energy_stays_flat_raises_the_flag() -> None:
    days = [D1 + dt.timedelta(days=i) for i in range(8)]
    honest = [summary(d, machine_day(d, 100, kwh=50.0)) for d in days[:4]]
    # the second half reports 150 units per slot; the meter still draws 50 kWh per slot
    inflated = [summary(d, machine_day(d, 150, kwh=50.0)) for d in days[4:]]
    p = build_profile(F, days[0], days[-1], honest + inflated)
    assert p.energy_days == 8
    # kWh per unit: 0.5 on honest days, 1/3 on inflated ones; the reference is their 75th percentile
    assert p.energy_reference_kwh_per_unit == pytest.approx(0.5)
    # backed units: honest 4 x 200, inflated 4 x (100 / 0.5 = 200) of 300 reported
    assert p.energy_consistency == pytest.approx((800 + 800) / (800 + 1200))
    assert p.energy_suspect_days == 4 and p.energy_inconsistent is True
    # the same output with energy that follows it is consistent
    p2 = build_profile(
        F, days[0], days[-1], honest + [summary(d, machine_day(d, 150, kwh=75.0)) for d in days[4:]]
    )
    assert p2.energy_consistency == pytest.approx(1.0)
    assert p2.energy_suspect_days == 0 and p2.energy_inconsistent is False
    # the threshold is a parameter
    assert (
        build_profile(F, days[0], days[-1], honest + inflated, energy_flag_below=0.75).energy_inconsistent
        is False
    )


def test_no_meter_no_energy_figures() -> None:
    plain = Factory("F1", ("A", "B"), interval_s=21_600)
    p = build_profile(plain, D1, D1, [summary(D1, machine_day(D1, 10, kwh=1, meter=False), plain)])
    assert p.energy_kwh is None and p.energy_coverage is None and p.energy_consistency is None
    assert p.stock_as_of is None and p.camera_first_pass_yield is None and p.camera_lots == {}


def test_measured_stock_and_days_of_cover() -> None:
    d2 = D1 + dt.timedelta(days=1)
    day1 = [
        *machine_day(D1, 10, kwh=5),
        r("STK", D1, 1, raw_material_units=500, finished_goods_units=80),
        r("STK", D1, 3, raw_material_units=450, finished_goods_units=70),  # the day's last count
    ]
    day2 = [*machine_day(d2, 30, kwh=5), r("STK", d2, 0, raw_material_units=400, finished_goods_units=60)]
    deliveries = [Delivery("O1", 40, day_start_ms(D1) + 1), Delivery("O1", 20, day_start_ms(d2) + 1)]
    s1 = summary(D1, day1)
    assert (s1.stock[0].counts, s1.stock[0].raw, s1.stock[0].finished) == (2, 450, 70)
    p = build_profile(F, D1, d2, [s1, summary(d2, day2)], [Order("O1", "b", 100, d2)], deliveries)
    assert (p.stock_counts, p.raw_material_units, p.finished_goods_units) == (3, 400, 60)
    assert p.stock_as_of == "2026-03-03T00:00:00Z"  # the count at 00:00:00.005
    # raw: 400 / (units made 80 / 2 data days); finished: 60 / (60 delivered / 2 days)
    assert p.raw_material_cover_days == pytest.approx(400 / 40)
    assert p.finished_goods_cover_days == pytest.approx(60 / 30)
    # no delivery: no finished-goods cover (never a division by zero)
    assert build_profile(F, D1, d2, [s1, summary(d2, day2)]).finished_goods_cover_days is None


def test_backlog_and_its_coverage_by_capacity() -> None:
    end = D1 + dt.timedelta(days=1)
    cut = day_start_ms(end) + DAY_MS
    orders = [
        Order("O1", "b", 100, D1, placed_ms=day_start_ms(D1) - DAY_MS),  # 60 delivered: 40 overdue
        Order("O2", "b", 50, end + dt.timedelta(days=3), placed_ms=day_start_ms(end)),  # open, not due
        Order("O3", "b", 70, end + dt.timedelta(days=5), placed_ms=cut),  # placed after the period
        Order("O4", "b", 30, D1),  # placement unknown: counts; delivered in full
    ]
    deliveries = [
        Delivery("O1", 60, day_start_ms(D1) + 1),
        Delivery("O1", 40, cut),  # after the period: still backlog at its end
        Delivery("O4", 30, day_start_ms(D1) + 2),
    ]
    days = [summary(D1, machine_day(D1, 10, kwh=5)), summary(end, machine_day(end, 20, kwh=5))]
    p = build_profile(F, D1, end, days, orders, deliveries)
    assert (p.backlog_orders, p.backlog_units, p.backlog_overdue_units) == (2, 90, 40)
    assert p.capacity_units_per_day == pytest.approx(20 + 0.9 * 20)  # p90 of [20, 40]
    assert p.backlog_coverage_days == pytest.approx(90 / 38)
    assert build_profile(F, D1, end, [], orders, deliveries).backlog_coverage_days is None  # no capacity


def test_equipment_register_stops_across_midnight_age_and_availability_trend() -> None:
    d = [D1 + dt.timedelta(days=i) for i in range(4)]
    commissioned = (D1 - date(1970, 1, 1)).days - 1000
    day0 = [
        r("A", d[0], 0, state=1, good_units=1, ideal_rate_uph=1, commissioned_day=commissioned),
        r("A", d[0], 1, state=2),  # stop 1 starts
        r("A", d[0], 2, state=1, good_units=1, ideal_rate_uph=1),
        r("A", d[0], 3, state=2),  # stop 2 starts, runs over midnight
    ]
    day1 = [
        r("A", d[1], 0, state=2),  # still stop 2
        r("A", d[1], 1, state=1, good_units=1, ideal_rate_uph=1),
        r("A", d[1], 3, state=2),  # stop 3 (slot 2 unreported: the last known state was running)
    ]
    # day 2 silent; day 3 opens in a stop: the last reported state (day 1) was a stop: the same stop
    day3 = [r("A", d[3], 0, state=2), r("A", d[3], 1, state=1, good_units=1, ideal_rate_uph=1)]
    s0 = summary(d[0], day0)
    assert (s0.devices[0].stop_starts, s0.devices[0].first_state, s0.devices[0].last_state) == (2, 1, 2)
    p = build_profile(F, d[0], d[3], [s0, summary(d[1], day1), summary(d[3], day3)])
    a = p.equipment["A"]
    assert a["unplanned_stops"] == 3 and p.unplanned_stops == 3
    assert a["state"] == 1 and a["last_reading"] == "2026-03-05T06:00:00Z"
    assert a["age_days"] == 1000 + 3 and p.equipment_age_days == 1003
    assert a["availability"] == pytest.approx(4 / 9)  # running 2 + 1 + 1 slots, stopped 2 + 2 + 1
    assert p.equipment["B"] == {
        "state": None,
        "last_reading": None,
        "age_days": None,
        "running_s": 0.0,
        "unplanned_s": 0.0,
        "unplanned_stops": 0,
        "availability": None,
    }
    assert p.availability_daily == (0.5, pytest.approx(1 / 3), None, 0.5)
    # slope of (0, .5), (1, 1/3), (3, .5)
    assert p.availability_trend_per_day == pytest.approx(1 / 84)
    # two days with an availability are too few for a trend
    assert build_profile(F, d[0], d[1], [s0, summary(d[1], day1)]).availability_trend_per_day is None


def test_camera_counts_feed_first_pass_yield_and_the_lots() -> None:
    objs = [
        r("A", D1, 0, state=1, good_units=90, rework_units=6, defect_units=4, ideal_rate_uph=100),
        r("CAM", D1, 0, lot="LOT-1", cam_inspected=60, cam_defects=6),
        r("CAM", D1, 1, lot="LOT-1", cam_inspected=40, cam_defects=2),
        r("CAM", D1, 1, lot="LOT-1", seq=3, cam_inspected=40, cam_defects=2),  # same time again: ignored
        r("CAM", D1, 2, lot="LOT-2", cam_inspected=10, cam_defects=5),
        r("CAM", D1, 3, cam_inspected=0, cam_defects=0),
    ]
    p = build_profile(F, D1, D1, [summary(D1, objs)])
    assert (p.camera_readings, p.camera_inspected, p.camera_defects) == (4, 110, 13)
    assert p.camera_first_pass_yield == pytest.approx(1 - 13 / 110)
    assert p.camera_fpy_gap == pytest.approx(0.9 - (1 - 13 / 110))
    assert p.camera_lots == {
        "LOT-1": {"inspected": 100.0, "defects": 8.0, "defect_rate": 0.08},
        "LOT-2": {"inspected": 10.0, "defects": 5.0, "defect_rate": 0.5},
    }


@pytest.mark.parametrize(
    ("obj", "code"),
    [
        (r("MA", D1, 0, kwh=1.0), "profile.metric_missing"),
        (r("MA", D1, 0, energy_kwh=-1.0), "profile.negative"),
        (r("CAM", D1, 0, cam_inspected=1), "profile.metric_missing"),
        (r("CAM", D1, 0, cam_inspected=1, cam_defects=2), "profile.camera_counts"),
        (r("STK", D1, 0, other=1), "profile.metric_missing"),
        (r("STK", D1, 0, raw_material_units=-5), "profile.negative"),
        (r("MA", D1 + dt.timedelta(days=1), 0, energy_kwh=1.0), "profile.outside_day"),
        (r("ZZ", D1, 0, energy_kwh=1.0), "profile.unknown_device"),
    ],
)
def test_bad_readings_of_the_new_devices_are_refused(obj: dict[str, Any], code: str) -> None:
    with pytest.raises(ProfileError) as e:
        summary(D1, [obj])
    assert e.value.code == code


def test_a_factory_refuses_a_meter_of_no_machine_and_repeated_ids() -> None:
    with pytest.raises(ProfileError, match="meter"):
        Factory("F", ("A",), meters=(("M", "B"),))
    with pytest.raises(ProfileError, match="repeat"):
        Factory("F", ("A",), cameras=("A",))


def test_result_encodings_v1_and_v2() -> None:
    days = [D1 + dt.timedelta(days=i) for i in range(3)]
    p = build_profile(F, days[0], days[-1], [summary(d, machine_day(d, 10, kwh=5)) for d in days])
    v2, v1 = profile_json(p), profile_json(p, version=1)
    assert v2["schema"] == "supet.factory-profile.v2" and v1["schema"] == "supet.factory-profile.v1"
    assert "energy_consistency" in v2 and "backlog_coverage_days" in v2
    assert not {"energy_consistency", "equipment", "camera_lots"} & set(v1)
    assert set(v1) < set(v2)
    assert {k: v2[k] for k in v1 if k != "schema"} == {k: v for k, v in v1.items() if k != "schema"}
    canonical_json(v2)  # every new figure is JSON-able, None included


# --- the simulator's planted truth ----------------------------------------------------


def _profile_of(spec: FactorySpec, days: int) -> tuple[FactoryProfile, FactoryTruth]:
    """The profile computed from the simulated factory's readings (Reading v1 JSON), orders and
    deliveries matched as the ledger source matches them."""
    start = date(2026, 3, 1)
    truth, readings = simulate_factory(spec, start, days)
    factory = Factory(
        spec.factory_id,
        tuple(spec.machine_ids()),
        spec.interval_s,
        meters=tuple(spec.meter_pairs()),
        cameras=tuple(spec.camera_ids()),
        stock_counters=tuple(spec.stock_counter_ids()),
    )
    mine = (
        set(spec.machine_ids())
        | set(factory.meter_ids)
        | set(spec.camera_ids())
        | set(spec.stock_counter_ids())
    )
    by_day: dict[date, list[dict[str, Any]]] = defaultdict(list)
    for x in readings:
        if x.device_id in mine:
            obj = {"device_id": x.device_id, "ts_ms": x.ts_ms, "lot_id": x.lot_id, "metrics": x.metrics}
            by_day[dt.datetime.fromtimestamp(x.ts_ms / 1000, dt.UTC).date()].append(obj)
    summaries = [
        summarize_inputs(factory, d, day_inputs_from_readings(objs, factory)) for d, objs in by_day.items()
    ]
    orders = [Order(o.order_ref, "buyer", o.quantity, o.due, o.placed_ms) for o in truth.orders]
    filled = _match(truth.orders, truth.deliveries)
    deliveries = [Delivery(ref, q, at) for ref, got in filled.items() for q, at in got]
    end = start + dt.timedelta(days=days - 1)
    return build_profile(factory, start, end, summaries, orders, deliveries), truth


@pytest.fixture(scope="module")
def honest() -> tuple[FactoryProfile, FactoryTruth]:
    return _profile_of(
        FactorySpec(factory_id="sun-a", kind=SOLAR_CELL, seed=11, outages_per_device_week=3.0), 8
    )


@pytest.fixture(scope="module")
def deteriorating() -> tuple[FactoryProfile, FactoryTruth]:
    return _profile_of(
        FactorySpec(factory_id="rub-b", kind=RUBBER_MIXING, seed=12, health="deteriorating"), 8
    )


def test_honest_factory_with_outages_matches_the_planted_truth(
    honest: tuple[FactoryProfile, FactoryTruth],
) -> None:
    p, truth = honest
    t = truth.figures()
    assert p.energy_coverage is not None and p.energy_coverage < 1  # the meter had outages
    assert p.energy_per_good_unit_kwh == pytest.approx(t["energy_per_good_unit_kwh"], rel=0.02)
    assert p.energy_consistency is not None and p.energy_consistency > 0.97
    assert p.energy_inconsistent is t["energy_inconsistent"] is False
    assert p.raw_material_units == pytest.approx(t["raw_material_units"], rel=0.02)
    assert p.finished_goods_units == pytest.approx(t["finished_goods_units"], rel=0.02)
    assert p.finished_goods_cover_days == pytest.approx(t["finished_goods_cover_days"], rel=0.03)
    # raw cover divides by the reported output: power outages hide a few units
    assert p.raw_material_cover_days == pytest.approx(t["raw_material_cover_days"], rel=0.06)
    assert p.backlog_units == t["backlog_units"] and p.backlog_orders == t["backlog_orders"]
    assert abs(p.unplanned_stops - t["unplanned_stops"]) <= max(2, 0.2 * t["unplanned_stops"])
    assert p.equipment_age_days == t["equipment_age_days"]
    assert p.camera_first_pass_yield == pytest.approx(t["camera_first_pass_yield"], abs=0.02)
    assert p.camera_fpy_gap is not None and abs(p.camera_fpy_gap) < 0.02
    assert len(p.camera_lots) == 8  # one lot per line-day, each with the camera's counts
    assert all(v["inspected"] > 0 for v in p.camera_lots.values())


def test_deteriorating_factory_matches_the_planted_truth(
    deteriorating: tuple[FactoryProfile, FactoryTruth],
) -> None:
    p, truth = deteriorating
    t = truth.figures()
    # no outages: every interval reported, so the figures are the truth's
    assert p.energy_kwh == pytest.approx(t["energy_kwh"], rel=1e-9)
    assert p.energy_per_good_unit_kwh == pytest.approx(t["energy_per_good_unit_kwh"], rel=1e-9)
    assert p.energy_inconsistent is False  # losing speed raises kWh per unit: no false alarm
    assert p.unplanned_stops == t["unplanned_stops"]
    assert p.availability_daily == pytest.approx(t["availability_daily"])
    assert p.availability_trend_per_day == pytest.approx(t["availability_trend_per_day"])
    assert p.availability_trend_per_day is not None and p.availability_trend_per_day < 0
    assert p.backlog_units == t["backlog_units"] > 0  # a slower factory falls behind its orders
    assert p.backlog_coverage_days == pytest.approx(t["backlog_coverage_days"])
    assert p.raw_material_cover_days == pytest.approx(t["raw_material_cover_days"], rel=0.02)


def test_inflated_output_with_flat_energy_is_flagged_against_the_truth() -> None:
    spec = FactorySpec(factory_id="sun-x", kind=SOLAR_CELL, seed=13, inflate_output_from_day=4)
    p, truth = _profile_of(spec, 8)
    t = truth.figures()
    assert t["energy_inconsistent"] is True
    assert p.energy_inconsistent is True
    assert p.energy_consistency == pytest.approx(t["energy_consistency"], abs=0.03)
    assert p.energy_suspect_days == 4  # exactly the inflated days
    # the reported first-pass yield runs ahead of what the camera sees
    assert p.camera_fpy_gap is not None and p.camera_fpy_gap > 0.02
