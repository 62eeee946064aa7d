"""Helpers shared by tests (importable as ``support``: pytest puts tests/helpers on sys.path)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from contracts.errors import ContractRevert

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(condition: bool, reason: str) -> None:
    """Skip (locally) or fail (under CI) when a needed service is missing."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"CI=true and a required service is missing: {reason}", pytrace=False)
    pytest.skip(reason)


VECTORS_PATH = Path(__file__).parent.parent / "vectors" / "reading-v1-vectors.json"


def load_vectors() -> dict[str, Any]:
    """The Reading v1 vectors (an exact copy of the shared spec's file)."""
    return json.loads(VECTORS_PATH.read_text(encoding="utf-8"))


@contextmanager
def reverts(error_name: str, **expected_args: Any) -> Iterator[pytest.ExceptionInfo[ContractRevert]]:
    """Expect a :class:`ContractRevert` with this custom error and (a subset of) these arguments."""
    with pytest.raises(ContractRevert) as info:
        yield info
    err = info.value
    assert err.error_name == error_name, f"expected {error_name}, got {err.error_name}: {err}"
    for key, value in expected_args.items():
        got = err.error_args.get(key)
        if isinstance(value, bytes):
            value = "0x" + value.hex()
        if isinstance(value, str) and isinstance(got, str):
            assert got.lower() == value.lower(), f"{error_name}.{key}: expected {value}, got {got}"
        else:
            assert got == value, f"{error_name}.{key}: expected {value!r}, got {got!r}"


def b32(hex_str: str) -> bytes:
    """A 0x-hex string as bytes."""
    return bytes.fromhex(hex_str.removeprefix("0x"))


# ---------------------------------------------------------------- devices on a deployed suite


class TestConsortium:
    """A deployed suite with a trusted test CA and an admitted factory: enroll devices in one call.

    ``registry="real"`` (default): :meth:`enroll` enrolls for real (the CA's birth attestation, the
    device's proof of possession; issue 12.2 refuses an activation more than 60 s before the
    enrollment block). ``registry="harness"``: the suite was deployed with the TEST-ONLY
    ``DeviceRegistryHarness`` (``deploy_suite(device_registry="DeviceRegistryHarness")``) and
    :meth:`enroll` records the device with ``enrollWithoutAttestationForTest`` at the activation a
    test asks for (default 0: any time), for tests of the service's time and sequence rules, whose
    devices are active minutes to days before they are enrolled; not for tests of enrollment.
    """

    __test__ = False  # not a test class

    def __init__(self, chain, deployment, *, registry: str = "real") -> None:  # type: ignore[no-untyped-def]
        import datetime as dt

        from contracts.chain import dev_accounts
        from contracts.registry import DeviceRegistryClient
        from device_attestation.birth import ca_public_point
        from device_attestation.manufacturer_ca import create_manufacturer_ca

        if registry not in ("real", "harness"):
            raise ValueError(f"registry must be 'real' or 'harness', not {registry!r}")
        self.chain = chain
        self.deployment = deployment
        self.harness = registry == "harness"
        self.operator, self.factory = dev_accounts(2)
        self.registry = DeviceRegistryClient(chain, deployment)
        self.ca_key, self.ca_cert = create_manufacturer_ca(
            common_name="Test Device CA",
            organization="Test Devices",
            valid_days=30,
            not_before=dt.datetime.now(dt.UTC) - dt.timedelta(days=1),
        )
        self.registry.trust_ca(self.operator, *ca_public_point(self.ca_cert), "Test Device CA")
        self.registry.grant_enroller(self.operator, self.factory.address)

    @property
    def domain(self):  # type: ignore[no-untyped-def]
        from device_attestation.reading import Domain

        return Domain(
            chain_id=self.chain.chain_id, verifying_contract=self.deployment.address("ReadingAnchor")
        )

    def enroll(
        self, device_id: str, scheme: str = "p256", *, active_from_ms: int | None = None, start_seq: int = 1
    ):  # type: ignore[no-untyped-def]
        """Enroll a fresh device, active from ``active_from_ms``; default: as early as the registry
        allows (issue 12.2: the enrollment block's time less 60 s), i.e. the chain's latest block time
        less 55 s, so readings a test dates a little before the enrollment still count. A device active
        from further back cannot be enrolled (tests needing one use the test-only registry harness)."""
        import datetime as dt

        from contracts.enrollment import enroll_with_device_key
        from device_attestation.birth import attest_birth
        from device_attestation.certificates import make_device_csr
        from device_attestation.keys import DeviceKey
        from device_attestation.manufacturer_ca import issue_device_certificate
        from device_attestation.sdk import DeviceSigner

        key = DeviceKey.generate(scheme)
        cert = issue_device_certificate(
            ca_key=self.ca_key,
            ca_cert=self.ca_cert,
            csr=make_device_csr(key, device_id),
            valid_days=10,
            not_before=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1),
        )
        if self.harness:
            self._record_in_harness(device_id, key, cert, active_from_ms or 0)
            return DeviceSigner(device_id=device_id, key=key, domain=self.domain, start_seq=start_seq)
        enroll_with_device_key(
            registry=self.registry,
            party=self.factory,
            certificate=cert,
            ca_certificates=[self.ca_cert],
            device_key=key,
            birth=attest_birth(ca_key=self.ca_key, ca_cert=self.ca_cert, certificate=cert),
            now=dt.datetime.now(dt.UTC),
            active_from_ms=(
                active_from_ms
                if active_from_ms is not None
                else int(self.chain.block("latest")["timestamp"]) * 1000 - 55_000
            ),
        )
        return DeviceSigner(device_id=device_id, key=key, domain=self.domain, start_seq=start_seq)

    def _record_in_harness(self, device_id: str, key, cert, active_from_ms: int) -> None:  # type: ignore[no-untyped-def]
        """TEST ONLY: record the device in the harness registry, active from ``active_from_ms``."""
        from enrollments import enroll_without_attestation

        from device_attestation.certificates import ca_key_hash, certificate_fingerprint
        from device_attestation.keys import Scheme

        pub = key.public_key
        k = {"x": pub.x, "y": pub.y} if key.scheme is Scheme.P256 else {"address": pub.eth_address}
        enroll_without_attestation(
            self.chain,
            self.deployment,
            self.factory,
            device_id,
            cert_fingerprint=certificate_fingerprint(cert),
            ca_key_hash=ca_key_hash(self.ca_cert),
            active_from_ms=active_from_ms,
            **k,
        )


