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
    from supet.cli import ca, contracts_cmd, demo, device, serve, verify

    app.add_typer(contracts_cmd.app, name="contracts")
    app.command("deploy")(contracts_cmd.deploy)
    app.add_typer(ca.app, name="ca")
    app.add_typer(device.app, name="device")
    app.command("demo")(demo.demo)
    app.command("serve")(serve.serve)
    app.command("verify")(verify.verify)


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
    except Exception as e:  # click usage errors carry their own exit code
        import click

        if isinstance(e, click.ClickException):
            e.show()
            sys.exit(e.exit_code)
        raise
