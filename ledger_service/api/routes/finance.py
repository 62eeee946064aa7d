"""Credit records with consent: oracle publishing, the factory's consents and access log, bank queries.

Routes parse and answer only: the logic is the finance desk's (:mod:`ledger_service.credit_desk.queries`
for reads, :mod:`ledger_service.credit_desk.party_writes` for writes), which the portal uses too.
Every route needs a signed-in party (``CurrentParty``: bearer token or signed request); who may do
what is read from the chain at each request. Bank reads go through :meth:`FinanceDesk.gate`, which
logs every attempt (answered or refused) durably before the answer leaves. Refusals are 403 with a
typed code (``finance.not_a_bank``, ``finance.no_consent``, ``finance.consent_expired``,
``finance.not_the_factory``, ``finance.not_an_oracle``; 409 ``finance.line.*`` when the oracle does not
sign a credit-line statement). See docs/finance-api.md.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field

from ledger_service.api.deps import Access, CurrentParty, ServiceDep
from ledger_service.api.models import ErrorEnvelope
from ledger_service.credit_desk import backing, line, queries
from ledger_service.credit_desk import party_writes as writes
from ledger_service.credit_desk.access_log import MAX_PAGE
from ledger_service.credit_desk.desk import desk_of
from ledger_service.credit_desk.party_writes import Write

router = APIRouter(prefix="/v1", tags=["finance"])

_REFUSALS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorEnvelope, "description": "No party signed in."},
    403: {"model": ErrorEnvelope, "description": "Refused (typed code, see docs/finance-api.md)."},
    503: {"model": ErrorEnvelope, "description": "The chain or the database is unreachable."},
}

# no pattern here: a malformed address is answered 400 finance.bad_address by queries.address, not 422
AddressPath = Annotated[str, Path(description="The factory's Ethereum address.")]

#: The most entries a page of a listing holds (issue 14: every list endpoint is paged).
MAX_LIST_PAGE = 200
OffsetQuery = Annotated[int, Query(ge=0, le=2**31, description="Entries to skip: `next_offset` of a page.")]
LimitQuery = Annotated[int, Query(ge=1, le=MAX_LIST_PAGE)]


def _page(answer: dict[str, Any], key: str, offset: int, limit: int) -> dict[str, Any]:
    """``answer`` with its list ``key`` cut to one page, and the offset of the next (None on the last)."""
    items = list(answer[key])
    more = len(items) > offset + limit
    return {**answer, key: items[offset : offset + limit], "next_offset": offset + limit if more else None}


# ---------------------------------------------------------------------------- publishing (oracle)


class PublishIn(BaseModel):
    factory: str = Field(description="The factory's address (the profile's subject).")
    profile_commitment: str = Field(description="The commitment of the factory's published profile.")
    price: float | None = Field(default=None, description="Unit price (or give `revenue`).")
    revenue: float | None = Field(default=None, description="Annual revenue (or give `price`).")
    currency: str = Field(default="CNY", pattern=r"^[A-Z]{3}$")
    valid_until: int | None = Field(
        default=None, description="Unix seconds; default 90 days after the latest block. Echo it on submit."
    )


class EnvelopeIn(BaseModel):
    consent_id: str = Field(description="The consent id the envelope is addressed by (all the chain sees).")
    bank: str | None = Field(default=None, description="The bank it is sealed for (the oracle's to know).")
    ciphertext: str = Field(description="0x-hex ECIES ciphertext, as the prepare step answered it.")


class PublishSubmitIn(PublishIn):
    signed_transaction: str = Field(description="The oracle's raw signed copy of the prepared transaction.")
    salt: str = Field(description="The record's salt, as the prepare step answered it (0x-hex, 32 bytes).")
    envelopes: list[EnvelopeIn] = Field(
        default_factory=list, max_length=256, description="The envelopes the prepare step answered, as is."
    )


@router.post(
    "/credit/records/prepare",
    summary="Assess a factory from its published profile; the record with a fresh salt, its envelopes for "
    "the consented banks, and the publishRecord transaction to sign (oracle)",
    responses={**_REFUSALS, 400: {"model": ErrorEnvelope}, 404: {"model": ErrorEnvelope}},
)
def prepare_record(body: PublishIn, party: CurrentParty, service: ServiceDep) -> Any:
    out = _prepared(service, party.address, body)
    out.pop("_internal")
    return out


@router.post(
    "/credit/records",
    summary="Relay the oracle's signed publishRecord (exactly the prepared one: echo its salt and "
    "envelopes) and store the assessment and the record with its salt",
    responses={**_REFUSALS, 400: {"model": ErrorEnvelope}, 404: {"model": ErrorEnvelope}},
)
def publish_record(body: PublishSubmitIn, party: CurrentParty, service: ServiceDep) -> Any:
    prepared = _prepared(service, party.address, body)
    desk = desk_of(service)
    return writes.publish_record(desk, party.address, prepared, body.valid_until, body.signed_transaction)


def _prepared(service: Any, party: str, body: PublishIn) -> dict[str, Any]:
    submit = body if isinstance(body, PublishSubmitIn) else None
    return writes.prepared_publish(
        desk_of(service),
        party,
        factory_address=body.factory,
        profile_commitment=body.profile_commitment,
        price=body.price,
        revenue=body.revenue,
        currency=body.currency,
        valid_until=body.valid_until,
        salt=submit.salt if submit else None,
        envelopes=[e.model_dump() for e in submit.envelopes] if submit else None,
    )


# ---------------------------------------------------------------------------- the factory's view


@router.get(
    "/factories/{address}/consents",
    summary="The consents this factory gave, standing or lapsed (the factory only)",
    responses=_REFUSALS,
)
def factory_consents(address: AddressPath, party: CurrentParty, service: ServiceDep) -> Any:
    return queries.factory_consents(service, party.address, address)


@router.get(
    "/factories/{address}/access-log",
    summary="Who looked at this factory's credit data, newest first, paged, with each entry's anchoring "
    "proof; and how many non-admitted keys were refused (not anchored)",
    responses=_REFUSALS,
)
def factory_access_log(
    address: AddressPath,
    party: CurrentParty,
    service: ServiceDep,
    before_id: Annotated[
        int | None, Query(ge=1, description="The next (older) page: `older_before_id` of a page.")
    ] = None,
    after_id: Annotated[
        int | None, Query(ge=0, description="The previous (newer) page: `newer_after_id` of a page.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> Any:
    return queries.factory_access_log(
        service, party.address, address, before_id=before_id, after_id=after_id, limit=limit
    )


# ---------------------------------------------------------------------------- bank queries


@router.get(
    "/bank/factories",
    summary="Factories with a standing consent to the calling bank, with their current record, paged",
    responses=_REFUSALS,
)
def bank_factories(
    party: CurrentParty, service: ServiceDep, offset: OffsetQuery = 0, limit: LimitQuery = 100
) -> Any:
    return _page(queries.bank_factories(service, party.address), "factories", offset, limit)


@router.get(
    "/bank/factories/{address}/credit",
    summary="A consenting factory's current credit record and its history (logged)",
    responses={**_REFUSALS, 404: {"model": ErrorEnvelope}},
)
def bank_credit(address: AddressPath, party: CurrentParty, service: ServiceDep) -> Any:
    return queries.bank_credit(service, party.address, address)


@router.get(
    "/bank/factories/{address}/profile",
    summary="A consenting factory's latest published profile with its commitment (logged)",
    responses={**_REFUSALS, 404: {"model": ErrorEnvelope}},
)
def bank_profile(address: AddressPath, party: CurrentParty, service: ServiceDep) -> Any:
    return queries.bank_profile(service, party.address, address)


@router.post(
    "/bank/receivables/parts/{part_id}/line",
    summary="The oracle's credit-line statement letting the calling bank finance this part (the seller's "
    "outstanding financed amount plus the part's is within its current record's limit; logged)",
    responses={
        **_REFUSALS,
        404: {"model": ErrorEnvelope},
        409: {"model": ErrorEnvelope, "description": "The oracle does not sign (finance.line.*)."},
    },
)
def bank_line(
    part_id: Annotated[int, Path(ge=1, lt=2**255)], party: CurrentParty, service: ServiceDep
) -> Any:
    return line.line_for_bank(service, party.address, part_id)


# ---------------------------------------------------------------------------- receivables (reads)


@router.get(
    "/receivables",
    summary="Receivable parts held by `holder` or offered to `offered_to` that the caller is related to, "
    "paged",
    responses=_REFUSALS,
)
async def receivables(
    party: CurrentParty,
    service: ServiceDep,
    holder: Annotated[str | None, Query()] = None,
    offered_to: Annotated[str | None, Query()] = None,
    offset: OffsetQuery = 0,
    limit: LimitQuery = 100,
) -> Any:
    found = await run_in_threadpool(queries.list_receivables, service, party.address, holder, offered_to)
    return _page(found, "parts", offset, limit)


@router.get(
    "/receivables/{receivable_id}",
    summary="One receivable and its parts, from the chain (the parties to it)",
    responses=_REFUSALS,
)
def receivable(receivable_id: Annotated[int, Path(ge=1)], access: Access, service: ServiceDep) -> Any:
    # the access guard read it to learn its parties (and refused anyone else): answer that reading
    return access.preload if access.preload is not None else queries.receivable(service, receivable_id)


# ---------------------------------------------------------------------------- party writes (prepare, relay)
#
# Each write is a pair: ``POST .../prepare`` answers the unsigned transaction for the caller's own
# address (:func:`~ledger_service.credit_desk.party_writes.prepare_write`), and ``POST ...`` with the
# same body plus ``signed_transaction`` relays exactly that call signed by the caller
# (:func:`~ledger_service.credit_desk.party_writes.relay_write`).

SignedTx = Annotated[
    str,
    Field(description="0x-hex raw bytes of the prepared transaction, signed by the caller (EIP-1559)."),
]


_WRITE_REFUSALS: dict[int | str, dict[str, Any]] = {
    **_REFUSALS,
    400: {"model": ErrorEnvelope, "description": "Bad input or not the prepared transaction."},
    409: {"model": ErrorEnvelope, "description": "The contract refuses the call (custom error in details)."},
}


# --- consents (the factory, supet.consent.grant)


# The chain keys a consent by its consent id, the salted hash of (factory, bank, salt): the bank never
# reaches the chain. The prepare step makes the opening (or reuses the pair's) and keeps it before it
# answers; both answers carry it (``consent``). A factory that granted on chain itself registers the
# opening with POST /v1/consents/openings.


class ConsentGrantIn(BaseModel):
    bank: str = Field(description="The bank to let read the caller's credit data (never sent to the chain).")
    expires_at: int = Field(ge=1, lt=2**64, description="Unix seconds (chain time) the consent lapses at.")


class ConsentGrantSubmitIn(ConsentGrantIn):
    signed_transaction: SignedTx


class ConsentRevokeIn(BaseModel):
    bank: str | None = Field(default=None, description="The bank whose standing consent the caller revokes.")
    consent_id: str | None = Field(default=None, description="Or the consent id (0x-hex 32 bytes) to revoke.")


class ConsentRevokeSubmitIn(ConsentRevokeIn):
    signed_transaction: SignedTx


class ConsentOpeningIn(BaseModel):
    bank: str = Field(description="The bank the consent granted on chain is to.")
    salt: str = Field(description="The consent id's salt (0x-hex 32 bytes), as the grant returned it.")


def _grant(service: Any, party: str, body: ConsentGrantIn) -> Write:
    return writes.grant_consent(service, party, body.bank, body.expires_at)


def _revoke(service: Any, party: str, body: ConsentRevokeIn) -> Write:
    return writes.revoke_consent(service, party, bank=body.bank, consent_id=body.consent_id)


@router.post("/consents/prepare", summary="grantConsent to sign (factory)", responses=_WRITE_REFUSALS)
def grant_consent_prepare(body: ConsentGrantIn, party: CurrentParty, service: ServiceDep) -> Any:
    return writes.prepare_write(service, party.address, _grant(service, party.address, body))


@router.post("/consents", summary="Relay the factory's signed grantConsent", responses=_WRITE_REFUSALS)
def grant_consent(body: ConsentGrantSubmitIn, party: CurrentParty, service: ServiceDep) -> Any:
    return writes.relay_write(
        service, party.address, _grant(service, party.address, body), body.signed_transaction
    )


@router.post("/consents/revoke/prepare", summary="revokeConsent to sign (factory)", responses=_WRITE_REFUSALS)
def revoke_consent_prepare(body: ConsentRevokeIn, party: CurrentParty, service: ServiceDep) -> Any:
    return writes.prepare_write(service, party.address, _revoke(service, party.address, body))


@router.post(
    "/consents/revoke", summary="Relay the factory's signed revokeConsent", responses=_WRITE_REFUSALS
)
def revoke_consent(body: ConsentRevokeSubmitIn, party: CurrentParty, service: ServiceDep) -> Any:
    w = _revoke(service, party.address, body)
    return writes.relay_write(service, party.address, w, body.signed_transaction)


@router.post(
    "/consents/openings",
    summary="Register the opening of a consent the factory granted on chain itself (factory)",
    responses={**_REFUSALS, 400: {"model": ErrorEnvelope, "description": "No such consent of the caller."}},
)
def register_consent_opening(body: ConsentOpeningIn, party: CurrentParty, service: ServiceDep) -> Any:
    return writes.register_consent(service, party.address, body.bank, body.salt)


# --- receivables: confirm and repay (the debtor, supet.receivable.create)


class ConfirmIn(BaseModel):
    supplier: str = Field(description="The supplier owed (the first holder).")
    face_value: int = Field(ge=1, lt=2**256, description="Smallest token units (fen for tCNY).")
    due_date: int = Field(ge=1, lt=2**64, description="Unix seconds.")
    reference: str = Field(min_length=1, max_length=200, description="The debtor's invoice number.")
    order_id: str = Field(
        pattern=r"^0x[0-9a-fA-F]{64}$",
        description="The purchase order the receivable is for (its on-chain id).",
    )
    lots: list[Annotated[str, Field(pattern=r"^0x[0-9a-fA-F]{64}$")]] = Field(
        min_length=1,
        max_length=32,
        description="The keys of the delivered lots behind it: in the debtor's custody, the supplier's, "
        "of the order's product, certified, not recalled, backing no other receivable (checked on chain).",
    )


class ConfirmSubmitIn(ConfirmIn):
    signed_transaction: SignedTx


class RepaySubmitIn(BaseModel):
    signed_transaction: SignedTx


def _confirm(service: Any, party: str, body: ConfirmIn) -> Write:
    backing = (body.order_id, body.lots)
    return writes.confirm(
        service, party, body.supplier, body.face_value, body.due_date, body.reference, backing
    )


@router.post(
    "/receivables/prepare",
    summary="confirm (a receivable) to sign (core enterprise)",
    responses=_WRITE_REFUSALS,
)
def confirm_prepare(body: ConfirmIn, party: CurrentParty, service: ServiceDep) -> Any:
    return writes.prepare_write(service, party.address, _confirm(service, party.address, body))


@router.post(
    "/receivables",
    summary="Relay the debtor's signed confirm; answers the new receivable's id",
    responses=_WRITE_REFUSALS,
)
def confirm(body: ConfirmSubmitIn, party: CurrentParty, service: ServiceDep) -> Any:
    w = _confirm(service, party.address, body)
    return writes.relay_write(service, party.address, w, body.signed_transaction)


IdPath = Annotated[int, Path(ge=1, lt=2**255)]


class BackingCheckIn(BaseModel):
    order_terms: list[dict[str, Any]] = Field(
        default_factory=list,
        max_length=64,
        description="Order-terms openings the caller holds (as `supet analytics --order-terms` reads them); "
        "the one of the receivable's order checks face value <= delivered quantity x unit price. Not stored.",
    )


@router.post(
    "/receivables/{receivable_id}/check",
    summary="The receivable's backing package checked against the chain (a bank, before it finances)",
    responses={**_REFUSALS, 400: {"model": ErrorEnvelope}},
)
def check_backing(
    receivable_id: IdPath, body: BackingCheckIn, party: CurrentParty, service: ServiceDep
) -> Any:
    """Order -> lots -> custody -> quality certificates -> confirmation -> value, each with `ok` and what
    was found (`supet finance check` runs the same on the bank's own node)."""
    return backing.backing_report(service, receivable_id, body.order_terms)


@router.post(
    "/receivables/{receivable_id}/repay/prepare",
    summary="repay to sign (the debtor)",
    responses=_WRITE_REFUSALS,
)
def repay_prepare(receivable_id: IdPath, party: CurrentParty, service: ServiceDep) -> Any:
    return writes.prepare_write(service, party.address, writes.repay(service, party.address, receivable_id))


@router.post(
    "/receivables/{receivable_id}/repay", summary="Relay the debtor's signed repay", responses=_WRITE_REFUSALS
)
def repay(receivable_id: IdPath, body: RepaySubmitIn, party: CurrentParty, service: ServiceDep) -> Any:
    w = writes.repay(service, party.address, receivable_id)
    return writes.relay_write(service, party.address, w, body.signed_transaction)


# --- parts: split, transfer, offer, withdraw (the holder, supet.receivable.hold); finance (the bank)


class SplitIn(BaseModel):
    amounts: list[Annotated[int, Field(ge=1, lt=2**256)]] = Field(min_length=2, max_length=16)
    holders: list[str] = Field(min_length=2, max_length=16, description="One holder per amount, in order.")


class SplitSubmitIn(SplitIn):
    signed_transaction: SignedTx


class TransferIn(BaseModel):
    to: str = Field(description="The new holder (admitted for supet.receivable.hold).")


class TransferSubmitIn(TransferIn):
    signed_transaction: SignedTx


class OfferIn(BaseModel):
    bank: str = Field(description="The bank that may finance the part.")
    min_price: int = Field(ge=1, lt=2**256, description="The least the holder accepts (token units).")


class OfferSubmitIn(OfferIn):
    signed_transaction: SignedTx


class WithdrawSubmitIn(BaseModel):
    signed_transaction: SignedTx


class FinanceIn(BaseModel):
    price: int = Field(ge=1, lt=2**256, description="What the bank pays the holder (token units).")
    line: dict[str, Any] = Field(
        description="The seller's oracle's credit-line statement for this bank and part: the `attestation` "
        "of POST /v1/bank/receivables/parts/{part_id}/line."
    )


class FinanceSubmitIn(FinanceIn):
    signed_transaction: SignedTx


def _split(service: Any, party: str, part_id: int, body: SplitIn) -> Write:
    return writes.split(service, party, part_id, list(body.amounts), body.holders)


def _finance(service: Any, party: str, part_id: int, body: FinanceIn) -> Write:
    return writes.finance(service, party, part_id, body.price, body.line)


@router.post("/receivables/parts/{part_id}/split/prepare", summary="split to sign", responses=_WRITE_REFUSALS)
def split_prepare(part_id: IdPath, body: SplitIn, party: CurrentParty, service: ServiceDep) -> Any:
    return writes.prepare_write(service, party.address, _split(service, party.address, part_id, body))


@router.post("/receivables/parts/{part_id}/split", summary="Relay a signed split", responses=_WRITE_REFUSALS)
def split(part_id: IdPath, body: SplitSubmitIn, party: CurrentParty, service: ServiceDep) -> Any:
    w = _split(service, party.address, part_id, body)
    return writes.relay_write(service, party.address, w, body.signed_transaction)


@router.post(
    "/receivables/parts/{part_id}/transfer/prepare", summary="transfer to sign", responses=_WRITE_REFUSALS
)
def transfer_prepare(part_id: IdPath, body: TransferIn, party: CurrentParty, service: ServiceDep) -> Any:
    w = writes.transfer(service, party.address, part_id, body.to)
    return writes.prepare_write(service, party.address, w)


@router.post(
    "/receivables/parts/{part_id}/transfer", summary="Relay a signed transfer", responses=_WRITE_REFUSALS
)
def transfer(part_id: IdPath, body: TransferSubmitIn, party: CurrentParty, service: ServiceDep) -> Any:
    w = writes.transfer(service, party.address, part_id, body.to)
    return writes.relay_write(service, party.address, w, body.signed_transaction)


@router.post("/receivables/parts/{part_id}/offer/prepare", summary="offer to sign", responses=_WRITE_REFUSALS)
def offer_prepare(part_id: IdPath, body: OfferIn, party: CurrentParty, service: ServiceDep) -> Any:
    w = writes.offer(service, party.address, part_id, body.bank, body.min_price)
    return writes.prepare_write(service, party.address, w)


@router.post("/receivables/parts/{part_id}/offer", summary="Relay a signed offer", responses=_WRITE_REFUSALS)
def offer(part_id: IdPath, body: OfferSubmitIn, party: CurrentParty, service: ServiceDep) -> Any:
    w = writes.offer(service, party.address, part_id, body.bank, body.min_price)
    return writes.relay_write(service, party.address, w, body.signed_transaction)


@router.post(
    "/receivables/parts/{part_id}/withdraw-offer/prepare",
    summary="withdrawOffer to sign",
    responses=_WRITE_REFUSALS,
)
def withdraw_offer_prepare(part_id: IdPath, party: CurrentParty, service: ServiceDep) -> Any:
    w = writes.withdraw_offer(service, party.address, part_id)
    return writes.prepare_write(service, party.address, w)


@router.post(
    "/receivables/parts/{part_id}/withdraw-offer",
    summary="Relay a signed withdrawOffer",
    responses=_WRITE_REFUSALS,
)
def withdraw_offer(part_id: IdPath, body: WithdrawSubmitIn, party: CurrentParty, service: ServiceDep) -> Any:
    w = writes.withdraw_offer(service, party.address, part_id)
    return writes.relay_write(service, party.address, w, body.signed_transaction)


@router.post(
    "/receivables/parts/{part_id}/finance/prepare",
    summary="finance to sign (bank)",
    responses=_WRITE_REFUSALS,
)
def finance_prepare(part_id: IdPath, body: FinanceIn, party: CurrentParty, service: ServiceDep) -> Any:
    return writes.prepare_write(service, party.address, _finance(service, party.address, part_id, body))


@router.post(
    "/receivables/parts/{part_id}/finance",
    summary="Relay the bank's signed finance",
    responses=_WRITE_REFUSALS,
)
def finance(part_id: IdPath, body: FinanceSubmitIn, party: CurrentParty, service: ServiceDep) -> Any:
    w = _finance(service, party.address, part_id, body)
    return writes.relay_write(service, party.address, w, body.signed_transaction)


# --- the settlement token: approve the Receivables contract (debtor before repay, bank before finance)


class ApproveIn(BaseModel):
    amount: int = Field(
        ge=0, lt=2**256, description="The allowance for the Receivables contract (token units)."
    )


class ApproveSubmitIn(ApproveIn):
    signed_transaction: SignedTx


def _approve(service: Any, party: str, body: ApproveIn) -> Write:
    return writes.approve(service, party, body.amount)


@router.post(
    "/stablecoin/approve/prepare",
    summary="approve (the Receivables contract as spender) to sign",
    responses=_WRITE_REFUSALS,
)
def approve_prepare(body: ApproveIn, party: CurrentParty, service: ServiceDep) -> Any:
    return writes.prepare_write(service, party.address, _approve(service, party.address, body))


@router.post("/stablecoin/approve", summary="Relay a signed approve", responses=_WRITE_REFUSALS)
def approve(body: ApproveSubmitIn, party: CurrentParty, service: ServiceDep) -> Any:
    w = _approve(service, party.address, body)
    return writes.relay_write(service, party.address, w, body.signed_transaction)
