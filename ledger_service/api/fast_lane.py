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
  :func:`~ledger_service.ingest.single.submit_one` (checked in the verifier thread, no thread-pool hop),
  answered as the route answers it (201 and the receipt, or the refusal; a service
  error as the app's exception handlers answer it). A write passes the access guard as it is, so
  nothing is skipped; a batch, a form or an undecoded body goes to the route;
- ``GET /v1/readings/{digest}/proof`` without query string, with a bearer token or no credentials:
  the token's check (:meth:`~ledger_service.auth.Authenticator.verify_token`, its revocation
  included), the access policy's decision and the bundle (:func:`~ledger_service.proofs.
  proof_bundle_json`, serialized once and kept), answered with the bytes and headers of the route's
  response. The device's owner is decided as the guard decides for the owner (:meth:`FastLane._owners`:
  the same resource, :func:`~ledger_service.access.policy.decide`): on the event loop where nothing can
  wait (a SQLite file this instance holds, the token known from memory, the lane's own read
  connection), else in one thread-pool hop on one pooled connection. Any other caller goes through
  :func:`~ledger_service.access.guard.enforce` (the same facts) in the thread-pool hop.

Of a proof, only a 200 is answered here. Every other request (signed requests, device-signed
requests, query strings, other methods and paths) and every refusal on the way (a token that does
not verify, a caller not entitled, a reading unknown or pending, the store or the chain unavailable:
any service error) goes on to the app, which decides and answers it as before: a refusal costs one more check,
and its status, body and headers are the app's by construction. Metrics see the route's template
(``scope["route"].path``) and the request id is added around it as for any route.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

from eth_utils import to_checksum_address
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import Request

from contracts.errors import ChainError
from contracts.registry import device_id_hash
from ledger_service.access.guard import caller_of_credentials, enforce
from ledger_service.access.policy import Data, Resource, decide
from ledger_service.api.errors import refusal, rejection_status, service_error_response
from ledger_service.api.limits import DECODED_BODY
from ledger_service.api.responses import FastJSONResponse
from ledger_service.auth.deps import auth_state
from ledger_service.auth.party import AuthenticatedParty
from ledger_service.errors import LedgerError
from ledger_service.ingest.single import submit_one
from ledger_service.jsonio import dumps_exact
from ledger_service.proofs import (
    ProofRow,
    ReadingStatus,
    parse_digest,
    proof_bundle_json,
    proof_json,
    stored_proof,
)
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
        #: The event loop thread's read connection (see :meth:`_read_connection`).
        self._local = threading.local()
        #: The worker threads' PostgreSQL connections (see :class:`_LaneConnections`).
        self._pg = _LaneConnections()

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
            if result.receipt is not None:  # FastJSONResponse's bytes and headers, sent without building it
                body = dumps_exact(result.receipt.to_json_obj())
                headers = [(b"content-length", str(len(body)).encode()), _JSON_TYPE]
                await send({"type": "http.response.start", "status": 201, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
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
        if bearer is not None:
            conn = self._read_connection(service)
            party = state.authenticator.known_token(bearer) if conn is not None else None
            row = self._read(service, digest, conn) if conn is not None and party is not None else None
            body = self._owners(service, party, row) if party is not None and row is not None else None
            if body is not None:
                await self._bundle(scope, send, body)
                return True

        def answer() -> bytes | None:
            try:
                found: AuthenticatedParty | None = None
                if bearer is not None:
                    # the token's revocation and the reading (with its batch): one statement, one
                    # checkout (PostgreSQL: one round trip, no transaction)
                    authenticator = state.authenticator
                    found = authenticator.token_party(bearer)
                    generation = authenticator.revocation_generation
                    with self._pg.connection(service) as conn:
                        row, revoked_ms = stored_proof(
                            service, parse_digest(digest), conn=conn, token_id=found.credential_id
                        )
                    authenticator.settle_revocation(found, revoked_ms, generation)
                    body = self._owners(service, found, row)
                    if body is not None:
                        return body
                granted = enforce(
                    service, state.roles, Data.READING, caller_of_credentials(found), {"digest": digest}
                )
                status = granted.preload if isinstance(granted.preload, ReadingStatus) else None
                return proof_bundle_json(service, parse_digest(digest), status=status)
            except (SupetError, SQLAlchemyError):
                return None  # refused, unknown, pending, unavailable: the app answers it

        body = await run_in_threadpool(answer)
        if body is None:
            return False
        await self._bundle(scope, send, body)
        return True

    @staticmethod
    async def _bundle(scope: Scope, send: Send, body: bytes) -> None:
        """Send a bundle as FastJSONResponse sends it: its headers, the bytes it renders."""
        scope["route"] = _PROOF_ROUTE
        headers = [(b"content-length", str(len(body)).encode()), _JSON_TYPE]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _read(self, service: LedgerService, digest: str, conn: Connection) -> ProofRow | None:
        """The reading's proof row read on the lane's own connection (None: unknown, or the read
        failed: the thread-pool path or the app answers)."""
        try:
            return stored_proof(service, parse_digest(digest), conn=conn)[0]
        except SupetError:
            return None
        except SQLAlchemyError:
            self._drop_connection()
            return None

    @staticmethod
    def _owners(service: LedgerService, party: AuthenticatedParty, row: ProofRow) -> bytes | None:
        """The bundle of ``row`` when ``party`` (its token verified) owns the reading's device; None: the
        guard decides (another caller, a device the registry's mirror does not know yet, a reading
        pending).

        Nothing else is read: the resource is the one the guard's facts build for the device's owner
        (:func:`ledger_service.access.facts.gather`: no lot is looked at for the owner), and the policy
        (:func:`~ledger_service.access.policy.decide`) decides on it as for the guard. Nothing waits:
        it runs on the event loop (the row read on the lane's own SQLite connection, the token known
        from memory) or in the worker thread that read them.
        """
        device_id = row.device_id
        device = service.registry.lookup_hash(_device_hash(device_id))
        if device is None:
            return None  # the guard's lookup may ask the chain
        caller = caller_of_credentials(party)
        owner = _checksum(device.owner)
        if caller.party != owner:
            return None  # not the owner: the guard gathers the lots
        decision = decide(caller, Resource(Data.READING, owner=owner, device_id=device_id, lots=()))
        if not decision.allowed:
            return None
        try:
            return proof_json(service, row)
        except SupetError:
            return None

    def _read_connection(self, service: LedgerService) -> Connection | None:
        """This thread's (the event loop's) own read connection to the service's SQLite file, outside the
        engine's pool, whose reads never wait (WAL: readers do not wait for the writer; a busy database
        is an error at once, ``busy_timeout=0``, and the thread-pool path answers). Only while the
        service holds the file's instance lock (it is then the only writer, and token revocations are
        known from memory); None otherwise, or when it cannot be opened."""
        engine = service.engine
        if engine.dialect.name != "sqlite" or service.instance_lock is None or not service.instance_lock.held:
            self._drop_connection()  # the service stopped (or was never a SQLite file's): close ours
            return None
        local = self._local
        conn: Connection | None = getattr(local, "conn", None)
        if conn is not None and getattr(local, "engine", None) is engine:
            return conn
        self._drop_connection()
        try:
            conn = engine.connect()
            conn.detach()  # its own: closed, not pooled, when dropped (its busy timeout is this lane's)
            conn.exec_driver_sql("PRAGMA busy_timeout=0")
            # random reads over the whole file: its pages mapped, and a page cache that holds a large
            # batch's readings (the default, 2 MiB, sends most reads to the kernel)
            conn.exec_driver_sql(f"PRAGMA mmap_size={_READ_MMAP}")
            conn.exec_driver_sql(f"PRAGMA cache_size=-{_READ_CACHE_KIB}")
            conn.rollback()
        except SQLAlchemyError:
            return None
        local.conn, local.engine = conn, engine
        return conn

    def _drop_connection(self) -> None:
        conn: Connection | None = getattr(self._local, "conn", None)
        self._local.conn = self._local.engine = None
        if conn is not None:
            with contextlib.suppress(SQLAlchemyError):  # a broken connection: nothing more to release
                conn.close()


class _LaneConnections:
    """The lane's own PostgreSQL connections, in autocommit, outside the engine's pool (at most
    :data:`_PG_LANE_MAX`; a request that finds none free uses a pooled one): a bearer's proof is one
    statement on one of them, without the pool's checkout and return (issue 17.3: they cost more CPU
    than the statement). Kept only while the service runs: closed at the first request after it
    stopped (or on another engine), and one that fails is closed (the app answers that request,
    on its own connections)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._free: list[Connection] = []
        self._engine: Engine | None = None
        self._open = 0

    @contextlib.contextmanager
    def connection(self, service: LedgerService) -> Iterator[Connection]:
        """One of the lane's connections, or a pooled one (SQLite; none free; the service stopped)."""
        conn = self._take(service)
        if conn is None:
            with service.engine.connect() as pooled:
                yield pooled
            return
        healthy = False
        try:
            yield conn
            healthy = True
        except SQLAlchemyError:
            raise
        except BaseException:
            healthy = True  # a refusal (unknown reading, ...): the connection is as it was
            raise
        finally:
            self._give(service, conn, healthy)

    def _take(self, service: LedgerService) -> Connection | None:
        engine = service.engine
        running = engine.dialect.name == "postgresql" and service.started
        with self._lock:
            stale: list[Connection] = []
            if self._engine is not engine or not running:
                stale, self._free, self._open = self._free, [], 0
                self._engine = engine if running else None
            conn = self._free.pop() if self._free else None
            create = running and conn is None and self._open < _PG_LANE_MAX
            if create:
                self._open += 1
        for old in stale:
            _close(old)
        if conn is not None or not create:
            return conn
        try:
            conn = engine.connect()
            conn.execution_options(isolation_level="AUTOCOMMIT")
            conn.detach()  # its own: closed, not pooled, when dropped
        except SQLAlchemyError:
            with self._lock:
                if self._engine is engine:
                    self._open -= 1
            return None
        return conn

    def _give(self, service: LedgerService, conn: Connection, healthy: bool) -> None:
        with self._lock:
            if healthy and self._engine is service.engine and service.started:
                self._free.append(conn)
                return
            if self._engine is service.engine:
                self._open -= 1
        _close(conn)


def _close(conn: Connection) -> None:
    with contextlib.suppress(SQLAlchemyError):  # a broken connection: nothing more to release
        conn.close()


#: The most PostgreSQL connections the lane keeps (beside the engine's pool).
_PG_LANE_MAX: Final = 8


@dataclass(frozen=True, slots=True)
class RouteTemplate:
    """What the middlewares read of the route that answered (``scope["route"]``): its template. FastAPI
    nests included routers' routes (lazily built), so the lane names the template rather than the
    app's route object."""

    path: str


_HEALTHZ_ROUTE: Final = RouteTemplate(HEALTHZ)
_PROOF_ROUTE: Final = RouteTemplate(PROOF)
_SUBMIT_ROUTE: Final = RouteTemplate(SUBMIT)


@lru_cache(maxsize=4096)
def _device_hash(device_id: str) -> bytes:
    return device_id_hash(device_id)


@lru_cache(maxsize=4096)
def _checksum(address: str) -> str:
    return str(to_checksum_address(address))


#: The lane's SQLite read connection: bytes of the file it maps, KiB of its page cache.
_READ_MMAP: Final = 1 << 30
_READ_CACHE_KIB: Final = 65_536

_JSON_TYPE: Final = (b"content-type", FastJSONResponse.media_type.encode())

#: ``GET /healthz``'s answer, as the route renders it (sent with a copy of its headers).
_HEALTHY: Final = FastJSONResponse({"status": "ok"})
