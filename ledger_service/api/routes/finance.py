"""Credit records with consent: oracle publishing, the factory's consents and access log, bank queries.

Every route needs a signed-in party (``CurrentParty``: bearer token or signed request); who may do
what is read from the chain at each request. Bank reads go through :meth:`FinanceDesk.gate`, which
logs every attempt (answered or refused) durably before the answer leaves. Refusals are 403 with a
typed code (``finance.not_a_bank``, ``finance.no_consent``, ``finance.consent_expired``,
``finance.not_the_factory``, ``finance.not_an_oracle``). See docs/finance-api.md.
"""

from __future__ import annotations

from typing import Annotated, Any

from eth_utils import is_address, to_checksum_address
from fastapi import APIRouter, Path, Query
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, Field
from web3.logs import DISCARD

from contracts.chain import TxResult
from contracts.participants import ParticipantRegistryClient, action_id
from contracts.receivables import ReceivablesClient, StablecoinClient, receivable_reference
from ledger_service.api.deps import CurrentParty, ServiceDep
from ledger_service.api.models import ErrorEnvelope
from ledger_service.api.responses import FastJSONResponse
from ledger_service.credit_desk.access_log import MAX_PAGE
from ledger_service.credit_desk.desk import (
    PUBLISH_ACTION,
    FinanceDesk,
    assess_profile,
    desk_of,
    prepare_publish,
    record_json,
    relay_publish,
)
from ledger_service.credit_desk.errors import (
    AccessRefused,
    FinanceError,
    FinanceNotDeployed,
    NotFound,
    PublishRefused,
)
from ledger_service.tx_relay import RelayRefused, expected_call, prepare, relay

router = APIRouter(prefix="/v1", tags=["finance"])

_REFUSALS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorEnvelope, "description": "No party signed in."},
    403: {"model": ErrorEnvelope, "description": "Refused (typed code, see docs/finance-api.md)."},
    503: {"model": ErrorEnvelope, "description": "The chain or the database is unreachable."},
}

# no pattern here: a malformed address is answered 400 finance.bad_address by _address, not 422
AddressPath = Annotated[str, Path(description="The factory's Ethereum address.")]


def _address(value: str) -> str:
    if not is_address(value):
        raise FinanceError(
            f"{value!r} is not an Ethereum address (0x and 40 hex digits)", code="finance.bad_address"
        )
    return to_checksum_address(value)


def _factory_only(party: str, factory: str) -> None:
    if party != factory:
        raise AccessRefused(
            f"only the factory {factory} itself may read this; you are {party}",
            code="finance.not_the_factory",
        )


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


class PublishSubmitIn(PublishIn):
    signed_transaction: str = Field(description="The oracle's raw signed copy of the prepared transaction.")


def _prepared(desk: FinanceDesk, party: str, body: PublishIn) -> dict[str, Any]:
    if not desk.admitted(party, PUBLISH_ACTION):
        raise AccessRefused(
            f"{party} is not admitted for supet.credit.publish (the analytics oracle)",
            code="finance.not_an_oracle",
        )
    factory = _address(body.factory)
    desk.require_factory_oracle(factory, party)
    assessment, commitment = assess_profile(
        desk.engine,
        factory,
        body.profile_commitment,
        price=body.price,
        revenue=body.revenue,
        currency=body.currency,
    )
    _, now_s = desk.head()
    args = desk.record_args(assessment, commitment, now_s, 90)
    if body.valid_until is not None:
        args["valid_until"] = body.valid_until
    tx = prepare_publish(desk, party, args, factory)
    return {
        "factory": factory,
        "valid_until": args["valid_until"],
        "record": {
            "grade": f"S{args['grade']}",
            "pd_ppm": args["pd_ppm"],
            "limit_minor": args["limit"],
            "currency": args["currency"],
            "model_version": assessment.model_version[:32],
            "commitment": commitment.commitment,
        },
        "assessment": assessment.to_json_obj(),
        "assessment_commitment": commitment.to_json_obj(),
        "transaction": tx,
        "_internal": (assessment, commitment),
    }


@router.post(
    "/credit/records/prepare",
    summary="Assess a factory from its published profile; the publishRecord transaction to sign (oracle)",
    responses={**_REFUSALS, 400: {"model": ErrorEnvelope}, 404: {"model": ErrorEnvelope}},
)
def prepare_record(body: PublishIn, party: CurrentParty, service: ServiceDep) -> Any:
    out = _prepared(desk_of(service), party.address, body)
    out.pop("_internal")
    return out


