"""The embedded chain: an in-process EVM (eth-tester + py-evm) with anvil's development accounts.

:func:`embedded_web3` builds it (chain id 31337 and the accounts of :data:`DEV_MNEMONIC`, so the
embedded chain and a fresh anvil give the same addresses and the same EIP-712 domains) with a quick
``eth_getLogs`` (:func:`index_logs`). :meth:`contracts.chain.Chain.embedded` wraps it; code outside
``contracts`` imports :func:`dev_accounts` from :mod:`contracts.chain`.
"""

from __future__ import annotations

from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from contracts.embedded_p256 import vm_with_p256verify

__all__ = ["DEV_MNEMONIC", "EMBEDDED_CHAIN_ID", "dev_accounts", "embedded_web3", "index_logs"]

#: anvil's (and hardhat's) default development mnemonic. Its keys are public:
#: development and tests only.
DEV_MNEMONIC = "test test test test test test test test test test test junk"
#: The chain id of the embedded chain (anvil's default too).
EMBEDDED_CHAIN_ID = 31337

Account.enable_unaudited_hdwallet_features()


def dev_accounts(count: int = 10) -> list[LocalAccount]:
    """The first ``count`` accounts of :data:`DEV_MNEMONIC` (public keys: never for real funds)."""
    return [Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}") for i in range(count)]


def embedded_web3(chain_id: int, start_time: int | None) -> tuple[Web3, Any]:
    """A fresh in-process chain (py-evm, Prague rules plus Osaka's P256VERIFY precompile at ``0x100``:
    :mod:`contracts.embedded_p256`) funding :func:`dev_accounts`, and its backend.

    With ``start_time`` (Unix seconds) the genesis block is stamped at that time.
    """
    from eth_tester import EthereumTester, PyEVMBackend
    from web3.providers.eth_tester import EthereumTesterProvider
    from web3.providers.eth_tester.defaults import API_ENDPOINTS, static_return

    genesis = None
    if start_time is not None:
        genesis = PyEVMBackend.generate_genesis_params(overrides={"timestamp": int(start_time)})
    backend = PyEVMBackend.from_mnemonic(
        DEV_MNEMONIC,
        num_accounts=10,
        hd_path="m/44'/60'/0'/0",
        genesis_parameters=genesis,
        vm_configuration=((0, vm_with_p256verify()),),
    )
    # eth-tester hard-codes its chain id on the chain class; the VM reads it per block
    # from the instance, so an instance attribute sets the id the EVM and signatures use.
    backend.chain.chain_id = chain_id
    backend.chain.gas_estimator = estimate_gas_in_two_runs
    endpoints = {group: dict(methods) for group, methods in API_ENDPOINTS.items()}
    endpoints["eth"]["chainId"] = static_return(chain_id)
    endpoints["net"]["version"] = static_return(str(chain_id))
    tester = EthereumTester(backend)
    index_logs(tester, backend)
    provider = EthereumTesterProvider(tester, api_endpoints=endpoints)
    return Web3(provider), backend


def estimate_gas_in_two_runs(state: Any, transaction: Any) -> int:
    """The embedded chain's ``eth_estimateGas``: the gas a transaction uses given the block's limit,
    confirmed by a second run at that gas (or, when a call's gas depends on the gas left, at that plus
    the all-but-one-64th rule's margin, EIP-150).

    py-evm's own estimator is a binary search between the intrinsic gas and the block's limit, to within
    21,000 gas: about 13 runs of the transaction, each a full run of the EVM in Python. Two runs give an
    estimate as safe (the confirming run proves it suffices) and closer (to the gas, not to 21,000); what
    a transaction costs is unchanged (gas used does not depend on the limit). When neither candidate
    suffices, the binary search decides. A transaction that fails at the block's limit raises its error,
    as py-evm's does: the caller learns of a revert before anything is sent.
    """
    from eth.estimators.gas import binary_gas_search_intrinsic_tolerance
    from eth.vm.spoof import SpoofTransaction

    def run(gas: int) -> Any:
        snapshot = state.snapshot()
        try:
            computation = state.apply_transaction(SpoofTransaction(transaction, gas=gas, gas_price=0))
        finally:
            state.revert(snapshot)
        return computation

    limit = int(state.gas_limit)
    full = run(limit)
    if full.is_error:
        raise full.error
    used = max(int(transaction.intrinsic_gas), limit - int(full.get_gas_remaining()))  # before refunds
    for guess in (used, min(limit, used * 64 // 63 + 5_000)):
        if guess == limit or not run(guess).is_error:
            return guess
    return int(binary_gas_search_intrinsic_tolerance(state, transaction))


def index_logs(tester: Any, backend: Any) -> None:
    """Give the embedded chain an ``eth_getLogs`` that reads each block's logs once.

    eth-tester rebuilds every block and every receipt of the range on each call (seconds per call on a
    chain of a thousand blocks). Here each block's decoded logs are kept by block hash, which names the
    block's contents: a block replaced by a snapshot revert or a reorg has another hash and is read
    anew. The filtering is eth-tester's own.
    """
    from functools import partial

    from eth.exceptions import HeaderNotFound
    from eth_tester.utils.filters import Filter, check_if_log_matches

    cache: dict[bytes, list[Any]] = {}
    chaindb = backend.chain.chaindb

    def get_logs(
        from_block: Any = None, to_block: Any = None, address: Any = None, topics: Any = None
    ) -> Any:
        tester.validator.validate_inbound_filter_params(
            from_block=from_block, to_block=to_block, address=address, topics=topics
        )
        raw_from, raw_to, raw_address, raw_topics = tester.normalizer.normalize_inbound_filter_params(
            from_block=from_block, to_block=to_block, address=address, topics=topics
        )
        params = {"from_block": raw_from, "to_block": raw_to, "addresses": raw_address, "topics": raw_topics}
        log_filter = Filter(filter_params=params, filter_fn=partial(check_if_log_matches, **params))
        lower = (
            raw_from
            if isinstance(raw_from, int)
            else tester.get_block_by_number(raw_from or "latest")["number"]
        )
        upper = (
            raw_to if isinstance(raw_to, int) else tester.get_block_by_number(raw_to or "latest")["number"]
        )
        for number in range(lower, upper + 1):
            try:
                key: bytes | None = bytes(chaindb.get_canonical_block_hash(number))
            except HeaderNotFound:  # the pending block has no canonical hash yet: read it, uncached
                key = None
            entries = cache.get(key) if key is not None else None
            if entries is None:
                entries = []
                block = tester.get_block_by_number(number)
                for tx_hash in block["transactions"]:
                    for log_entry in tester.get_transaction_receipt(tx_hash)["logs"]:
                        entries.append(tester.normalizer.normalize_inbound_log_entry(log_entry))
                if key is not None:
                    cache[key] = entries
            for entry in entries:
                log_filter.add(entry)
        return [tester.normalizer.normalize_outbound_log_entry(item) for item in log_filter.get_all()]

    tester.get_logs = get_logs
