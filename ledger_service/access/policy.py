"""The access policy: who may read what, decided in one place (issue 14; docs/access-policy.md).

Pure: :func:`decide` takes the caller and the facts about the resource (gathered by
:mod:`ledger_service.access.facts`) and answers a :class:`Decision`, allowed with the reason, or
refused with a stable code. Nothing here reads the store or the chain.

:data:`ROUTES` names the data every read route of the API and every portal page serves; the access
guard (:mod:`ledger_service.access.guard`) looks the matched route up there on every request and
refuses a read route that has no entry. The parties:

- the device's owning factory (the ``owner`` of readings, devices, finance data);
- the device itself, for its own readings, receipts and proofs;
- a bank, for a factory's finance data, only while the factory's consent stands;
- the custodians of a lot, past and present, and its issuer, for that lot's evidence;
- an auditor named by the lot's holder, for that lot's evidence;
- the consortium operator, for operations data only (device records, admissions);
- anonymous, for nothing except what a party chose to disclose (and the service's own metadata).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Final

__all__ = [
    "FINANCE",
    "OPERATOR_DATA",
    "ROUTES",
    "BankStanding",
    "Caller",
    "CallerKind",
    "ConsentState",
    "Data",
    "Decision",
    "LotParties",
    "Resource",
    "RouteRule",
    "decide",
]


class Data(StrEnum):
    """What a route serves, as the policy document's rows name it."""

    SERVICE = "service"  # the service's own metadata and probes: no party's data
    SELF = "self"  # who the caller is
    READING = "reading"  # a reading, its receipt (status) and its proof bundle
    DEVICE_HISTORY = "device_history"  # a device's readings
    DEVICE_RECORD = "device_record"  # a device's registry record and ledger counters
    LOT_EVIDENCE = "lot_evidence"  # a lot's timeline, the QC readings behind its verdict
    EPCIS = "epcis"  # a lot's EPCIS export
    LOT_TRACE = "lot_trace"  # a lot's lineage one way: lots, producers, holders, verdicts, recalls
    DISCLOSURES = "disclosures"  # the lots their holders disclosed
    ADMISSION = "admission"  # a party's admission status
    PARTY_RECALLS = "party_recalls"  # the recall notices a party's lots (held now or before) are under
    FACTORY_OWN = "factory_own"  # the caller's own dashboard
    PROFILE = "profile"  # a factory's profile and yield results, with their charts
    WINDOW_BREACHES = "window_breaches"  # a factory line's readings outside its operating windows
    CREDIT = "credit"  # a factory's credit records
    BANK_FACTORIES = "bank_factories"  # a bank's consented factories (filtered to its own consents)
    CONSENTS = "consents"  # the consents a factory gave
    ACCESS_LOG = "access_log"  # who read a factory's credit data
    RECEIVABLES = "receivables"  # the caller's receivable parts (filtered per part)
    RECEIVABLE = "receivable"  # one receivable and its parts


#: Finance data: a refusal is written to the access log (or the refusal tally).
FINANCE: Final = frozenset(
    {
        Data.PROFILE,
        Data.WINDOW_BREACHES,
        Data.CREDIT,
        Data.BANK_FACTORIES,
        Data.CONSENTS,
        Data.ACCESS_LOG,
        Data.RECEIVABLES,
        Data.RECEIVABLE,
    }
)
#: Data the consortium operator may read (operations data), besides what every party may.
OPERATOR_DATA: Final = frozenset({Data.DEVICE_RECORD, Data.ADMISSION})


class CallerKind(StrEnum):
    ANONYMOUS = "anonymous"
    PARTY = "party"
    DEVICE = "device"


@dataclass(frozen=True, slots=True)
class Caller:
    """Who asks: nobody, a party (its checksummed address), or a device (its id and owner)."""

    kind: CallerKind
    party: str | None = None
    device_id: str | None = None
    #: A device's owning party (a device acts for itself only; this is for the record).
    device_owner: str | None = None
    #: Whether the party holds the consortium operator's role now (asked only for operations data).
    operator: bool = False

    @property
    def signed_in(self) -> bool:
        return self.kind is not CallerKind.ANONYMOUS

    @property
    def name(self) -> str:
        if self.kind is CallerKind.PARTY:
            return str(self.party)
        if self.kind is CallerKind.DEVICE:
            return f"device {self.device_id!r}"
        return "an anonymous caller"


ANONYMOUS: Final = Caller(CallerKind.ANONYMOUS)


class ConsentState(StrEnum):
    STANDING = "standing"
    NEVER = "never"
    REVOKED = "revoked"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class BankStanding:
    """A bank's standing towards a factory's finance data, as the chain says now."""

    admitted: bool
    consent: ConsentState = ConsentState.NEVER


