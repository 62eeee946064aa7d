"""Typed client of the CreditRegistry: factories' credit records, consent to banks, the access log.

- Records: the analytics oracle publishes a :class:`CreditRecord` per factory: the commitment to the
  record (the salted hash of grade, PD, limit, currency and reasons with the clear fields,
  :mod:`contracts.credit_record`), its validity, model version, and the commitment of the analytics
  result behind it; no figure reaches the chain. A new record supersedes the previous one and the
  history stays readable. Each factory is bound to one
  oracle (the first to publish for it, or the admin's choice): only that oracle publishes its records,
  and the plain reads are of its history; :meth:`CreditRegistryClient.record_at_by` reads any oracle's.
- Envelopes: the record with its salt, encrypted to each consented bank's registered account key
  (:mod:`contracts.credit_envelope`), delivered with the record or later (:class:`Envelope`,
  :meth:`CreditRegistryClient.envelopes_for`), addressed by consent id, never by bank; a bank registers
  its key once (:meth:`CreditRegistryClient.register_envelope_key`).
- Consent: keyed on chain by a consent id, the salted hash of (factory, bank, salt)
  (:mod:`contracts.credit_consent`); the bank never reaches the chain. A factory grants a consent id
  until an expiry and may revoke it (:meth:`CreditRegistryClient.grant_consent` makes the opening and
  returns it: keep it, and hand it to the bank and the service);
  :meth:`CreditRegistryClient.consent_stands` is the chain's standing (granted, not revoked, not
  expired) and :meth:`CreditRegistryClient.consent_standing` checks an opening against it. Whether
  the bank is admitted is not the chain's to say any more: ask the gate where the opening names it.
- Access log: batches of the service's bank-query log anchored as Merkle roots
  (:class:`AccessLogBatch`, numbered from 1), by ``ACCESS_LOG_ANCHOR_ROLE``.
- :func:`deploy_credit_registry` deploys the contract next to a suite.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address
from hexbytes import HexBytes
from web3.contract.contract import ContractFunction
from web3.types import BlockIdentifier

from contracts.chain import Chain, TxResult
from contracts.credit_consent import ConsentOpening, InvalidConsentOpening, new_consent
from contracts.deployment import Deployment
from contracts.errors import ContractsError, DeploymentError

__all__ = [
    "ACCESS_LOG_ANCHOR_ROLE",
    "CONSENT_ACTION",
    "CONTRACT_NAME",
    "PUBLISH_ACTION",
    "QUERY_ACTION",
    "AccessLogBatch",
    "Consent",
    "ConsentGrant",
    "CreditRecord",
    "CreditRegistryClient",
    "DeliveredEnvelope",
    "Envelope",
    "InvalidCreditInput",
    "currency_code",
    "deploy_credit_registry",
    "model_version",
]

CONTRACT_NAME = "CreditRegistry"
#: Admission-gate actions: the oracle publishes, a factory grants consent, a bank queries.
PUBLISH_ACTION = keccak(b"supet.credit.publish")
CONSENT_ACTION = keccak(b"supet.consent.grant")
QUERY_ACTION = keccak(b"supet.credit.query")
#: The role that anchors the bank-query access log (``keccak256("supet.role.access-log-anchor")``,
#: named like every other supET role).
ACCESS_LOG_ANCHOR_ROLE = keccak(b"supet.role.access-log-anchor")
_ZERO_ADDRESS = "0x" + "00" * 20


class InvalidCreditInput(ContractsError):
    """A currency code or model version is unusable (refused before anything reaches the chain)."""

    code = "credit.input"


def currency_code(code: str) -> bytes:
    """The ``bytes3`` of an ISO 4217 code (``"CNY"``); the contract accepts upper-case A-Z only."""
    if len(code) != 3 or not code.isascii() or not code.isalpha() or not code.isupper():
        raise InvalidCreditInput(f"{code!r} is not an ISO 4217 currency code (three upper-case letters)")
    return code.encode("ascii")


def model_version(text: str) -> bytes:
    """``text`` (e.g. ``"scorecard-2026.11"``) as ASCII right-padded to 32 bytes."""
    raw = text.encode("ascii", errors="strict") if text.isascii() else b""
    if not 0 < len(raw) <= 32:
        raise InvalidCreditInput(f"a model version is 1..32 ASCII characters, got {text!r}")
    return raw.ljust(32, b"\0")


def _text(raw: bytes) -> str:
    return bytes(raw).rstrip(b"\0").decode("ascii", errors="replace")


@dataclass(frozen=True, kw_only=True)
class CreditRecord:
    """A published credit record as the chain holds it: no figure, the commitment to them (times in
    Unix seconds). :class:`contracts.credit_record.CreditOpening` is the record itself."""

    factory: str
    index: int
    record_commitment: bytes
    valid_until: int
    published_at: int
    oracle: str
    model_version: bytes
    analytics_commitment: bytes

    @property
    def model_version_text(self) -> str:
        return _text(self.model_version)


@dataclass(frozen=True, kw_only=True)
class Envelope:
    """One consent's envelope: the record with its salt, encrypted to the registered key of the bank
    behind ``consent_id`` (the bank is not named on chain)."""

    consent_id: bytes
    ciphertext: bytes

    def as_tuple(self) -> tuple[bytes, bytes]:
        return (bytes(self.consent_id), bytes(self.ciphertext))


@dataclass(frozen=True, kw_only=True)
class DeliveredEnvelope:
    """A ``CreditEnvelope`` log: record ``index`` of ``factory`` from ``oracle``, sealed under consent
    ``consent_id`` (for the bank its opening names)."""

    factory: str
    consent_id: bytes
    index: int
    oracle: str
    ciphertext: bytes
    block_number: int
    tx_hash: str


@dataclass(frozen=True, kw_only=True)
class Consent:
    """A consent as the chain records it, by its id (all zero when never granted; ``factory`` None then);
    the bank is behind the id. See ``CreditRegistryClient.consent_stands``."""

    consent_id: bytes
    factory: str | None
    granted_at: int
    expires_at: int
    revoked_at: int

    @property
    def ever_granted(self) -> bool:
        return self.granted_at != 0

    @property
    def revoked(self) -> bool:
        return self.revoked_at != 0

    def stands_at(self, now_s: int) -> bool:
        """Granted, not revoked, not expired at chain time ``now_s`` (what ``consentStands`` says)."""
        return self.ever_granted and not self.revoked and now_s < self.expires_at


@dataclass(frozen=True, kw_only=True)
class ConsentGrant:
    """A consent granted on chain by the factory itself: the mined transaction and the opening. Keep
    the opening: the bank needs it to find its envelopes, the service to let the bank read (register it:
    ``POST /v1/consents/openings``); the chain holds only its id."""

    opening: ConsentOpening
    result: TxResult

    @property
    def consent_id(self) -> bytes:
        return self.opening.consent_id

    @property
    def gas_used(self) -> int:
        return self.result.gas_used

    @property
    def tx_hash(self) -> str:
        return self.result.tx_hash


@dataclass(frozen=True, kw_only=True)
class AccessLogBatch:
    """An anchored access-log batch (``from_ms``/``to_ms`` Unix ms, ``anchored_at`` Unix seconds)."""

    index: int
    root: bytes
    count: int
    from_ms: int
    to_ms: int
    anchored_at: int
    anchored_by: str


class CreditRegistryClient:
    """Reads and writes of one CreditRegistry."""

    def __init__(self, chain: Chain, address: str) -> None:
        self.chain = chain
        self.contract = chain.contract(CONTRACT_NAME, address)

    @classmethod
    def from_deployment(cls, chain: Chain, deployment: Deployment) -> CreditRegistryClient:
        return cls(chain, deployment.address(CONTRACT_NAME))

    @property
    def address(self) -> str:
        return str(self.contract.address)

    # --- records

    def publish_record(
        self,
        oracle: LocalAccount,
        factory: str,
        *,
        record_commitment: bytes,
        valid_until: int,
        model_version: bytes,
        analytics_commitment: bytes,
        envelopes: Sequence[Envelope] = (),
    ) -> TxResult:
        """Publish ``factory``'s record commitment as ``oracle``, with envelopes for consented banks
        (``model_version``: 32 bytes, :func:`model_version`)."""
        return self.chain.transact(
            self.publish_call(
                factory,
                record_commitment=record_commitment,
                valid_until=valid_until,
                model_version=model_version,
                analytics_commitment=analytics_commitment,
                envelopes=envelopes,
            ),
            oracle,
        )

    def publish_call(
        self,
        factory: str,
        *,
        record_commitment: bytes,
        valid_until: int,
        model_version: bytes,
        analytics_commitment: bytes,
        envelopes: Sequence[Envelope] = (),
    ) -> ContractFunction:
        """The ``publishRecord`` call (to send, estimate or prepare for an oracle to sign)."""
        return self.contract.functions.publishRecord(
            to_checksum_address(factory),
            record_commitment,
            valid_until,
            model_version,
            analytics_commitment,
            [e.as_tuple() for e in envelopes],
        )

    def deliver_envelopes(
        self, oracle: LocalAccount, factory: str, index: int, envelopes: Sequence[Envelope]
    ) -> TxResult:
        """Deliver envelopes of record ``index`` of ``factory`` (by its bound oracle)."""
        fn = self.contract.functions.deliverEnvelopes(
            to_checksum_address(factory), index, [e.as_tuple() for e in envelopes]
        )
        return self.chain.transact(fn, oracle)

    def register_envelope_key(self, account: LocalAccount, public_key: bytes) -> TxResult:
        """Register ``account``'s own 64-byte public key for the envelopes encrypted to it."""
        return self.chain.transact(self.contract.functions.registerEnvelopeKey(public_key), account)

    def envelope_key_of(self, account: str) -> bytes | None:
        """The envelope key ``account`` registered; None when none."""
        raw = bytes(self.chain.call(self.contract.functions.envelopeKeyOf(to_checksum_address(account))))
        return raw or None

    def envelopes_for(
        self,
        consent_ids: Sequence[bytes] | None,
        *,
        factory: str | None = None,
        index: int | None = None,
        from_block: int = 0,
    ) -> list[DeliveredEnvelope]:
        """The ``CreditEnvelope`` logs sealed under ``consent_ids`` (every envelope when None; of
        ``factory``, of record ``index``), oldest first, read from the node (no service involved). A bank
        passes the ids of the consents it holds the openings of."""
        filters: dict[str, Any] = {}
        if consent_ids is not None:
            if not consent_ids:
                return []
            filters["consentId"] = [bytes(c) for c in consent_ids]
        if factory is not None:
            filters["factory"] = to_checksum_address(factory)
        if index is not None:
            filters["index"] = index
        event = self.contract.events.CreditEnvelope()
        found = self.chain.request(
            lambda: event.get_logs(from_block=from_block, to_block="latest", argument_filters=filters),
            context="CreditEnvelope logs",
        )
        ordered = sorted(found, key=lambda log: (log["blockNumber"], log["logIndex"]))
        return [
            DeliveredEnvelope(
                factory=to_checksum_address(log["args"]["factory"]),
                consent_id=bytes(log["args"]["consentId"]),
                index=int(log["args"]["index"]),
                oracle=to_checksum_address(log["args"]["oracle"]),
                ciphertext=bytes(log["args"]["ciphertext"]),
                block_number=int(log["blockNumber"]),
                tx_hash=HexBytes(log["transactionHash"]).to_0x_hex(),
            )
            for log in ordered
        ]

    def set_factory_oracle(self, admin: LocalAccount, factory: str, oracle: str) -> TxResult:
        """Bind ``factory`` to ``oracle`` (admitted for publishing); by the admin."""
        f, o = to_checksum_address(factory), to_checksum_address(oracle)
        return self.chain.transact(self.contract.functions.setFactoryOracle(f, o), admin)

    def oracle_of(self, factory: str, *, block: BlockIdentifier = "latest") -> str | None:
        """The oracle ``factory`` is bound to; None before its first record."""
        fn = self.contract.functions.oracleOf(to_checksum_address(factory))
        address = str(self.chain.call(fn, block=block))
        return None if int(address, 16) == 0 else to_checksum_address(address)

    def record_count(self, factory: str) -> int:
        """How many records ``factory`` has from its bound oracle."""
        return int(self.chain.call(self.contract.functions.recordCount(to_checksum_address(factory))))

    def record_count_by(self, factory: str, oracle: str) -> int:
        """How many records ``oracle`` published for ``factory`` (bound now or before)."""
        fn = self.contract.functions.recordCountBy(to_checksum_address(factory), to_checksum_address(oracle))
        return int(self.chain.call(fn))

    def record_at_by(
        self, factory: str, oracle: str, index: int, *, block: BlockIdentifier = "latest"
    ) -> CreditRecord:
        """Record ``index`` of ``oracle``'s history of ``factory``: the reader chooses the oracle."""
        address = to_checksum_address(factory)
        fn = self.contract.functions.recordAtBy(address, to_checksum_address(oracle), index)
        return _record(address, index, self.chain.call(fn, block=block))

    def record_at(self, factory: str, index: int, *, block: BlockIdentifier = "latest") -> CreditRecord:
        address = to_checksum_address(factory)
        t = self.chain.call(self.contract.functions.recordAt(address, index), block=block)
        return _record(address, index, t)

    def current_record(self, factory: str, *, block: BlockIdentifier = "latest") -> CreditRecord:
        """The bound oracle's latest record, valid or not (``CreditRegistryNoRecord`` when there is none)."""
        address = to_checksum_address(factory)
        t = self.chain.call(self.contract.functions.currentRecord(address), block=block)
        index = int(self.chain.call(self.contract.functions.recordCount(address), block=block)) - 1
        return _record(address, index, t)

    def is_current_valid(self, factory: str, *, block: BlockIdentifier = "latest") -> bool:
        fn = self.contract.functions.isCurrentValid(to_checksum_address(factory))
        return bool(self.chain.call(fn, block=block))

    # --- consent

    def grant_consent(
        self, factory: LocalAccount, bank: str, *, expires_at: int, salt: bytes | None = None
    ) -> ConsentGrant:
        """Grant ``bank`` consent until ``expires_at`` (Unix seconds), as the factory, under a fresh
        consent id (or the one of ``salt``: renewing a consent the factory holds the opening of). Only
        the id reaches the chain; the opening comes back to the caller, who keeps it."""
        opening = (
            new_consent(factory.address, bank)
            if salt is None
            else ConsentOpening(factory=factory.address, bank=bank, salt=salt)
        )
        return ConsentGrant(
            opening=opening, result=self.grant_consent_id(factory, opening.consent_id, expires_at=expires_at)
        )

    def grant_consent_id(self, factory: LocalAccount, consent_id: bytes, *, expires_at: int) -> TxResult:
        """``grantConsent(consentId, expiresAt)`` as the factory (the id made by :func:`consent_id`)."""
        return self.chain.transact(self.grant_call(consent_id, expires_at), factory)

    def grant_call(self, consent_id: bytes, expires_at: int) -> ContractFunction:
        """The ``grantConsent`` call (to send, estimate or prepare for the factory to sign)."""
        return self.contract.functions.grantConsent(_consent_bytes(consent_id), expires_at)

    def revoke_call(self, consent_id: bytes) -> ContractFunction:
        """The ``revokeConsent`` call (to send, estimate or prepare for the factory to sign)."""
        return self.contract.functions.revokeConsent(_consent_bytes(consent_id))

    def revoke_consent(self, factory: LocalAccount, consent: bytes | ConsentOpening) -> TxResult:
        """Revoke the factory's standing consent (by its id or its opening)."""
        cid = consent.consent_id if isinstance(consent, ConsentOpening) else consent
        return self.chain.transact(self.revoke_call(cid), factory)

    def consent_stands(self, consent_id: bytes, *, block: BlockIdentifier = "latest") -> bool:
        """Whether consent ``consent_id`` stands on chain (granted, not revoked, not expired); it says
        nothing of the bank: see :meth:`consent_standing` for an opening."""
        fn = self.contract.functions.consentStands(_consent_bytes(consent_id))
        return bool(self.chain.call(fn, block=block))

    def consent_of(self, consent_id: bytes, *, block: BlockIdentifier = "latest") -> Consent:
        """The consent ``consent_id`` as recorded (all zero when never granted)."""
        cid = _consent_bytes(consent_id)
        factory, granted_at, expires_at, revoked_at = self.chain.call(
            self.contract.functions.consentOf(cid), block=block
        )
        return Consent(
            consent_id=cid,
            factory=None if int(factory, 16) == 0 else to_checksum_address(factory),
            granted_at=granted_at,
            expires_at=expires_at,
            revoked_at=revoked_at,
        )

    def consent_standing(self, opening: ConsentOpening, *, block: BlockIdentifier = "latest") -> Consent:
        """The chain's record of ``opening``'s consent id, checked to be the opening's factory's (a
        consent never granted comes back all zero, with ``factory`` None).

        @raise InvalidConsentOpening when another factory granted that id (the opening is not its).
        """
        consent = self.consent_of(opening.consent_id, block=block)
        if consent.factory is not None and consent.factory != opening.factory:
            raise InvalidConsentOpening(
                f"consent id {opening.consent_id_hex} was granted by {consent.factory}, not by "
                f"{opening.factory}"
            )
        return consent

    def consent_ids_of(self, factory: str) -> list[bytes]:
        """Every consent id ``factory`` ever granted, in first-grant order (lapsed ones included)."""
        fn = self.contract.functions.consentIdsOf(to_checksum_address(factory))
        return [bytes(c) for c in self.chain.call(fn)]

    # --- access log

    def anchor_access_log(
        self, anchorer: LocalAccount, root: bytes, *, count: int, from_ms: int, to_ms: int
    ) -> TxResult:
        """Anchor an access-log batch (``anchorer`` holds ``ACCESS_LOG_ANCHOR_ROLE``)."""
        fn = self.contract.functions.anchorAccessLog(root, count, from_ms, to_ms)
        return self.chain.transact(fn, anchorer)

    def access_log_batch(self, index: int) -> AccessLogBatch:
        root, count, from_ms, to_ms, at, by = self.chain.call(self.contract.functions.accessLogBatch(index))
        return AccessLogBatch(
            index=index,
            root=bytes(root),
            count=count,
            from_ms=from_ms,
            to_ms=to_ms,
            anchored_at=at,
            anchored_by=to_checksum_address(by),
        )

    def access_log_batch_count(self) -> int:
        return int(self.chain.call(self.contract.functions.accessLogBatchCount()))

    def access_log_batch_of(self, root: bytes) -> int | None:
        """The number of the batch that anchored ``root``; ``None`` when none did."""
        index = int(self.chain.call(self.contract.functions.accessLogBatchOf(root)))
        return index or None

    # --- roles and gate

    def grant_anchor_role(self, admin: LocalAccount, account: str) -> TxResult:
        fn = self.contract.functions.grantRole(ACCESS_LOG_ANCHOR_ROLE, to_checksum_address(account))
        return self.chain.transact(fn, admin)

    def is_anchorer(self, account: str) -> bool:
        fn = self.contract.functions.hasRole(ACCESS_LOG_ANCHOR_ROLE, to_checksum_address(account))
        return bool(self.chain.call(fn))

    def admission_gate(self) -> str:
        return to_checksum_address(self.chain.call(self.contract.functions.admissionGate()))


