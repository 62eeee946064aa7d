"""Fixtures for the ledger service: a service on the embedded chain and a temporary database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from support import TestConsortium

from contracts.chain import Chain, dev_accounts
from contracts.deploy import deploy_suite
from ledger_service.api import create_app
from ledger_service.config import Settings
from ledger_service.service import LedgerService


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[LedgerService]:
    """A built (not started) service: embedded chain, SQLite in tmp, checks in-process, manual anchoring."""
    chain = Chain.embedded()
    deployment = deploy_suite(chain, dev_accounts(1)[0])
    settings = Settings(
        database_url=f"sqlite:///{tmp_path}/ledger.db",
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
