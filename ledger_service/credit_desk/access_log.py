"""The bank-query access log: every attempt to read a factory's credit data, durable before the answer,
anchored on chain in batches (``CreditRegistry.anchorAccessLog``), each entry provable.

Entry digest (``supet.access-log.v1``)::

    keccak256(abi.encode(
        bytes32 keccak256("supet.access-log.v1"),
        uint256 chainId, address creditRegistry,
        uint64  entryId,            // the log's own sequence number (1, 2, ...)
        uint64  tsMs,               // when the attempt was logged (Unix ms)
        address party,              // who asked
        address factory,            // whose data (zero when the attempt named none)
        string  action,             // "credit", "profile", "factories", "receivable"
        string  outcome,            // "answered" or the refusal code ("finance.no_consent", ...)
        string  requestId))         // the HTTP request id (X-Request-ID)

The batch tree is the readings' tree (:class:`device_attestation.merkle.MerkleTree`, OpenZeppelin
``StandardMerkleTree`` over ``bytes32`` leaves: ``leaf = keccak256(keccak256(digest))``), over the
batch's entries in id order; one ``anchorAccessLog(root, count, fromMs, toMs)`` per batch.
:class:`~ledger_service.anchoring.access_log.AccessLogAnchorer` (the generic batch anchorer's
access-log kind) closes a batch at ``max_entries`` entries or when the oldest waited ``max_seconds``,
sends it, confirms it, retries with back-off, and adopts a root the contract says it anchored already
(a send that landed before a crash).

Refusals of parties that are not admitted at all (``finance.not_a_bank``: any key can sign in and
ask) are NOT entries of this log: they would let a throw-away key grow a factory's anchored log,
at the service's gas, and bury the real entries. :class:`RefusalTally` counts them instead, per
(factory, reason, hour), in a bounded table that is never anchored (at most ``max_factories`` rows
per hour plus one catch-all row, kept ``retention_hours``); the factory sees the count. Refusals of
admitted banks (``finance.no_consent``, ``finance.consent_expired``) stay in the anchored log.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from eth_abi import encode as abi_encode
from eth_utils import keccak, to_checksum_address
from sqlalchemy import Engine, delete, func, insert, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlmodel import Session, col, select

from contracts.chain import Chain
from device_attestation.errors import ProofMismatch
from device_attestation.merkle import MerkleTree, verify_inclusion
from ledger_service.credit_desk.errors import AccessLogError
from ledger_service.errors import StoreError
from ledger_service.store.batch_status import BatchStatus
from ledger_service.store.models import AccessLogBatchRow, AccessLogRow, AccessRefusalTallyRow

__all__ = [
    "ACCESS_LOG_TAG",
    "ZERO_ADDRESS",
    "AccessLogBook",
    "AccessLogPage",
    "EntryProof",
    "RefusalSummary",
    "RefusalTally",
    "entry_digest",
]

log = logging.getLogger(__name__)

ACCESS_LOG_TAG: Final = keccak(b"supet.access-log.v1")
ZERO_ADDRESS: Final = "0x" + "00" * 20
#: The most entries one page of a factory's access log holds (the API's hard maximum).
MAX_PAGE: Final = 200
#: The tally's catch-all factory, for an hour whose per-factory rows are at their cap.
OVERFLOW_FACTORY: Final = "*"
HOUR_MS: Final = 3_600_000


def entry_digest(
    *,
    chain_id: int,
    registry: str,
    entry_id: int,
    ts_ms: int,
    party: str,
    factory: str,
    action: str,
    outcome: str,
    request_id: str,
) -> bytes:
    """The entry's digest: keccak256 of the ABI encoding documented in the module docstring."""
    return keccak(
        abi_encode(
            [
                "bytes32",
                "uint256",
                "address",
                "uint64",
                "uint64",
                "address",
                "address",
                "string",
                "string",
                "string",
            ],
            [
                ACCESS_LOG_TAG,
                chain_id,
                to_checksum_address(registry),
                entry_id,
                ts_ms,
                to_checksum_address(party),
                to_checksum_address(factory or ZERO_ADDRESS),
                action,
                outcome,
                request_id,
            ],
        )
    )


