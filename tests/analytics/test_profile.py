"""Factory profile: hand-computed small cases for every metric, incremental == full, thin flagged."""

from __future__ import annotations

from datetime import date
from typing import Any

import numpy as np
import pytest

from analytics.period_profile import ProfileAccumulator, build_profile, month_period
from analytics.profile import (
    DaySummary,
    Delivery,
    Order,
    ReadingColumns,
    columns_from_readings,
    summarize_day,
)
from analytics.profile_base import DAY_MS, Factory, ProfileError, day_start_ms
from device_attestation.reading import Reading
from supet_base.errors import SupetError

# 6-hour interval: 4 slots a day, so every figure is easy to work out by hand.
F = Factory("F1", ("A", "B"), interval_s=21_600)
SLOT_MS = 21_600_000
D1, D2, D3 = date(2026, 3, 2), date(2026, 3, 3), date(2026, 3, 4)


def reading(device: str, day: date, slot: int, seq: int = 1, **metrics: float) -> dict[str, Any]:
    return Reading(
        device_id=device, seq=seq, ts_ms=day_start_ms(day) + slot * SLOT_MS + 5, metrics=metrics
    ).to_json_obj()


def day1() -> list[dict[str, Any]]:
    return [
        reading("A", D1, 0, state=1, good_units=10, rework_units=1, defect_units=1, ideal_rate_uph=4),
        reading("A", D1, 1, state=1, good_units=8, defect_units=2, ideal_rate_uph=4),
        reading("A", D1, 2, state=2),
        reading("A", D1, 3, state=0),
        reading("B", D1, 0, state=1, good_units=20, ideal_rate_uph=4),
        reading("B", D1, 1, state=1, good_units=20, ideal_rate_uph=4.0),
    ]


def day2() -> list[dict[str, Any]]:
    a = [reading("A", D2, s, state=1, good_units=5, ideal_rate_uph=4) for s in range(4)]
    b = [reading("B", D2, s, state=0) for s in range(4)]
    return a + b


def summary(day: date, objs: list[dict[str, Any]]) -> DaySummary:
    return summarize_day(F, day, columns_from_readings(objs, F))


def test_day_summary_per_device() -> None:
    s = summary(D1, day1())
    a, b = s.devices
    assert (a.running_s, a.unplanned_s, a.planned_down_s) == (43_200, 21_600, 21_600)
    assert (a.good_units, a.rework_units, a.defect_units) == (18, 1, 3)
    assert a.ideal_units == pytest.approx(48)  # 4 u/h x 6 h x 2 running slots
    assert (a.readings, a.expected) == (4, 4)
    assert (b.running_s, b.good_units, b.ideal_units, b.readings) == (43_200, 40, 48, 2)
    assert s.sellable_units == 59
    assert DaySummary.from_json_obj(s.to_json_obj()) == s


def test_profile_every_metric_by_hand() -> None:
    orders = [
        Order("O1", "buyer-x", 50, D2),  # 30 + 20 by end of due day: OTIF
        Order("O2", "buyer-x", 40, D3),  # delivered the day after: late
        Order("O3", "buyer-y", 10, D3),  # only 5 delivered: not in full
        Order("O4", "buyer-y", 10, date(2026, 3, 10)),  # due outside the period: not counted
    ]
    deliveries = [
        Delivery("O1", 30, day_start_ms(D1) + 12 * 3_600_000),
        Delivery("O1", 20, day_start_ms(D2) + DAY_MS - 1),
        Delivery("O2", 40, day_start_ms(D3) + DAY_MS),
        Delivery("O3", 5, day_start_ms(D2)),
    ]
    p = build_profile(F, D1, D3, [summary(D1, day1()), summary(D2, day2())], orders, deliveries)
    # run 8 slots, unplanned 1, planned down 5 (day 3 silent)
    assert p.availability == pytest.approx(8 / 9)
    assert p.utilisation == pytest.approx(8 / 14)
    # units 62 + 20 = 82, ideal 96 + 96 = 192, sellable 59 + 20 = 79, first pass 58 + 20 = 78
    assert p.performance == pytest.approx(82 / 192)
    assert p.quality == pytest.approx(79 / 82)
    assert p.first_pass_yield == pytest.approx(78 / 82)
    assert p.oee == pytest.approx(8 / 9 * 82 / 192 * 79 / 82)
    assert p.daily_output == (59, 20, 0)
    assert p.days_with_data == 2
    assert p.capacity_units_per_day == pytest.approx(20 + 0.9 * 39)  # p90 of [59, 20]
    assert p.trend_units_per_day == pytest.approx(-39)
    assert p.volatility == pytest.approx(19.5 / 39.5)
    assert p.delivered_units == 55  # the O2 delivery lands after the period
    assert p.inventory_days == pytest.approx((79 - 55) / (55 / 3))
    assert (p.orders_due, p.orders_otif) == (3, 1)
    assert p.otif == pytest.approx(1 / 3)
    assert (p.readings, p.readings_expected) == (14, 24)
    assert p.coverage == pytest.approx(14 / 24)
    assert p.thin
    assert p.device_coverage == pytest.approx({"A": 8 / 12, "B": 6 / 12})


