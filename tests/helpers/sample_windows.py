"""A made-up published yield result with operating windows, for tests of what uses windows (the live
check, its API, the portal), which need no fitted model: :func:`store_sample_yield`."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.engine import Engine

from analytics.commitment import commit
from analytics.yield_model import MODEL_NAME, MODEL_VERSION
from ledger_service.analytics_store.publish import store_result


def sample_yield_result(
    line_id: str, windows: Sequence[tuple[str, float, float]], *, gain: float = 0.1
) -> dict[str, object]:
    """A yield result's JSON (the fields a window set reads) recommending ``windows`` (name, low, high)."""
    return {
        "schema": "supet.yield-model-result.v1",
        "model": {"name": MODEL_NAME, "version": MODEL_VERSION},
        "line_id": line_id,
        "windows": [
            {
                "name": name,
                "low": low,
                "high": high,
                "peak": (low + high) / 2,
                "predicted_yield_peak": 0.9,
                "expected_gain": gain / len(windows),
            }
            for name, low, high in windows
        ],
        "observed_yield": 0.7,
        "predicted_yield": 0.72,
        "predicted_yield_in_windows": 0.72 + gain,
        "expected_gain": 0.02 + gain,
        "model_gain": gain,
    }


def store_sample_yield(
    engine: Engine,
    factory: str,
    line_id: str,
    stations: Sequence[str],
    windows: Sequence[tuple[str, float, float]],
    *,
    gain: float = 0.1,
) -> str:
    """Commit :func:`sample_yield_result` (one made-up input) and store it as ``line_id``'s published yield
    model of ``factory`` with ``stations``; its commitment."""
    result = sample_yield_result(line_id, windows, gain=gain)
    params = {"kind": "yield", "factory": factory, "line_id": line_id, "stations": list(stations)}
    c = commit(result, [b"\x02" * 32], (MODEL_NAME, MODEL_VERSION), params)
    store_result(engine, "yield", line_id, params, c, result)
    return c.commitment
