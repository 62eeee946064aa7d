"""``supet store``: operations on the ledger's database (``reconcile`` against the chain)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import orjson
import typer

from supet.cli.common import DeploymentOpt, RpcOpt, open_deployment

app = typer.Typer(help="The ledger's store: reconcile it with the chain after a restore or an incident.")

DatabaseOpt = Annotated[
    str,
    typer.Option(
        "--database",
        envvar="SUPET_DATABASE_URL",
        help="SQLAlchemy URL of the store: sqlite:///path.db or postgresql://user@host/db.",
    ),
]


@app.command("reconcile")
def reconcile_cmd(
    deployment: DeploymentOpt,
    rpc: RpcOpt,
    database: DatabaseOpt,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as one JSON object.")] = False,
    anchorer: Annotated[
        str | None,
        typer.Option(
            "--anchorer",
            help="Only chain batches anchored by this address count as unknown to the store "
            "(when several ledgers share one ReadingAnchor).",
        ),
    ] = None,
    pending_grace: Annotated[
        float,
        typer.Option(
            "--pending-grace",
            min=0,
            help="Seconds a committed reading may wait for its anchoring before it counts as stuck.",
        ),
    ] = 600.0,
) -> None:
    """Compare the store's batches with the ReadingAnchor's: exit 0 when consistent, 1 otherwise.

    Reports batches anchored on chain but unknown to the store (readings lost by restoring an older
    backup: the devices must resubmit), batches the store marks anchored that the chain does not hold
    as recorded (wrong chain, deep reorg), and readings committed but not anchored. Read-only.
    """
    from ledger_service.reconcile import ReconcileError, reconcile
    from ledger_service.store.engine import make_engine

    if database.startswith("sqlite"):
        path = database.split("///", 1)[1] if "///" in database else ""
        if not path or path == ":memory:" or not Path(path).is_file():
            raise ReconcileError(f"no SQLite database at {path or database!r}", code="reconcile.no_store")
    chain, dep = open_deployment(rpc, deployment)
    engine = make_engine(database)
    try:
        report = reconcile(
            engine,
            chain,
            dep,
            anchorer=anchorer,
            pending_grace_ms=int(pending_grace * 1000),
            now_ms=int(time.time() * 1000),
        )
    finally:
        engine.dispose()
    if as_json:
        sys.stdout.write(orjson.dumps(report.to_json_obj(), option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        typer.echo(report.render())
    if not report.consistent:
        raise typer.Exit(1)


@app.command("migrate")
def migrate_cmd(database: DatabaseOpt) -> None:
    """Bring the store's schema to the newest version (Alembic migrations); run before upgrading.

    The service also migrates at start; running this first, once, keeps several instances from
    racing and lets a failed migration stop the upgrade before any instance is replaced.
    """
    from sqlalchemy import text

    from ledger_service.store.engine import create_schema, make_engine

    engine = make_engine(database)
    try:
        create_schema(engine)
        with engine.connect() as conn:
            revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    finally:
        engine.dispose()
    typer.echo(f"schema at revision {revision}")
