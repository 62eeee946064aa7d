"""The world of the finance tests over HTTP (test_finance_api, test_finance_writes): the suite deployed
with the example policy and a module's parties admitted, once per process (:func:`embedded_pool.pooled_world`,
on a chain with a simulated clock that starts a week ago), and for each test the ledger service over it
and a test client.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import TypeVar

from embedded_pool import pooled_world
from eth_account.signers.local import LocalAccount
from fastapi.testclient import TestClient

from contracts.chain import Chain, dev_accounts
from contracts.deploy import deploy_suite
from contracts.deployment import Deployment
from contracts.onboarding import Onboarding
from ledger_service.api import create_app
from ledger_service.config import Settings
from ledger_service.service import LedgerService

#: Where the pooled chain's simulated clock starts: a week ago.
START = int(time.time()) - 7 * 86_400

W = TypeVar("W")


def _build(parties: Callable[[Onboarding], object], chain: Chain) -> Deployment:
    """The suite, the example policy and the module's ``parties`` admitted (``parties`` funds and admits
    them; on the pooled world's chain they are then only read)."""
    admin = dev_accounts(1)[0]
    deployment = deploy_suite(chain, admin)
    ob = Onboarding(chain, deployment, admin)
    ob.apply_policy()
    parties(ob)
    return deployment


@contextmanager
def finance_world(
    key: str,
    db_url: str,
    parties: Callable[[Onboarding], object],
    make: Callable[[LedgerService, TestClient, Onboarding, LocalAccount], W],
) -> Iterator[W]:
    """The module's world (``make`` of the service, its test client, the onboarding and the admin, dev
    account 0) over the pooled world ``key`` and the database ``db_url``, for one test.

    After ``make``, the chain's clock moves to a minute from now and from there only when a test tells it
    (:meth:`Chain.warp`), and the party named "stranger" (which ``parties`` must fund) gets 1 wei. The
    service is stopped and the chain rolled back after the test.
    """
    with pooled_world(key, partial(_build, parties), start_time=START) as (chain, deployment):
        admin = dev_accounts(1)[0]
        ob = Onboarding(chain, deployment, admin)
        settings = Settings(
            database_url=db_url, verify_workers=0, anchoring=False, registry_refresh_seconds=0
        )
        service = LedgerService.build(settings, chain=chain, deployment=deployment)
        try:
            with TestClient(create_app(service=service)) as client:
                world = make(service, client, ob, admin)
                chain.warp(int(time.time()) + 60)  # from here on the chain's clock moves only when told
                chain.transfer_value(admin, ob.account("stranger").address, 1)
                yield world
        finally:
            service.stop()
