"""Consent-gated credit queries and credit publishing, over the CreditRegistry and the access log.

A bank's query is answered only while the caller is admitted for ``supet.credit.query`` (asked of the
CreditRegistry's admission gate) AND one of the factory's consents to that bank stands on chain: the
chain keys consents by a salted consent id and never names the bank, so the service joins the
openings it keeps (:mod:`ledger_service.credit_desk.consents`) with the chain's standing of their
ids. Every attempt of an admitted bank, answered or refused, is written to the access log (and
committed) *before* the answer or the refusal leaves: :meth:`FinanceDesk.gate` does both. An attempt
of a party not admitted as a bank at all is refused and counted in the bounded, non-anchored
:class:`~ledger_service.credit_desk.access_log.RefusalTally` instead (committed before the refusal
leaves too): any key can sign in, so its attempts must not grow the factory's anchored log.

Publishing (the analytics oracle): :func:`assess_profile` assesses a published profile with the
packaged scorecard, commits the assessment to the profile's commitment, and
:meth:`FinanceDesk.publish` stores the assessment (``analytics_results``, kind ``credit``), makes the
record with a fresh salt and keeps it (:mod:`ledger_service.credit_desk.sealing`), seals it under every
standing consent whose bank is admitted and has an envelope key, and sends ``publishRecord`` (the
record's commitment, no figure, and the envelopes) signed by the oracle's own key (a
:class:`LocalAccount` in Python; over HTTP the oracle signs the prepared transaction and the service
relays exactly that one).
:meth:`FinanceDesk.deliver_envelopes` seals the current record under consents granted since.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from sqlalchemy import Engine
from sqlmodel import Session

from analytics.commitment import Commitment, canonical_json
from analytics.period_profile import FactoryProfile
from contracts.chain import Chain
from contracts.credit import CreditRecord, CreditRegistryClient, Envelope
from contracts.credit_record import CreditOpening
from contracts.deployment import Deployment
from contracts.errors import ContractRevert
from contracts.participant_ids import action_id
from contracts.participants import ParticipantRegistryClient
from finance.assessment import CreditAssessment, assess, commit_assessment
from finance.errors import CreditModelError
from finance.proof import ProofFacts
from ledger_service.analytics_store.publish import list_published, load_published
from ledger_service.anchoring.access_log import AccessLogAnchorer
from ledger_service.credit_desk.access_log import AccessLogBook, RefusalTally
from ledger_service.credit_desk.consents import (
    PairState,
    consent_json,
    openings_of_bank,
    pair_standing,
    standing_openings,
)
from ledger_service.credit_desk.errors import (
    AccessRefused,
    FinanceNotDeployed,
    PublishRefused,
    UnknownProfile,
)
from ledger_service.credit_desk.sealing import (
    opening_of,
    record_json,
    seal_for_consented,
    served_opening,
    set_index,
    store_opening,
)
from ledger_service.errors import NotFound
from ledger_service.logs import request_id as _request_id
from ledger_service.store.models import AnalyticsResultRow
from ledger_service.tx_relay import RelayRefused, prepare, relay

__all__ = [
    "ANSWERED",
    "CONSENT_ACTION",
    "PUBLISH_ACTION",
    "QUERY_ACTION",
    "CreditPublication",
    "FinanceDesk",
    "assess_profile",
    "desk_of",
    "prepare_publish",
    "profile_from_json",
    "publish_args",
    "relay_publish",
]

QUERY_ACTION: Final = action_id("supet.credit.query")
CONSENT_ACTION: Final = action_id("supet.consent.grant")
PUBLISH_ACTION: Final = action_id("supet.credit.publish")
ANSWERED: Final = "answered"


def profile_from_json(obj: dict[str, Any]) -> FactoryProfile:
    """A published profile's JSON (``supet.factory-profile.v1``) back as a :class:`FactoryProfile`."""
    known = {f.name for f in dataclasses.fields(FactoryProfile)}
    fields = {k: v for k, v in obj.items() if k in known}
    fields["start"] = dt.date.fromisoformat(fields["start"])
    fields["end"] = dt.date.fromisoformat(fields["end"])
    fields["daily_output"] = tuple(fields.get("daily_output", ()))
    return FactoryProfile(**fields)


