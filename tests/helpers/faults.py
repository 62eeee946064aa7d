"""Helpers of the anchoring fault tests (importable as ``faults``: tests/helpers is on sys.path).

- :func:`wait_for`: poll a condition with a deadline and a clear failure message;
- :func:`own_anvil`: a private anvil node per test (the tests stop, restart and reorg it);
- :class:`Fleet`: enrolled devices that sign readings deterministically;
- :func:`assert_exactly_once`: the guarantee under test, checked against the store and the chain.
"""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from hexbytes import HexBytes
from sqlalchemy import Engine, func, select
from sqlmodel import col
from support import TestConsortium, require

from contracts.anvil import AnvilNode, find_anvil
from contracts.chain import Chain, dev_accounts
from contracts.deploy import deploy_suite
from contracts.deployment import Deployment
from contracts.registry import ReadingAnchorClient
from device_attestation.merkle import MerkleTree, verify_inclusion
from device_attestation.sdk import DeviceSigner, Submission
from ledger_service.config import Settings
from ledger_service.service import LedgerService
from ledger_service.store.batch_status import BatchStatus
from ledger_service.store.batch_tree import encode_tree
from ledger_service.store.models import BatchRow, ReadingRow

T = TypeVar("T")


def wait_for(
    condition: Callable[[], T],
    *,
    timeout: float,
    what: str,
    interval: float = 0.05,
    detail: Callable[[], object] | None = None,
) -> T:
    """Poll ``condition`` until it returns something truthy; fail naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            extra = f"; state: {detail()}" if detail is not None else ""
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}{extra}")
        time.sleep(interval)


# ---------------------------------------------------------------- chain


@contextmanager
def own_anvil(state_file: Path | None = None, *, extra_args: tuple[str, ...] = ()) -> Iterator[AnvilNode]:
    """A fresh anvil on a free port for one test, killed at the end whatever happened."""
    require(find_anvil() is not None, "anvil is not installed (run `npm ci`)")
    node = AnvilNode(state_file=state_file, extra_args=extra_args).start()
    try:
        yield node
    finally:
        node.stop(sig=signal.SIGKILL, timeout=5)


@dataclass
class Deployed:
    """The suite on a test's own anvil, a deployment file, and a consortium to enroll devices."""

    node: AnvilNode
    chain: Chain
    deployment: Deployment
    deployment_file: Path
    consortium: TestConsortium

    @property
    def anchor(self) -> ReadingAnchorClient:
        return ReadingAnchorClient(self.chain, self.deployment)


def deploy_on(node: AnvilNode, tmp_path: Path) -> Deployed:
    chain = Chain.connect(node.url, timeout=10)
    deployment = deploy_suite(chain, dev_accounts(1)[0])
    path = tmp_path / "deployment.json"
    deployment.save(path)
    return Deployed(
        node=node,
        chain=chain,
        deployment=deployment,
        deployment_file=path,
        consortium=TestConsortium(chain, deployment),
    )


# ---------------------------------------------------------------- devices and readings


class Fleet:
    """A few enrolled devices (both schemes) producing readings round-robin, values from a fixed seed."""

    def __init__(
        self, consortium: TestConsortium, count: int = 2, *, seed: int = 7, prefix: str = "FLT"
    ) -> None:
        schemes = ("p256", "secp256k1")
        self.devices: list[DeviceSigner] = [
            consortium.enroll(f"{prefix}-{i}", schemes[i % 2]) for i in range(count)
        ]
        self.rng = random.Random(seed)
        self._next = 0

    def sign(self, n: int) -> list[Submission]:
        out = []
        for _ in range(n):
            device = self.devices[self._next % len(self.devices)]
            self._next += 1
            metrics = {"temp_c": round(self.rng.uniform(-20, 40), 3), "good_units": self.rng.randrange(1000)}
            out.append(device.sign(metrics, ts_ms=int(time.time() * 1000) - 100))
        return out


def submit_all(service: LedgerService, subs: Sequence[Submission]) -> set[bytes]:
    """Submit in-process; every one must be accepted (ingest never depends on the chain)."""
    results = service.pipeline.submit([s.to_json_obj() for s in subs], source="http")
    refused = [(r.index, r.code, r.message) for r in results if not r.accepted]
    assert not refused, f"ingest refused readings: {refused[:3]}"
    return {s.digest for s in subs}