@router.post(
    "/credit/records",
    summary="Relay the oracle's signed publishRecord (exactly the prepared one) and store the assessment",
    responses={**_REFUSALS, 400: {"model": ErrorEnvelope}, 404: {"model": ErrorEnvelope}},
)
def publish_record(body: PublishSubmitIn, party: CurrentParty, service: ServiceDep) -> Any:
    desk = desk_of(service)
    out = _prepared(desk, party.address, body)
    assessment, commitment = out.pop("_internal")
    if body.valid_until is None:
        raise PublishRefused(
            "send the valid_until the prepare step returned (it is part of the signed call)",
            code="finance.publish.bad_transaction",
        )
    desk.store_assessment(out["factory"], assessment, commitment)
    try:
        tx_hash = relay_publish(desk, party.address, out["transaction"], body.signed_transaction)
    except RelayRefused as e:
        return _refusal(e)
    record = desk.current_record(out["factory"])
    assert record is not None
    return {
        "record": record_json(record),
        "tx_hash": tx_hash,
        "assessment_commitment": commitment.to_json_obj(),
    }


# ---------------------------------------------------------------------------- the factory's view


@router.get(
    "/factories/{address}/consents",
    summary="The consents this factory gave, standing or lapsed (the factory only)",
    responses=_REFUSALS,
)
def factory_consents(address: AddressPath, party: CurrentParty, service: ServiceDep) -> Any:
    desk = desk_of(service)
    factory = _address(address)
    _factory_only(party.address, factory)
    _, now_s = desk.head()
    out = []
    for bank in desk.credit.consented_banks(factory):
        c = desk.credit.consent_of(factory, bank)
        standing = desk.credit.has_consent(factory, bank)
        state = (
            "standing"
            if standing
            else "revoked"
            if c.revoked
            else "expired"
            if now_s >= c.expires_at
            else "lapsed"
        )
        out.append(
            {
                "bank": bank,
                "granted_at": c.granted_at,
                "expires_at": c.expires_at,
                "revoked_at": c.revoked_at or None,
                "standing": standing,
                "state": state,
            }
        )
    return {"factory": factory, "chain_time": now_s, "consents": out}


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
    desk = desk_of(service)
    factory = _address(address)
    _factory_only(party.address, factory)
    if before_id is not None and after_id is not None:
        raise FinanceError("give before_id= or after_id=, not both", code="finance.bad_query")
    page = desk.book.page(factory, limit=limit, before_id=before_id, after_id=after_id)
    rows = page.entries
    batches = desk.book.batches({r.batch_id for r in rows if r.batch_id is not None})
    entries = []
    for r in rows:
        b = batches.get(r.batch_id) if r.batch_id is not None else None
        proof = desk.book.proof(r) if b is not None and b.status == "anchored" else None
        entries.append(
            {
                "id": r.id,
                "ts_ms": r.ts_ms,
                "party": r.party,
                "action": r.action,
                "outcome": r.outcome,
                "request_id": r.request_id,
                "digest": "0x" + bytes(r.digest).hex(),
                "anchoring": "pending" if b is None else b.status,
                "proof": proof.to_json_obj() if proof is not None else None,
            }
        )
    return {
        "factory": factory,
        "entries": entries,
        "older_before_id": page.older_before_id,
        "newer_after_id": page.newer_after_id,
        "refused_unadmitted": desk.tally.summary(factory).to_json_obj(),
    }


# ---------------------------------------------------------------------------- bank queries


@router.get(
    "/bank/factories",
    summary="Factories with a standing consent to the calling bank, with their current record",
    responses=_REFUSALS,
)
def bank_factories(party: CurrentParty, service: ServiceDep) -> Any:
    return {"bank": party.address, "factories": desk_of(service).bank_factories(party.address)}


@router.get(
    "/bank/factories/{address}/credit",
    summary="A consenting factory's current credit record and its history (logged)",
    responses={**_REFUSALS, 404: {"model": ErrorEnvelope}},
)
def bank_credit(address: AddressPath, party: CurrentParty, service: ServiceDep) -> Any:
    desk = desk_of(service)
    factory = _address(address)
    desk.gate(party.address, factory, "credit")
    _, now_s = desk.head()
    history = desk.history(factory)
    return {
        "factory": factory,
        "current": record_json(history[-1], now_s=now_s) if history else None,
        "history": [record_json(r, now_s=now_s) for r in history],
    }


