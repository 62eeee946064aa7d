"""``upsert``: two instances writing the same row at once both succeed (issue 17: the registry mirror of
two ``supet serve`` started side by side on one PostgreSQL database wrote the same ``devices`` rows with
a read-then-insert, and one instance crashed on the key)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select
from support import TempPostgresDatabase, postgres_available, require

from ledger_service.store.engine import create_schema, make_engine
from ledger_service.store.models import MetaRow
from ledger_service.store.queries import upsert


@pytest.fixture
def pg() -> Iterator[Engine]:
    require(postgres_available(), "PostgreSQL is not running on 127.0.0.1:5432")
    with TempPostgresDatabase() as db:
        engine = make_engine(db.url)
        create_schema(engine)
        yield engine
        engine.dispose()


def test_two_writers_of_one_new_row_both_succeed_and_the_last_wins(pg: Engine) -> None:
    first = Session(pg)
    upsert(first, MetaRow, {"key": "k", "value": "from A"}, "key")  # A's insert, not committed yet
    errors: list[BaseException] = []

    def b() -> None:
        try:
            with Session(pg) as s:  # waits for A's row, then updates it instead of failing on the key
                upsert(s, MetaRow, {"key": "k", "value": "from B"}, "key")
                s.commit()
        except BaseException as e:
            errors.append(e)

    t = threading.Thread(target=b)
    t.start()
    t.join(0.5)
    assert t.is_alive()  # B waits on A's uncommitted row
    first.commit()
    first.close()
    t.join(10)
    assert errors == []
    with Session(pg) as s:
        assert [(r.key, r.value) for r in s.exec(select(MetaRow))] == [("k", "from B")]


def test_upsert_inserts_and_updates_on_sqlite(tmp_path: object) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/u.db")
    create_schema(engine)
    with Session(engine) as s:
        upsert(s, MetaRow, {"key": "k", "value": "1"}, "key")
        upsert(s, MetaRow, {"key": "k", "value": "2"}, "key")
        upsert(s, MetaRow, {"key": "j", "value": "3"}, "key")
        s.commit()
        assert sorted((r.key, r.value) for r in s.exec(select(MetaRow))) == [("j", "3"), ("k", "2")]
    engine.dispose()
