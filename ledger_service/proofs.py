"""Reading status, proof bundles and device history, served from the store."""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

from sqlalchemy import Connection, and_, bindparam, func, or_
from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect
from sqlalchemy.orm import configure_mappers
from sqlmodel import Session, col, select

from auditor.bundle import ProofBundle
from contracts.errors import ContractsError
from device_attestation.errors import ProofMismatch
from device_attestation.merkle import hash_pair, leaf_hash
from device_attestation.reading import Domain, Reading, reading_digest
from ledger_service.errors import LedgerError, NotFound
from ledger_service.jsonio import dumps_exact, loads_exact
from ledger_service.lots.timeline import lot_devices, resolve_lot
from ledger_service.service import LedgerService
from ledger_service.store.batch_status import BatchStatus
from ledger_service.store.batch_tree import path_from_nodes, split_path
from ledger_service.store.models import BatchRow, ReadingRow
from ledger_service.store.queries import anchored_readings


@dataclass(frozen=True)
class ReadingStatus:
    row: ReadingRow
    batch: BatchRow | None

    @property
    def status(self) -> str:
        if self.batch is None:
            return "pending"
        return "anchored" if self.batch.status == BatchStatus.ANCHORED else "batched"

    def to_json_obj(self) -> dict[str, Any]:
        return {
            "digest": "0x" + self.row.digest.hex(),
            "reading": loads_exact(self.row.reading_json),
            "scheme": self.row.scheme,
            "signature": "0x" + self.row.signature.hex(),
            "status": self.status,
            "batch_id": self.batch.chain_batch_id if self.batch and self.status == "anchored" else None,
            "received_ms": self.row.received_ms,
        }


class ProofPending(NotFound):
    """The reading is stored but its batch is not anchored yet."""

    code = "proof.pending"

    def __init__(self, message: str, *, status: str, expected_batch: int | None) -> None:
        super().__init__(message)
        self.status = status
        self.expected_batch = expected_batch


def parse_digest(text: str) -> bytes:
    raw = text.removeprefix("0x")
    try:
        value = bytes.fromhex(raw)
    except ValueError:
        value = b""
    if len(value) != 32:
        raise NotFound(f"{text!r} is not a reading digest (0x + 64 hex digits)", code="reading.bad_digest")
    return value


_READINGS = ReadingRow.__table__  # type: ignore[attr-defined]
_BATCHES = BatchRow.__table__  # type: ignore[attr-defined]
#: A batch's columns but its tree (a proof is the reading's stored path, the tree is not read).
_BATCH_COLUMNS: Final = tuple(c for c in _BATCHES.c if c.key != "tree")
#: A reading and its batch, one Core query (issue 17.3: the ORM's session, identity map and expunge
#: cost three times the query on every served proof); built once.
_STATUS: Final = (
    select(*(c.label("r_" + c.key) for c in _READINGS.c), *(c.label("b_" + c.key) for c in _BATCH_COLUMNS))
    .select_from(_READINGS.outerjoin(_BATCHES, _BATCHES.c.id == _READINGS.c.batch_id))
    .where(_READINGS.c.digest == bindparam("digest"))
)


#: Whether SQLite's values of the status query's columns are the rows' values as they are (no type
#: converts them: true of these tables' types), so that a raw SQLite cursor may run it.
_SQLITE = sqlite_dialect()
_RAW_SQLITE_OK: Final = all(
    c.type.result_processor(_SQLITE, None) is None for c in (*_READINGS.c, *_BATCH_COLUMNS)
)
#: The status query as SQLite runs it: one positional parameter, the digest.
_STATUS_SQLITE: Final = str(_STATUS.compile(dialect=_SQLITE))
_READING_KEYS: Final = tuple(c.key for c in _READINGS.c)
_BATCH_KEYS: Final = tuple(c.key for c in _BATCH_COLUMNS)
_mappers_configured = False


def _status_of(digest: bytes, values: Sequence[Any] | None) -> ReadingStatus:
    """The status from the status query's row (the reading's columns, then its batch's)."""
    global _mappers_configured
    if values is None:
        raise NotFound(f"no reading with digest 0x{digest.hex()} in this ledger", code="reading.not_found")
    if not _mappers_configured:
        # model_construct's attributes work once the mappers are configured
        configure_mappers()
        _mappers_configured = True
    n = len(_READING_KEYS)
    # model_construct: the stored values as they are (5 us a row; the validating constructor, 90 us)
    row = ReadingRow.model_construct(**dict(zip(_READING_KEYS, values[:n], strict=True)))
    batch = (
        BatchRow.model_construct(**dict(zip(_BATCH_KEYS, values[n:], strict=True)))
        if values[n] is not None  # the batch's id
        else None
    )
    return ReadingStatus(row=row, batch=batch)