@router.get(
    "/bank/factories/{address}/profile",
    summary="A consenting factory's latest published profile with its commitment (logged)",
    responses={**_REFUSALS, 404: {"model": ErrorEnvelope}},
)
def bank_profile(address: AddressPath, party: CurrentParty, service: ServiceDep) -> Any:
    desk = desk_of(service)
    factory = _address(address)
    desk.gate(party.address, factory, "profile")
    return desk.latest_profile(factory)


# ---------------------------------------------------------------------------- receivables (reads)


def _receivables(service: Any) -> ReceivablesClient:
    if "Receivables" not in service.deployment.contracts:
        raise FinanceNotDeployed("this deployment has no Receivables contract")
    return ReceivablesClient.from_deployment(service.chain, service.deployment)


def _jsonable(obj: Any) -> Any:
    import dataclasses
    import enum

    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, enum.Enum):
        return obj.name
    if isinstance(obj, bytes):
        return "0x" + obj.hex()
    if isinstance(obj, list | tuple):
        return [_jsonable(x) for x in obj]
    return obj


@router.get(
    "/receivables",
    summary="Receivable parts held by `holder` or offered to `offered_to` that the caller is related to",
    responses=_REFUSALS,
)
async def receivables(
    party: CurrentParty,
    service: ServiceDep,
    holder: Annotated[str | None, Query()] = None,
    offered_to: Annotated[str | None, Query()] = None,
) -> Any:
    return await run_in_threadpool(_list_receivables, service, party.address, holder, offered_to)


#: Admitted for any of these, a party takes part in receivables (see :func:`_require_receivables_party`).
RECEIVABLE_ACTIONS: tuple[str, ...] = (
    "supet.receivable.hold",
    "supet.receivable.create",
    "supet.receivable.finance",
)
#: The payers: they approve the Receivables contract to move their settlement tokens.
PAYER_ACTIONS: tuple[str, ...] = ("supet.receivable.create", "supet.receivable.finance")


def _require_receivables_party(service: Any, party: str, actions: tuple[str, ...], what: str) -> None:
    """Refuse (403 ``finance.not_admitted``) a party admitted for none of ``actions``.

    Signing in only proves a key; taking part in receivables needs the consortium's admission.
    """
    client = _receivables(service)
    gate = ParticipantRegistryClient.at(service.chain, client.admission_gate())
    if any(gate.is_admitted(party, action_id(a)) for a in actions):
        return
    raise AccessRefused(
        f"{party} is not admitted for any of {', '.join(actions)}, so it may not {what}; "
        f"GET /v1/parties/{party}/admission says what is missing",
        code="finance.not_admitted",
    )


def related_to_part(party: str, part: dict[str, Any], receivable: dict[str, Any]) -> bool:
    """The one rule of who sees a receivable part in a listing: its holder, the bank it is offered
    to, the bank that financed it, or the receivable's debtor or creditor (the supplier it was
    confirmed to). Nobody else, whatever the query named."""
    return party in (
        part.get("holder"),
        part.get("offered_to"),
        part.get("financed_by"),
        receivable.get("debtor"),
        receivable.get("supplier"),
    )


def _list_receivables(service: Any, party: str, holder: str | None, offered_to: str | None) -> Any:
    client = _receivables(service)
    if (holder is None) == (offered_to is None):
        raise FinanceError("give exactly one of holder= and offered_to=", code="finance.bad_query")
    named = _address(holder if holder is not None else str(offered_to))
    _require_receivables_party(service, party, RECEIVABLE_ACTIONS, "list receivables")
    ids = client.parts_held_by(named) if holder is not None else client.offers_to(named)
    parts: list[dict[str, Any]] = []
    receivables: dict[int, dict[str, Any]] = {}
    for i in ids:
        part = _jsonable(client.part(i))
        rid = int(part["receivable_id"])
        if rid not in receivables:
            receivables[rid] = _jsonable(client.receivable(rid))
        if related_to_part(party, part, receivables[rid]):
            parts.append(part)
    if offered_to is not None and _address(offered_to) == party:
        # a bank sees the offering supplier's current record, only while the supplier's consent stands
        desk = desk_of(service)
        for p in parts:
            supplier = p.get("holder")
            if not supplier:
                continue
            try:
                desk.gate(party, supplier, "receivable")
            except AccessRefused as e:
                p["supplier_credit"] = None
                p["supplier_credit_withheld"] = {"code": e.code, "message": e.message}
                continue
            rec = desk.current_record(supplier)
            p["supplier_credit"] = record_json(rec, now_s=desk.head()[1]) if rec else None
    return {"parts": parts}


