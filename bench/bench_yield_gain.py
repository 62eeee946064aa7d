"""Realised vs expected gain of adopting a yield model's operating windows, in the simulator (issue 16.3).

    PYTHONPATH=$PWD .venv/bin/python bench/bench_yield_gain.py [--seeds 5] [--units 3000] [--parameters 200]

Per seed: a simulated line (analytics/yield_sim.py, planted truth) is fitted (analytics/yield_model.py);
its held-out units are then produced again with the recommended windows adopted
(``YieldLine.adopt_windows``: each windowed reading outside its window steered to the nearest edge, the
true process moved by as much). The simulator's true yield law gives the **realised** gain; it is
printed next to the model's **expected** gains (``model_gain``: in-window prediction minus the model's
own prediction; ``expected_gain``: minus the observed A-grade rate), with the sampled A-grade counts.
One JSON line per seed, then a table and a summary line (mean and worst |realised - model_gain|).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from analytics.yield_model import YieldModelParams, fit_yield_model
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
        fit_s = time.perf_counter() - t
        got = line.adopt_windows(r.windows, r.test_indices, seed=seed)
        row = {
            "seed": seed,
            "units": got.units,
            "steered": got.steered,
            "yield_before": round(got.yield_before, 4),
            "yield_after": round(got.yield_after, 4),
            "realised_gain": round(got.gain, 4),
            "sampled_gain": round(got.sampled_gain, 4),
            "model_gain": round(r.model_gain, 4),
            "expected_gain": round(r.expected_gain, 4),
            "realised_minus_model": round(got.gain - r.model_gain, 4),
            "fit_seconds": round(fit_s, 1),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    print()
    print(
        f"{'seed':>4}  {'before':>7}  {'after':>7}  {'realised':>9}  {'expected(model)':>15}  "
        f"{'expected(obs)':>13}  {'diff':>7}"
    )
    for row in rows:
        print(
            f"{row['seed']:>4}  {row['yield_before']:>7.3f}  {row['yield_after']:>7.3f}  "
            f"{row['realised_gain']:>+9.3f}  {row['model_gain']:>+15.3f}  {row['expected_gain']:>+13.3f}  "
            f"{row['realised_minus_model']:>+7.3f}"
        )
    diffs = [abs(r["realised_minus_model"]) for r in rows]
    summary = {
        "realised_gain_mean": round(float(np.mean([r["realised_gain"] for r in rows])), 4),
        "model_gain_mean": round(float(np.mean([r["model_gain"] for r in rows])), 4),
        "expected_gain_mean": round(float(np.mean([r["expected_gain"] for r in rows])), 4),
        "abs_diff_mean": round(float(np.mean(diffs)), 4),
        "abs_diff_max": round(float(np.max(diffs)), 4),
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
