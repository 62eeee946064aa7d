"""A factory-month profile with every dimension at ~1,000,000 readings: time, peak memory, add-a-day.

    .venv/bin/python bench/bench_profile.py [--devices 25] [--days 30] [--interval 120] [--no-json]

Synthetic month in March 2026, generated as numpy columns before any timing: ``devices`` machines,
each with a kWh meter reporting at the same interval and an inspection camera reporting every two
hours (with its lot), and one stock counter counting twice a day. Default 25 machines x 30 days x
720 readings/day = 540,000 machine readings + 540,000 meter readings + 9,000 camera readings + 60
stock counts = 1,089,060 readings. Orders carry their placement time (backlog). Measured:

* full month (columns): summarise every day (:func:`summarize_day`) and build the profile;
* add a day: summarise one new day (36,000 readings) and rebuild the profile from the stored
  day summaries (the earlier days are not recomputed);
* re-profile only: :func:`build_profile` from the stored summaries;
* full month (JSON): the same month as Reading v1 JSON objects, streamed one day at a time
  through :func:`columns_from_readings` (the objects are built outside the timed region).

Before any timing, one day is profiled once (warm-up: NumPy loads ``numpy.ma`` on its first
percentile, 0.2 to 0.8 s of imports when the interpreter cannot cache bytecode). Time: the best
wall time of ``--repeat`` (3) untraced runs of each step, with that run's CPU time (the machine may
be shared). Peak memory: tracemalloc's peak of one more, traced run (numpy reports its buffers to
it), and the process's max RSS at the end. Target (issue 16): the month with every dimension under
1 s and 256 MiB.
"""

from __future__ import annotations

import argparse
import functools
import os
import resource
import time
import tracemalloc
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any, TypeVar

import numpy as np

from analytics.period_profile import ProfileAccumulator, build_profile, month_period
from analytics.profile import (
    DayInputs,
    DaySummary,
    Delivery,
    Order,
    ReadingColumns,
    day_inputs_from_readings,
    summarize_inputs,
)
from analytics.profile_base import Factory, day_start_ms
from analytics.profile_sources import CameraColumns, MeterColumns, StockColumns

T = TypeVar("T")
MIB = 1024 * 1024


CAMERA_EVERY_S = 7_200


def gen_day(rng: np.random.Generator, factory: Factory, day: date) -> DayInputs:
    n_dev, slots = len(factory.device_ids), factory.slots_per_day
    device = np.repeat(np.arange(n_dev, dtype=np.int64), slots)
    slot = np.tile(np.arange(slots, dtype=np.int64), n_dev)
    t0 = day_start_ms(day)
    ts = t0 + slot * factory.interval_s * 1000 + rng.integers(0, 1000, device.size)
    state = rng.choice(np.array([0, 1, 2], dtype=np.int64), size=device.size, p=[0.15, 0.78, 0.07])
    running = state == 1
    rate = np.full(device.size, 120.0)
    good = np.where(running, rng.poisson(3.2, device.size), 0).astype(np.float64)
    rework = np.where(running, rng.poisson(0.1, device.size), 0).astype(np.float64)
    defect = np.where(running, rng.poisson(0.15, device.size), 0).astype(np.float64)
    commissioned = np.full(device.size, 19_000.0) + device
    machines = ReadingColumns(device, ts, state, good, rework, defect, rate, commissioned)
    kwh = np.where(running, 1.0 + 0.3 * (good + rework + defect), np.where(state == 2, 0.3, 0.05))
    meters = MeterColumns(device.copy(), ts + 7, kwh * (1 + 0.02 * rng.standard_normal(device.size)))
    per_cam = DAY_S_BENCH // CAMERA_EVERY_S
    cam = np.repeat(np.arange(n_dev, dtype=np.int64), per_cam)
    cam_ts = t0 + (np.tile(np.arange(per_cam, dtype=np.int64), n_dev) + 1) * CAMERA_EVERY_S * 1000 - 1
    inspected = rng.poisson(200, cam.size).astype(np.float64)
    lots = tuple(f"LOT-{i:03d}-{day:%Y%m%d}" for i in range(n_dev))
    cameras = CameraColumns(
        cam, cam_ts, inspected, rng.binomial(inspected.astype(np.int64), 0.06).astype(np.float64), cam, lots
    )
    stock = StockColumns(
        np.zeros(2, dtype=np.int64),
        t0 + np.array([6, 18], dtype=np.int64) * 3_600_000,
        rng.uniform(5e5, 6e5, 2),
        rng.uniform(5e4, 6e4, 2),
    )
    return DayInputs(machines, meters, cameras, stock)


