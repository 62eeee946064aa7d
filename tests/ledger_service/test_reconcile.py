"""``supet store reconcile`` and the backup/restore story, on SQLite and PostgreSQL, against anvil.

Ingest and anchor, back up the database, ingest and anchor more, restore the backup: reconcile
reports the chain batch the store lost. The devices resubmit the readings acknowledged after the
backup; the same readings close into a batch with the same root, the contract refuses it as
already anchored, and the worker adopts the earlier anchoring. Reconcile is then clean and every
reading's proof verifies.
"""

from __future__ import annotations

import sqlite3
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from faults import (
    Deployed,
    Fleet,
    assert_service_proofs_verify,
    batches,
    deploy_on,
    in_process_service,
    own_anvil,
    submit_all,
)
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update
from support import TempPostgresDatabase, postgres_available, require
from typer.testing import CliRunner

import supet.cli
from contracts.chain import Chain, dev_accounts
from contracts.deploy import deploy_suite
from device_attestation.sdk import Submission
from ledger_service.anchoring import chain_logs
from ledger_service.reconcile import ReconcileError, chain_batches, reconcile
from ledger_service.service import LedgerService
from ledger_service.store.batch_status import BatchStatus
from ledger_service.store.models import BatchRow


def run_reconcile(deployed: Deployed, db_url: str, *extra: str) -> tuple[int, dict[str, Any], str]:
    """The CLI twice: --json (parsed) and the text report; both must agree on the exit code."""
    base = [
        "store",
        "reconcile",
        "--deployment",
        str(deployed.deployment_file),
        "--rpc",
        deployed.node.url,
        "--database",
        db_url,
        *extra,
    ]
    as_json = CliRunner().invoke(supet.cli.app, [*base, "--json"])
    assert as_json.exception is None or isinstance(as_json.exception, SystemExit), as_json.output
    text = CliRunner().invoke(supet.cli.app, base)
    assert text.exit_code == as_json.exit_code, (text.output, as_json.output)
    return as_json.exit_code, orjson.loads(as_json.stdout), text.stdout


class Store:
    """A database of one kind with backup and restore, as an operator would do them."""

    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind = kind
        self.tmp = tmp_path
        self._pg: list[TempPostgresDatabase] = []

    def fresh(self) -> str:
        if self.kind == "sqlite":
            return f"sqlite:///{self.tmp}/ledger.db"
        return self._new_pg().url

    def _new_pg(self) -> TempPostgresDatabase:
        db = TempPostgresDatabase().__enter__()
        self._pg.append(db)
        return db

    def backup(self, url: str) -> Path:
        """Online backup: the sqlite3 backup API, or pg_dump (custom format)."""
        if self.kind == "sqlite":
            dst = self.tmp / "backup.db"
            src = sqlite3.connect(url.removeprefix("sqlite:///"))
            out = sqlite3.connect(dst)
            with out:
                src.backup(out)
            src.close()
            out.close()
            return dst
        dst = self.tmp / "backup.dump"
        name = url.rsplit("/", 1)[1]
        subprocess.run(
            ["pg_dump", "-h", "127.0.0.1", "-U", "postgres", "-Fc", "-f", str(dst), name], check=True
        )
        return dst

    def restore(self, backup: Path) -> str:
        """Restore into a new database (the damaged one is kept aside, as an operator would)."""
        if self.kind == "sqlite":
            target = self.tmp / "restored.db"
            src = sqlite3.connect(backup)
            out = sqlite3.connect(target)
            with out:
                src.backup(out)
            src.close()
            out.close()
            return f"sqlite:///{target}"
        db = self._new_pg()
        subprocess.run(
            ["pg_restore", "-h", "127.0.0.1", "-U", "postgres", "--no-owner", "-d", db.name, str(backup)],
            check=True,
        )
        return db.url

    def close(self) -> None:
        for db in self._pg:
            db.__exit__(None, None, None)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "postgresql":
        require(postgres_available(), "PostgreSQL is not running on 127.0.0.1:5432")
    s = Store(request.param, tmp_path)
    yield s
    s.close()


