"""SQLModel tables of the ledger. Table models are never served directly by the API."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, Index, Integer, LargeBinary, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

#: An auto-incrementing 64-bit key (SQLite needs INTEGER to alias the rowid).
BigId = BigInteger().with_variant(Integer(), "sqlite")


class ReadingRow(SQLModel, table=True):
    """An accepted reading, exactly as signed, and the batch it went into."""

    __tablename__ = "readings"
    __table_args__ = (
        UniqueConstraint("device_id", "seq", name="uq_readings_device_seq"),
        Index("ix_readings_batch", "batch_id"),
        Index("ix_readings_lot_anchoring", "lot_id", "batch_id", "id"),
        Index("ix_readings_device_anchoring", "device_id", "batch_id", "id"),
        # what waits for a batch, and nothing else: counted (with its oldest arrival) and taken in id
        # order from this index alone, however many readings are batched (issue 17; migration 0019)
        Index(
            "ix_readings_waiting",
            "id",
            "received_ms",
            postgresql_where=text("batch_id IS NULL"),
            sqlite_where=text("batch_id IS NULL"),
        ),
    )

    id: int | None = Field(default=None, sa_column=Column(BigId, primary_key=True, autoincrement=True))
    digest: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False, unique=True))
    device_id: str = Field(max_length=64, nullable=False)
    seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    ts_ms: int = Field(sa_column=Column(BigInteger, nullable=False))
    lot_id: str | None = Field(default=None, max_length=64)
    scheme: str = Field(max_length=16, nullable=False)
    signature: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    reading_json: str = Field(sa_column=Column(Text, nullable=False))
    received_ms: int = Field(sa_column=Column(BigInteger, nullable=False))
    source: str = Field(max_length=8, nullable=False)
    #: The sequence numbers the device had skipped before this reading, when it was accepted.
    gap_first: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    gap_last: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    batch_id: int | None = Field(default=None, foreign_key="batches.id")
    #: The reading's proof path in its batch's tree (the sibling hashes from its leaf up, concatenated),
    #: stored when the batch is closed so a proof is this row alone; None until batched.
    proof_path: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))


class DeviceHeadRow(SQLModel, table=True):
    """Each device's highest accepted sequence number (and its time), readings and gap counts.

    ``gaps`` counts the times the device skipped sequence numbers; ``missing`` how many
    numbers below ``last_seq`` are not (yet) in the ledger: late store-and-forward
    readings fill them.
    """

    __tablename__ = "device_heads"

    device_id: str = Field(primary_key=True, max_length=64)
    last_seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    last_ts_ms: int = Field(sa_column=Column(BigInteger, nullable=False))
    readings: int = Field(sa_column=Column(BigInteger, nullable=False, default=0))
    gaps: int = Field(sa_column=Column(BigInteger, nullable=False, default=0))
    missing: int = Field(sa_column=Column(BigInteger, nullable=False, default=0))


class EquivocationRow(SQLModel, table=True):
    """Evidence against a device: two different readings signed with the same (device, seq)."""

    __tablename__ = "equivocations"
    __table_args__ = (
        UniqueConstraint("device_id", "seq", "conflicting_digest", name="uq_equivocations_evidence"),
    )

    id: int | None = Field(default=None, sa_column=Column(BigId, primary_key=True, autoincrement=True))
    device_id: str = Field(max_length=64, nullable=False, index=True)
    seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    accepted_digest: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))
    conflicting_digest: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))
    conflicting_submission: str = Field(sa_column=Column(Text, nullable=False))
    detected_ms: int = Field(sa_column=Column(BigInteger, nullable=False))


class BatchRow(SQLModel, table=True):
    """A closed batch: its tree, and where it stands on chain.

    status: ``closed`` (tree built, not sent), ``submitted`` (transaction sent),
    ``anchored`` (mined with enough confirmations).
    """

    __tablename__ = "batches"

    id: int | None = Field(default=None, sa_column=Column(BigId, primary_key=True, autoincrement=True))
    root: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False, unique=True))
    count: int = Field(nullable=False)
    tree: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    status: str = Field(max_length=16, nullable=False, index=True)
    created_ms: int = Field(sa_column=Column(BigInteger, nullable=False))
    oldest_received_ms: int = Field(sa_column=Column(BigInteger, nullable=False))
    attempts: int = Field(default=0, nullable=False)
    next_attempt_ms: int = Field(sa_column=Column(BigInteger, nullable=False, default=0))
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    tx_hash: str | None = Field(default=None, max_length=66)
    submitted_ms: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    block_number: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    block_hash: str | None = Field(default=None, max_length=66)
    chain_batch_id: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    anchored_ms: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    gas_used: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))


class DeviceCacheRow(SQLModel, table=True):
    """The registry's view of a device, mirrored from chain events."""

    __tablename__ = "devices"

    device_id_hash: bytes = Field(sa_column=Column(LargeBinary(32), primary_key=True))
    scheme: int = Field(nullable=False)
    owner: str = Field(max_length=42, nullable=False)
    signer: str = Field(max_length=42, nullable=False)
    key_x: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))
    key_y: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))
    active_from_ms: int = Field(sa_column=Column(BigInteger, nullable=False))
    revoked_at_ms: int = Field(sa_column=Column(BigInteger, nullable=False, default=0))
    cert_fingerprint: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))
    ca_key_hash: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))
    block_number: int = Field(sa_column=Column(BigInteger, nullable=False))