def _consent_bytes(consent_id: bytes) -> bytes:
    raw = bytes(consent_id)
    if len(raw) != 32:
        raise InvalidConsentOpening(f"a consent id is 32 bytes, got {len(raw)}")
    return raw


def _record(factory: str, index: int, t: tuple[Any, ...]) -> CreditRecord:
    record_commitment, version, analytics_commitment, oracle, valid_until, published_at = t
    return CreditRecord(
        factory=factory,
        index=index,
        record_commitment=bytes(record_commitment),
        valid_until=valid_until,
        published_at=published_at,
        oracle=to_checksum_address(oracle),
        model_version=bytes(version),
        analytics_commitment=bytes(analytics_commitment),
    )


def deploy_credit_registry(
    chain: Chain,
    deployer: LocalAccount,
    *,
    deployment: Deployment,
    gate_address: str,
    admin: str | None = None,
    access_log_anchor: str | None = None,
) -> str:
    """Deploy a CreditRegistry asking the gate at ``gate_address``; return its address.

    ``admin`` (default the deployer) may replace the gate and grant the anchoring role;
    ``access_log_anchor`` (default the deployer) gets ``ACCESS_LOG_ANCHOR_ROLE``.
    """
    if chain.chain_id != deployment.chain_id:
        raise DeploymentError(
            f"the deployment is for chain {deployment.chain_id} but the node serves chain "
            f"{chain.chain_id}: deploy the CreditRegistry next to its suite"
        )
    gate = to_checksum_address(gate_address)
    if gate == to_checksum_address(_ZERO_ADDRESS):
        raise DeploymentError(
            "the CreditRegistry needs an admission gate: deploy the participant registry first"
        )
    result = chain.deploy(
        CONTRACT_NAME,
        deployer,
        to_checksum_address(admin or deployer.address),
        gate,
        to_checksum_address(access_log_anchor or deployer.address),
    )
    if result.contract_address is None:  # pragma: no cover - a mined constructor always has an address
        raise DeploymentError("the CreditRegistry constructor was mined without a contract address")
    return str(result.contract_address)