def reading_status(service: LedgerService, digest: bytes, *, conn: Connection | None = None) -> ReadingStatus:
    """The reading and its batch, in one query; :class:`NotFound` when no reading has ``digest``. The
    rows are built from the query's columns (detached from any session; the batch without its tree).
    ``conn``: a connection of the service's engine to read on (a SQLite one is read with its own
    cursor, without the engine's statement machinery; the read's transaction is ended after it); none:
    one from the engine's pool."""
    if conn is None:
        with service.engine.connect() as pooled:
            found = pooled.execute(_STATUS, {"digest": digest}).first()
        return _status_of(digest, found)
    try:
        if _RAW_SQLITE_OK and conn.dialect.name == "sqlite":
            cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            try:
                values = cursor.execute(_STATUS_SQLITE, (digest,)).fetchone()
            finally:
                cursor.close()
        else:
            values = conn.execute(_STATUS, {"digest": digest}).first()
    finally:
        conn.rollback()
    return _status_of(digest, values)


def _anchored(service: LedgerService, digest: bytes, status: ReadingStatus | None) -> ReadingStatus:
    """The reading's status (``status`` when it is this reading's), anchored; :class:`ProofPending`
    while it is not."""
    st = (
        status
        if status is not None and bytes(status.row.digest) == digest
        else reading_status(service, digest)
    )
    if st.batch is None or st.status != "anchored":
        raise ProofPending(
            f"reading 0x{digest.hex()} is {st.status}: its batch is not anchored yet; retry in a few seconds",
            status=st.status,
            expected_batch=st.batch.id if st.batch else None,
        )
    return st


def proof_bundle(
    service: LedgerService, digest: bytes, *, status: ReadingStatus | None = None
) -> dict[str, Any]:
    """The spec's proof bundle (section 6); :class:`ProofPending` while not anchored. ``status``: the
    reading's, when the caller read it already (the access guard does). The proof is the reading's
    stored path (issue 17.3): no other row is read, nothing is rebuilt."""
    st = _anchored(service, digest, status)
    batch = st.batch
    assert batch is not None and batch.id is not None
    assert batch.chain_batch_id is not None and batch.tx_hash is not None
    return BundleMaker(service).bundle(
        st.row, root=batch.root, batch=batch.id, chain_batch_id=batch.chain_batch_id, tx=batch.tx_hash
    )


#: Serialized proof bundles kept (about 1.7 kB each for a 10,000-reading batch; the oldest go first).
BUNDLE_CACHE: Final = 16_384
_bundles: dict[tuple[Any, ...], bytes] = {}
_bundles_lock = threading.Lock()


def proof_bundle_json(service: LedgerService, digest: bytes, *, status: ReadingStatus | None = None) -> bytes:
    """:func:`proof_bundle` serialized (as the API sends it: ``dumps_exact``). The reading and its batch
    are read as for :func:`proof_bundle` on every call (a reorg un-anchors a batch, and the proof is
    refused again at once); the bytes are kept keyed by everything they are made of (the deployment's
    domain, the digest, the stored signature and path, the batch's id, root, chain id and
    transaction), so a kept answer is the one a build would give: nothing needs invalidating."""
    st = _anchored(service, digest, status)
    batch, row = st.batch, st.row
    assert batch is not None and batch.id is not None
    assert batch.chain_batch_id is not None and batch.tx_hash is not None
    deployment = service.deployment
    key = (
        deployment.chain_id,
        deployment.contracts.get("ReadingAnchor"),
        digest,
        row.scheme,
        bytes(row.signature),
        None if row.proof_path is None else bytes(row.proof_path),
        batch.id,
        bytes(batch.root),
        batch.chain_batch_id,
        batch.tx_hash,
    )
    found = _bundles.get(key)
    if found is not None:
        return found
    body = dumps_exact(
        BundleMaker(service).bundle(
            row, root=batch.root, batch=batch.id, chain_batch_id=batch.chain_batch_id, tx=batch.tx_hash
        )
    )
    with _bundles_lock:
        if len(_bundles) >= BUNDLE_CACHE:
            _bundles.pop(next(iter(_bundles)))
        _bundles[key] = body
    return body


@lru_cache(maxsize=16)
def _domain(chain_id: int, anchor: str) -> Domain:
    """A deployment's EIP-712 domain (:func:`auditor.bundle.deployment_domain`), built once: its checksum
    and separator are keccaks, a third of a bundle's CPU when built for each one (issue 17.3)."""
    return Domain(chain_id=chain_id, verifying_contract=anchor)