class MetaRow(SQLModel, table=True):
    """Small key/value state (the last chain block mirrored, the deployment the store belongs to)."""

    __tablename__ = "meta"

    key: str = Field(primary_key=True, max_length=64)
    value: str = Field(sa_column=Column(Text, nullable=False))


class UsedNonceRow(SQLModel, table=True):
    """Single-use request nonces of authenticated parties (replays are refused)."""

    __tablename__ = "used_nonces"

    nonce: str = Field(primary_key=True, max_length=128)
    party: str = Field(max_length=42, nullable=False)
    expires_ms: int = Field(sa_column=Column(BigInteger, nullable=False, index=True))


class AnalyticsResultRow(SQLModel, table=True):
    """A published analytics result (profile or yield model) with its commitment.

    The inputs are not copied here: ``params_json`` names them (devices, period, the last
    anchored batch and the chain block they were read at), so ``supet analytics recompute``
    reads them again from the readings and the chain.
    """

    __tablename__ = "analytics_results"

    commitment: str = Field(primary_key=True, max_length=66)
    kind: str = Field(max_length=16, nullable=False, index=True)
    subject: str = Field(max_length=128, nullable=False, index=True)
    params_json: str = Field(sa_column=Column(Text, nullable=False))
    commitment_json: str = Field(sa_column=Column(Text, nullable=False))
    result_json: str = Field(sa_column=Column(Text, nullable=False))
    created_ms: int = Field(sa_column=Column(BigInteger, nullable=False))


class AccessLogBatchRow(SQLModel, table=True):
    """A closed batch of the bank-query access log and where it stands on chain.

    status: ``closed`` (root computed, not sent), ``submitted`` (``anchorAccessLog`` sent),
    ``anchored`` (mined). ``chain_index`` is the CreditRegistry's batch number (from 1).
    """

    __tablename__ = "access_log_batches"

    id: int | None = Field(default=None, sa_column=Column(BigId, primary_key=True, autoincrement=True))
    root: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False, unique=True))
    count: int = Field(nullable=False)
    from_ms: int = Field(sa_column=Column(BigInteger, nullable=False))
    to_ms: int = Field(sa_column=Column(BigInteger, nullable=False))
    status: str = Field(max_length=16, nullable=False, index=True)
    created_ms: int = Field(sa_column=Column(BigInteger, nullable=False))
    attempts: int = Field(default=0, nullable=False)
    next_attempt_ms: int = Field(sa_column=Column(BigInteger, nullable=False, default=0))
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    tx_hash: str | None = Field(default=None, max_length=66)
    submitted_ms: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    block_number: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    chain_index: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    anchored_ms: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))


class AccessLogRow(SQLModel, table=True):
    """One attempt to read a factory's credit data (answered or refused), written before the answer.

    ``digest`` is :func:`ledger_service.credit_desk.access_log.entry_digest` of the other fields; the
    batch that anchors it is ``batch_id``. ``factory`` is empty when the attempt named none (a
    refused listing).
    """

    __tablename__ = "access_log"
    __table_args__ = (
        Index("ix_access_log_factory", "factory", "id"),
        Index("ix_access_log_pending", "batch_id", "id"),
    )

    id: int | None = Field(default=None, sa_column=Column(BigId, primary_key=True, autoincrement=True))
    digest: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False, unique=True))
    request_id: str = Field(max_length=64, nullable=False)
    ts_ms: int = Field(sa_column=Column(BigInteger, nullable=False))
    party: str = Field(max_length=42, nullable=False)
    factory: str = Field(max_length=42, nullable=False)
    action: str = Field(max_length=32, nullable=False)
    outcome: str = Field(max_length=48, nullable=False)
    batch_id: int | None = Field(default=None, foreign_key="access_log_batches.id")


