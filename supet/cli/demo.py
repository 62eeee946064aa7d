"""``supet demo``: the whole story on the embedded chain with nothing to start (or on a node with --rpc).

See :mod:`supet.demo.story` for what it does. Progress bars for the long parts, a summary at the end,
and a report (HTML with PNG charts) whose path it prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from supet.demo import DemoOptions, DemoResult, run_demo
from supet.demo.chapter_private import privacy_lines
from supet.demo.chapter_recall import recall_lines

console = Console(soft_wrap=True)


def demo(
    rpc: Annotated[
        str,
        typer.Option(
            "--rpc", help="'embedded' (default, nothing to start) or a JSON-RPC URL (anvil, a dev node)."
        ),
    ] = "embedded",
    out: Annotated[
        Path, typer.Option("--out", help="Directory for the report, charts and the demo's database.")
    ] = Path("supet-demo"),
    days: Annotated[int, typer.Option("--days", min=2, max=14, help="Days of production to simulate.")] = 7,
    interval_s: Annotated[
        int,
        typer.Option("--interval-s", help="Seconds between two readings of a device (must divide a day)."),
    ] = 600,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the yield models.")] = 7,
) -> None:
    """Run the supET story end to end and write a report: consortium, factories, a production week through
    the ingest, anchoring, lots and certification, profiles and yield drivers, credit records, consent and
    bank queries, a receivable financed and repaid, and an audit from the chain alone."""
    if 86_400 % interval_s or interval_s < 60:
        raise typer.BadParameter("--interval-s must divide 86400 and be at least 60")
    console.rule("[bold]supET Ledger demo")
    with Progress(
        TextColumn("  {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as bars:
        tasks: dict[str, TaskID] = {}

        def progress(name: str, done: int, total: int) -> None:
            if name not in tasks:
                tasks[name] = bars.add_task(name, total=total)
            bars.update(tasks[name], completed=done, total=total)

        def step(text: str) -> None:
            bars.console.print(f"[bold cyan]{text}")

        result = run_demo(
            DemoOptions(out_dir=out.resolve(), rpc=rpc, days=days, interval_s=interval_s, seed=seed),
            step=step,
            progress=progress,
        )
    _summary(result)


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def _summary(r: DemoResult) -> None:
    console.rule("[bold]summary")
    console.print(
        f"readings: {r.readings:,} accepted, {r.rejected} refused, anchored in {r.batches} batches"
        + ("" if r.chain_time_simulated else " (chain events at the node's own time)")
    )
    for lot, verdict in r.certificates.items():
        colour = "green" if verdict == "certified" else "red"
        console.print(f"lot {lot}: [{colour}]{verdict}[/]")
    for lot, why in r.failures.items():
        console.print(f"  why {lot} failed: {why}")
    t = Table("factory", "capacity/day", "OEE", "FPY", "OTIF", "coverage", "grade", "PD", "limit")
    for fid, p in r.profiles.items():
        rec = r.records.get(fid, {})
        t.add_row(
            fid,
            f"{p['capacity_units_per_day']:,.0f}" if p["capacity_units_per_day"] is not None else "-",
            _pct(p["oee"]),
            _pct(p["first_pass_yield"]),
            _pct(p["otif"]),
            _pct(p["coverage"]),
            str(rec.get("grade", "-")),
            f"{100 * rec['pd']:.2f}%" if "pd" in rec else "-",
            f"{rec.get('limit', 0):,}",
        )
    console.print(t)
    for fid, rec in r.records.items():
        console.print(f"reasons for {fid}: " + "; ".join(rec.get("reasons") or ["none"]))
    for line, y in r.yields.items():
        console.print(
            f"yield {line}: drivers {', '.join(y['top'])}; planted found {y['found']}/{len(y['planted'])}; "
            f"held-out AUC {y['auc']:.3f}"
        )
    console.print(
        f"bank A (consented) query: HTTP {r.bank_answer}; bank B (no consent): HTTP {r.refused_answer[0]} "
        f"{r.refused_answer[1]}; the factory's access log shows {len(r.access_log)} entries"
    )
    for line in privacy_lines(r.bank_b, {}):
        console.print(line)
    s = r.sealed
    if s and s.get("opened"):
        o = s["opened"]
        console.print(
            f"sun-a's record on chain: commitment {s['commitment'][:18]}... (no figure); bank A opened it "
            f"from its node: {o['grade']}, PD {100 * o['pd']:.2f}%, limit {o['limit']:,.2f}, verified; "
            f"a tampered copy refused ({', '.join(s['tampered_fields'])}); bank B found "
            f"{s['bank_b_envelopes']} envelopes"
        )
    rc = r.receivable
    if rc:
        console.print(
            f"receivable #{rc['id']}: {rc['face']:,.2f} tCNY split {rc['kept_part']:,.2f} / "
            f"{rc['tier2_part']:,.2f}, "
            f"financed at {rc['price']:,.2f}, repaid: {'yes' if rc['paid'] else 'NO'}"
        )
    for line in recall_lines(r.recall):
        console.print(line)
    a = r.audit
    if a:
        console.print(
            f"audit of {a['lot']}: {'[green]VERIFIED' if a['ok'] else '[red]NOT VERIFIED'}[/] "
            f"({a['chain_steps']} chain steps, {a['readings']} readings; disclosed by its holder, verified "
            "without signing in, from the chain and the proof bundles)"
        )
    for line in privacy_lines({}, r.anonymous):
        console.print(line)
    console.print(f"done in {r.timings.get('total', 0):.0f} s; report: [bold]{r.report}")
