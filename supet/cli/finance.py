"""``supet finance``: what a bank verifies before it finances a receivable, from its own node.

``check RECEIVABLE`` reads the receivable's backing package from the chain (order -> lots -> custody ->
quality certificates -> confirmation) and checks each step, then the value: the order's quantity and unit
price are a salted commitment on chain, so face value <= delivered quantity x unit price is checked with
the order's terms opening the bank holds or is given (``--order-terms FILE``, the JSON list
``contracts.order_terms.write_openings`` writes, as ``supet analytics --order-terms`` takes it). It prints
a PASS/FAIL line per step and exits 1 when any step fails (``contracts/backing_check.py``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from contracts.backing_check import check_backing
from contracts.order_terms import read_openings
from contracts.receivables import ReceivablesClient
from supet.cli.common import DeploymentOpt, RpcOpt, open_deployment

app = typer.Typer(
    help="Receivables finance: a bank checks a receivable's backing from the chain.", no_args_is_help=True
)
console = Console(soft_wrap=True)


@app.command("check")
def check(
    receivable: Annotated[int, typer.Argument(min=1, help="The receivable's id.")],
    order_terms: Annotated[
        Path | None,
        typer.Option(
            "--order-terms",
            help="Openings of order terms (JSON list) holding the receivable's order: checks the value.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    rpc: RpcOpt = "http://127.0.0.1:8545",
    deployment: DeploymentOpt = Path("deployment.json"),
) -> None:
    """Check receivable RECEIVABLE's backing, step by step, against the chain; exit 1 unless every step
    passes (the value step needs its order's opening: --order-terms)."""
    chain, dep = open_deployment(rpc, deployment)
    openings = read_openings(order_terms) if order_terms is not None else []
    report = check_backing(chain, ReceivablesClient.from_deployment(chain, dep), receivable, openings)
    if as_json:
        print(json.dumps(report.to_json_obj(), indent=2))
    else:
        for line in report.lines():
            style = "green" if line.startswith("PASS") else "red" if line.startswith("FAIL") else "bold"
            console.print(f"[{style}]{escape(line)}[/{style}]")
    if not report.ok:
        sys.exit(1)  # not typer.Exit: main runs the app outside standalone mode, which returns its code