def assess_profile(
    engine: Engine,
    factory: str,
    profile_commitment: str,
    *,
    price: float | None = None,
    revenue: float | None = None,
    currency: str = "CNY",
    proof: ProofFacts | None = None,
) -> tuple[CreditAssessment, Commitment]:
    """Assess ``factory`` from its published profile ``profile_commitment`` and its proof facts
    (:meth:`FinanceDesk.proof_facts`; the profile's energy-vs-output consistency, when it has one, is
    taken into them) and commit the assessment.

    The assessment's commitment has the profile's commitment as its one input, so the chain record
    leads to the assessment, which leads to the profile, which leads to the anchored readings; the
    proof facts are part of the committed assessment.
    @raise PublishRefused ``finance.publish.unknown_profile``, ``...not_a_profile``,
           ``...wrong_factory``, ``...bad_input`` (the credit model refused the input)
    """
    try:
        pub = load_published(engine, profile_commitment)
    except Exception as e:  # SourceError: unknown commitment
        raise UnknownProfile(str(e), code="finance.publish.unknown_profile") from e
    if pub.kind != "profile":
        raise PublishRefused(
            f"{profile_commitment} is a published {pub.kind}, not a profile",
            code="finance.publish.not_a_profile",
        )
    subject = str(pub.result.get("factory_id", ""))
    if subject.lower() != factory.lower():
        raise PublishRefused(
            f"profile {profile_commitment} is of {subject}, not of {factory}",
            code="finance.publish.wrong_factory",
        )
    energy = pub.result.get("energy_consistency")  # a version-2 profile's (docs/analytics-profile.md)
    if proof is not None and proof.energy_output_consistency is None and energy is not None:
        days = pub.result.get("energy_days")
        proof = dataclasses.replace(
            proof, energy_output_consistency=float(energy), energy_days=None if days is None else int(days)
        )
    try:
        assessment = assess(
            profile_from_json(pub.result), price=price, revenue=revenue, currency=currency, proof=proof
        )
    except CreditModelError as e:
        raise PublishRefused(
            f"the credit model refused the input: {e.message}", code="finance.publish.bad_input"
        ) from e
    return assessment, commit_assessment(assessment, [pub.commitment.commitment])


@dataclass(frozen=True, slots=True)
class CreditPublication:
    """What :meth:`FinanceDesk.publish` did: the assessment, its commitment, the record on chain (a
    commitment), its opening (with the salt), the banks sealed for and those skipped (no key)."""

    assessment: CreditAssessment
    commitment: Commitment
    record: CreditRecord
    opening: CreditOpening
    sealed_for: tuple[str, ...]
    skipped: dict[str, str]
    tx_hash: str

    def to_json_obj(self) -> dict[str, Any]:
        return {
            "record": record_json(self.record, self.opening),
            "tx_hash": self.tx_hash,
            "assessment": self.assessment.to_json_obj(),
            "assessment_commitment": self.commitment.to_json_obj(),
            "envelopes": {"sealed_for": list(self.sealed_for), "skipped": self.skipped},
        }


