"""A line's operating-window set: the windows a published yield model recommends, versioned, checked live.

A :class:`WindowSet` is taken from one published yield result (:func:`window_set_from_result`): its
windows (one per top parameter: ``low`` .. ``high`` in the parameter's measured units), the model's
expected gains, the devices whose readings carry the parameters, and where it sits in the line's
history (``version``, from 1; ``supersedes``, the commitment of the set it replaces). The set is
plain data: its canonical JSON is what :func:`analytics.commitment.commit` commits to, with the yield
result's commitment as its one input (the yield result is itself committed to the anchored readings it
was computed from).

The live check of one reading is :meth:`WindowSet.check`: for each windowed parameter the reading
carries, its value and whether it is outside the window (``value < low`` or ``value > high``; the edges
are inside). A reading that carries none of the parameters is not checked.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from supet_base.errors import SupetError

__all__ = [
    "SCHEMA",
    "WINDOWS_MODEL",
    "WINDOWS_MODEL_VERSION",
    "Check",
    "Window",
    "WindowSet",
    "WindowSetError",
    "window_set_from_result",
]

#: Schema of a window set's JSON.
SCHEMA: Final = "supet.yield-window-set.v1"
#: The "model" a window set is committed under (it computes nothing: it carries a yield result's windows).
WINDOWS_MODEL: Final = "supet.yield-windows"
WINDOWS_MODEL_VERSION: Final = "1"


class WindowSetError(SupetError):
    """A window set cannot be made from what was given (not a yield result, no windows, bad edges)."""

    code = "analytics.windows"


@dataclass(frozen=True, slots=True)
class Window:
    """One parameter's operating window and the model's expected gain from keeping it alone."""

    name: str
    low: float
    high: float
    expected_gain: float

    def outside(self, value: float) -> bool:
        """Whether ``value`` is outside ``[low, high]`` (a NaN is outside)."""
        return not (self.low <= value <= self.high)

    def to_json_obj(self) -> dict[str, Any]:
        return {"name": self.name, "low": self.low, "high": self.high, "expected_gain": self.expected_gain}


@dataclass(frozen=True, slots=True)
class Check:
    """One windowed parameter of one reading: its value and whether it was outside the window."""

    name: str
    value: float
    outside: bool


@dataclass(frozen=True, slots=True)
class WindowSet:
    """A line's window set (see the module docstring).

    @param factory          the factory's address
    @param line_id          the line
    @param version          1 for the line's first set, then one more per set published
    @param supersedes       the commitment of the set this one replaces (None for version 1)
    @param yield_commitment the commitment of the yield result the windows come from
    @param devices          the devices whose readings carry the parameters (the line's stations)
    @param windows          one per parameter, in the model's rank order
    @param observed_yield   the held-out units' A-grade rate the model saw
    @param predicted_yield_in_windows the model's yield with every parameter inside its window
    @param expected_gain    ``predicted_yield_in_windows - observed_yield``
    @param model_gain       the same against the model's own prediction (free of calibration bias)
    """

    factory: str
    line_id: str
    version: int
    supersedes: str | None
    yield_commitment: str
    devices: tuple[str, ...]
    windows: tuple[Window, ...]
    observed_yield: float
    predicted_yield_in_windows: float
    expected_gain: float
    model_gain: float

    def check(self, metrics: Mapping[str, float]) -> list[Check]:
        """The windowed parameters ``metrics`` carries, each with its value and whether it is outside."""
        out: list[Check] = []
        for w in self.windows:
            if w.name in metrics:
                value = float(metrics[w.name])
                out.append(Check(w.name, value, w.outside(value)))
        return out

    def to_json_obj(self) -> dict[str, Any]:
        """As a JSON object (what the commitment's ``result_hash`` is over)."""
        return {
            "schema": SCHEMA,
            "factory": self.factory,
            "line_id": self.line_id,
            "version": self.version,
            "supersedes": self.supersedes,
            "yield_commitment": self.yield_commitment,
            "devices": list(self.devices),
            "windows": [w.to_json_obj() for w in self.windows],
            "observed_yield": self.observed_yield,
            "predicted_yield_in_windows": self.predicted_yield_in_windows,
            "expected_gain": self.expected_gain,
            "model_gain": self.model_gain,
        }

    @classmethod
    def from_json_obj(cls, obj: Mapping[str, Any]) -> WindowSet:
        """Read back :meth:`to_json_obj`'s object.

        @raise WindowSetError when it is not a window set
        """
        if obj.get("schema") != SCHEMA:
            raise WindowSetError(f"not a window set (schema {obj.get('schema')!r})")
        try:
            return cls(
                factory=str(obj["factory"]),
                line_id=str(obj["line_id"]),
                version=int(obj["version"]),
                supersedes=obj["supersedes"],
                yield_commitment=str(obj["yield_commitment"]),
                devices=tuple(str(d) for d in obj["devices"]),
                windows=tuple(
                    Window(str(w["name"]), float(w["low"]), float(w["high"]), float(w["expected_gain"]))
                    for w in obj["windows"]
                ),
                observed_yield=float(obj["observed_yield"]),
                predicted_yield_in_windows=float(obj["predicted_yield_in_windows"]),
                expected_gain=float(obj["expected_gain"]),
                model_gain=float(obj["model_gain"]),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise WindowSetError(f"malformed window set: {e}") from e


def window_set_from_result(
    result: Mapping[str, Any],
    *,
    factory: str,
    line_id: str,
    devices: Sequence[str],
    version: int,
    supersedes: str | None,
    yield_commitment: str,
) -> WindowSet:
    """The window set of a yield result's JSON (:meth:`analytics.yield_model.YieldModelResult.to_json_obj`).

    @raise WindowSetError when ``result`` is not a yield result, holds no window, or a window's edges are
           not finite with ``low <= high``; or ``version`` is below 1
    """
    if result.get("schema") != "supet.yield-model-result.v1":
        raise WindowSetError(
            f"windows come from a yield result, not {result.get('schema')!r}", code="analytics.windows.kind"
        )
    if version < 1 or (version == 1) != (supersedes is None):
        raise WindowSetError(
            "version 1 supersedes nothing; every later version supersedes one",
            code="analytics.windows.version",
        )
    windows = []
    for w in result.get("windows") or ():
        low, high = float(w["low"]), float(w["high"])
        if not (math.isfinite(low) and math.isfinite(high) and low <= high):
            raise WindowSetError(
                f"window of {w['name']} is [{low}, {high}]", code="analytics.windows.bad_edges"
            )
        windows.append(Window(str(w["name"]), low, high, float(w["expected_gain"])))
    if not windows:
        raise WindowSetError("the yield result recommends no window", code="analytics.windows.empty")
    if not devices:
        raise WindowSetError("a window set names the devices it checks", code="analytics.windows.devices")
    return WindowSet(
        factory=factory,
        line_id=line_id,
        version=version,
        supersedes=supersedes,
        yield_commitment=yield_commitment,
        devices=tuple(devices),
        windows=tuple(windows),
        observed_yield=float(result["observed_yield"]),
        predicted_yield_in_windows=float(result["predicted_yield_in_windows"]),
        expected_gain=float(result["expected_gain"]),
        model_gain=float(result["model_gain"]),
    )
