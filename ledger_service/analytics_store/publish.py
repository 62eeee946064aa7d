"""Published analytics results: computed from anchored inputs only, committed, stored, recomputable.

A result is published with :func:`publish_profile` or :func:`publish_yield`. Its parameters name
every input exactly (the factory, its devices, the period, the last anchored batch
``through_batch`` and the chain ``block`` the orders and deliveries were read at), so
:func:`recompute` can read the same inputs again from the store and the chain, recompute the
result with the current code and compare every part of the commitment
(:func:`analytics.commitment.verify_commitment`). A changed input is named: a reading whose
content no longer gives its anchored digest, or a batch whose stored readings no longer rebuild
the anchored root (:class:`ledger_service.analytics_store.source.InputMismatch`); a changed result, parameter
or code version is named by the commitment field that differs
(:class:`analytics.commitment.CommitmentMismatch`).

Commitment inputs: the reading digests (machines, then kWh meters, cameras and stock counters, as
the source returns them), plus one digest per order (``keccak("order" || key)``) and per delivery
event (``keccak("delivery" || tx hash || log index)``), in that order.

Profile versions: model ``supet.factory-profile`` version ``2`` (result schema
``supet.factory-profile.v2``) adds the measured dimensions (energy, stock, backlog, equipment,
camera; docs/analytics-profile.md). A version ``1`` commitment is still recomputed as version 1: the
same inputs (its parameters name machines only) and the v1 result's fields, so it keeps verifying.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from eth_utils import keccak
from sqlalchemy.engine import Engine
from sqlmodel import Session

from analytics.commitment import (
    Commitment,
    CommitmentMismatch,
    ModelId,
    canonical_json,
    commit,
    verify_commitment,
)
from analytics.period_profile import FactoryProfile, build_profile, period_days
from analytics.profile import day_inputs_from_readings, summarize_inputs
from analytics.profile_base import DAY_S, Factory, day_start_ms
from analytics.yield_model import (
    MODEL_NAME,
    MODEL_VERSION,
    YieldModelParams,
    YieldModelResult,
    fit_yield_model,
)
from ledger_service.analytics_store.source import AnchoredReading, LedgerSource, SourceError
from ledger_service.store.models import AnalyticsResultRow

__all__ = [
    "PROFILE_MODEL",
    "ProfileParams",
    "Published",
    "YieldParams",
    "compute_profile",
    "compute_yield",
    "load_published",
    "profile_json",
    "publish_profile",
    "publish_yield",
    "recompute",
    "store_result",
    "yield_dataset",
]

#: The factory profile's model id (bump the version when a definition changes).
PROFILE_MODEL: Final = ModelId(name="supet.factory-profile", version="2")
#: The first version: capacity, OEE, first-pass yield, derived inventory, OTIF, trend, coverage.
PROFILE_MODEL_V1: Final = ModelId(name="supet.factory-profile", version="1")
#: The fields of a version-1 profile result (the later versions add to them).
_V1_FIELDS: Final = (
    "factory_id", "start", "end", "days_in_period", "days_with_data", "capacity_units_per_day",
    "utilisation", "availability", "performance", "quality", "oee", "first_pass_yield",
    "sellable_units", "delivered_units", "inventory_days", "orders_due", "orders_otif", "otif",
    "trend_units_per_day", "volatility", "readings", "readings_expected", "coverage", "thin",
    "device_coverage", "daily_output",
)  # fmt: skip
YIELD_MODEL: Final = ModelId(name=MODEL_NAME, version=MODEL_VERSION)


def _iso(d: dt.date) -> str:
    return d.isoformat()


@dataclass(frozen=True, kw_only=True)
class ProfileParams:
    """Everything that names a profile's inputs and knobs."""

    factory: str
    machines: tuple[str, ...]
    interval_s: int
    start: dt.date
    end: dt.date
    through_batch: int
    block: int
    thin_coverage: float = 0.8
    #: ``(meter, machine it meters)`` pairs: the kWh meters (energy per good unit, consistency)
    meters: tuple[tuple[str, str], ...] = ()
    #: the inspection cameras (camera first-pass yield, per-lot counts)
    cameras: tuple[str, ...] = ()
    #: the stock counters (measured raw material and finished goods)
    stock_counters: tuple[str, ...] = ()
    #: energy consistency below this raises ``energy_inconsistent``
    energy_flag_below: float = 0.9

    @property
    def devices(self) -> tuple[str, ...]:
        """Every device whose readings are inputs: machines, meters, cameras, stock counters."""
        return (*self.machines, *(m for m, _ in self.meters), *self.cameras, *self.stock_counters)

    def factory_model(self) -> Factory:
        """The :class:`analytics.profile_base.Factory` these parameters describe."""
        return Factory(
            factory_id=self.factory,
            device_ids=self.machines,
            interval_s=self.interval_s,
            meters=self.meters,
            cameras=self.cameras,
            stock_counters=self.stock_counters,
        )

    def to_json_obj(self) -> dict[str, Any]:
        return {
            "kind": "profile",
            "factory": self.factory,
            "machines": list(self.machines),
            "interval_s": self.interval_s,
            "start": _iso(self.start),
            "end": _iso(self.end),
            "through_batch": self.through_batch,
            "block": self.block,
            "thin_coverage": self.thin_coverage,
            "meters": [list(p) for p in self.meters],
            "cameras": list(self.cameras),
            "stock_counters": list(self.stock_counters),
            "energy_flag_below": self.energy_flag_below,
        }

    @classmethod
    def from_json_obj(cls, obj: dict[str, Any]) -> ProfileParams:
        """The parameters back from :meth:`to_json_obj` (a version-1 profile's have no meters,
        cameras nor stock counters)."""
        return cls(
            factory=obj["factory"],
            machines=tuple(obj["machines"]),
            interval_s=int(obj["interval_s"]),
            start=dt.date.fromisoformat(obj["start"]),
            end=dt.date.fromisoformat(obj["end"]),
            through_batch=int(obj["through_batch"]),
            block=int(obj["block"]),
            thin_coverage=float(obj["thin_coverage"]),
            meters=tuple((str(m), str(x)) for m, x in obj.get("meters", ())),
            cameras=tuple(obj.get("cameras", ())),
            stock_counters=tuple(obj.get("stock_counters", ())),
            energy_flag_below=float(obj.get("energy_flag_below", 0.9)),
        )