class RevokedTokenRow(SQLModel, table=True):
    """A party token ended before its expiry (sign-out): refused on every request until it expires.

    ``jti`` is the token's id. ``expires_ms`` is the token's own expiry: after it the token is
    refused anyway, so the row may be purged.
    """

    __tablename__ = "revoked_tokens"

    jti: str = Field(primary_key=True, max_length=64)
    party: str = Field(max_length=42, nullable=False)
    expires_ms: int = Field(sa_column=Column(BigInteger, nullable=False, index=True))
    revoked_ms: int = Field(sa_column=Column(BigInteger, nullable=False))


class AccessRefusalTallyRow(SQLModel, table=True):
    """Refused credit queries of parties not admitted as banks, counted per (factory, reason, hour).

    Not the access log: these attempts prove nothing about a bank (anyone can make a key and ask),
    so they are counted here, bounded, and never anchored. ``factory`` is ``""`` when the attempt
    named none and ``"*"`` for the catch-all row of an hour whose per-factory rows are at their cap.
    ``last_party`` and ``last_request_id`` are the latest such attempt's.
    """

    __tablename__ = "access_refusal_tally"
    __table_args__ = (
        UniqueConstraint("factory", "window_ms", "reason", name="uq_access_refusal_tally_key"),
        Index("ix_access_refusal_tally_window", "window_ms"),
    )

    id: int | None = Field(default=None, sa_column=Column(BigId, primary_key=True, autoincrement=True))
    factory: str = Field(max_length=42, nullable=False)
    reason: str = Field(max_length=48, nullable=False)
    window_ms: int = Field(sa_column=Column(BigInteger, nullable=False))
    count: int = Field(sa_column=Column(BigInteger, nullable=False))
    first_ms: int = Field(sa_column=Column(BigInteger, nullable=False))
    last_ms: int = Field(sa_column=Column(BigInteger, nullable=False))
    last_party: str = Field(max_length=42, nullable=False)
    last_request_id: str = Field(max_length=64, nullable=False)


class LotAuditorRow(SQLModel, table=True):
    """An auditor named by a lot's holder: it may read that lot's evidence (issue 14, the access policy).

    ``lot_key`` is the lot's on-chain key (0x-hex), or for a lot not on chain ``lot_key(lot_id,
    issuer)``. ``withdrawn_ms`` is set when the party that named the auditor withdraws it.
    """

    __tablename__ = "lot_auditors"
    __table_args__ = (Index("ix_lot_auditors_lot", "lot_key", "auditor"),)

    id: int | None = Field(default=None, sa_column=Column(BigId, primary_key=True, autoincrement=True))
    lot_key: str = Field(max_length=66, nullable=False)
    lot_id: str = Field(max_length=256, nullable=False)
    auditor: str = Field(max_length=42, nullable=False)
    named_by: str = Field(max_length=42, nullable=False)
    named_ms: int = Field(sa_column=Column(BigInteger, nullable=False))
    withdrawn_ms: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))


class LotDisclosureRow(SQLModel, table=True):
    """A lot whose evidence its holder or buyer disclosed: readable by anyone (issue 14).

    One row per lot (the first disclosure); a disclosure is not withdrawn: what was public stays read.
    """

    __tablename__ = "lot_disclosures"
    __table_args__ = (UniqueConstraint("lot_key", name="uq_lot_disclosures_lot"),)

    id: int | None = Field(default=None, sa_column=Column(BigId, primary_key=True, autoincrement=True))
    lot_key: str = Field(max_length=66, nullable=False)
    lot_id: str = Field(max_length=256, nullable=False)
    issuer: str = Field(max_length=42, nullable=False)
    disclosed_by: str = Field(max_length=42, nullable=False)
    disclosed_ms: int = Field(sa_column=Column(BigInteger, nullable=False))


