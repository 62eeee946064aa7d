"""Re-rating (issue 15): credit records follow the factory's newly anchored data, superseding the old.

One pass (:meth:`Rerater.run`) takes every factory this ledger holds a record opening of whose records
its oracle publishes, and for each:

1. settles an earlier pass's claim (a row of ``credit_ratings`` in state ``claimed``): marked
   ``published`` when its record is the chain's current one; left alone while younger than
   ``settle_s`` (another pass, maybe another instance, may still be sending it); otherwise dropped
   with its stored opening, since its record never reached the chain;
2. refreshes the factory's profile from the readings anchored since the profile's data window
   (:func:`ledger_service.analytics_store.refresh.refresh_profile`);
3. re-assesses the factory from its latest published profile with the current record's basis (unit
   price or revenue, currency, validity) when that profile is newer than the record's, or when the
   record expires within ``renew_before_s``;
4. publishes a superseding record only when the rating changed materially
   (:attr:`finance.rating_change.RatingChange.material`) or the record is about to expire: the claim
   first (its unique ``previous_record_commitment``: of two passes rating the same record only one
   publishes), then the assessment and the opening with its salt, then ``publishRecord`` with the
   envelopes for the consented banks, then the claim marked ``published``.

Idempotent: a second pass over the same data finds the profile behind the current record is the latest
and publishes nothing. The reason of each change (which features moved) is kept in the store and served
to consented banks (:mod:`ledger_service.credit_desk.grades`); the chain gets the record's commitment
only, as for every record.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, delete, select

from analytics.commitment import inputs_root
from contracts.credit import CreditRecord
from contracts.errors import ChainError, ContractRevert
from contracts.order_terms import OrderTerms
from finance.rating_change import RatingChange, compare_assessments
from ledger_service.analytics_store.publish import Published, list_published, load_published
from ledger_service.analytics_store.refresh import profile_params_of, refresh_profile
from ledger_service.analytics_store.source import LedgerSource, SourceError
from ledger_service.credit_desk.desk import FinanceDesk, assess_profile, publish_args
from ledger_service.credit_desk.errors import FinanceError
from ledger_service.credit_desk.sealing import served_opening, set_index, store_opening
from ledger_service.store.models import CreditOpeningRow, CreditRatingRow
from supet_base.errors import SupetError

__all__ = [
    "CLAIMED",
    "PUBLISHED",
    "Basis",
    "RerateOutcome",
    "RerateReport",
    "Rerater",
]

log = logging.getLogger(__name__)

CLAIMED: Final = "claimed"
PUBLISHED: Final = "published"
_DAY: Final = 86_400


@dataclass(frozen=True, slots=True)
class Basis:
    """What the current record was rated from: its profile, assessment and pricing."""

    profile_commitment: str
    assessment: dict[str, Any]
    price: float | None
    revenue: float | None
    currency: str
    valid_days: int

    def to_json_obj(self) -> dict[str, Any]:
        return {
            "price": self.price,
            "revenue": self.revenue,
            "currency": self.currency,
            "valid_days": self.valid_days,
        }


@dataclass(frozen=True, slots=True)
class RerateOutcome:
    """What a pass did for one factory: ``published``, ``unchanged``, ``no_new_data``, ``busy``
    (another pass holds the claim), ``skipped`` (nothing this ledger can rate) or ``failed``."""

    factory: str
    action: str
    detail: str = ""
    grade_before: str | None = None
    grade_after: str | None = None
    record_index: int | None = None
    tx_hash: str | None = None
    profile_refreshed: str | None = None

    def to_json_obj(self) -> dict[str, Any]:
        return {
            "factory": self.factory,
            "action": self.action,
            "detail": self.detail,
            "grade_before": self.grade_before,
            "grade_after": self.grade_after,
            "record_index": self.record_index,
            "tx_hash": self.tx_hash,
            "profile_refreshed": self.profile_refreshed,
        }


@dataclass(slots=True)
class RerateReport:
    outcomes: list[RerateOutcome] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def published(self) -> list[RerateOutcome]:
        return [o for o in self.outcomes if o.action == "published"]

    def to_json_obj(self) -> dict[str, Any]:
        return {"seconds": round(self.seconds, 3), "outcomes": [o.to_json_obj() for o in self.outcomes]}


def _now_ms() -> int:
    return int(time.time() * 1000)


def _hex(b: bytes) -> str:
    return "0x" + b.hex()


class Rerater:
    """One re-rating pass over the ledger's factories (module docstring), as the factories' ``oracle``."""

    def __init__(
        self,
        desk: FinanceDesk,
        oracle: LocalAccount,
        *,
        order_terms: Iterable[OrderTerms] = (),
        renew_before_s: int = 7 * _DAY,
        settle_s: float = 600.0,
        refresh_profiles: bool = True,
    ) -> None:
        self.desk = desk
        self.engine = desk.engine
        self.oracle = oracle
        self.renew_before_s = renew_before_s
        self.settle_s = settle_s
        self.refresh_profiles = refresh_profiles
        self.source = LedgerSource(desk.engine, desk.chain, desk.deployment, order_terms=order_terms)

    # ------------------------------------------------------------------ the pass

    def factories(self) -> list[str]:
        """The factories whose records this ledger published as this oracle (it holds their openings)."""
        with Session(self.engine) as s:
            rows = s.exec(
                select(CreditOpeningRow.factory)
                .where(col(CreditOpeningRow.oracle) == self.oracle.address)
                .distinct()
            ).all()
        return sorted(set(rows))

    def run(self, factories: Sequence[str] | None = None) -> RerateReport:
        """Re-rate ``factories`` (default: :meth:`factories`); a factory's failure does not stop the pass."""
        t0 = time.perf_counter()
        report = RerateReport()
        for factory in factories if factories is not None else self.factories():
            try:
                outcome = self.rerate(to_checksum_address(factory))
            except (SupetError, ChainError) as e:
                log.warning("re-rating %s failed: %s", factory, e)
                outcome = RerateOutcome(factory, "failed", f"{getattr(e, 'code', type(e).__name__)}: {e}")
            report.outcomes.append(outcome)
        report.seconds = time.perf_counter() - t0
        return report

    def rerate(self, factory: str) -> RerateOutcome:
        """One factory's re-rating (module docstring); raises :class:`ChainError` when the chain is down
        before anything was claimed."""
        record = self.desk.current_record(factory)
        if record is None:
            return RerateOutcome(factory, "skipped", "no credit record on chain")
        if record.oracle != self.oracle.address:
            return RerateOutcome(factory, "skipped", f"its records are published by {record.oracle}")
        busy = self.settle_claims(factory, record)
        if busy is not None:
            return RerateOutcome(factory, "busy", busy)
        if (record := self.desk.current_record(factory)) is None:  # a settled claim may have moved it
            return RerateOutcome(factory, "skipped", "no credit record on chain")
        basis = self.basis(factory, record)
        refreshed = self.refresh(factory) if self.refresh_profiles else None
        latest = self.latest_profile(factory)
        _, now_s = self.desk.head()
        # renew within renew_before_s of the expiry, or half the validity when that is shorter
        expiring = record.valid_until - now_s <= min(self.renew_before_s, basis.valid_days * _DAY // 2)
        grade = str(basis.assessment.get("grade"))
        if latest is None or (latest.commitment.commitment == basis.profile_commitment and not expiring):
            return RerateOutcome(factory, "no_new_data", "", grade, grade, record.index, None, refreshed)
        assessment, commitment = assess_profile(
            self.engine,
            factory,
            latest.commitment.commitment,
            price=basis.price,
            revenue=basis.revenue,
            currency=basis.currency,
            proof=self.desk.proof_facts(factory),
        )
        change = compare_assessments(basis.assessment, assessment.to_json_obj())
        if not change.material and not expiring:
            return RerateOutcome(
                factory, "unchanged", change.text(), grade, assessment.grade, record.index, None, refreshed
            )
        reason = (
            change.text() if not expiring or change.material else f"renewed before expiry; {change.text()}"
        )
        return self.publish(
            factory, record, basis, latest, assessment, commitment, change, reason, now_s, refreshed
        )

    # ------------------------------------------------------------------ steps

    def settle_claims(self, factory: str, record: CreditRecord) -> str | None:
        """Settle earlier claims of ``factory`` (step 1); why the factory is busy, or None."""
        with Session(self.engine) as s:
            claims = s.exec(
                select(CreditRatingRow).where(
                    col(CreditRatingRow.factory) == factory, col(CreditRatingRow.status) == CLAIMED
                )
            ).all()
        current = _hex(record.record_commitment)
        for claim in claims:
            if claim.record_commitment == current:
                self.mark_published(claim.record_commitment, record.index, None)
                continue
            if _now_ms() - claim.created_ms < self.settle_s * 1000:
                return f"a pass claimed record {claim.previous_record_commitment} at {claim.created_ms} ms"
            self.drop_claim(claim.record_commitment)
        return None

    def drop_claim(self, record_commitment: str) -> None:
        """Forget a claim whose record never reached the chain, with its stored opening."""
        with Session(self.engine) as s:
            s.exec(delete(CreditRatingRow).where(col(CreditRatingRow.record_commitment) == record_commitment))
            s.exec(
                delete(CreditOpeningRow).where(col(CreditOpeningRow.record_commitment) == record_commitment)
            )
            s.commit()

    def mark_published(self, record_commitment: str, index: int, tx_hash: str | None) -> None:
        with Session(self.engine) as s:
            row = s.get(CreditRatingRow, record_commitment)
            if row is not None:
                row.status, row.record_index, row.published_ms = PUBLISHED, index, _now_ms()
                row.tx_hash = tx_hash or row.tx_hash
                s.add(row)
                s.commit()
        set_index(self.engine, bytes.fromhex(record_commitment[2:]), index)

    def basis(self, factory: str, record: CreditRecord) -> Basis:
        """What ``record`` was rated from: the re-rating's own row, else the stored opening, assessment and
        the profile whose commitment the assessment commits to (:class:`FinanceError` when unknown)."""
        current = _hex(record.record_commitment)
        with Session(self.engine) as s:
            row = s.get(CreditRatingRow, current)
        if row is not None:
            basis = json.loads(row.basis_json)
            assessment = self.desk.assessment(row.assessment_commitment)
            if assessment is not None:
                return Basis(
                    profile_commitment=row.profile_commitment,
                    assessment=assessment,
                    price=basis.get("price"),
                    revenue=basis.get("revenue"),
                    currency=str(basis["currency"]),
                    valid_days=int(basis["valid_days"]),
                )
        opening, why = served_opening(self.engine, record)
        if opening is None:
            raise FinanceError(
                f"record {record.index} cannot be re-rated: {why}", code="finance.rerate.no_basis"
            )
        a_commitment = _hex(record.analytics_commitment)
        assessment = self.desk.assessment(a_commitment)
        if assessment is None:
            raise FinanceError(
                f"record {record.index}: its assessment {a_commitment} is not stored here",
                code="finance.rerate.no_basis",
            )
        root = load_published(self.engine, a_commitment).commitment.inputs_root
        profile = next(
            (p for p in self.profiles(factory) if _hex(inputs_root([p.commitment.commitment])) == root), None
        )
        if profile is None:
            raise FinanceError(
                f"record {record.index}: the profile its assessment was made from is not stored here",
                code="finance.rerate.no_basis",
            )
        revenue = float(assessment.get("annual_revenue", 0.0))
        delivered = float(profile.result.get("delivered_units") or 0.0)
        days = int(profile.result.get("days_in_period") or 0)
        price = revenue * days / (365 * delivered) if delivered > 0 and days > 0 else None
        return Basis(
            profile_commitment=profile.commitment.commitment,
            assessment=assessment,
            price=price,
            revenue=None if price is not None else revenue,
            currency=opening.currency,
            valid_days=max(1, round((record.valid_until - record.published_at) / _DAY)),
        )

    def profiles(self, factory: str) -> list[Published]:
        """``factory``'s published profiles, newest first."""
        return [
            p
            for p in list_published(self.engine, kind="profile")
            if str(p.result.get("factory_id", "")).lower() == factory.lower()
        ]

    def latest_profile(self, factory: str) -> Published | None:
        found = self.profiles(factory)
        return found[0] if found else None

    def refresh(self, factory: str) -> str | None:
        """Step 2: the factory's latest profile brought up to its newly anchored readings; the new
        profile's commitment, or None (no window to extend, or nothing new)."""
        latest = self.latest_profile(factory)
        params = profile_params_of(latest.params) if latest is not None else None
        if params is None:
            return None
        try:
            pub = refresh_profile(self.engine, self.source, params)
        except SourceError as e:  # e.g. an order whose terms this ledger cannot open: rate what it has
            log.warning("profile of %s not refreshed: %s", factory, e)
            return None
        return pub.commitment.commitment if pub is not None else None

    def publish(
        self,
        factory: str,
        record: CreditRecord,
        basis: Basis,
        profile: Published,
        assessment: Any,
        commitment: Any,
        change: RatingChange,
        reason: str,
        now_s: int,
        refreshed: str | None,
    ) -> RerateOutcome:
        """Step 4: claim, store, publish, mark."""
        opening, envelopes, _sealed_for, _skipped = self.desk.seal(
            assessment,
            commitment,
            factory=factory,
            oracle=self.oracle.address,
            valid_until=now_s + basis.valid_days * _DAY,
        )
        new = _hex(opening.commitment())
        claim = CreditRatingRow(
            record_commitment=new,
            previous_record_commitment=_hex(record.record_commitment),
            factory=factory,
            grade=assessment.grade_rank,
            previous_grade=int(basis.assessment.get("grade_rank") or 0) or None,
            reason=reason,
            changes_json=json.dumps(change.to_json_obj(), sort_keys=True),
            profile_commitment=profile.commitment.commitment,
            assessment_commitment=commitment.commitment,
            basis_json=json.dumps(basis.to_json_obj(), sort_keys=True),
            status=CLAIMED,
            created_ms=_now_ms(),
        )
        try:
            with Session(self.engine) as s:
                s.add(claim)
                s.commit()
        except IntegrityError:
            return RerateOutcome(
                factory, "busy", f"another pass claimed record {claim.previous_record_commitment}"
            )
        self.desk.store_assessment(factory, assessment, commitment)
        store_opening(self.engine, opening)
        before, after = change.grade_before, change.grade_after
        try:
            tx = self.desk.credit.publish_record(
                self.oracle, factory, envelopes=envelopes, **publish_args(opening)
            )
        except ContractRevert as e:  # refused: nothing was mined, the claim goes
            self.drop_claim(new)
            return RerateOutcome(factory, "failed", f"{e.code}: {e}", before, after)
        except ChainError as e:  # maybe sent: a later pass settles the claim (step 1)
            return RerateOutcome(factory, "failed", f"{e.code}: {e}", before, after)
        published = self.desk.credit.current_record(factory)
        self.mark_published(new, published.index, str(tx.tx_hash))
        log.info("re-rated %s: record %d, %s", factory, published.index, reason)
        return RerateOutcome(
            factory, "published", reason, before, after, published.index, str(tx.tx_hash), refreshed
        )