class FinanceDesk:
    """The service's finance side: CreditRegistry reads, the consent gate, the access log, publishing."""

    def __init__(
        self,
        *,
        chain: Chain,
        deployment: Deployment,
        engine: Engine,
        anchor_signer: LocalAccount,
        max_entries: int = 1000,
        max_seconds: float = 5.0,
        confirmations: int = 0,
    ) -> None:
        if "CreditRegistry" not in deployment.contracts:
            raise FinanceNotDeployed(
                "this deployment has no CreditRegistry; redeploy with a current `supet deploy`"
            )
        self.chain = chain
        self.deployment = deployment
        self.engine = engine
        self.confirmations = confirmations
        #: Buyer address -> the name the credit reasons give it (default: the address; the chain holds
        #: no party names).
        self.party_names: dict[str, str] = {}
        self.credit = CreditRegistryClient.from_deployment(chain, deployment)
        self.book = AccessLogBook(engine=engine, chain=chain, registry_address=self.credit.address)
        self.tally = RefusalTally(engine=engine)
        self.anchorer = AccessLogAnchorer(
            book=self.book, signer=anchor_signer, max_entries=max_entries, max_seconds=max_seconds
        )

    # -------------------------------------------------------------- chain reads

    def gate_client(self) -> ParticipantRegistryClient:
        return ParticipantRegistryClient.at(self.chain, self.credit.admission_gate())

    def admitted(self, party: str, action: bytes) -> bool:
        return self.gate_client().is_admitted(to_checksum_address(party), action)

    def head(self) -> tuple[int, int]:
        """The latest block's number and timestamp (queries are answered as of that block)."""
        b = self.chain.block("latest")
        return int(b["number"]), int(b["timestamp"])

    def current_record(self, factory: str) -> CreditRecord | None:
        try:
            return self.credit.current_record(factory)
        except ContractRevert as e:
            if e.error_name == "CreditRegistryNoRecord":
                return None
            raise

    def history(self, factory: str) -> list[CreditRecord]:
        return [self.credit.record_at(factory, i) for i in range(self.credit.record_count(factory))]

    def served(self, record: CreditRecord, *, now_s: int | None = None) -> dict[str, Any]:
        """``record`` as served to a consented bank: opened, with its salt, when this ledger holds an
        opening that opens the on-chain commitment (call only after :meth:`gate`)."""
        opening, why = served_opening(self.engine, record)
        return record_json(record, opening, now_s=now_s, why=why)

    def consent_refusal(self, factory: str, bank: str, *, now_s: int) -> AccessRefused | None:
        """``None`` while one of ``factory``'s consents to ``bank`` stands on chain; else why not, as the
        refusal to give (the bank's admission is :meth:`require_bank`'s)."""
        pair = pair_standing(self.credit, self.engine, factory, bank, now_s=now_s)
        c = pair.consent
        if pair.state is PairState.STANDING:
            return None
        if pair.state is PairState.REVOKED and c is not None:
            return AccessRefused(
                f"{factory} revoked its consent to {bank} at {c.revoked_at} (Unix s); ask it to grant again",
                code="finance.no_consent",
            )
        if pair.state is PairState.EXPIRED and c is not None:
            return AccessRefused(
                f"{factory}'s consent to {bank} expired at {c.expires_at} (Unix s, chain time {now_s}); ask "
                "the factory to renew it",
                code="finance.consent_expired",
            )
        return AccessRefused(
            f"{factory} has not granted {bank} consent to read its credit data; ask the factory to grant it "
            "(POST /v1/consents/prepare, or CreditRegistry.grantConsent and POST /v1/consents/openings)",
            code="finance.no_consent",
        )

    # -------------------------------------------------------------- the gate

    def log(self, party: str, factory: str | None, action: str, outcome: str) -> None:
        """Write one access-log entry (committed when this returns)."""
        rid = _request_id.get() or uuid.uuid4().hex
        self.book.record(party=party, factory=factory, action=action, outcome=outcome, request_id=rid)

    def require_bank(self, party: str, action: str, factory: str | None) -> None:
        """Refuse a party not admitted for ``supet.credit.query``, counted in the refusal tally.

        Not an access-log entry: the party is nobody the consortium admitted (a throw-away key would
        otherwise grow the factory's anchored log at the service's gas and bury the real entries).
        """
        if not self.admitted(party, QUERY_ACTION):
            refusal = AccessRefused(
                f"{party} is not admitted for supet.credit.query (banks and insurers): ask the consortium "
                "to admit it (GET /v1/parties/{address}/admission says what is missing)",
                code="finance.not_a_bank",
            )
            rid = _request_id.get() or uuid.uuid4().hex
            self.tally.record(party=party, factory=factory, reason=refusal.code, request_id=rid)
            raise refusal

    def gate(self, party: str, factory: str, action: str) -> None:
        """Allow ``party`` to read ``factory``'s ``action`` data, or raise the refusal; logged either way.

        The answer itself is logged as ``answered`` here, before it is built and sent: a failure after
        this point leaves an ``answered`` entry for an answer that may not have arrived, never the
        other way round.
        """
        self.require_bank(party, action, factory)
        _, now_s = self.head()
        refusal = self.consent_refusal(factory, party, now_s=now_s)
        if refusal is not None:
            self.log(party, factory, action, refusal.code)
            raise refusal
        self.log(party, factory, action, ANSWERED)

    # -------------------------------------------------------------- bank reads (after the gate)

    def bank_factories(self, bank: str) -> list[dict[str, Any]]:
        """Factories with a standing consent to ``bank`` and their current record (each logged), with
        the consents' openings (consent id and salt): the bank finds its envelopes on chain by them."""
        self.require_bank(bank, "factories", None)
        self.log(bank, None, "factories", ANSWERED)  # the listing itself, whatever it finds
        _, now_s = self.head()
        standing: dict[str, list[dict[str, Any]]] = {}
        for opening in openings_of_bank(self.engine, bank):
            pair = pair_standing(self.credit, self.engine, opening.factory, bank, now_s=now_s)
            if pair.state is not PairState.STANDING or opening.factory in standing:
                continue
            standing[opening.factory] = [
                consent_json(o, c, now_s=now_s)
                for o, c in standing_openings(self.credit, self.engine, opening.factory, now_s=now_s)
                if o.bank == to_checksum_address(bank)
            ]
        out = []
        for factory, consents in standing.items():
            self.log(bank, factory, "factories", ANSWERED)
            record = self.current_record(factory)
            out.append(
                {
                    "factory": factory,
                    "consent_expires_at": max(int(c["expires_at"] or 0) for c in consents),
                    "consents": consents,
                    "record": self.served(record, now_s=now_s) if record else None,
                }
            )
        return out

    def latest_profile(self, factory: str) -> dict[str, Any]:
        subject = to_checksum_address(factory)
        found = [
            p
            for p in list_published(self.engine, kind="profile")
            if str(p.result.get("factory_id", "")).lower() == subject.lower()
        ]
        if not found:
            raise NotFound(f"no published profile of {subject}", code="finance.no_profile")
        p = found[0]
        return {"factory": subject, "commitment": p.commitment.to_json_obj(), "profile": p.result}

    def proof_facts(self, factory: str, *, names: Mapping[str, str] | None = None) -> ProofFacts:
        """``factory``'s proof facts for its assessment: lot verdicts, recalls, its buyers' payments and
        its lines' open yield gain, as of the latest block (:mod:`ledger_service.credit_desk.proof_facts`)."""
        from ledger_service.credit_desk.proof_facts import gather_proof_facts

        return gather_proof_facts(
            self.engine,
            self.chain,
            self.deployment,
            factory,
            names=self.party_names if names is None else names,
            confirmations=self.confirmations,
        )

    # -------------------------------------------------------------- publishing

    def publish(
        self,
        oracle: LocalAccount,
        factory: str,
        profile_commitment: str,
        *,
        price: float | None = None,
        revenue: float | None = None,
        currency: str = "CNY",
        valid_days: int = 90,
    ) -> CreditPublication:
        """Assess, commit, store and publish ``factory``'s credit record, signed by ``oracle``."""
        factory = to_checksum_address(factory)
        if not self.admitted(oracle.address, PUBLISH_ACTION):
            raise AccessRefused(
                f"{oracle.address} is not admitted for supet.credit.publish (the analytics oracle)",
                code="finance.not_an_oracle",
            )
        self.require_factory_oracle(factory, oracle.address)
        assessment, commitment = assess_profile(
            self.engine,
            factory,
            profile_commitment,
            price=price,
            revenue=revenue,
            currency=currency,
            proof=self.proof_facts(factory),
        )
        _, now_s = self.head()
        opening, envelopes, sealed_for, skipped = self.seal(
            assessment,
            commitment,
            factory=factory,
            oracle=oracle.address,
            valid_until=now_s + valid_days * 86_400,
        )
        self.store_assessment(factory, assessment, commitment)
        store_opening(self.engine, opening)
        tx = self.credit.publish_record(oracle, factory, envelopes=envelopes, **publish_args(opening))
        record = self.credit.current_record(factory)
        set_index(self.engine, record.record_commitment, record.index)
        return CreditPublication(
            assessment=assessment,
            commitment=commitment,
            record=record,
            opening=opening.located(oracle=record.oracle, index=record.index),
            sealed_for=tuple(sealed_for),
            skipped=skipped,
            tx_hash=str(tx.tx_hash),
        )

    def seal(
        self,
        assessment: CreditAssessment,
        commitment: Commitment,
        *,
        factory: str,
        oracle: str,
        valid_until: int,
        salt: bytes | None = None,
    ) -> tuple[CreditOpening, list[Envelope], list[str], dict[str, str]]:
        """The record of ``assessment`` (fresh salt unless given), its envelopes under the factory's
        standing consents whose banks are admitted and have a key, the banks sealed for, and the
        consented banks skipped, with why."""
        opening = opening_of(
            assessment, commitment, factory=factory, oracle=oracle, valid_until=valid_until, salt=salt
        )
        envelopes, sealed_for, skipped = self.seal_opening(opening)
        return opening, envelopes, sealed_for, skipped

    def seal_opening(self, opening: CreditOpening) -> tuple[list[Envelope], list[str], dict[str, str]]:
        """Envelopes of ``opening`` under each standing consent of its factory the service holds the
        opening of, whose bank is admitted for ``supet.credit.query`` (asked here: the contract cannot)."""
        _, now_s = self.head()
        consents = [o for o, _ in standing_openings(self.credit, self.engine, opening.factory, now_s=now_s)]
        return seal_for_consented(
            self.credit, opening, consents, admitted=lambda bank: self.admitted(bank, QUERY_ACTION)
        )

    def deliver_envelopes(self, oracle: LocalAccount, factory: str) -> list[str]:
        """Seal ``factory``'s current record under each consent granted since it was published (standing,
        the bank admitted with a registered key, no envelope of the record under that id yet) and
        deliver them as ``oracle``; the banks."""
        record = self.current_record(factory)
        if record is None:
            return []
        opening, why = served_opening(self.engine, record)
        if opening is None:
            raise PublishRefused(
                f"cannot seal record {record.index} of {factory}: {why}", code="finance.publish.no_opening"
            )
        envelopes, banks, _ = self.seal_opening(opening)
        new = [
            (e, bank)
            for e, bank in zip(envelopes, banks, strict=True)
            if not self.credit.envelopes_for([e.consent_id], factory=factory, index=record.index)
        ]
        if new:
            self.credit.deliver_envelopes(oracle, factory, record.index, [e for e, _ in new])
        return [bank for _, bank in new]

    def require_factory_oracle(self, factory: str, oracle: str) -> None:
        """Refuse ``oracle`` unless ``factory`` is bound to it or to no oracle yet (the contract's rule)."""
        bound = self.credit.oracle_of(factory)
        if bound is not None and bound != to_checksum_address(oracle):
            raise AccessRefused(
                f"{factory}'s credit records are published by its oracle {bound}, not {oracle}; ask the "
                "consortium admin to rebind it (CreditRegistry.setFactoryOracle) if that is wrong",
                code="finance.not_the_factory_oracle",
            )

    def store_assessment(self, factory: str, assessment: CreditAssessment, commitment: Commitment) -> None:
        """Keep the assessment with its commitment (``analytics_results``, kind ``credit``)."""
        row = AnalyticsResultRow(
            commitment=commitment.commitment,
            kind="credit",
            subject=factory,
            params_json=canonical_json({"currency": assessment.currency}).decode(),
            commitment_json=canonical_json(commitment.to_json_obj()).decode(),
            result_json=canonical_json(assessment.to_json_obj()).decode(),
            created_ms=int(time.time() * 1000),
        )
        with Session(self.engine) as s:
            s.merge(row)
            s.commit()

    def assessment(self, commitment: str) -> dict[str, Any] | None:
        with Session(self.engine) as s:
            row = s.get(AnalyticsResultRow, commitment.lower())
        return json.loads(row.result_json) if row is not None and row.kind == "credit" else None


