"""Shared fixtures: the two chains, the deployed suite, and the rule for missing services.

A test that needs a service (anvil, PostgreSQL, an MQTT broker, node) skips with a
clear reason when it is absent, except under CI (``CI=true``), where a missing
service is a failure, never a silent skip.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from eth_account.signers.local import LocalAccount
from support import require

from contracts.anvil import AnvilNode, find_anvil
from contracts.chain import Chain, dev_accounts
from contracts.deploy import Deployment, deploy_suite


@pytest.fixture(scope="session")
def anvil_node() -> Iterator[AnvilNode]:
    """One anvil (osaka: P-256 precompile on) for the session; tests isolate with snapshots."""
    require(find_anvil() is not None, "anvil is not installed (run `npm ci`)")
    node = AnvilNode(hardfork="osaka").start()
    try:
        yield node
    finally:
        node.stop()


@pytest.fixture(params=["embedded", "anvil"])
def chain(request: pytest.FixtureRequest) -> Iterator[Chain]:
    """A fresh chain of each kind: in-process py-evm, and anvil rolled back after the test."""
    if request.param == "embedded":
        yield Chain.embedded()
        return
    node: AnvilNode = request.getfixturevalue("anvil_node")
    snapshot = node.snapshot()
    try:
        yield Chain.connect(node.url)
    finally:
        node.revert(snapshot)


@dataclass(frozen=True)
class Suite:
    """A chain with the contract suite deployed by dev account 0 (the operator)."""

    chain: Chain
    deployment: Deployment
    operator: LocalAccount
    accounts: list[LocalAccount]

    def contract(self, name: str):  # type: ignore[no-untyped-def]
        return self.deployment.contract(self.chain, name)


@pytest.fixture
def suite(chain: Chain) -> Suite:
    accounts = dev_accounts(10)
    deployment = deploy_suite(chain, accounts[0])
    return Suite(chain=chain, deployment=deployment, operator=accounts[0], accounts=accounts)
