"""Issue 17: several writers on one PostgreSQL database keep the device rules (seq order, idempotent
resubmission, equivocation evidence once), enforced by the database and not by process memory.

- two :class:`Committer` objects on two engines (two instances' writers, in one process): a script of
  submissions alternating between them gives exactly the outcomes and store of one writer; many small
  requests racing to both give the store one writer gives; a unique-key violation from a writer that
  takes no head lock is decided again, not refused;
- two real ``supet serve`` processes on one database (only one of them anchoring), the same devices
  posting to both at once: every reading stored once and anchored once, evidence recorded once.
"""

from __future__ import annotations

import random
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from faults import (
    Deployed,
    Fleet,
    all_anchored,
    assert_exactly_once,
    assert_served_proofs_verify,
    deploy_on,
    describe_store,
    own_anvil,
    sample,
    wait_for,
)
from reads import bearer
from service_process import SUPET, ServiceProcess, service_env
from sqlalchemy import Engine, insert, select
from support import database_url

from device_attestation.keys import DeviceKey
from device_attestation.reading import Domain, Reading, reading_digest
from device_attestation.sdk import DeviceSigner, Submission
from device_attestation.signing import sign_digest
from ledger_service.ingest.checks import Checked, check_chunk
from ledger_service.ingest.committer import Candidate, Committer, now_ms
from ledger_service.ingest.receipts import Outcome, Receipt
from ledger_service.store.engine import make_engine
from ledger_service.store.models import DeviceHeadRow, EquivocationRow, ReadingRow

pytestmark = pytest.mark.postgres

DOMAIN = Domain(chain_id=31337, verifying_contract="0x" + "5a" * 20)
_R = ReadingRow.__table__.c  # type: ignore[attr-defined]
_H = DeviceHeadRow.__table__.c  # type: ignore[attr-defined]
_E = EquivocationRow.__table__.c  # type: ignore[attr-defined]


# ---------------------------------------------------------------- databases and writers


@pytest.fixture
def pg_url(tmp_path: Path) -> Iterator[str]:
    """A fresh PostgreSQL database at the newest schema (the instances' shared one)."""
    yield from database_url("postgresql", tmp_path)


@pytest.fixture
def reference_url(tmp_path: Path) -> Iterator[str]:
    """Another fresh PostgreSQL database, for the single-writer reference."""
    yield from database_url("postgresql", tmp_path)


@pytest.fixture
def writers() -> Iterator[Callable[[str], Committer]]:
    """Start a writer (its own engine, as another instance would have) on a database URL; all are
    stopped and their engines disposed at the end."""
    started: list[Committer] = []

    def start(url: str) -> Committer:
        committer = Committer(make_engine(url))
        committer.start()
        started.append(committer)
        return committer

    yield start
    for committer in started:
        committer.stop()
        committer.engine.dispose()


class Device:
    """A device key signing readings with chosen sequence numbers, checked as the pipeline would."""

    def __init__(self, device_id: str) -> None:
        self.device_id = device_id
        self.key = DeviceKey.generate("p256")

    def sign(self, seq: int, ts_ms: int, temp: float = 21.0) -> Candidate:
        reading = Reading(device_id=self.device_id, seq=seq, ts_ms=ts_ms, metrics={"temp_c": temp})
        digest = reading_digest(reading, DOMAIN)
        sub = Submission(
            reading=reading, scheme=self.key.scheme, signature=sign_digest(self.key, digest), digest=digest
        )
        pub = self.key.public_key
        ((_, checked),) = check_chunk(
            DOMAIN.chain_id, DOMAIN.verifying_contract, [(0, sub.to_json_obj(), ("p256", (pub.x, pub.y)))]
        )
        assert isinstance(checked, Checked), checked
        return Candidate(checked=checked, received_ms=now_ms(), source="http", raw=sub.to_json_obj())


@dataclass(frozen=True)
class Store:
    """What a database holds for the readings' rules."""

    readings: dict[tuple[str, int], tuple[bytes, tuple[int, int] | None]]
    heads: dict[str, tuple[int, int, int, int, int]]  # last_seq, last_ts_ms, readings, gaps, missing
    evidence: list[tuple[str, int, bytes, bytes]]

    def seqs(self) -> set[tuple[str, int]]:
        return set(self.readings)


