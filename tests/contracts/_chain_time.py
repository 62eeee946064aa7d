"""The chain's clock in the contract tests, on both chains (the embedded one and anvil).

Shared by the contract test modules (``from tests.contracts._chain_time import now, set_time``); not
a test module itself.
"""

from __future__ import annotations

from web3.types import RPCEndpoint

from contracts.chain import Chain

__all__ = ["now", "set_time"]


def now(chain: Chain) -> int:
    """The latest block's timestamp (what a view call sees as block.timestamp)."""
    return int(chain.block()["timestamp"])


def set_time(chain: Chain, ts: int) -> None:
    """Mine a block with timestamp ``ts`` (later transactions are mined after it)."""
    provider = chain.w3.provider
    if chain.is_embedded:
        # eth-tester mines the travel block at ts - 1; one more block lands on ts
        provider.make_request(RPCEndpoint("testing_timeTravel"), [ts])
    else:
        provider.make_request(RPCEndpoint("evm_setNextBlockTimestamp"), [ts])
    provider.make_request(RPCEndpoint("evm_mine"), [])
    assert now(chain) == ts
