"""What a simulated line's devices report: the controller, the process stations, the QC device, the
kWh meter and the inspection camera (each with its own outages), and the factory's stock counts.

The laws are written down in :mod:`simulation.factories`' docstring (sections *Data delivery*,
*Energy*, *Camera* and *Stock*, and the QC device); each function takes a line's truth from
:mod:`simulation.lines` and returns Reading v1 readings (:class:`simulation.truth.SimReading`) with
the time each leaves its device, recording in ``delivered`` each device's count of readings sent.
"""

from typing import Final

import numpy as np
import numpy.typing as npt

from simulation._internal import DAY_MS, IntArray
from simulation.kinds import STATIONS, FactorySpec
from simulation.truth import LineTruth, PlannedDelivery, SimReading, StockCount

__all__ = [
    "QC_EVERY_S",
    "QC_SAMPLE",
    "camera_readings",
    "device_readings",
    "meter_readings",
    "qc_readings",
    "stock_counts",
]


def _outages(
    spec: FactorySpec, rng: np.random.Generator, n: int, days: int
) -> tuple[npt.NDArray[np.bool_], IntArray]:
    """(measured, send_slot) per interval: power outages lose intervals, forwarding delays them."""
    measured = np.ones(n, dtype=bool)
    send = np.arange(n, dtype=np.int64)
    per_hour = 3600 // spec.interval_s
    count = rng.poisson(spec.outages_per_device_week * days / 7.0)
    for _ in range(int(count)):
        length = int(rng.integers(1, 7)) * per_hour
        begin = int(rng.integers(0, max(1, n - length)))
        end = min(n, begin + length)
        if rng.random() < spec.power_share:
            measured[begin:end] = False
        else:
            send[begin:end] = np.maximum(send[begin:end], end)
    return measured, send


#: Final inspection of a line, every ``QC_EVERY_S``: the lot's quality evidence (spec bounds).
QC_EVERY_S: Final = 7_200
QC_SAMPLE: Final = 50


