"""The cheap paths of issue 17.3 (per-request cost) decide exactly what the full paths decide.

- :func:`ledger_service.jsonio.loads_strict` decodes small bodies without its structure scan: on every
  body below, valid or hostile, it returns the same value (types included) or raises the same error as
  the full path (forced by setting the quick path's size limit to nothing).
- :class:`ledger_service.api.limits.RequestLimitsMiddleware` times a body with one asyncio timer and
  lets bodyless HTTP/1 requests through without one: the deadline still answers 408, a cancellation
  from outside is not turned into one, and a body the server streams anyway is still capped and decoded.
- :func:`ledger_service.store.engine.make_engine` pings no pooled connection at checkout unless its
  socket has something to read; a PostgreSQL backend ended under an idle pooled connection is replaced
  before anyone uses it (what ``pool_pre_ping`` did).
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import MutableMapping
from typing import Any

import orjson
import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import text
from support import database_url

from ledger_service import jsonio
from ledger_service.api.limits import DECODED_BODY, RequestLimitsMiddleware
from ledger_service.config import Settings
from ledger_service.jsonio import BodyDecodeError, loads_strict
from ledger_service.store.engine import _socket_quiet, make_engine

BODIES = [
    b"1",
    b"-0.0",
    b'"a:b"',
    b"9223372036854775808",  # 2**63: orjson keeps it an int
    b"18446744073709551616",  # 2**64: a float to orjson, exact only by the full path
    b"1e308",
    b"[]",
    b"{}",
    b'{"a":1}',
    b'{"a":1,"a":2}',  # a repeated key in one flat object
    b'{"t":"12:00","m":{"b":1,"b":2}}',  # a repeated key, a colon in a string
    b'{"t":"12:00","m":{"b":1}}',
    b'{"v":-9223372036854775809}',
    b'{"v":' + b"9" * 100 + b"}",
    b'{"v":' + b"9" * 101 + b"}",
    b'{"v":NaN}',
    b'{"v":1e400}',
    b'{"v":"\\ud800"}',
    b'{"v":"\xff"}',
    b'{"v":[1,2,{"w":[]}]}',
    b'{"a":1,}',
    b"[" * 32 + b"]" * 32,
    b"[" * 33 + b"]" * 33,
    b"[" * 2000 + b"]" * 2000,
    b"[" * 2000,
    b'{"reading":{"device_id":"SN-1","seq":1,"ts_ms":1764400000000,"metrics":{"t":23.5}},"scheme":"p256"}',
]


def outcome(body: bytes) -> tuple[str, str]:
    try:
        return "value", repr(loads_strict(body))  # repr: 1 and 1.0 differ
    except BodyDecodeError as e:
        return e.code, e.message


@pytest.mark.parametrize("body", BODIES, ids=range(len(BODIES)))
def test_the_quick_decode_agrees_with_the_full_one(body: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    quick = outcome(body)
    monkeypatch.setattr(jsonio, "_QUICK_BYTES", -1)
    assert quick == outcome(body)


def _shape_by_recursion(obj: Any, depth: int = 1) -> tuple[int, bool, int]:
    """What jsonio._shape counts, written the plain way."""
    if isinstance(obj, dict | list):
        children = list(obj.values()) if isinstance(obj, dict) else obj
        shapes = [_shape_by_recursion(c, depth + 1) for c in children]
        return (
            (len(obj) if isinstance(obj, dict) else 0) + sum(k for k, _, _ in shapes),
            any(b for _, b, _ in shapes),
            max([depth] + [d for _, _, d in shapes]),
        )
    return 0, isinstance(obj, float) and not -(2.0**63) < obj < 2.0**63, 0


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=3),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=2), inner, max_size=4),
    max_leaves=30,
)


@given(_JSON)
def test_the_shape_walk_counts_members_big_floats_and_depth(value: Any) -> None:
    assert jsonio._shape(value) == _shape_by_recursion(value)


def test_the_quick_decode_is_taken_for_a_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_scan(_body: bytes) -> tuple[int, int]:
        raise AssertionError("a small plain body was scanned")

    monkeypatch.setattr(jsonio, "_scan", no_scan)
    assert loads_strict(BODIES[-1])["reading"]["seq"] == 1


# ------------------------------------------------------------------------------------ request limits

Receive = Any


def http_scope(method: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http",
        "http_version": "1.1",
        "method": method,
        "path": "/v1/parties",
        "headers": [(b"host", b"test"), *headers],
    }


async def call(
    settings: Settings, scope: dict[str, Any], receive: Receive
) -> tuple[list[MutableMapping[str, Any]], dict[str, Any]]:
    """The middleware's answer (sent messages), and what the app behind it saw (its scope, its body)."""
    seen: dict[str, Any] = {}

    async def app(scope: dict[str, Any], receive: Receive, send: Any) -> None:
        seen["body"] = (await receive())["body"]
        seen["decoded"] = scope.get(DECODED_BODY, "absent")
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    sent: list[MutableMapping[str, Any]] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    await RequestLimitsMiddleware(app, settings=lambda: settings)(scope, receive, send)
    return sent, seen


