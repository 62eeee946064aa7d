"""``supet analytics``: publish profiles and yield models from anchored data, recompute them, draw them.

Every command reads the ledger's database (``--database``, default ``$SUPET_DATABASE_URL``) and
the chain (``--rpc``/``--deployment``): results are computed from anchored readings and on-chain
orders and deliveries only (ledger_service/analytics_store/source.py), committed and stored; ``recompute``
re-derives a stored result and exits 1 naming what differs. ``windows`` makes a line's next
operating-window set from its published yield model; ``breaches`` runs the live window check once and
prints a line's report. The chain holds only a commitment to each
order's quantity and price: ``profile`` and ``recompute`` take the supplier's openings
(``--order-terms FILE``, the JSON list ``contracts.order_terms.write_openings`` writes).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from sqlalchemy.engine import Engine

from analytics.charts import profile_chart, yield_chart
from analytics.yield_model import YieldModelParams
from contracts.order_terms import read_openings
from ledger_service.analytics_store.publish import (
    ProfileParams,
    YieldParams,
    list_published,
    load_published,
    publish_profile,
    publish_yield,
    recompute,
)
from ledger_service.analytics_store.source import LedgerSource, ProfileDevices, SourceError
from ledger_service.analytics_store.window_check import WindowChecker, breach_report
from ledger_service.analytics_store.windows import publish_window_set
from ledger_service.store.engine import make_engine
from supet.cli.common import DeploymentOpt, RpcOpt, open_deployment

app = typer.Typer(help="Factory profiles and yield models from anchored data: publish, recompute, chart.")
console = Console(soft_wrap=True)

DatabaseOpt = Annotated[
    str | None,
    typer.Option("--database", help="The ledger's database URL (default: $SUPET_DATABASE_URL)."),
]
StartOpt = Annotated[str, typer.Option("--start", help="First day of the period (YYYY-MM-DD, UTC).")]
EndOpt = Annotated[str, typer.Option("--end", help="Last day of the period, inclusive.")]
ChartOpt = Annotated[Path | None, typer.Option("--chart", help="Also write the chart (PNG) here.")]
OrderTermsOpt = Annotated[
    Path | None,
    typer.Option(
        "--order-terms",
        help="The supplier's openings of its orders' terms (JSON list): the chain holds only commitments.",
    ),
]


def _source(
    database: str | None, rpc: str, deployment: Path, order_terms: Path | None = None
) -> LedgerSource:
    url = database or os.environ.get("SUPET_DATABASE_URL")
    if not url:
        raise SourceError("give --database or set SUPET_DATABASE_URL", code="analytics.source.database")
    chain, dep = open_deployment(rpc, deployment)
    openings = read_openings(order_terms) if order_terms is not None else []
    return LedgerSource(make_engine(url), chain, dep, order_terms=openings)


def _day(text: str, name: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{name} must be YYYY-MM-DD, got {text!r}") from None


def _devices(source: LedgerSource, factory: str, machines: str | None) -> ProfileDevices:
    """The factory's devices by their role in the profile, as the service finds them
    (:meth:`LedgerSource.profile_devices`: machines, kWh meters, cameras, stock counters); ``machines``
    (comma-separated) replaces the machines found, and a meter of a machine not listed is left out."""
    found = source.profile_devices(factory)
    if machines:
        listed = tuple(machines.split(","))
        found = replace(found, machines=listed, meters=tuple(p for p in found.meters if p[1] in listed))
    if not found.machines:
        raise SourceError(
            f"factory {factory} has no device reporting a machine state", code="analytics.source.no_machines"
        )
    return found


@app.command("profile")
def profile_cmd(
    factory: Annotated[str, typer.Option("--factory", help="The factory's (supplier's) address.")],
    start: StartOpt,
    end: EndOpt,
    rpc: RpcOpt,
    deployment: DeploymentOpt,
    database: DatabaseOpt = None,
    machines: Annotated[
        str | None,
        typer.Option(
            "--machines",
            help="Comma-separated machine devices (default: inferred, like the meters, cameras and stock "
            "counters, from the metrics their readings carry).",
        ),
    ] = None,
    interval_s: Annotated[int, typer.Option("--interval-s", help="The machines' reading interval.")] = 300,
    chart: ChartOpt = None,
    order_terms: OrderTermsOpt = None,
) -> None:
    """Publish the factory's profile for the period; print the commitment and the figures."""
    source = _source(database, rpc, deployment, order_terms)
    devices = _devices(source, factory, machines)
    params = ProfileParams(
        factory=factory,
        machines=devices.machines,
        interval_s=interval_s,
        start=_day(start, "--start"),
        end=_day(end, "--end"),
        through_batch=source.latest_anchored_batch(),
        block=source.chain.block_number(),
        meters=devices.meters,
        cameras=devices.cameras,
        stock_counters=devices.stock_counters,
    )
    pub = publish_profile(source.engine, source, params)
    console.print_json(json.dumps({"commitment": pub.commitment.to_json_obj(), "profile": pub.result}))
    if chart is not None:
        chart.write_bytes(profile_chart(pub.result))
        console.print(f"chart: {chart}")