@contextmanager
def running(deployed: Deployed, db_url: str) -> Iterator[LedgerService]:
    """A service on ``db_url`` whose anchoring is driven by the test (flush)."""
    service = in_process_service(deployed, db_url, anchoring=False)
    service.start()
    try:
        yield service
    finally:
        service.stop()
        service.engine.dispose()


def digests(subs: Sequence[Submission]) -> set[bytes]:
    return {s.digest for s in subs}


@pytest.mark.anvil
@pytest.mark.slow
def test_backup_restore_reconcile_resubmit(store: Store, tmp_path: Path) -> None:
    with own_anvil() as node:
        deployed = deploy_on(node, tmp_path)
        fleet = Fleet(deployed.consortium, 2, seed=11)
        url = store.fresh()
        before = fleet.sign(6)
        after: list[Submission] = []
        with running(deployed, url) as service:
            submit_all(service, before)
            service.anchoring.flush(timeout=30)
            code, report, text = run_reconcile(deployed, url)
            assert code == 0 and report["consistent"] is True, text
            assert report["chain_batches"] == 1 and report["store_anchored"] == 1 and "consistent" in text

            backup = store.backup(url)  # online: the service keeps running

            after = fleet.sign(5)
            submit_all(service, after)
            service.anchoring.flush(timeout=30)
            lost = [b for b in batches(service.engine) if b.chain_batch_id == 2]
            assert len(lost) == 1 and lost[0].count == 5
            lost_tx, lost_root = lost[0].tx_hash, lost[0].root

        restored = store.restore(backup)
        code, report, text = run_reconcile(deployed, restored)
        assert code == 1 and report["consistent"] is False, text
        (unknown,) = report["unknown_to_store"]
        assert (
            unknown["batch_id"] == 2 and unknown["count"] == 5 and unknown["root"] == "0x" + lost_root.hex()
        )
        assert unknown["tx_hash"] == lost_tx and unknown["by"] == dev_accounts(1)[0].address
        assert report["missing_on_chain"] == [] and report["unanchored_readings"] == 0
        assert "unknown to the store" in text and "resubmit" in text and "NOT consistent" in text
        # filtered by anchorer: another address anchored nothing, so nothing is unknown for it
        code, other, _ = run_reconcile(deployed, restored, "--anchorer", dev_accounts(2)[1].address)
        assert code == 0 and other["unknown_to_store"] == []

        with running(deployed, restored) as service:
            # the devices resubmit what they sent after the backup: acknowledged again, same digests
            assert submit_all(service, after) == digests(after)
            code, report, text = run_reconcile(deployed, restored)
            assert code == 1 and report["unanchored_readings"] == 5, text  # still unknown: not anchored
            service.anchoring.flush(timeout=30)
            (adopted,) = [b for b in batches(service.engine) if b.root == lost_root]
            assert (
                adopted.status == BatchStatus.ANCHORED
                and adopted.chain_batch_id == 2
                and adopted.tx_hash == lost_tx
            )
            assert deployed.anchor.batch_count() == 2  # adopted, not anchored a second time
            code, report, text = run_reconcile(deployed, restored)
            assert code == 0 and report["consistent"] is True, text
            assert report["chain_batches"] == report["store_anchored"] == 2
            assert_service_proofs_verify(service, digests(before) | digests(after))


