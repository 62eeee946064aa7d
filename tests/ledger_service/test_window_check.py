"""A line's operating windows in use (issue 16.3): window sets versioned and committed, the live check of
real signed readings counted incrementally and once, the report over the API and in /metrics."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from profiles import store_sample_profile
from reads import bearer
from sample_windows import store_sample_yield
from sqlmodel import Session, select
from support import TestConsortium

from analytics.commitment import verify_commitment
from ledger_service.analytics_store.publish import list_published, load_published
from ledger_service.analytics_store.source import SourceError
from ledger_service.analytics_store.window_check import WindowChecker, breach_report
from ledger_service.analytics_store.windows import (
    WINDOWS_MODEL_ID,
    NoWindowSet,
    current_window_set,
    publish_window_set,
    window_history,
    window_params,
)
from ledger_service.service import LedgerService
from ledger_service.store.models import WindowBreachRow

LINE = "l1"
STATIONS = ("l1-st1", "l1-st2")
WINDOWS = [("p001", 0.0, 10.0), ("p003", 5.0, 6.0)]


@pytest.fixture(autouse=True)
def _started(ledger: LedgerService, request: pytest.FixtureRequest) -> None:
    """Started; the service's own window check off (the tests run passes by hand), but in the test of it."""
    interval = 0.2 if "service_runs" in request.node.name else 0.0
    ledger.settings = ledger.settings.model_copy(update={"window_check_interval_seconds": interval})
    ledger.start()


class Line:
    """The line's two stations and an unrelated device of the same factory, signing real readings."""

    def __init__(self, ledger: LedgerService, consortium: TestConsortium) -> None:
        self.ledger = ledger
        self.account = consortium.factory
        self.factory = consortium.factory.address
        self.st1 = consortium.enroll("l1-st1")
        self.st2 = consortium.enroll("l1-st2")
        self.other = consortium.enroll("press-9")
        self.ts = int(time.time() * 1000) - 600_000

    def send(self, signer: Any, **metrics: float) -> str:
        self.ts += 1000
        sub = signer.sign(metrics, ts_ms=self.ts)
        results = self.ledger.pipeline.submit([sub.to_json_obj()], source="http")
        assert results[0].code is None, results[0].message
        return "0x" + sub.digest.hex()


@pytest.fixture
def line(ledger: LedgerService, consortium: TestConsortium) -> Line:
    return Line(ledger, consortium)


def test_window_sets_are_versioned_committed_and_kept(ledger: LedgerService, line: Line) -> None:
    engine = ledger.engine
    with pytest.raises(NoWindowSet):
        current_window_set(engine, line.factory, LINE)
    first_yield = store_sample_yield(engine, line.factory, LINE, STATIONS, WINDOWS)
    v1, new = publish_window_set(engine, first_yield)
    assert new and v1.version == 1 and v1.window_set.supersedes is None
    assert [w.name for w in v1.window_set.windows] == ["p001", "p003"]
    assert v1.window_set.devices == STATIONS and v1.window_set.yield_commitment == first_yield
    again, new = publish_window_set(engine, first_yield)  # the same yield result: no new version
    assert not new and again.commitment == v1.commitment

    second_yield = store_sample_yield(engine, line.factory, LINE, STATIONS, [("p001", 1.0, 2.0)], gain=0.2)
    v2, new = publish_window_set(engine, second_yield)
    assert new and v2.version == 2 and v2.window_set.supersedes == v1.commitment
    assert current_window_set(engine, line.factory, LINE).commitment == v2.commitment
    assert [h.version for h in window_history(engine, line.factory, LINE)] == [2, 1]

    # committed like every analytics result: listed, and its commitment checks against set and input
    stored = {p.commitment.commitment: p for p in list_published(engine, kind="windows", subject=LINE)}
    assert set(stored) == {v1.commitment, v2.commitment}
    pub = load_published(engine, v2.commitment)
    assert pub.params == window_params(v2.window_set) and pub.result == v2.window_set.to_json_obj()
    verify_commitment(pub.commitment, v2.window_set, [second_yield], WINDOWS_MODEL_ID, pub.params)

    profile = store_sample_profile(engine, line.factory)
    with pytest.raises(SourceError) as e:
        publish_window_set(engine, profile)
    assert e.value.code == "windows.not_a_yield_result"
    with pytest.raises(SourceError):
        publish_window_set(engine, "0x" + "ab" * 32)
    assert len(window_history(engine, line.factory, LINE)) == 2  # nothing stored by a refusal


