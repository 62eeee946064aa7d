"""Options shared by the commands that talk to a chain."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from contracts.chain import Chain
from contracts.deployment import Deployment

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