def test_undefined_metrics_are_none() -> None:
    p = build_profile(F, D1, D3, [])
    assert p.coverage == 0 and p.thin and p.days_with_data == 0
    for v in (
        p.capacity_units_per_day,
        p.oee,
        p.availability,
        p.otif,
        p.inventory_days,
        p.trend_units_per_day,
    ):
        assert v is None


def test_full_coverage_is_not_thin() -> None:
    objs = [reading(d, D1, s, state=1, good_units=3, ideal_rate_uph=1) for d in "AB" for s in range(4)]
    p = build_profile(F, D1, D1, [summary(D1, objs)])
    assert p.coverage == 1 and not p.thin
    assert p.performance == pytest.approx(24 / 48)
    assert p.oee == pytest.approx(0.5)


def test_duplicate_slot_counts_once() -> None:
    objs = [*day1(), reading("A", D1, 0, seq=9, state=1, good_units=99, ideal_rate_uph=4)]
    assert summary(D1, objs) == summary(D1, day1())


def test_incremental_equals_full() -> None:
    rng = np.random.default_rng(7)
    start, end = month_period(2026, 2)
    f = Factory("F2", tuple(f"d{i}" for i in range(5)), interval_s=600)
    acc = ProfileAccumulator(f, start, end)
    cols_by_day = {}
    for k in range(10):
        day = date(2026, 2, 1 + k)
        n = 600
        cols = ReadingColumns(
            device=rng.integers(0, 5, n),
            ts_ms=day_start_ms(day) + rng.integers(0, DAY_MS, n),
            state=rng.integers(0, 3, n),
            good=rng.integers(0, 20, n).astype(np.float64),
            rework=rng.integers(0, 2, n).astype(np.float64),
            defect=rng.integers(0, 3, n).astype(np.float64),
            ideal_rate_uph=np.full(n, 150.0),
        )
        cols_by_day[day] = cols
        acc.add_day(day, cols)
        incremental = acc.profile()
        full = build_profile(f, start, end, [summarize_day(f, d, c) for d, c in cols_by_day.items()])
        assert incremental == full
    stored = [DaySummary.from_json_obj(s.to_json_obj()) for s in acc.days.values()]
    assert build_profile(f, start, end, stored) == acc.profile()
    assert acc.profile().days_with_data == 10 and acc.profile().thin


@pytest.mark.parametrize(
    ("objs", "code"),
    [
        ([reading("A", D1, 0, state=3)], "profile.state"),
        ([reading("A", D1, 0, state=1.5, ideal_rate_uph=1)], "profile.state"),
        ([reading("A", D1, 0, state=1, good_units=1)], "profile.ideal_rate"),
        ([reading("A", D2, 0, state=0)], "profile.outside_day"),
        ([reading("Z", D1, 0, state=0)], "profile.unknown_device"),
        ([reading("A", D1, 0, good_units=1)], "profile.no_state"),
        ([reading("A", D1, 0, state=0, defect_units=-1)], "profile.negative"),
    ],
)
def test_bad_input_is_refused(objs: list[dict[str, Any]], code: str) -> None:
    with pytest.raises(ProfileError) as e:
        summary(D1, objs)
    assert e.value.code == code
    assert isinstance(e.value, SupetError)


def test_bad_factory_and_period() -> None:
    with pytest.raises(ProfileError):
        Factory("F", ("A",), interval_s=7)
    with pytest.raises(ProfileError):
        Factory("F", ())
    with pytest.raises(ProfileError):
        build_profile(F, D3, D1, [])
    with pytest.raises(ProfileError):
        build_profile(Factory("other", ("A",), 21_600), D1, D1, [summary(D1, day1())])
