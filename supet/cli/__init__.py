"""The ``supet`` command line."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from supet.errors import SupetError

app = typer.Typer(
    name="supet",
    help="supET Ledger: signed IoT readings anchored on chain, traceable quality, supply-chain finance.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
err_console = Console(stderr=True)


def _register() -> None:
    from supet.cli import audit, ca, consortium, contracts_cmd, demo, device, lots, party, serve, verify

    app.add_typer(contracts_cmd.app, name="contracts")
    app.command("deploy")(contracts_cmd.deploy)
    app.add_typer(ca.app, name="ca")
    app.add_typer(device.app, name="device")
    app.add_typer(party.app, name="party")
    app.add_typer(consortium.app, name="consortium")
    app.add_typer(lots.lot_app, name="lot")
    app.add_typer(lots.spec_app, name="spec")
    app.command("demo")(demo.demo)
    app.command("serve")(serve.serve)
    app.command("verify")(verify.verify)
    app.add_typer(audit.app, name="audit")
    app.add_typer(__import__("supet.cli.analytics", fromlist=["app"]).app, name="analytics")
    app.add_typer(__import__("supet.cli.store", fromlist=["app"]).app, name="store")


_register()


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning our errors into a clear message and exit code 1."""
    try:
        app(args=argv, standalone_mode=False)
    except SupetError as e:
        err_console.print(f"[bold red]error[/] [dim]({e.code})[/]: {e}")
        sys.exit(1)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as e:  # usage errors (typer ships its own copy of click's) carry their own exit code
        if isinstance(e, _usage_errors()):
            e.show()  # type: ignore[attr-defined]
            sys.exit(e.exit_code)  # type: ignore[attr-defined]
        raise


def _usage_errors() -> tuple[type[Exception], ...]:
    import click

    kinds: list[type[Exception]] = [click.ClickException]
    try:
        from typer._click.exceptions import ClickException as TyperClickException

        kinds.append(TyperClickException)
    except ImportError:  # older typer uses click itself
        pass
    return tuple(kinds)
