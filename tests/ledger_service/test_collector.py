"""The garbage collector settled once ``supet serve`` has started (ledger_service/collector.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ledger_service.api import app as app_module
from ledger_service.api.app import create_app
from ledger_service.service import LedgerService

ROOT = Path(__file__).resolve().parents[2]


def test_settle_collector_freezes_what_is_alive_and_collects_young_objects_less_often() -> None:
    # in a process of its own: freezing is process-wide and would keep this test process's garbage
    code = (
        "import gc, json\n"
        "from ledger_service.collector import THRESHOLDS, settle_collector\n"
        "before = gc.get_threshold()\n"
        "settle_collector()\n"
        "class Cycle: pass\n"
        "a = Cycle(); a.me = a; del a\n"  # a cycle made afterwards is still collected
        "got = [gc.get_freeze_count(), gc.get_threshold(), before, THRESHOLDS, gc.collect()]\n"
        "print(json.dumps(got))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True, timeout=120
    ).stdout
    frozen, threshold, before, settled, collected = json.loads(out)
    assert frozen > 1000  # the modules' objects at least
    assert threshold == settled and settled[0] > before[0]
    assert collected >= 1


@pytest.mark.parametrize("settle_gc", [False, True])
def test_only_the_served_app_settles_the_collector(
    ledger: LedgerService, monkeypatch: pytest.MonkeyPatch, settle_gc: bool
) -> None:
    """``supet serve`` asks for it; tests (create_app's default) build many services in one process
    and never freeze."""
    calls: list[bool] = []
    monkeypatch.setattr(app_module, "settle_collector", lambda: calls.append(ledger.started))
    with TestClient(create_app(service=ledger, settle_gc=settle_gc)):
        assert calls == ([True] if settle_gc else [])  # once, after the service started


def test_supet_serve_asks_for_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    from ledger_service.api import server
    from ledger_service.config import Settings

    made: list[dict[str, object]] = []
    monkeypatch.setattr(app_module, "create_app", lambda *a, **kw: made.append(kw) or "the app")
    served: list[object] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.append(app))
    server.run(Settings(), host="127.0.0.1", port=1, log_level="warning")
    assert made == [{"settle_gc": True}] and served == ["the app"]