@dataclass(frozen=True, slots=True)
class LotParties:
    """Who may read a lot's evidence: its issuer, its custodians past and present (its supplier and
    the full custody chain), the auditors named by its holders; and whether it was disclosed."""

    issuer: str | None
    custodians: frozenset[str] = frozenset()
    auditors: frozenset[str] = frozenset()
    disclosed: bool = False


@dataclass(frozen=True, slots=True)
class Resource:
    """The facts the policy decides on. ``exists`` False: nothing answers to the request (a signed-in
    caller learns so, with the route's 404; an anonymous one is refused first)."""

    data: Data
    exists: bool = True
    #: The party whose data it is (a device's owner, the factory of finance data, the party asked about).
    owner: str | None = None
    device_id: str | None = None
    #: The lot(s) the data is evidence of (a lot route; a reading naming a lot on chain).
    lots: tuple[LotParties, ...] = ()
    #: The parties to a receivable.
    parties: frozenset[str] = field(default_factory=frozenset)
    bank: BankStanding | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    """Allowed (``code`` says why: ``access.owner``, ``access.consent``...) or refused (``code`` is the
    refusal's stable code, ``message`` says what to do)."""

    allowed: bool
    code: str
    message: str = ""


@dataclass(frozen=True, slots=True)
class RouteRule:
    """What a route serves, and whether it is a list (paged with a bounded ``limit``)."""

    data: Data
    paged: bool = False


#: Every read route of the API and every portal page (path template -> what it serves).
ROUTES: Final[Mapping[str, RouteRule]] = {
    "/openapi.json": RouteRule(Data.SERVICE),
    "/docs": RouteRule(Data.SERVICE),
    "/docs/oauth2-redirect": RouteRule(Data.SERVICE),
    "/redoc": RouteRule(Data.SERVICE),
    "/healthz": RouteRule(Data.SERVICE),
    "/readyz": RouteRule(Data.SERVICE),
    "/metrics": RouteRule(Data.SERVICE),
    "/v1/deployment": RouteRule(Data.SERVICE),
    "/v1/auth/me": RouteRule(Data.SELF),
    "/v1/readings/{digest}": RouteRule(Data.READING),
    "/v1/readings/{digest}/proof": RouteRule(Data.READING),
    "/v1/devices/{device_id}/readings": RouteRule(Data.DEVICE_HISTORY, paged=True),
    "/v1/devices/{device_id}/proofs": RouteRule(Data.DEVICE_HISTORY, paged=True),
    "/v1/devices/{device_id}": RouteRule(Data.DEVICE_RECORD),
    "/v1/lots/{lot_id}/history": RouteRule(Data.LOT_EVIDENCE, paged=True),
    "/v1/lots/{lot_id}/proofs": RouteRule(Data.LOT_EVIDENCE, paged=True),
    "/v1/lots/{lot_id}/certification-package": RouteRule(Data.LOT_EVIDENCE, paged=True),
    "/v1/lots/{lot_id}/epcis": RouteRule(Data.EPCIS, paged=True),
    "/v1/lots/{lot_id}/trace": RouteRule(Data.LOT_TRACE),
    "/v1/disclosures": RouteRule(Data.DISCLOSURES, paged=True),
    "/v1/parties/{address}/admission": RouteRule(Data.ADMISSION),
    "/v1/parties/{address}/recalls": RouteRule(Data.PARTY_RECALLS, paged=True),
    "/v1/factories/{address}/consents": RouteRule(Data.CONSENTS),
    "/v1/factories/{address}/access-log": RouteRule(Data.ACCESS_LOG, paged=True),
    "/v1/factories/{address}/lines/{line}/window-breaches": RouteRule(Data.WINDOW_BREACHES),
    "/v1/bank/factories": RouteRule(Data.BANK_FACTORIES, paged=True),
    "/v1/bank/factories/{address}/credit": RouteRule(Data.CREDIT),
    "/v1/bank/factories/{address}/profile": RouteRule(Data.PROFILE),
    "/v1/bank/factories/{address}/grades": RouteRule(Data.CREDIT),
    "/v1/receivables": RouteRule(Data.RECEIVABLES, paged=True),
    "/v1/receivables/{receivable_id}": RouteRule(Data.RECEIVABLE),
    # the portal's pages
    "/": RouteRule(Data.SERVICE),
    "/portal": RouteRule(Data.SERVICE),
    "/portal/login": RouteRule(Data.SERVICE),
    "/portal/static/portal.css": RouteRule(Data.SERVICE),
    "/portal/static/wallet.js": RouteRule(Data.SERVICE),
    "/portal/lots": RouteRule(Data.LOT_EVIDENCE),
    "/portal/readings/{digest}/proof": RouteRule(Data.READING),
    "/portal/readings/{digest}/check": RouteRule(Data.READING),
    "/portal/factory": RouteRule(Data.FACTORY_OWN),
    "/portal/recalls": RouteRule(Data.FACTORY_OWN),
    "/portal/bank": RouteRule(Data.BANK_FACTORIES),
    "/portal/bank/factories/{address}": RouteRule(Data.CREDIT),
    "/portal/bank/factories/{address}/profile.png": RouteRule(Data.PROFILE),
}

