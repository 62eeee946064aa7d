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

from contracts.receivables import ReceivablesClient
from ledger_service.api.deps import CurrentParty, ServiceDep
from ledger_service.api.models import ErrorEnvelope
from ledger_service.finance.desk import (
    PUBLISH_ACTION,
    FinanceDesk,
    assess_profile,
    desk_of,
    prepare_publish,
    record_json,
    relay_publish,
)
from ledger_service.finance.errors import AccessRefused, FinanceNotDeployed, NotFound, PublishRefused

router = APIRouter(prefix="/v1", tags=["finance"])

_REFUSALS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorEnvelope, "description": "No party signed in."},
    403: {"model": ErrorEnvelope, "description": "Refused (typed code, see docs/finance-api.md)."},
    503: {"model": ErrorEnvelope, "description": "The chain or the database is unreachable."},
}

AddressPath = Annotated[
    str, Path(description="The factory's Ethereum address.", pattern=r"^0x[0-9a-fA-F]{40}$")
]


def _address(value: str) -> str:
    if not is_address(value):
        raise NotFound(f"{value!r} is not an Ethereum address", code="finance.bad_address")
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
    tx_hash = relay_publish(desk, party.address, out["transaction"], body.signed_transaction)
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
    summary="Who looked at this factory's credit data, when, what, the outcome, and the anchoring proof",
    responses=_REFUSALS,
)
def factory_access_log(
    address: AddressPath,
    party: CurrentParty,
    service: ServiceDep,
    after_id: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Any:
    desk = desk_of(service)
    factory = _address(address)
    _factory_only(party.address, factory)
    rows = desk.book.entries_for(factory, limit=limit, after_id=after_id)
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
    return {"factory": factory, "entries": entries}


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
    summary="Receivable parts held by `holder` or offered to `offered_to`, from the chain",
    responses=_REFUSALS,
)
async def receivables(
    party: CurrentParty,
    service: ServiceDep,
    holder: Annotated[str | None, Query()] = None,
    offered_to: Annotated[str | None, Query()] = None,
) -> Any:
    return await run_in_threadpool(_list_receivables, service, party.address, holder, offered_to)


def _list_receivables(service: Any, party: str, holder: str | None, offered_to: str | None) -> Any:
    client = _receivables(service)
    if (holder is None) == (offered_to is None):
        raise NotFound("give exactly one of holder= and offered_to=", code="finance.bad_query")
    if holder is not None:
        ids = client.parts_held_by(_address(holder))
    else:
        assert offered_to is not None
        ids = client.offers_to(_address(offered_to))
    parts = [_jsonable(client.part(i)) for i in ids]
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
