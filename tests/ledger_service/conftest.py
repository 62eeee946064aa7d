"""Fixtures for the ledger service: a service on the embedded chain and a temporary database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from embedded_pool import deployed_embedded
from fastapi.testclient import TestClient
from mqtt_side import DeviceSide, Mosquitto, broker_fixture
from support import TestConsortium, database_url

from ledger_service.api import create_app
from ledger_service.config import Settings
from ledger_service.service import LedgerService


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database of each kind: SQLite in tmp, and a new PostgreSQL database."""
    yield from database_url(request.param, tmp_path)


@pytest.fixture
def device_registry() -> str:
    """Which DeviceRegistry ``ledger`` deploys: ``"harness"`` here, the TEST-ONLY
    DeviceRegistryHarness, in which ``consortium`` records devices with
    ``enrollWithoutAttestationForTest`` at the activation a test asks for: these are tests of the
    service's time and sequence rules, whose devices are active minutes to days before enrollment,
    which the real registry refuses (issue 12.2). A module whose subject is enrollment overrides
    this fixture to return ``"real"`` (test_enroll_api.py)."""
    return "harness"


@pytest.fixture
def ledger(db_url: str, tmp_path: Path, device_registry: str) -> Iterator[LedgerService]:
    """A built (not started) service: embedded chain, fresh database, in-process checks, manual anchoring.

    Its data directory (the token secret) is the test's own, for PostgreSQL too (not ./supet-data,
    which parallel workers would share). Its DeviceRegistry is the one ``device_registry`` names.
    """
    artifact = "DeviceRegistryHarness" if device_registry == "harness" else "DeviceRegistry"
    with deployed_embedded(artifact) as (chain, deployment):  # the process's deployment, rolled back after
        settings = Settings(
            database_url=db_url,
            data_dir=tmp_path,
            verify_workers=0,
            anchoring=False,
            registry_refresh_seconds=0,
        )
        service = LedgerService.build(settings, chain=chain, deployment=deployment)
        try:
            yield service
        finally:
            service.stop()


@pytest.fixture
def consortium(ledger: LedgerService, device_registry: str) -> TestConsortium:
    return TestConsortium(ledger.chain, ledger.deployment, registry=device_registry)


@pytest.fixture
def client(ledger: LedgerService) -> Iterator[TestClient]:
    with TestClient(create_app(service=ledger)) as c:
        yield c


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A Mosquitto broker of the test's own (tests/helpers/mqtt_side.py; fails under CI=true when absent)."""
    yield from broker_fixture(tmp_path)


@pytest.fixture
def devices(broker: Mosquitto) -> Iterator[DeviceSide]:
    """The devices' side of ``broker``: publishes readings, collects the receipts sent back."""
    side = DeviceSide(broker.url)
    yield side
    side.close()
