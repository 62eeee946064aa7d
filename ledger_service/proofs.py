"""Reading status, proof bundles and device history, served from the store."""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final, NamedTuple

import orjson
from sqlalchemy import Connection, Dialect, bindparam
from sqlalchemy import select as core_select
from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import configure_mappers
from sqlmodel import Session, col, select

from auditor.bundle import MAX_PROOF_LENGTH, ProofBundle
from contracts.errors import ContractsError
from device_attestation.errors import ProofMismatch
from device_attestation.keys import Scheme
from device_attestation.merkle import hash_pair, leaf_hash
from device_attestation.reading import Domain, Reading, ReadingFields, cached_domain, reading_digest
from ledger_service.errors import NotFound
from ledger_service.jsonio import dumps_exact, loads_exact
from ledger_service.service import LedgerService
from ledger_service.store.batch_status import BatchStatus
from ledger_service.store.batch_tree import NODE, path_from_nodes, split_path
from ledger_service.store.models import BatchRow, ReadingRow, RevokedTokenRow


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


class ProofRow(NamedTuple):
    """What a reading's proof bundle is made of: the reading's stored columns and its batch's (None
    while it is not batched). Read by one query, without the ORM (:func:`stored_proof`)."""

    digest: bytes
    device_id: str
    reading_json: str
    scheme: str
    signature: bytes
    proof_path: bytes | None
    batch_id: int | None
    batch_status: str | None
    root: bytes | None
    chain_batch_id: int | None
    tx_hash: str | None

    @classmethod
    def of_status(cls, st: ReadingStatus) -> ProofRow:
        row, batch = st.row, st.batch
        return cls(
            bytes(row.digest),
            row.device_id,
            row.reading_json,
            row.scheme,
            bytes(row.signature),
            None if row.proof_path is None else bytes(row.proof_path),
            None if batch is None else batch.id,
            None if batch is None else batch.status,
            None if batch is None else bytes(batch.root),
            None if batch is None else batch.chain_batch_id,
            None if batch is None else batch.tx_hash,
        )


#: A proof's columns (:class:`ProofRow`'s, in its order), the reading's and its batch's.
PROOF_COLUMNS: Final = (
    _READINGS.c.digest,
    _READINGS.c.device_id,
    _READINGS.c.reading_json,
    _READINGS.c.scheme,
    _READINGS.c.signature,
    _READINGS.c.proof_path,
    _READINGS.c.batch_id,
    _BATCHES.c.status,
    _BATCHES.c.root,
    _BATCHES.c.chain_batch_id,
    _BATCHES.c.tx_hash,
)
_PROOF_FROM: Final = _READINGS.outerjoin(_BATCHES, _BATCHES.c.id == _READINGS.c.batch_id)
_REVOKED = RevokedTokenRow.__table__  # type: ignore[attr-defined]
#: A reading's proof columns; with ``token``: and when the token ``jti`` was signed out (last column,
#: None: it was not), so that a bearer's revocation and its proof are one statement, one round trip.
_PROOF: Final = (
    core_select(*PROOF_COLUMNS).select_from(_PROOF_FROM).where(_READINGS.c.digest == bindparam("digest"))
)
_PROOF_AND_REVOCATION: Final = (
    core_select(
        *PROOF_COLUMNS,
        select(_REVOKED.c.revoked_ms)
        .where(_REVOKED.c.jti == bindparam("jti"))
        .scalar_subquery()
        .label("revoked_ms"),
    )
    .select_from(_PROOF_FROM)
    .where(_READINGS.c.digest == bindparam("digest"))
)


#: libpq's transaction status of an idle connection (``psycopg.pq.TransactionStatus.IDLE``).
_PG_IDLE: Final = 0


class _RawQuery(NamedTuple):
    sql: str
    #: The parameters' names in the order a positional style takes them (None: by name).
    order: tuple[str, ...] | None


@lru_cache(maxsize=8)
def _raw_statements(dialect: Dialect) -> tuple[_RawQuery, _RawQuery] | None:
    """The proof queries (without, with the token) as ``dialect``'s driver runs them; None when a
    column's type converts the driver's values (a raw cursor would then see other values than the
    engine) or the parameter style is not one handled here: the engine's machinery runs them."""
    columns = (*PROOF_COLUMNS, _REVOKED.c.revoked_ms)
    if any(c.type.dialect_impl(dialect).result_processor(dialect, None) is not None for c in columns):
        return None
    if dialect.paramstyle not in ("qmark", "pyformat"):
        return None
    out = []
    for query in (_PROOF, _PROOF_AND_REVOCATION):
        compiled = query.compile(dialect=dialect)
        order = tuple(compiled.positiontup or ()) if dialect.paramstyle == "qmark" else None
        out.append(_RawQuery(str(compiled), order))
    return out[0], out[1]


