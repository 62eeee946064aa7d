"""PNG charts of published results for reports and the portal (matplotlib, headless Agg backend).

* :func:`profile_chart`: a factory profile's daily output with its least-squares trend, the
  capacity line (90th percentile), the factory's name, dated days and the headline figures
  (OEE, first-pass yield, OTIF, coverage; a thin profile is marked as such).
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

__all__ = ["profile_chart", "profile_figure", "yield_chart"]

_META = {"Software": None, "Creation Time": None}


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata=_META)
    plt.close(fig)
    return buf.getvalue()


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.1f}%"


def profile_figure(profile: Mapping[str, Any], *, factory_name: str | None = None) -> Any:
    """The matplotlib figure of :func:`profile_chart` (for tests and for callers that add to it).

    The title names the factory (``factory_name``, then its id in full) and the period; each bar is
    dated (``Mon 03-02``), so a reader can tell which day a dip was on without counting bars.
    """
    daily = np.asarray(profile["daily_output"], dtype=float)
    days = np.arange(daily.size)
    first = date.fromisoformat(str(profile["start"]))
    dates = [first + timedelta(days=int(i)) for i in days]
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
