"""The profile chart names the factory and dates its days (a reader of the demo report or the portal
must tell whose output it is and which day a dip fell on without counting bars)."""

from __future__ import annotations

from typing import Any

import matplotlib.pyplot as plt

from analytics.charts import profile_chart, profile_figure, profile_table

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


def test_a_version_2_profile_charts_its_measured_dimensions() -> None:
    from profiles import sample_profile

    p = sample_profile(FACTORY, days=7)
    fig = profile_figure(p, factory_name="sun-a")
    try:
        assert fig.axes[0].get_title().startswith(f"sun-a ({FACTORY})")  # the output panel comes first
        below = fig.axes[1].get_title()
        assert "consistency 100%" in below and "FG cover 1.5 d" in below and "backlog 1.2 d" in below
    finally:
        plt.close(fig)
    assert profile_chart(p) == profile_chart(p)


def test_profile_table_shows_every_dimension_with_its_basis() -> None:
    from profiles import sample_profile

    rows = {figure: (value, basis) for figure, value, basis in profile_table(sample_profile(FACTORY, days=7))}
    assert rows["energy per good unit"][0] == "0.400 kWh"
    assert rows["energy consistency"][0] == "99.5% ok"
    assert rows["raw material"][0].endswith("12.0 days of cover")
    assert rows["finished goods"][1].startswith("count of 2026-10-07 06:00 UTC")
    assert rows["order backlog"][0] == "1,200 units in 1 orders (0 overdue), 1.2 days of capacity"
    assert rows["equipment"][0].startswith("1 machines, 3 unplanned stops")
    assert rows["camera first-pass yield"][0] == "95.5% (reported +0.5 pts above)"
    flagged = dict(
        (f, v)
        for f, v, _ in profile_table(
            sample_profile(FACTORY, energy_consistency=0.8, energy_inconsistent=True)
        )
    )
    assert flagged["energy consistency"] == "80.0% FLAG: output not backed by energy"
    # too thin: said so, never a number
    thin = dict((f, v) for f, v, _ in profile_table(sample_profile(FACTORY, days=2)))
    assert thin["energy consistency"] == "insufficient data (fewer than 3 days)"
    assert thin["availability trend"] == "insufficient data"
    # a version-1 profile: its own rows only
    assert [f for f, _, _ in profile_table(_profile(3))] == [
        "capacity (p90 daily output)",
        "OEE",
        "first-pass yield (reported)",
        "OTIF",
        "reading coverage",
    ]