def store_of(engine: Engine) -> Store:
    with engine.connect() as conn:
        readings = {
            (d, int(s)): (bytes(digest), None if g1 is None else (int(g1), int(g2)))
            for d, s, digest, g1, g2 in conn.execute(
                select(_R.device_id, _R.seq, _R.digest, _R.gap_first, _R.gap_last)
            )
        }
        heads = {
            d: (int(a), int(b), int(c), int(e), int(f))
            for d, a, b, c, e, f in conn.execute(
                select(_H.device_id, _H.last_seq, _H.last_ts_ms, _H.readings, _H.gaps, _H.missing)
            )
        }
        evidence = sorted(
            (d, int(s), bytes(a), bytes(c))
            for d, s, a, c in conn.execute(
                select(_E.device_id, _E.seq, _E.accepted_digest, _E.conflicting_digest)
            )
        )
    return Store(readings=readings, heads=heads, evidence=evidence)


def assert_heads_agree_with_rows(store: Store) -> None:
    """Each head says what the device's stored rows say: no writer wrote stale counts over another's."""
    for device_id, (last_seq, _ts, readings, gaps, missing) in store.heads.items():
        rows = {seq: gap for (d, seq), (_, gap) in store.readings.items() if d == device_id}
        assert readings == len(rows), (device_id, store.heads[device_id], len(rows))
        assert last_seq == max(rows), (device_id, store.heads[device_id])
        assert missing == last_seq - len(rows), (device_id, store.heads[device_id])
        assert gaps == sum(1 for g in rows.values() if g is not None), (device_id, store.heads[device_id])


def kind(outcome: Outcome) -> str:
    return "receipt" if isinstance(outcome, Receipt) else outcome[0]


# ---------------------------------------------------------------- one script, two writers


def test_alternating_writers_give_the_outcomes_and_store_of_one(
    pg_url: str, reference_url: str, writers: Callable[[str], Committer]
) -> None:
    """Each step goes to the other writer than the one before, so a head one of them kept from its own
    last commit is stale at every step. The outcomes and the store are those of one writer."""
    dev = Device("MI-SCRIPT-1")
    t = now_ms() - 600_000
    twin5 = dev.sign(5, t + 5_000, temp=99.0)
    script: list[list[Candidate]] = [
        [dev.sign(1, t + 1_000)],
        [dev.sign(2, t + 2_000), dev.sign(5, t + 5_000)],  # 5: a gap (3, 4)
        [dev.sign(2, t + 2_000)],  # the same reading again: the same receipt, not store.unavailable
        [dev.sign(3, t + 3_000)],  # a late fill: no gap (judged against 2 and 5, not a stale head of 1)
        [dev.sign(4, t + 9_000)],  # a late fill later than seq 5: out of order
        [twin5],  # equivocation, recorded
        [twin5, dev.sign(6, t + 6_000)],  # again: refused, not recorded twice; 6 comes after 5
        [dev.sign(7, t + 5_500)],  # earlier than seq 6: out of order
    ]
    a, b = writers(pg_url), writers(pg_url)
    both = [w.commit(step) for step, w in zip(script, [a, b] * len(script), strict=False)]
    one_writer = writers(reference_url)
    reference = [one_writer.commit(step) for step in script]

    assert both == reference
    assert [[kind(o) for o in step] for step in both] == [
        ["receipt"],
        ["receipt", "receipt"],
        ["receipt"],
        ["receipt"],
        ["reading.out_of_order"],
        ["reading.equivocation"],
        ["reading.equivocation", "receipt"],
        ["reading.out_of_order"],
    ]
    gaps = [o.gap for step in both for o in step if isinstance(o, Receipt)]
    assert gaps == [None, None, (3, 4), None, None, None]
    shared, single = store_of(a.engine), store_of(one_writer.engine)
    assert shared == single
    assert shared.heads[dev.device_id] == (6, t + 6_000, 5, 1, 1)
    assert len(shared.evidence) == 1 and shared.evidence[0][3] == twin5.checked.digest
    assert_heads_agree_with_rows(shared)
    assert a.retries == b.retries == 0  # the head locks kept the writers apart, not a retry


# ---------------------------------------------------------------- racing writers


@dataclass
class Race:
    """Requests for two writers: ``phase1`` and then ``phase2``, each a list of (writer index, request)."""

    devices: list[Device]
    phase1: list[tuple[int, list[Candidate]]]
    phase2: list[tuple[int, list[Candidate]]]
    original: Candidate
    twin: Candidate