@router.get(
    "/receivables/{receivable_id}",
    summary="One receivable and its parts, from the chain",
    responses=_REFUSALS,
)
def receivable(receivable_id: Annotated[int, Path(ge=1)], party: CurrentParty, service: ServiceDep) -> Any:
    client = _receivables(service)
    if receivable_id > client.receivable_count():
        raise NotFound(f"there is no receivable {receivable_id}", code="finance.no_receivable")
    r = client.receivable(receivable_id)
    parts = [_jsonable(client.part(i)) for i in client.all_parts_of(receivable_id)]
    return {"receivable": _jsonable(r), "parts": parts}


# ---------------------------------------------------------------------------- party writes (prepare, relay)
#
# Each write is a pair: ``POST .../prepare`` answers the unsigned transaction for the caller's own
# address (after the admission check; a call the contract would refuse is answered 409
# ``finance.reverts`` with the custom error, before anything is signed), and ``POST ...`` with the same
# body plus ``signed_transaction`` relays exactly that call signed by the caller (see
# ledger_service/tx_relay.py for the checks). The service never holds a party's key.

SignedTx = Annotated[
    str,
    Field(description="0x-hex raw bytes of the prepared transaction, signed by the caller (EIP-1559)."),
]


class _Write:
    """One party write: the call, the admission it needs, and how to read its outcome."""

    def __init__(
        self,
        fn: Any,
        *,
        context: str,
        note: str | None = None,
        outcome: Any = None,
    ) -> None:
        self.fn, self.context, self.note, self.outcome = fn, context, note, outcome


def _refusal(e: RelayRefused) -> FastJSONResponse:
    body: dict[str, Any] = {"code": e.code, "message": e.message}
    if e.details:
        body["details"] = e.details
    return FastJSONResponse({"error": body}, status_code=e.http_status)


def _require_admitted(service: Any, party: str, action: str, why: str) -> None:
    client = _receivables(service) if action.startswith("supet.receivable.") else None
    gate = (
        ParticipantRegistryClient.at(service.chain, client.admission_gate())
        if client is not None
        else desk_of(service).gate_client()
    )
    if not gate.is_admitted(party, action_id(action)):
        raise AccessRefused(
            f"{party} is not admitted for {action} ({why}); GET /v1/parties/{party}/admission says what "
            "is missing",
            code="finance.not_admitted",
        )


def _prepare_write(service: Any, party: str, write: _Write) -> Any:
    try:
        tx = prepare(service.chain, party, write.fn, context=write.context)
    except RelayRefused as e:
        return _refusal(e)
    out: dict[str, Any] = {"party": party, "call": write.context, "transaction": tx}
    if write.note:
        out["note"] = write.note
    return out


def _relay_write(service: Any, party: str, write: _Write, signed: str) -> Any:
    expected = expected_call(service.chain, write.fn)
    try:
        done = relay(service.chain, party, expected, signed, context=write.context)
    except RelayRefused as e:
        return _refusal(e)
    out: dict[str, Any] = {
        "party": party,
        "call": write.context,
        "tx_hash": done.tx_hash,
        "block_number": done.block_number,
        "gas_used": done.gas_used,
    }
    if write.outcome is not None:
        out.update(write.outcome(done.result))
    if write.note:
        out["note"] = write.note
    return out


_WRITE_REFUSALS: dict[int | str, dict[str, Any]] = {
    **_REFUSALS,
    400: {"model": ErrorEnvelope, "description": "Bad input or not the prepared transaction."},
    409: {"model": ErrorEnvelope, "description": "The contract refuses the call (custom error in details)."},
}


# --- consents (the factory, supet.consent.grant)


class ConsentGrantIn(BaseModel):
    bank: str = Field(description="The bank to let read the caller's credit data.")
    expires_at: int = Field(ge=1, lt=2**64, description="Unix seconds (chain time) the consent lapses at.")


