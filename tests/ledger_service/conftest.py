"""Fixtures for the ledger service: a service on the embedded chain and a temporary database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from support import TestConsortium, database_url

from contracts.chain import Chain, dev_accounts
from contracts.deploy import deploy_suite
from ledger_service.api import create_app
from ledger_service.config import Settings
from ledger_service.service import LedgerService


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database of each kind: SQLite in tmp, and a new PostgreSQL database."""
    yield from database_url(request.param, tmp_path)


@pytest.fixture
def ledger(db_url: str, tmp_path: Path) -> Iterator[LedgerService]:
    """A built (not started) service: embedded chain, fresh database, in-process checks, manual anchoring.

    Its data directory (the token secret) is the test's own, for PostgreSQL too (not ./supet-data,
    which parallel workers would share).
    """
    chain = Chain.embedded()
    deployment = deploy_suite(chain, dev_accounts(1)[0])
    settings = Settings(
        database_url=db_url,
        data_dir=tmp_path,
        verify_workers=0,
        anchoring=False,
        registry_refresh_seconds=0,
    )
    service = LedgerService.build(settings, chain=chain, deployment=deployment)
    yield service
    service.stop()


@pytest.fixture
def consortium(ledger: LedgerService) -> TestConsortium:
    return TestConsortium(ledger.chain, ledger.deployment)


@pytest.fixture
def client(ledger: LedgerService) -> Iterator[TestClient]:
    with TestClient(create_app(service=ledger)) as c:
        yield c
