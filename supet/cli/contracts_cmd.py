"""``supet contracts build`` and ``supet deploy``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from contracts import build as build_mod
from contracts.chain import Chain, dev_accounts
from contracts.deploy import deploy_suite
from supet.cli.common import KeyFileOpt, RpcOpt
from supet.parties import load_party_account

app = typer.Typer(help="Compile the Solidity contracts into the committed artifacts.", no_args_is_help=True)
console = Console(soft_wrap=True)


@app.command("build")
def build(
    check: Annotated[
        bool, typer.Option("--check", help="Do not write: fail if the committed artifacts are stale.")
    ] = False,
) -> None:
    """Compile every contract (solc-js via py-solc-x, or a native solc of the pinned version)."""
    if check:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            result = build_mod.build(Path(tmp))
            stale = [
                name
                for name, path in result.artifacts.items()
                if not (build_mod.ARTIFACT_DIR / path.name).exists()
                or (build_mod.ARTIFACT_DIR / path.name).read_bytes() != path.read_bytes()
            ]
        if stale:
            console.print(f"[red]stale artifacts[/]: {', '.join(stale)}; run `supet contracts build`")
            raise typer.Exit(1)
        console.print("artifacts are up to date")
        return
    result = build_mod.build()
    console.print(f"compiled with solc {result.compiler_version}; sources hash {result.sources_hash}")
    for name, path in sorted(result.artifacts.items()):
        console.print(f"  {name:<24} {path}")


def deploy(
    rpc: RpcOpt = "embedded",
    out: Annotated[Path, typer.Option("--out", help="Where to write the deployment file.")] = Path(
        "deployment.json"
    ),
    key_file: KeyFileOpt = None,
    dev_account: Annotated[
        int | None,
        typer.Option(
            "--dev-account",
            help="Deploy from development account N of the public test mnemonic (anvil, embedded). "
            "Never on a real network.",
        ),
    ] = None,
    admin: Annotated[
        str | None, typer.Option("--admin", help="Address that receives the admin roles (default: deployer).")
    ] = None,
) -> None:
    """Deploy the contract suite; write the deployment file (chain id, addresses, block, artifact hashes)."""
    chain = Chain.from_rpc(rpc)
    if dev_account is not None or (rpc == "embedded" and key_file is None):
        deployer = dev_accounts(max(dev_account or 0, 0) + 1)[dev_account or 0]
    else:
        deployer = load_party_account(key_file)
    deployment = deploy_suite(chain, deployer, admin=admin)
    deployment.save(out)
    console.print(f"deployed on chain {deployment.chain_id} from {deployment.deployer}:")
    for name, address in sorted(deployment.contracts.items()):
        console.print(f"  {name:<16} {address}")
    console.print(f"deployment file: {out}")
    if rpc == "embedded":
        console.print(
            "[yellow]note[/]: the embedded chain ended with this command; use --rpc URL to keep it."
        )
