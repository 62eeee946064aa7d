"""A line's window set (analytics/yield_windows.py): made from a yield result's JSON, checked per reading."""

from __future__ import annotations

import math

import pytest

from analytics.yield_windows import WindowSet, WindowSetError, window_set_from_result
from supet_base.errors import SupetError

RESULT = {
    "schema": "supet.yield-model-result.v1",
    "windows": [
        {"name": "p007", "low": 1.0, "high": 2.0, "expected_gain": 0.05},
        {"name": "p100", "low": -3.0, "high": -1.0, "expected_gain": 0.02},
    ],
    "observed_yield": 0.7,
    "predicted_yield_in_windows": 0.8,
    "expected_gain": 0.1,
    "model_gain": 0.09,
}


def _set(**kw: object) -> WindowSet:
    args: dict[str, object] = {
        "factory": "0xF",
        "line_id": "l1",
        "devices": ("l1-st1",),
        "version": 1,
        "supersedes": None,
        "yield_commitment": "0x" + "11" * 32,
    }
    args.update(kw)
    return window_set_from_result(RESULT, **args)  # type: ignore[arg-type]


def test_a_window_set_checks_the_windowed_parameters_a_reading_carries() -> None:
    ws = _set()
    assert [w.name for w in ws.windows] == ["p007", "p100"] and ws.model_gain == 0.09
    got = ws.check({"p007": 1.0, "p100": -0.5, "p999": 50.0})  # an edge is inside; p999 has no window
    assert [(c.name, c.value, c.outside) for c in got] == [("p007", 1.0, False), ("p100", -0.5, True)]
    assert ws.check({"state": 1}) == []
    assert ws.windows[0].outside(math.nan)
    assert WindowSet.from_json_obj(ws.to_json_obj()) == ws
    later = _set(version=2, supersedes="0x" + "22" * 32)
    assert later.to_json_obj()["supersedes"] == "0x" + "22" * 32


def test_what_is_not_a_window_set_is_refused() -> None:
    with pytest.raises(WindowSetError) as e:
        window_set_from_result({**RESULT, "schema": "supet.factory-profile.v1"}, **_kw())
    assert e.value.code == "analytics.windows.kind" and isinstance(e.value, SupetError)
    with pytest.raises(WindowSetError) as e:
        window_set_from_result({**RESULT, "windows": []}, **_kw())
    assert e.value.code == "analytics.windows.empty"
    bad = {**RESULT, "windows": [{"name": "p1", "low": 2.0, "high": 1.0, "expected_gain": 0.0}]}
    with pytest.raises(WindowSetError) as e:
        window_set_from_result(bad, **_kw())
    assert e.value.code == "analytics.windows.bad_edges"
    with pytest.raises(WindowSetError) as e:
        _set(version=2)  # a later version names the set it supersedes
    assert e.value.code == "analytics.windows.version"
    with pytest.raises(WindowSetError):
        _set(devices=())
    with pytest.raises(WindowSetError):
        WindowSet.from_json_obj({"schema": "supet.yield-window-set.v1", "factory": "0xF"})


def _kw() -> dict[str, object]:
    return {
        "factory": "0xF",
        "line_id": "l1",
        "devices": ("d",),
        "version": 1,
        "supersedes": None,
        "yield_commitment": "0x00",
    }