# ---------------------------------------------------------------------------- decisions


def _allow(code: str) -> Decision:
    return Decision(True, code)


def _refuse(code: str, message: str) -> Decision:
    return Decision(False, code, message)


def _anonymous(what: str) -> Decision:
    return _refuse(
        "access.anonymous",
        f"{what} is not public: sign in as a party entitled to it (POST /v1/auth/challenge, then "
        "/v1/auth/token; or sign the request), or as the device with a device-signed request",
    )


def _is_owner(caller: Caller, r: Resource) -> bool:
    return caller.kind is CallerKind.PARTY and r.owner is not None and caller.party == r.owner


def _lot_reason(caller: Caller, lots: tuple[LotParties, ...]) -> str | None:
    """Why ``caller`` may read the evidence of one of ``lots``, or None."""
    if caller.kind is not CallerKind.PARTY:
        return None
    for lot in lots:
        if caller.party == lot.issuer or caller.party in lot.custodians:
            return "access.custodian"
        if caller.party in lot.auditors:
            return "access.auditor"
    return None


def _reading(caller: Caller, r: Resource) -> Decision:
    if any(lot.disclosed for lot in r.lots):
        return _allow("access.disclosed")
    if not caller.signed_in:
        return _anonymous("this reading")
    if not r.exists:
        return _allow("access.absent")
    if _is_owner(caller, r):
        return _allow("access.owner")
    if caller.kind is CallerKind.DEVICE and caller.device_id == r.device_id:
        return _allow("access.device")
    reason = _lot_reason(caller, r.lots)
    if reason is not None:
        return _allow(reason)
    return _refuse(
        "access.not_owner",
        f"{caller.name} may not read this reading: only the device {r.device_id!r}, its owner, and the "
        "custodians and named auditors of a lot it is evidence of may (or anyone, once the lot is disclosed)",
    )


def _device(caller: Caller, r: Resource) -> Decision:
    what = "this device's history" if r.data is Data.DEVICE_HISTORY else "this device's record"
    if not caller.signed_in:
        return _anonymous(what)
    if not r.exists:
        return _allow("access.absent")
    if _is_owner(caller, r):
        return _allow("access.owner")
    if caller.kind is CallerKind.DEVICE and caller.device_id == r.device_id:
        return _allow("access.device")
    if r.data is Data.DEVICE_RECORD and caller.operator:
        return _allow("access.operator")
    return _refuse(
        "access.not_owner",
        f"{caller.name} may not read {what}: only the device {r.device_id!r} and the party that owns it may"
        + (" (and the consortium operator, its record)" if r.data is Data.DEVICE_RECORD else ""),
    )


def _lot(caller: Caller, r: Resource) -> Decision:
    if any(lot.disclosed for lot in r.lots):
        return _allow("access.disclosed")
    if not caller.signed_in:
        return _anonymous("this lot's evidence (it was not disclosed)")
    if not r.exists:
        return _allow("access.absent")
    reason = _lot_reason(caller, r.lots)
    if reason is not None:
        return _allow(reason)
    return _refuse(
        "access.not_custodian",
        f"{caller.name} may not read this lot's evidence: only its issuer, its custodians (past and "
        "present) and an auditor its holder named may, until its holder or buyer discloses it (for a lot "
        "not on chain: name yourself as `issuer` to read your own devices' readings naming it)",
    )


def _trace(caller: Caller, r: Resource) -> Decision:
    """A trace names other lots' producers and holders: the root lot's issuer, custodians and named
    auditors read it; a disclosure of the lot's evidence does not open it."""
    if not caller.signed_in:
        return _anonymous("this lot's trace")
    if not r.exists:
        return _allow("access.absent")
    reason = _lot_reason(caller, r.lots)
    if reason is not None:
        return _allow(reason)
    return _refuse(
        "access.not_custodian",
        f"{caller.name} may not read this lot's trace: only its issuer, its custodians (past and present) "
        "and an auditor its holder named may",
    )


def _public(caller: Caller, r: Resource) -> Decision:
    return _allow("access.public")


def _signed_in(caller: Caller, r: Resource) -> Decision:
    return _allow("access.self") if caller.signed_in else _anonymous("this")


