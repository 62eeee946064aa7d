"""The access guard: every read of the API and every portal page passes the policy here (issue 14).

:func:`guard` is a dependency of the whole app (``FastAPI(dependencies=...)``, so of every route of
every router). For a request it:

1. looks the matched route up in :data:`~ledger_service.access.policy.ROUTES`; a write (a POST
   that is not a read) passes (each write authorises itself); a read route with no entry is
   refused to everyone (``access.no_policy``);
2. learns who calls (:func:`caller_of`): a party's bearer token or signed request, a device's signed
   request, the portal's session cookie, or nobody;
3. gathers the facts (:func:`ledger_service.access.facts.gather`), asks
   :func:`~ledger_service.access.policy.decide`, and either answers the :class:`Granted` the route
   reads (``Access`` in ``api/deps.py``) or raises the refusal, written to the access log first when
   it is about finance data (:mod:`.finance_log`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Final

from fastapi import Request
from fastapi.concurrency import run_in_threadpool

from ledger_service.access.errors import AccessDenied, AnonymousRefused
from ledger_service.access.facts import gather
from ledger_service.access.finance_log import record_refusal
from ledger_service.access.policy import (
    ANONYMOUS,
    FINANCE,
    OPERATOR_DATA,
    ROUTES,
    Caller,
    CallerKind,
    Data,
    Decision,
    Resource,
    decide,
)
from ledger_service.auth import OPERATOR, AuthenticatedParty, RoleChecker, auth_state
from ledger_service.auth.deps import presented, remember, remembered, verify_presented
from ledger_service.auth.device_requests import AuthenticatedDevice
from ledger_service.portal.session import session_party
from ledger_service.service import LedgerService

__all__ = ["READ_POSTS", "Granted", "caller_of_credentials", "enforce", "guard"]

#: POST routes that only read (a portal form that checks a reading against the chain).
READ_POSTS: Final = frozenset({"/portal/readings/{digest}/check"})
_READ_METHODS: Final = frozenset({"GET", "HEAD"})


@dataclass(frozen=True, slots=True)
class Granted:
    """What the guard let through: who asks, what about, why; and what it read to decide, if anything
    (a reading's status, a receivable), for the route to answer from."""

    caller: Caller
    resource: Resource
    decision: Decision
    preload: Any = None

    @property
    def party(self) -> str:
        """The calling party's address (the routes that need one are refused to anyone else)."""
        assert self.caller.party is not None, "a route that needs a party was let through without one"
        return self.caller.party


_WRITE: Final = Granted(ANONYMOUS, Resource(Data.SERVICE), Decision(True, "access.write"))


def caller_of_credentials(found: AuthenticatedParty | AuthenticatedDevice | None) -> Caller:
    """The policy's caller for what a request's credentials proved (none: anonymous)."""
    if isinstance(found, AuthenticatedParty):
        return Caller(CallerKind.PARTY, party=found.address)
    if isinstance(found, AuthenticatedDevice):
        return Caller(CallerKind.DEVICE, device_id=found.device_id, device_owner=found.owner)
    return ANONYMOUS


def _portal_caller(request: Request) -> Caller:
    party = session_party(request)
    return Caller(CallerKind.PARTY, party=party.address) if party is not None else ANONYMOUS


def enforce(
    service: LedgerService, roles: RoleChecker, data: Data, caller: Caller, params: dict[str, str]
) -> Granted:
    """Gather the facts, decide, and answer the grant or raise the refusal (blocking: a thread's).
    ``roles`` answers whether a party is the consortium operator, asked only for operations data."""
    resource, preload = gather(service, data, caller, params)
    if (
        resource.data in OPERATOR_DATA
        and caller.kind is CallerKind.PARTY
        and caller.party is not None
        and caller.party != resource.owner
    ):
        caller = dataclasses.replace(caller, operator=roles.holds(caller.party, OPERATOR))
    decision = decide(caller, resource)
    if decision.allowed:
        return Granted(caller, resource, decision, preload)
    if resource.data in FINANCE:
        record_refusal(service, caller, resource, decision.code)
    if decision.code == "access.anonymous":
        raise AnonymousRefused(decision.message)
    raise AccessDenied(decision.message, code=decision.code)


async def guard(request: Request) -> Granted:
    """The app-wide access check (see the module docstring)."""
    route = request.scope.get("route")
    path = getattr(route, "path", None) or request.url.path
    if request.method not in _READ_METHODS and path not in READ_POSTS:
        return _WRITE
    rule = ROUTES.get(path)
    if rule is None:
        raise AccessDenied(
            f"the read route {path} has no entry in the access policy (ledger_service.access.policy."
            "ROUTES): it is refused to everyone until it has one",
            code="access.no_policy",
        )
    if rule.data is Data.SERVICE:
        return Granted(ANONYMOUS, Resource(Data.SERVICE), Decision(True, "access.public"))
    service: LedgerService = request.app.state.service
    state = auth_state(request)
    params = {**request.query_params, **request.path_params}
    portal = request.url.path.startswith("/portal")
    known, found = remembered(request)
    shown = None if portal or known else await presented(request)

    def check() -> Granted:  # one thread for the credentials and the decision: both ask the store
        nonlocal found
        if portal:
            caller = _portal_caller(request)
        else:
            if shown is not None:
                found = None if shown.empty else verify_presented(state, service, shown)
                remember(request, found)
            caller = caller_of_credentials(found)
        return enforce(service, state.roles, rule.data, caller, params)

    granted = await run_in_threadpool(check)
    request.state.access = granted
    return granted