class BundleMaker:
    """Assembles the proof bundles of anchored readings from their stored proof paths. A reading
    batched before paths were stored (none after migration 0012 fills them; a batch closed by an
    older instance) has its path read from its batch's stored node array, once per batch."""

    def __init__(self, service: LedgerService) -> None:
        self.service = service
        self.domain = _domain(service.deployment.chain_id, service.deployment.address("ReadingAnchor"))
        self._nodes: dict[int, bytes] = {}

    def bundle(
        self, row: ReadingRow, *, root: bytes, batch: int, chain_batch_id: int, tx: str
    ) -> dict[str, Any]:
        """The bundle of ``row``, anchored in store batch ``batch`` (chain id ``chain_batch_id``, root
        ``root``, transaction ``tx``); checked to lead to ``root`` before it is returned, as
        :func:`auditor.bundle.build_bundle` checks it (the same wire format, byte for byte)."""
        reading = Reading.from_json_obj(loads_exact(row.reading_json))
        digest = reading_digest(reading, self.domain)
        if digest != bytes(row.digest):
            raise ContractsError(
                f"reading 0x{bytes(row.digest).hex()} hashes to 0x{digest.hex()} under this deployment's "
                "domain: the store is not this deployment's"
            )
        path = row.proof_path if row.proof_path is not None else self._path_from_tree(batch, digest)
        proof = split_path(bytes(path))
        root = bytes(root)
        computed = leaf_hash(digest)  # verify_inclusion's check, on nodes split_path sized already
        for node in proof:
            computed = hash_pair(computed, node)
        if computed != root:
            raise ProofMismatch(expected=root, computed=computed)
        return ProofBundle(
            reading=reading,
            scheme=row.scheme,
            signature=bytes(row.signature),
            digest=digest,
            batch_id=chain_batch_id,
            root=root,
            proof=tuple(proof),
            chain_id=self.domain.chain_id,
            anchor_contract=self.domain.verifying_contract,
            anchor_tx=tx,
        ).to_json_obj()

    def _path_from_tree(self, batch: int, digest: bytes) -> bytes:
        nodes = self._nodes.get(batch)
        if nodes is None:
            with Session(self.service.engine) as s:
                nodes = bytes(s.exec(select(col(BatchRow.tree)).where(col(BatchRow.id) == batch)).one())
            self._nodes[batch] = nodes
        return path_from_nodes(nodes, digest)


def device_history(
    service: LedgerService, device_id: str, *, after_seq: int = 0, limit: int = 100
) -> tuple[list[ReadingStatus], int | None]:
    """A device's readings by seq, after ``after_seq``; and the cursor of the next page."""
    with Session(service.engine) as s:
        rows = [
            r[0] if isinstance(r, tuple) else r
            for r in s.exec(
                select(ReadingRow)
                .where(col(ReadingRow.device_id) == device_id, col(ReadingRow.seq) > after_seq)
                .order_by(col(ReadingRow.seq))
                .limit(limit + 1)
            )
        ]
        batch_ids = {r.batch_id for r in rows if r.batch_id is not None}
        batches = {b.id: b for b in (s.get(BatchRow, i) for i in batch_ids) if b is not None}
        s.expunge_all()
    more = len(rows) > limit
    rows = rows[:limit]
    out = [ReadingStatus(row=r, batch=batches.get(r.batch_id) if r.batch_id else None) for r in rows]
    return out, (rows[-1].seq if more and rows else None)


#: The most proof bundles one page of a bulk read holds.
MAX_PROOF_PAGE: Final = 1000


@dataclass(frozen=True)
class ProofPage:
    """One page of a bulk proof read: the anchored readings' bundles, in anchoring order; the cursor of
    the next page (None: nothing more is anchored now); and the cursor to resume from later, which
    serves what is anchored after this read (late readings included)."""

    proofs: list[dict[str, Any]]
    next_cursor: str | None
    resume_cursor: str | None


@dataclass(frozen=True, order=True)
class PageKey:
    """A place in anchoring order: the reading's store batch, then its store id."""

    batch: int
    reading: int

    def __str__(self) -> str:
        return f"{self.batch}-{self.reading}"


_CURSOR = re.compile(r"^([0-9]{1,18})-([0-9]{1,18})$")


def parse_cursor(cursor: str | None) -> PageKey | None:
    """A bulk read's cursor (``<batch>-<reading>``, as it issued; none: from the start)."""
    if cursor is None or cursor == "":
        return None
    m = _CURSOR.match(cursor) if cursor.isascii() else None
    if m is None:
        raise InvalidProofCursor(
            f"cursor {cursor[:40]!r} was not issued by this endpoint: pass the `next_cursor` (or "
            "`resume_cursor`) of an earlier page, or none for the first page"
        )
    return PageKey(int(m.group(1)), int(m.group(2)))


class InvalidProofCursor(LedgerError):
    """A bulk read's cursor that it did not issue."""

    code = "request.bad_cursor"

    def __init__(self, message: str) -> None:
        super().__init__(message, code=self.code)