DAY_S_BENCH = 86_400


def n_readings(d: DayInputs) -> int:
    return len(d.machines) + len(d.meters) + len(d.cameras) + len(d.stock)


def as_json(cols: DayInputs, factory: Factory) -> list[dict[str, Any]]:
    ids = factory.device_ids
    m = cols.machines
    out: list[dict[str, Any]] = [
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
                "commissioned_day": c,
            },
        }
        for i, (d, t, s, g, r, x, u, c) in enumerate(
            zip(
                m.device.tolist(),
                m.ts_ms.tolist(),
                m.state.tolist(),
                m.good.tolist(),
                m.rework.tolist(),
                m.defect.tolist(),
                m.ideal_rate_uph.tolist(),
                m.commissioned_day.tolist() if m.commissioned_day is not None else [0.0] * len(m),
                strict=True,
            )
        )
    ]
    meter_ids = factory.meter_ids
    out += [
        {"device_id": meter_ids[d], "seq": i + 1, "ts_ms": t, "lot_id": None, "metrics": {"energy_kwh": k}}
        for i, (d, t, k) in enumerate(
            zip(cols.meters.meter.tolist(), cols.meters.ts_ms.tolist(), cols.meters.kwh.tolist(), strict=True)
        )
    ]
    c = cols.cameras
    out += [
        {
            "device_id": factory.cameras[d],
            "seq": i + 1,
            "ts_ms": t,
            "lot_id": c.lot_ids[lot],
            "metrics": {"cam_inspected": a, "cam_defects": b},
        }
        for i, (d, t, a, b, lot) in enumerate(
            zip(
                c.camera.tolist(),
                c.ts_ms.tolist(),
                c.inspected.tolist(),
                c.defects.tolist(),
                c.lot.tolist(),
                strict=True,
            )
        )
    ]
    k = cols.stock
    out += [
        {
            "device_id": factory.stock_counters[d],
            "seq": i + 1,
            "ts_ms": t,
            "lot_id": None,
            "metrics": {"raw_material_units": a, "finished_goods_units": b},
        }
        for i, (d, t, a, b) in enumerate(
            zip(k.counter.tolist(), k.ts_ms.tolist(), k.raw.tolist(), k.finished.tolist(), strict=True)
        )
    ]
    return out


