"""The chain state a bundle is verified against: read per bundle, or once per run for many bundles.

A bundle's verdict depends on four reads: its batch (``ReadingAnchor.batch``), its device
(``DeviceRegistry.device``), its anchoring transaction's receipt and the canonical block at that
receipt's number. Bundles of one lot share a few batches, devices and anchoring transactions, so
verifying a directory one bundle at a time reads the same state thousands of times.

- :class:`ChainReader` is the raw reads, each mapped to the verifier's errors (no code at an
  address: :class:`~auditor.errors.DeploymentMismatch`; an unknown batch:
  :class:`~auditor.errors.UnknownBatch`; the node unreachable: :class:`contracts.errors.ChainError`).
- :class:`HeadReads` is one verification's view: contract state at one block (the head when it
  started), nothing cached. ``BundleVerifier.verify`` uses one per bundle.
- :class:`RunReads` is one *run*'s view (``BundleVerifier.verify_many``): the same reads at one
  head, each batch, device, receipt and block read once and kept for the run only (never across
  runs: a device revoked later is seen by the next run). :meth:`RunReads.prefetch` reads what a
  list of bundles needs in a few JSON-RPC batch requests (``w3.batch_requests()``) where the
  provider supports them (HTTP), sequentially where it does not (the embedded eth-tester chain).

A batch request fails as a whole when one of its calls does (a revert, a missing receipt), so a
failed batch falls back to the single reads of its items, which raise or answer exactly as the
one-by-one path does: the verdicts are the same whichever way the state was read.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import requests
from eth_utils import to_checksum_address
from hexbytes import HexBytes
from web3.exceptions import BadFunctionCallOutput, BlockNotFound, Web3Exception
from web3.providers.base import JSONBaseProvider
from web3.types import BlockIdentifier, TxReceipt

from auditor._internal import hex0x
from auditor.bundle import ProofBundle
from auditor.errors import DeploymentMismatch, UnknownBatch
from contracts.chain import Chain
from contracts.errors import ChainError, ContractRevert, NodeRefused
from contracts.registry import AnchoredBatch, DeviceRecord, ReadingAnchorClient, device_id_hash

__all__ = ["BATCH_CHUNK", "ChainReader", "HeadReads", "RunReads", "read_chain"]

_T = TypeVar("_T")

#: Calls per JSON-RPC batch request (anvil and geth take a thousand; hosted nodes often cap lower).
BATCH_CHUNK = 200


def read_chain(chain: Chain, thunk: Callable[[], _T]) -> _T:
    """Run a read of ``chain``: no code at an address and an unreachable node as typed errors."""
    try:
        return thunk()
    except BadFunctionCallOutput as e:
        raise DeploymentMismatch(
            f"a contract of the deployment answered nothing on chain {chain.chain_id} "
            f"({e}): there is no code at its address; the chain was reset or the deployment "
            "file is from another network",
            what="code",
            expected="contract code",
            claimed="none",
        ) from e
    except (requests.ConnectionError, requests.Timeout, ConnectionError, TimeoutError) as e:
        raise ChainError(f"the chain at {chain.rpc} is unreachable ({e})") from e


class ChainReader:
    """The raw reads of one deployment's anchor and registry, each mapped to the verifier's errors."""

    def __init__(self, chain: Chain, anchor: ReadingAnchorClient, registry_address: str) -> None:
        self.chain = chain
        self.anchor = anchor
        self.anchor_address = to_checksum_address(anchor.contract.address)
        self.registry = chain.contract("DeviceRegistry", registry_address)

    def read(self, thunk: Callable[[], _T]) -> _T:
        """Run a chain read: no code at an address and an unreachable node as typed errors."""
        return read_chain(self.chain, thunk)

    def head(self) -> int:
        return self.read(self.chain.block_number)

    def batch_count(self, *, block: BlockIdentifier) -> int | None:
        try:
            return int(self.chain.call(self.anchor.contract.functions.batchCount(), block=block))
        except ContractRevert:
            return None

    def unknown_batch(self, batch_id: int, batch_count: int | None) -> UnknownBatch:
        return UnknownBatch(batch_id=batch_id, batch_count=batch_count, anchor=self.anchor_address)

    def read_batch(self, batch_id: int, *, block: BlockIdentifier = "latest") -> AnchoredBatch:
        """The anchored batch ``batch_id``; :class:`UnknownBatch` when there is none."""
        try:
            return self.read(lambda: self.anchor.batch(batch_id, block=block))
        except ContractRevert as e:
            if e.error_name != "ReadingAnchorUnknownBatch":
                raise
            raise self.unknown_batch(batch_id, self.batch_count(block=block)) from e

    def read_device(self, device_id: str, *, block: BlockIdentifier = "latest") -> DeviceRecord:
        """The registry's record of ``device_id`` (scheme NONE when not enrolled)."""
        did = device_id_hash(device_id)
        d = self.read(lambda: self.chain.call(self.registry.functions.device(did), block=block))
        return DeviceRecord.from_call(did, d)

    def receipt(self, tx: bytes) -> TxReceipt | None:
        """The receipt of ``tx`` in the canonical chain, or None."""
        return self.read(lambda: self.chain.receipt(hex0x(tx)))

    def block_hash(self, number: int) -> bytes | None:
        """The hash of canonical block ``number``, or None when there is none."""
        # Chain has no public block read; its request serialises the embedded chain's I/O and
        # maps transport errors, as the ledger service's own raw reads do.
        try:
            block = self.read(lambda: self.chain.block(number))
        except BlockNotFound:
            return None
        return None if block is None else bytes(block["hash"])


