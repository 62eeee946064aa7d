"""A profile brought up to the readings anchored since its window (issue 15's re-rating, step 2): real
signed readings of a machine through the ingest, anchored, profiled; nothing new, nothing published."""

from __future__ import annotations

import datetime as dt

import pytest
from support import TestConsortium

from ledger_service.analytics_store.publish import ProfileParams, list_published, publish_profile
from ledger_service.analytics_store.refresh import new_data, profile_params_of, refresh_profile
from ledger_service.analytics_store.source import LedgerSource
from ledger_service.service import LedgerService

DAY_MS = 86_400_000
INTERVAL_S = 3600


def _day(ledger: LedgerService, signer, day: dt.date, *, defects: float) -> None:  # type: ignore[no-untyped-def]
    start = int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp() * 1000)
    subs = [
        signer.sign(
            {"state": 1, "good_units": 100.0 - defects, "defect_units": defects, "ideal_rate_uph": 110.0},
            ts_ms=start + h * INTERVAL_S * 1000,
        ).to_json_obj()
        for h in range(24)
    ]
    assert all(r.accepted for r in ledger.pipeline.submit(subs, source="http"))
    ledger.anchoring.flush(timeout=60)


@pytest.fixture(autouse=True)
def _started(ledger: LedgerService) -> None:
    ledger.start()


def test_refresh_publishes_the_next_window_only_after_new_anchored_readings(
    ledger: LedgerService, consortium: TestConsortium
) -> None:
    signer = consortium.enroll("press-1")
    today = dt.datetime.now(dt.UTC).date()
    first, second = today - dt.timedelta(days=2), today - dt.timedelta(days=1)
    _day(ledger, signer, first, defects=2.0)
    source = LedgerSource(ledger.engine, ledger.chain, ledger.deployment)
    params = ProfileParams(
        factory=consortium.factory.address,
        machines=("press-1",),
        interval_s=INTERVAL_S,
        start=first,
        end=first,
        through_batch=source.latest_anchored_batch(),
        block=ledger.chain.block_number(),
    )
    pub = publish_profile(ledger.engine, source, params)
    assert profile_params_of(pub.params) == params and profile_params_of({}) is None
    assert new_data(ledger.engine, params) is None and refresh_profile(ledger.engine, source, params) is None

    _day(ledger, signer, second, defects=12.0)  # a worse day, anchored
    fresh = new_data(ledger.engine, params)
    assert fresh is not None and (fresh.readings, fresh.last_day) == (24, second)
    nxt = refresh_profile(ledger.engine, source, params)
    assert nxt is not None
    moved = profile_params_of(nxt.params)
    assert moved is not None and (moved.start, moved.end) == (second, second)
    assert moved.through_batch == source.latest_anchored_batch() > params.through_batch
    assert nxt.result["first_pass_yield"] == pytest.approx(0.88)
    assert pub.result["first_pass_yield"] == pytest.approx(0.98)
    # the next window is the latest: nothing new since
    assert refresh_profile(ledger.engine, source, moved) is None
    assert len(list_published(ledger.engine, kind="profile")) == 2


def test_a_meters_readings_alone_are_new_data_for_a_profile_that_names_it(
    ledger: LedgerService, consortium: TestConsortium
) -> None:
    """Issue 16: a version-2 profile's inputs include its kWh meter; meter readings anchored after it
    bring the profile up to date (its energy per good unit appears) though no machine reading is new."""
    press, meter = consortium.enroll("press-2"), consortium.enroll("press-2-kwh")
    day = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    _day(ledger, press, day, defects=1.0)
    source = LedgerSource(ledger.engine, ledger.chain, ledger.deployment)
    params = ProfileParams(
        factory=consortium.factory.address,
        machines=("press-2",),
        interval_s=INTERVAL_S,
        start=day,
        end=day,
        through_batch=source.latest_anchored_batch(),
        block=ledger.chain.block_number(),
        meters=(("press-2-kwh", "press-2"),),
    )
    pub = publish_profile(ledger.engine, source, params)
    assert pub.result["energy_kwh"] == 0 and pub.result["energy_per_good_unit_kwh"] is None
    assert new_data(ledger.engine, params) is None
    start = int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp() * 1000)
    subs = [
        meter.sign({"energy_kwh": 5.0}, ts_ms=start + h * INTERVAL_S * 1000).to_json_obj() for h in range(24)
    ]
    assert all(r.accepted for r in ledger.pipeline.submit(subs, source="http"))
    ledger.anchoring.flush(timeout=60)
    fresh = new_data(ledger.engine, params)
    assert fresh is not None and fresh.readings == 24
    nxt = refresh_profile(ledger.engine, source, params)
    assert nxt is not None and nxt.result["energy_kwh"] == 120
    assert nxt.result["energy_per_good_unit_kwh"] == pytest.approx(5 / 99)  # 24 x 5 kWh over 24 x 99 good
    assert nxt.result["energy_coverage"] == 1 and nxt.result["energy_consistency"] is None  # one day: thin
