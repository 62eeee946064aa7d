"""Analytics scored against the planted truth, with every input through the real ingest and anchored.

Three factories (a healthy two-line solar-cell factory, a deteriorating solar-cell factory and a
healthy rubber mixer) are simulated for a week (``--days``), streamed through the ledger's ingest
(in-process pipeline, signature checks in worker processes) on an embedded chain with a simulated
clock, anchored, then profiled and modelled from the ledger alone. Printed:

* the profile figures next to the truth (over every interval, reported or not);
* per line: the share of planted key parameters among the model's top k (k = number of keys), the
  held-out AUC next to the Bayes-optimal AUC of the true yield probability on the same held-out
  rows, and the times.

Run: ``.venv/bin/python bench/bench_analytics_ledger.py [--days 7]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time

import numpy as np
from sklearn.metrics import roc_auc_score

from contracts.chain import Chain, dev_accounts
from contracts.deploy import deploy_suite
from contracts.onboarding import Onboarding
from ledger_service.analytics_store.publish import (
    ProfileParams,
    YieldParams,
    publish_profile,
    publish_yield,
    yield_dataset,
)
from ledger_service.analytics_store.source import LedgerSource
from ledger_service.config import Settings
from ledger_service.service import LedgerService
from simulation.factories import simulate_world
from simulation.feed import SimulationFeed
from simulation.kinds import RUBBER_MIXING, SOLAR_CELL, FactorySpec


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    days = args.days
    today = dt.datetime.now(dt.UTC).date()
    start = today - dt.timedelta(days=days)
    end = start + dt.timedelta(days=days - 1)
    t0 = int(dt.datetime(start.year, start.month, start.day, tzinfo=dt.UTC).timestamp())
    chain = Chain.embedded(start_time=t0 - 86_400)
    operator = dev_accounts(1)[0]
    deployment = deploy_suite(chain, operator)
    onboarding = Onboarding(chain, deployment, operator, seed="bench")
    onboarding.apply_policy()
    tmp = tempfile.mkdtemp()
    service = LedgerService.build(
        Settings(
            database_url=f"sqlite:///{tmp}/ledger.db",
            verify_workers=args.workers,
            anchoring=False,
            registry_refresh_seconds=0,
            late_window_ms=(days + 3) * 86_400_000,
        ),
        chain=chain,
        deployment=deployment,
    )
    service.start()
    specs = [
        FactorySpec(factory_id="sun-a", kind=SOLAR_CELL, seed=101, lines=2),
        FactorySpec(factory_id="sun-b", kind=SOLAR_CELL, seed=102, health="deteriorating"),
        FactorySpec(factory_id="rub-c", kind=RUBBER_MIXING, seed=103),
    ]
    world = simulate_world(specs, start, days)
    feed = SimulationFeed(
        chain=chain,
        deployment=deployment,
        onboarding=onboarding,
        submit=lambda objs: service.pipeline.submit(objs, source="http"),
    )
    t = time.perf_counter()
    result = feed.run(world)
    service.anchoring.flush(timeout=300)
    fed_s = time.perf_counter() - t
    print(
        f"fed {result.sent:,} readings ({result.accepted:,} accepted, rejected {dict(result.rejected)}), "
        f"{len(result.orders)} orders, {len(result.lots)} lots in {fed_s:.1f} s "
        f"({result.sent / fed_s:,.0f} readings/s incl. signing and chain transactions)"
    )
    source = LedgerSource(service.engine, chain, deployment, order_terms=result.order_terms)
    through = source.latest_anchored_batch()
    block = chain.block_number()
    names = ("capacity_units_per_day", "availability", "performance", "quality", "oee", "first_pass_yield")
    print("\nprofile vs truth (ledger / truth)")
    print(f"{'factory':8} " + " ".join(f"{n[:16]:>20}" for n in (*names, "otif", "coverage")))
    for f in world.factories:
        spec = f.spec
        t = time.perf_counter()
        pub = publish_profile(
            service.engine,
            source,
            ProfileParams(
                factory=result.factories[spec.factory_id],
                machines=tuple(spec.machine_ids()),
                interval_s=spec.interval_s,
                start=start,
                end=end,
                through_batch=through,
                block=block,
            ),
        )
        took = time.perf_counter() - t
        truth = f.figures()
        cells = []
        for n in (*names, "otif", "coverage"):
            got, want = pub.result[n], truth[n]
            cells.append(f"{'-' if got is None else f'{got:.3f}'}/{'-' if want is None else f'{want:.3f}'}")
        print(f"{spec.factory_id:8} " + " ".join(f"{c:>20}" for c in cells) + f"   ({took:.2f} s)")

    print("\nyield models (per line)")
    for f in world.factories:
        spec = f.spec
        for line_truth, line in zip(f.lines, spec.line_ids(), strict=True):
            params = YieldParams(
                factory=result.factories[spec.factory_id],
                line_id=line,
                controller=spec.controller_id(line),
                stations=tuple(spec.station_ids(line)),
                interval_s=spec.interval_s,
                start=start,
                end=end,
                through_batch=through,
            )
            t = time.perf_counter()
            _, res = publish_yield(service.engine, source, params)
            took = time.perf_counter() - t
            _x, y, w, g, _names, _inputs, _starts = yield_dataset(source, params)
            k = len(line_truth.keys)
            found = len(set(res.top(k)) & set(line_truth.key_names()))
            test = np.asarray(res.test_indices)
            p_true = line_truth.probability[g[test]]
            bayes = float(roc_auc_score(y[test], p_true, sample_weight=w[test]))
            print(
                f"{line:10} {spec.health:13} rows {res.n_units:6,}  top-{k} recovery {found}/{k}  "
                f"held-out AUC {res.holdout_auc:.3f} vs Bayes {bayes:.3f}  "
                f"yield {res.observed_yield:.3f} -> {res.predicted_yield_in_windows:.3f} in windows"
                f"  ({took:.1f} s)"
            )
    service.stop()


if __name__ == "__main__":
    main()