def stored_proof(
    service: LedgerService, digest: bytes, *, conn: Connection | None = None, token_id: str | None = None
) -> tuple[ProofRow, int | None]:
    """The reading ``digest``'s :class:`ProofRow`, in one statement (:class:`NotFound` when no reading
    has it); with ``token_id``: and when that token was signed out, read by the same statement (None:
    it was not). ``conn``: a connection of the service's engine (none: one from its pool), read with
    the driver's own cursor where the columns' values need no conversion. No transaction is left
    open: on PostgreSQL the statement runs in autocommit (no BEGIN, no ROLLBACK: one round trip,
    prepared by the driver once it repeats), on SQLite the read's transaction is ended after it."""
    if conn is None:
        with service.engine.connect() as pooled:
            return stored_proof(service, digest, conn=pooled, token_id=token_id)
    values = _read_proof(conn, digest, token_id)
    if values is None:
        raise NotFound(f"no reading with digest 0x{digest.hex()} in this ledger", code="reading.not_found")
    if token_id is None:
        return ProofRow._make(values), None
    return ProofRow._make(values[:-1]), values[-1]


def _read_proof(conn: Connection, digest: bytes, token_id: str | None) -> Sequence[Any] | None:
    raw = _raw_statements(conn.dialect)
    if raw is None:
        try:
            statement = _PROOF if token_id is None else _PROOF_AND_REVOCATION
            return conn.execute(statement, {"digest": digest, "jti": token_id}).first()
        finally:
            conn.rollback()
    query = raw[0] if token_id is None else raw[1]
    named = {"digest": digest, "jti": token_id}
    params: Any = named if query.order is None else tuple(named[k] for k in query.order)
    dbapi: Any = conn.connection.dbapi_connection
    # psycopg: the one statement in autocommit (no BEGIN before it, no ROLLBACK after it: one round
    # trip), when the connection is idle; its mode is restored before it goes back to the pool
    dialect = conn.dialect
    try:
        autocommit = (
            dialect.driver == "psycopg"
            and not conn.in_transaction()
            and dbapi.autocommit is False
            and dbapi.info.transaction_status == _PG_IDLE
        )
        if autocommit:
            dbapi.autocommit = True
        try:
            cursor = dbapi.cursor()
            try:
                cursor.execute(query.sql, params)
                found: Sequence[Any] | None = cursor.fetchone()
                return found
            finally:
                cursor.close()
        finally:
            if autocommit:
                dbapi.autocommit = False
            elif dialect.name == "sqlite":
                conn.rollback()  # the read's transaction (if the driver began one) ends here
    except dialect.loaded_dbapi.Error as e:
        # as the engine raises a driver's error (a SQLAlchemyError: the callers' handling is the same)
        raise DBAPIError.instance(query.sql, params, e, dialect.loaded_dbapi.Error, dialect=dialect) from e


def _anchored(service: LedgerService, digest: bytes, status: ReadingStatus | None) -> ProofRow:
    """The reading's proof row (of ``status`` when it is this reading's), anchored;
    :class:`ProofPending` while it is not."""
    if status is not None and bytes(status.row.digest) == digest:
        return anchored(ProofRow.of_status(status))
    return anchored(stored_proof(service, digest)[0])


def anchored(row: ProofRow) -> ProofRow:
    """``row``, when its batch is anchored on chain; :class:`ProofPending` while it is not."""
    if row.batch_status != BatchStatus.ANCHORED:
        status = "pending" if row.batch_status is None else "batched"
        raise ProofPending(
            f"reading 0x{row.digest.hex()} is {status}: its batch is not anchored yet; "
            "retry in a few seconds",
            status=status,
            expected_batch=None if row.batch_status is None else row.batch_id,
        )
    return row


def proof_bundle(
    service: LedgerService, digest: bytes, *, status: ReadingStatus | None = None
) -> dict[str, Any]:
    """The spec's proof bundle (section 6); :class:`ProofPending` while not anchored. ``status``: the
    reading's, when the caller read it already (the access guard does). The proof is the reading's
    stored path (issue 17.3): no other row is read, nothing is rebuilt."""
    return BundleMaker(service).bundle(_anchored(service, digest, status))


