"""PNG charts of published results for reports and the portal (matplotlib, headless Agg backend).

* :func:`profile_chart`: a factory profile's daily output with its least-squares trend, the
  capacity line (90th percentile), the factory's name, dated days and the headline figures
  (OEE, first-pass yield, OTIF, coverage; a thin profile is marked as such); for a version-2
  profile, a second panel with the daily availability and energy per unit made, and a line of the
  measured dimensions (energy consistency, stock cover, backlog, stops, camera yield).
* :func:`profile_table`: every figure of a profile as ``(figure, value, basis)`` text rows, each
  with the window or data it rests on ("insufficient data" where a figure is None): what a report
  or the demo prints as the profile's table.
* :func:`yield_chart`: a line's yield drivers: the permutation importance of the top parameters
  and, per parameter with a recommended window, the window against the parameter's range.

Both take the canonical JSON of a published result (or the result object) and return PNG bytes;
the same input gives the same picture (fixed size, no timestamps in the metadata).
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from analytics.yield_model import YieldModelResult

__all__ = ["profile_chart", "profile_figure", "profile_table", "yield_chart"]

_META = {"Software": None, "Creation Time": None}


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata=_META)
    plt.close(fig)
    return buf.getvalue()


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


_INSUFFICIENT = "insufficient data"


def _num(v: float | None, fmt: str = ",.0f", unit: str = "") -> str:
    return _INSUFFICIENT if v is None else f"{v:{fmt}}{unit}"


def _utc(iso: str | None) -> str:
    return "-" if iso is None else iso.replace("T", " ").removesuffix("Z")[:16] + " UTC"


def profile_table(profile: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """The profile's figures as ``(figure, value, basis)`` rows: the value as text and the window or
    data behind it. A version-1 profile (no measured dimensions) gives its rows only."""
    p = profile
    period = (
        f"{p['start']} .. {p['end']} "
        f"({p.get('days_with_data', '?')} of {p.get('days_in_period', '?')} days with data)"
    )
    rows = [
        ("capacity (p90 daily output)", _num(p.get("capacity_units_per_day"), unit=" units/day"), period),
        ("OEE", _pct(p.get("oee")).replace("n/a", _INSUFFICIENT), period),
        (
            "first-pass yield (reported)",
            _pct(p.get("first_pass_yield")).replace("n/a", _INSUFFICIENT),
            period,
        ),
        (
            "OTIF",
            _pct(p.get("otif")).replace("n/a", "no order due"),
            f"{p.get('orders_otif', 0)} of {p.get('orders_due', 0)} orders due in the period",
        ),
        (
            "reading coverage",
            _pct(p.get("coverage")) + (" THIN" if p.get("thin") else ""),
            f"{p.get('readings', 0):,} of {p.get('readings_expected', 0):,} machine intervals",
        ),
    ]
    if "energy_consistency" not in p:
        return rows
    if p.get("energy_kwh") is None:
        rows.append(("energy", "no kWh meter", "-"))
    else:
        rows.append(
            (
                "energy per good unit",
                _num(p.get("energy_per_good_unit_kwh"), ".3f", " kWh"),
                f"{p.get('energy_days', 0)} days of production intervals both meter and machine reported; "
                f"meter coverage {_pct(p.get('energy_coverage'))}",
            )
        )
        c = p.get("energy_consistency")
        verdict = (
            f"{_INSUFFICIENT} (fewer than 3 days)"
            if c is None
            else f"{100 * c:.1f}% "
            + ("FLAG: output not backed by energy" if p.get("energy_inconsistent") else "ok")
        )
        rows.append(
            (
                "energy consistency",
                verdict,
                f"reported units backed by metered energy at the factory's own rate "
                f"({_num(p.get('energy_reference_kwh_per_unit'), '.3f', ' kWh/unit')}); "
                f"{p.get('energy_suspect_days', 0)} suspect days",
            )
        )
    if p.get("stock_as_of") is None:
        rows.append(("measured stock", "no stock count", "-"))
    else:
        as_of = f"count of {_utc(p.get('stock_as_of'))}"
        rows.append(
            (
                "raw material",
                f"{_num(p.get('raw_material_units'))} units, "
                f"{_num(p.get('raw_material_cover_days'), '.1f')} days of cover",
                f"{as_of}; cover in days of average output",
            )
        )
        rows.append(
            (
                "finished goods",
                f"{_num(p.get('finished_goods_units'))} units, "
                f"{_num(p.get('finished_goods_cover_days'), '.1f')} days of cover",
                f"{as_of}; cover in days of average deliveries",
            )
        )
    rows.append(
        (
            "order backlog",
            f"{_num(p.get('backlog_units'))} units in {p.get('backlog_orders', 0)} orders "
            f"({_num(p.get('backlog_overdue_units'))} overdue), "
            f"{_num(p.get('backlog_coverage_days'), '.1f')} days of capacity",
            f"accepted orders open at the end of {p['end']} (UTC)",
        )
    )
    equipment = p.get("equipment") or {}
    rows.append(
        (
            "equipment",
            f"{len(equipment)} machines, {p.get('unplanned_stops', 0)} unplanned stops, mean age "
            f"{_num(p.get('equipment_age_days'), ',.0f', ' days')}",
            period,
        )
    )
    trend = p.get("availability_trend_per_day")
    rows.append(
        (
            "availability trend",
            _INSUFFICIENT if trend is None else f"{100 * trend:+.2f} pts/day",
            f"least squares over {sum(a is not None for a in p.get('availability_daily', ()))} days "
            "with planned time",
        )
    )
    if p.get("camera_first_pass_yield") is None and not p.get("camera_readings"):
        rows.append(("camera first-pass yield", "no camera", "-"))
    else:
        gap = p.get("camera_fpy_gap")
        rows.append(
            (
                "camera first-pass yield",
                _pct(p.get("camera_first_pass_yield")).replace("n/a", _INSUFFICIENT)
                + ("" if gap is None else f" (reported {100 * gap:+.1f} pts above)"),
                f"{_num(p.get('camera_inspected'))} units inspected, {len(p.get('camera_lots') or {})} lots",
            )
        )
    return rows


def _dimensions_line(p: Mapping[str, Any]) -> str:
    c = p.get("energy_consistency")
    energy = (
        "energy: no meter"
        if p.get("energy_kwh") is None
        else f"energy {_num(p.get('energy_per_good_unit_kwh'), '.3g', ' kWh')}/good unit, consistency "
        + ("n/a" if c is None else f"{100 * c:.0f}%" + (" FLAG" if p.get("energy_inconsistent") else ""))
    )
    return (
        f"{energy}  |  FG cover {_num(p.get('finished_goods_cover_days'), '.1f', ' d')}"
        f"  RM cover {_num(p.get('raw_material_cover_days'), '.1f', ' d')}"
        f"  |  backlog {_num(p.get('backlog_coverage_days'), '.1f', ' d')} of capacity"
        f"  |  {p.get('unplanned_stops', 0)} stops  |  camera FPY {_pct(p.get('camera_first_pass_yield'))}"
    ).replace(_INSUFFICIENT, "n/a")


def profile_figure(profile: Mapping[str, Any], *, factory_name: str | None = None) -> Any:
    """The matplotlib figure of :func:`profile_chart` (for tests and for callers that add to it).

    The title names the factory (``factory_name``, then its id in full) and the period; each bar is
    dated (``Mon 03-02``), so a reader can tell which day a dip was on without counting bars. A
    version-2 profile adds a panel below (daily availability; energy per unit made) and a line of
    its measured dimensions.
    """
    daily = np.asarray(profile["daily_output"], dtype=float)
    days = np.arange(daily.size)
    first = date.fromisoformat(str(profile["start"]))
    dates = [first + timedelta(days=int(i)) for i in days]
    measured = "availability_daily" in profile
    if measured:
        fig, (ax, ax2) = plt.subplots(
            2, 1, figsize=(8, 5.6), gridspec_kw={"height_ratios": [2.2, 1]}, sharex=True
        )
    else:
        fig, ax = plt.subplots(figsize=(8, 3.8))
    ax.bar(days, daily, color="#4c78a8", label="sellable units per day")
    cap = profile.get("capacity_units_per_day")
    if cap is not None:
        ax.axhline(cap, color="#f58518", linestyle="--", label=f"capacity (p90) {cap:,.0f}/day")
    trend = profile.get("trend_units_per_day")
    data_days = daily > 0
    if trend is not None and data_days.sum() >= 2:
        mean_x, mean_y = days[data_days].mean(), daily[data_days].mean()
        ax.plot(
            days, mean_y + trend * (days - mean_x), color="#e45756", label=f"trend {trend:+,.0f}/day per day"
        )
    step = max(1, -(-len(days) // 14))  # at most ~14 labels, so they never overlap
    ax.set_xticks(days[::step], [d.strftime("%a %m-%d") for d in dates[::step]], fontsize=7)
    ax.set_xlabel(f"day ({profile['start']} .. {profile['end']}, UTC)")
    ax.set_ylabel("units")
    factory = str(profile["factory_id"])
    who = f"{factory_name} ({factory})" if factory_name else factory
    ax.set_title(
        f"{who}\n{profile['start']} .. {profile['end']}"
        f"   OEE {_pct(profile.get('oee'))}"
        f"  FPY {_pct(profile.get('first_pass_yield'))}  OTIF {_pct(profile.get('otif'))}"
        f"  coverage {_pct(profile.get('coverage'))}"
        + ("  (THIN: too little data)" if profile.get("thin") else ""),
        fontsize=9,
    )
    ax.legend(fontsize=8, loc="lower left")
    if measured:
        avail = [np.nan if v is None else 100 * v for v in profile.get("availability_daily", ())]
        handles = []
        if avail:
            handles += ax2.plot(
                days[: len(avail)], avail, color="#54a24b", marker=".", label="availability %"
            )
        ax2.set_ylabel("availability %", fontsize=8)
        per_unit = [np.nan if v is None else v for v in profile.get("energy_per_unit_daily", ())]
        if per_unit:
            ax3 = ax2.twinx()
            handles += ax3.plot(
                days[: len(per_unit)], per_unit, color="#b279a2", marker="x", label="kWh per unit made"
            )
            ax3.set_ylabel("kWh / unit", fontsize=8)
        if handles:  # one legend under the panel, clear of both lines
            ax2.legend(handles=handles, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=2)
        ax2.set_xticks(days[::step], [d.strftime("%a %m-%d") for d in dates[::step]], fontsize=7)
        ax2.tick_params(axis="x", labelbottom=True)
        ax2.set_title(_dimensions_line(profile), fontsize=7)
    fig.tight_layout()
    return fig


def profile_chart(profile: Mapping[str, Any], *, factory_name: str | None = None) -> bytes:
    """Daily output, trend and capacity of a profile (its JSON, as published), as PNG bytes."""
    return _png(profile_figure(profile, factory_name=factory_name))


def yield_chart(result: YieldModelResult | Mapping[str, Any], *, top: int = 12) -> bytes:
    """Top drivers by importance, and the recommended windows with their expected gains."""
    obj = result.to_json_obj() if isinstance(result, YieldModelResult) else result
    ranking = obj["ranking"][:top]
    windows = obj["windows"]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4), gridspec_kw={"width_ratios": [1.1, 1]})
    names = [r["name"] for r in ranking][::-1]
    values = [r["importance"] for r in ranking][::-1]
    a1.barh(names, values, color="#54a24b")
    a1.set_xlabel("drop of held-out AUC when shuffled")
    a1.set_title(f"{obj['line_id']}: yield drivers (AUC {obj['holdout_auc']:.3f})", fontsize=9)
    a1.tick_params(axis="y", labelsize=7)
    # Right: the expected A-grade gain of keeping each parameter in its recommended window.
    labels = [f"{w['name']}\n[{w['low']:.4g} .. {w['high']:.4g}]" for w in windows][::-1]
    gains = [100 * w["expected_gain"] for w in windows][::-1]
    a2.barh(labels, gains, color="#4c78a8")
    a2.set_xlabel("expected gain, A-grade points (held-out units)")
    a2.tick_params(axis="y", labelsize=7)
    a2.set_title(
        f"recommended windows: yield {100 * obj['observed_yield']:.1f}% -> "
        f"{100 * obj['predicted_yield_in_windows']:.1f}% predicted",
        fontsize=9,
    )
    fig.tight_layout()
    return _png(fig)