class CreditOpeningRow(SQLModel, table=True):
    """A published credit record with its salt (issue 14): what the chain commits to and does not show.

    ``record_commitment`` is the salted hash on chain; ``opening_json`` the record itself
    (:class:`contracts.credit_record.CreditOpening`'s JSON, with the salt), served only to a bank with
    a standing consent. ``record_index`` is the record's place in its oracle's history of the factory
    (None until the record is mined).
    """

    __tablename__ = "credit_openings"
    __table_args__ = (Index("ix_credit_openings_factory", "factory", "oracle", "record_index"),)

    record_commitment: str = Field(primary_key=True, max_length=66)
    factory: str = Field(max_length=42, nullable=False)
    oracle: str = Field(max_length=42, nullable=False)
    record_index: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    analytics_commitment: str = Field(max_length=66, nullable=False)
    opening_json: str = Field(sa_column=Column(Text, nullable=False))
    created_ms: int = Field(sa_column=Column(BigInteger, nullable=False))


class ConsentOpeningRow(SQLModel, table=True):
    """A factory's consent to a bank, opened (issue 14): what the chain keys by ``consent_id`` and does
    not show.

    ``consent_id`` is ``keccak256(abi.encode(factory, bank, salt))`` (contracts/credit_consent.py), the
    only thing the CreditRegistry holds; ``factory``, ``bank`` and ``salt`` are its opening, kept so the
    service can tell which bank a consent on chain is for, and served only to the factory and the bank.
    The chain's standing (granted, revoked, expired) is read from the chain at each use, never stored.
    ``source`` is how the opening arrived: ``prepared`` (the service made it for a grant it prepared) or
    ``registered`` (the factory granted directly and registered the opening).
    """

    __tablename__ = "consent_openings"
    __table_args__ = (
        Index("ix_consent_openings_pair", "factory", "bank"),
        Index("ix_consent_openings_bank", "bank"),
    )

    consent_id: str = Field(primary_key=True, max_length=66)
    factory: str = Field(max_length=42, nullable=False)
    bank: str = Field(max_length=42, nullable=False)
    salt: str = Field(max_length=66, nullable=False)
    source: str = Field(max_length=16, nullable=False)
    created_ms: int = Field(sa_column=Column(BigInteger, nullable=False))


class CreditRatingRow(SQLModel, table=True):
    """A credit record the re-rating job published (issue 15): its grade, the grade before and why.

    ``record_commitment`` is the record's commitment on chain (its figures are in ``credit_openings``);
    ``previous_record_commitment`` the record it supersedes, unique: of two passes (or two service
    instances) rating the same record, only the one that claims it first publishes. ``status`` is
    ``claimed`` from the claim until the record is mined, then ``published``; a claim whose record never
    reached the chain is dropped by a later pass. ``reason`` and ``changes_json`` (the features that
    moved, :class:`finance.rating_change.RatingChange`) are served to consented banks only, never put on
    chain. ``basis_json`` is what the next pass re-rates from: the unit price or revenue, currency and
    validity. Grades are ranks on the master scale (1 = S1 .. 10 = S10).
    """

    __tablename__ = "credit_ratings"
    __table_args__ = (
        UniqueConstraint("previous_record_commitment", name="uq_credit_ratings_previous"),
        Index("ix_credit_ratings_factory", "factory", "created_ms"),
    )

    record_commitment: str = Field(primary_key=True, max_length=66)
    previous_record_commitment: str = Field(max_length=66, nullable=False)
    factory: str = Field(max_length=42, nullable=False)
    record_index: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    grade: int = Field(nullable=False)
    previous_grade: int | None = Field(default=None, nullable=True)
    reason: str = Field(sa_column=Column(Text, nullable=False))
    changes_json: str = Field(sa_column=Column(Text, nullable=False))
    profile_commitment: str = Field(max_length=66, nullable=False)
    assessment_commitment: str = Field(max_length=66, nullable=False)
    basis_json: str = Field(sa_column=Column(Text, nullable=False))
    status: str = Field(max_length=16, nullable=False)
    tx_hash: str | None = Field(default=None, max_length=66, nullable=True)
    created_ms: int = Field(sa_column=Column(BigInteger, nullable=False))
    published_ms: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))


