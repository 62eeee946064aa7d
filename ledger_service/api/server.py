"""How ``supet serve`` runs the app: uvicorn with the server-side limits a public service needs.

The request-limits middleware (:mod:`ledger_service.api.limits`) bounds bodies; this module bounds
what comes before them, which the app never sees:

- connections and requests in flight: ``SUPET_MAX_CONNECTIONS`` (uvicorn's ``limit_concurrency``);
  beyond it a request is answered 503 at once, so clients that never finish their headers
  (slowloris) hold at most that many places and are never queued behind;
- the request line and headers: at most :data:`MAX_HEAD_BYTES` received before the headers end,
  else 431 and the connection is closed. uvicorn's default parser (httptools) buffers a header of
  any length (a 200 MB header line grew the process by 300 MB); :class:`BoundedHttpToolsProtocol`
  keeps httptools' speed and adds the bound (uvicorn's h11 parser has one, at about 20 % fewer
  single-reading submits a second here);
- idle keep-alive connections close after 5 s; a shutdown waits at most 30 s for requests.

And the garbage collector is set for a long-running server (:class:`GcAfterStartup`, issue 17.3):
once the service has started, everything built so far (the app, SQLAlchemy's and web3's tables, the
registry mirror: hundreds of thousands of objects, all alive for good) is moved out of the collector's
sight (``gc.freeze()``), and young objects are collected less often. Before, each full collection
walked all of them while requests waited: 200 devices submitting at once saw pauses of up to 0.5 s
(7 full collections, 2 s in all, in a run of 10,000 single submits), the bulk of the p99.
"""

from __future__ import annotations

import gc
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ledger_service.config import Settings

#: Bytes of request line and headers received, before they end, beyond which a request is refused.
MAX_HEAD_BYTES = 64 * 1024

_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 41\r\nconnection: close\r\n\r\nthe request line and headers are too long"
)


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, refusing a request whose head passes :data:`MAX_HEAD_BYTES`.

    Bytes are counted while the parser is between a message's start and the end of its headers;
    the chunk that ends the headers is not counted (its rest is body), so the bound holds up to one
    read of the socket.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True
        self._head_bytes = 0

    def on_message_begin(self) -> None:
        self._in_head = True
        self._head_bytes = 0
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._in_head = False
        super().on_headers_complete()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if not self._in_head or self.transport.is_closing():
            return
        self._head_bytes += len(data)
        if self._head_bytes > MAX_HEAD_BYTES:
            self.logger.warning("request head over %d bytes: refused (431)", MAX_HEAD_BYTES)
            self.transport.write(_TOO_LARGE)
            self.transport.close()


#: The collector's thresholds once the service has started: a young collection every 20,000 net
#: allocations (700 by default: a few requests' worth), an older one every 20 of those, a full one
#: every 20 older ones (and then only when the survivors grew by a quarter, as always). Request
#: garbage is almost all freed by reference counting; cycles (exceptions, futures) wait a little longer.
GC_THRESHOLDS = (20_000, 20, 20)

_Message = MutableMapping[str, Any]


class GcAfterStartup:
    """ASGI wrapper: when the app reports its startup complete (the service started), collect once,
    freeze what survived (:func:`gc.freeze`: never walked again by the collector) and set
    :data:`GC_THRESHOLDS`. For ``supet serve`` only: a process that builds many apps (the tests) would
    keep every frozen one."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(
        self,
        scope: _Message,
        receive: Callable[[], Awaitable[_Message]],
        send: Callable[[_Message], Awaitable[None]],
    ) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def started(message: _Message) -> None:
            if message["type"] == "lifespan.startup.complete":
                tune_gc()
            await send(message)

        await self.app(scope, receive, started)


def tune_gc() -> None:
    """Collect, freeze the survivors and set :data:`GC_THRESHOLDS` (see :class:`GcAfterStartup`)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def run(settings: Settings, *, host: str, port: int, log_level: str) -> None:
    """Serve the app for ``settings`` until stopped (``supet serve``)."""
    import uvicorn

    from ledger_service.api.app import create_app

    uvicorn.run(
        GcAfterStartup(create_app(settings)),
        host=host,
        port=port,
        log_level=log_level,
        log_config=None,  # uvicorn's own loggers go through the service's (JSON or text) handler
        workers=1,
        http=BoundedHttpToolsProtocol,
        limit_concurrency=settings.max_connections,
        timeout_keep_alive=5,
        timeout_graceful_shutdown=30,
    )