class ConsentGrantSubmitIn(ConsentGrantIn):
    signed_transaction: SignedTx


class ConsentRevokeIn(BaseModel):
    bank: str = Field(description="The bank whose standing consent the caller revokes.")


class ConsentRevokeSubmitIn(ConsentRevokeIn):
    signed_transaction: SignedTx


def _grant(service: Any, party: str, body: ConsentGrantIn) -> _Write:
    _require_admitted(service, party, "supet.consent.grant", "factories granting consent")
    fn = desk_of(service).credit.contract.functions.grantConsent(_address(body.bank), body.expires_at)
    return _Write(fn, context="grantConsent")


def _revoke(service: Any, party: str, body: ConsentRevokeIn) -> _Write:
    # no admission asked: a factory may always withdraw its consent (the contract asks none either)
    fn = desk_of(service).credit.contract.functions.revokeConsent(_address(body.bank))
    return _Write(fn, context="revokeConsent")


@router.post("/consents/prepare", summary="grantConsent to sign (factory)", responses=_WRITE_REFUSALS)
def grant_consent_prepare(body: ConsentGrantIn, party: CurrentParty, service: ServiceDep) -> Any:
    return _prepare_write(service, party.address, _grant(service, party.address, body))


@router.post("/consents", summary="Relay the factory's signed grantConsent", responses=_WRITE_REFUSALS)
def grant_consent(body: ConsentGrantSubmitIn, party: CurrentParty, service: ServiceDep) -> Any:
    return _relay_write(service, party.address, _grant(service, party.address, body), body.signed_transaction)


@router.post("/consents/revoke/prepare", summary="revokeConsent to sign (factory)", responses=_WRITE_REFUSALS)
def revoke_consent_prepare(body: ConsentRevokeIn, party: CurrentParty, service: ServiceDep) -> Any:
    return _prepare_write(service, party.address, _revoke(service, party.address, body))


@router.post(
    "/consents/revoke", summary="Relay the factory's signed revokeConsent", responses=_WRITE_REFUSALS
)
def revoke_consent(body: ConsentRevokeSubmitIn, party: CurrentParty, service: ServiceDep) -> Any:
    w = _revoke(service, party.address, body)
    return _relay_write(service, party.address, w, body.signed_transaction)


# --- receivables: confirm and repay (the debtor, supet.receivable.create)

_REPAY_NOTE = (
    "repay moves the face value from the debtor to the holders: the debtor must first approve the "
    "Receivables contract for it (POST /v1/stablecoin/approve/prepare)"
)
_FINANCE_NOTE = (
    "finance moves `price` from the bank to the holder: the bank must first approve the Receivables "
    "contract for it (POST /v1/stablecoin/approve/prepare)"
)


class ConfirmIn(BaseModel):
    supplier: str = Field(description="The supplier owed (the first holder).")
    face_value: int = Field(ge=1, lt=2**256, description="Smallest token units (fen for tCNY).")
    due_date: int = Field(ge=1, lt=2**64, description="Unix seconds.")
    reference: str = Field(min_length=1, max_length=200, description="The debtor's invoice number.")


class ConfirmSubmitIn(ConfirmIn):
    signed_transaction: SignedTx


class RepaySubmitIn(BaseModel):
    signed_transaction: SignedTx


def _confirm(service: Any, party: str, body: ConfirmIn) -> _Write:
    _require_admitted(service, party, "supet.receivable.create", "core enterprises confirming what they owe")
    rc = _receivables(service)
    ref = receivable_reference(body.reference)
    fn = rc.contract.functions.confirm(_address(body.supplier), body.face_value, body.due_date, ref)

    def outcome(result: TxResult) -> dict[str, Any]:
        (ev,) = rc.contract.events.ReceivableConfirmed().process_receipt(result.receipt, errors=DISCARD)
        rid = int(ev["args"]["receivableId"])
        return {"receivable_id": rid, "root_part": int(ev["args"]["rootPart"])}

    return _Write(fn, context="confirm", outcome=outcome)


