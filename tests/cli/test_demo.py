"""`supet demo`: the whole story runs end to end, on the embedded chain and on a real node (anvil).

Two simulated days keep the suite short; the README's `supet demo` runs a week.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import require
from typer.testing import CliRunner

from contracts.anvil import AnvilNode, find_anvil
from supet.cli import app
from supet.demo import DemoOptions, DemoResult, run_demo


def _check_story(r: DemoResult, out: Path) -> None:
    assert r.readings > 5_000 and r.rejected == 0 and r.batches >= 1
    # One lot fails its spec, and the demo names the reading that broke which bound.
    assert list(r.certificates.values()).count("REJECTED") >= 1
    assert r.failed_lot is not None and r.failed_reason is not None
    assert re.search(
        r"value [0-9.]+ (below|above) its (minimum|maximum) [0-9.]+ \(reading 0x[0-9a-f]{16}", r.failed_reason
    )
    assert "-qc, seq " in r.failed_reason
    # Profiles, yield models and credit records for the three factories.
    assert set(r.profiles) == {"sun-a", "sun-b", "rub-c"} and set(r.records) == set(r.profiles)
    for p in r.profiles.values():
        assert p["readings"] > 0 and p["commitment"].startswith("0x")
    assert all(y["auc"] > 0.5 and len(y["top"]) == 5 for y in r.yields.values())
    assert r.recomputed  # a profile re-derived from the chain and the store
    # The deteriorating factory is rated below the healthy one of its kind.
    assert int(r.records["sun-b"]["grade"][1:]) > int(r.records["sun-a"]["grade"][1:])
    # Consent: bank A is answered, bank B refused; both attempts are in sun-a's access log.
    assert r.bank_answer == 200 and r.refused_answer == (403, "finance.no_consent")
    assert len(r.access_log) >= 2
    # Issue 14: the chain holds sun-a's record as a commitment; bank A opens it from its node and from
    # the ledger's answer, both verified; a tampered grade is named; bank B finds no envelope.
    s = r.sealed
    assert s["commitment"].startswith("0x") and s["opened"] and len(s["delivered_to"]) == 1
    assert s["opened"]["grade"] == r.records["sun-a"]["grade"] and s["served_verified"]
    assert s["tampered_fields"] == ["grade"] and s["bank_b_envelopes"] == 0
    # The receivable is financed at a discount and repaid to its holders.
    rc = r.receivable
    assert rc["paid"] and 0 < rc["price"] < rc["kept_part"]
    assert r.audit["ok"] and r.audit["readings"] > 0
    # The report, with its charts.
    assert r.report is not None and r.report.exists()
    html = r.report.read_text(encoding="utf-8")
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert len(pngs) == 6 and all(name in html for name in pngs)
    assert all((out / n).read_bytes().startswith(b"\x89PNG") for n in pngs)


@pytest.mark.slow
@pytest.mark.scenario
def test_demo_command_on_the_embedded_chain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import supet.cli.demo as demo_cli

    results: list[DemoResult] = []

    def keep(*args: object, **kwargs: object) -> DemoResult:
        r = run_demo(*args, **kwargs)  # type: ignore[arg-type]
        results.append(r)
        return r

    monkeypatch.setattr(demo_cli, "run_demo", keep)
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--days", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    text = result.output.replace("\n", "")
    assert f"report: {out / 'report.html'}" in text
    assert "bank B (no consent): HTTP 403 finance.no_consent" in text
    (r,) = results
    _check_story(r, out)
    assert r.chain_time_simulated


@pytest.fixture
def fresh_anvil() -> Iterator[AnvilNode]:
    """A fresh anvil whose clock starts 4 days back (its genesis; later blocks follow from there),
    before the 2-day story: devices count from their enrollment block (issue 12.2), so the story's
    past readings need a chain that enrolls them before the period, as the embedded demo's does."""
    require(find_anvil() is not None, "anvil is not installed (run `npm ci`)")
    genesis = int(time.time()) - 4 * 86_400
    node = AnvilNode(hardfork="osaka", extra_args=("--timestamp", str(genesis))).start()
    try:
        yield node
    finally:
        node.stop()


@pytest.mark.slow
@pytest.mark.scenario
@pytest.mark.anvil
def test_demo_story_on_anvil(tmp_path: Path, fresh_anvil: AnvilNode) -> None:
    r = run_demo(
        DemoOptions(out_dir=tmp_path, days=2, rpc=fresh_anvil.url),
        step=lambda _: None,
        progress=lambda *_: None,
    )
    _check_story(r, tmp_path)


def test_demo_refuses_a_node_whose_clock_is_past_the_period() -> None:
    """On a node at the real time, the story's devices could not be enrolled before their first reading
    (the registry refuses back-dated activation): the demo says so at once, naming anvil's --timestamp,
    instead of failing at certification."""
    import datetime as dt

    from contracts.chain import Chain
    from supet.demo.chapters_production import require_clock_before
    from supet_base.errors import SupetError

    today = dt.datetime.now(dt.UTC).date()
    start = today - dt.timedelta(days=2)
    at_real_time = Chain.embedded()
    with pytest.raises(SupetError) as refused:
        require_clock_before(at_real_time, start, days=2)
    assert refused.value.code == "demo.node_clock"
    assert "--timestamp" in refused.value.message
    started_earlier = Chain.embedded(start_time=int(time.time()) - 4 * 86_400)
    require_clock_before(started_earlier, start, days=2)
