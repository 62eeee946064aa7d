"""`supet demo`: the whole story runs end to end, on the embedded chain.

Two simulated days keep the suite short; the README's `supet demo` runs a week. The embedded story runs
**once** for this module (:func:`embedded_demo`, module-scoped; ``--dist loadfile`` keeps the module on one
worker): the command's output and story are checked from it, and a consortium member with a full node
scans what it left on chain (:func:`test_a_full_node_after_the_demo_finds_no_figure`). The story on anvil
is tests/cli/test_demo_anvil.py, the checks of both tests/helpers/demo_checks.py.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from demo_checks import check_story, full_node_scan
from fresh_stack import on_fresh_thread
from typer.testing import CliRunner

from supet.cli import app
from supet.demo import DemoResult, run_demo


@dataclasses.dataclass(frozen=True)
class DemoRun:
    """The one embedded run of this module: the command's output and the story's result."""

    output: str
    result: DemoResult
    out: Path


@pytest.fixture(scope="module")
def embedded_demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoRun]:
    """``supet demo --days 2`` on the embedded chain, once for the module, in this process; the
    :class:`DemoResult` (with its chain, deployment and the records' openings) kept for every test."""
    import supet.cli.demo as demo_cli

    results: list[DemoResult] = []

    def keep(*args: object, **kwargs: object) -> DemoResult:
        r = run_demo(*args, **kwargs)  # type: ignore[arg-type]
        results.append(r)
        return r

    out = tmp_path_factory.mktemp("demo") / "demo"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(demo_cli, "run_demo", keep)
        # on a fresh thread: under pytest's deep stack the story cost 21-45 s of system CPU more
        # (tests/helpers/fresh_stack.py)
        ran = on_fresh_thread(CliRunner().invoke, app, ["demo", "--days", "2", "--out", str(out)])
    assert ran.exit_code == 0, ran.output
    (r,) = results
    yield DemoRun(output=ran.output, result=r, out=out)


@pytest.mark.slow
@pytest.mark.scenario
def test_demo_command_on_the_embedded_chain(embedded_demo: DemoRun) -> None:
    out, r = embedded_demo.out, embedded_demo.result
    text = embedded_demo.output.replace("\n", "")
    assert f"report: {out / 'report.html'}" in text
    assert "bank B (no consent): HTTP 403 finance.no_consent" in text
    # the summary names what bank B and the anonymous client tried, and what they got
    for said in (
        "bank B (admitted, no consent) tried sun-a's credit record, from the ledger: "
        "HTTP 403 finance.no_consent",
        "bank B (admitted, no consent) tried sun-a's profile, from the ledger: HTTP 403 finance.no_consent",
        "from its own node: 1 record(s), each a commitment",
        "no grade, PD or limit",
        "addressed to it, 0 opened",
        "anonymous tried reading 0x",
        "(raw telemetry): HTTP 401 access.anonymous",
        "proof bundle: HTTP 401 access.anonymous",
        "history: HTTP 401 access.anonymous",
        "disclosed by its holder, verified without signing in",
        "bank A opened it from its node",
        "sun-a consumed 2,903 wafers of it in transformation",
        "the recall worker flagged everything made from it, traced downstream: LOT-sun-a-T",
        "(held by the buyer)",
        "(held by sun-a)",
        "bank A's financing was refused by the chain (ReceivablesBackingLotRecalled): its lot failed",
        "refused at confirmation (ReceivablesLotRecalled)",
    ):
        assert said in text, said
    check_story(r, out)
    assert r.chain_time_simulated
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "finance.no_consent" in html and "access.anonymous" in html
    assert "9. Across tiers: lineage, a recall and a refused financing" in html
    assert "ReceivablesBackingLotRecalled" in html
    assert "5b. Window breaches" in html and "Meridian Assembly" in html
    assert "reasons for rub-c: " in text and "lots rejected by the quality certifier" in text


@pytest.mark.slow
@pytest.mark.scenario
def test_a_full_node_after_the_demo_finds_no_figure(embedded_demo: DemoRun) -> None:
    """A consortium member with full node access scans the embedded chain after the module's one run
    of the whole demo story (:func:`full_node_scan`; the anvil story is scanned by its own test)."""
    full_node_scan(embedded_demo.result)


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
