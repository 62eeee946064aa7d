"""The credit scorecard: binned features, weight of evidence, logistic regression, points.

This module is the model and its scoring; training it is :mod:`finance.scorecard_fit`.

**Weight of evidence** of a bin: ``WoE = ln(share of the non-defaulters in the bin / share of the
defaulters in the bin)``: positive for bins safer than average. A bin training never saw (the
*Missing* bin of a feature that was never missing, an unseen category) gets the feature's *lowest*
WoE: what we cannot see scores as the worst we have seen.

**The model** (``logit PD = intercept + sum_k coefficient_k x WoE_k(bin of x_k)``) is then scaled to
points (:class:`Scaling`): ``score = offset + factor x ln(odds)``, odds = non-default : default,
``factor = pdo / ln 2``, ``offset = base_score - factor x ln(base_odds)``, so a score of
``base_score`` means odds of ``base_odds`` : 1 and every ``pdo`` points double the odds. Each bin's
points are ``-(coefficient x WoE + intercept / n) x factor + offset / n`` (``n`` features), rounded to
0.01; the score is the sum of the factory's bins' points and ``PD = 1 / (1 + exp((score - offset) /
factor))``.

**Scoring** needs only this module and NumPy: :class:`ScorecardModel` holds the bins, WoE,
coefficients and points table, serialises to canonical JSON (:meth:`ScorecardModel.to_json_obj`),
and ``model_version`` is the keccak-256 of that JSON, so a file cannot be changed without changing
its version. :func:`load_default_model` loads the packaged ``finance/data/scorecard-v1.json``
(``python -m finance.train --out finance/data/scorecard-v1.json``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
from eth_utils import keccak

from analytics.commitment import CommitmentError, canonical_json
from finance.errors import CreditModelError

__all__ = [
    "DEFAULT_MODEL_FILE",
    "MODEL_NAME",
    "SCHEMA",
    "Bin",
    "FeatureSpec",
    "FeatureTable",
    "Scaling",
    "ScorecardModel",
    "load_default_model",
    "load_model",
]

#: Schema of the model file.
SCHEMA: Final = "supet.credit-scorecard.v1"
#: The model's name (with ``model_version``, the :class:`analytics.commitment.ModelId`).
MODEL_NAME: Final = "supet.credit-scorecard"
#: The packaged default model, inside the ``finance`` package.
DEFAULT_MODEL_FILE: Final = "data/scorecard-v1.json"
#: Points are rounded to this many decimals.
POINTS_DECIMALS: Final = 2

Unit = Literal[
    "share", "trend", "days", "units_per_day", "money", "number", "category", "count", "days_late", "points"
]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Scaling:
    """Points scaling: ``base_score`` points at ``base_odds`` : 1 (non-default : default), ``pdo``
    points to double the odds."""

    base_score: float = 600.0
    base_odds: float = 50.0
    pdo: float = 20.0

    def __post_init__(self) -> None:
        if not all(math.isfinite(v) and v > 0 for v in (self.base_score, self.base_odds, self.pdo)):
            raise CreditModelError(
                "scaling needs positive finite base score, odds and PDO", code="credit.policy"
            )

    @property
    def factor(self) -> float:
        """Points per unit of log-odds: ``pdo / ln 2``."""
        return self.pdo / math.log(2.0)

    @property
    def offset(self) -> float:
        """``base_score - factor x ln(base_odds)``: the score at even odds."""
        return self.base_score - self.factor * math.log(self.base_odds)

    def pd(self, score: float | FloatArray) -> Any:
        """Probability of default of a score: ``1 / (1 + exp((score - offset) / factor))``."""
        return 1.0 / (1.0 + np.exp((np.asarray(score, dtype=np.float64) - self.offset) / self.factor))

    def to_json_obj(self) -> dict[str, float]:
        return {"base_score": self.base_score, "base_odds": self.base_odds, "pdo": self.pdo}


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    """How one feature is binned and described.

    @param name             the feature's name
    @param label            its name in a loan officer's words ("On-time-in-full delivery")
    @param unit             how its value is written in a reason
    @param higher_is_better True: default rate must fall as the value rises (bins monotonic);
                            False: must rise; None: no constraint (categorical, or unknown)
    @param fixed_splits     cut points every binning must keep (coverage: the thin threshold 0.8)
    @param missing_text     the reason's words when the value is missing
    @param dtype            ``numerical`` or ``categorical``
    @param keep             kept whatever its information value (a policy feature: coverage); the
                            sign check still applies
    @param neutral_missing  a missing value scores the feature's neutral points (weight of evidence
                            0: no evidence either way), not a learnt Missing bin: the proof features,
                            unknown or too thinly evidenced to score
    """

    name: str
    label: str
    unit: Unit = "number"
    higher_is_better: bool | None = None
    fixed_splits: tuple[float, ...] = ()
    missing_text: str = ""
    dtype: Literal["numerical", "categorical"] = "numerical"
    keep: bool = False
    neutral_missing: bool = False

    def describe(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "unit": self.unit,
            "higher_is_better": self.higher_is_better,
            "missing_text": self.missing_text,
            "keep": self.keep,
            "neutral_missing": self.neutral_missing,
        }


@dataclass(frozen=True, slots=True)
class Bin:
    """One bin of a feature.

    @param kind       ``range`` ([low, high), None = unbounded), ``missing``, ``categories``
                      (the listed categories) or ``other`` (categories training never saw)
    @param woe        its weight of evidence
    @param points     points it scores
    @param count      training rows in it
    @param event_rate training default rate in it (0 when empty)
    """

    kind: Literal["range", "missing", "categories", "other"]
    woe: float
    points: float
    count: int
    event_rate: float
    low: float | None = None
    high: float | None = None
    categories: tuple[str, ...] = ()

    def to_json_obj(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind,
            "woe": self.woe,
            "points": self.points,
            "count": self.count,
            "event_rate": self.event_rate,
        }
        if self.kind == "range":
            out["low"], out["high"] = self.low, self.high
        if self.kind == "categories":
            out["categories"] = list(self.categories)
        return out

    @classmethod
    def from_json_obj(cls, o: Mapping[str, Any]) -> Bin:
        return cls(
            kind=o["kind"],
            woe=float(o["woe"]),
            points=float(o["points"]),
            count=int(o["count"]),
            event_rate=float(o["event_rate"]),
            low=None if o.get("low") is None else float(o["low"]),
            high=None if o.get("high") is None else float(o["high"]),
            categories=tuple(str(c) for c in o.get("categories", ())),
        )


@dataclass(frozen=True, slots=True)
class FeatureTable:
    """A feature's bins, coefficient and description in the fitted model."""

    spec: FeatureSpec
    coefficient: float
    iv: float
    bins: tuple[Bin, ...]

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def best_points(self) -> float:
        """The most points any bin of this feature scores."""
        return max(b.points for b in self.bins)

    def _missing_index(self) -> int:
        return next(i for i, b in enumerate(self.bins) if b.kind in ("missing", "other"))

    def bin_index(self, value: Any) -> int:
        """Index of the bin ``value`` falls in (None / NaN: the Missing bin)."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return next(i for i, b in enumerate(self.bins) if b.kind == "missing")
        if self.spec.dtype == "categorical":
            text = str(value)
            for i, b in enumerate(self.bins):
                if b.kind == "categories" and text in b.categories:
                    return i
            return next(i for i, b in enumerate(self.bins) if b.kind == "other")
        x = float(value)
        for i, b in enumerate(self.bins):
            if b.kind == "range" and (b.low is None or x >= b.low) and (b.high is None or x < b.high):
                return i
        raise CreditModelError(f"{self.name}={x} falls in no bin", code="credit.model.invalid")

    def bin_indices(self, values: npt.ArrayLike) -> npt.NDArray[np.intp]:
        """Vectorised :meth:`bin_index` (numerical features; NaN = missing)."""
        if self.spec.dtype == "categorical":
            return np.array([self.bin_index(v) for v in np.asarray(values, dtype=object)], dtype=np.intp)
        x = np.asarray(values, dtype=np.float64)
        ranges = [b for b in self.bins if b.kind == "range"]
        splits = np.array([b.low for b in ranges[1:]], dtype=np.float64)
        idx = np.searchsorted(splits, x, side="right")
        return np.where(np.isnan(x), self._missing_index(), idx).astype(np.intp)

    def to_json_obj(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dtype": self.spec.dtype,
            **self.spec.describe(),
            "fixed_splits": list(self.spec.fixed_splits),
            "coefficient": self.coefficient,
            "iv": self.iv,
            "bins": [b.to_json_obj() for b in self.bins],
        }

    @classmethod
    def from_json_obj(cls, o: Mapping[str, Any]) -> FeatureTable:
        spec = FeatureSpec(
            name=o["name"],
            label=o["label"],
            unit=o["unit"],
            higher_is_better=o["higher_is_better"],
            fixed_splits=tuple(float(s) for s in o["fixed_splits"]),
            missing_text=o["missing_text"],
            dtype=o["dtype"],
            keep=bool(o["keep"]),
            neutral_missing=bool(o.get("neutral_missing", False)),
        )
        return cls(
            spec=spec,
            coefficient=float(o["coefficient"]),
            iv=float(o["iv"]),
            bins=tuple(Bin.from_json_obj(b) for b in o["bins"]),
        )


@dataclass(frozen=True, slots=True)
class ScorecardModel:
    """A fitted scorecard: what scoring needs, and a record of how it was trained.

    @param inputs     every input name the model accepts (a feature left out in training is
                      accepted and ignored)
    @param features   the scored features, each with its bins and points
    @param intercept  the regression's intercept
    @param scaling    the points scaling
    @param training   how it was trained (data set, rows, defaults, seed, parameters)
    """

    inputs: tuple[str, ...]
    features: tuple[FeatureTable, ...]
    intercept: float
    scaling: Scaling
    training: Mapping[str, Any] = field(default_factory=dict)
    _version: str = field(init=False, repr=False, compare=False, default="")

    def __post_init__(self) -> None:
        try:
            version = "0x" + keccak(canonical_json(self.body())).hex()
        except CommitmentError as e:
            raise CreditModelError(
                f"the model is not JSON-able: {e.message}", code="credit.model.invalid"
            ) from e
        object.__setattr__(self, "_version", version)

    def body(self) -> dict[str, Any]:
        """The model as a JSON object, without its version."""
        return {
            "schema": SCHEMA,
            "name": MODEL_NAME,
            "inputs": list(self.inputs),
            "scaling": self.scaling.to_json_obj(),
            "intercept": self.intercept,
            "features": [f.to_json_obj() for f in self.features],
            "training": dict(self.training),
        }

    @property
    def model_version(self) -> str:
        """``0x`` + keccak-256 of the canonical JSON of :meth:`body` (computed once, on construction)."""
        return self._version

    def to_json_obj(self) -> dict[str, Any]:
        """The model file's content: :meth:`body` plus ``model_version``."""
        return {**self.body(), "model_version": self.model_version}

    def to_file_text(self) -> str:
        """The model file: its canonical JSON re-indented (2 spaces, keys sorted) for review."""
        return json.dumps(json.loads(canonical_json(self.to_json_obj())), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json_obj(cls, o: Mapping[str, Any]) -> ScorecardModel:
        """Load a model file's JSON object, checking its schema and ``model_version``.

        @raise CreditModelError ``credit.model.invalid`` for another schema or a malformed body,
               ``credit.model.version`` when the version is not the hash of the body
        """
        if not isinstance(o, Mapping) or o.get("schema") != SCHEMA:
            raise CreditModelError(f"not a {SCHEMA} model file", code="credit.model.invalid")
        try:
            s = o["scaling"]
            model = cls(
                inputs=tuple(str(n) for n in o["inputs"]),
                features=tuple(FeatureTable.from_json_obj(f) for f in o["features"]),
                intercept=float(o["intercept"]),
                scaling=Scaling(float(s["base_score"]), float(s["base_odds"]), float(s["pdo"])),
                training=dict(o["training"]),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise CreditModelError(f"malformed model file: {e!r}", code="credit.model.invalid") from e
        version = model.model_version
        if o.get("model_version") != version:
            raise CreditModelError(
                f"model_version {o.get('model_version')} is not the hash of the model ({version}); "
                "the file was altered or written by other code",
                code="credit.model.version",
            )
        return model

    def feature(self, name: str) -> FeatureTable:
        """The scored feature ``name``."""
        for f in self.features:
            if f.name == name:
                return f
        raise CreditModelError(f"the model does not score {name!r}", code="credit.input.unknown")

    def neutral_points(self, name: str) -> float:
        """The points feature ``name`` scores at a weight of evidence of 0: average risk, no evidence
        either way: ``-(intercept / n) x factor + offset / n`` (``n`` scored features; the same for
        every feature, and exactly what a ``neutral_missing`` feature's Missing bin scores)."""
        self.feature(name)
        n = len(self.features)
        raw = -(self.intercept / n) * self.scaling.factor + self.scaling.offset / n
        return round(raw, POINTS_DECIMALS) + 0.0

    def check_inputs(self, names: Sequence[str]) -> None:
        """Refuse names the model does not accept.

        @raise CreditModelError ``credit.input.unknown``
        """
        unknown = sorted(set(names) - set(self.inputs))
        if unknown:
            raise CreditModelError(
                f"unknown feature(s) {', '.join(unknown)}; the model takes {', '.join(self.inputs)}",
                code="credit.input.unknown",
            )

    def points(self, values: Mapping[str, Any]) -> dict[str, float]:
        """Points of each scored feature for one applicant (``None`` = missing).

        @raise CreditModelError ``credit.input.unknown`` for a name the model does not take
        """
        self.check_inputs(list(values))
        return {f.name: f.bins[f.bin_index(values.get(f.name))].points for f in self.features}

    def score(self, values: Mapping[str, Any]) -> float:
        """The score of one applicant: the sum of its points."""
        return round(sum(self.points(values).values()), POINTS_DECIMALS)

    def score_batch(self, columns: Mapping[str, npt.ArrayLike]) -> FloatArray:
        """Scores of many applicants, ``columns`` = feature name -> array (NaN / None = missing)."""
        self.check_inputs(list(columns))
        total: FloatArray | None = None
        for f in self.features:
            pts = np.array([b.points for b in f.bins], dtype=np.float64)[f.bin_indices(columns[f.name])]
            total = pts if total is None else total + pts
        if total is None:
            raise CreditModelError("the model scores no feature", code="credit.model.invalid")
        return np.round(total, POINTS_DECIMALS)

    def pd(self, score: float | FloatArray) -> Any:
        """Probability of default of a score (see :class:`Scaling`)."""
        return self.scaling.pd(score)


def load_model(path: str | Path) -> ScorecardModel:
    """Load a model file.

    @raise CreditModelError ``credit.model.invalid`` for a file that is not JSON or not a model,
           ``credit.model.version`` for an altered model
    """
    try:
        obj = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise CreditModelError(f"cannot read model file {path}: {e}", code="credit.model.invalid") from e
    return ScorecardModel.from_json_obj(obj)


@lru_cache(maxsize=1)
def load_default_model() -> ScorecardModel:
    """The packaged model ``finance/data/scorecard-v1.json`` (trained on the simulator)."""
    text = resources.files("finance").joinpath(DEFAULT_MODEL_FILE).read_text(encoding="utf-8")
    return ScorecardModel.from_json_obj(json.loads(text))