def _repay(service: Any, party: str, receivable_id: int) -> _Write:
    rc = _receivables(service)
    if receivable_id > rc.receivable_count():
        raise NotFound(f"there is no receivable {receivable_id}", code="finance.no_receivable")
    debtor = rc.receivable(receivable_id).debtor
    if debtor != party:
        raise AccessRefused(
            f"only the debtor {debtor} repays receivable {receivable_id}; you are {party}",
            code="finance.not_the_debtor",
        )
    return _Write(rc.contract.functions.repay(receivable_id), context="repay", note=_REPAY_NOTE)


@router.post(
    "/receivables/prepare",
    summary="confirm (a receivable) to sign (core enterprise)",
    responses=_WRITE_REFUSALS,
)
def confirm_prepare(body: ConfirmIn, party: CurrentParty, service: ServiceDep) -> Any:
    return _prepare_write(service, party.address, _confirm(service, party.address, body))


@router.post(
    "/receivables",
    summary="Relay the debtor's signed confirm; answers the new receivable's id",
    responses=_WRITE_REFUSALS,
)
def confirm(body: ConfirmSubmitIn, party: CurrentParty, service: ServiceDep) -> Any:
    w = _confirm(service, party.address, body)
    return _relay_write(service, party.address, w, body.signed_transaction)


IdPath = Annotated[int, Path(ge=1, lt=2**255)]


@router.post(
    "/receivables/{receivable_id}/repay/prepare",
    summary="repay to sign (the debtor)",
    responses=_WRITE_REFUSALS,
)
def repay_prepare(receivable_id: IdPath, party: CurrentParty, service: ServiceDep) -> Any:
    return _prepare_write(service, party.address, _repay(service, party.address, receivable_id))


@router.post(
    "/receivables/{receivable_id}/repay", summary="Relay the debtor's signed repay", responses=_WRITE_REFUSALS
)
def repay(receivable_id: IdPath, body: RepaySubmitIn, party: CurrentParty, service: ServiceDep) -> Any:
    w = _repay(service, party.address, receivable_id)
    return _relay_write(service, party.address, w, body.signed_transaction)


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


class FinanceSubmitIn(FinanceIn):
    signed_transaction: SignedTx


def _holder_write(service: Any, party: str, part_id: int, name: str, *args: Any) -> _Write:
    _require_admitted(service, party, "supet.receivable.hold", "parties holding receivables")
    rc = _receivables(service)
    fn = getattr(rc.contract.functions, name)(part_id, *args)
    outcome = None
    if name == "split":

        def outcome(result: TxResult) -> dict[str, Any]:
            (ev,) = rc.contract.events.PartSplit().process_receipt(result.receipt, errors=DISCARD)
            return {"children": [int(c) for c in ev["args"]["children"]]}

    return _Write(fn, context=name, outcome=outcome)


def _split(service: Any, party: str, part_id: int, body: SplitIn) -> _Write:
    if len(body.amounts) != len(body.holders):
        raise FinanceError(
            f"one holder per amount: {len(body.amounts)} amounts, {len(body.holders)} holders",
            code="finance.bad_split",
        )
    holders = [_address(h) for h in body.holders]
    return _holder_write(service, party, part_id, "split", list(body.amounts), holders)


def _finance(service: Any, party: str, part_id: int, body: FinanceIn) -> _Write:
    _require_admitted(service, party, "supet.receivable.finance", "banks financing receivables")
    fn = _receivables(service).contract.functions.finance(part_id, body.price)
    return _Write(fn, context="finance", note=_FINANCE_NOTE)


@router.post("/receivables/parts/{part_id}/split/prepare", summary="split to sign", responses=_WRITE_REFUSALS)
def split_prepare(part_id: IdPath, body: SplitIn, party: CurrentParty, service: ServiceDep) -> Any:
    return _prepare_write(service, party.address, _split(service, party.address, part_id, body))


@router.post("/receivables/parts/{part_id}/split", summary="Relay a signed split", responses=_WRITE_REFUSALS)
def split(part_id: IdPath, body: SplitSubmitIn, party: CurrentParty, service: ServiceDep) -> Any:
    w = _split(service, party.address, part_id, body)
    return _relay_write(service, party.address, w, body.signed_transaction)


@router.post(
    "/receivables/parts/{part_id}/transfer/prepare", summary="transfer to sign", responses=_WRITE_REFUSALS
)
def transfer_prepare(part_id: IdPath, body: TransferIn, party: CurrentParty, service: ServiceDep) -> Any:
    w = _holder_write(service, party.address, part_id, "transfer", _address(body.to))
    return _prepare_write(service, party.address, w)