def test_live_check_counts_new_readings_once_and_reports_breaches(ledger: LedgerService, line: Line) -> None:
    engine = ledger.engine
    line.send(line.st1, p001=50.0)  # stored before any window set: never checked
    checker = WindowChecker(
        engine, settle_ms=0, batch=2, samples=2, on_checked=ledger.metrics.observe_window_check
    )
    assert checker.run_once().checked == 0
    v1, _ = publish_window_set(engine, store_sample_yield(engine, line.factory, LINE, STATIONS, WINDOWS))
    line.send(line.st1, p001=5.0, p002=99.0)  # inside; p002 has no window
    out_a = line.send(line.st1, p001=11.0)  # outside
    line.send(line.st2, p003=5.0)  # on the edge: inside
    out_b = line.send(line.st2, p003=6.5, p001=-1.0)  # both outside (a station may carry any parameter)
    line.send(line.other, p001=99.0)  # not a station of the line: not checked
    done = checker.run_once()
    assert (done.checked, done.outside) == (5, 3) and done.committed
    report = breach_report(engine, line.factory, LINE)
    assert report["window_set"]["version"] == 1 and report["window_set"]["commitment"] == v1.commitment
    p001, p003 = report["parameters"]
    assert (p001["name"], p001["checked"], p001["outside"]) == ("p001", 3, 2)
    assert p001["share_outside"] == pytest.approx(2 / 3)
    assert [s["digest"] for s in p001["sample"]] == [out_b, out_a]  # newest first
    assert p001["last_breach_digest"] == out_b and p001["sample"][0]["value"] == -1.0
    assert p001["sample"][0]["proof"] == f"/v1/readings/{out_b}/proof"
    assert (p003["checked"], p003["outside"], p003["last_breach_digest"]) == (2, 1, out_b)
    assert (report["checked"], report["outside"]) == (5, 3)

    # incremental: a second pass reads nothing old; new readings only add
    assert checker.run_once().readings == 0
    for _ in range(3):
        line.send(line.st1, p001=20.0)
    assert checker.run_once().outside == 3
    p001 = breach_report(engine, line.factory, LINE)["parameters"][0]
    assert (p001["checked"], p001["outside"]) == (6, 5)
    with Session(engine) as s:  # the newest `samples` breaches are kept, the rest pruned
        kept = s.exec(select(WindowBreachRow).where(WindowBreachRow.parameter == "p001")).all()
    assert len(kept) == 2

    # a pass that lost the race for the cursor (another instance passed first) stores nothing
    line.send(line.st1, p001=30.0)
    stale = WindowChecker(engine, settle_ms=0)
    stale._cursor = lambda: done.through  # type: ignore[method-assign]
    lost = stale.run_once()
    assert not lost.committed and lost.increments == ()
    assert breach_report(engine, line.factory, LINE)["parameters"][0]["outside"] == 5
    assert checker.run_once().outside == 1

    # a new version applies to readings stored after it; the old one's counts stay with it
    publish_window_set(
        engine, store_sample_yield(engine, line.factory, LINE, STATIONS, [("p001", 15.0, 40.0)], gain=0.2)
    )
    line.send(line.st1, p001=20.0)
    assert checker.run_once().outside == 0
    report = breach_report(engine, line.factory, LINE)
    assert report["window_set"]["version"] == 2 and [v["version"] for v in report["versions"]] == [2, 1]
    assert [(p["name"], p["checked"], p["outside"]) for p in report["parameters"]] == [("p001", 1, 0)]

    metrics = ledger.metrics.render().decode()
    assert 'supet_window_breaches_total{line="l1",parameter="p001"} 6.0' in metrics
    assert 'supet_window_checked_total{line="l1",parameter="p001"} 8.0' in metrics
    assert 'supet_window_breaches_total{line="l1",parameter="p003"} 1.0' in metrics