def _admission(caller: Caller, r: Resource) -> Decision:
    if not caller.signed_in:
        return _anonymous("a party's admission status")
    if not r.exists:
        return _allow("access.absent")
    if _is_owner(caller, r):
        return _allow("access.owner")
    if caller.operator:
        return _allow("access.operator")
    return _refuse(
        "access.not_owner",
        f"{caller.name} may not read {r.owner}'s admission status: only that party and the consortium "
        "operator may",
    )


def _party_only(caller: Caller, r: Resource) -> Decision:
    """Data about a party's own lots (the recalls they are under): that party only."""
    if not caller.signed_in:
        return _anonymous("a party's recall notices")
    if not r.exists:
        return _allow("access.absent")
    if _is_owner(caller, r):
        return _allow("access.owner")
    return _refuse(
        "access.not_owner",
        f"{caller.name} may not read {r.owner}'s recall notices: they name its lots; only that party may",
    )


def _factory_only(caller: Caller, r: Resource) -> Decision:
    if not caller.signed_in:
        return _anonymous("a factory's consents and access log")
    if not r.exists:
        return _allow("access.absent")
    if _is_owner(caller, r):
        return _allow("access.owner")
    return _refuse(
        "finance.not_the_factory", f"only the factory {r.owner} itself may read this; you are {caller.name}"
    )


def _bank(caller: Caller, r: Resource) -> Decision:
    if not caller.signed_in:
        return _anonymous("a factory's credit data")
    if not r.exists:
        return _allow("access.absent")
    standing = r.bank or BankStanding(admitted=False)
    if caller.kind is not CallerKind.PARTY or not standing.admitted:
        return _refuse(
            "finance.not_a_bank",
            f"{caller.name} is not admitted for supet.credit.query (banks and insurers): ask the consortium "
            "to admit it (GET /v1/parties/{address}/admission says what is missing)",
        )
    if r.data is Data.BANK_FACTORIES:
        return _allow("access.bank")
    if standing.consent is ConsentState.STANDING:
        return _allow("access.consent")
    if standing.consent is ConsentState.EXPIRED:
        return _refuse(
            "finance.consent_expired",
            f"{r.owner}'s consent to {caller.party} has expired; ask the factory to renew it",
        )
    verb = "revoked its consent to" if standing.consent is ConsentState.REVOKED else "has not granted"
    return _refuse(
        "finance.no_consent",
        f"{r.owner} {verb} {caller.party} (consent to read its credit data); ask the factory to grant it "
        "(CreditRegistry.grantConsent)",
    )


def _factory_or_bank(caller: Caller, r: Resource) -> Decision:
    """A factory's operations analytics (its lines' window breaches): the factory itself, and a bank while
    the factory's consent to it stands (the rule of its profile)."""
    if not caller.signed_in:
        return _anonymous("a factory's window breaches")
    if not r.exists:
        return _allow("access.absent")
    if _is_owner(caller, r):
        return _allow("access.owner")
    return _bank(caller, r)


def _receivables(caller: Caller, r: Resource) -> Decision:
    if not caller.signed_in:
        return _anonymous("receivables")
    if caller.kind is not CallerKind.PARTY:
        return _not_a_party(caller)
    if r.data is Data.RECEIVABLES:
        return _allow("access.party")  # a listing: each part is shown only to the parties related to it
    if not r.exists:
        return _allow("access.absent")
    if caller.party in r.parties:
        return _allow("access.party")
    return _not_a_party(caller)


def _not_a_party(caller: Caller) -> Decision:
    return _refuse(
        "access.not_a_party",
        f"{caller.name} is not a party to this receivable: only its debtor, its supplier, the holders of "
        "its parts and the banks they were offered to or financed by may read it",
    )


_RULES: Final[Mapping[Data, Callable[[Caller, Resource], Decision]]] = {
    Data.SERVICE: _public,
    Data.DISCLOSURES: _public,
    Data.SELF: _signed_in,
    Data.FACTORY_OWN: _signed_in,
    Data.READING: _reading,
    Data.DEVICE_HISTORY: _device,
    Data.DEVICE_RECORD: _device,
    Data.LOT_EVIDENCE: _lot,
    Data.EPCIS: _lot,
    Data.LOT_TRACE: _trace,
    Data.ADMISSION: _admission,
    Data.PARTY_RECALLS: _party_only,
    Data.CONSENTS: _factory_only,
    Data.ACCESS_LOG: _factory_only,
    Data.CREDIT: _bank,
    Data.PROFILE: _bank,
    Data.WINDOW_BREACHES: _factory_or_bank,
    Data.BANK_FACTORIES: _bank,
    Data.RECEIVABLES: _receivables,
    Data.RECEIVABLE: _receivables,
}


def decide(caller: Caller, resource: Resource) -> Decision:
    """May ``caller`` read ``resource``? (See the module docstring and docs/access-policy.md.)"""
    return _RULES[resource.data](caller, resource)