class LotMirrorRow(SQLModel, table=True):
    """A lot on chain, mirrored from the LotRegistry's events for tracing (issue 15; the chain is the truth:
    ``ledger_service.lots.trace`` re-checks a trace against it).

    ``key`` is the lot's on-chain key (0x-hex). ``quantity`` is a decimal string (uint256). ``parent_key``
    is set for a split-off child, ``produced_by`` for a transformation output. ``recall_notice`` is the
    notice it is recalled or flagged under (None: none).
    """

    __tablename__ = "lot_mirror"

    key: str = Field(primary_key=True, max_length=66)
    lot_id: str = Field(max_length=256, nullable=False)
    issuer: str = Field(max_length=42, nullable=False)
    supplier: str = Field(max_length=42, nullable=False)
    custodian: str = Field(max_length=42, nullable=False)
    gtin: int = Field(sa_column=Column(BigInteger, nullable=False))
    quantity: str = Field(max_length=80, nullable=False)
    unit: str = Field(max_length=32, nullable=False)
    status: str = Field(max_length=16, nullable=False)
    parent_key: str | None = Field(default=None, max_length=66)
    produced_by: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    opened_block: int = Field(sa_column=Column(BigInteger, nullable=False))
    recall_notice: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))


class LotEdgeRow(SQLModel, table=True):
    """One lineage edge: ``child_key`` was split off (``kind`` ``split``) or made from (``transform``, in
    transformation ``transformation_id``) ``parent_key``; ``quantity`` is the child's (split) or the
    quantity of the parent consumed (transform), a decimal string. Both directions are indexed."""

    __tablename__ = "lot_edges"
    __table_args__ = (
        UniqueConstraint("parent_key", "child_key", name="uq_lot_edges_pair"),
        Index("ix_lot_edges_child", "child_key", "parent_key"),
    )

    id: int | None = Field(default=None, sa_column=Column(BigId, primary_key=True, autoincrement=True))
    parent_key: str = Field(max_length=66, nullable=False)
    child_key: str = Field(max_length=66, nullable=False)
    kind: str = Field(max_length=16, nullable=False)
    transformation_id: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    quantity: str = Field(max_length=80, nullable=False)
    block_number: int = Field(sa_column=Column(BigInteger, nullable=False))


class LotVerdictRow(SQLModel, table=True):
    """A quality verdict on a lot (the QualityCertifier's ``LotCertified`` / ``LotRejected``), in chain
    order."""

    __tablename__ = "lot_verdicts"
    __table_args__ = (
        UniqueConstraint("block_number", "log_index", name="uq_lot_verdicts_log"),
        Index("ix_lot_verdicts_lot", "lot_key"),
    )

    id: int | None = Field(default=None, sa_column=Column(BigId, primary_key=True, autoincrement=True))
    lot_key: str = Field(max_length=66, nullable=False)
    verdict: str = Field(max_length=16, nullable=False)
    spec_version: int = Field(nullable=False)
    reason: str | None = Field(default=None, max_length=32)
    by: str = Field(max_length=42, nullable=False)
    block_number: int = Field(sa_column=Column(BigInteger, nullable=False))
    log_index: int = Field(nullable=False)


class RecallNoticeRow(SQLModel, table=True):
    """A recall notice on chain (``LotRegistry.recall``), mirrored; ``reason`` is its text when this service
    recorded the recall (the chain holds only ``reason_hash``), shown to the parties entitled to a trace."""

    __tablename__ = "recall_notices"

    notice_id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    root_key: str = Field(max_length=66, nullable=False)
    by: str = Field(max_length=42, nullable=False)
    at: int = Field(sa_column=Column(BigInteger, nullable=False))
    reason_hash: str = Field(max_length=66, nullable=False)
    reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    flagged: int = Field(sa_column=Column(BigInteger, nullable=False, default=0))
    block_number: int = Field(sa_column=Column(BigInteger, nullable=False))


class LotHolderRow(SQLModel, table=True):
    """A party that held a lot, now or before (its producer, then each custodian that accepted it), mirrored
    from the LotRegistry's events: whom a recall notice on the lot concerns (issue 15)."""

    __tablename__ = "lot_holders"
    __table_args__ = (Index("ix_lot_holders_party", "party", "lot_key"),)

    lot_key: str = Field(primary_key=True, max_length=66)
    party: str = Field(primary_key=True, max_length=42)


class EnrollmentChallengeRow(SQLModel, table=True):
    """An open proof-of-possession challenge of device enrollment (``POST /v1/devices/challenge``), bound to
    the party that asked for it; shared by every instance on the database.

    Single use: redeeming deletes the row (one ``DELETE`` by nonce and party: of two instances redeeming
    at once, one deletes it). ``expires_ms`` is when it is dropped (a minute after the device's answer
    is too late, so a late answer is told "stale"); rows past it are purged. The per-party limit of open
    challenges is counted here (index ``party``, ``expires_ms``).
    """

    __tablename__ = "enrollment_challenges"
    __table_args__ = (
        Index("ix_enrollment_challenges_party", "party", "expires_ms"),
        Index("ix_enrollment_challenges_expires", "expires_ms"),
    )

    nonce: bytes = Field(sa_column=Column(LargeBinary(32), primary_key=True))
    party: str = Field(max_length=42, nullable=False)
    audience: str = Field(max_length=128, nullable=False)
    issued_s: int = Field(sa_column=Column(BigInteger, nullable=False))
    expires_ms: int = Field(sa_column=Column(BigInteger, nullable=False))


