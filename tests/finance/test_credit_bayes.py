"""The packaged scorecard against the Bayes-optimal AUC on the simulator's holdout (issue 16: >= 0.97x).

The simulator plants the default law, so every factory's true probability of default is known and the
Bayes-optimal AUC of a holdout is the AUC of those probabilities (``Portfolio.bayes_auc``). The model
sees only the noisy, partly missing observations, so it stays below; the check is that it recovers at
least 97 % of it. ``bench/bench_credit_bayes.py`` reports the same on three 20,000-factory holdouts with
the German credit AUC beside it.
"""

from __future__ import annotations

import numpy as np

from finance.credit_sim import simulate_portfolio
from finance.features import PROOF_FEATURES
from finance.scorecard import load_default_model
from finance.validation import evaluate

#: The holdout: seed 2 (the model is trained on seed 1), 20,000 factories.
HOLDOUT_SEED = 2
RATIO = 0.97


def test_scorecard_reaches_097_of_the_bayes_auc_on_the_holdout() -> None:
    model = load_default_model()
    hold = simulate_portfolio(20_000, seed=HOLDOUT_SEED)
    ev = evaluate(model, hold.features, hold.default)
    bayes = hold.bayes_auc()
    # Bayes AUC is the AUC of the true default probabilities on the same holdout
    assert bayes > ev.auc >= RATIO * bayes, (ev.auc, bayes, ev.auc / bayes)
    # the proof features carry part of it: left unknown (scored neutral), the model falls below 0.97x
    blind = {k: (np.full(hold.n, np.nan) if k in PROOF_FEATURES else v) for k, v in hold.features.items()}
    without = evaluate(model, blind, hold.default)
    assert without.auc < RATIO * bayes and without.auc < ev.auc - 0.005