#: Serialized proof bundles kept (about 1.7 kB each for a 10,000-reading batch; the oldest go first).
BUNDLE_CACHE: Final = 16_384
_bundles: dict[tuple[Any, ...], bytes] = {}
_bundles_lock = threading.Lock()


def proof_bundle_json(service: LedgerService, digest: bytes, *, status: ReadingStatus | None = None) -> bytes:
    """:func:`proof_bundle` serialized (as the API sends it: ``dumps_exact``). The reading and its batch
    are read as for :func:`proof_bundle` on every call (a reorg un-anchors a batch, and the proof is
    refused again at once); the bytes are kept (:func:`proof_json`)."""
    return proof_json(service, _anchored(service, digest, status))


def proof_json(service: LedgerService, row: ProofRow, maker: BundleMaker | None = None) -> bytes:
    """The serialized bundle of ``row`` as read now (:class:`ProofPending` unless anchored). The bytes
    are kept keyed by the deployment's domain and everything the bundle is made of (the whole row:
    the reading, its signature and path, its batch's id, root, chain id and transaction), so a kept
    answer is the one a build would give: nothing needs invalidating, and a batch a reorg un-anchored
    is refused from the row before anything kept is looked at."""
    anchored(row)
    deployment = service.deployment
    key = (deployment.chain_id, deployment.contracts.get("ReadingAnchor"), row)
    found = _bundles.get(key)
    if found is not None:
        return found
    body = dumps_exact((maker or BundleMaker(service)).bundle(row))
    with _bundles_lock:
        if len(_bundles) >= BUNDLE_CACHE:
            _bundles.pop(next(iter(_bundles)), None)
        _bundles[key] = body
    return body


#: A stored reading's keys, in the order it is stored and served (``Reading.to_json_obj``'s).
_READING_ORDER: Final = ("device_id", "seq", "ts_ms", "lot_id", "metrics")
_SCHEMES: Final = frozenset(s.value for s in Scheme)
#: The bundle's bounds (:class:`ProofBundle`'s fields) its fast assembly checks.
_MAX_SIGNATURE: Final = 1024
_MAX_UINT256: Final = 2**256 - 1
#: Floats below this (in magnitude) were floats in the stored JSON (orjson reads larger integers as
#: floats; :func:`~ledger_service.jsonio.loads_exact` keeps them exact).
_EXACT_FLOAT: Final = float(2**53)
#: A transaction hash as the bundle writes it (``anchor_tx``: 0x and 64 lower-case hex digits).
_TX_HASH: Final = re.compile(r"0x[0-9a-f]{64}")


def _quick_reading(reading_json: str, domain: Domain) -> tuple[dict[str, Any], bytes] | None:
    """A stored reading's JSON object and digest without the pydantic model, when the stored JSON is
    plainly as the service writes it (its keys in order, each of its JSON type); None otherwise (the
    model then decides). The digest is checked against the stored one by the caller: a reading that
    hashes to it is the one accepted (and validated) at ingest."""
    try:
        obj = orjson.loads(reading_json)  # exact but for integers beyond 64 bits (floats then: below)
    except orjson.JSONDecodeError:
        return None
    if type(obj) is not dict or tuple(obj) != _READING_ORDER:
        return None
    device_id, seq, ts_ms, lot_id, metrics = obj.values()
    if (
        type(device_id) is not str
        or type(seq) is not int
        or type(ts_ms) is not int
        or not (lot_id is None or type(lot_id) is str)
        or type(metrics) is not dict
        or not metrics
    ):
        return None
    for name, value in metrics.items():
        if type(name) is not str or not (
            type(value) is int or (type(value) is float and -_EXACT_FLOAT < value < _EXACT_FLOAT)
        ):
            return None  # a float this large may have been a larger integer: loads_exact decides
    try:
        digest = reading_digest(ReadingFields(device_id, seq, ts_ms, lot_id, metrics), domain)
    except (ValueError, OverflowError, ArithmeticError):
        return None
    return obj, digest


#: Tree nodes whose stored path was checked to lead to their batch's root: (root, node) -> the path's
#: rest from that node up (its siblings, concatenated). Only nodes :data:`_CHECKED_LEVEL` levels or
#: more above the leaves (a node of a 10,000-reading batch's level 4 stands for 16 readings: some
#: 400 kB for the batch); at most :data:`_CHECKED_MAX` (then forgotten at once).
_checked: dict[tuple[bytes, bytes], bytes] = {}
_CHECKED_LEVEL: Final = 4
_CHECKED_MAX: Final = 65_536