class PreparedEnrollmentRow(SQLModel, table=True):
    """An enrollment the service verified (``POST /v1/devices``), waiting for the party's signed transaction:
    the exact registry call (``data``, ABI-encoded; ``fn_name`` names it) and the certificate it was
    verified with, so any instance relays only this call and confirms the mined enrollment against this
    certificate. One per (party, device): preparing again replaces it; confirming deletes it; rows past
    ``expires_ms`` are purged."""

    __tablename__ = "prepared_enrollments"
    __table_args__ = (Index("ix_prepared_enrollments_expires", "expires_ms"),)

    party: str = Field(primary_key=True, max_length=42)
    device_id: str = Field(primary_key=True, max_length=64)
    scheme: str = Field(max_length=16, nullable=False)
    fn_name: str = Field(max_length=32, nullable=False)
    data: str = Field(sa_column=Column(Text, nullable=False))
    cert_fingerprint: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))
    ca_key_hash: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))
    active_from_ms: int = Field(sa_column=Column(BigInteger, nullable=False))
    prepared_ms: int = Field(sa_column=Column(BigInteger, nullable=False))
    expires_ms: int = Field(sa_column=Column(BigInteger, nullable=False))


class YieldWindowSetRow(SQLModel, table=True):
    """A line's operating-window set, one row per version (issue 16.3): the newest version is the one the
    live check applies; earlier ones are kept (history).

    ``set_json`` is the canonical JSON of :class:`analytics.yield_windows.WindowSet`, ``commitment`` its
    analytics commitment (the same record is in ``analytics_results``, kind ``windows``).
    ``from_reading_id``: the highest reading id stored when the set was published; the check applies the
    set to readings stored after it.
    """

    __tablename__ = "yield_window_sets"
    __table_args__ = (UniqueConstraint("factory", "line_id", "version", name="uq_yield_window_sets_version"),)

    id: int | None = Field(default=None, sa_column=Column(BigId, primary_key=True, autoincrement=True))
    factory: str = Field(max_length=42, nullable=False)
    line_id: str = Field(max_length=128, nullable=False)
    version: int = Field(nullable=False)
    commitment: str = Field(max_length=66, nullable=False, unique=True)
    yield_commitment: str = Field(max_length=66, nullable=False)
    set_json: str = Field(sa_column=Column(Text, nullable=False))
    from_reading_id: int = Field(sa_column=Column(BigInteger, nullable=False))
    created_ms: int = Field(sa_column=Column(BigInteger, nullable=False))


class WindowTallyRow(SQLModel, table=True):
    """The live check's count for one parameter of one window set: readings checked, outside the window,
    and the last breach (the reading's time and digest)."""

    __tablename__ = "window_tallies"

    set_id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    parameter: str = Field(primary_key=True, max_length=64)
    checked: int = Field(sa_column=Column(BigInteger, nullable=False, default=0))
    outside: int = Field(sa_column=Column(BigInteger, nullable=False, default=0))
    last_breach_ms: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    last_breach_digest: bytes | None = Field(default=None, sa_column=Column(LargeBinary(32), nullable=True))


class WindowBreachRow(SQLModel, table=True):
    """A reading found outside a window: the newest few per set and parameter are kept (a sample to prove)."""

    __tablename__ = "window_breaches"
    __table_args__ = (Index("ix_window_breaches_set", "set_id", "parameter", "reading_id"),)

    id: int | None = Field(default=None, sa_column=Column(BigId, primary_key=True, autoincrement=True))
    set_id: int = Field(sa_column=Column(BigInteger, nullable=False))
    parameter: str = Field(max_length=64, nullable=False)
    reading_id: int = Field(sa_column=Column(BigInteger, nullable=False))
    digest: bytes = Field(sa_column=Column(LargeBinary(32), nullable=False))
    device_id: str = Field(max_length=64, nullable=False)
    ts_ms: int = Field(sa_column=Column(BigInteger, nullable=False))
    value: float = Field(sa_column=Column(Float, nullable=False))
