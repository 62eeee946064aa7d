"""The embedded chain's gas estimate (contracts/embedded_chain.py ``estimate_gas_in_two_runs``): a
transaction sent with exactly the estimate (no margin) does what it did at the block's limit, however
deep its calls nest (each forwarding only 63/64 of the gas left, EIP-150), and the estimate stays close
to the gas used. (One run at the limit with a margin for the nesting is not enough: a call with an
explicit gas amount, as Receivables' caught payment push, can fail at less gas and send the
transaction down a dearer path; the confirming run finds that.)"""

from __future__ import annotations

from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from eth_tester.exceptions import TransactionFailed

from contracts.chain import Chain, dev_accounts

#: A contract calling itself ``n`` deep (``n`` = the first calldata word, each frame forwarding all
#: the gas it may: ``CALL(gas(), this, ...)``), then storing 1 at slot ``n`` after its call returned,
#: so every frame needs gas left after its callee; a failed call reverts the caller (nothing swallowed).
_END, _REVERT = 0x20, 0x28
RUNTIME = bytes.fromhex(
    "600035"  # n = calldataload(0)
    "8015"
    + f"60{_END:02x}57"  # if n == 0: jump to end
    "6001900360005 2".replace(" ", "")  # mstore(0, n - 1)
    + "6000600060206000600030 5af1".replace(" ", "")  # call(gas, this, 0, 0, 32, 0, 0)
    + "15"
    + f"60{_REVERT:02x}57"  # failed: revert
    + "5b600160003555 00".replace(" ", "")  # end: sstore(n, 1); stop
    + "5b600080fd"  # revert(0, 0)
)
INIT = bytes.fromhex(f"60{len(RUNTIME):02x}80600b6000396000f3") + RUNTIME


@pytest.fixture(scope="module")
def evm() -> Chain:
    """The embedded chain alone (the estimator under test is its own; anvil has its own)."""
    return Chain.embedded()


@pytest.fixture(scope="module")
def sender() -> LocalAccount:
    return dev_accounts(1)[0]


def _send(evm: Chain, sender: LocalAccount, tx: dict[str, Any], gas: int) -> Any:
    w3 = evm.w3
    signed = sender.sign_transaction(
        {
            **tx,
            "from": sender.address,
            "gas": gas,
            "nonce": w3.eth.get_transaction_count(sender.address),
            "chainId": evm.chain_id,
            "maxFeePerGas": w3.eth.gas_price * 2,
            "maxPriorityFeePerGas": 1,
        }
    )
    return w3.eth.wait_for_transaction_receipt(w3.eth.send_raw_transaction(signed.raw_transaction))


@pytest.fixture(scope="module")
def recursive(evm: Chain, sender: LocalAccount) -> str:
    tx = {"data": INIT, "value": 0}
    gas = evm.w3.eth.estimate_gas({**tx, "from": sender.address})
    receipt = _send(evm, sender, tx, gas)
    assert receipt["status"] == 1
    address = str(receipt["contractAddress"])
    assert bytes(evm.w3.eth.get_code(address)) == RUNTIME
    return address


@pytest.mark.parametrize("depth", [0, 1, 4, 12, 60])
def test_a_transaction_sent_with_exactly_the_estimate_does_what_it_did_at_the_limit(
    evm: Chain, sender: LocalAccount, recursive: str, depth: int
) -> None:
    tx = {"to": recursive, "data": depth.to_bytes(32, "big"), "value": 0}
    estimate = evm.w3.eth.estimate_gas({**tx, "from": sender.address})
    receipt = _send(evm, sender, tx, estimate)
    assert receipt["status"] == 1
    for n in range(depth + 1):  # every frame stored its slot: no call ran short of gas
        assert int.from_bytes(evm.w3.eth.get_storage_at(recursive, n), "big") == 1
    used = receipt["gasUsed"]
    assert used <= estimate <= used * 1.25 + 25_000  # close (py-evm's own search: within 21,000)


def test_a_transaction_that_fails_at_the_limit_is_refused_when_estimated(
    evm: Chain, sender: LocalAccount, recursive: str
) -> None:
    # depth beyond the EVM's 1,024 frames (and the 63/64 rule's reach): the innermost call fails,
    # every caller reverts, and the estimate says so before anything is sent
    nonce = evm.w3.eth.get_transaction_count(sender.address)
    with pytest.raises(TransactionFailed, match="revert"):
        evm.w3.eth.estimate_gas(
            {"to": recursive, "data": (2_000).to_bytes(32, "big"), "from": sender.address, "value": 0}
        )
    assert evm.w3.eth.get_transaction_count(sender.address) == nonce