def _check_limit(limit: int) -> None:
    if not 1 <= limit <= MAX_PROOF_PAGE:
        raise LedgerError(f"limit must be 1..{MAX_PROOF_PAGE}, got {limit}", code="request.invalid")


def _anchored_prefix_end(s: Session) -> int | None:
    """The first store batch that is not anchored yet (None: every batch is). Pages stop before it:
    a batch id is given when the batch is closed, so everything a later read may find (a batch still on
    its way, a late reading batched tomorrow) lies beyond it, and a resumed read misses nothing."""
    row = s.execute(
        select(func.min(col(BatchRow.id))).where(col(BatchRow.status) != BatchStatus.ANCHORED)
    ).first()
    return None if row is None or row[0] is None else int(row[0])


def _page(service: LedgerService, where: list[Any], after: PageKey | None, limit: int) -> ProofPage:
    """The bundles of the anchored readings matching ``where``, in anchoring order after ``after``, at
    most ``limit``."""
    batch_col, id_col = col(ReadingRow.batch_id), col(ReadingRow.id)
    with Session(service.engine) as s:
        conditions = [*where, batch_col.is_not(None)]
        end = _anchored_prefix_end(s)
        if end is not None:
            conditions.append(batch_col < end)
        if after is not None:
            conditions.append(
                or_(batch_col > after.batch, and_(batch_col == after.batch, id_col > after.reading))
            )
        query = (
            anchored_readings(
                ReadingRow, col(BatchRow.root), col(BatchRow.chain_batch_id), col(BatchRow.tx_hash)
            )
            .where(*conditions)
            .order_by(batch_col, id_col)
            .limit(limit + 1)
        )
        rows = list(s.execute(query).all())
        s.expunge_all()
    more = len(rows) > limit
    rows = rows[:limit]
    maker = BundleMaker(service)
    proofs = [
        maker.bundle(r, root=root, batch=int(r.batch_id or 0), chain_batch_id=int(chain_id), tx=str(tx))
        for r, root, chain_id, tx in rows
    ]
    last = PageKey(int(rows[-1][0].batch_id or 0), int(rows[-1][0].id or 0)) if rows else after
    return ProofPage(
        proofs,
        str(last) if more and last is not None else None,
        str(last) if last is not None else None,
    )


def device_proofs(service: LedgerService, device_id: str, *, cursor: str | None, limit: int) -> ProofPage:
    """A page of the proof bundles of a device's anchored readings, in anchoring order (the order of its
    store batches, then of arrival; by seq within a batch unless late readings filled gaps). Readings
    not anchored yet are not listed, and nothing anchored after them: a read resumed from the page's
    ``resume_cursor`` serves them once anchored, late readings included."""
    _check_limit(limit)
    after = parse_cursor(cursor)
    return _page(service, [col(ReadingRow.device_id) == device_id], after, limit)


def lot_proofs(
    service: LedgerService, lot_id: str, devices: list[str] | None, *, cursor: str | None, limit: int
) -> ProofPage:
    """A page of the proof bundles of a lot's anchored readings (those naming ``lot_id``, of
    ``devices`` when given: the devices that may speak for it), in anchoring order as
    :func:`device_proofs`."""
    _check_limit(limit)
    after = parse_cursor(cursor)
    where = [col(ReadingRow.lot_id) == lot_id]
    if devices is not None:
        where.append(col(ReadingRow.device_id).in_(devices))
    return _page(service, where, after, limit)


def lot_proof_page(
    service: LedgerService, lot_id: str, *, issuer: str | None, cursor: str | None, limit: int
) -> ProofPage:
    """A page of the proof bundles of a lot's anchored readings, chosen as the lot's timeline chooses
    them (:mod:`ledger_service.lots.timeline`): for a lot on chain, of the devices that may speak for
    it; for a lot id no lot on chain has, every reading naming it (of ``issuer``'s devices when
    ``issuer`` is given)."""
    _check_limit(limit)
    key = resolve_lot(service.chain, service.deployment, lot_id, issuer)
    devices: list[str] | None = None
    if key is not None:
        devices = lot_devices(service, lot_id, key)
    elif issuer is not None:
        with Session(service.engine) as s:
            named = s.exec(
                select(col(ReadingRow.device_id)).where(col(ReadingRow.lot_id) == lot_id).distinct()
            )
            ids = [r[0] if isinstance(r, tuple) else r for r in named]
        devices = [
            d for d in ids if (found := service.registry.lookup(d)) is not None and _same(found.owner, issuer)
        ]
    return lot_proofs(service, lot_id, devices, cursor=cursor, limit=limit)


def _same(a: str, b: str) -> bool:
    return a.lower() == b.lower()
