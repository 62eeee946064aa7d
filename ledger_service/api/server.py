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

And the app is built with ``settle_gc=True``: once the service has started, the garbage collector is
set for a long-running server (:mod:`ledger_service.collector`, issue 17.3).
"""

from __future__ import annotations

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


def run(settings: Settings, *, host: str, port: int, log_level: str) -> None:
    """Serve the app for ``settings`` until stopped (``supet serve``)."""
    import uvicorn

    from ledger_service.api.app import create_app

    uvicorn.run(
        create_app(settings, settle_gc=True),  # this process serves the one app: see collector.py
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
