"""``supet serve``'s garbage-collector setting (ledger_service/api/server.py, issue 17.3): once the app
reports its startup complete, what was built is frozen out of the collector's sight and the young
generation is collected less often; nothing before that, and nothing on other requests."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from typing import Any

import pytest

from ledger_service.api.server import GC_THRESHOLDS, GcAfterStartup


@pytest.fixture
def restored_gc() -> Iterator[None]:
    """The process's collector as it was (the test process builds many apps: none may stay frozen)."""
    thresholds = gc.get_threshold()
    gc.unfreeze()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


def test_startup_complete_freezes_and_sets_thresholds(restored_gc: None) -> None:
    seen: list[tuple[str, int, tuple[int, int, int]]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            message = await receive()
            assert message["type"] == "lifespan.startup"
            built = [[object()] for _ in range(1000)]  # what startup builds (kept alive by this frame)
            seen.append(("before", gc.get_freeze_count(), gc.get_threshold()))
            await send({"type": "lifespan.startup.complete"})
            seen.append(("after", gc.get_freeze_count(), gc.get_threshold()))
            assert len(built) == 1000
        else:
            seen.append((scope["type"], gc.get_freeze_count(), gc.get_threshold()))

    sent: list[str] = []

    async def receive() -> dict[str, Any]:
        return {"type": "lifespan.startup"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message["type"])

    wrapped = GcAfterStartup(app)
    default = gc.get_threshold()
    asyncio.run(wrapped({"type": "http"}, receive, send))  # a request before startup: nothing changes
    assert seen == [("http", 0, default)]
    asyncio.run(wrapped({"type": "lifespan"}, receive, send))
    assert sent == ["lifespan.startup.complete"]  # the message still reaches the server
    (_, frozen_before, before), (_, frozen_after, after) = seen[1:]
    assert frozen_before == 0 and before == default
    assert frozen_after > 1000 and after == GC_THRESHOLDS