@dataclass(frozen=True, kw_only=True)
class YieldParams:
    """A line's yield model: its controller (counts), its stations (parameters), period, cut-off, knobs."""

    factory: str
    line_id: str
    controller: str
    stations: tuple[str, ...]
    interval_s: int
    start: dt.date
    end: dt.date
    through_batch: int
    model: YieldModelParams = dataclasses.field(default_factory=YieldModelParams)

    def to_json_obj(self) -> dict[str, Any]:
        return {
            "kind": "yield",
            "factory": self.factory,
            "line_id": self.line_id,
            "controller": self.controller,
            "stations": list(self.stations),
            "interval_s": self.interval_s,
            "start": _iso(self.start),
            "end": _iso(self.end),
            "through_batch": self.through_batch,
            "model": self.model.to_json_obj(),
        }

    @classmethod
    def from_json_obj(cls, obj: dict[str, Any]) -> YieldParams:
        return cls(
            factory=obj["factory"],
            line_id=obj["line_id"],
            controller=obj["controller"],
            stations=tuple(obj["stations"]),
            interval_s=int(obj["interval_s"]),
            start=dt.date.fromisoformat(obj["start"]),
            end=dt.date.fromisoformat(obj["end"]),
            through_batch=int(obj["through_batch"]),
            model=YieldModelParams(**obj["model"]),
        )


@dataclass(frozen=True)
class Published:
    """A stored result: its kind, parameters, commitment and canonical result JSON."""

    kind: str
    params: dict[str, Any]
    commitment: Commitment
    result: dict[str, Any]


def profile_json(p: FactoryProfile, *, version: int = 2) -> dict[str, Any]:
    """The profile as plain JSON (dates as ISO strings), schema ``supet.factory-profile.v<version>``:
    version 1 holds only the first version's fields (to recompute a version-1 commitment)."""
    obj = dataclasses.asdict(p)
    obj["start"], obj["end"] = _iso(p.start), _iso(p.end)
    for name in ("daily_output", "energy_per_unit_daily", "availability_daily"):
        obj[name] = list(obj[name])
    if version == 1:
        obj = {k: obj[k] for k in _V1_FIELDS}
    elif version != 2:
        raise SourceError(f"no factory-profile version {version}", code="analytics.source.version")
    return {"schema": f"supet.factory-profile.v{version}", **obj}


def _period_ms(start: dt.date, end: dt.date) -> tuple[int, int]:
    return day_start_ms(start), day_start_ms(end) + DAY_S * 1000


# ---------------------------------------------------------------- profile


