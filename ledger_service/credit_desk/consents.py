"""Consents as the service knows them (issue 14): the openings it keeps, checked against the chain.

The CreditRegistry keys a consent by its consent id, the salted hash of (factory, bank, salt)
(:mod:`contracts.credit_consent`): the chain says which factory granted an id and whether it stands,
never to which bank. The service keeps each opening (table ``consent_openings``,
:class:`~ledger_service.store.models.ConsentOpeningRow`), durably before it answers the request that
made it, and every consent check joins the two: :func:`pair_standing` is the state of a factory's
consent to a bank (standing, revoked, expired, never). The bank's admission for ``supet.credit.query``
is asked of the gate by the caller (:meth:`FinanceDesk.require_bank`, the oracle before it seals): the
contract cannot ask it any more.

An opening reaches the store two ways: the service makes it when it prepares a factory's grant
(:func:`opening_for_grant`: the pair's opening is reused, so granting again renews the same consent),
or the factory, having granted on chain directly (``CreditRegistryClient.grant_consent``), registers it
(:func:`register_opening`, checked against the chain first).
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass

from eth_utils import to_checksum_address
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from contracts.credit import Consent, CreditRegistryClient
from contracts.credit_consent import ConsentOpening, InvalidConsentOpening, new_consent
from ledger_service.credit_desk.errors import FinanceError
from ledger_service.store.models import ConsentOpeningRow

__all__ = [
    "ConsentRegistrationRefused",
    "PairConsent",
    "PairState",
    "consent_json",
    "opening_for_grant",
    "openings_of_bank",
    "openings_of_factory",
    "openings_of_pair",
    "pair_standing",
    "register_opening",
    "standing_openings",
    "store_consent_opening",
]


class ConsentRegistrationRefused(FinanceError):
    """A consent opening cannot be registered: it is no consent this factory granted on chain (HTTP 400)."""

    code = "finance.consent.not_on_chain"


class PairState(enum.StrEnum):
    """The state of a factory's consent to a bank, as the chain holds the ids the service can open."""

    STANDING = "standing"
    REVOKED = "revoked"
    EXPIRED = "expired"
    NEVER = "never"


@dataclass(frozen=True, kw_only=True)
class PairConsent:
    """A factory's consent to a bank: its state, and the consent it is read from (the standing one, else
    the latest granted; None when none was)."""

    state: PairState
    opening: ConsentOpening | None = None
    consent: Consent | None = None


def _row_opening(row: ConsentOpeningRow) -> ConsentOpening:
    return ConsentOpening(factory=row.factory, bank=row.bank, salt=bytes.fromhex(row.salt.removeprefix("0x")))


def store_consent_opening(engine: Engine, opening: ConsentOpening, *, source: str) -> None:
    """Keep ``opening`` by its consent id (committed when this returns; an id kept already stays)."""
    with Session(engine) as s:
        if s.get(ConsentOpeningRow, opening.consent_id_hex) is None:
            s.add(
                ConsentOpeningRow(
                    consent_id=opening.consent_id_hex,
                    factory=opening.factory,
                    bank=opening.bank,
                    salt="0x" + opening.salt.hex(),
                    source=source,
                    created_ms=int(time.time() * 1000),
                )
            )
            s.commit()


def _select(engine: Engine, *, factory: str | None = None, bank: str | None = None) -> list[ConsentOpening]:
    query = select(ConsentOpeningRow)
    if factory is not None:
        query = query.where(col(ConsentOpeningRow.factory) == to_checksum_address(factory))
    if bank is not None:
        query = query.where(col(ConsentOpeningRow.bank) == to_checksum_address(bank))
    with Session(engine) as s:
        rows = s.exec(
            query.order_by(col(ConsentOpeningRow.created_ms), col(ConsentOpeningRow.consent_id))
        ).all()
    return [_row_opening(r) for r in rows]


def openings_of_pair(engine: Engine, factory: str, bank: str) -> list[ConsentOpening]:
    """The openings the service holds of ``factory``'s consents to ``bank``, oldest first."""
    return _select(engine, factory=factory, bank=bank)


