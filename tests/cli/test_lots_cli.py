"""Lots, specs and quality certification through `supet lot` / `supet spec`, against a real node (anvil).

The suite is deployed with ``deploy_suite``; the lot contracts' admission gate is then replaced by a
StaticAdmissionGate (as in tests/contracts/test_lots.py) so the tests admit parties directly.
Commands run through ``supet.cli.main`` (our error handling and exit codes).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from support import TestConsortium

from contracts.anvil import AnvilNode
from contracts.certification_package import load_package, package_json
from contracts.certifier import (
    SPEC_ACTION,
    CertificateStatus,
    QualityCertifierClient,
    RejectReason,
    SpecMetric,
    batch_readings,
)
from contracts.chain import Chain, dev_accounts
from contracts.deploy import deploy_suite
from contracts.deployment import Deployment
from contracts.lots import OPEN_ACTION, TRANSFER_ACTION, LotRegistryClient, LotStatus
from device_attestation.merkle import MerkleTree
from device_attestation.sdk import DeviceSigner, Submission
from supet.cli import main
from supet.cli.specs import parse_metric

pytestmark = pytest.mark.anvil

ACCOUNTS = dev_accounts(8)
ADMIN, FACTORY, SUPPLIER, DISTRIBUTOR, OUTSIDER, ENTERPRISE, _, AUDITOR = ACCOUNTS
KEY = {a.address: "0x" + bytes(a.key).hex() for a in ACCOUNTS}
GTIN = "04006381333931"
T0 = 1_764_400_000_000
M = 1_000_000


@dataclass
class Env:
    chain: Chain
    deployment: Deployment
    path: Path
    lots: LotRegistryClient
    certifier: QualityCertifierClient
    monkeypatch: pytest.MonkeyPatch
    capsys: pytest.CaptureFixture[str]

    def __call__(self, *args: str, key: LocalAccount | None = None) -> tuple[int, str]:
        if key is None:
            self.monkeypatch.delenv("SUPET_PARTY_KEY", raising=False)
        else:
            self.monkeypatch.setenv("SUPET_PARTY_KEY", KEY[key.address])
        common = ["--rpc", self.chain.rpc, "--deployment", str(self.path)]
        code = 0
        try:
            main([*args, *common])
        except SystemExit as e:
            code = int(e.code or 0)
        out = self.capsys.readouterr()
        return code, out.out + out.err


@pytest.fixture
def node(anvil_node: AnvilNode) -> Iterator[AnvilNode]:
    snapshot = anvil_node.snapshot()
    yield anvil_node
    anvil_node.revert(snapshot)


@pytest.fixture
def env(
    node: AnvilNode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Env:
    chain = Chain.connect(node.url)
    deployment = deploy_suite(chain, ADMIN)
    gate_address = chain.deploy("StaticAdmissionGate", ADMIN, ADMIN.address).contract_address
    assert gate_address is not None
    lots = LotRegistryClient.from_deployment(chain, deployment)
    certifier = QualityCertifierClient.from_deployment(chain, deployment)
    for client in (lots, certifier):
        chain.transact(client.contract.functions.setAdmissionGate(gate_address), ADMIN)
    gate = chain.contract("StaticAdmissionGate", gate_address)
    admitted = (
        (SUPPLIER, OPEN_ACTION),
        (FACTORY, OPEN_ACTION),
        (DISTRIBUTOR, TRANSFER_ACTION),
        (ENTERPRISE, SPEC_ACTION),
    )
    for party, action in admitted:
        chain.transact(gate.functions.setAdmitted(party.address, action, True), ADMIN)
    path = tmp_path / "deployment.json"
    deployment.save(path)
    return Env(chain, deployment, path, lots, certifier, monkeypatch, capsys)


def open_args(lot_id: str, quantity: int = 1000, gtin: str = GTIN) -> list[str]:
    window = ["--from", str(T0), "--to", str(T0 + 3_600_000)]
    return ["lot", "open", lot_id, "--gtin", gtin, "--quantity", str(quantity), "--unit", "kg", *window]


def test_open_split_transfer_accept_show(env: Env) -> None:
    code, out = env(*open_args("LOT-A"), key=SUPPLIER)
    assert code == 0, out
    assert "opened lot LOT-A" in out
    code, out = env("lot", "split", "LOT-A", "--child", "LOT-A-1=300", "--child", "LOT-A-2=200", key=SUPPLIER)
    assert code == 0, out
    assert "keeps 500" in out
    assert [env.lots.lot(k).lot_id for k in env.lots.children("LOT-A")] == ["LOT-A-1", "LOT-A-2"]

    code, out = env("lot", "transfer", "LOT-A-1", "--to", DISTRIBUTOR.address, key=SUPPLIER)
    assert code == 0, out
    pending = env.lots.pending_transfer("LOT-A-1")
    assert pending is not None and pending.to == DISTRIBUTOR.address
    code, out = env("lot", "show", "LOT-A-1")
    assert code == 0, out
    assert f"pending transfer: {SUPPLIER.address} -> {DISTRIBUTOR.address}" in out

    code, out = env("lot", "accept", "LOT-A-1", key=DISTRIBUTOR)
    assert code == 0, out
    assert env.lots.custodian("LOT-A-1") == DISTRIBUTOR.address

    code, out = env("lot", "show", "LOT-A-1")
    assert code == 0, out
    assert "lot LOT-A-1" in out and "active" in out
    assert f"GTIN {GTIN}, 300 of 300 kg remaining" in out
    assert "split from LOT-A" in out
    assert f"custodian {DISTRIBUTOR.address}" in out
    assert "pending transfer: none" in out
    chain_lines = [line for line in out.splitlines() if line.startswith("    ")]
    assert len(chain_lines) == 2, out  # the supplier (since LOT-A was opened), then the distributor
    assert "(LOT-A)" in chain_lines[0] and SUPPLIER.address in chain_lines[0]
    assert "(LOT-A-1)" in chain_lines[1] and DISTRIBUTOR.address in chain_lines[1]
    assert "no certificate" in out

    code, out = env("lot", "show", "LOT-A")
    assert code == 0, out
    assert "children: LOT-A-1, LOT-A-2" in out and "500 of 1000 kg remaining" in out

    # a transfer proposed and withdrawn, another proposed and rejected: custody stays
    assert env("lot", "transfer", "LOT-A-2", "--to", DISTRIBUTOR.address, key=SUPPLIER)[0] == 0
    assert env("lot", "cancel", "LOT-A-2", key=SUPPLIER)[0] == 0
    assert env.lots.pending_transfer("LOT-A-2") is None
    assert env("lot", "transfer", "LOT-A-2", "--to", DISTRIBUTOR.address, key=SUPPLIER)[0] == 0
    assert env("lot", "reject", "LOT-A-2", key=DISTRIBUTOR)[0] == 0
    assert env.lots.custodian("LOT-A-2") == SUPPLIER.address and env.lots.pending_transfer("LOT-A-2") is None

    # splitting everything off the rest marks it split
    assert env("lot", "split", "LOT-A", "--child", "LOT-A-3=500", key=SUPPLIER)[0] == 0
    assert env.lots.lot("LOT-A").status is LotStatus.SPLIT


def test_refusals(env: Env) -> None:
    # the GTIN's check digit is checked before anything is sent
    code, out = env(*open_args("LOT-B", gtin="04006381333932"), key=SUPPLIER)
    assert code == 2 and "call for check digit 1" in out
    assert not env.lots.exists("LOT-B")
    # a party not admitted to open lots: the registry's custom error is named
    code, out = env(*open_args("LOT-B"), key=OUTSIDER)
    assert code == 1 and "LotRegistryNotAdmitted" in out
    assert env(*open_args("LOT-B"), key=SUPPLIER)[0] == 0

    code, out = env("lot", "transfer", "LOT-B", "--to", DISTRIBUTOR.address, key=OUTSIDER)
    assert code == 1 and "LotRegistryNotCustodian" in out
    assert env("lot", "transfer", "LOT-B", "--to", DISTRIBUTOR.address, key=SUPPLIER)[0] == 0
    code, out = env("lot", "accept", "LOT-B", key=OUTSIDER)
    assert code == 1 and "LotRegistryNotRecipient" in out
    code, out = env("lot", "cancel", "LOT-B", key=DISTRIBUTOR)
    assert code == 1 and "LotRegistryNotProposer" in out
    assert env.lots.custodian("LOT-B") == SUPPLIER.address

    code, out = env("lot", "split", "LOT-B", "--child", "X=5000", key=SUPPLIER)
    assert code == 1 and "LotRegistryTransferPending" in out
    code, out = env("lot", "split", "LOT-B", "--child", "X", key=SUPPLIER)
    assert code == 2 and "ID=QUANTITY" in out
    code, out = env("lot", "transfer", "LOT-B", "--to", "0x1234", key=SUPPLIER)
    assert code == 2 and "not an Ethereum address" in out
    code, out = env("lot", "show", "LOT-NONE")
    assert code == 1 and "no such lot" in out


def test_parse_metric() -> None:
    assert parse_metric("temp_c=2..8") == SpecMetric(name="temp_c", min=2 * M, max=8 * M)
    assert parse_metric("weight_g=990.5..1010.000001:optional") == SpecMetric(
        name="weight_g", min=990_500_000, max=1_010_000_001, required=False
    )
    assert parse_metric("t=-40..-0.5") == SpecMetric(name="t", min=-40 * M, max=-500_000)
    for bad in ("temp_c", "Temp=1..2", "t=2..1", "t=a..b", "t=1..2:maybe"):
        with pytest.raises(Exception, match=r"NAME=MIN\.\.MAX|minimum|number|suffix"):
            parse_metric(bad)


def test_spec_set_show(env: Env) -> None:
    # the certifier's admin assigns the product's spec owner (issue 12.7); nobody else may
    code, out = env("spec", "owner", "--gtin", GTIN, "--owner", ENTERPRISE.address, key=OUTSIDER)
    assert code == 1 and "AccessControlUnauthorizedAccount" in out
    code, out = env("spec", "owner", "--gtin", GTIN, "--owner", ENTERPRISE.address, key=ADMIN)
    assert code == 0 and f"spec owner {ENTERPRISE.address}" in out, out
    args = ["spec", "set", "--gtin", GTIN, "--metric", "temp_c=2..8", "--metric", "humidity=30..60.5"]
    code, out = env(*args, "--metric", "weight_g=990..1010:optional", "--min-samples", "2", key=ENTERPRISE)
    assert code == 0, out
    assert "spec version 1" in out
    spec = env.certifier.spec(int(GTIN))
    assert spec.min_samples == 2 and spec.set_by == ENTERPRISE.address
    assert spec.metrics == (
        SpecMetric(name="humidity", min=30 * M, max=60_500_000),
        SpecMetric(name="temp_c", min=2 * M, max=8 * M),
        SpecMetric(name="weight_g", min=990 * M, max=1010 * M, required=False),
    )
    code, out = env(
        "spec", "set", "--gtin", GTIN, "--metric", "temp_c=0..10", "--min-samples", "5", key=ENTERPRISE
    )
    assert code == 0 and "spec version 2" in out

    code, out = env("spec", "show", "--gtin", GTIN)
    assert code == 0, out
    assert "spec version 2" in out and "at least 5 samples" in out and "temp_c = 0 .. 10 (required)" in out
    code, out = env("spec", "show", "--gtin", GTIN, "--version", "1")
    assert code == 0, out
    assert "humidity = 30 .. 60.5 (required)" in out and "weight_g = 990 .. 1010 (optional)" in out

    # another party is not the spec's owner; a version that does not exist
    code, out = env("spec", "set", "--gtin", GTIN, "--metric", "t=0..1", "--min-samples", "1", key=OUTSIDER)
    assert code == 1 and "QualityCertifierNotAdmitted" in out
    code, out = env("spec", "show", "--gtin", GTIN, "--version", "3")
    assert code == 1 and "QualityCertifierUnknownSpec" in out
    code, out = env("spec", "show", "--gtin", "00036000291452")
    assert code == 1 and "no spec" in out


# ---------------------------------------------------------------- certification


class Readings:
    """Enrolled devices signing readings of a lot, anchored in batches."""

    def __init__(self, env: Env) -> None:
        self.env = env
        self.consortium = TestConsortium(env.chain, env.deployment)
        self.devices: dict[str, DeviceSigner] = {
            "GW-CLI-A": self.consortium.enroll("GW-CLI-A", "secp256k1"),
            "GW-CLI-B": self.consortium.enroll("GW-CLI-B", "secp256k1"),
        }
        self.anchor = env.deployment.contract(env.chain, "ReadingAnchor")
        # devices count from their enrollment (issue 12.2: at most 60 s before its block)
        self.ts = int(env.chain.block("latest")["timestamp"]) * 1000 - 50_000

    def sign(self, device: str, metrics: dict[str, float], lot: str | None) -> Submission:
        self.ts += 1000
        return self.devices[device].sign(metrics, ts_ms=self.ts, lot_id=lot)

    def anchor_batch(self, subs: list[Submission]) -> tuple[int, MerkleTree]:
        tree = MerkleTree.build(s.digest for s in subs)
        self.env.chain.transact(self.anchor.functions.anchorBatch(tree.root, len(subs)), ADMIN)
        return int(self.env.chain.call(self.anchor.functions.batchCount())), tree

    def package(self, tmp: Path, lot: str, values: list[dict[str, float]]) -> Path:
        """The lot's readings over two batches (mixed with readings of no lot), as a package file."""
        mine = [self.sign(f"GW-CLI-{'AB'[i % 2]}", v, lot) for i, v in enumerate(values)]
        half = len(mine) // 2
        id1, tree1 = self.anchor_batch([*mine[:half], self.sign("GW-CLI-A", {"temp_c": 1}, None)])
        id2, tree2 = self.anchor_batch([self.sign("GW-CLI-B", {"temp_c": 1}, None), *mine[half:]])
        batches = [batch_readings(id1, tree1, mine[:half]), batch_readings(id2, tree2, mine[half:])]
        path = tmp / f"{lot}.package.json"
        path.write_text(json.dumps(package_json(lot, batches), indent=2), encoding="utf-8")
        assert load_package(path) == (lot, [_listify(b) for b in batches])
        return path