def in_process_service(
    deployed: Deployed, db_url: str, *, chain: Chain | None = None, **overrides: Any
) -> LedgerService:
    """A built (not started) service on the test's anvil: in-process checks, small fast batches."""
    values: dict[str, Any] = {
        "chain": deployed.node.url,
        "deployment": deployed.deployment_file,
        "database_url": db_url,
        "verify_workers": 0,
        "registry_refresh_seconds": 0,
        "batch_max_readings": 20,
        "batch_max_seconds": 0.3,
        "anchor_timeout_seconds": 10,
    }
    values.update(overrides)
    settings = Settings(_env_file=None, **values)  # type: ignore[call-arg]
    return LedgerService.build(
        settings,
        chain=chain or Chain.connect(deployed.node.url, timeout=settings.anchor_timeout_seconds),
        deployment=deployed.deployment,
    )


# ---------------------------------------------------------------- the guarantee


def batches(engine: Engine) -> list[BatchRow]:
    with engine.connect() as conn:
        table = BatchRow.__table__  # type: ignore[attr-defined]
        rows = conn.execute(select(table).order_by(table.c.id)).all()
    return [BatchRow(**row._mapping) for row in rows]


@dataclass(frozen=True)
class Anchoring:
    """Where an anchored batch's root went on chain, as the store records it."""

    root: bytes
    tx_hash: str
    block_number: int
    block_hash: str
    chain_batch_id: int


def anchoring_of(b: BatchRow) -> Anchoring:
    assert b.status == BatchStatus.ANCHORED, f"batch {b.id} is {b.status}, not anchored"
    assert b.tx_hash and b.block_number is not None and b.block_hash and b.chain_batch_id is not None
    return Anchoring(
        root=b.root,
        tx_hash=b.tx_hash,
        block_number=b.block_number,
        block_hash=b.block_hash,
        chain_batch_id=b.chain_batch_id,
    )


def describe_store(engine: Engine) -> dict[str, Any]:
    """A short summary for failure messages."""
    with engine.connect() as conn:
        readings = conn.execute(select(func.count()).select_from(ReadingRow)).scalar_one()
        pending = conn.execute(
            select(func.count()).select_from(ReadingRow).where(col(ReadingRow.batch_id).is_(None))
        ).scalar_one()
        by_status: dict[str, int] = {
            str(status): int(n)
            for status, n in conn.execute(
                select(col(BatchRow.status), func.count()).group_by(col(BatchRow.status))
            )
        }
        errors = [
            e
            for (e,) in conn.execute(
                select(col(BatchRow.last_error)).where(col(BatchRow.last_error).is_not(None)).limit(3)
            )
        ]
    return {"readings": readings, "pending": pending, "batches": by_status, "errors": errors}


def all_anchored(engine: Engine) -> bool:
    """No reading waits for a batch and every batch is anchored."""
    s = describe_store(engine)
    by_status = s["batches"]
    assert isinstance(by_status, dict)
    return s["pending"] == 0 and set(by_status) <= {BatchStatus.ANCHORED}


@dataclass(frozen=True)
class Anchored:
    readings: int
    batches: int
    chain_batches: int