@app.command("yield")
def yield_cmd(
    factory: Annotated[str, typer.Option("--factory", help="The factory's address.")],
    line: Annotated[str, typer.Option("--line", help="The line's name (device ids <line>-ctl, <line>-stN).")],
    start: StartOpt,
    end: EndOpt,
    rpc: RpcOpt,
    deployment: DeploymentOpt,
    database: DatabaseOpt = None,
    controller: Annotated[str | None, typer.Option("--controller", help="Default: <line>-ctl.")] = None,
    stations: Annotated[
        str | None,
        typer.Option("--stations", help="Comma-separated; default: the factory's <line>-st* devices."),
    ] = None,
    interval_s: Annotated[int, typer.Option("--interval-s")] = 300,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    chart: ChartOpt = None,
) -> None:
    """Publish a line's yield model: drivers, held-out AUC, operating windows with expected gains."""
    source = _source(database, rpc, deployment)
    ctl = controller or f"{line}-ctl"
    st = (
        tuple(stations.split(","))
        if stations
        else tuple(d for d in source.devices_of(factory) if d.startswith(f"{line}-st"))
    )
    params = YieldParams(
        factory=factory,
        line_id=line,
        controller=ctl,
        stations=st,
        interval_s=interval_s,
        start=_day(start, "--start"),
        end=_day(end, "--end"),
        through_batch=source.latest_anchored_batch(),
        model=YieldModelParams(seed=seed),
    )
    pub, result = publish_yield(source.engine, source, params)
    console.print(f"commitment {pub.commitment.commitment}")
    console.print(f"held-out AUC {result.holdout_auc:.3f}; top drivers: {', '.join(result.top(10))}")
    for w in result.windows:
        console.print(
            f"  {w.name}: keep in [{w.low:.4g}, {w.high:.4g}]"
            f" (expected gain {100 * w.expected_gain:+.1f} pts)"
        )
    console.print(
        f"yield {100 * result.observed_yield:.1f}% -> "
        f"{100 * result.predicted_yield_in_windows:.1f}% predicted "
        "inside the windows"
    )
    if chart is not None:
        chart.write_bytes(yield_chart(result))
        console.print(f"chart: {chart}")


@app.command("recompute")
def recompute_cmd(
    commitment: Annotated[str, typer.Argument(help="The commitment hash of a published result.")],
    rpc: RpcOpt,
    deployment: DeploymentOpt,
    database: DatabaseOpt = None,
    order_terms: OrderTermsOpt = None,
) -> None:
    """Re-derive a published result from the chain and the store; exit 1 naming any mismatch."""
    source = _source(database, rpc, deployment, order_terms)
    pub = recompute(source.engine, source, commitment)
    console.print(
        f"reproduced: {pub.kind} {pub.commitment.commitment} ({pub.commitment.n_inputs} anchored inputs, "
        f"result {pub.commitment.result_hash})"
    )


@app.command("list")
def list_cmd(
    database: DatabaseOpt = None,
    kind: Annotated[str | None, typer.Option("--kind", help="profile or yield")] = None,
) -> None:
    """The published results, newest first."""
    url = database or os.environ.get("SUPET_DATABASE_URL")
    if not url:
        raise SourceError("give --database or set SUPET_DATABASE_URL", code="analytics.source.database")
    for p in list_published(make_engine(url), kind=kind):
        subject = p.params.get("factory") if p.kind == "profile" else p.params.get("line_id")
        console.print(
            f"{p.commitment.commitment}  {p.kind:7}  {subject}"
            f"  {p.params.get('start')}..{p.params.get('end')}"
        )


@app.command("chart")
def chart_cmd(
    commitment: Annotated[str, typer.Argument(help="The commitment hash of a published result.")],
    out: Annotated[Path, typer.Option("--out", help="PNG file to write.")],
    database: DatabaseOpt = None,
) -> None:
    """Draw a published result (profile trend or yield drivers) as PNG."""
    url = database or os.environ.get("SUPET_DATABASE_URL")
    if not url:
        raise SourceError("give --database or set SUPET_DATABASE_URL", code="analytics.source.database")
    pub = load_published(make_engine(url), commitment)
    out.write_bytes(profile_chart(pub.result) if pub.kind == "profile" else yield_chart(pub.result))
    console.print(f"chart: {out}")


def _engine(database: str | None) -> Engine:
    url = database or os.environ.get("SUPET_DATABASE_URL")
    if not url:
        raise SourceError("give --database or set SUPET_DATABASE_URL", code="analytics.source.database")
    return make_engine(url)


@app.command("windows")
def windows_cmd(
    yield_commitment: Annotated[
        str, typer.Argument(help="The commitment of the line's published yield model.")
    ],
    database: DatabaseOpt = None,
) -> None:
    """Publish the line's next operating-window set (versioned, committed) from its yield model."""
    stored, new = publish_window_set(_engine(database), yield_commitment)
    ws = stored.window_set
    what = "published" if new else "already current"
    console.print(
        f"line {ws.line_id}: window set version {ws.version} {what}, commitment {stored.commitment}"
    )
    for w in ws.windows:
        console.print(f"  {w.name}: keep in [{w.low:.4g}, {w.high:.4g}]")


@app.command("breaches")
def breaches_cmd(
    factory: Annotated[str, typer.Option("--factory", help="The factory's address.")],
    line: Annotated[str, typer.Option("--line", help="The line's id.")],
    database: DatabaseOpt = None,
) -> None:
    """Check the readings stored since the last pass against the windows, then print the line's report."""
    engine = _engine(database)
    WindowChecker(engine, settle_ms=0).run_once()
    console.print_json(json.dumps(breach_report(engine, factory, line)))
