"""Yield model against the simulator's planted truth, over several seeds.

    .venv/bin/python bench/bench_yield.py [--seeds 5] [--units 3000] [--parameters 200] [--keys 5]

Per seed: planted key parameters among the model's top 5 / top 10, held-out ROC AUC next to the
Bayes-optimal AUC (the true A-grade probability on the same held-out units), the mean overlap of the
recommended windows with the planted optimal windows, the model's expected gain, the *true* gain
(the simulator's yield probability with the windowed parameters' real values clipped into the
recommended windows, minus the true mean, on the held-out units), and the wall time.
Prints one JSON line per seed and a summary line.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from sklearn.metrics import roc_auc_score

from analytics.yield_model import YieldModelParams, fit_yield_model, window_overlap
from analytics.yield_sim import simulate_line


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--units", type=int, default=3000)
    ap.add_argument("--parameters", type=int, default=200)
    ap.add_argument("--keys", type=int, default=5)
    args = ap.parse_args()
    rows = []
    for seed in range(args.seeds):
        line = simulate_line(n_units=args.units, n_parameters=args.parameters, n_key=args.keys, seed=seed)
        t = time.perf_counter()
        r = fit_yield_model(
            line.observed, line.grade_a, line.names, line_id=line.line_id, params=YieldModelParams(seed=seed)
        )
        elapsed = time.perf_counter() - t
        test = np.asarray(r.test_indices)
        planted = {k.name: k.window for k in line.keys}
        overlaps = [window_overlap((w.low, w.high), planted[w.name]) for w in r.windows if w.name in planted]
        clipped = line.true_values[test].copy()
        for w in r.windows:
            j = line.names.index(w.name)
            clipped[:, j] = np.clip(clipped[:, j], w.low, w.high)
        true_gain = float(np.mean(line.yield_probability(clipped)) - np.mean(line.probability[test]))
        row = {
            "seed": seed,
            "top5_hits": len(set(line.key_names) & set(r.top(5))),
            "top10_hits": len(set(line.key_names) & set(r.top(10))),
            "n_key": len(line.keys),
            "holdout_auc": round(r.holdout_auc, 4),
            "bayes_auc": round(float(roc_auc_score(line.grade_a[test], line.probability[test])), 4),
            "window_overlap_mean": round(float(np.mean(overlaps)) if overlaps else 0.0, 3),
            "expected_gain": round(r.expected_gain, 4),
            "model_gain": round(r.model_gain, 4),
            "true_gain": round(true_gain, 4),
            "seconds": round(elapsed, 2),
        }
        rows.append(row)
        print(json.dumps(row))
    summary = {
        k: round(float(np.mean([r[k] for r in rows])), 4)
        for k in (
            "top5_hits",
            "top10_hits",
            "holdout_auc",
            "bayes_auc",
            "window_overlap_mean",
            "expected_gain",
            "true_gain",
            "seconds",
        )
    }
    print(
        json.dumps(
            {
                "summary": summary,
                "seeds": args.seeds,
                "units": args.units,
                "parameters": args.parameters,
                "keys": args.keys,
            }
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