@dataclass(frozen=True, slots=True)
class EntryProof:
    """An anchored entry's inclusion proof: digest, sibling path, the batch root and where it is on chain."""

    digest: bytes
    proof: tuple[bytes, ...]
    root: bytes
    chain_index: int
    tx_hash: str | None
    block_number: int | None

    def to_json_obj(self) -> dict[str, Any]:
        return {
            "digest": "0x" + self.digest.hex(),
            "proof": ["0x" + p.hex() for p in self.proof],
            "root": "0x" + self.root.hex(),
            "batch_index": self.chain_index,
            "tx_hash": self.tx_hash,
            "block_number": self.block_number,
        }


@dataclass(frozen=True, slots=True)
class AccessLogPage:
    """A page of a factory's access log, newest first, and the cursors of its neighbours."""

    entries: list[AccessLogRow]
    #: ``before_id`` of the next (older) page; ``None`` on the oldest page.
    older_before_id: int | None
    #: ``after_id`` of the previous (newer) page; ``None`` on the newest page.
    newer_after_id: int | None


@dataclass(frozen=True, slots=True)
class RefusalSummary:
    """How many refused attempts of non-admitted parties named a factory since ``since_ms``."""

    since_ms: int
    attempts: int
    parties_hint: str | None
    last_ms: int | None
    by_reason: dict[str, int]

    def to_json_obj(self) -> dict[str, Any]:
        return {
            "since_ms": self.since_ms,
            "attempts": self.attempts,
            "by_reason": dict(sorted(self.by_reason.items())),
            "last_ms": self.last_ms,
            "last_party": self.parties_hint,
            "anchored": False,
        }


class RefusalTally:
    """Counts refused attempts of parties that are not admitted at all, bounded and never anchored.

    One row per (factory, reason, hour): its count, first and last time, the last party and request
    id. An hour holds at most ``max_factories`` factory rows; attempts naming further factories are
    counted in that hour's catch-all row (factory ``"*"``), so a key naming random addresses cannot
    grow the table. Rows older than ``retention_hours`` are deleted when a new row is made.
    """

    def __init__(
        self,
        *,
        engine: Engine,
        clock: Callable[[], float] = time.time,
        max_factories: int = 1000,
        retention_hours: int = 24 * 7,
    ) -> None:
        self.engine = engine
        self.clock = clock
        self.max_factories = max_factories
        self.retention_hours = retention_hours

    def record(self, *, party: str, factory: str | None, reason: str, request_id: str) -> None:
        """Count one refused attempt (committed when this returns; :class:`StoreError` if it cannot be)."""
        now = int(self.clock() * 1000)
        window = now - now % HOUR_MS
        subject = to_checksum_address(factory) if factory else ""
        values = {
            "last_ms": now,
            "last_party": to_checksum_address(party),
            "last_request_id": request_id[:64],
        }
        tally = AccessRefusalTallyRow
        try:
            for _ in range(3):  # an insert racing another one for the same key: count on the winner's row
                with self.engine.begin() as conn:
                    key = subject
                    if key and not self._counted(conn, key, window, reason):
                        full = conn.execute(
                            select(func.count(func.distinct(col(tally.factory)))).where(
                                col(tally.window_ms) == window,
                                col(tally.factory).not_in(["", OVERFLOW_FACTORY]),
                            )
                        ).one()[0]
                        if int(full) >= self.max_factories:
                            key = OVERFLOW_FACTORY
                    bumped = conn.execute(
                        update(tally)
                        .where(
                            col(tally.factory) == key,
                            col(tally.window_ms) == window,
                            col(tally.reason) == reason[:48],
                        )
                        .values(count=col(tally.count) + 1, **values)
                    ).rowcount
                    if bumped:
                        return
                try:
                    with self.engine.begin() as conn:
                        conn.execute(
                            insert(tally).values(
                                factory=key,
                                reason=reason[:48],
                                window_ms=window,
                                count=1,
                                first_ms=now,
                                **values,
                            )
                        )
                        conn.execute(
                            delete(tally).where(
                                col(tally.window_ms) < window - self.retention_hours * HOUR_MS
                            )
                        )
                    return
                except IntegrityError:
                    continue
            raise StoreError("cannot count the refused attempt (the tally row kept changing); retry")
        except SQLAlchemyError as e:
            raise StoreError(
                f"cannot count the refused attempt ({type(e).__name__}); the query is not answered, "
                "retry later"
            ) from e

    @staticmethod
    def _counted(conn: Any, factory: str, window: int, reason: str) -> bool:
        t = AccessRefusalTallyRow
        row = conn.execute(
            select(col(t.id)).where(
                col(t.factory) == factory, col(t.window_ms) == window, col(t.reason) == reason[:48]
            )
        ).first()
        return row is not None

    def summary(self, factory: str, *, hours: int = 24) -> RefusalSummary:
        """The refused attempts of non-admitted parties naming ``factory`` in the last ``hours`` hours
        (whole hours: the current one and the ``hours - 1`` before it)."""
        now = int(self.clock() * 1000)
        since = now - now % HOUR_MS - (hours - 1) * HOUR_MS
        t = AccessRefusalTallyRow
        with Session(self.engine) as s:
            rows = list(
                s.exec(
                    select(t)
                    .where(col(t.factory) == to_checksum_address(factory), col(t.window_ms) >= since)
                    .order_by(col(t.last_ms).desc())
                ).all()
            )
        by_reason: dict[str, int] = {}
        for r in rows:
            by_reason[r.reason] = by_reason.get(r.reason, 0) + int(r.count)
        return RefusalSummary(
            since_ms=since,
            attempts=sum(by_reason.values()),
            parties_hint=rows[0].last_party if rows else None,
            last_ms=int(rows[0].last_ms) if rows else None,
            by_reason=by_reason,
        )

    def rows(self) -> int:
        """How many rows the tally holds now (tests, metrics)."""
        with Session(self.engine) as s:
            return int(s.exec(select(func.count()).select_from(AccessRefusalTallyRow)).one())