# ---------------------------------------------------------------------------- prepare and relay


def publish_args(opening: CreditOpening) -> dict[str, Any]:
    """The ``publishRecord`` arguments of an opening, envelopes aside: its commitment and clear fields."""
    return {
        "record_commitment": opening.commitment(),
        "valid_until": opening.valid_until,
        "model_version": opening.model_version,
        "analytics_commitment": opening.analytics_commitment,
    }


def prepare_publish(
    desk: FinanceDesk, oracle: str, opening: CreditOpening, envelopes: list[Envelope]
) -> dict[str, Any]:
    """The unsigned ``publishRecord`` transaction for ``oracle`` to sign (EIP-1559, JSON-ready)."""
    fn = desk.credit.publish_call(opening.factory, envelopes=envelopes, **publish_args(opening))
    try:
        return prepare(desk.chain, oracle, fn, context="publishRecord")
    except RelayRefused as e:
        if e.code != "finance.reverts":
            raise
        raise PublishRefused(
            f"the CreditRegistry would refuse the record: {e.message}", code="finance.publish.reverts"
        ) from e


def relay_publish(desk: FinanceDesk, oracle: str, expected: dict[str, Any], signed_transaction: str) -> str:
    """Relay the oracle's signed copy of exactly the prepared ``publishRecord``; its transaction hash.

    The checks are :func:`ledger_service.tx_relay.relay`'s (refusals ``finance.relay_*``).
    """
    return relay(desk.chain, oracle, expected, signed_transaction, context="publishRecord").tx_hash


def desk_of(service: Any) -> FinanceDesk:
    """The service's :class:`FinanceDesk`, built on first use (``service.finance``)."""
    desk: FinanceDesk | None = getattr(service, "finance", None)
    if desk is None:
        desk = FinanceDesk(
            chain=service.chain,
            deployment=service.deployment,
            engine=service.engine,
            anchor_signer=service.anchor_signer,
            max_seconds=service.settings.batch_max_seconds,
            confirmations=service.settings.confirmations,
        )
        service.finance = desk
    return desk