def qc_readings(
    spec: FactorySpec,
    lt: LineTruth,
    rng: np.random.Generator,
    line_id: str,
    lots: list[str],
    t0: int,
    slots: int,
) -> list[SimReading]:
    """The QC device: per ``QC_EVERY_S`` window with production, a test of ``QC_SAMPLE`` units.

    It reports the sample's A-grade share (``Binomial(QC_SAMPLE, p_bar) / QC_SAMPLE`` with ``p_bar``
    the window's mean true yield probability over its running intervals) and one physical figure
    that follows ``p_bar``: a solar cell's efficiency ``cell_eff_pct = 20.8 + 2.2 p_bar + N(0, 0.05)``,
    a rubber batch's Mooney viscosity ``mooney_mu = 50 + 10 p_bar + N(0, 0.4)``. Its readings carry
    the lot of their line and day, so a lot's certification rests on them.
    """
    every = QC_EVERY_S // spec.interval_s
    n = lt.state.shape[0]
    out: list[SimReading] = []
    seq = 0
    for end in range(every, n + 1, every):
        window = slice(end - every, end)
        running = lt.state[window] == 1
        if not running.any():
            continue
        p_bar = float(lt.probability[window][running].mean())
        share = float(rng.binomial(QC_SAMPLE, p_bar)) / QC_SAMPLE
        metrics: dict[str, float | int] = {"a_grade_share": round(share, 4)}
        if spec.kind.name == "solar-cell":
            metrics["cell_eff_pct"] = round(20.8 + 2.2 * p_bar + float(rng.normal(0, 0.05)), 3)
        else:
            metrics["mooney_mu"] = round(50.0 + 10.0 * p_bar + float(rng.normal(0, 0.4)), 2)
        seq += 1
        ts = t0 + (end - 1) * spec.interval_s * 1000
        out.append(
            SimReading(
                device_id=spec.qc_id(line_id),
                seq=seq,
                ts_ms=ts,
                lot_id=lots[(end - 1) // slots],
                metrics=metrics,
                send_ms=ts + spec.interval_s * 1000,
            )
        )
    return out


def meter_readings(
    spec: FactorySpec,
    lt: LineTruth,
    aux: np.random.Generator,
    line_id: str,
    days: int,
    t0: int,
    delivered: dict[str, int],
) -> list[SimReading]:
    """The line's kWh meter: the energy of every interval it measured (its own outages)."""
    n = lt.state.shape[0]
    iv_ms = spec.interval_s * 1000
    measured, send = _outages(spec, aux, n, days)
    device = spec.meter_id(line_id)
    delivered[device] = int(measured.sum())
    return [
        SimReading(
            device_id=device,
            seq=seq,
            ts_ms=t0 + int(t) * iv_ms,
            lot_id=None,
            metrics={"energy_kwh": float(lt.energy_kwh[t])},
            send_ms=int(t0 + (int(send[t]) + 1) * iv_ms),
        )
        for seq, t in enumerate(np.flatnonzero(measured), start=1)
    ]


def camera_readings(
    spec: FactorySpec,
    lt: LineTruth,
    aux: np.random.Generator,
    line_id: str,
    lots: list[str],
    days: int,
    t0: int,
    delivered: dict[str, int],
) -> list[SimReading]:
    """The line's inspection camera: per ``QC_EVERY_S`` window, units inspected and rejected."""
    every = QC_EVERY_S // spec.interval_s
    n = lt.state.shape[0]
    slots = 86_400 // spec.interval_s
    iv_ms = spec.interval_s * 1000
    measured, _ = _outages(spec, aux, n, days)
    device = spec.camera_id(line_id)
    out: list[SimReading] = []
    for end in range(every, n + 1, every):
        w = slice(end - every, end)
        units = int(lt.units[w].sum())
        good = int(lt.good[w].sum())
        rejected = int(aux.binomial(units - good, spec.camera_detect)) + int(
            aux.binomial(good, spec.camera_false_reject)
        )
        if not measured[end - 1]:
            continue
        metrics: dict[str, float | int] = {"cam_inspected": units, "cam_defects": rejected}
        if units:
            metrics["cam_pass_share"] = round(1 - rejected / units, 4)
        ts = t0 + (end - 1) * iv_ms
        out.append(
            SimReading(
                device_id=device,
                seq=len(out) + 1,
                ts_ms=ts,
                lot_id=lots[(end - 1) // slots],
                metrics=metrics,
                send_ms=ts + iv_ms,
            )
        )
    delivered[device] = len(out)
    return out


def stock_counts(
    spec: FactorySpec,
    lines: list[LineTruth],
    deliveries: list[PlannedDelivery],
    aux: np.random.Generator,
    t0: int,
    days: int,
) -> list[StockCount]:
    """The daily stock counts (:mod:`simulation.factories`' docstring, *Stock*): true and counted stock."""
    iv_ms = spec.interval_s * 1000
    made = np.cumsum(sum(line.units for line in lines))  # units made in slots 0..t
    sellable = np.cumsum(sum(line.good + line.rework for line in lines))
    fin0 = spec.finished_stock_days * spec.nominal_daily()
    raw0 = spec.raw_stock_days * spec.nominal_made_daily()
    refill = spec.raw_delivery_every_days * spec.nominal_made_daily()
    out: list[StockCount] = []
    for d in range(days):
        ts = t0 + d * DAY_MS + spec.stock_count_hour * 3_600_000
        done = (ts - t0) // iv_ms  # slots completed before the count
        made_before = float(made[done - 1]) if done > 0 else 0.0
        sellable_before = float(sellable[done - 1]) if done > 0 else 0.0
        shipped = float(sum(x.quantity for x in deliveries if x.shipped_ms < ts))
        receipts = sum(
            1 for k in range(0, d + 1, spec.raw_delivery_every_days) if t0 + k * DAY_MS + 12 * 3_600_000 < ts
        )
        raw = raw0 - made_before + receipts * refill
        fin = fin0 + sellable_before - shipped
        err = 1 + spec.stock_count_error * aux.standard_normal(2)
        out.append(
            StockCount(
                ts_ms=ts,
                raw=raw,
                finished=fin,
                raw_counted=max(0, round(raw * float(err[0]))),
                finished_counted=max(0, round(fin * float(err[1]))),
            )
        )
    return out


def device_readings(
    spec: FactorySpec,
    lt: LineTruth,
    rng: np.random.Generator,
    line_id: str,
    days: int,
    t0: int,
    delivered: dict[str, int],
) -> list[SimReading]:
    """The controller's and the stations' readings of one line, each device with its own outages;
    ``delivered`` gets each device's count of measured intervals."""
    slots = 86_400 // spec.interval_s
    n = slots * days
    iv_ms = spec.interval_s * 1000
    ts = t0 + np.arange(n, dtype=np.int64) * iv_ms
    ideal_uph = round(spec.kind.units_per_interval * 3600 / spec.interval_s, 3)
    readings: list[SimReading] = []
    # Which parameter columns each station reports.
    per_station = -(-len(lt.names) // STATIONS)
    station_cols = [
        list(range(k * per_station, min(len(lt.names), (k + 1) * per_station))) for k in range(STATIONS)
    ]
    devices = [spec.controller_id(line_id), *spec.station_ids(line_id)]
    for k, device in enumerate(devices):
        measured, send = _outages(spec, rng, n, days)
        delivered[device] = int(measured.sum())
        for seq, t in enumerate(np.flatnonzero(measured), start=1):
            metrics: dict[str, float | int]
            if k == 0:
                metrics = {
                    "state": int(lt.state[t]),
                    "good_units": int(lt.reported_good[t]),
                    "rework_units": int(lt.rework[t]),
                    "defect_units": int(lt.defect[t]),
                    "ideal_rate_uph": ideal_uph,
                    "commissioned_day": lt.commissioned_day,
                }
            else:
                cols = station_cols[k - 1]
                metrics = {lt.names[j]: round(float(lt.observed[t, j]), 4) for j in cols}
            readings.append(
                SimReading(
                    device_id=device,
                    seq=seq,
                    ts_ms=int(ts[t]),
                    lot_id=None,
                    metrics=metrics,
                    # A reading leaves the device at the end of its interval (or of the outage).
                    send_ms=int(t0 + (int(send[t]) + 1) * iv_ms),
                )
            )
    return readings
