"""One small chain-access layer: the embedded chain or any JSON-RPC node.

- :meth:`Chain.embedded` runs an in-process EVM (eth-tester + py-evm) with chain id
  31337 and anvil's default development accounts, so the embedded chain and a
  fresh anvil give the same addresses and the same EIP-712 domains (its set-up is in
  :mod:`contracts.embedded_chain`; :func:`dev_accounts` is importable from here).
- :meth:`Chain.connect` talks to any EVM JSON-RPC URL.

Transactions are signed locally, nonces are managed here (one lock per sender),
gas is estimated first so a transaction that would revert is never sent, receipts
are awaited with a timeout, and every revert becomes a :class:`ContractRevert`
naming the contract's custom error and its arguments.
"""

from __future__ import annotations

import ast
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import requests
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from eth_utils import to_checksum_address
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractConstructor, ContractFunction
from web3.exceptions import (
    ContractLogicError,
    TransactionNotFound,
    Web3Exception,
    Web3RPCError,
)
from web3.types import BlockIdentifier, Nonce, TxParams, TxReceipt

from contracts.artifacts import load_artifact
from contracts.embedded_chain import EMBEDDED_CHAIN_ID, dev_accounts, embedded_web3
from contracts.errors import ChainError, ContractRevert, NodeRefused, TransactionTimeout
from contracts.revert import decode_revert


class _NeverRaised(Exception):
    """Stands for eth-tester's revert where eth-tester was never imported (a JSON-RPC chain)."""


def _eth_tester_failed() -> type[Exception]:
    """eth-tester's ``TransactionFailed`` (the embedded chain's form of a revert), or a class nothing
    raises when eth-tester is not loaded: only the embedded chain loads it (``embedded_web3``), so a
    service on a JSON-RPC node starts without importing py-evm (about a second of CPU)."""
    module = sys.modules.get("eth_tester.exceptions")
    failed = getattr(module, "TransactionFailed", None) if module is not None else None
    return failed if isinstance(failed, type) and issubclass(failed, Exception) else _NeverRaised


__all__ = ["EMBEDDED_CHAIN_ID", "Chain", "TxResult", "addresses", "dev_accounts"]

T = TypeVar("T")


def _revert_data(err: BaseException) -> bytes:
    """The revert payload carried by a web3 or eth-tester exception (or its causes)."""
    seen: BaseException | None = err
    while seen is not None:
        data = getattr(seen, "data", None)
        if isinstance(data, str) and data.startswith("0x"):
            return bytes.fromhex(data[2:])
        if isinstance(data, bytes | bytearray) and data:
            return bytes(data)
        if seen.args and isinstance(seen.args[0], bytes | bytearray):
            return bytes(seen.args[0])
        if seen.args and isinstance(seen.args[0], str):
            # eth-tester's eth_call path: "execution reverted: b'...'" (a bytes repr)
            _, sep, literal = seen.args[0].partition("execution reverted: ")
            if sep and literal.startswith(("b'", 'b"')):
                value = ast.literal_eval(literal)
                if isinstance(value, bytes):
                    return value
        seen = seen.__cause__ or seen.__context__
    return b""


@dataclass(frozen=True, kw_only=True)
class TxResult:
    """A mined, successful transaction."""

    tx_hash: str
    block_number: int
    block_hash: str
    gas_used: int
    receipt: TxReceipt
    contract_address: ChecksumAddress | None = None