def _check_path(leaf: bytes, path: bytes, proof: list[bytes], root: bytes) -> None:
    """:class:`ProofMismatch` unless ``proof`` (``path`` split) leads from ``leaf`` to ``root``
    (:func:`~device_attestation.merkle.verify_inclusion`'s check, on nodes sized already). The hashing
    stops at a node reached before, on a path whose rest is the very one checked from it then: the
    path leads to the root as that one did (issue 17.3: a cold proof's hashing was most of its CPU)."""
    computed = leaf
    seen: list[tuple[bytes, int]] = []
    for i, node in enumerate(proof):
        if i >= _CHECKED_LEVEL:
            if _checked.get((root, computed)) == path[i * NODE :]:
                break
            seen.append((computed, i))
        computed = hash_pair(computed, node)
    else:
        if computed != root:
            raise ProofMismatch(expected=root, computed=computed)
    if seen:
        if len(_checked) + len(seen) > _CHECKED_MAX:
            _checked.clear()
        for value, i in seen:
            _checked[(root, value)] = path[i * NODE :]


class BundleMaker:
    """Assembles the proof bundles of anchored readings from their stored proof paths. A reading
    batched before paths were stored (none after migration 0012 fills them; a batch closed by an
    older instance) has its path read from its batch's stored node array, once per batch."""

    def __init__(self, service: LedgerService) -> None:
        self.service = service
        self.domain = cached_domain(service.deployment.chain_id, service.deployment.address("ReadingAnchor"))
        self._nodes: dict[int, bytes] = {}

    def bundle(self, row: ProofRow) -> dict[str, Any]:
        """The bundle of ``row`` (anchored); checked to lead to its batch's root before it is returned,
        as :func:`auditor.bundle.build_bundle` checks it (the same wire format, byte for byte).

        The plain case is assembled directly (issue 17.3: the pydantic models cost more than the rest
        of a cold proof): the reading's JSON as stored, its digest recomputed and compared, the path
        checked to the root, the bundle's fields within :class:`ProofBundle`'s bounds. Anything else
        (a reading stored otherwise, a field out of bounds) goes through the models, which refuse it
        with their errors."""
        assert row.batch_id is not None and row.root is not None
        assert row.chain_batch_id is not None and row.tx_hash is not None
        domain = self.domain
        quick = _quick_reading(row.reading_json, domain)
        if quick is None:
            reading = Reading.from_json_obj(loads_exact(row.reading_json))
            obj, digest = reading.to_json_obj(), reading_digest(reading, domain)
        else:
            obj, digest = quick
        if digest != row.digest:
            raise ContractsError(
                f"reading 0x{row.digest.hex()} hashes to 0x{digest.hex()} under this deployment's "
                "domain: the store is not this deployment's"
            )
        path = row.proof_path if row.proof_path is not None else self._path_from_tree(row.batch_id, digest)
        proof = split_path(path)
        root = row.root
        _check_path(leaf_hash(digest), path, proof, root)
        tx = row.tx_hash
        if (
            quick is None
            or row.scheme not in _SCHEMES
            or len(row.signature) > _MAX_SIGNATURE
            or len(proof) > MAX_PROOF_LENGTH
            or not 1 <= row.chain_batch_id <= _MAX_UINT256
            or not 1 <= domain.chain_id <= _MAX_UINT256
            or _TX_HASH.fullmatch(tx) is None
        ):
            return ProofBundle(
                reading=reading if quick is None else Reading.from_json_obj(obj),
                scheme=row.scheme,
                signature=row.signature,
                digest=digest,
                batch_id=row.chain_batch_id,
                root=root,
                proof=tuple(proof),
                chain_id=domain.chain_id,
                anchor_contract=domain.verifying_contract,
                anchor_tx=tx,
            ).to_json_obj()
        return {  # ProofBundle.to_json_obj's keys and values
            "reading": obj,
            "scheme": row.scheme,
            "signature": "0x" + row.signature.hex(),
            "digest": "0x" + digest.hex(),
            "batch_id": row.chain_batch_id,
            "root": "0x" + root.hex(),
            "proof": ["0x" + p.hex() for p in proof],
            "chain_id": domain.chain_id,
            "anchor_contract": domain.verifying_contract,
            "anchor_tx": tx,
        }

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
