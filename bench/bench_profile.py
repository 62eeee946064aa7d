"""Factory profile of one factory-month with ~1,000,000 readings: time, peak memory, add-a-day.

    .venv/bin/python bench/bench_profile.py [--devices 50] [--days 30] [--interval 120] [--no-json]

Synthetic month: ``devices`` x ``days`` x (86400 / ``interval``) readings (default 50 x 30 x 720 =
1,080,000) in March 2026, generated as numpy columns before any timing. Measured:

* full month (columns): summarise every day (:func:`summarize_day`) and build the profile;
* add a day: summarise one new day (36,000 readings) and rebuild the profile from the stored
  day summaries (the earlier days are not recomputed);
* re-profile only: :func:`build_profile` from the stored summaries;
* full month (JSON): the same month as Reading v1 JSON objects, streamed one day at a time
  through :func:`columns_from_readings` (the objects are built outside the timed region).

Peak memory is tracemalloc's peak for the timed step (numpy reports its buffers to it) and the
process's max RSS at the end. Target: the month under 10 s and under 1 GiB.
"""

from __future__ import annotations

import argparse
import functools
import resource
import time
import tracemalloc
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any, TypeVar

import numpy as np

from analytics.period_profile import ProfileAccumulator, build_profile, month_period
from analytics.profile import (
    DaySummary,
    Delivery,
    Factory,
    Order,
    ReadingColumns,
    columns_from_readings,
    day_start_ms,
    summarize_day,
)

T = TypeVar("T")
MIB = 1024 * 1024


def gen_day(rng: np.random.Generator, factory: Factory, day: date) -> ReadingColumns:
    n_dev, slots = len(factory.device_ids), factory.slots_per_day
    device = np.repeat(np.arange(n_dev, dtype=np.int64), slots)
    slot = np.tile(np.arange(slots, dtype=np.int64), n_dev)
    ts = day_start_ms(day) + slot * factory.interval_s * 1000 + rng.integers(0, 1000, device.size)
    state = rng.choice(np.array([0, 1, 2], dtype=np.int64), size=device.size, p=[0.15, 0.78, 0.07])
    running = state == 1
    rate = np.full(device.size, 120.0)
    good = np.where(running, rng.poisson(3.2, device.size), 0).astype(np.float64)
    rework = np.where(running, rng.poisson(0.1, device.size), 0).astype(np.float64)
    defect = np.where(running, rng.poisson(0.15, device.size), 0).astype(np.float64)
    return ReadingColumns(device, ts, state, good, rework, defect, rate)


def as_json(cols: ReadingColumns, factory: Factory) -> list[dict[str, Any]]:
    ids = factory.device_ids
    return [
        {
            "device_id": ids[d],
            "seq": i + 1,
            "ts_ms": t,
            "lot_id": None,
            "metrics": {
                "state": s,
                "good_units": g,
                "rework_units": r,
                "defect_units": x,
                "ideal_rate_uph": u,
            },
        }
        for i, (d, t, s, g, r, x, u) in enumerate(
            zip(
                cols.device.tolist(),
                cols.ts_ms.tolist(),
                cols.state.tolist(),
                cols.good.tolist(),
                cols.rework.tolist(),
                cols.defect.tolist(),
                cols.ideal_rate_uph.tolist(),
                strict=True,
            )
        )
    ]


def measured(fn: Callable[[], T]) -> tuple[T, float, float]:
    """fn's result, wall seconds and tracemalloc peak (MiB) of the call."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    t = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return out, dt, peak / MIB


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", type=int, default=50)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--interval", type=int, default=120)
    ap.add_argument("--no-json", action="store_true", help="skip the Reading v1 JSON path")
    args = ap.parse_args()

    factory = Factory("bench-factory", tuple(f"dev-{i:03d}" for i in range(args.devices)), args.interval)
    start, end = month_period(2026, 3)
    if args.days >= (end - start).days + 1:
        raise SystemExit("--days must leave one day of March 2026 for the add-a-day step")
    rng = np.random.default_rng(2026)
    days = [start + timedelta(days=i) for i in range(args.days)]
    month = {d: gen_day(rng, factory, d) for d in days}
    new_day = start + timedelta(days=args.days)
    new_cols = gen_day(rng, factory, new_day)
    n_readings = sum(len(c) for c in month.values())
    orders = [Order(f"O{i}", f"buyer-{i % 7}", 5_000.0, start + timedelta(days=i % 31)) for i in range(200)]
    deliveries = [
        Delivery(o.order_id, o.quantity * (0.9 if i % 10 == 0 else 1.0), day_start_ms(o.due) - 3_600_000)
        for i, o in enumerate(orders)
    ]

    def full_month() -> ProfileAccumulator:
        acc = ProfileAccumulator(factory, start, end)
        for d, c in month.items():
            acc.add_day(d, c)
        acc.profile(orders, deliveries)
        return acc

    acc, t_full, m_full = measured(full_month)

    def add_day() -> None:
        acc.add_day(new_day, new_cols)
        acc.profile(orders, deliveries)

    _, t_add, m_add = measured(add_day)
    summaries = list(acc.days.values())
    profile, t_prof, m_prof = measured(
        lambda: build_profile(factory, start, end, summaries, orders, deliveries)
    )

    rows = [
        ("full month, numpy columns", n_readings, t_full, m_full),
        ("add a day + re-profile", len(new_cols), t_add, m_add),
        ("re-profile only (31 summaries)", 0, t_prof, m_prof),
    ]

    def json_day(day: date, objs: list[dict[str, Any]]) -> DaySummary:
        return summarize_day(factory, day, columns_from_readings(objs, factory))

    if not args.no_json:
        t_json, m_json = 0.0, 0.0
        for d, c in month.items():
            objs = as_json(c, factory)  # built outside the timed region
            _, dt, peak = measured(functools.partial(json_day, d, objs))
            t_json += dt
            m_json = max(m_json, peak)
            del objs
        rows.append(("full month, Reading v1 JSON by day", n_readings, t_json, m_json))

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"factory-month: {args.devices} devices x {args.days} days x {factory.slots_per_day} readings/day")
    print(f"{'step':<38} {'readings':>10} {'seconds':>9} {'peak MiB':>9}")
    for name, n, t, m in rows:
        print(f"{name:<38} {n:>10,} {t:>9.3f} {m:>9.1f}")
    print(f"process max RSS: {rss:.0f} MiB (includes the generated month)")
    print(
        f"profile: capacity {profile.capacity_units_per_day:.0f} u/day, OEE {profile.oee:.3f}, "
        f"FPY {profile.first_pass_yield:.3f}, OTIF {profile.otif:.2f}, coverage {profile.coverage:.3f}, "
        f"thin {profile.thin}"
    )
    ok = t_full < 10 and m_full < 1024
    print(f"target (< 10 s, < 1 GiB for the month): {'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