def openings_of_bank(engine: Engine, bank: str) -> list[ConsentOpening]:
    """The openings of every consent to ``bank`` the service holds, oldest first."""
    return _select(engine, bank=bank)


def openings_of_factory(engine: Engine, factory: str) -> list[ConsentOpening]:
    """The openings of every consent ``factory`` gave that the service holds, oldest first."""
    return _select(engine, factory=factory)


def _on_chain(credit: CreditRegistryClient, opening: ConsentOpening) -> Consent | None:
    """The chain's record of ``opening``'s id when ``opening.factory`` granted it; None otherwise (never
    granted, or another factory's: a squatted id opens nothing for this factory)."""
    try:
        consent = credit.consent_standing(opening)
    except InvalidConsentOpening:
        return None
    return consent if consent.ever_granted else None


def pair_standing(
    credit: CreditRegistryClient, engine: Engine, factory: str, bank: str, *, now_s: int
) -> PairConsent:
    """The state of ``factory``'s consent to ``bank``: standing when any consent id the service can open
    for the pair stands on chain; else revoked or expired as the latest granted one is; else never."""
    latest: tuple[ConsentOpening, Consent] | None = None
    for opening in openings_of_pair(engine, factory, bank):
        consent = _on_chain(credit, opening)
        if consent is None:
            continue
        if consent.stands_at(now_s):
            return PairConsent(state=PairState.STANDING, opening=opening, consent=consent)
        if latest is None or consent.granted_at >= latest[1].granted_at:
            latest = (opening, consent)
    if latest is None:
        return PairConsent(state=PairState.NEVER)
    opening, consent = latest
    state = PairState.REVOKED if consent.revoked else PairState.EXPIRED
    return PairConsent(state=state, opening=opening, consent=consent)


def standing_openings(
    credit: CreditRegistryClient, engine: Engine, factory: str, *, now_s: int
) -> list[tuple[ConsentOpening, Consent]]:
    """``factory``'s consents that stand on chain now, with their openings (the banks' admission is the
    caller's to ask)."""
    out = []
    for opening in openings_of_factory(engine, factory):
        consent = _on_chain(credit, opening)
        if consent is not None and consent.stands_at(now_s):
            out.append((opening, consent))
    return out


def opening_for_grant(
    credit: CreditRegistryClient, engine: Engine, factory: str, bank: str
) -> ConsentOpening:
    """The opening a grant of ``factory`` to ``bank`` goes under, kept before it is answered: the pair's
    latest opening the service holds (so granting again renews that consent), or a fresh one when there
    is none or its id was taken on chain by another factory."""
    for opening in reversed(openings_of_pair(engine, factory, bank)):
        if credit.consent_of(opening.consent_id).factory in (None, opening.factory):
            return opening
    opening = new_consent(factory, bank)
    store_consent_opening(engine, opening, source="prepared")
    return opening


def register_opening(credit: CreditRegistryClient, engine: Engine, opening: ConsentOpening) -> Consent:
    """Keep the opening of a consent the factory granted on chain itself, after checking that the chain
    holds its id as granted by that factory; the chain's record of it."""
    consent = _on_chain(credit, opening)
    if consent is None:
        raise ConsentRegistrationRefused(
            f"consent id {opening.consent_id_hex} was not granted on chain by {opening.factory}: grant it "
            "first (CreditRegistry.grantConsent), or check the bank and the salt"
        )
    store_consent_opening(engine, opening, source="registered")
    return consent


def consent_json(opening: ConsentOpening, consent: Consent | None, *, now_s: int) -> dict[str, object]:
    """A consent as the API serves it to the factory or the bank: its opening and the chain's record."""
    return {
        **opening.to_json_obj(),
        "granted_at": consent.granted_at if consent else None,
        "expires_at": consent.expires_at if consent else None,
        "revoked_at": (consent.revoked_at or None) if consent else None,
        "standing": consent.stands_at(now_s) if consent else False,
    }
