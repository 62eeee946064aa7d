"""Shared fixtures: the two chains, the deployed suite, and the rule for missing services.

A test that needs a service (anvil, PostgreSQL, an MQTT broker, node) skips with a
clear reason when it is absent, except under CI (``CI=true``), where a missing
service is a failure, never a silent skip.

Parallel runs (``make test``: pytest-xdist, ``-n auto --dist loadfile``): every worker is its own
process with its own session anvil (a free port), its own temporary directories, fresh PostgreSQL
databases (one per test, random names) and servers and brokers on free ports. A file runs on one
worker (its module fixtures are built once); the files with long ``scenario`` tests are handed out
first (:func:`pytest_collection_modifyitems`), so that none of them starts last and holds the run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import fast_gas
import pytest
from embedded_pool import deployed_embedded, embedded_deployment
from eth_account.signers.local import LocalAccount
from support import require

from contracts.anvil import AnvilNode, find_anvil
from contracts.chain import Chain, dev_accounts
from contracts.deploy import deploy_suite
from contracts.deployment import Deployment

if os.environ.get("SUPET_TEST_CPU"):
    pytest_plugins = ["cpu_report"]  # CPU by test file (tests/helpers/cpu_report.py)

if os.environ.get("SUPET_TEST_EXACT_GAS", "") != "1":
    fast_gas.install()  # embedded chain: gas estimated in 2-5 runs, not about 13 (tests/helpers/fast_gas.py)

# ---------------------------------------------------------------- parallel runs (pytest-xdist)


def _uses_shared_fixture(item: pytest.Item) -> bool:
    """Whether ``item`` uses a module-, class- or package-scoped fixture (built once for many tests)."""
    info = getattr(item, "_fixtureinfo", None)
    if info is None:
        return False
    scopes = {defs[-1].scope for defs in info.name2fixturedefs.values() if defs}
    return bool(scopes & {"module", "class", "package"})


@pytest.hookimpl(trylast=True)  # after pytest's own fixture ordering and -k/-m deselection
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under xdist, order the files so that the long ones are handed out first.

    ``make test`` runs ``--dist loadfile --no-loadscope-reorder``: each file goes to one worker as a
    unit (its module fixtures are built once), in the order of its first test here. First the files
    with a ``scenario``, then those with a ``slow`` test or a shared (module/class) fixture, then the
    rest; within each, more tests first. A file's tests stay together and in their order. Without
    xdist the collection order is left as it is.
    """
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    files: dict[str, list[pytest.Item]] = {}
    for item in items:
        files.setdefault(item.nodeid.split("::", 1)[0], []).append(item)

    def rank(tests: list[pytest.Item]) -> tuple[int, int]:
        if any(t.get_closest_marker("scenario") is not None for t in tests):
            weight = 0
        elif any(t.get_closest_marker("slow") is not None or _uses_shared_fixture(t) for t in tests):
            weight = 1
        else:
            weight = 2
        return weight, -len(tests)

    ordered = sorted(files.values(), key=rank)  # stable: ties keep the collection order
    items[:] = [item for tests in ordered for item in tests]


@dataclass(frozen=True)
class AnvilSession:
    """The session's anvil and the suite deployed on it once, before any test took a snapshot."""

    node: AnvilNode
    deployment: Deployment


@pytest.fixture(scope="session")
def anvil_session() -> Iterator[AnvilSession]:
    """One anvil (osaka: P-256 precompile on) per session (per xdist worker), the suite deployed once.

    Tests isolate with snapshots taken after that deployment, so a ``suite`` test on anvil starts
    from the deployed state without deploying again (about 200 deployments fewer per run); every
    test on this node sees the same state: the suite at the first addresses of dev account 0.
    """
    require(find_anvil() is not None, "anvil is not installed (run `npm ci`)")
    node = AnvilNode(hardfork="osaka").start()
    try:
        deployment = deploy_suite(Chain.connect(node.url), dev_accounts(1)[0])
        yield AnvilSession(node=node, deployment=deployment)
    finally:
        node.stop()


@pytest.fixture(scope="session")
def anvil_node(anvil_session: AnvilSession) -> AnvilNode:
    """The session's anvil (the suite is deployed on it); tests isolate with snapshots."""
    return anvil_session.node


#: The chains a test taking ``chain`` (or ``suite``) runs on: both kinds, but for a module marked
#: ``contract_logic``: its subject is a contract's own rules, which do not depend on the node, so it runs
#: on anvil alone. The embedded chain (py-evm in Python) ran each such test 2-4 times slower than anvil:
#: 1,673 of a run's 8,244 test-seconds were tests on it, 1,155 of them in the modules now on anvil
#: alone. What is the embedded chain's own (the P-256 precompile, revert decoding, gas estimation,
#: logs, the chain adapter and every service path on the default deployment) keeps its tests on both.
CHAIN_KINDS = ("embedded", "anvil")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "chain" not in metafunc.fixturenames:
        return
    if any(
        m.name == "parametrize" and "chain" in str(m.args[:1]) for m in metafunc.definition.iter_markers()
    ):
        return  # the test names its chain itself
    kinds = ["anvil"] if metafunc.definition.get_closest_marker("contract_logic") else list(CHAIN_KINDS)
    metafunc.parametrize("chain", kinds, indirect=True)


@pytest.fixture
def chain(request: pytest.FixtureRequest) -> Iterator[Chain]:
    """A chain with the suite deployed, rolled back after the test: the process's in-process py-evm
    (tests/helpers/embedded_pool.py) or the session's anvil (:func:`pytest_generate_tests` says which)."""
    if request.param == "embedded":
        with deployed_embedded() as (embedded, _):
            yield embedded
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
def suite(chain: Chain, request: pytest.FixtureRequest) -> Suite:
    """The suite on ``chain``: the one deployed once per process (embedded) or per session (anvil);
    either is rolled back after the test."""
    accounts = dev_accounts(10)
    deployment: Deployment | None = None
    if chain.is_embedded:
        deployment = embedded_deployment(chain)
    else:
        session: AnvilSession = request.getfixturevalue("anvil_session")
        if chain.rpc == session.node.url:
            deployment = session.deployment
    if deployment is None:
        deployment = deploy_suite(chain, accounts[0])
    return Suite(chain=chain, deployment=deployment, operator=accounts[0], accounts=accounts)
