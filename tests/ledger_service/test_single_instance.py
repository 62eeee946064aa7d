"""SQLite is the embedded single-instance store (issue 17.1): a second instance on the same SQLite file is
refused at start with a clear error and writes nothing; the lock dies with its holder (SIGKILL), is
released on stop, and is not taken on in-memory SQLite or PostgreSQL."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from embedded_pool import deployed_embedded

from contracts.anvil import free_port
from contracts.chain import Chain
from contracts.deployment import Deployment
from ledger_service.config import Settings
from ledger_service.errors import InstanceLockedError, LedgerError
from ledger_service.service import LedgerService
from ledger_service.store.instance_lock import LOCK_SUFFIX, lock_for, sqlite_file
from supet_base.errors import SupetError

SUPET = Path(sys.executable).with_name("supet")


@pytest.fixture
def embedded() -> Iterator[tuple[Chain, Deployment]]:
    with deployed_embedded() as pair:
        yield pair


def _settings(db: Path, data_dir: Path) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=f"sqlite:///{db}",
        data_dir=data_dir,
        verify_workers=0,
        anchoring=False,
        registry_refresh_seconds=0,
    )


def _files(directory: Path) -> dict[str, str]:
    """Every file of ``directory`` but the lock file, with its content's hash; the WAL index (``-shm``)
    by name only: it is shared memory that the running instance's own reads rewrite."""
    return {
        p.name: "" if p.name.endswith("-shm") else hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.iterdir())
        if p.is_file() and not p.name.endswith(LOCK_SUFFIX)
    }


def test_which_urls_are_locked(tmp_path: Path) -> None:
    assert sqlite_file(f"sqlite:///{tmp_path}/a.db") == tmp_path / "a.db"
    assert sqlite_file("sqlite:///relative/b.db") == Path("relative/b.db")
    for url in (
        "sqlite://",
        "sqlite:///:memory:",
        "sqlite:///file::memory:?cache=shared",
        "postgresql://u:p@127.0.0.1:5432/supet",
        "postgresql+psycopg://u:p@127.0.0.1/supet",
    ):
        assert sqlite_file(url) is None, url
        assert lock_for(url) is None, url
    lock = lock_for(f"sqlite:///{tmp_path}/a.db")
    assert (
        lock is not None and lock.held and (tmp_path / f"a.db{LOCK_SUFFIX}").read_text() == f"{os.getpid()}\n"
    )
    with pytest.raises(InstanceLockedError):
        lock_for(f"sqlite:///{tmp_path}/a.db")
    assert lock_for(f"sqlite:///{tmp_path}/other.db") is not None  # another file: another lock
    lock.release()
    assert not lock.held
    again = lock_for(f"sqlite:///{tmp_path}/a.db")
    assert again is not None
    again.release()


def test_second_service_on_one_sqlite_file_is_refused(
    tmp_path: Path, embedded: tuple[Chain, Deployment]
) -> None:
    chain, deployment = embedded
    data = tmp_path / "db"
    settings = _settings(data / "ledger.db", tmp_path)
    first = LedgerService.build(settings, chain=chain, deployment=deployment)
    try:
        first.start()
        before = _files(data)
        assert "ledger.db" in before
        with pytest.raises(InstanceLockedError) as refused:
            LedgerService.build(settings, chain=chain, deployment=deployment)
        e = refused.value
        assert isinstance(e, LedgerError) and isinstance(e, SupetError) and e.code == "store.instance_locked"
        message = str(e)
        assert str(data / "ledger.db") in message and f"process {os.getpid()}" in message
        assert "SUPET_DATABASE_URL=postgresql://" in message
        assert _files(data) == before  # the refused instance wrote nothing

        # the first instance is unaffected
        assert first.started and first.instance_lock is not None and first.instance_lock.held
        first._database_probe()
        assert first.readiness()["database"] == "ok"
    finally:
        first.stop()
    assert first.instance_lock is not None and not first.instance_lock.held

    # released on stop: a third instance starts and serves
    third = LedgerService.build(settings, chain=chain, deployment=deployment)
    try:
        third.start()
        assert third.readiness()["database"] == "ok"
    finally:
        third.stop()


def test_the_lock_is_held_from_start_to_stop(tmp_path: Path, embedded: tuple[Chain, Deployment]) -> None:
    """Building holds the lock only while it prepares the database; start holds it until stop, so of two
    services built on one file, the one started second is refused until the first stops."""
    chain, deployment = embedded
    settings = _settings(tmp_path / "db" / "ledger.db", tmp_path)
    idle = LedgerService.build(settings, chain=chain, deployment=deployment)
    assert idle.instance_lock is not None and not idle.instance_lock.held
    other = LedgerService.build(settings, chain=chain, deployment=deployment)
    assert other.instance_lock is not None and not other.instance_lock.held
    other.start()
    try:
        assert other.instance_lock.held
        with pytest.raises(InstanceLockedError):
            idle.start()
        assert not idle.started and not idle.instance_lock.held
    finally:
        other.stop()
    assert not other.instance_lock.held
    idle.start()
    try:
        assert idle.started and idle.instance_lock.held
    finally:
        idle.stop()


def test_lock_dies_with_a_killed_holder(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/ledger.db"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from ledger_service.store.instance_lock import lock_for; "
            "lock = lock_for(sys.argv[1]); print('held', flush=True); time.sleep(120)",
            url,
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
        with pytest.raises(InstanceLockedError, match=f"process {holder.pid}"):
            lock_for(url)
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        lock = lock_for(url)  # the kernel released it: a restart after SIGKILL is never blocked
        assert lock is not None and lock.held
        lock.release()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(timeout=10)


@pytest.mark.slow
def test_second_supet_serve_process_is_refused(tmp_path: Path, embedded: tuple[Chain, Deployment]) -> None:
    """A real second ``supet serve`` on the SQLite file a running instance holds exits 1 with one line
    that says to use PostgreSQL, and writes nothing."""
    chain, deployment = embedded
    data = tmp_path / "db"
    first = LedgerService.build(_settings(data / "ledger.db", tmp_path), chain=chain, deployment=deployment)
    first.start()
    try:
        before = _files(data)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SUPET_")}
        env.update(
            SUPET_CHAIN="embedded",
            SUPET_DATABASE_URL=f"sqlite:///{data / 'ledger.db'}",
            SUPET_DATA_DIR=str(tmp_path / "second"),
            SUPET_VERIFY_WORKERS="0",
        )
        started = time.monotonic()
        done = subprocess.run(
            [str(SUPET), "serve", "--port", str(free_port()), "--log-level", "warning"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            timeout=120,
        )
        out = (done.stdout + done.stderr).decode(errors="replace")
        assert done.returncode == 1, out  # refused before uvicorn starts: one line, no traceback
        assert "store.instance_locked" in out and "SUPET_DATABASE_URL=postgresql://" in out, out
        assert "Traceback" not in out, out
        assert f"process {os.getpid()}" in out, out
        assert time.monotonic() - started < 120
        assert _files(data) == before  # nothing written by the refused process
        assert not (tmp_path / "second").exists()  # not even its token secret
        first._database_probe()  # the running instance is unaffected
        assert first.readiness()["database"] == "ok"
    finally:
        first.stop()