def _listify(batch: tuple[Any, ...]) -> tuple[Any, ...]:
    batch_id, readings, sigs, proof, flags = batch
    return (
        batch_id,
        [(r[0], r[1], r[2], r[3], list(r[4]), list(r[5])) for r in readings],
        [bytes(s) for s in sigs],
        [bytes(p) for p in proof],
        list(flags),
    )


def test_certify_from_package(env: Env, tmp_path: Path) -> None:
    for lot in ("LOT-QC-1", "LOT-QC-2"):
        assert env(*open_args(lot), key=FACTORY)[0] == 0  # the owner of the devices measuring it
    spec = ["--metric", "temp_c=2..8", "--metric", "humidity=30..60", "--min-samples", "2"]
    env.certifier.set_spec_owner(ADMIN, GTIN, ENTERPRISE.address)
    assert env("spec", "set", "--gtin", GTIN, *spec, key=ENTERPRISE)[0] == 0
    readings = Readings(env)

    good = readings.package(
        tmp_path,
        "LOT-QC-1",
        [{"temp_c": 4.5, "humidity": 45}, {"temp_c": 2, "humidity": 60}, {"temp_c": 7.9, "humidity": 30.5}],
    )
    code, out = env("lot", "certify", "LOT-QC-1", "--package", str(good), "--dry-run", key=AUDITOR)
    assert code == 0, out
    assert "would be certified" in out and "dry run" in out
    assert env.certifier.certificate("LOT-QC-1").status is CertificateStatus.NONE

    # a package of another lot is refused before anything is sent
    code, out = env("lot", "certify", "LOT-QC-2", "--package", str(good), key=AUDITOR)
    assert code == 1 and "lot.package" in out and "LOT-QC-1" in out

    code, out = env("lot", "certify", "LOT-QC-1", "--package", str(good), key=AUDITOR)
    assert code == 0, out
    assert "certified against spec version 1 from 3 samples" in out
    cert = env.certifier.certificate("LOT-QC-1")
    assert cert.certified and cert.samples == 3 and cert.submitter == AUDITOR.address
    code, out = env("lot", "show", "LOT-QC-1")
    assert code == 0 and "certified against spec version 1" in out

    bad = readings.package(
        tmp_path, "LOT-QC-2", [{"temp_c": 4, "humidity": 45}, {"temp_c": 8.25, "humidity": 45}]
    )
    code, out = env("lot", "certify", "LOT-QC-2", "--package", str(bad), key=AUDITOR)
    assert code == 0, out
    assert "would be rejected" in out
    assert "rejected against spec version 1: metric temp_c value 8.25 above its maximum 8" in out
    cert = env.certifier.certificate("LOT-QC-2")
    assert cert.status is CertificateStatus.REJECTED and cert.reason is RejectReason.ABOVE_MAX
    assert (cert.metric, cert.value, cert.bound) == ("temp_c", 8_250_000, 8 * M)

    # a violation on record stands against good readings under the same spec version: the error is named
    fine = readings.package(
        tmp_path, "LOT-QC-2", [{"temp_c": 4, "humidity": 45}, {"temp_c": 5, "humidity": 40}]
    )
    code, out = env("lot", "certify", "LOT-QC-2", "--package", str(fine), key=AUDITOR)
    assert code == 1 and "QualityCertifierVerdictStands" in out
    assert env.certifier.certificate("LOT-QC-2").status is CertificateStatus.REJECTED


