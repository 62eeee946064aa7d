"""The fast lane: the hottest requests answered without FastAPI's routing and dependency machinery
(issue 17.3).

On this service FastAPI's per-request work (matching the path against every route, solving the
dependencies, two thread-pool hops for the access guard and a sync route, the response model) cost
more CPU than the proof itself: ``GET /healthz`` took about 340 us of app CPU, a proof bundle about
1,100 us of which the proof (access decision, bundle, JSON) was under 500 (bench/bench_http_stages.py).
:class:`FastLane`, a pure ASGI middleware placed inside the request-id, metrics and body-limit
middlewares (they apply unchanged), answers:

- ``GET /healthz``: the same bytes as the route, precomputed;
- ``POST /v1/readings`` of one submission (a JSON object, not ``{"readings": [...]}``), without query
  string: the body as the body-limit middleware decoded it goes to
  :func:`~ledger_service.ingest.single.submit_one` (checked on the event loop, no thread-pool hop),
  answered as the route answers it (201 and the receipt, or the refusal; a service
  error as the app's exception handlers answer it). A write passes the access guard as it is, so
  nothing is skipped; a batch, a form or an undecoded body goes to the route;
- ``GET /v1/readings/{digest}/proof`` without query string, with a bearer token or no credentials:
  the token's check (:meth:`~ledger_service.auth.Authenticator.verify_token`, its revocation
  included), the access policy's decision (:func:`~ledger_service.access.guard.enforce`, the same
  facts) and the bundle (:func:`~ledger_service.proofs.proof_bundle`), in one thread-pool hop,
  answered by the same response class.

Of a proof, only a 200 is answered here. Every other request (signed requests, device-signed
requests, query strings, other methods and paths) and every refusal on the way (a token that does
not verify, a caller not entitled, a reading unknown or pending, the store or the chain unavailable:
any service error) goes on to the app, which decides and answers it as before: a refusal costs one more check,
and its status, body and headers are the app's by construction. Metrics see the route's template
(``scope["route"].path``) and the request id is added around it as for any route.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any, Final

from fastapi.concurrency import run_in_threadpool
from starlette.requests import Request

from contracts.errors import ChainError
from ledger_service.access.guard import caller_of_credentials, enforce
from ledger_service.access.policy import Data
from ledger_service.api.errors import refusal, rejection_status, service_error_response
from ledger_service.api.limits import DECODED_BODY
from ledger_service.api.responses import FastJSONResponse
from ledger_service.auth.deps import auth_state
from ledger_service.errors import LedgerError
from ledger_service.ingest.single import submit_one
from ledger_service.proofs import ReadingStatus, parse_digest, proof_bundle
from ledger_service.service import LedgerService
from supet_base.errors import SupetError

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

#: The route templates answered here (their app routes give the metrics their label).
HEALTHZ: Final = "/healthz"
SUBMIT: Final = "/v1/readings"
PROOF: Final = "/v1/readings/{digest}/proof"
#: The proof route's path, as Starlette matches ``{digest}`` (a string parameter: no slash).
_PROOF_PATH: Final = re.compile(r"^/v1/readings/([^/]+)/proof$")
#: Headers whose presence sends a request to the app: signed requests (a party's or a device's).
_SIGNED_PREFIX: Final = b"x-supet-"


class FastLane:
    """See the module docstring. ``app`` is the rest of the middleware stack and the router."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and not scope.get("root_path"):
            path: str = scope["path"]
            if path == HEALTHZ:
                scope["route"] = _HEALTHZ_ROUTE
                await send(
                    {"type": "http.response.start", "status": 200, "headers": list(_HEALTHY.raw_headers)}
                )
                await send({"type": "http.response.body", "body": _HEALTHY.body})
                return
            if path.endswith("/proof") and not scope.get("query_string"):
                match = _PROOF_PATH.match(path)
                if match is not None and await self._proof(scope, receive, send, match.group(1)):
                    return
        elif (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"] == SUBMIT
            and not scope.get("root_path")
            and not scope.get("query_string")
        ):
            payload = scope.get(DECODED_BODY)
            if isinstance(payload, dict) and set(payload) != {"readings"}:
                await self._submit(scope, receive, send, payload)
                return
        await self.app(scope, receive, send)

    async def _submit(self, scope: Scope, receive: Receive, send: Send, payload: dict[str, Any]) -> None:
        """One submission, as ``POST /v1/readings`` answers it (the route's single-submission branch; a
        write passes the access guard as it is)."""
        service: LedgerService = scope["app"].state.service
        scope["route"] = _SUBMIT_ROUTE
        try:
            result = await submit_one(service.pipeline, payload, source="http")  # issue 17.3: no thread
        except (LedgerError, ChainError) as e:  # as the app's exception handlers answer them
            response = service_error_response(e)
        else:
            if result.receipt is not None:
                response = FastJSONResponse(result.receipt.to_json_obj(), status_code=201)
            else:
                assert result.code is not None and result.message is not None
                response = refusal(result.code, result.message, status_code=rejection_status(result.code))
        await response(scope, receive, send)

    async def _proof(self, scope: Scope, receive: Receive, send: Send, digest: str) -> bool:
        """Answer a proof bundle the caller may read (True), or leave the request to the app (False)."""
        bearer: str | None = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, token = value.decode("latin-1").partition(" ")
                if scheme.lower() != "bearer" or not token.strip() or bearer is not None:
                    return False
                bearer = token.strip()
            elif name.startswith(_SIGNED_PREFIX):
                return False
        app = scope["app"]
        service: LedgerService = app.state.service
        state = auth_state(Request(scope))

        def answer() -> dict[str, Any] | None:
            try:
                found = state.authenticator.verify_token(bearer) if bearer is not None else None
                granted = enforce(
                    service, state.roles, Data.READING, caller_of_credentials(found), {"digest": digest}
                )
                status = granted.preload if isinstance(granted.preload, ReadingStatus) else None
                return proof_bundle(service, parse_digest(digest), status=status)
            except SupetError:
                return None  # refused, unknown, pending, unavailable: the app answers it

        bundle = await run_in_threadpool(answer)
        if bundle is None:
            return False
        scope["route"] = _PROOF_ROUTE
        await FastJSONResponse(bundle)(scope, receive, send)
        return True


@dataclass(frozen=True, slots=True)
class RouteTemplate:
    """What the middlewares read of the route that answered (``scope["route"]``): its template. FastAPI
    nests included routers' routes (lazily built), so the lane names the template rather than the
    app's route object."""

    path: str


_HEALTHZ_ROUTE: Final = RouteTemplate(HEALTHZ)
_PROOF_ROUTE: Final = RouteTemplate(PROOF)
_SUBMIT_ROUTE: Final = RouteTemplate(SUBMIT)

#: ``GET /healthz``'s answer, as the route renders it (sent with a copy of its headers).
_HEALTHY: Final = FastJSONResponse({"status": "ok"})