def compute_profile(
    source: LedgerSource, params: ProfileParams, *, version: int = 2
) -> tuple[dict[str, Any], list[bytes]]:
    """The profile (as JSON of ``version``) and the commitment inputs, from anchored readings of every
    device the parameters name and the chain's orders and deliveries."""
    lo, hi = _period_ms(params.start, params.end)
    readings = source.readings(params.devices, lo, hi, through_batch=params.through_batch)
    factory = params.factory_model()
    by_day: dict[dt.date, list[AnchoredReading]] = defaultdict(list)
    for r in readings:
        by_day[dt.datetime.fromtimestamp(r.ts_ms / 1000, dt.UTC).date()].append(r)
    summaries = []
    for day in period_days(params.start, params.end):
        rows = by_day.get(day, [])
        inputs = day_inputs_from_readings(
            (
                {"device_id": r.device_id, "ts_ms": r.ts_ms, "lot_id": r.lot_id, "metrics": r.metrics}
                for r in rows
            ),
            factory,
        )
        summaries.append(summarize_inputs(factory, day, inputs))
    chain_inputs = source.chain_inputs(params.factory, block=params.block)
    profile = build_profile(
        factory,
        params.start,
        params.end,
        summaries,
        chain_inputs.orders,
        chain_inputs.deliveries,
        thin_coverage=params.thin_coverage,
        energy_flag_below=params.energy_flag_below,
    )
    digests = [r.digest for r in readings] + list(chain_inputs.digests)
    return profile_json(profile, version=version), digests


def publish_profile(engine: Engine, source: LedgerSource, params: ProfileParams) -> Published:
    """Compute, commit and store a profile (the current version, :data:`PROFILE_MODEL`)."""
    result, inputs = compute_profile(source, params)
    c = commit(result, inputs, PROFILE_MODEL, params.to_json_obj())
    return store_result(engine, "profile", params.factory, params.to_json_obj(), c, result)


# ---------------------------------------------------------------- yield