def test_certify_malformed_package(env: Env, tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"batches": [{"batch_id": 1, "readings": "x"}]}), encoding="utf-8")
    code, out = env("lot", "certify", "LOT-X", "--package", str(path), key=AUDITOR)
    assert code == 1 and "batches[0].readings is missing or not a list" in out
    code, out = env("lot", "certify", "LOT-X", "--package", str(tmp_path / "none.json"), key=AUDITOR)
    assert code == 1 and "no certification package" in out


def test_lot_ids_are_scoped_to_their_issuer(env: Env) -> None:
    """Issue 11.2: two suppliers may each have a lot "LOT-SAME"; the id alone is then ambiguous."""
    assert env(*open_args("LOT-SAME", quantity=7), key=SUPPLIER)[0] == 0
    code, out = env("lot", "show", "LOT-SAME")
    assert code == 0 and f"issued by {SUPPLIER.address}" in out, out
    code, out = env(*open_args("LOT-SAME", quantity=9), key=FACTORY)
    assert code == 0, out
    code, out = env("lot", "show", "LOT-SAME")
    assert code == 1 and "2 parties have a lot 'LOT-SAME'" in out, out
    code, out = env("lot", "show", "LOT-SAME", "--issuer", FACTORY.address)
    assert code == 0 and "9 of 9 kg" in out and f"issued by {FACTORY.address}" in out, out
    code, out = env(
        "lot", "transfer", "LOT-SAME", "--to", DISTRIBUTOR.address, "--issuer", SUPPLIER.address, key=SUPPLIER
    )
    assert code == 0, out
    assert env.lots.pending_transfer("LOT-SAME", issuer=SUPPLIER.address) is not None
    assert env.lots.pending_transfer("LOT-SAME", issuer=FACTORY.address) is None
    code, out = env("lot", "show", "LOT-SAME", "--issuer", "nope")
    assert code != 0 and "not an Ethereum address" in out


