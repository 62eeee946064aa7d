"""A factory profile with fixed figures, stored as published, for tests that need one without running
the analytics over a ledger (the portal, the access policy, the finance API)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.engine import Engine

from analytics.commitment import commit
from analytics.period_profile import FactoryProfile
from ledger_service.analytics_store.publish import PROFILE_MODEL, profile_json, store_result

__all__ = ["march_profile", "sample_profile", "store_sample_profile"]

_DAILY = (780.0, 800.0, 810.0, 790.0, 820.0)


def march_profile(factory: str) -> FactoryProfile:
    """A healthy factory's version-1 profile of March 2026 (every day with data, 0.97 quality, 11 of 12
    orders on time and in full), as the credit model scores it."""
    return FactoryProfile(
        factory_id=factory,
        start=dt.date(2026, 3, 1),
        end=dt.date(2026, 3, 31),
        days_in_period=31,
        days_with_data=31,
        capacity_units_per_day=2500.0,
        utilisation=0.8,
        availability=0.9,
        performance=0.9,
        quality=0.97,
        oee=0.9 * 0.9 * 0.97,
        first_pass_yield=0.97,
        sellable_units=60_000.0,
        delivered_units=58_000.0,
        inventory_days=4.0,
        orders_due=12,
        orders_otif=11,
        otif=11 / 12,
        trend_units_per_day=4.0,
        volatility=0.09,
        readings=990,
        readings_expected=1000,
        coverage=0.99,
        thin=False,
    )


def sample_profile(factory: str, *, days: int = 5, **figures: Any) -> dict[str, Any]:
    """The profile JSON (version 2) of ``factory`` over ``days`` days from 1 October 2026: 800 sellable
    units a day, 0.97 quality, every reading in, the daily output cycling 780 to 820; 0.4 kWh per good
    unit backed by its energy, 12 days of raw material and 1.5 of finished goods, 1.2 days of capacity
    in backlog, one machine with 3 unplanned stops, camera yield 0.955; ``figures`` replace any field."""
    fields: dict[str, Any] = dict(
        factory_id=factory,
        start=dt.date(2026, 10, 1),
        end=dt.date(2026, 10, 1) + dt.timedelta(days=days - 1),
        days_in_period=days,
        days_with_data=days,
        capacity_units_per_day=1000.0,
        utilisation=0.8,
        availability=0.9,
        performance=0.9,
        quality=0.97,
        oee=0.78,
        first_pass_yield=0.96,
        sellable_units=800.0 * days,
        delivered_units=780.0 * days,
        inventory_days=6.0,
        orders_due=10,
        orders_otif=9,
        otif=0.9,
        trend_units_per_day=2.0,
        volatility=0.05,
        readings=1440 * days,
        readings_expected=1440 * days,
        coverage=1.0,
        thin=False,
        daily_output=tuple(_DAILY[d % len(_DAILY)] for d in range(days)),
        energy_kwh=0.4 * 776.0 * days,
        energy_readings=1440 * days,
        energy_readings_expected=1440 * days,
        energy_coverage=1.0,
        energy_days=days,
        energy_per_good_unit_kwh=0.4,
        energy_per_unit_daily=(0.388,) * days,
        energy_reference_kwh_per_unit=0.388,
        energy_consistency=0.995 if days >= 3 else None,
        energy_suspect_days=0,
        energy_inconsistent=False if days >= 3 else None,
        stock_counts=days,
        stock_as_of=f"2026-10-{days:02d}T06:00:00Z",
        raw_material_units=12 * 800.0 / 0.97,
        finished_goods_units=1.5 * 780.0,
        raw_material_cover_days=12.0,
        finished_goods_cover_days=1.5,
        backlog_orders=1,
        backlog_units=1200.0,
        backlog_overdue_units=0.0,
        backlog_coverage_days=1.2,
        equipment={
            f"{factory[:8]}-press": {
                "state": 1,
                "last_reading": f"2026-10-{days:02d}T23:59:00Z",
                "age_days": 1500.0,
                "running_s": 0.9 * 86_400 * days,
                "unplanned_s": 0.1 * 86_400 * days,
                "unplanned_stops": 3,
                "availability": 0.9,
            }
        },
        unplanned_stops=3,
        equipment_age_days=1500.0,
        availability_daily=(0.9,) * days,
        availability_trend_per_day=0.0 if days >= 3 else None,
        camera_readings=12 * days,
        camera_inspected=825.0 * days,
        camera_defects=0.045 * 825.0 * days,
        camera_first_pass_yield=0.955,
        camera_fpy_gap=0.005,
        camera_lots={
            f"LOT-{factory[:8]}-{d}": {"inspected": 825.0, "defects": 37.125, "defect_rate": 0.045}
            for d in range(days)
        },
    )
    fields.update(figures)
    return profile_json(FactoryProfile(**fields))


def store_sample_profile(engine: Engine, factory: str, *, days: int = 5, **figures: Any) -> str:
    """Commit :func:`sample_profile` (one made-up input) and store it as ``factory``'s published profile;
    its commitment, which an oracle publishes on chain."""
    result = sample_profile(factory, days=days, **figures)
    c = commit(result, [b"\x01" * 32], PROFILE_MODEL, {"factory": factory})
    store_result(engine, "profile", factory, {}, c, result)
    return c.commitment