def make_race(seed: int) -> Race:
    """Three honest devices (time grows with seq) with seqs 1..48, in small mixed requests alternating
    between the writers, some sent to both; seqs 17..20 of each are withheld and sent late, to both
    writers at once; device 0 also signs a second, different reading of seq 30 (sent to the other
    writer than the first, then to both)."""
    rng = random.Random(seed)
    devices = [Device(f"MI-RACE-{i}") for i in range(3)]
    t = now_ms() - 600_000
    withheld = range(17, 21)
    streams: list[list[Candidate]] = []
    for d in devices:
        cands = [d.sign(seq, t + seq * 1_000) for seq in range(1, 49) if seq not in withheld]
        for i in range(0, len(cands) - 1, 2):  # local disorder: store-and-forward, two paths
            if rng.random() < 0.4:
                cands[i], cands[i + 1] = cands[i + 1], cands[i]
        streams.append(cands)
    original = next(c for c in streams[0] if c.checked.seq == 30)
    twin = devices[0].sign(30, t + 30_000, temp=99.0)
    merged: list[Candidate] = []
    while any(streams):
        for s in streams:
            if s:
                merged.append(s.pop(0))
    phase1: list[tuple[int, list[Candidate]]] = []
    i = 0
    while i < len(merged):
        n = rng.randint(1, 6)
        request, i = merged[i : i + n], i + n
        writer = len(phase1) % 2
        phase1.append((writer, request))
        if original in request:
            phase1.append((1 - writer, [twin]))
        if rng.random() < 0.3:  # the device resends the request to the other instance
            phase1.append((1 - writer, list(request)))
    late = [d.sign(seq, t + seq * 1_000) for d in devices for seq in withheld]
    phase2 = [(0, late), (1, list(late)), (0, [twin]), (1, [original])]
    return Race(devices=devices, phase1=phase1, phase2=phase2, original=original, twin=twin)


def run_race(writers: Sequence[Committer], race: Race, threads: int) -> list[tuple[Candidate, Outcome]]:
    results: list[tuple[Candidate, Outcome]] = []
    for phase in (race.phase1, race.phase2):
        with ThreadPoolExecutor(threads) as ex:
            futures = [(req, ex.submit(writers[w].commit, req)) for w, req in phase]
            for req, fut in futures:
                results.extend(zip(req, fut.result(), strict=True))
    return results


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_racing_writers_store_what_one_writer_stores(
    pg_url: str, reference_url: str, writers: Callable[[str], Committer], seed: int
) -> None:
    race = make_race(seed)
    a, b = writers(pg_url), writers(pg_url)
    results = run_race([a, b], race, threads=8)
    one_writer = writers(reference_url)
    reference = run_race([one_writer, one_writer], race, threads=1)  # one writer, one request at a time

    shared, single = store_of(a.engine), store_of(one_writer.engine)
    twin_key = (race.original.checked.device_id, 30)
    winner = shared.readings[twin_key][0]
    assert winner in (race.original.checked.digest, race.twin.checked.digest)
    loser = (
        race.twin.checked.digest if winner == race.original.checked.digest else race.original.checked.digest
    )
    # every submission acknowledged with the receipt of what is stored, except the twin that lost
    for cand, outcome in results:
        if cand.checked.digest == loser:
            assert kind(outcome) == "reading.equivocation", outcome
            continue
        assert isinstance(outcome, Receipt), (cand.checked.device_id, cand.checked.seq, outcome)
        digest, gap = shared.readings[(cand.checked.device_id, cand.checked.seq)]
        assert (outcome.digest, outcome.gap) == (digest, gap)
    assert [kind(o) for c, o in reference if c.checked.digest == race.twin.checked.digest] == [
        "reading.equivocation"
    ] * 2
    # count in = count stored; the same rows as one writer's (but for which twin came first)
    distinct = {c.checked.digest for c, _ in results} - {loser}
    assert {d for d, _ in shared.readings.values()} == distinct
    assert len(shared.readings) == len(distinct) == 3 * 48
    assert shared.seqs() == single.seqs()
    assert {k: v[0] for k, v in shared.readings.items() if k != twin_key} == {
        k: v[0] for k, v in single.readings.items() if k != twin_key
    }
    # heads: the same seq, time and counts as one writer's; gaps as the device's rows say (how many
    # gaps a device showed depends on the order its readings arrived in)
    assert {d: (h[0], h[1], h[2], h[4]) for d, h in shared.heads.items()} == {
        d: (h[0], h[1], h[2], h[4]) for d, h in single.heads.items()
    }
    assert_heads_agree_with_rows(shared)
    assert_heads_agree_with_rows(single)
    # the losing reading went to both writers, more than once: one piece of evidence
    assert shared.evidence == [(twin_key[0], 30, winner, loser)]
    assert len(single.evidence) == 1
    assert a.retries == b.retries == 0


# ---------------------------------------------------------------- a writer without the head lock