# ---------------------------------------------------------------- databases

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def postgres_available() -> bool:
    import psycopg

    try:
        with psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres", connect_timeout=2):
            return True
    except psycopg.Error:
        return False


class TempPostgresDatabase:
    """A fresh PostgreSQL database for one test, dropped afterwards; a copy of ``template`` if named."""

    __test__ = False

    def __init__(self, template: str | None = None) -> None:
        import uuid

        self.name = f"supet_test_{uuid.uuid4().hex[:12]}"
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{self.name}"
        self.template = template

    def __enter__(self) -> TempPostgresDatabase:
        import psycopg

        copy = f' TEMPLATE "{self.template}"' if self.template else ""
        with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{self.name}"{copy}')  # type: ignore[arg-type]
        return self

    def __exit__(self, *exc: object) -> None:
        drop_postgres_database(self.name)


def drop_postgres_database(name: str) -> None:
    import psycopg

    with psycopg.connect("host=127.0.0.1 user=postgres dbname=postgres", autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # type: ignore[arg-type]


_MIGRATED: dict[str, str] = {}  # kind -> this process's database at the newest schema, copied per test


def _migrated_template(kind: str) -> str:
    """A database of ``kind`` migrated to the newest schema once per process (per xdist worker).

    Migrating costs about half a second per database; a test's database is a copy of this one (a
    file copy for SQLite, ``CREATE DATABASE ... TEMPLATE`` for PostgreSQL), and the service's own
    ``create_schema`` then finds it at the head revision. SQLite: a file path; PostgreSQL: a name.
    """
    found = _MIGRATED.get(kind)
    if found is not None:
        return found
    import atexit
    import tempfile

    from ledger_service.store.engine import create_schema, make_engine

    if kind == "sqlite":
        path = Path(tempfile.mkdtemp(prefix="supet-db-template-")) / "ledger.db"
        engine = make_engine(f"sqlite:///{path}")
        create_schema(engine)
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        engine.dispose()
        found = str(path)
    else:
        db = TempPostgresDatabase().__enter__()
        engine = make_engine(db.url)
        create_schema(engine)
        engine.dispose()
        atexit.register(drop_postgres_database, db.name)
        found = db.name
    _MIGRATED[kind] = found
    return found


def database_url(kind: str, tmp_path: Path) -> Iterator[str]:
    """Yield a fresh database URL of ``kind`` ("sqlite" or "postgresql"), at the newest schema."""
    if kind == "sqlite":
        import shutil

        target = tmp_path / "ledger.db"
        shutil.copyfile(_migrated_template("sqlite"), target)
        yield f"sqlite:///{target}"
        return
    require(postgres_available(), "PostgreSQL is not running on 127.0.0.1:5432")
    with TempPostgresDatabase(template=_migrated_template("postgresql")) as db:
        yield db.url


# ---------------------------------------------------------------- ledger state


def now_ms() -> int:
    """Unix time in milliseconds."""
    import time

    return int(time.time() * 1000)


def stored(ledger) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Rows of the tables a submission can write (readings, device heads, equivocation evidence)."""
    from sqlalchemy import func, select

    from ledger_service.store.models import DeviceHeadRow, EquivocationRow, ReadingRow

    tables = {"readings": ReadingRow, "heads": DeviceHeadRow, "equivocations": EquivocationRow}
    with ledger.engine.connect() as conn:
        return {
            name: conn.execute(select(func.count()).select_from(model.__table__)).scalar_one()  # type: ignore[attr-defined]
            for name, model in tables.items()
        }