def traced_peak(fn: Callable[[], T]) -> tuple[T, float]:
    """fn's result and tracemalloc's peak (MiB) during the call."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    out = fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return out, peak / MIB


def measured(fn: Callable[[], T], repeat: int = 1) -> tuple[T, float, float, float]:
    """fn's result, the best wall seconds of ``repeat`` untraced calls with that call's CPU seconds
    (the machine is shared: CPU time is what the step costs, wall time what a waiting caller sees),
    and tracemalloc's peak (MiB) of one more, traced call."""
    best, cpu = float("inf"), 0.0
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        fn()
        w = time.perf_counter() - t
        if w < best:
            best, cpu = w, time.process_time() - c
    out, peak = traced_peak(fn)
    return out, best, cpu, peak


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--devices", type=int, default=25, help="machines (each with a meter and a camera)")
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--interval", type=int, default=120)
    ap.add_argument("--no-json", action="store_true", help="skip the Reading v1 JSON path")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per step (the best wall time counts)")
    args = ap.parse_args()

    machines = tuple(f"dev-{i:03d}" for i in range(args.devices))
    factory = Factory(
        "bench-factory",
        machines,
        args.interval,
        meters=tuple((f"kwh-{i:03d}", m) for i, m in enumerate(machines)),
        cameras=tuple(f"cam-{i:03d}" for i in range(args.devices)),
        stock_counters=("stock",),
    )
    start, end = month_period(2026, 3)
    if args.days >= (end - start).days + 1:
        raise SystemExit("--days must leave one day of March 2026 for the add-a-day step")
    rng = np.random.default_rng(2026)
    days = [start + timedelta(days=i) for i in range(args.days)]
    month = {d: gen_day(rng, factory, d) for d in days}
    new_day = start + timedelta(days=args.days)
    new_cols = gen_day(rng, factory, new_day)
    total = sum(n_readings(c) for c in month.values())
    orders = [
        Order(
            f"O{i}",
            f"buyer-{i % 7}",
            5_000.0,
            start + timedelta(days=i % 31),
            placed_ms=day_start_ms(start + timedelta(days=i % 31)) - 5 * 86_400_000,
        )
        for i in range(200)
    ]
    deliveries = [
        Delivery(o.order_id, o.quantity * (0.9 if i % 10 == 0 else 1.0), day_start_ms(o.due) - 3_600_000)
        for i, o in enumerate(orders)
    ]

    warm = ProfileAccumulator(factory, start, end)
    warm.add_day(new_day, new_cols)
    warm.profile(orders, deliveries)  # imports and first-call costs, outside the timed region

    def full_month() -> ProfileAccumulator:
        acc = ProfileAccumulator(factory, start, end)
        for d, c in month.items():
            acc.add_day(d, c)
        acc.profile(orders, deliveries)
        return acc

    acc, t_full, c_full, m_full = measured(full_month, args.repeat)

    def add_day() -> None:
        acc.add_day(new_day, new_cols)
        acc.profile(orders, deliveries)

    _, t_add, c_add, m_add = measured(add_day, args.repeat)
    summaries = list(acc.days.values())
    profile, t_prof, c_prof, m_prof = measured(
        lambda: build_profile(factory, start, end, summaries, orders, deliveries), args.repeat
    )

    rows = [
        ("full month, numpy columns", total, t_full, c_full, m_full),
        ("add a day + re-profile", n_readings(new_cols), t_add, c_add, m_add),
        ("re-profile only (31 summaries)", 0, t_prof, c_prof, m_prof),
    ]

    def json_day(day: date, objs: list[dict[str, Any]]) -> DaySummary:
        return summarize_inputs(factory, day, day_inputs_from_readings(objs, factory))

    if not args.no_json:
        t_json, c_json, m_json = 0.0, 0.0, 0.0
        for d, c in month.items():
            objs = as_json(c, factory)  # built outside the timed region
            _, dt, cpu, peak = measured(functools.partial(json_day, d, objs))
            t_json += dt
            c_json += cpu
            m_json = max(m_json, peak)
            del objs
        rows.append(("full month, Reading v1 JSON by day", total, t_json, c_json, m_json))

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(
        f"factory-month: {args.devices} machines + {args.devices} meters x {args.days} days x "
        f"{factory.slots_per_day} readings/day, {args.devices} cameras every 2 h, 1 stock counter: "
        f"{total:,} readings"
    )
    print(f"{'step':<38} {'readings':>10} {'wall s':>9} {'CPU s':>9} {'peak MiB':>9}")
    for name, n, t, c, m in rows:
        print(f"{name:<38} {n:>10,} {t:>9.3f} {c:>9.3f} {m:>9.1f}")
    print(f"(wall: best of {args.repeat}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    print(f"process max RSS: {rss:.0f} MiB (includes the generated month)")
    print(
        f"profile: capacity {profile.capacity_units_per_day:.0f} u/day, OEE {profile.oee:.3f}, "
        f"FPY {profile.first_pass_yield:.3f}, OTIF {profile.otif:.2f}, coverage {profile.coverage:.3f}, "
        f"thin {profile.thin}"
    )
    print(
        f"  energy {profile.energy_per_good_unit_kwh:.3f} kWh/good unit, "
        f"consistency {profile.energy_consistency:.3f} (flag {profile.energy_inconsistent}); "
        f"stock cover raw {profile.raw_material_cover_days:.1f} d, "
        f"finished {profile.finished_goods_cover_days:.1f} d; backlog {profile.backlog_units:,.0f} u = "
        f"{profile.backlog_coverage_days:.2f} d of capacity; {profile.unplanned_stops:,} unplanned stops; "
        f"camera FPY {profile.camera_first_pass_yield:.3f} over {len(profile.camera_lots)} lots"
    )
    ok = t_full < 1 and m_full < 256 and rss < 256
    print(
        "target (< 1 s wall, < 256 MiB traced and max RSS, for the month with every dimension): "
        + ("met" if ok else "NOT met")
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
