"""The store's schema can be distributed by device on Citus (issue 17.4): the migrated PostgreSQL schema
meets Citus's rules for the plan in ``ledger_service/store/citus.py`` (the distribution column in every
unique index of a distributed table, foreign keys only to reference tables or colocated through it),
and the schema before partitioning did not (its readings' primary key was the id alone)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine
from support import TempPostgresDatabase, postgres_available, require

from ledger_service.store.citus import PLAN, DistributionPlan, check_distributable, distribution_statements
from ledger_service.store.engine import create_schema, make_engine
from ledger_service.store.migrations import upgrade


@pytest.fixture
def pg() -> Iterator[Engine]:
    require(postgres_available(), "PostgreSQL is not running on 127.0.0.1:5432")
    with TempPostgresDatabase() as db:
        engine = make_engine(db.url)
        yield engine
        engine.dispose()


def test_the_migrated_schema_is_distributable_by_device(pg: Engine) -> None:
    create_schema(pg)
    with pg.connect() as conn:
        assert check_distributable(conn) == []


def test_the_check_finds_what_stops_distribution(pg: Engine) -> None:
    upgrade(pg, "0015")  # readings before partitioning: primary key (id), digest unique alone
    with pg.connect() as conn:
        problems = check_distributable(conn)
        assert any(p.startswith("readings: unique index readings_pkey (id)") for p in problems), problems
        assert any("readings_digest_key (digest)" in p for p in problems), problems
        # a table keyed by its own id, and a foreign key to a table that is neither reference nor colocated
        wrong = DistributionPlan(distributed=("readings", "equivocations"), reference=())
    upgrade(pg)
    with pg.connect() as conn:
        problems = check_distributable(conn, wrong)
    assert any(p.startswith("equivocations: unique index equivocations_pkey") for p in problems), problems
    assert any("foreign key readings_batch_id_fkey -> batches" in p for p in problems), problems
    with pg.connect() as conn:
        assert check_distributable(conn, DistributionPlan(("nowhere",), ())) == ["nowhere: no such table"]


def test_statements_make_reference_tables_first_then_colocated_distributed_tables() -> None:
    statements = distribution_statements()
    n = len(PLAN.reference)
    assert statements[:n] == [f"SELECT create_reference_table('{t}')" for t in PLAN.reference]
    assert set(PLAN.reference) == {"batches", "devices"} and "readings" in PLAN.distributed
    first = PLAN.distributed[0]
    assert statements[n] == f"SELECT create_distributed_table('{first}', 'device_id')"
    assert statements[n + 1 :] == [
        f"SELECT create_distributed_table('{t}', 'device_id', colocate_with => '{first}')"
        for t in PLAN.distributed[1:]
    ]


def test_the_deployment_guide_shows_the_statements() -> None:
    guide = (Path(__file__).resolve().parents[2] / "docs" / "deployment.md").read_text()
    for statement in distribution_statements():
        assert f"{statement};" in guide, statement
