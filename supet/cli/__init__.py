"""The ``supet`` command line.

Each command's module is imported when the command runs (:data:`COMMANDS`), so ``supet verify`` and
``supet audit`` load the auditor and never the ledger service. ``supet.cli.app`` is the whole app,
every command registered (tests and tools use it).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable
from typing import Final, Literal

import typer
from rich.console import Console

from supet_base.errors import SupetError

_app = typer.Typer(
    name="supet",
    help="supET Ledger: signed IoT readings anchored on chain, traceable quality, supply-chain finance.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
err_console = Console(stderr=True)


#: Every top-level command: name -> (its module under ``supet.cli``, the attribute, a typer group or a
#: single command), in the order ``supet --help`` lists them.
COMMANDS: Final[dict[str, tuple[str, str, Literal["group", "command"]]]] = {
    "contracts": ("contracts_cmd", "app", "group"),
    "deploy": ("contracts_cmd", "deploy", "command"),
    "ca": ("ca", "app", "group"),
    "device": ("device", "app", "group"),
    "reading": ("reading", "app", "group"),
    "party": ("party", "app", "group"),
    "consortium": ("consortium", "app", "group"),
    "lot": ("lots", "lot_app", "group"),
    "trace": ("trace", "trace", "command"),
    "spec": ("specs", "spec_app", "group"),
    "demo": ("demo", "demo", "command"),
    "serve": ("serve", "serve", "command"),
    "verify": ("verify", "verify", "command"),
    "audit": ("audit", "app", "group"),
    "analytics": ("analytics", "app", "group"),
    "credit": ("credit", "app", "group"),
    "finance": ("finance", "app", "group"),
    "store": ("store", "app", "group"),
}


@_app.callback()
def _root() -> None:
    # A callback keeps `supet` a group of commands when only one command is registered.
    pass


def _register(names: Iterable[str] = COMMANDS) -> typer.Typer:
    """The app with the commands ``names`` registered (each imported once), in :data:`COMMANDS` order."""
    have = {c.name for c in _app.registered_commands} | {g.name for g in _app.registered_groups}
    for name in names:
        if name in have:
            continue
        module, attribute, kind = COMMANDS[name]
        target = getattr(importlib.import_module(f"supet.cli.{module}"), attribute)
        if kind == "group":
            _app.add_typer(target, name=name)
        else:
            _app.command(name)(target)
    order = list(COMMANDS)
    _app.registered_commands.sort(key=lambda c: order.index(c.name or ""))
    _app.registered_groups.sort(key=lambda g: order.index(g.name or ""))
    return _app


def __getattr__(name: str) -> typer.Typer:
    if name == "app":  # the whole app, every command registered
        return _register()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the app, turning our errors into a clear message and exit code 1.

    Only the command being run is imported (all of them for ``supet --help`` or an unknown command).
    """
    args = sys.argv[1:] if argv is None else argv
    wanted = [args[0]] if args and args[0] in COMMANDS else COMMANDS
    app: typer.Typer = globals().get("app") or _register(wanted)  # `app` when one was set (tests do)
    try:
        # Outside standalone mode click *returns* a `typer.Exit`'s code instead of exiting with it: pass it
        # on, or `supet verify` of an INVALID bundle would exit 0.
        code = app(args=argv, standalone_mode=False)
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
    if isinstance(code, int) and code != 0:
        sys.exit(code)


def _usage_errors() -> tuple[type[Exception], ...]:
    import click

    kinds: list[type[Exception]] = [click.ClickException]
    try:
        from typer._click.exceptions import ClickException as TyperClickException

        kinds.append(TyperClickException)
    except ImportError:  # older typer uses click itself
        pass
    return tuple(kinds)