# ---------------------------------------------------------------- transformation (lineage)

GTIN_FINISHED = "00036000291452"
WINDOW = ["--from", str(T0), "--to", str(T0 + 3_600_000)]


def test_transform_and_show(env: Env) -> None:
    # the supplier's LOT-RAW goes to the factory, which also opens LOT-OWN and holds both
    assert env(*open_args("LOT-RAW", 1000), key=SUPPLIER)[0] == 0
    gate = env.chain.call(env.lots.contract.functions.admissionGate())
    admit = env.chain.contract("StaticAdmissionGate", gate).functions.setAdmitted
    env.chain.transact(admit(FACTORY.address, TRANSFER_ACTION, True), ADMIN)  # the factory may receive lots
    assert env("lot", "transfer", "LOT-RAW", "--to", FACTORY.address, key=SUPPLIER)[0] == 0
    assert env("lot", "accept", "LOT-RAW", key=FACTORY)[0] == 0
    assert env(*open_args("LOT-OWN", 50), key=FACTORY)[0] == 0
    code, out = env(
        "lot",
        "transform",
        "--input",
        "LOT-RAW:300",
        "--input",
        "LOT-OWN:50:kg",
        "--output",
        f"FIN-1:{GTIN_FINISHED}:10:pcs",
        "--output",
        f"FIN:2:{GTIN_FINISHED}:4:box",  # a lot id may hold ':'
        *WINDOW,
        key=FACTORY,
    )
    assert code == 0, out
    assert "transformation 1: consumed 300 kg of LOT-RAW, 50 kg of LOT-OWN into FIN-1 (10 pcs" in out
    raw = env.lots.key("LOT-RAW")
    fin1, fin2 = env.lots.key("FIN-1"), env.lots.key("FIN:2")
    assert env.lots.inputs_of(fin1) == [(raw, 300), (env.lots.key("LOT-OWN"), 50)]
    assert env.lots.outputs_of(raw) == [fin1, fin2]
    assert (env.lots.lot("FIN:2").unit, env.lots.lot("LOT-OWN").status) == ("box", LotStatus.CONSUMED)

    code, out = env("lot", "show", "FIN-1")
    assert code == 0, out
    assert "made from (transformation 1, " in out and "): 300 kg of LOT-RAW, 50 kg of LOT-OWN" in out
    assert "consumed: none" in out
    code, out = env("lot", "show", "LOT-RAW")
    assert code == 0, out
    assert "GTIN 04006381333931, 700 of 1000 kg remaining" in out
    assert "consumed: 300 kg" in out and "300 kg into FIN-1, FIN:2 (transformation 1)" in out
    assert "made from" not in out
    # an input named by its key, declared in its unit
    code, out = env(
        "lot", "transform", "--input", f"0x{raw.hex()}:700:kg", "--output", f"FIN-3:{GTIN_FINISHED}:1:pcs",
        *WINDOW, key=FACTORY,
    )  # fmt: skip
    assert code == 0, out
    code, out = env("lot", "show", "LOT-RAW")
    assert "0 of 1000 kg remaining" in out and "consumed: 1000 kg" in out and "lot LOT-RAW (key" in out
    assert "700 kg into FIN-3 (transformation 2)" in out


