"""A quicker gas estimate for the embedded chain in tests (importable as ``fast_gas``).

py-evm's default estimator (``binary_gas_search_intrinsic_tolerance``) runs a transaction about 13
times: at the intrinsic gas, at the block gas limit, then a binary search down to 21 000 gas. In the
suite that is most of the time of every embedded transaction (two thirds of a suite deployment).

:func:`estimate` runs it once at the block gas limit (a failure there raises the same error as
before, so a revert is still reported when the gas is estimated), takes the gas it used before
refunds, and checks that amount, then a little more (calls forward at most 63/64 of the gas left,
and an SSTORE needs 2 300 gas left), with one run each. The first that succeeds is the estimate:
never below what the transaction needs, and at most a few percent above (the default is up to
21 000 above). Only when none succeeds is py-evm's own search used.

:func:`install` makes it the estimator of every py-evm chain built afterwards in this process
(``tests/conftest.py`` calls it; ``SUPET_TEST_EXACT_GAS=1`` keeps py-evm's). Subprocesses are not
affected.
"""

from __future__ import annotations

from typing import Any, cast

from eth.abc import ComputationAPI, SignedTransactionAPI, StateAPI
from eth.chains.base import Chain as EvmChain
from eth.estimators.gas import binary_gas_search_intrinsic_tolerance
from eth.vm.spoof import SpoofTransaction
from eth_utils import ValidationError


def _run(state: StateAPI, transaction: SignedTransactionAPI, gas: int, **kw: Any) -> ComputationAPI:
    snapshot = state.snapshot()
    try:
        return state.apply_transaction(
            cast(SignedTransactionAPI, SpoofTransaction(transaction, gas=gas, **kw))
        )
    finally:
        state.revert(snapshot)


def _succeeds(state: StateAPI, transaction: SignedTransactionAPI, gas: int) -> bool:
    try:
        return not _run(state, transaction, gas).is_error
    except ValidationError:  # below the intrinsic gas or the calldata floor
        return False


def estimate(state: StateAPI, transaction: SignedTransactionAPI) -> int:
    """The gas ``transaction`` needs in ``state`` (see the module's docstring)."""
    if not hasattr(transaction, "sender"):
        return int(binary_gas_search_intrinsic_tolerance(state, transaction))  # its own clear TypeError
    at_limit = _run(state, transaction, state.gas_limit, gas_price=0)
    if at_limit.is_error:
        raise at_limit.error
    used = int(transaction.intrinsic_gas) + int(at_limit.get_gas_used())
    for gas in (used, used * 64 // 63 + 2_300, used * 64**2 // 63**2 + 2_300, used * 64**4 // 63**4 + 5_000):
        if gas >= state.gas_limit:
            break
        if _succeeds(state, transaction, gas):
            return gas
    return int(binary_gas_search_intrinsic_tolerance(state, transaction))


def install() -> None:
    """Use :func:`estimate` for the py-evm chains built from now on in this process."""
    EvmChain.gas_estimator = staticmethod(estimate)  # type: ignore[assignment]
