"""Limits on every request body, enforced before any route or authentication work.

:class:`RequestLimitsMiddleware` (pure ASGI, installed by :func:`ledger_service.api.app.create_app`)
reads each request's body itself, as it streams in, and answers in the service's error envelope:

- a body larger than its route's cap: **413** ``request.too_large``, at once when ``Content-Length``
  says so, otherwise as soon as the streamed bytes pass the cap (chunked bodies too). The cap is
  ``SUPET_MAX_BODY_BYTES`` on ``POST /v1/readings`` and ``SUPET_MAX_REQUEST_BYTES`` (64 KiB) on every
  other route;
- a body not received in full within ``SUPET_REQUEST_BODY_TIMEOUT_SECONDS``: **408**
  ``request.timeout`` (a slow client holds no worker for longer). The deadline is one asyncio timer
  on the request's task (:class:`_Timer`, :func:`asyncio.timeout`'s protocol: a cancellation from
  elsewhere stays one). An HTTP/1 request that has no body (no ``Content-Length`` and no
  ``Transfer-Encoding``, or ``Content-Length: 0``: most GETs) is whole when it reaches the app, so it
  goes on without a timer;
- more body bytes held by the whole process than ``SUPET_MAX_BUFFERED_BODY_BYTES``: **503**
  ``request.busy`` with ``Retry-After`` (a flood of large bodies cannot exhaust memory);
- a JSON body (any body but an HTML form) that :func:`ledger_service.jsonio.loads_strict` refuses:
  **400** ``request.bad_json`` (too deep, duplicate keys, NaN/Infinity, huge numbers, not UTF-8).

The body then goes on to the app unchanged; its decoded value is kept in the scope under
:data:`DECODED_BODY` so that the ingest route does not decode a 16 MiB batch twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import anyio.to_thread
import orjson

from ledger_service.api.errors import code_status
from ledger_service.config import Settings
from ledger_service.jsonio import BodyDecodeError, loads_strict

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: Scope key of the strictly decoded JSON body (absent when the body is not JSON).
DECODED_BODY = "supet.decoded_body"
#: Routes whose body may be larger than ``max_request_bytes``: (method, path) -> the setting's name.
LARGE_BODY_ROUTES = {("POST", "/v1/readings"): "max_body_bytes"}
#: Larger bodies are decoded in a worker thread, not on the event loop (which answers /healthz).
INLINE_DECODE_BYTES = 64 * 1024
#: Media types decoded as something else than JSON (the portal's forms).
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class RequestLimitsMiddleware:
    """Cap, time-limit and strictly decode every request body; see the module docstring."""

    def __init__(self, app: Any, settings: Callable[[], Settings]) -> None:
        self.app = app
        self.settings = settings
        #: Body bytes held right now by requests of this app (read, or being read).
        self.buffered = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length_header, content_type, chunked = _body_headers(scope)
        settings = self.settings()
        setting = LARGE_BODY_ROUTES.get((scope.get("method", ""), scope.get("path", "")), "max_request_bytes")
        cap: int = getattr(settings, setting)
        length = -1  # not told
        if length_header is not None:
            if not length_header.isdigit():
                await _refuse(send, "request.bad_length", "Content-Length must be a byte count")
                return
            length = int(length_header)
            if length > cap:
                await _refuse(send, "request.too_large", _too_large(cap, setting), close=True)
                return
        first: Message | None = None
        if length <= 0 and not chunked and scope.get("http_version") in ("1.0", "1.1"):
            # HTTP/1: without Content-Length or Transfer-Encoding, or with Content-Length 0, the request
            # has no body, so the server holds all of it: no slow client to time, nothing to decode
            first = await receive()
            if first["type"] == "http.disconnect":
                return  # the client left: nobody to answer
            if not first.get("body") and not first.get("more_body", False):
                await self.app(scope, _replay(b"", receive), send)
                return
        held = 0
        try:
            chunks: list[bytes] = []
            timeout = settings.request_body_timeout_seconds
            task = asyncio.current_task()
            assert task is not None, "RequestLimitsMiddleware runs on asyncio (uvicorn, TestClient)"
            # asyncio.timeout's protocol with one timer handle (anyio's cancel scope cost ~10 us a request)
            timer = _Timer(task)
            loop = asyncio.get_running_loop()
            handle = loop.call_at(loop.time() + timeout, timer.expire)
            try:
                while True:
                    if first is not None:
                        message, first = first, None
                    else:
                        message = await receive()
                    if message["type"] == "http.disconnect":
                        return  # the client left: nobody to answer
                    chunk: bytes = message.get("body", b"")
                    if held + len(chunk) > cap:
                        await _refuse(send, "request.too_large", _too_large(cap, setting), close=True)
                        return
                    if self.buffered + len(chunk) > settings.max_buffered_body_bytes:
                        log.warning(
                            "request bodies held reached %d bytes: %s %s answered 503",
                            self.buffered,
                            scope.get("method"),
                            scope.get("path"),
                        )
                        await _refuse(
                            send,
                            "request.busy",
                            "the service holds too many request bodies right now; retry in a moment",
                            close=True,
                            extra=[(b"retry-after", b"1")],
                        )
                        return
                    held += len(chunk)
                    self.buffered += len(chunk)
                    if chunk:
                        chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
            except asyncio.CancelledError:
                if not timer.timed_out():
                    raise  # cancelled from outside (shutdown, the server's own limits): not ours
                await _refuse(
                    send,
                    "request.timeout",
                    f"the body did not arrive within {timeout:g} s: send it at once, or in smaller parts",
                    close=True,
                )
                return
            finally:
                handle.cancel()
            body = b"".join(chunks)
            del chunks
            if body and not _is_form(content_type):
                try:
                    if len(body) > INLINE_DECODE_BYTES:  # keep the event loop answering meanwhile
                        scope[DECODED_BODY] = await anyio.to_thread.run_sync(loads_strict, body)
                    else:
                        scope[DECODED_BODY] = loads_strict(body)
                except BodyDecodeError as e:
                    await _refuse(send, e.code, e.message)
                    return
            await self.app(scope, _replay(body, receive), send)
        finally:
            self.buffered -= held


class _Timer:
    """The body's deadline on its task, as :func:`asyncio.timeout` keeps one: at expiry the task is
    cancelled; the ``CancelledError`` is the timeout's only when no one else cancelled it meanwhile."""

    __slots__ = ("cancelling", "expired", "task")

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self.task = task
        self.cancelling = task.cancelling()
        self.expired = False

    def expire(self) -> None:
        self.expired = True
        self.task.cancel()

    def timed_out(self) -> bool:
        """Called on ``CancelledError``: whether it is the deadline's (then it is consumed)."""
        return self.expired and self.task.uncancel() <= self.cancelling


def _body_headers(scope: Scope) -> tuple[str | None, str, bool]:
    """The request's Content-Length (the last one), Content-Type, and whether it has a Transfer-Encoding."""
    length: str | None = None
    content_type = ""
    chunked = False
    for name, value in scope.get("headers", ()):
        name = name.lower()
        if name == b"content-length":
            length = value.decode("latin-1")
        elif name == b"content-type":
            content_type = value.decode("latin-1")
        elif name == b"transfer-encoding":
            chunked = True
    return length, content_type, chunked


def _too_large(cap: int, setting: str) -> str:
    return f"the body exceeds {cap} bytes: " + (
        "split the batch" if setting == "max_body_bytes" else "this route takes small JSON bodies"
    )


def _is_form(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media in FORM_TYPES


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives the body read here once, then waits on the client (disconnects)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _refuse(
    send: Send,
    code: str,
    message: str,
    *,
    close: bool = False,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """Answer with the service's error envelope, its status by ``code`` (the one map, api/errors.py);
    ``close`` when the rest of the body is not read."""
    status = code_status(code)
    body = orjson.dumps({"error": {"code": code, "message": message}})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    headers += extra or []
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