def test_transform_refusals(env: Env) -> None:
    assert env(*open_args("LOT-RAW", 100), key=FACTORY)[0] == 0
    assert env(*open_args("LOT-THEIRS", 100), key=SUPPLIER)[0] == 0
    good_out = f"FIN-1:{GTIN_FINISHED}:10:pcs"

    def transform(
        *inputs: str, outputs: tuple[str, ...] = (good_out,), key: LocalAccount = FACTORY
    ) -> tuple[int, str]:
        args = [a for i in inputs for a in ("--input", i)] + [a for o in outputs for a in ("--output", o)]
        return env("lot", "transform", *args, *WINDOW, key=key)

    # refused before anything is sent (exit 2)
    for inputs, outputs, message in [
        (("LOT-RAW",), (good_out,), "not LOT:QUANTITY[:UNIT]"),
        (("LOT-RAW:0",), (good_out,), "not LOT:QUANTITY[:UNIT]"),
        (("LOT-RAW:x:kg",), (good_out,), "not LOT:QUANTITY[:UNIT]"),
        (("LOT-RAW:1",), ("FIN-1:10:pcs",), "not LOT:GTIN:QUANTITY:UNIT"),
        (("LOT-RAW:1",), (f"FIN-1:{GTIN_FINISHED}:0:pcs",), "not LOT:GTIN:QUANTITY:UNIT"),
        (("LOT-RAW:1",), ("FIN-1:00036000291453:1:pcs",), "call for check digit 2"),
        (("LOT-RAW:1",), (f"FIN-1:{GTIN_FINISHED}:1:" + "u" * 33,), "not 1..32 ASCII"),
        (("LOT-RAW:1",), (good_out, good_out), "output lot id is given twice"),
        (("LOT-RAW:1", "LOT-RAW:2"), (good_out,), "input lot is given twice"),
    ]:
        code, out = transform(*inputs, outputs=outputs)
        assert code == 2 and message in out, (inputs, outputs, out)
    code, out = env("lot", "transform", "--input", "LOT-RAW:1", "--output", good_out, key=FACTORY)
    assert code == 2 and "--from" in out
    # refused by the registry, which names its custom error (exit 1)
    for inputs, key, error in [
        (("LOT-RAW:101",), FACTORY, "LotRegistryConsumptionExceedsRemaining"),
        (("LOT-RAW:1:pcs",), FACTORY, "LotRegistryUnitMismatch"),
        (("LOT-THEIRS:1",), FACTORY, "LotRegistryNotCustodian"),
        (("LOT-RAW:1",), OUTSIDER, "LotRegistryNotAdmitted"),
    ]:
        code, out = transform(*inputs, key=key)
        assert code == 1 and error in out, (inputs, out)
    code, out = transform("LOT-NONE:1")
    assert code == 1 and "no lot 'LOT-NONE' on chain" in out
    assert env.lots.transformation_count() == 0
    assert env.lots.lot("LOT-RAW").remaining == 100 and not env.lots.exists("FIN-1")
