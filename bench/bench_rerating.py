"""Time of one re-rating pass over N factories (issue 15), on the embedded chain and SQLite.

Each factory has a record published from a sound 30-day profile, then a worse profile stored: the pass
re-assesses every factory and publishes N superseding records (one ``publishRecord`` each); a second
pass over the same data publishes nothing. ``.venv/bin/python bench/bench_rerating.py [--factories N]``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "helpers"))

from eth_account import Account
from profiles import store_sample_profile

from contracts.chain import Chain, dev_accounts
from contracts.deploy import deploy_suite
from contracts.onboarding import Onboarding
from ledger_service.config import Settings
from ledger_service.credit_desk.desk import desk_of
from ledger_service.credit_desk.rerating import Rerater
from ledger_service.service import LedgerService


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--factories", type=int, default=20)
    n = ap.parse_args().factories
    chain = Chain.embedded()
    admin = dev_accounts(1)[0]
    deployment = deploy_suite(chain, admin)
    ob = Onboarding(chain, deployment, admin)
    ob.apply_policy()
    oracle = ob.account("oracle")
    ob.admit(oracle, "analytics-oracle")
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(
            database_url=f"sqlite:///{tmp}/ledger.db", data_dir=Path(tmp), verify_workers=0, anchoring=False
        )
        service = LedgerService.build(settings, chain=chain, deployment=deployment)
        desk = desk_of(service)
        good = dict(days=30, delivered_units=23_500.0, daily_output=())
        factories = [Account.create().address for _ in range(n)]
        for f in factories:
            desk.publish(oracle, f, store_sample_profile(service.engine, f, **good), price=12.5)
        time.sleep(0.01)
        for f in factories:
            store_sample_profile(service.engine, f, **good, first_pass_yield=0.8, oee=0.52, otif=0.55)
        rerater = Rerater(desk, oracle)
        t0, c0 = time.perf_counter(), time.process_time()
        first = rerater.run()
        t1, c1 = time.perf_counter(), time.process_time()
        second = rerater.run()
        t2, c2 = time.perf_counter(), time.process_time()
        print(
            f"{n} factories: pass publishing {len(first.published)} records {t1 - t0:.2f} s wall "
            f"({c1 - c0:.2f} s CPU, {(t1 - t0) / n * 1000:.0f} ms per factory); the pass after, "
            f"{len(second.published)} published, {t2 - t1:.2f} s wall ({c2 - c1:.2f} s CPU)"
        )
        service.stop()


if __name__ == "__main__":
    main()