class AccessLogBook:
    """Writes and reads the access log; computes digests and proofs; verifies entries against the chain."""

    def __init__(
        self, *, engine: Engine, chain: Chain, registry_address: str, clock: Callable[[], float] = time.time
    ):
        self.engine = engine
        self.chain = chain
        self.registry_address = to_checksum_address(registry_address)
        self.contract = chain.contract("CreditRegistry", self.registry_address)
        self.clock = clock

    def digest_of(self, row: AccessLogRow) -> bytes:
        """The digest the row's fields give now (a tampered row gives another one)."""
        assert row.id is not None
        return entry_digest(
            chain_id=self.chain.chain_id,
            registry=self.registry_address,
            entry_id=row.id,
            ts_ms=row.ts_ms,
            party=row.party,
            factory=row.factory or ZERO_ADDRESS,
            action=row.action,
            outcome=row.outcome,
            request_id=row.request_id,
        )

    def record(
        self, *, party: str, factory: str | None, action: str, outcome: str, request_id: str
    ) -> AccessLogRow:
        """Write one entry, committed (durable) when this returns; :class:`StoreError` if it cannot be."""
        ts_ms = int(self.clock() * 1000)
        row = AccessLogRow(
            digest=secrets.token_bytes(32),  # placeholder until the id is known (same transaction)
            request_id=request_id[:64],
            ts_ms=ts_ms,
            party=to_checksum_address(party),
            factory=to_checksum_address(factory) if factory else "",
            action=action,
            outcome=outcome[:48],
        )
        try:
            with Session(self.engine) as s:
                s.add(row)
                s.flush()
                row.digest = self.digest_of(row)
                s.add(row)
                s.commit()
                s.refresh(row)
        except SQLAlchemyError as e:
            raise StoreError(
                f"cannot write the access log ({type(e).__name__}); the query is not answered, retry later"
            ) from e
        return row

    def page(
        self, factory: str, *, limit: int = 100, before_id: int | None = None, after_id: int | None = None
    ) -> AccessLogPage:
        """One page of the factory's entries, newest first (at most ``limit``, 1..:data:`MAX_PAGE`).

        No cursor: the newest entries. ``before_id``: the entries just older than that id (the next
        page). ``after_id``: the entries just newer than that id (the previous page). Both at once
        is a :class:`ValueError`.
        """
        if not 1 <= limit <= MAX_PAGE:
            raise ValueError(f"limit must be 1..{MAX_PAGE}, got {limit}")
        if before_id is not None and after_id is not None:
            raise ValueError("give before_id or after_id, not both")
        subject = to_checksum_address(factory)
        ident = col(AccessLogRow.id)
        query = select(AccessLogRow).where(AccessLogRow.factory == subject)
        if after_id is not None:
            query = query.where(ident > after_id).order_by(ident).limit(limit + 1)
        else:
            if before_id is not None:
                query = query.where(ident < before_id)
            query = query.order_by(ident.desc()).limit(limit + 1)
        with Session(self.engine) as s:
            rows = list(s.exec(query).all())
            more = len(rows) > limit
            rows = rows[:limit]
            if after_id is not None:
                rows.reverse()
            newest, oldest = (int(rows[0].id or 0), int(rows[-1].id or 0)) if rows else (0, 0)

            def exists(condition: Any) -> bool:
                found = s.exec(
                    select(AccessLogRow.id).where(AccessLogRow.factory == subject, condition).limit(1)
                ).first()
                return found is not None

            if after_id is not None:  # a newer page: entries remain above it if there were more
                newer, older = more, bool(rows) and exists(ident < oldest)
            else:
                newer, older = bool(rows) and before_id is not None and exists(ident > newest), more
        return AccessLogPage(
            entries=rows,
            older_before_id=oldest if rows and older else None,
            newer_after_id=newest if rows and newer else None,
        )

    def entries_for(
        self, factory: str, *, limit: int = 100, before_id: int | None = None
    ) -> list[AccessLogRow]:
        """The factory's entries, newest first, older than ``before_id`` (see :meth:`page`)."""
        return self.page(factory, limit=limit, before_id=before_id).entries

    def batches(self, ids: set[int]) -> dict[int, AccessLogBatchRow]:
        if not ids:
            return {}
        with Session(self.engine) as s:
            rows = s.exec(select(AccessLogBatchRow).where(col(AccessLogBatchRow.id).in_(sorted(ids)))).all()
        return {int(b.id or 0): b for b in rows}

    def entry(self, entry_id: int) -> AccessLogRow | None:
        with Session(self.engine) as s:
            return s.get(AccessLogRow, entry_id)

    def proof(self, row: AccessLogRow) -> EntryProof | None:
        """The entry's proof once its batch is anchored (``None`` before), from the batch's stored digests."""
        if row.batch_id is None:
            return None
        with Session(self.engine) as s:
            batch = s.get(AccessLogBatchRow, row.batch_id)
            digests = [
                bytes(d)
                for d in s.exec(
                    select(AccessLogRow.digest)
                    .where(AccessLogRow.batch_id == row.batch_id)
                    .order_by(col(AccessLogRow.id))
                ).all()
            ]
        if batch is None or batch.status != BatchStatus.ANCHORED or batch.chain_index is None:
            return None
        tree = MerkleTree.build(digests)
        return EntryProof(
            digest=bytes(row.digest),
            proof=tuple(tree.proof(bytes(row.digest))),
            root=tree.root,
            chain_index=int(batch.chain_index),
            tx_hash=batch.tx_hash,
            block_number=batch.block_number,
        )

    def verify(self, entry_id: int) -> EntryProof:
        """Check entry ``entry_id`` against the chain; its proof, or :class:`AccessLogError` naming the fault.

        Codes: ``access_log.unknown_entry``, ``access_log.not_anchored``, ``access_log.digest_mismatch``
        (the row's fields no longer give its digest: it was altered), ``access_log.root_mismatch`` (the
        stored batch differs from the root anchored on chain), ``access_log.proof_mismatch``.
        """
        row = self.entry(entry_id)
        if row is None:
            raise AccessLogError(f"there is no access-log entry {entry_id}", code="access_log.unknown_entry")
        recomputed = self.digest_of(row)
        if recomputed != bytes(row.digest):
            raise AccessLogError(
                f"access-log entry {entry_id} was altered: its fields give digest 0x{recomputed.hex()}, "
                f"the log recorded 0x{bytes(row.digest).hex()}",
                code="access_log.digest_mismatch",
            )
        proof = self.proof(row)
        if proof is None:
            raise AccessLogError(
                f"access-log entry {entry_id} is not anchored yet", code="access_log.not_anchored"
            )
        on_chain = self.chain.call(self.contract.functions.accessLogBatch(proof.chain_index))
        root = bytes(on_chain[0])
        if root != proof.root:
            raise AccessLogError(
                f"access-log batch {proof.chain_index} on chain has root 0x{root.hex()}, the stored batch "
                f"gives 0x{proof.root.hex()}: the stored log was altered",
                code="access_log.root_mismatch",
            )
        try:
            verify_inclusion(digest=recomputed, proof=list(proof.proof), root=root)
        except ProofMismatch as e:
            raise AccessLogError(
                f"access-log entry {entry_id} is not in anchored batch {proof.chain_index}: {e}",
                code="access_log.proof_mismatch",
            ) from e
        return proof
