"""The profile chart names the factory and dates its days (a reader of the demo report or the portal
must tell whose output it is and which day a dip fell on without counting bars)."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt

from analytics.charts import profile_chart, profile_figure

FACTORY = "0x" + "ab" * 20


def _profile(days: int, **extra: Any) -> dict[str, Any]:
    return {
        "factory_id": FACTORY,
        "start": "2026-03-02",
        "end": f"2026-03-{1 + days:02d}",
        "daily_output": [100.0 + 5 * i for i in range(days)],
        "capacity_units_per_day": 140.0,
        "trend_units_per_day": 5.0,
        "oee": 0.8,
        "first_pass_yield": 0.95,
        "otif": 1.0,
        "coverage": 1.0,
        **extra,
    }


def test_title_names_the_factory_in_full_and_the_period() -> None:
    fig = profile_figure(_profile(7), factory_name="sun-a")
    try:
        title = fig.axes[0].get_title()
        assert title.startswith(f"sun-a ({FACTORY})")
        assert "2026-03-02 .. 2026-03-08" in title
        assert "…" not in title
    finally:
        plt.close(fig)


def test_without_a_name_the_title_has_the_whole_factory_id() -> None:
    fig = profile_figure(_profile(3, thin=True))
    try:
        title = fig.axes[0].get_title()
        assert title.startswith(FACTORY)
        assert "THIN" in title
    finally:
        plt.close(fig)


def test_each_day_is_dated() -> None:
    fig = profile_figure(_profile(7), factory_name="sun-a")
    try:
        labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
        # 2026-03-02 is a Monday.
        assert labels == [
            "Mon 03-02",
            "Tue 03-03",
            "Wed 03-04",
            "Thu 03-05",
            "Fri 03-06",
            "Sat 03-07",
            "Sun 03-08",
        ]
    finally:
        plt.close(fig)


def test_a_long_period_keeps_labels_readable_and_dated() -> None:
    fig = profile_figure({**_profile(28), "end": "2026-03-29"})
    try:
        labels = [t.get_text() for t in fig.axes[0].get_xticklabels()]
        assert 7 <= len(labels) <= 14
        assert labels[0] == "Mon 03-02" and labels[1] == "Wed 03-04"
    finally:
        plt.close(fig)


def test_png_is_deterministic() -> None:
    a = profile_chart(_profile(7), factory_name="sun-a")
    b = profile_chart(_profile(7), factory_name="sun-a")
    assert a.startswith(b"\x89PNG") and a == b
