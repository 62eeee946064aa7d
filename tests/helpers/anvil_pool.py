"""Worlds of the Hypothesis state machines on anvil, built once per test process (``anvil_pool``).

The state machines of tests/contracts (*_props.py, the credit line's) test a contract's own rules,
which do not depend on the node (the ``contract_logic`` rule of tests/conftest.py). Each of their
examples sends a few dozen transactions; on the embedded chain (py-evm in Python) a transaction cost
about 50-110 ms of CPU there (an estimate in two or more runs, then the run), on anvil about 10 ms of
the test process's CPU and a few ms of anvil's. :func:`fresh_anvil_world` is
:func:`embedded_pool.fresh_world` on anvil: the world is built once per process under its key on a
node of its own (not the session's, whose tests roll back to their own snapshots), and each example
starts from its snapshot.

anvil's ``evm_revert`` drops the snapshot it reverts to (and rolls the clock back by the time spent
since): each example reverts, takes the snapshot again, and sets the clock to the wall clock, as the
session node's tests do (:meth:`AnvilNode.revert`), or to a second after the snapshot's latest block
when a world moved its clock ahead of the wall clock (the device registry's, 1000 minutes on).
"""

from __future__ import annotations

import atexit
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from support import require

from contracts.anvil import AnvilNode, find_anvil
from contracts.chain import Chain

T = TypeVar("T")


@dataclass
class _World:
    node: AnvilNode
    value: Any
    snapshot: str


_WORLDS: dict[str, _World] = {}


def _stop_all() -> None:
    for world in _WORLDS.values():
        world.node.stop()


atexit.register(_stop_all)


def fresh_anvil_world(key: str, build: Callable[[Chain], T]) -> tuple[Chain, T]:
    """The world built once per process under ``key`` (``build`` run on a fresh anvil of its own), rolled
    back to its snapshot now, behind a new :class:`Chain` (no cached nonces), and what ``build`` returned.

    For a Hypothesis state machine: it calls this as each example starts (no ``with`` block surrounds an
    example), so whatever the previous example left on the chain is gone. ``build`` must leave nothing
    behind but the chain's state, and what it returns must not change in an example. Without anvil the
    test skips (fails under ``CI=true``: :func:`support.require`).
    """
    world = _WORLDS.get(key)
    if world is None:
        require(find_anvil() is not None, "anvil is not installed (run `npm ci`)")
        node = AnvilNode(hardfork="osaka").start()
        try:
            value = build(Chain.connect(node.url))
        except BaseException:
            node.stop()
            raise
        world = _WORLDS[key] = _World(node=node, value=value, snapshot=node.snapshot())
    else:
        node = world.node
        node.rpc("evm_revert", [world.snapshot])
        latest = int(node.rpc("eth_getBlockByNumber", ["latest", False])["timestamp"], 16)
        node.rpc("evm_setTime", [max(int(time.time()), latest + 1)])
        world.snapshot = node.snapshot()
    return Chain.connect(world.node.url), world.value