@pytest.mark.anvil
def test_reconcile_reports_wrong_chain_and_stuck_readings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with own_anvil() as node:
        deployed = deploy_on(node, tmp_path)
        fleet = Fleet(deployed.consortium, 1, seed=12)
        url = f"sqlite:///{tmp_path}/ledger.db"
        with running(deployed, url) as service:
            submit_all(service, fleet.sign(3))
            service.anchoring.flush(timeout=30)
            submit_all(service, fleet.sign(2))  # committed, not anchored
            time.sleep(0.05)
        # events are read a bounded number of blocks at a time (nodes cap eth_getLogs ranges)
        whole = chain_batches(deployed.chain, deployed.deployment)
        monkeypatch.setattr(chain_logs, "LOG_CHUNK", 1)
        assert chain_batches(deployed.chain, deployed.deployment) == whole and len(whole) == 1
        code, report, text = run_reconcile(deployed, url)
        assert code == 0 and report["unanchored_readings"] == 2 and report["stale_unanchored_readings"] == 0
        assert "2 reading(s) committed but not anchored" in text
        code, report, text = run_reconcile(deployed, url, "--pending-grace", "0")
        assert code == 1 and report["stale_unanchored_readings"] == 2 and "anchoring worker running" in text

        # the store's anchored batch recorded under another chain batch id (a store from elsewhere)
        service_engine = in_process_service(deployed, url).engine
        with service_engine.begin() as conn:
            anchored = BatchRow.status == BatchStatus.ANCHORED
            conn.execute(update(BatchRow).values(chain_batch_id=7).where(anchored))  # type: ignore[arg-type]
        code, report, text = run_reconcile(deployed, url)
        (missing,) = report["missing_on_chain"]
        assert (
            code == 1
            and missing["chain_batch_id"] == 7
            and missing["problem"] == "root anchored as chain batch 1"
        )
        service_engine.dispose()

        # the same store against another deployment (wrong chain/contract): its batch is not there
        deployed.chain.reset_nonce(dev_accounts(1)[0].address)  # the service sent with its own Chain
        other = deploy_suite(deployed.chain, dev_accounts(1)[0])
        other_file = tmp_path / "other.json"
        other.save(other_file)
        wrong = Deployed(node, deployed.chain, other, other_file, deployed.consortium)
        code, report, text = run_reconcile(wrong, url)
        (missing,) = report["missing_on_chain"]
        assert code == 1 and missing["problem"] == "root not anchored on this chain"
        assert "not on this chain as recorded" in text


def test_reconcile_refuses_a_missing_store(tmp_path: Path) -> None:
    chain = Chain.embedded()
    dep = deploy_suite(chain, dev_accounts(1)[0])
    dep_file = tmp_path / "dep.json"
    dep.save(dep_file)
    result = CliRunner().invoke(
        supet.cli.app,
        [
            "store",
            "reconcile",
            "--deployment",
            str(dep_file),
            "--rpc",
            "http://127.0.0.1:1",
            "--database",
            f"sqlite:///{tmp_path}/nothing.db",
        ],
    )
    assert isinstance(result.exception, ReconcileError) and result.exception.code == "reconcile.no_store"
    assert not (tmp_path / "nothing.db").exists()  # not created by asking
    # the library on an empty store and an embedded chain: consistent, nothing anywhere
    from ledger_service.store.engine import create_schema, make_engine

    engine = make_engine(f"sqlite:///{tmp_path}/empty.db")
    create_schema(engine)
    report = reconcile(engine, chain, dep, now_ms=int(time.time() * 1000))
    assert report.consistent and report.chain_batches == 0 and report.store_batches == 0


