"""The Alembic migrations build exactly the schema the models declare, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlmodel import SQLModel

from ledger_service.store.engine import create_schema, make_engine
from ledger_service.store.migrations import downgrade, upgrade
from ledger_service.store.partitions import include_in_autogenerate


def test_migrations_match_models_and_round_trip(db_url: str) -> None:
    engine = make_engine(db_url)
    create_schema(engine)
    with engine.connect() as conn:
        opts = {"compare_type": True, "include_object": include_in_autogenerate(conn.dialect.name)}
        diff = compare_metadata(MigrationContext.configure(conn, opts=opts), SQLModel.metadata)
    assert diff == [], f"models and migrations differ: add a migration ({diff})"
    tables = set(inspect(engine).get_table_names())
    assert {
        "readings",
        "batches",
        "device_heads",
        "equivocations",
        "devices",
        "meta",
        "used_nonces",
        "revoked_tokens",
    } <= tables
    downgrade(engine, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    upgrade(engine)
    create_schema(engine)  # idempotent
    assert {"readings", "batches"} <= set(inspect(engine).get_table_names())
    engine.dispose()
