"""The finance desk's reads, shared by the finance API and the portal (moved out of the routes, issue 13).

A factory's consents (with the banks behind their ids) and access log (the factory only), a bank's
consented factories with the consents' openings and their credit records (gated and logged by
:meth:`FinanceDesk.gate`), and receivables read from the chain (listed only to the parties related to
them). Each function takes the calling party's address, checks
what it may see, and answers JSON-ready values; refusals are typed
(:mod:`ledger_service.credit_desk.errors`), their HTTP statuses in the one map (api/errors.py).
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any

from eth_utils import is_address, to_checksum_address

from contracts.participant_ids import action_id
from contracts.participants import ParticipantRegistryClient
from contracts.receivables import ReceivablesClient
from ledger_service.credit_desk.consents import openings_of_factory
from ledger_service.credit_desk.desk import desk_of
from ledger_service.credit_desk.errors import AccessRefused, FinanceError, FinanceNotDeployed
from ledger_service.errors import NotFound
from ledger_service.store.batch_status import BatchStatus

__all__ = [
    "PAYER_ACTIONS",
    "RECEIVABLE_ACTIONS",
    "address",
    "bank_credit",
    "bank_factories",
    "bank_profile",
    "factory_access_log",
    "factory_consents",
    "factory_only",
    "jsonable",
    "list_receivables",
    "receivable",
    "receivables_client",
    "related_to_part",
    "require_receivables_party",
]

#: Admitted for any of these, a party takes part in receivables (see :func:`require_receivables_party`).
RECEIVABLE_ACTIONS: tuple[str, ...] = (
    "supet.receivable.hold",
    "supet.receivable.create",
    "supet.receivable.finance",
)
#: The payers: they approve the Receivables contract to move their settlement tokens.
PAYER_ACTIONS: tuple[str, ...] = ("supet.receivable.create", "supet.receivable.finance")


def address(value: str) -> str:
    """``value`` as a checksummed address; :class:`FinanceError` ``finance.bad_address`` otherwise."""
    if not is_address(value):
        raise FinanceError(
            f"{value!r} is not an Ethereum address (0x and 40 hex digits)", code="finance.bad_address"
        )
    return to_checksum_address(value)


def factory_only(party: str, factory: str) -> None:
    """Refuse (``finance.not_the_factory``) anyone but the factory itself."""
    if party != factory:
        raise AccessRefused(
            f"only the factory {factory} itself may read this; you are {party}",
            code="finance.not_the_factory",
        )


# ---------------------------------------------------------------------------- the factory's view


def factory_consents(service: Any, party: str, factory_address: str) -> dict[str, Any]:
    """The consents the factory gave, standing or lapsed (the factory only): every consent id the chain
    holds of it, with the bank and salt where this service holds the opening (a consent granted on chain
    directly and not registered shows ``bank`` None: ``POST /v1/consents/openings`` registers it)."""
    desk = desk_of(service)
    factory = address(factory_address)
    factory_only(party, factory)
    _, now_s = desk.head()
    openings = {o.consent_id: o for o in openings_of_factory(desk.engine, factory)}
    out = []
    for cid in desk.credit.consent_ids_of(factory):
        c = desk.credit.consent_of(cid)
        standing = c.stands_at(now_s)
        state = "standing" if standing else "revoked" if c.revoked else "expired"
        opening = openings.get(cid)
        out.append(
            {
                "consent_id": "0x" + cid.hex(),
                "bank": opening.bank if opening else None,
                "salt": "0x" + opening.salt.hex() if opening else None,
                "granted_at": c.granted_at,
                "expires_at": c.expires_at,
                "revoked_at": c.revoked_at or None,
                "standing": standing,
                "state": state,
            }
        )
    return {"factory": factory, "chain_time": now_s, "consents": out}


def factory_access_log(
    service: Any,
    party: str,
    factory_address: str,
    *,
    before_id: int | None,
    after_id: int | None,
    limit: int,
) -> dict[str, Any]:
    """A page of who looked at the factory's credit data, newest first, each entry with its anchoring
    proof, and the tally of refused non-admitted keys (the factory only)."""
    desk = desk_of(service)
    factory = address(factory_address)
    factory_only(party, factory)
    if before_id is not None and after_id is not None:
        raise FinanceError("give before_id= or after_id=, not both", code="finance.bad_query")
    page = desk.book.page(factory, limit=limit, before_id=before_id, after_id=after_id)
    rows = page.entries
    batches = desk.book.batches({r.batch_id for r in rows if r.batch_id is not None})
    entries = []
    for r in rows:
        b = batches.get(r.batch_id) if r.batch_id is not None else None
        proof = desk.book.proof(r) if b is not None and b.status == BatchStatus.ANCHORED else None
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


def bank_factories(service: Any, party: str) -> dict[str, Any]:
    """Factories with a standing consent to the calling bank, with their current record."""
    return {"bank": party, "factories": desk_of(service).bank_factories(party)}


def bank_credit(service: Any, party: str, factory_address: str) -> dict[str, Any]:
    """A consenting factory's current credit record and its history, each opened with its salt so the
    bank checks it against the commitment on chain (gated and logged)."""
    desk = desk_of(service)
    factory = address(factory_address)
    desk.gate(party, factory, "credit")
    _, now_s = desk.head()
    history = [desk.served(r, now_s=now_s) for r in desk.history(factory)]
    return {"factory": factory, "current": history[-1] if history else None, "history": history}


def bank_profile(service: Any, party: str, factory_address: str) -> Any:
    """A consenting factory's latest published profile with its commitment (gated and logged)."""
    desk = desk_of(service)
    factory = address(factory_address)
    desk.gate(party, factory, "profile")
    return desk.latest_profile(factory)