def yield_dataset(
    source: LedgerSource, params: YieldParams
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str], list[bytes], list[int]]:
    """(X, y, weight, group, names, input digests, interval starts) of one line.

    One interval (slot) of the line is usable when its controller reported it running and every
    station reported it. It gives two rows with the same parameters: outcome 1 weighted by its
    ``good_units`` and outcome 0 weighted by ``rework_units + defect_units`` (rows of weight 0
    are dropped); both rows share the interval as their group.
    """
    lo, hi = _period_ms(params.start, params.end)
    devices = [params.controller, *params.stations]
    readings = source.readings(devices, lo, hi, through_batch=params.through_batch)
    iv = params.interval_s * 1000
    by_slot: dict[int, dict[str, AnchoredReading]] = defaultdict(dict)
    for r in readings:
        by_slot[(r.ts_ms - lo) // iv].setdefault(r.device_id, r)
    names: list[str] | None = None
    xs: list[list[float]] = []
    ys: list[int] = []
    ws: list[float] = []
    gs: list[int] = []
    inputs: list[bytes] = []
    starts: list[int] = []
    for slot in sorted(by_slot):
        got = by_slot[slot]
        ctl = got.get(params.controller)
        if ctl is None or ctl.metrics.get("state") != 1 or any(s not in got for s in params.stations):
            continue
        values: dict[str, float] = {}
        for s in params.stations:
            values.update(got[s].metrics)
        if names is None:
            names = sorted(values)
        if sorted(values) != names:
            raise SourceError(
                f"line {params.line_id}: interval {slot} reports other parameters than the first interval",
                code="analytics.source.parameters",
            )
        row = [values[n] for n in names]
        good = ctl.metrics.get("good_units", 0.0)
        other = ctl.metrics.get("rework_units", 0.0) + ctl.metrics.get("defect_units", 0.0)
        for outcome, weight in ((1, good), (0, other)):
            if weight > 0:
                xs.append(row)
                ys.append(outcome)
                ws.append(weight)
                gs.append(slot)
        inputs.extend(got[d].digest for d in devices)
        starts.append(lo + slot * iv)
    if names is None or not xs:
        raise SourceError(
            f"line {params.line_id}: no running interval with every station's parameters in the period",
            code="analytics.source.no_data",
        )
    return (
        np.asarray(xs, dtype=np.float64),
        np.asarray(ys, dtype=np.int64),
        np.asarray(ws, dtype=np.float64),
        np.asarray(gs, dtype=np.int64),
        names,
        inputs,
        starts,
    )


def compute_yield(
    source: LedgerSource, params: YieldParams
) -> tuple[YieldModelResult, dict[str, Any], list[bytes]]:
    """The line's yield model result (object and JSON) and the commitment inputs."""
    x, y, w, g, names, inputs, _ = yield_dataset(source, params)
    result = fit_yield_model(
        x, y, names, line_id=params.line_id, params=params.model, sample_weight=w, groups=g
    )
    return result, result.to_json_obj(), inputs


def publish_yield(
    engine: Engine, source: LedgerSource, params: YieldParams
) -> tuple[Published, YieldModelResult]:
    """Compute, commit and store a line's yield model."""
    result, obj, inputs = compute_yield(source, params)
    c = commit(obj, inputs, YIELD_MODEL, params.to_json_obj())
    return store_result(engine, "yield", params.line_id, params.to_json_obj(), c, obj), result


# ---------------------------------------------------------------- store and recompute


def store_result(
    engine: Engine, kind: str, subject: str, params: dict[str, Any], c: Commitment, result: dict[str, Any]
) -> Published:
    """Store a committed result (``kind`` ``profile`` or ``yield``, of ``subject``); the same commitment
    twice is stored once."""
    row = AnalyticsResultRow(
        commitment=c.commitment,
        kind=kind,
        subject=subject,
        params_json=canonical_json(params).decode(),
        commitment_json=canonical_json(c.to_json_obj()).decode(),
        result_json=canonical_json(result).decode(),
        created_ms=int(time.time() * 1000),
    )
    with Session(engine) as s:
        s.merge(row)
        s.commit()
    return Published(kind=kind, params=params, commitment=c, result=json.loads(row.result_json))


def _commitment_from(obj: dict[str, Any]) -> Commitment:
    return Commitment(
        model_name=obj["model"]["name"],
        model_version=obj["model"]["version"],
        code_version=obj["code_version"],
        params_hash=obj["params_hash"],
        inputs_root=obj["inputs_root"],
        n_inputs=int(obj["n_inputs"]),
        result_hash=obj["result_hash"],
        commitment=obj["commitment"],
    )


def load_published(engine: Engine, commitment: str) -> Published:
    """A stored result by its commitment hash; :class:`SourceError` when there is none."""
    key = commitment.lower()
    if not key.startswith("0x"):
        key = "0x" + key
    with Session(engine) as s:
        row = s.get(AnalyticsResultRow, key)
    if row is None:
        raise SourceError(
            f"no published result with commitment {key}", code="analytics.source.unknown_commitment"
        )
    return Published(
        kind=row.kind,
        params=json.loads(row.params_json),
        commitment=_commitment_from(json.loads(row.commitment_json)),
        result=json.loads(row.result_json),
    )


def list_published(engine: Engine, *, kind: str | None = None, subject: str | None = None) -> list[Published]:
    """Stored results, newest first."""
    from sqlmodel import col, select

    q = select(AnalyticsResultRow).order_by(col(AnalyticsResultRow.created_ms).desc())
    if kind is not None:
        q = q.where(AnalyticsResultRow.kind == kind)
    if subject is not None:
        q = q.where(AnalyticsResultRow.subject == subject)
    with Session(engine) as s:
        rows = s.exec(q).all()
    return [
        Published(
            kind=r.kind,
            params=json.loads(r.params_json),
            commitment=_commitment_from(json.loads(r.commitment_json)),
            result=json.loads(r.result_json),
        )
        for r in rows
    ]


def recompute(engine: Engine, source: LedgerSource, commitment: str) -> Published:
    """Re-derive a published result from the store and the chain; raise naming any mismatch.

    @raise InputMismatch       an input no longer matches the chain (names the reading or batch)
    @raise CommitmentMismatch  names every commitment field that differs (``inputs_root``,
                               ``result_hash``, ``params_hash``, ``code_version``, ...)
    """
    pub = load_published(engine, commitment)
    result: dict[str, Any]
    inputs: Sequence[bytes]
    if pub.kind == "profile":
        pp = ProfileParams.from_json_obj(pub.params)
        model = (
            PROFILE_MODEL_V1 if pub.commitment.model_version == PROFILE_MODEL_V1.version else PROFILE_MODEL
        )
        result, inputs = compute_profile(source, pp, version=int(model.version))
    elif pub.kind == "yield":
        yp = YieldParams.from_json_obj(pub.params)
        _, result, inputs = compute_yield(source, yp)
        model = YIELD_MODEL
    elif pub.kind == "windows":  # a line's window set: its yield result recomputed, then the set
        from ledger_service.analytics_store.windows import recompute_window_set

        return recompute_window_set(engine, source, commitment)
    else:
        raise SourceError(f"unknown result kind {pub.kind!r}", code="analytics.source.kind")
    verify_commitment(pub.commitment, result, inputs, model, pub.params)
    if "0x" + keccak(canonical_json(pub.result)).hex() != pub.commitment.result_hash:
        # The recomputation agrees with the commitment, but the copy served to readers was edited.
        raise CommitmentMismatch(["stored_result"])
    return pub