def assert_exactly_once(
    engine: Engine,
    chain: Chain,
    deployment: Deployment,
    *,
    expected: set[bytes] | None = None,
    acknowledged: set[bytes] | None = None,
    check_proofs: bool = True,
) -> Anchored:
    """Every stored reading is in exactly one anchored batch, and the chain holds exactly those batches.

    ``expected``: the stored readings must be exactly these. ``acknowledged``: these at least (a
    reading whose request died with the process may be stored without an acknowledgement).
    The chain must hold no other anchoring than the store's batches (the test's chain is used
    by the service alone), so a batch anchored twice, or an orphan anchoring, fails here.
    """
    anchor = ReadingAnchorClient(chain, deployment)
    with engine.connect() as conn:
        readings = [
            (int(i or 0), bytes(d), None if batch_id is None else int(batch_id))
            for i, d, batch_id in conn.execute(
                select(col(ReadingRow.id), col(ReadingRow.digest), col(ReadingRow.batch_id)).order_by(
                    col(ReadingRow.id)
                )
            )
        ]
    stored = [d for _, d, _ in readings]
    assert len(stored) == len(set(stored)), "a reading is stored twice"
    if expected is not None:
        assert set(stored) == expected, (
            f"stored readings differ from the accepted ones: {len(expected - set(stored))} lost, "
            f"{len(set(stored) - expected)} unexpected"
        )
    if acknowledged is not None:
        lost = acknowledged - set(stored)
        assert not lost, f"{len(lost)} acknowledged readings are not stored (e.g. 0x{next(iter(lost)).hex()})"
    unbatched = [d for _, d, batch_id in readings if batch_id is None]
    assert not unbatched, f"{len(unbatched)} readings are in no batch"

    rows = batches(engine)
    members: dict[int, list[bytes]] = {}
    for _, d, batch_id in readings:
        assert batch_id is not None
        members.setdefault(batch_id, []).append(d)
    assert set(members) <= {b.id for b in rows}, "a reading points to a batch that does not exist"
    not_anchored = [(b.id, b.status, b.last_error) for b in rows if b.status != BatchStatus.ANCHORED]
    assert not not_anchored, f"batches not anchored: {not_anchored[:5]}"
    assert sum(b.count for b in rows) == len(readings), "batch counts do not add up to the readings"
    chain_ids = [b.chain_batch_id for b in rows]
    assert None not in chain_ids and len(set(chain_ids)) == len(chain_ids), f"chain batch ids: {chain_ids}"

    on_chain = anchor.batch_count()
    assert on_chain == len(rows), (
        f"the chain holds {on_chain} anchored batches but the store {len(rows)}: a batch was anchored "
        "twice or an anchoring is orphaned"
    )
    assert sorted(int(c) for c in chain_ids if c is not None) == list(range(1, on_chain + 1))
    for b in rows:
        digests = members.get(int(b.id or 0), [])
        assert len(digests) == b.count, f"batch {b.id} says {b.count} readings but holds {len(digests)}"
        tree = MerkleTree.build(digests)
        assert tree.root == b.root and encode_tree(tree) == b.tree, f"batch {b.id}: stored tree is wrong"
        assert b.chain_batch_id is not None and b.tx_hash is not None
        assert anchor.batch_of_root(b.root) == b.chain_batch_id, f"batch {b.id}: batchOfRoot differs"
        onchain = anchor.batch(b.chain_batch_id)
        assert (bytes(onchain.root), onchain.count) == (b.root, b.count), f"batch {b.id}: chain differs"
        receipt = chain.receipt(b.tx_hash)
        assert receipt is not None and receipt["status"] == 1, f"batch {b.id}: tx {b.tx_hash} not mined"
        assert HexBytes(receipt["blockHash"]).to_0x_hex() == b.block_hash, f"batch {b.id}: block hash stale"
        assert receipt["blockNumber"] == b.block_number, f"batch {b.id}: block number stale"
        if check_proofs:
            for d in digests:
                verify_inclusion(digest=d, proof=tree.proof(d), root=bytes(onchain.root))
    return Anchored(readings=len(readings), batches=len(rows), chain_batches=on_chain)


def sample(digests: set[bytes], n: int = 8) -> list[bytes]:
    """``n`` digests spread over the sorted set (deterministic)."""
    ordered = sorted(digests)
    if len(ordered) <= n:
        return ordered
    step = (len(ordered) - 1) / (n - 1)
    return [ordered[round(i * step)] for i in range(n)]


def assert_served_proofs_verify(
    bundles: Sequence[dict[str, Any]],
    chain: Chain,
    deployment: Deployment,
    *,
    expected: Sequence[bytes],
    min_confirmations: int = 0,
) -> None:
    """The proof bundles the service serves pass the auditor's verifier against the chain as it is
    now (the first one also through ``ReadingAnchor.verifyReading``): a bundle naming a reorged-away
    anchoring tx, or a stale batch id, fails here."""
    from auditor.bundle import ProofBundle
    from auditor.verify import verify_bundle, verify_bundle_on_chain

    assert len(bundles) == len(expected) > 0
    for i, (obj, digest) in enumerate(zip(bundles, expected, strict=True)):
        bundle = ProofBundle.from_json_obj(obj)
        verified = verify_bundle(
            bundle, chain=chain, deployment=deployment, min_confirmations=min_confirmations
        )
        assert verified.digest == digest
        if i == 0:
            assert verify_bundle_on_chain(bundle, chain=chain, deployment=deployment) == digest


def assert_service_proofs_verify(
    service: LedgerService, digests: set[bytes], *, min_confirmations: int = 0
) -> None:
    """:func:`assert_served_proofs_verify` for an in-process service, on a sample of ``digests``."""
    from ledger_service.proofs import proof_bundle

    chosen = sample(digests)
    assert_served_proofs_verify(
        [proof_bundle(service, d) for d in chosen],
        service.chain,
        service.deployment,
        expected=chosen,
        min_confirmations=min_confirmations,
    )