def test_settle_time_holds_back_the_newest_readings(ledger: LedgerService, line: Line) -> None:
    publish_window_set(
        ledger.engine, store_sample_yield(ledger.engine, line.factory, LINE, STATIONS, WINDOWS)
    )
    line.send(line.st1, p001=11.0)
    checker = WindowChecker(ledger.engine, settle_ms=60_000)
    assert checker.run_once().checked == 0
    checker.clock = lambda: time.time() + 120
    assert checker.run_once().outside == 1


def test_window_breaches_over_the_api(ledger: LedgerService, line: Line, client: Any) -> None:
    publish_window_set(
        ledger.engine, store_sample_yield(ledger.engine, line.factory, LINE, STATIONS, WINDOWS)
    )
    digest = line.send(line.st2, p003=7.0)
    WindowChecker(ledger.engine, settle_ms=0).run_once()
    headers = bearer(client, line.account)
    r = client.get(f"/v1/factories/{line.factory}/lines/{LINE}/window-breaches?samples=1", headers=headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["line_id"] == LINE and body["window_set"]["version"] == 1
    assert body["parameters"][1]["sample"][0]["digest"] == digest
    assert json.loads(json.dumps(body)) == breach_report(ledger.engine, line.factory, LINE, samples=1)
    r = client.get(f"/v1/factories/{line.factory}/lines/nope/window-breaches", headers=headers)
    assert r.status_code == 404 and r.json()["error"]["code"] == "windows.not_found"
    r = client.get(f"/v1/factories/{line.factory}/lines/{LINE}/window-breaches")
    assert r.status_code == 401


def test_cli_publishes_a_window_set_and_reports_breaches(ledger: LedgerService, line: Line) -> None:
    from typer.testing import CliRunner

    from supet.cli import app

    db = ["--database", ledger.settings.database_url]
    yield_commitment = store_sample_yield(ledger.engine, line.factory, LINE, STATIONS, WINDOWS)
    runner = CliRunner()
    out = runner.invoke(app, ["analytics", "windows", yield_commitment, *db])
    assert out.exit_code == 0, out.output
    assert "window set version 1 published" in out.output and "p003: keep in [5, 6]" in out.output
    out = runner.invoke(app, ["analytics", "windows", yield_commitment, *db])
    assert "version 1 already current" in out.output
    digest = line.send(line.st2, p003=9.5)
    out = runner.invoke(app, ["analytics", "breaches", "--factory", line.factory, "--line", LINE, *db])
    assert out.exit_code == 0, out.output
    report = json.loads(out.output)
    assert report["parameters"][1]["outside"] == 1 and report["parameters"][1]["last_breach_digest"] == digest


def test_the_service_runs_the_check_and_counts_in_metrics(ledger: LedgerService, line: Line) -> None:
    """Started with SUPET_WINDOW_CHECK_INTERVAL_SECONDS above 0, the service checks on its own: a breach
    is in the report and in /metrics once the reading is older than the settle time (5 s)."""
    assert ledger.window_check is not None
    engine = ledger.engine
    publish_window_set(engine, store_sample_yield(engine, line.factory, LINE, STATIONS, WINDOWS))
    digest = line.send(line.st1, p001=-5.0)
    deadline = time.monotonic() + 30
    while breach_report(engine, line.factory, LINE)["outside"] == 0:
        assert time.monotonic() < deadline, ledger.window_check.last_error
        time.sleep(0.2)
    assert breach_report(engine, line.factory, LINE)["parameters"][0]["last_breach_digest"] == digest
    metrics = ledger.metrics.render().decode()
    assert 'supet_window_breaches_total{line="l1",parameter="p001"} 1.0' in metrics
    ledger.stop()
    assert ledger.window_check is None
