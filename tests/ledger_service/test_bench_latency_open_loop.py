"""bench/bench_latency.py's open loop (issue 17.3): latency from the scheduled send time, late sends
counted, and any refused submit failing the run; against a stand-in HTTP server (no service needed)."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import orjson
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_latency", ROOT / "bench" / "bench_latency.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_latency", module)
    spec.loader.exec_module(module)
    return module


bench = _bench()


async def _serve(delay: float, status: int, seen: list[bytes]) -> tuple[asyncio.Server, int]:
    """A keep-alive HTTP/1.1 stand-in: answers each POST after ``delay`` seconds with ``status``."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                body = await reader.readexactly(length)
                seen.append(body)
                await asyncio.sleep(delay)
                answer = orjson.dumps({"digest": body.decode()} if status == 201 else {"code": "seq.x"})
                writer.write(
                    f"HTTP/1.1 {status} X\r\ncontent-length: {len(answer)}\r\n\r\n".encode() + answer
                )
                await writer.drain()
        except asyncio.IncompleteReadError:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def test_open_loop_measures_from_the_schedule_and_counts_late_sends() -> None:
    async def go() -> tuple[list[float], list[float], list[tuple[str, float]], float, list[bytes]]:
        seen: list[bytes] = []
        server, port = await _serve(0.05, 201, seen)
        async with server:
            # 2 devices at 20/s: each every 100 ms, phases 0 and 50 ms; a 50 ms server keeps up
            per_device = [[f"d{i}-{k}".encode() for k in range(4)] for i in range(2)]
            out = await bench.run_open([port], per_device, 20.0, 0.0)
        return (*out, seen)

    lat, late, digests, total, seen = asyncio.run(go())
    assert len(lat) == len(late) == len(digests) == len(seen) == 8
    assert {d for d, _ in digests} == {f"d{i}-{k}" for i in range(2) for k in range(4)}
    assert all(0.05 <= x < 0.09 for x in lat), lat  # the server's 50 ms, not more: on time
    assert all(x < 0.04 for x in late), late
    assert 0.35 <= total < 0.6


def test_a_server_falling_behind_shows_in_the_latency() -> None:
    async def go() -> tuple[list[float], list[float]]:
        server, port = await _serve(0.25, 201, [])
        async with server:
            # one device every 100 ms against a 250 ms server: each reading waits for the one before
            lat, late, _digests, _total = await bench.run_open([port], [[b"a", b"b", b"c", b"d"]], 10.0, 0.0)
        return lat, late

    lat, late = asyncio.run(go())
    assert [x > 0.1 for x in late] == [False, True, True, True], late
    # reading k is due at 100k ms, received at 250(k+1) ms: latency 250, 400, 550, 700 ms
    for got, want in zip(lat, [0.25, 0.40, 0.55, 0.70], strict=True):
        assert want <= got < want + 0.08, lat


def test_a_refused_submit_fails_the_run() -> None:
    async def go() -> None:
        server, port = await _serve(0.0, 409, [])
        async with server:
            await bench.run_open([port], [[b"a", b"b"]], 10.0, 0.0)

    with pytest.raises(bench.SubmitFailed, match="409"):
        asyncio.run(go())