class HeadReads:
    """One verification's view: contract state at block ``head``, nothing kept."""

    def __init__(self, reader: ChainReader, head: int) -> None:
        self.reader = reader
        self.head = head

    def batch(self, batch_id: int) -> AnchoredBatch:
        return self.reader.read_batch(batch_id, block=self.head)

    def device(self, device_id: str) -> DeviceRecord:
        return self.reader.read_device(device_id, block=self.head)

    def receipt(self, tx: bytes) -> TxReceipt | None:
        return self.reader.receipt(tx)

    def block_hash(self, number: int) -> bytes | None:
        return self.reader.block_hash(number)


class RunReads(HeadReads):
    """One run's view: the reads of :class:`HeadReads` at one head, each made once and kept.

    Scoped to one run by construction (``BundleVerifier.verify_many`` makes one per call); a
    read not prefetched is made on first use and kept. ``round_trips`` counts the requests sent.
    """

    def __init__(self, reader: ChainReader, head: int, *, batching: bool | None = None) -> None:
        super().__init__(reader, head)
        provider = reader.chain.w3.provider
        self.batching = (
            isinstance(provider, JSONBaseProvider) and not reader.chain.is_embedded
            if batching is None
            else batching
        )
        self.round_trips = 0
        self._batches: dict[int, AnchoredBatch] = {}
        self._unknown: dict[int, int | None] = {}  # batch id -> the batch count read with it
        self._devices: dict[str, DeviceRecord] = {}
        self._receipts: dict[bytes, TxReceipt | None] = {}
        self._blocks: dict[int, bytes | None] = {}

    # ------------------------------------------------------------------ cached reads

    def batch(self, batch_id: int) -> AnchoredBatch:
        if batch_id in self._unknown:
            raise self.reader.unknown_batch(batch_id, self._unknown[batch_id])
        if batch_id not in self._batches:
            self.round_trips += 1
            try:
                self._batches[batch_id] = super().batch(batch_id)
            except UnknownBatch as e:
                self._unknown[batch_id] = e.batch_count
                raise
        return self._batches[batch_id]

    def device(self, device_id: str) -> DeviceRecord:
        if device_id not in self._devices:
            self.round_trips += 1
            self._devices[device_id] = super().device(device_id)
        return self._devices[device_id]

    def receipt(self, tx: bytes) -> TxReceipt | None:
        if tx not in self._receipts:
            self.round_trips += 1
            self._receipts[tx] = super().receipt(tx)
        return self._receipts[tx]

    def block_hash(self, number: int) -> bytes | None:
        if number not in self._blocks:
            self.round_trips += 1
            self._blocks[number] = super().block_hash(number)
        return self._blocks[number]

    # ------------------------------------------------------------------ prefetch

    def prefetch(self, bundles: Iterable[ProofBundle]) -> None:
        """Read what ``bundles`` need: their batches, devices, anchoring receipts and blocks."""
        batch_ids: set[int] = set()
        device_ids: set[str] = set()
        txs: set[bytes] = set()
        for b in bundles:
            batch_ids.add(b.batch_id)
            device_ids.add(b.reading.device_id)
            txs.add(b.anchor_tx)
        if not self.batching:
            self._sequential(batch_ids, device_ids, txs)
            return
        fns = self.reader.anchor.contract.functions
        registry = self.reader.registry.functions
        devices = sorted(d for d in device_ids if d not in self._devices)
        count_and_devices = self._fetch(
            [lambda: fns.batchCount().call(block_identifier=self.head)]
            + [self._device_call(registry, d) for d in devices],
            fallback=None,
        )
        if count_and_devices is None:  # no batch count (a revert): the single reads decide
            self._sequential(batch_ids, device_ids, txs)
            return
        count = int(count_and_devices[0])
        for d, raw in zip(devices, count_and_devices[1:], strict=True):
            self._devices[d] = DeviceRecord.from_call(device_id_hash(d), raw)
        known = sorted(i for i in batch_ids if 1 <= i <= count and i not in self._batches)
        for i in batch_ids - set(known):
            if i not in self._batches:
                self._unknown[i] = count
        pending = sorted(t for t in txs if t not in self._receipts)
        answers = self._fetch(
            [self._batch_call(fns, i) for i in known] + [self._receipt_call(t) for t in pending],
            fallback=lambda: [self.batch(i) for i in known] + [self.receipt(t) for t in pending],
        )
        assert answers is not None
        for i, raw in zip(known, answers[: len(known)], strict=True):
            self._batches[i] = (
                raw
                if isinstance(raw, AnchoredBatch)
                else AnchoredBatch(batch_id=i, root=raw[0], count=raw[1], anchored_at=raw[2])
            )
        for t, r in zip(pending, answers[len(known) :], strict=True):
            self._receipts[t] = r
        numbers = sorted(
            {int(r["blockNumber"]) for r in self._receipts.values() if r is not None} - set(self._blocks)
        )
        hashes = self._fetch(
            [self._block_call(n) for n in numbers], fallback=lambda: [self.block_hash(n) for n in numbers]
        )
        assert hashes is not None
        for n, h in zip(numbers, hashes, strict=True):
            self._blocks[n] = h if h is None or isinstance(h, bytes) else bytes(h["hash"])

    def _sequential(self, batch_ids: set[int], device_ids: set[str], txs: set[bytes]) -> None:
        for i in sorted(batch_ids):
            with contextlib.suppress(UnknownBatch):  # kept: the bundles naming it fail with it
                self.batch(i)
        for d in sorted(device_ids):
            self.device(d)
        for t in sorted(txs):
            r = self.receipt(t)
            if r is not None:
                self.block_hash(int(r["blockNumber"]))

    def _device_call(self, registry: Any, device_id: str) -> Callable[[], Any]:
        did = device_id_hash(device_id)
        return lambda: registry.device(did).call(block_identifier=self.head)

    def _batch_call(self, fns: Any, batch_id: int) -> Callable[[], Any]:
        return lambda: fns.batch(batch_id).call(block_identifier=self.head)

    def _receipt_call(self, tx: bytes) -> Callable[[], Any]:
        return lambda: self.reader.chain.w3.eth.get_transaction_receipt(HexBytes(tx))

    def _block_call(self, number: int) -> Callable[[], Any]:
        return lambda: self.reader.chain.w3.eth.get_block(number)

    def _fetch(
        self, calls: Sequence[Callable[[], Any]], *, fallback: Callable[[], list[Any]] | None
    ) -> list[Any] | None:
        """``calls`` in JSON-RPC batch requests of :data:`BATCH_CHUNK`; when one fails (a revert, a
        missing receipt or block, a node that refuses batches), ``fallback()`` reads them one by one
        (None without one). An unreachable node raises :class:`ChainError` either way."""
        out: list[Any] = []
        try:
            for start in range(0, len(calls), BATCH_CHUNK):
                out += self._execute(calls[start : start + BATCH_CHUNK])
        except (ContractRevert, NodeRefused, BlockNotFound, Web3Exception):
            return fallback() if fallback is not None else None
        return out

    def _execute(self, chunk: Sequence[Callable[[], Any]]) -> list[Any]:
        """One batch request: transport errors and reverts mapped as single reads map them."""
        self.round_trips += 1

        def send() -> list[Any]:
            with self.reader.chain.w3.batch_requests() as batch:
                for call in chunk:
                    batch.add(call())
                return list(batch.execute())

        return self.reader.read(lambda: self.reader.chain.request(send, context="JSON-RPC batch"))