@pytest.mark.anvil
@pytest.mark.slow
def test_two_lost_batches_are_reformed_and_adopted(tmp_path: Path) -> None:
    """Two lost batches, resubmitted together and out of order (with new readings arriving
    meanwhile): the worker re-forms each from the oldest waiting readings by device time, adopts
    both, and anchors the new readings in a batch of their own."""
    with own_anvil() as node:
        deployed = deploy_on(node, tmp_path)
        fleet = Fleet(deployed.consortium, 2, seed=13)
        store = Store("sqlite", tmp_path)
        url = store.fresh()
        first = fleet.sign(4)
        # the two lost batches' readings all carry the same millisecond: device time alone cannot
        # say where one batch ends; the worker tries the ways of splitting them
        same_ms = int(time.time() * 1000) - 50
        second = [fleet.devices[i % 2].sign({"temp_c": 1.0 + i}, ts_ms=same_ms) for i in range(3)]
        third = [fleet.devices[i % 2].sign({"temp_c": 9.0 + i}, ts_ms=same_ms) for i in range(2)]
        with running(deployed, url) as service:
            submit_all(service, first)
            service.anchoring.flush(timeout=30)
            backup = store.backup(url)
            for subs in (second, third):
                submit_all(service, subs)
                service.anchoring.flush(timeout=30)
        restored = store.restore(backup)
        time.sleep(0.01)
        fresh = fleet.sign(3)  # readings made after the restore
        with running(deployed, restored) as service:
            # interleaved: neither arrival order nor (time, arrival) gives either lost batch back
            resubmitted = [third[0], second[0], third[1], second[1], second[2]]
            submit_all(service, [fresh[0], *resubmitted, *fresh[1:]])
            service.anchoring.flush(timeout=30)
            by_chain = {b.chain_batch_id: b for b in batches(service.engine)}
            assert sorted(by_chain) == [1, 2, 3, 4]
            assert by_chain[2].count == 3 and by_chain[3].count == 2 and by_chain[4].count == 3
            assert all(b.status == BatchStatus.ANCHORED for b in by_chain.values())
            everything = digests(first) | digests(second) | digests(third) | digests(fresh)
            assert_service_proofs_verify(service, everything)
        assert deployed.anchor.batch_count() == 4  # 2 and 3 adopted, only the fresh batch is new
        code, report, text = run_reconcile(deployed, restored)
        assert code == 0 and report["consistent"] is True, text


@pytest.mark.anvil
@pytest.mark.slow
def test_unresolved_lost_batch_holds_then_gives_up(tmp_path: Path) -> None:
    """Only part of a lost batch comes back: ordinary batching waits ``recovery_hold_seconds``, then
    anchors what waits anew; reconcile keeps reporting the lost batch (its other readings are gone)."""
    with own_anvil() as node:
        deployed = deploy_on(node, tmp_path)
        fleet = Fleet(deployed.consortium, 2, seed=14)
        store = Store("sqlite", tmp_path)
        url = store.fresh()
        first, second = fleet.sign(3), fleet.sign(3)
        with running(deployed, url) as service:
            submit_all(service, first)
            service.anchoring.flush(timeout=30)
            backup = store.backup(url)
            submit_all(service, second)
            service.anchoring.flush(timeout=30)
        restored = store.restore(backup)

        # a new store on the same deployment is not a restored one: nothing is lost for it
        other = in_process_service(deployed, f"sqlite:///{tmp_path}/new.db", anchoring=False)
        assert other.anchoring.find_lost_batches() == []
        other.engine.dispose()

        service = in_process_service(
            deployed, restored, batch_max_seconds=0.2, recovery_hold_seconds=2.0, anchor_timeout_seconds=10
        )
        service.start()
        try:
            submit_all(service, second[:2])  # one reading of the lost batch never comes back
            time.sleep(1.0)
            assert service.anchoring.lost is not None and [
                b.chain_batch_id for b in service.anchoring.lost
            ] == [2]
            assert len(batches(service.engine)) == 1, "an ordinary batch closed during the hold"
            scraped = text_string_to_metric_families(service.metrics.render().decode())
            shown = {f.name: f.samples[0].value for f in scraped if f.samples}
            assert shown["supet_anchor_lost_batches"] == 1 and shown["supet_anchor_backlog_readings"] == 2
            deadline = time.monotonic() + 20
            while not (
                len(batches(service.engine)) == 2
                and batches(service.engine)[1].status == BatchStatus.ANCHORED
            ):
                assert time.monotonic() < deadline, batches(service.engine)
                time.sleep(0.1)
            assert service.anchoring.lost == []
            assert_service_proofs_verify(service, digests(first) | digests(second[:2]))
        finally:
            service.stop()
            service.engine.dispose()
        assert deployed.anchor.batch_count() == 3
        code, report, text = run_reconcile(deployed, restored)
        assert code == 1 and [b["batch_id"] for b in report["unknown_to_store"]] == [2], text