# ---------------------------------------------------------------------------- receivables (reads)


def receivables_client(service: Any) -> ReceivablesClient:
    """The deployment's Receivables; :class:`FinanceNotDeployed` when it has none."""
    if "Receivables" not in service.deployment.contracts:
        raise FinanceNotDeployed("this deployment has no Receivables contract")
    return ReceivablesClient.from_deployment(service.chain, service.deployment)


def jsonable(obj: Any) -> Any:
    """A chain value (dataclasses, enums, bytes) as JSON-ready values."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, enum.Enum):
        return obj.name
    if isinstance(obj, bytes):
        return "0x" + obj.hex()
    if isinstance(obj, list | tuple):
        return [jsonable(x) for x in obj]
    return obj


def require_receivables_party(service: Any, party: str, actions: tuple[str, ...], what: str) -> None:
    """Refuse (403 ``finance.not_admitted``) a party admitted for none of ``actions``.

    Signing in only proves a key; taking part in receivables needs the consortium's admission.
    """
    client = receivables_client(service)
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


def list_receivables(service: Any, party: str, holder: str | None, offered_to: str | None) -> dict[str, Any]:
    """Receivable parts held by ``holder`` or offered to ``offered_to`` (exactly one) that ``party`` is
    related to; a bank listing its own offers also sees each supplier's current record while the
    supplier's consent stands."""
    client = receivables_client(service)
    if (holder is None) == (offered_to is None):
        raise FinanceError("give exactly one of holder= and offered_to=", code="finance.bad_query")
    named = address(holder if holder is not None else str(offered_to))
    require_receivables_party(service, party, RECEIVABLE_ACTIONS, "list receivables")
    ids = client.parts_held_by(named) if holder is not None else client.offers_to(named)
    parts: list[dict[str, Any]] = []
    receivables: dict[int, dict[str, Any]] = {}
    for i in ids:
        part = jsonable(client.part(i))
        rid = int(part["receivable_id"])
        if rid not in receivables:
            receivables[rid] = jsonable(client.receivable(rid))
        if related_to_part(party, part, receivables[rid]):
            parts.append(part)
    if offered_to is not None and address(offered_to) == party:
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
            p["supplier_credit"] = desk.served(rec, now_s=desk.head()[1]) if rec else None
    return {"parts": parts}


def receivable(service: Any, receivable_id: int) -> dict[str, Any]:
    """One receivable and its parts, from the chain; :class:`NotFound` ``finance.no_receivable``."""
    client = receivables_client(service)
    if receivable_id > client.receivable_count():
        raise NotFound(f"there is no receivable {receivable_id}", code="finance.no_receivable")
    r = client.receivable(receivable_id)
    parts = [jsonable(client.part(i)) for i in client.all_parts_of(receivable_id)]
    return {"receivable": jsonable(r), "parts": parts}