@router.post(
    "/receivables/parts/{part_id}/transfer", summary="Relay a signed transfer", responses=_WRITE_REFUSALS
)
def transfer(part_id: IdPath, body: TransferSubmitIn, party: CurrentParty, service: ServiceDep) -> Any:
    w = _holder_write(service, party.address, part_id, "transfer", _address(body.to))
    return _relay_write(service, party.address, w, body.signed_transaction)


@router.post("/receivables/parts/{part_id}/offer/prepare", summary="offer to sign", responses=_WRITE_REFUSALS)
def offer_prepare(part_id: IdPath, body: OfferIn, party: CurrentParty, service: ServiceDep) -> Any:
    w = _holder_write(service, party.address, part_id, "offer", _address(body.bank), body.min_price)
    return _prepare_write(service, party.address, w)


@router.post("/receivables/parts/{part_id}/offer", summary="Relay a signed offer", responses=_WRITE_REFUSALS)
def offer(part_id: IdPath, body: OfferSubmitIn, party: CurrentParty, service: ServiceDep) -> Any:
    w = _holder_write(service, party.address, part_id, "offer", _address(body.bank), body.min_price)
    return _relay_write(service, party.address, w, body.signed_transaction)


@router.post(
    "/receivables/parts/{part_id}/withdraw-offer/prepare",
    summary="withdrawOffer to sign",
    responses=_WRITE_REFUSALS,
)
def withdraw_offer_prepare(part_id: IdPath, party: CurrentParty, service: ServiceDep) -> Any:
    w = _holder_write(service, party.address, part_id, "withdrawOffer")
    return _prepare_write(service, party.address, w)


@router.post(
    "/receivables/parts/{part_id}/withdraw-offer",
    summary="Relay a signed withdrawOffer",
    responses=_WRITE_REFUSALS,
)
def withdraw_offer(part_id: IdPath, body: WithdrawSubmitIn, party: CurrentParty, service: ServiceDep) -> Any:
    w = _holder_write(service, party.address, part_id, "withdrawOffer")
    return _relay_write(service, party.address, w, body.signed_transaction)


@router.post(
    "/receivables/parts/{part_id}/finance/prepare",
    summary="finance to sign (bank)",
    responses=_WRITE_REFUSALS,
)
def finance_prepare(part_id: IdPath, body: FinanceIn, party: CurrentParty, service: ServiceDep) -> Any:
    return _prepare_write(service, party.address, _finance(service, party.address, part_id, body))


@router.post(
    "/receivables/parts/{part_id}/finance",
    summary="Relay the bank's signed finance",
    responses=_WRITE_REFUSALS,
)
def finance(part_id: IdPath, body: FinanceSubmitIn, party: CurrentParty, service: ServiceDep) -> Any:
    w = _finance(service, party.address, part_id, body)
    return _relay_write(service, party.address, w, body.signed_transaction)


# --- the settlement token: approve the Receivables contract (debtor before repay, bank before finance)


class ApproveIn(BaseModel):
    amount: int = Field(
        ge=0, lt=2**256, description="The allowance for the Receivables contract (token units)."
    )


class ApproveSubmitIn(ApproveIn):
    signed_transaction: SignedTx


def _approve(service: Any, party: str, body: ApproveIn) -> _Write:
    _require_receivables_party(service, party, PAYER_ACTIONS, "approve the Receivables contract")
    rc = _receivables(service)
    coin = StablecoinClient(service.chain, rc.token())
    fn = coin.contract.functions.approve(rc.address, body.amount)  # the spender is always the Receivables
    return _Write(fn, context="approve")


@router.post(
    "/stablecoin/approve/prepare",
    summary="approve (the Receivables contract as spender) to sign",
    responses=_WRITE_REFUSALS,
)
def approve_prepare(body: ApproveIn, party: CurrentParty, service: ServiceDep) -> Any:
    return _prepare_write(service, party.address, _approve(service, party.address, body))


@router.post("/stablecoin/approve", summary="Relay a signed approve", responses=_WRITE_REFUSALS)
def approve(body: ApproveSubmitIn, party: CurrentParty, service: ServiceDep) -> Any:
    w = _approve(service, party.address, body)
    return _relay_write(service, party.address, w, body.signed_transaction)