def messages(*items: dict[str, Any]) -> Receive:
    queue = list(items)

    async def receive() -> dict[str, Any]:
        if queue:
            return queue.pop(0)
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    return receive


def error_code(sent: list[MutableMapping[str, Any]]) -> tuple[int, str]:
    return sent[0]["status"], orjson.loads(sent[1]["body"])["error"]["code"]


def test_a_bodyless_get_reaches_the_app_with_an_empty_body() -> None:
    sent, seen = asyncio.run(
        call(Settings(), http_scope("GET", []), messages({"type": "http.request", "body": b""}))
    )
    assert sent[0]["status"] == 204 and seen == {"body": b"", "decoded": "absent"}


def test_a_body_without_length_is_still_capped_and_decoded() -> None:
    """A server that streams a body although the headers announce none: read as any other body."""
    settings = Settings(max_request_bytes=1024)
    dup = messages({"type": "http.request", "body": b'{"a":1,"a":2}'})
    assert error_code(asyncio.run(call(settings, http_scope("POST", []), dup))[0]) == (
        400,
        "request.bad_json",
    )
    big = messages(
        {"type": "http.request", "body": b"[" + b"1," * 400, "more_body": True},
        {"type": "http.request", "body": b"1," * 400 + b"1]"},
    )
    assert error_code(asyncio.run(call(settings, http_scope("POST", []), big))[0]) == (
        413,
        "request.too_large",
    )
    ok = messages({"type": "http.request", "body": b'{"a":[1]}'})
    assert asyncio.run(call(settings, http_scope("POST", []), ok))[1] == {
        "body": b'{"a":[1]}',
        "decoded": {"a": [1]},
    }


def test_a_chunked_body_that_stops_gets_408_at_the_deadline() -> None:
    settings = Settings(request_body_timeout_seconds=0.2)
    scope = http_scope("POST", [(b"transfer-encoding", b"chunked")])
    start = time.monotonic()
    sent, seen = asyncio.run(
        call(settings, scope, messages({"type": "http.request", "body": b"[1", "more_body": True}))
    )
    assert error_code(sent) == (408, "request.timeout") and not seen
    assert 0.2 <= time.monotonic() - start < 5
    assert (b"connection", b"close") in sent[0]["headers"]


def test_a_cancellation_from_outside_is_not_a_timeout() -> None:
    """Shutdown (or the server) cancels the request while its body is read: the cancellation goes on."""
    settings = Settings(request_body_timeout_seconds=30)
    scope = http_scope("POST", [(b"content-length", b"10")])
    sent: list[MutableMapping[str, Any]] = []

    async def main() -> None:
        async def send(message: MutableMapping[str, Any]) -> None:
            sent.append(message)

        async def app(*_: Any) -> None:
            raise AssertionError("the app ran")

        task = asyncio.create_task(
            RequestLimitsMiddleware(app, settings=lambda: settings)(scope, messages(), send)
        )
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert sent == []


# -------------------------------------------------------------------------------------------- engine


def test_socket_quiet_sees_data_and_the_end_of_the_stream() -> None:
    a, b = socket.socketpair()
    with a, b:
        assert _socket_quiet(a.fileno())
        b.sendall(b"E")
        assert not _socket_quiet(a.fileno())
        a.recv(1)
        assert _socket_quiet(a.fileno())
        b.close()
        assert not _socket_quiet(a.fileno())


def test_sqlite_pool_does_not_ping(tmp_path: Any) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/t.db")
    try:
        assert not engine.pool._pre_ping
        with engine.connect() as c:
            assert c.execute(text("SELECT 2")).scalar() == 2
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_an_ended_postgresql_backend_is_replaced_at_checkout(tmp_path: Any) -> None:
    for url in database_url("postgresql", tmp_path):
        engine = make_engine(url)
        try:
            assert not engine.pool._pre_ping
            with engine.connect() as c:
                first = c.execute(text("SELECT pg_backend_pid()")).scalar()
            with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as admin:
                assert admin.execute("SELECT pg_terminate_backend(%s)", (first,)).fetchone() == (True,)
                deadline = time.monotonic() + 10
                while admin.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE pid = %s", (first,)
                ).fetchone() != (0,):
                    assert time.monotonic() < deadline, "the backend did not end"
                    time.sleep(0.02)
            with engine.connect() as c:  # no error: the dead connection was replaced before use
                second = c.execute(text("SELECT pg_backend_pid()")).scalar()
                assert c.execute(text("SELECT 1 + 1")).scalar() == 2
            assert second != first
            with engine.connect() as c:  # the healthy connection is handed out again, unpinged
                assert c.execute(text("SELECT pg_backend_pid()")).scalar() == second
        finally:
            engine.dispose()
