"""The deployed embedded chain of a test process, rolled back after each test (``embedded_pool``).

Deploying the suite on a fresh py-evm chain costs about a second of CPU, and about 400 tests
(``suite`` on the embedded chain, the service's ``ledger``) each used to pay it. Here each process
(each xdist worker) deploys once per kind of DeviceRegistry and every test starts from that state
through eth-tester's snapshot and revert, as the anvil tests do with the session's node
(``evm_snapshot``/``evm_revert``). Every test gets a fresh :class:`~contracts.chain.Chain` object (its
own nonce cache and locks) over the shared in-process node; what a test leaves on the chain is gone
before the next test starts.

A module whose tests all start from the same world of their own (a deployment on a chain with a
simulated clock, a policy applied, parties admitted) builds it once per process with
:func:`pooled_world` and starts every test from its snapshot the same way. The Hypothesis state
machines of tests/contracts start each example from a world of theirs on anvil instead
(tests/helpers/anvil_pool.py): a contract's own rules, at a fifth of the CPU.

A test that needs a chain nothing was ever deployed on, or a deployment of its own (another admin,
no stablecoin), still builds it with ``Chain.embedded()`` and ``deploy_suite``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from contracts.chain import Chain, dev_accounts
from contracts.deploy import deploy_suite
from contracts.deployment import Deployment

_DEPLOYED: dict[str, tuple[Chain, Deployment]] = {}

T = TypeVar("T")


def _deployed(device_registry: str) -> tuple[Chain, Deployment]:
    entry = _DEPLOYED.get(device_registry)
    if entry is None:
        chain = Chain.embedded()
        deployment = deploy_suite(chain, dev_accounts(1)[0], device_registry=device_registry)
        entry = _DEPLOYED[device_registry] = (chain, deployment)
    return entry


@contextmanager
def deployed_embedded(device_registry: str = "DeviceRegistry") -> Iterator[tuple[Chain, Deployment]]:
    """The process's embedded chain with the suite deployed by dev account 0, reverted on exit.

    ``device_registry`` names the DeviceRegistry artifact (``"DeviceRegistryHarness"``: the
    TEST-ONLY harness); each kind has its own chain.
    """
    base, deployment = _deployed(device_registry)
    tester: Any = base.w3.provider.ethereum_tester  # type: ignore[attr-defined]
    snapshot = tester.take_snapshot()
    chain = Chain(w3=base.w3, chain_id=base.chain_id, embedded=True, rpc=base.rpc, timeout=base.timeout)
    try:
        yield chain, deployment
    finally:
        tester.revert_to_snapshot(snapshot)


def embedded_deployment(chain: Chain) -> Deployment | None:
    """The pool's deployment when ``chain`` is one of the pool's chains (from :func:`deployed_embedded`)."""
    for base, deployment in _DEPLOYED.values():
        if chain.w3 is base.w3:
            return deployment
    return None


@dataclass(frozen=True)
class _World(Generic[T]):
    chain: Chain
    value: T
    snapshot: int
    sim_time: int | None  # the simulated clock when the snapshot was taken (None: the wall clock)


_WORLDS: dict[str, _World[Any]] = {}


def _world(key: str, build: Callable[[Chain], T], start_time: int | None) -> _World[T]:
    """The world built under ``key`` in this process, building it (and its snapshot) on first use."""
    world = _WORLDS.get(key)
    if world is None:
        chain = Chain.embedded(start_time=start_time)
        value = build(chain)
        tester: Any = chain.w3.provider.ethereum_tester  # type: ignore[attr-defined]
        world = _WORLDS[key] = _World(
            chain=chain,
            value=value,
            snapshot=tester.take_snapshot(),
            sim_time=getattr(chain, "_sim_time", None),
        )
    return world


@contextmanager
def pooled_world(
    key: str, build: Callable[[Chain], T], *, start_time: int | None = None
) -> Iterator[tuple[Chain, T]]:
    """A world built once per process under ``key``: ``build`` run on ``Chain.embedded(start_time=...)``,
    then a snapshot; each use yields that chain and what ``build`` returned, and rolls the chain back.

    The chain object itself is handed out again (on a chain with a simulated clock, :meth:`Chain.warp`
    moves the clock of the object that built it): its clock is set back to the snapshot's and its
    cached nonces dropped on exit. ``build`` must leave nothing behind but the chain's state, and what it
    returns must not change in a test (objects that cache chain state are made per test).
    """
    world = _world(key, build, start_time)
    chain = world.chain
    try:
        yield chain, world.value
    finally:
        if world.sim_time is not None:
            chain._sim_time = world.sim_time  # the next block is stamped from it on revert
        chain.w3.provider.ethereum_tester.revert_to_snapshot(world.snapshot)  # type: ignore[attr-defined]
        chain._nonces.clear()  # the test's transactions are gone with the revert
