"""A factory profile with fixed figures, stored as published, for tests that need one without running
the analytics over a ledger (the portal, the access policy, the finance API)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.engine import Engine

from analytics.commitment import commit
from analytics.period_profile import FactoryProfile
from ledger_service.analytics_store.publish import PROFILE_MODEL, profile_json, store_result

__all__ = ["sample_profile", "store_sample_profile"]

_DAILY = (780.0, 800.0, 810.0, 790.0, 820.0)


def sample_profile(factory: str, *, days: int = 5, **figures: Any) -> dict[str, Any]:
    """The profile JSON of ``factory`` over ``days`` days from 1 October 2026: 800 sellable units a day,
    0.97 quality, every reading in, the daily output cycling 780 to 820; ``figures`` replace any field."""
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