def test_a_unique_key_violation_is_decided_again_not_refused(
    pg_url: str, writers: Callable[[str], Committer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows a writer without the head lock (an older version in a rolling upgrade) commits under a
    group, after it looked at the store: the group's insert violates the unique (device, seq); it is
    run again against the store as it then is, and nothing is refused as store.unavailable."""
    committer = writers(pg_url)
    same, other, bystander = Device("MI-LEGACY-1"), Device("MI-LEGACY-2"), Device("MI-LEGACY-3")
    t = now_ms() - 60_000
    group = [same.sign(1, t), other.sign(1, t), bystander.sign(1, t)]
    legacy = [group[0], other.sign(1, t, temp=99.0)]  # the very reading, and a conflicting one
    legacy_engine = make_engine(pg_url)
    lock_heads = committer._lock_heads
    calls = []

    def lock_then_race(conn: Any, device_ids: list[str]) -> Any:
        heads = lock_heads(conn, device_ids)
        calls.append(len(device_ids))
        if len(calls) == 1:
            with legacy_engine.begin() as other_conn:
                other_conn.execute(insert(ReadingRow), [_row(c) for c in legacy])
        return heads

    monkeypatch.setattr(committer, "_lock_heads", lock_then_race)
    try:
        outcomes = committer.commit(group)
    finally:
        legacy_engine.dispose()
    assert [kind(o) for o in outcomes] == ["receipt", "reading.equivocation", "receipt"]
    assert outcomes[0] == Receipt(digest=group[0].checked.digest, device_id=same.device_id, seq=1)
    assert committer.retries == 1 and calls == [3, 3]
    store = store_of(committer.engine)
    assert {d for d, _ in store.readings.values()} == {c.checked.digest for c in (*legacy, group[2])}
    assert store.evidence == [(other.device_id, 1, legacy[1].checked.digest, group[1].checked.digest)]


def _row(c: Candidate) -> dict[str, Any]:
    ch = c.checked
    return {
        "digest": ch.digest,
        "device_id": ch.device_id,
        "seq": ch.seq,
        "ts_ms": ch.ts_ms,
        "lot_id": ch.lot_id,
        "scheme": ch.scheme,
        "signature": ch.signature,
        "reading_json": ch.reading_json,
        "received_ms": c.received_ms,
        "source": "legacy",
    }


# ---------------------------------------------------------------- two supet serve processes


@pytest.fixture
def anvil_deployed(tmp_path: Path) -> Iterator[Deployed]:
    with own_anvil() as node:
        yield deploy_on(node, tmp_path)


def post(url: str, subs: Sequence[Submission]) -> list[dict[str, Any]]:
    r = httpx.post(f"{url}/v1/readings", json={"readings": [s.to_json_obj() for s in subs]}, timeout=60)
    assert r.status_code == 200, r.text
    results: list[dict[str, Any]] = r.json()["results"]
    assert len(results) == len(subs)
    return results


@pytest.mark.anvil
@pytest.mark.slow
def test_two_serve_processes_on_one_database(pg_url: str, anvil_deployed: Deployed, tmp_path: Path) -> None:
    """The same devices post to two ``supet serve`` processes at once (resends to the other instance,
    late readings to both, a conflicting reading to both); only instance A anchors (one anchoring
    leader is issue 17's other half). Every reading is stored once and anchored once, the conflicting
    one is refused everywhere and recorded once, and both instances serve proofs that verify."""
    assert SUPET.exists(), f"{SUPET} is missing: install the project (pip install -e .)"
    # pg_url first: the devices are enrolled right after the deployment, active from the latest block's
    # time less 55 s, which the registry refuses once that block is more than 5 s old (issue 12.2)
    deployed = anvil_deployed
    rng = random.Random(1717)
    fleet = Fleet(deployed.consortium, 3, seed=1717, prefix="MI")
    subs = fleet.sign(180)  # 60 per device, time growing with seq
    dev0 = fleet.devices[0]
    original = next(s for s in subs if s.reading.device_id == dev0.device_id and s.reading.seq == 40)
    twin = DeviceSigner(device_id=dev0.device_id, key=dev0.key, domain=dev0.domain, start_seq=40).sign(
        {"temp_c": 99.0, "good_units": 1}, ts_ms=original.reading.ts_ms
    )
    late = [s for s in subs if 21 <= s.reading.seq <= 25]
    main = [s for s in subs if s not in late]
    chunks = [main[i : i + 9] for i in range(0, len(main), 9)]

    secret = "multi-instance-test-secret-" + "7" * 32
    services = []
    for name, anchoring in (("a", "true"), ("b", "false")):
        env = service_env(deployed, pg_url)
        env.update(SUPET_ANCHORING=anchoring, SUPET_TOKEN_SECRET=secret, SUPET_DATA_DIR=str(tmp_path / name))
        (tmp_path / name).mkdir()
        services.append(ServiceProcess(env=env, cwd=tmp_path / name, log=tmp_path / f"serve-{name}.log"))
    engine = make_engine(pg_url)
    answers: list[tuple[Submission, dict[str, Any]]] = []
    lock = threading.Lock()

    def send(url: str, batch: Sequence[Submission]) -> None:
        got = post(url, batch)
        with lock:
            answers.extend(zip(batch, got, strict=True))

    try:
        with ThreadPoolExecutor(2) as ex:  # both start at once (imports take most of a start)
            for f in [ex.submit(svc.start, timeout=120) for svc in services]:
                f.result()
        a_url, b_url = services[0].url, services[1].url
        jobs: list[tuple[str, list[Submission]]] = []
        for i, chunk in enumerate(chunks):
            jobs.append((a_url if i % 2 == 0 else b_url, chunk))
            if rng.random() < 0.3:
                jobs.append((b_url if i % 2 == 0 else a_url, chunk))  # resent to the other instance
            if original in chunk:
                jobs.append((b_url if i % 2 == 0 else a_url, [twin]))
        with ThreadPoolExecutor(4) as ex:
            for f in [ex.submit(send, url, batch) for url, batch in jobs]:
                f.result()
        with ThreadPoolExecutor(4) as ex:  # the late readings, and both twins, to both at once
            for f in [
                ex.submit(send, url, batch) for url in (a_url, b_url) for batch in (late, [twin], [original])
            ]:
                f.result()

        stored = store_of(engine)
        winner = stored.readings[(dev0.device_id, 40)][0]
        loser = twin.digest if winner == original.digest else original.digest
        acknowledged: set[bytes] = set()
        for sub, answer in answers:
            if sub.digest == loser:
                assert answer.get("error", {}).get("code") == "reading.equivocation", answer
                continue
            assert "receipt" in answer, (sub.reading.device_id, sub.reading.seq, answer)
            receipt = answer["receipt"]
            digest, gap = stored.readings[(sub.reading.device_id, sub.reading.seq)]
            assert receipt["digest"] == "0x" + digest.hex() == "0x" + sub.digest.hex()
            assert (tuple(receipt["gap"]) if receipt["gap"] else None) == gap  # the same receipt everywhere
            acknowledged.add(sub.digest)
        assert len(acknowledged) == len(subs) == len(stored.readings)  # count in = count stored
        assert stored.evidence == [(dev0.device_id, 40, winner, loser)]
        assert_heads_agree_with_rows(stored)
        assert {d: h[0] for d, h in stored.heads.items()} == {d.device_id: 60 for d in fleet.devices}

        # Not issue 17's ingest half: A's anchoring worker learns of waiting readings from its own
        # writer (note_committed) once it found none waiting, so readings B alone committed (here the late
        # ones) wait for A's next commit. One more reading through A, as a live feed would send.
        (last,) = fleet.sign(1)
        assert "receipt" in post(a_url, [last])[0]
        acknowledged.add(last.digest)
        wait_for(
            lambda: all_anchored(engine),
            timeout=90,
            what="every reading anchored by instance A",
            detail=lambda: (describe_store(engine), services[0].tail(1500)),
        )
        chosen = sample(acknowledged)
        for svc in services:  # any instance serves any proof
            bundles = served_proofs(svc.url, chosen, deployed)
            assert_served_proofs_verify(bundles, deployed.chain, deployed.deployment, expected=chosen)
        for svc in services:
            svc.kill(signal.SIGTERM)
        result = assert_exactly_once(engine, deployed.chain, deployed.deployment, expected=acknowledged)
        assert result.readings == len(subs) + 1
        for (
            svc
        ) in services:  # no group refused (store write failed) nor run again (store write ... conflicted)
            assert "store write" not in svc.tail(1_000_000), svc.tail(3000)
    finally:
        for svc in services:
            svc.kill()
        engine.dispose()


def served_proofs(url: str, digests: Sequence[bytes], deployed: Deployed) -> list[dict[str, Any]]:
    """The proof bundles of ``digests`` from one instance, as the devices' owner."""
    with httpx.Client(base_url=url, timeout=20) as client:
        headers = bearer(client, deployed.consortium.factory)
        bundles = []
        for d in digests:
            r = client.get(f"/v1/readings/0x{d.hex()}/proof", headers=headers)
            assert r.status_code == 200, r.text
            bundles.append(r.json())
    return bundles
