"""``supet contracts build`` and ``supet deploy``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from eth_account.signers.local import LocalAccount
from rich.console import Console

from contracts import build as build_mod
from contracts.chain import Chain, dev_accounts
from contracts.deploy import deploy_suite
from contracts.deployment import Deployment
from supet.cli.common import KeyFileOpt, RpcOpt
from supet_base.errors import SupetError
from supet_base.parties import load_party_account

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
    dev: Annotated[
        bool,
        typer.Option(
            "--dev",
            help="Development only: also apply the example consortium policy (anvil's development "
            "accounts as members and issuers) and admit the deployer as a supplier, so it may enroll "
            "devices at once. Refused with SUPET_ENVIRONMENT=production and on a chain "
            f"whose id is not a development one ({', '.join(map(str, sorted(DEV_CHAIN_IDS)))}) unless "
            "--force-dev.",
        ),
    ] = False,
    force_dev: Annotated[
        bool, typer.Option("--force-dev", help="Allow --dev on a chain id that is not a development one.")
    ] = False,
) -> None:
    """Deploy the contract suite; write the deployment file (chain id, addresses, block, artifact hashes)."""
    if dev:
        _refuse_dev_outside_development(admin)
    chain = Chain.from_rpc(rpc)
    if dev and chain.chain_id not in DEV_CHAIN_IDS and not force_dev:
        raise DevConsortiumRefused(
            f"--dev on chain {chain.chain_id}, which is not a development chain "
            f"({', '.join(map(str, sorted(DEV_CHAIN_IDS)))}): the development consortium's members and "
            "issuers are public keys; apply your consortium's policy with `supet consortium apply` "
            "instead (or pass --force-dev on a private test chain); nothing was deployed"
        )
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
    if dev:
        _dev_consortium(chain, deployment, deployer)
    if rpc == "embedded":
        console.print(
            "[yellow]note[/]: the embedded chain ended with this command; use --rpc URL to keep it."
        )


#: Chain ids of development chains (anvil, hardhat and the embedded chain; ganache and geth --dev).
DEV_CHAIN_IDS: frozenset[int] = frozenset({31337, 1337})

#: The roles ``--dev`` admits the deployer in: a factory's (enroll devices, open and transfer lots).
DEV_ROLES: tuple[str, ...] = ("supplier",)


class DevConsortiumRefused(SupetError):
    """``supet deploy --dev`` was asked for outside development; nothing was deployed."""

    code = "deploy.dev_refused"


def _refuse_dev_outside_development(admin: str | None) -> None:
    if os.environ.get("SUPET_ENVIRONMENT", "").strip().lower() == "production":
        raise DevConsortiumRefused(
            "--dev is refused with SUPET_ENVIRONMENT=production: it admits parties by the example "
            "policy, whose members and issuers are public development keys; apply your consortium's "
            "policy with `supet consortium apply --policy FILE`; nothing was deployed"
        )
    if admin is not None:
        raise DevConsortiumRefused(
            "--dev and --admin do not go together: the development consortium is applied by the "
            "deployer as the suite's admin; nothing was deployed"
        )


def _dev_consortium(chain: Chain, deployment: Deployment, deployer: LocalAccount) -> None:
    """Apply the example policy (anvil's development accounts as members and issuers) as the admin,
    and admit the deployer in :data:`DEV_ROLES` the way any party is admitted (claims, application)."""
    from contracts.onboarding import EXAMPLE_POLICY, Onboarding

    onboarding = Onboarding(chain=chain, deployment=deployment, admin=deployer, seed="dev")
    sent = onboarding.apply_policy()
    console.print(f"development consortium: {EXAMPLE_POLICY.name} applied ({sent} transactions)")
    for role in DEV_ROLES:
        onboarding.admit(deployer, role)
    console.print(
        f"{deployer.address} admitted as {' and '.join(DEV_ROLES)}: it may enroll devices and open lots "
        "(`supet party status ADDRESS` shows any party's admission)"
    )
