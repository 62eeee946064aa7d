"""Structured logs: JSON lines (or plain text), request ids, and the ingest rejection log.

Plain stdlib ``logging``: a call site adds fields with ``extra={"event": "batch.anchored",
"batch": 7, ...}`` and :class:`JsonFormatter` writes one JSON object per line with ``ts``,
``level``, ``logger``, ``event``, ``msg`` and those fields. structlog would give the same lines,
but every module here (and uvicorn, paho, SQLAlchemy) already logs through stdlib ``logging``;
a formatter keeps one pipeline, no second configuration, and pytest's ``caplog`` sees every
record as it is.

The request id of the HTTP request being served (``X-Request-ID``, echoed when the client sent a
sane one, generated otherwise) is kept in a context variable and added to every record logged
while serving it, including from the sync routes run in the thread pool (anyio copies the
context).
"""

from __future__ import annotations

import contextvars
import datetime as dt
import logging
import re
import sys
import uuid
from collections.abc import Sequence
from typing import Any, Protocol

import orjson

__all__ = [
    "REQUEST_ID_HEADER",
    "JsonFormatter",
    "RequestIdFilter",
    "RequestIdMiddleware",
    "configure_logging",
    "log_rejections",
    "request_id",
]

REQUEST_ID_HEADER = "X-Request-ID"
#: A client's request id is echoed only if it looks like one (no log injection, bounded size).
_SANE_ID = re.compile(r"^[A-Za-z0-9._:/+=-]{1,128}$")

#: The id of the HTTP request being served (None outside a request).
request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("supet_request_id", default=None)

#: Attributes every LogRecord has: anything else on a record came from ``extra=``.
_STANDARD = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "taskName", "color_message"}  # uvicorn adds color_message: ANSI noise
)

log = logging.getLogger("ledger_service.ingest")


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ``ts`` (UTC, ms), ``level``, ``logger``, ``event``, ``msg``, fields.

    ``event`` is the record's ``extra`` event name when given (``ingest.rejected``), otherwise
    the rendered message. Values JSON cannot hold are written with ``str``.
    """

    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        obj: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": getattr(record, "event", None) or msg,
            "msg": msg,
        }
        if record.name == "uvicorn.access" and isinstance(record.args, tuple) and len(record.args) == 5:
            # uvicorn's access line: (client, method, path, http version, status) as fields
            client, method, path, _version, status = record.args
            obj.update(event="http.access", client=client, method=method, path=path, status=status)
        for key, value in vars(record).items():
            if key not in _STANDARD and key != "event" and not key.startswith("_"):
                obj[key] = value
        if record.exc_info:
            obj["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(obj, default=str).decode()


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` to records logged while an HTTP request is served."""

    def filter(self, record: logging.LogRecord) -> bool:
        rid = request_id.get()
        if rid is not None and not hasattr(record, "request_id"):
            record.request_id = rid
        return True


class _TextFormatter(logging.Formatter):
    """``ts level logger: message [k=v ...]``: the same fields, for people."""

    def format(self, record: logging.LogRecord) -> str:
        base = super().format(record)
        fields = [
            f"{k}={v}"
            for k, v in vars(record).items()
            if k not in _STANDARD and k != "event" and not k.startswith("_")
        ]
        return f"{base} [{' '.join(fields)}]" if fields else base


def configure_logging(fmt: str = "text", level: str = "info", *, stream: Any = None) -> logging.Handler:
    """Send every logger's records (root) to ``stream`` (stderr) as JSON lines or text.

    Replaces the root logger's handlers (call once, at process start: ``supet serve``)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    elif fmt == "text":
        handler.setFormatter(_TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    else:
        raise ValueError(f"log format must be json or text, not {fmt!r}")
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # uvicorn's own logging config (if it ran before in this process) gives its loggers private
    # handlers and stops them propagating: route them through this handler instead.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        for old in list(lg.handlers):
            lg.removeHandler(old)
        lg.propagate, lg.disabled = True, False
        lg.setLevel(logging.NOTSET)
    # Alembic announces each of its plugins at INFO on every start: noise, not events
    logging.getLogger("alembic.runtime.plugins").setLevel(max(logging.WARNING, root.level))
    return handler


class _Result(Protocol):
    @property
    def index(self) -> int: ...
    @property
    def code(self) -> str | None: ...
    @property
    def message(self) -> str | None: ...


def log_rejections(objs: Sequence[Any], results: Sequence[_Result], source: str) -> None:
    """Log each refused submission (an ingest pipeline observer): code, device, seq, source."""
    for res in results:
        if res.code is None:
            continue
        obj = objs[res.index] if 0 <= res.index < len(objs) else None
        reading = obj.get("reading") if isinstance(obj, dict) else None
        device_id = reading.get("device_id") if isinstance(reading, dict) else None
        seq = reading.get("seq") if isinstance(reading, dict) else None
        log.info(
            "reading refused: %s (%s)",
            res.code,
            res.message,
            extra={
                "event": "ingest.rejected",
                "code": res.code,
                "device_id": device_id if isinstance(device_id, str) else None,
                "seq": seq if isinstance(seq, int) else None,
                "source": source,
            },
        )


class RequestIdMiddleware:
    """Pure ASGI middleware: takes ``X-Request-ID`` (or makes one), exposes it to logs, echoes it."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid: str | None = None
        for name, value in scope.get("headers", ()):
            if name == b"x-request-id":
                candidate = value.decode("latin-1")
                if _SANE_ID.match(candidate):
                    rid = candidate
                break
        if rid is None:
            rid = uuid.uuid4().hex
        header = (b"x-request-id", rid.encode())

        async def send_wrapper(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), header]
            await send(message)

        token = request_id.set(rid)
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            request_id.reset(token)
