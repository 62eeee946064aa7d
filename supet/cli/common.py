"""Options and helpers shared by the commands that talk to a chain."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from contracts.chain import Chain
from contracts.deployment import Deployment
from contracts.lots import parse_gtin
from supet_base.errors import SupetError

RpcOpt = Annotated[
    str,
    typer.Option("--rpc", envvar="SUPET_RPC", help="JSON-RPC URL of the chain, or 'embedded'."),
]
DeploymentOpt = Annotated[
    Path,
    typer.Option(
        "--deployment", envvar="SUPET_DEPLOYMENT", help="Deployment file written by `supet deploy`."
    ),
]
KeyFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--key-file",
        help="The acting party's key: a file with a 0x-hex private key or an encrypted keystore "
        "(password in $SUPET_PARTY_KEY_PASSWORD). Default: $SUPET_PARTY_KEY.",
    ),
]


def open_deployment(rpc: str, deployment: Path) -> tuple[Chain, Deployment]:
    """Connect to ``rpc`` and load ``deployment``, refusing a mismatch."""
    if rpc == "embedded":
        typer.echo(
            "note: the embedded chain lives only inside this process; commands that need an "
            "existing deployment need a real node (--rpc URL)",
            err=True,
        )
    dep = Deployment.load(deployment)
    chain = Chain.from_rpc(rpc)
    dep.check(chain)
    return chain, dep


GtinOpt = Annotated[
    str, typer.Option("--gtin", help="The product's GTIN-14 (14 digits, check digit included).")
]


def check_gtin(text: str) -> str:
    """``text`` if it is a GTIN-14 with its check digit; otherwise the option's usage error."""
    try:
        parse_gtin(text)
    except SupetError as e:
        raise typer.BadParameter(e.message, param_hint="--gtin") from None
    return text


def utc_seconds(ts: int) -> str:
    """Unix seconds as ISO 8601 UTC to the second; ``-`` for 0 (never)."""
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds") if ts else "-"