class Chain:
    """Access to one chain. Build it with :meth:`embedded` or :meth:`connect`."""

    def __init__(self, *, w3: Web3, chain_id: int, embedded: bool, rpc: str, timeout: float) -> None:
        self.w3 = w3
        self.chain_id = chain_id
        self.is_embedded = embedded
        self._first_account: ChecksumAddress | None = None
        self.rpc = rpc
        self.timeout = timeout
        self._nonces: dict[str, int] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        # eth-tester is not thread-safe: on the embedded chain every request is serialised.
        self._io_lock: threading.RLock | None = threading.RLock() if embedded else None
        # web3 objects for (artifact, address), built once: building one walks the whole ABI (about 60 ms
        # for ParticipantRegistry's), and the service builds a client for nearly every request it answers.
        self._contracts: dict[tuple[str, str], Contract] = {}

    # ------------------------------------------------------------------ factories

    @classmethod
    def embedded(
        cls, *, chain_id: int = EMBEDDED_CHAIN_ID, timeout: float = 30.0, start_time: int | None = None
    ) -> Chain:
        """A fresh in-process chain (py-evm, Prague rules) funding :func:`dev_accounts`.

        With ``start_time`` (Unix seconds, in the past) the chain keeps a *simulated clock*: its
        genesis is at ``start_time`` and every later block is stamped with that clock (at least
        one second after its parent) until :meth:`warp` moves it forward. Simulations use it to
        replay a past week with on-chain times that agree with the readings' times.
        """
        w3, backend = embedded_web3(chain_id, start_time)
        chain = cls(w3=w3, chain_id=chain_id, embedded=True, rpc="embedded", timeout=timeout)
        if start_time is not None:
            chain._install_clock(backend, int(start_time))
        return chain

    def _install_clock(self, backend: Any, start_time: int) -> None:
        evm = backend.chain
        self._sim_time = start_time
        self._evm = evm
        create = evm.create_header_from_parent

        def stamped(parent: Any, **params: Any) -> Any:
            params.setdefault("timestamp", max(int(parent.timestamp) + 1, self._sim_time))
            return create(parent, **params)

        evm.create_header_from_parent = stamped
        parent = evm.get_canonical_head()
        evm.header = evm.header.copy(timestamp=max(int(parent.timestamp) + 1, start_time))

    @property
    def can_warp(self) -> bool:
        """Whether :meth:`warp` can set this chain's time (a simulated embedded chain, or anvil)."""
        return getattr(self, "_sim_time", None) is not None or not self.is_embedded

    def warp(self, timestamp: int) -> None:
        """Move the chain's clock forward: the next block is stamped ``timestamp`` (Unix seconds).

        On the simulated embedded chain the clock stays there until the next warp; on anvil this is
        ``evm_setNextBlockTimestamp``. Moving backwards past the latest block is refused.
        """
        latest = int(self.block("latest")["timestamp"])
        if timestamp <= latest:
            raise ChainError(
                f"cannot move the chain's time back to {timestamp}: the latest block is at {latest}"
            )
        if getattr(self, "_sim_time", None) is not None:
            assert self._io_lock is not None
            with self._io_lock:
                self._sim_time = timestamp
                self._evm.header = self._evm.header.copy(timestamp=timestamp)
            return
        if self.is_embedded:
            raise ChainError("this embedded chain has no simulated clock: build it with start_time")
        self.request(
            lambda: self.w3.provider.make_request("evm_setNextBlockTimestamp", [timestamp]),  # type: ignore[arg-type]
            context="evm_setNextBlockTimestamp",
        )

    @classmethod
    def connect(cls, url: str, *, timeout: float = 30.0, expected_chain_id: int | None = None) -> Chain:
        """Connect to a JSON-RPC node; :class:`ChainError` when it does not answer.

        With ``expected_chain_id`` (a service that knows its deployment), an unreachable node is
        not an error: the chain object is made with that id, and calls fail with
        :class:`ChainError` until the node is back.
        """
        w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": min(timeout, 10.0)}))
        # The validation middleware asks the node for eth_chainId twice per eth_call and transaction;
        # we sign locally with the chain id read once below, so it only costs round trips. ENS names
        # are never used here.
        for name in ("validation", "ens_name_to_address"):
            w3.middleware_onion.remove(name)
        try:
            chain_id = w3.eth.chain_id
        except (requests.RequestException, Web3Exception, OSError, ValueError) as e:
            if expected_chain_id is not None:
                return cls(w3=w3, chain_id=expected_chain_id, embedded=False, rpc=url, timeout=timeout)
            raise ChainError(
                f"the chain at {url} did not answer eth_chainId ({type(e).__name__}: {e}); "
                "check the URL and that the node is running"
            ) from e
        return cls(w3=w3, chain_id=chain_id, embedded=False, rpc=url, timeout=timeout)

    @classmethod
    def from_rpc(cls, rpc: str, *, timeout: float = 30.0) -> Chain:
        """``"embedded"`` for the in-process chain, otherwise a JSON-RPC URL."""
        if rpc == "embedded":
            return cls.embedded(timeout=timeout)
        if not rpc.startswith(("http://", "https://")):
            raise ChainError(f"--rpc must be 'embedded' or an http(s) JSON-RPC URL, not {rpc!r}")
        return cls.connect(rpc, timeout=timeout)

    # ------------------------------------------------------------------ contracts

    def contract(self, name: str, address: str) -> Contract:
        """A web3 contract object for artifact ``name`` at ``address`` (one per pair, kept: it holds no state
        beyond the address and the ABI)."""
        key = (name, to_checksum_address(address))
        contract = self._contracts.get(key)
        if contract is None:
            contract = self.w3.eth.contract(address=key[1], abi=load_artifact(name).abi)
            self._contracts[key] = contract
        return contract

    def deploy(self, name: str, sender: LocalAccount, *args: Any, gas: int | None = None) -> TxResult:
        """Deploy artifact ``name`` with constructor ``args``; the result has ``contract_address``."""
        art = load_artifact(name)
        factory = self.w3.eth.contract(abi=art.abi, bytecode=art.bytecode)
        return self.transact(factory.constructor(*args), sender, gas=gas, context=f"{name} constructor")

    # ------------------------------------------------------------------ calls

    def call(self, fn: ContractFunction, *, block: BlockIdentifier = "latest") -> Any:
        """Call a view function; a revert raises :class:`ContractRevert`."""
        params = self._default_from()
        return self.request(lambda: fn.call(params, block_identifier=block), context=_describe(fn))

    def estimate_gas(self, fn: ContractFunction, sender: str | None = None) -> int:
        """Gas a call would use (views included); a revert raises :class:`ContractRevert`."""
        params: TxParams = {"from": to_checksum_address(sender)} if sender else self._default_from()
        return int(self.request(lambda: fn.estimate_gas(params), context=_describe(fn)))

    def _default_from(self) -> TxParams:
        """On the embedded chain, the sender web3 would guess for a call without one (its first
        account), given once: web3's eth-tester middleware guesses it on every call by listing the
        accounts three times (about a quarter of an embedded view call). Elsewhere nothing: the node
        decides, as before."""
        if not self.is_embedded:
            return {}
        if self._first_account is None:
            accounts = self.request(lambda: self.w3.eth.accounts, context="eth_accounts")
            self._first_account = accounts[0] if accounts else None
        return {"from": self._first_account} if self._first_account else {}

    # ------------------------------------------------------------------ transactions

    def transact(
        self,
        fn: ContractFunction | ContractConstructor,
        sender: LocalAccount,
        *,
        gas: int | None = None,
        timeout: float | None = None,
        confirmations: int = 0,
        context: str | None = None,
    ) -> TxResult:
        """Sign, send and wait for ``fn``; raise :class:`ContractRevert` if it would revert or did.

        Gas is estimated first (with a 20% margin), so a transaction that would revert
        is refused before it is sent and nothing changes on chain.
        """
        ctx = context or _describe(fn)
        tx_hash = self.send(fn, sender, gas=gas, context=ctx)
        return self.wait(tx_hash, timeout=timeout, confirmations=confirmations, context=ctx)

    def send(
        self,
        fn: ContractFunction | ContractConstructor,
        sender: LocalAccount,
        *,
        gas: int | None = None,
        context: str | None = None,
    ) -> str:
        """Sign and send ``fn`` without waiting; return the transaction hash."""
        ctx = context or _describe(fn)
        address = sender.address
        base: TxParams = {"from": address, "chainId": self.chain_id}
        if gas is None:
            gas = int(self.request(lambda: fn.estimate_gas(base), context=ctx) * 1.2) + 10_000
        with self._lock_for(address):
            nonce = self._next_nonce(address)
            params: TxParams = {**base, "nonce": Nonce(nonce), "gas": gas}
            tx = self.request(lambda: fn.build_transaction(params), context=ctx)
            signed = sender.sign_transaction(cast(Any, tx))
            try:
                tx_hash = self.request(
                    lambda: self.w3.eth.send_raw_transaction(signed.raw_transaction), context=ctx
                )
            except ChainError:
                self._nonces.pop(address, None)  # resynchronise from the node next time
                raise
            self._nonces[address] = nonce + 1
        return HexBytes(tx_hash).to_0x_hex()

    def transfer_value(self, sender: LocalAccount, to: str, value_wei: int) -> TxResult:
        """Send ``value_wei`` of the chain's native currency (to fund a party's gas) and wait."""
        address = sender.address
        with self._lock_for(address):
            nonce = self._next_nonce(address)
            gas_price = int(self.request(lambda: self.w3.eth.gas_price, context="eth_gasPrice"))
            tx: dict[str, Any] = {
                "from": address,
                "to": to_checksum_address(to),
                "value": value_wei,
                "gas": 21_000,
                "gasPrice": gas_price * 2,
                "nonce": nonce,
                "chainId": self.chain_id,
            }
            signed = sender.sign_transaction(tx)
            try:
                tx_hash = self.request(
                    lambda: self.w3.eth.send_raw_transaction(signed.raw_transaction), context="transfer"
                )
            except ChainError:
                self._nonces.pop(address, None)
                raise
            self._nonces[address] = nonce + 1
        return self.wait(HexBytes(tx_hash).to_0x_hex(), context="transfer")

    def wait(
        self,
        tx_hash: str,
        *,
        timeout: float | None = None,
        confirmations: int = 0,
        context: str = "transaction",
        poll: float = 0.05,
    ) -> TxResult:
        """Wait for a receipt (and ``confirmations`` blocks on top of it)."""
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        while True:
            try:
                found = self.receipt(tx_hash)
            except ChainError as e:
                raise ChainError(f"{context}: lost the chain while waiting for {tx_hash}: {e}") from e
            if found is not None:
                receipt = found
                break
            if time.monotonic() > deadline:
                raise TransactionTimeout(
                    f"{context}: no receipt for {tx_hash} after {limit:.0f}s; it may still be mined "
                    "or may have been dropped: check the node, then retry"
                )
            time.sleep(poll)
        if receipt["status"] != 1:
            raise self._explain_failed(tx_hash, receipt, context)
        if confirmations > 0:
            deadline = time.monotonic() + limit
            while self.block_number() < receipt["blockNumber"] + confirmations:
                if time.monotonic() > deadline:
                    raise TransactionTimeout(
                        f"{context}: {tx_hash} mined but not {confirmations} blocks deep after {limit:.0f}s"
                    )
                time.sleep(poll)
        address = receipt.get("contractAddress")
        return TxResult(
            tx_hash=HexBytes(tx_hash).to_0x_hex(),
            block_number=receipt["blockNumber"],
            block_hash=HexBytes(receipt["blockHash"]).to_0x_hex(),
            gas_used=receipt["gasUsed"],
            receipt=receipt,
            contract_address=to_checksum_address(address) if address else None,
        )

    def receipt(self, tx_hash: str) -> TxReceipt | None:
        """The receipt of ``tx_hash`` if it is mined in the current canonical chain, else None."""
        try:
            return self.request(
                lambda: self.w3.eth.get_transaction_receipt(HexBytes(tx_hash)), context="receipt"
            )
        except TransactionNotFound:
            return None

    def block(self, number: BlockIdentifier = "latest") -> Any:
        """A block (header fields: ``number``, ``hash``, ``timestamp``...)."""
        return self.request(lambda: self.w3.eth.get_block(number), context="eth_getBlockByNumber")

    def block_number(self) -> int:
        """The latest block number."""
        return int(self.request(lambda: self.w3.eth.block_number, context="eth_blockNumber"))

    def reset_nonce(self, address: str) -> None:
        """Forget the cached nonce of ``address`` (after a reorg or an external send)."""
        self._nonces.pop(to_checksum_address(address), None)

    # ------------------------------------------------------------------ internals

    def _lock_for(self, address: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(address, threading.Lock())

    def _next_nonce(self, address: ChecksumAddress) -> int:
        cached = self._nonces.get(address)
        if cached is None:
            cached = int(
                self.request(
                    lambda: self.w3.eth.get_transaction_count(address, "pending"),
                    context="eth_getTransactionCount",
                )
            )
        return cached

    def _explain_failed(self, tx_hash: str, receipt: TxReceipt, context: str) -> ContractRevert:
        tx = self.request(lambda: self.w3.eth.get_transaction(HexBytes(tx_hash)), context=context)
        replay: TxParams = {"from": tx["from"], "data": tx["input"], "value": tx["value"]}
        if tx.get("to"):
            replay["to"] = tx["to"]
        try:
            self.request(
                lambda: self.w3.eth.call(replay, block_identifier=receipt["blockNumber"] - 1), context=context
            )
        except ContractRevert as e:
            return decode_revert(e.data, context=f"{context} (tx {tx_hash})")
        return ContractRevert(
            f"{context}: transaction {tx_hash} failed (status 0) and its replay did not revert; "
            "it probably ran out of gas",
            contract=None,
            error_name=None,
        )

    def request(self, thunk: Callable[[], T], *, context: str) -> T:
        """Run a web3 call: serialised on the embedded chain, reverts and outages as our errors."""
        if self._io_lock is not None:
            with self._io_lock:
                return self._request_unlocked(thunk, context=context)
        return self._request_unlocked(thunk, context=context)

    def _request_unlocked(self, thunk: Callable[[], T], *, context: str) -> T:
        try:
            return thunk()
        except ContractLogicError as e:
            raise decode_revert(_revert_data(e), context=context) from e
        except _eth_tester_failed() as e:  # the embedded chain's form of a revert
            raise decode_revert(_revert_data(e), context=context) from e
        except TransactionNotFound:
            raise  # an answer, not a refusal: receipt() turns it into None
        except Web3RPCError as e:  # the node refused: nonce too low, already known, underpriced...
            raise NodeRefused(f"{context}: the node at {self.rpc} refused the request ({e})") from e
        except (requests.ConnectionError, requests.Timeout, ConnectionError, TimeoutError) as e:
            raise ChainError(f"{context}: the chain at {self.rpc} is unreachable ({e})") from e


def _describe(fn: ContractFunction | ContractConstructor) -> str:
    name = getattr(fn, "fn_name", None) or "constructor"
    address = getattr(fn, "address", None)
    return f"{name}" + (f" at {address}" if address else "")


def addresses(accounts: Sequence[LocalAccount]) -> list[ChecksumAddress]:
    """The checksummed addresses of ``accounts``."""
    return [to_checksum_address(a.address) for a in accounts]
