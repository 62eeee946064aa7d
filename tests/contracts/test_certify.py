"""QualityCertifier on both chains: versioned specs, certification of a lot from readings of P-256 and
secp256k1 devices anchored in several batches (multiproofs), every refusal of forged or unproven input
with its exact error and nothing recorded, and the verdicts (certified; rejected for each reason naming
the metric, value and bound) with the rules that protect a lot's standing."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from support import TestConsortium, reverts
from web3.logs import DISCARD

from contracts.certifier import (
    SPEC_ACTION,
    Certificate,
    CertificateStatus,
    QualityCertifierClient,
    RejectReason,
    SpecMetric,
    batch_readings,
)
from contracts.chain import Chain
from contracts.lots import (
    OPEN_ACTION,
    TRANSFER_ACTION,
    LotRegistryClient,
    deploy_supply_chain,
    lot_id_hash,
    lot_key,
    padded_ascii,
)
from contracts.registry import device_id_hash
from device_attestation.keys import DeviceKey
from device_attestation.merkle import MerkleTree
from device_attestation.sdk import DeviceSigner, Submission
from simulation.factories import simulate_factory
from simulation.kinds import SOLAR_CELL, FactorySpec, Health

#: the contract's own rules: on anvil alone (tests/conftest.py CHAIN_KINDS)
pytestmark = pytest.mark.contract_logic

GTIN = "04006381333931"
OTHER_GTIN = "00036000291452"
LOT = "LOT-QC-0001"
M = 1_000_000  # fixed point: value x 10^6
SPEC = [
    SpecMetric(name="temp_c", min=2 * M, max=8 * M),
    SpecMetric(name="humidity", min=30 * M, max=60 * M),
    SpecMetric(name="weight_g", min=990 * M, max=1010 * M, required=False),
]
GOOD = {"temp_c": 4.5, "humidity": 45}
NO_CERTIFICATE = Certificate(
    status=CertificateStatus.NONE,
    reason=RejectReason.NONE,
    spec_version=0,
    samples=0,
    decided_at=0,
    submitter="0x" + "00" * 20,
    metric="",
    value=0,
    bound=0,
    evidence=bytes(32),
)


@dataclass
class QC:
    chain: Chain
    consortium: TestConsortium
    gate: Any
    anchor: Any
    lots: LotRegistryClient
    certifier: QualityCertifierClient
    operator: LocalAccount
    supplier: LocalAccount
    enterprise: LocalAccount
    auditor: LocalAccount
    devices: dict[str, DeviceSigner]
    ts: int

    def sign(self, device: str, metrics: dict[str, float], *, lot: str | None = LOT) -> Submission:
        self.ts += 10  # readings 10 ms apart from the devices' enrollment on (none count before it)
        return self.devices[device].sign(metrics, ts_ms=self.ts, lot_id=lot)

    def anchor_batch(self, subs: list[Submission]) -> tuple[int, MerkleTree]:
        mine_after(self, self.ts)  # anchored after every reading signed so far (they are dated ~now)
        tree = MerkleTree.build(s.digest for s in subs)
        self.chain.transact(self.anchor.functions.anchorBatch(tree.root, len(subs)), self.operator)
        return int(self.chain.call(self.anchor.functions.batchCount())), tree

    def certify(self, batches: list[tuple[Any, ...]], lot: str | bytes = LOT) -> Any:
        return self.certifier.certify_lot(self.auditor, lot, batches)

    def refused(
        self, error: str, batches: list[tuple[Any, ...]], lot: str | bytes = LOT, **args: Any
    ) -> None:
        """The submission reverts with ``error`` and the lot's standing is unchanged."""
        before = self.certifier.certificate(lot)
        with reverts(error, **args):
            self.certify(batches, lot)
        assert self.certifier.certificate(lot) == before

    def set_spec(self, metrics: list[SpecMetric] = SPEC, min_samples: int = 2, gtin: str = GTIN) -> Any:
        return self.certifier.set_spec(self.enterprise, gtin, metrics, min_samples=min_samples)


def make_qc(suite: Any, *, devices: dict[str, str]) -> QC:
    chain: Chain = suite.chain
    op = suite.operator
    gate_address = chain.deploy("StaticAdmissionGate", op, op.address).contract_address
    assert gate_address is not None
    addresses = deploy_supply_chain(chain, op, deployment=suite.deployment, gate_address=gate_address)
    gate = chain.contract("StaticAdmissionGate", gate_address)
    # the supplier owns the devices (the consortium's factory): its devices speak for its lots
    supplier, enterprise, auditor = suite.accounts[1], suite.accounts[5], suite.accounts[7]
    chain.transact(gate.functions.setAdmitted(supplier.address, OPEN_ACTION, True), op)
    chain.transact(gate.functions.setAdmitted(enterprise.address, SPEC_ACTION, True), op)
    consortium = TestConsortium(chain, suite.deployment)
    certifier = QualityCertifierClient(chain, addresses["QualityCertifier"])
    certifier.set_spec_owner(op, GTIN, enterprise.address)  # the admin assigns the buyer its product's bar
    qc = QC(
        chain=chain,
        consortium=consortium,
        gate=gate,
        anchor=suite.contract("ReadingAnchor"),
        lots=LotRegistryClient(chain, addresses["LotRegistry"]),
        certifier=certifier,
        operator=op,
        supplier=supplier,
        enterprise=enterprise,
        auditor=auditor,
        devices={name: consortium.enroll(name, scheme, active_from_ms=0) for name, scheme in devices.items()},
        ts=0,
    )
    # devices count from their enrollment block (issue 12.2): readings are dated from the latest on
    qc.ts = max(consortium.registry.device(name).active_from_ms for name in devices)
    for lot_id in (LOT, "LOT-OTHER"):
        qc.lots.open_lot(
            supplier, lot_id=lot_id, gtin=GTIN, quantity=500, unit="kg", produced_from_ms=0, produced_to_ms=1
        )
    return qc


@pytest.fixture
def qc(suite: Any) -> QC:
    """Two secp256k1 gateways (cheap to verify everywhere), the spec set, two lots open."""
    qc = make_qc(suite, devices={"GW-K1-A": "secp256k1", "GW-K1-B": "secp256k1"})
    qc.set_spec()
    return qc


def good_batches(qc: QC) -> tuple[list[Submission], list[Submission], list[tuple[Any, ...]]]:
    """Two anchored batches holding the lot's readings among others; the lot's readings as submitted."""
    mine1 = [
        qc.sign("GW-K1-A", GOOD),
        qc.sign("GW-K1-B", {**GOOD, "weight_g": 1000}),
        qc.sign("GW-K1-A", GOOD),
    ]
    others1 = [qc.sign("GW-K1-A", GOOD, lot="LOT-OTHER"), qc.sign("GW-K1-B", GOOD, lot=None)]
    id1, tree1 = qc.anchor_batch(mine1[:2] + others1 + mine1[2:])
    mine2 = [qc.sign("GW-K1-B", {"temp_c": 7.9, "humidity": 30, "other": -5})]
    id2, tree2 = qc.anchor_batch([*mine2, qc.sign("GW-K1-A", GOOD, lot="LOT-OTHER")])
    return mine1, mine2, [batch_readings(id1, tree1, mine1), batch_readings(id2, tree2, mine2)]


def with_reading(batch: tuple[Any, ...], index: int, change: Callable[[list[Any]], None]) -> tuple[Any, ...]:
    readings = [list(r) for r in batch[1]]
    change(readings[index])
    return (batch[0], [tuple(r) for r in readings], *batch[2:])


# ---------------------------------------------------------------- specs


def test_spec_versions(qc: QC) -> None:
    c = qc.certifier
    gtin = int(GTIN)
    assert c.latest_spec_version(gtin) == 1
    spec = c.spec(gtin)
    assert spec.version == 1 and spec.min_samples == 2 and spec.set_by == qc.enterprise.address
    assert [m.name for m in spec.metrics] == ["humidity", "temp_c", "weight_g"]  # sorted by the client
    assert {m.name: m for m in spec.metrics} == {m.name: m for m in SPEC}
    result = qc.set_spec([SpecMetric(name="temp_c", min=0, max=10 * M)], min_samples=5)
    (event,) = c.contract.events.SpecSet().process_receipt(result.receipt, errors=DISCARD)
    assert (event["args"]["gtin"], event["args"]["version"], event["args"]["by"]) == (
        gtin,
        2,
        qc.enterprise.address,
    )
    assert event["args"]["minSamples"] == 5
    assert c.latest_spec_version(gtin) == 2
    assert c.spec(gtin).metrics == (SpecMetric(name="temp_c", min=0, max=10 * M),)
    assert c.spec(gtin, 1) == spec  # earlier versions stay readable
    for version in (0, 3):
        with reverts("QualityCertifierUnknownSpec", gtin=gtin, version=version):
            c.spec(gtin, version)
    assert c.latest_spec_version(int(OTHER_GTIN)) == 0


def test_spec_refusals_change_nothing(qc: QC) -> None:
    c = qc.certifier
    fn = c.contract.functions.setSpec
    t, h = padded_ascii("temp_c"), padded_ascii("humidity")
    ok = (t, 0, 1, True)
    cases: list[tuple[list[tuple[bytes, int, int, bool]], int, str, dict[str, Any]]] = [
        ([], 1, "QualityCertifierInvalidMetricCount", {"count": 0}),
        (
            [(bytes([i + 1]) + bytes(31), 0, 1, True) for i in range(33)],
            1,
            "QualityCertifierInvalidMetricCount",
            {"count": 33},
        ),
        ([ok], 0, "QualityCertifierZeroMinSamples", {}),
        ([ok, (h, 0, 1, True)], 1, "QualityCertifierMetricsNotSorted", {"index": 1, "name": h}),
        ([ok, ok], 1, "QualityCertifierMetricsNotSorted", {"index": 1, "name": t}),
        ([(bytes(32), 0, 1, True)], 1, "QualityCertifierMetricsNotSorted", {"index": 0, "name": bytes(32)}),
        ([(t, 5, 4, True)], 1, "QualityCertifierInvalidBounds", {"name": t, "min": 5, "max": 4}),
        ([(h, 0, 1, False), (t, 0, 1, False)], 1, "QualityCertifierNoRequiredMetric", {}),
    ]
    for metrics, min_samples, error, args in cases:
        with reverts(error, **args):
            qc.chain.transact(fn(GTIN, metrics, min_samples), qc.enterprise)
    with reverts("GtinInvalidCheckDigit", expected=1, found=0):
        qc.chain.transact(fn("04006381333930", [ok], 1), qc.enterprise)
    with reverts("QualityCertifierNotAdmitted", party=qc.auditor.address, action=SPEC_ACTION):
        qc.chain.transact(fn(GTIN, [ok], 1), qc.auditor)
    # another admitted enterprise cannot rewrite a product spec it does not own
    rival = qc.consortium.factory
    qc.chain.transact(qc.gate.functions.setAdmitted(rival.address, SPEC_ACTION, True), qc.operator)
    with reverts(
        "QualityCertifierNotSpecOwner", gtin=int(GTIN), owner=qc.enterprise.address, caller=rival.address
    ):
        qc.chain.transact(fn(GTIN, [ok], 1), rival)
    assert c.latest_spec_version(int(GTIN)) == 1
    # the admin may hand a product over
    set_owner = c.contract.functions.setSpecOwner(int(GTIN), rival.address)
    with reverts("AccessControlUnauthorizedAccount", account=qc.enterprise.address):
        qc.chain.transact(set_owner, qc.enterprise)
    with reverts("GtinInvalidCheckDigit"):
        qc.chain.transact(c.contract.functions.setSpecOwner(4006381333930, rival.address), qc.operator)
    qc.chain.transact(set_owner, qc.operator)
    qc.chain.transact(fn(GTIN, [ok], 1), rival)
    assert c.latest_spec_version(int(GTIN)) == 2


def test_issue12_spec_ownership_is_the_admins_assignment(qc: QC) -> None:
    """Issue 12.7: the first party admitted for the spec action owned a GTIN's specs, so a supplier
    could own its own product's quality bar, or squat a competitor's GTIN."""
    c, fn = qc.certifier, qc.certifier.contract.functions.setSpec
    ok = (padded_ascii("temp_c"), 0, 1, True)
    squatter = qc.supplier  # the supplier of OTHER_GTIN's lots, admitted for the spec action
    qc.chain.transact(qc.gate.functions.setAdmitted(squatter.address, SPEC_ACTION, True), qc.operator)
    zero = "0x" + "00" * 20
    for party in (squatter, qc.enterprise):  # being first, or owning another product's bar, is no title
        with reverts("QualityCertifierNotSpecOwner", gtin=int(OTHER_GTIN), owner=zero, caller=party.address):
            qc.chain.transact(fn(OTHER_GTIN, [ok], 1), party)
    assert c.spec_owner(int(OTHER_GTIN)) is None and c.latest_spec_version(int(OTHER_GTIN)) == 0
    # only the admin assigns it (SpecOwnerSet), and only the assignee then sets the product's spec
    with reverts("AccessControlUnauthorizedAccount", account=squatter.address):
        c.set_spec_owner(squatter, OTHER_GTIN, squatter.address)
    result = c.set_spec_owner(qc.operator, OTHER_GTIN, qc.enterprise.address)
    (event,) = c.contract.events.SpecOwnerSet().process_receipt(result.receipt, errors=DISCARD)
    assert dict(event["args"]) == {"gtin": int(OTHER_GTIN), "owner": qc.enterprise.address}
    with reverts("QualityCertifierNotSpecOwner", owner=qc.enterprise.address, caller=squatter.address):
        qc.chain.transact(fn(OTHER_GTIN, [ok], 1), squatter)
    qc.chain.transact(fn(OTHER_GTIN, [ok], 1), qc.enterprise)
    assert c.spec(int(OTHER_GTIN)).set_by == qc.enterprise.address
    # withdrawn (zero): nobody sets it, not even its former owner; its versions stay readable
    c.set_spec_owner(qc.operator, OTHER_GTIN, None)
    with reverts("QualityCertifierNotSpecOwner", owner=zero, caller=qc.enterprise.address):
        qc.chain.transact(fn(OTHER_GTIN, [ok], 1), qc.enterprise)
    assert c.latest_spec_version(int(OTHER_GTIN)) == 1


# ---------------------------------------------------------------- certification


def test_certify_p256_and_secp256k1_across_two_batches(suite: Any) -> None:
    qc = make_qc(suite, devices={"SN-P256-QC": "p256", "GW-K1-QC": "secp256k1"})
    qc.set_spec()
    mine1 = [qc.sign("SN-P256-QC", {**GOOD, "weight_g": 1001.5}), qc.sign("GW-K1-QC", GOOD)]
    id1, tree1 = qc.anchor_batch([*mine1, qc.sign("GW-K1-QC", GOOD, lot="LOT-OTHER")])
    mine2 = [qc.sign("GW-K1-QC", {"temp_c": 2, "humidity": 60}), qc.sign("SN-P256-QC", GOOD)]
    id2, tree2 = qc.anchor_batch([qc.sign("SN-P256-QC", GOOD, lot=None), *mine2])
    batches = [batch_readings(id1, tree1, mine1), batch_readings(id2, tree2, mine2)]

    assert qc.certifier.preview(qc.auditor.address, LOT, batches) is CertificateStatus.CERTIFIED
    assert qc.certifier.certificate(LOT) == NO_CERTIFICATE  # a preview records nothing
    result = qc.certify(batches)
    (event,) = qc.certifier.contract.events.LotCertified().process_receipt(result.receipt, errors=DISCARD)
    assert dict(event["args"]) == {
        "lotId": lot_key(LOT, qc.supplier.address),
        "gtin": int(GTIN),
        "specVersion": 1,
        "samples": 4,
        "by": qc.auditor.address,
    }
    assert not qc.certifier.contract.events.LotRejected().process_receipt(result.receipt, errors=DISCARD)
    cert = qc.certifier.certificate(LOT)
    assert cert == dataclasses.replace(
        NO_CERTIFICATE,
        status=CertificateStatus.CERTIFIED,
        spec_version=1,
        samples=4,
        decided_at=qc.chain.block(result.block_number)["timestamp"],
        submitter=qc.auditor.address,
    )
    assert qc.chain.call(qc.certifier.contract.functions.isCertified(lot_key(LOT, qc.supplier.address)))
    assert qc.certifier.certificate("LOT-OTHER") == NO_CERTIFICATE


def test_certify_secp256k1_and_views(qc: QC) -> None:
    _, _, batches = good_batches(qc)
    qc.certify(batches)
    cert = qc.certifier.certificate(LOT)
    assert (cert.status, cert.samples, cert.spec_version) == (CertificateStatus.CERTIFIED, 4, 1)
    c = qc.certifier.contract.functions
    assert qc.chain.call(c.anchor()) == qc.anchor.address
    assert qc.chain.call(c.lotRegistry()) == qc.lots.address
    assert qc.chain.call(c.admissionGate()) == qc.gate.address


def test_certified_against_the_latest_spec_version(qc: QC) -> None:
    qc.set_spec([SpecMetric(name="temp_c", min=0, max=10 * M)], min_samples=1)
    _, _, batches = good_batches(qc)
    result = qc.certify(batches)
    (event,) = qc.certifier.contract.events.LotCertified().process_receipt(result.receipt, errors=DISCARD)
    assert event["args"]["specVersion"] == 2
    assert qc.certifier.certificate(LOT).spec_version == 2


# ---------------------------------------------------------------- refusals: nothing recorded


def test_reading_of_another_lot_is_refused(qc: QC) -> None:
    mine = [qc.sign("GW-K1-A", GOOD), qc.sign("GW-K1-B", GOOD, lot="LOT-OTHER")]
    batch_id, tree = qc.anchor_batch(mine)
    batch = batch_readings(batch_id, tree, mine)  # both genuine and anchored: one is not this lot's
    index = next(i for i, r in enumerate(batch[1]) if r[3] == lot_id_hash("LOT-OTHER"))
    qc.refused(
        "QualityCertifierWrongLot",
        [batch],
        batchId=batch_id,
        index=index,
        readingLotId=lot_id_hash("LOT-OTHER"),
        lotId=lot_id_hash(LOT),
    )
    # a reading with no lot at all
    none = [qc.sign("GW-K1-A", GOOD, lot=None)]
    none_id, none_tree = qc.anchor_batch(none)
    qc.refused("QualityCertifierWrongLot", [batch_readings(none_id, none_tree, none)], readingLotId=bytes(32))
    # the other lot's readings submitted for it are fine, and change nothing of this lot
    others = [qc.sign("GW-K1-A", GOOD, lot="LOT-OTHER"), qc.sign("GW-K1-B", GOOD, lot="LOT-OTHER")]
    other_id, other_tree = qc.anchor_batch(others)
    qc.certify([batch_readings(other_id, other_tree, others)], lot="LOT-OTHER")
    assert qc.certifier.certificate("LOT-OTHER").certified
    assert qc.certifier.certificate(LOT) == NO_CERTIFICATE


def test_proof_for_another_batch_or_tampered_is_refused(qc: QC) -> None:
    mine1, _, batches = good_batches(qc)
    b1, b2 = batches
    root1 = qc.chain.call(qc.anchor.functions.batch(b1[0]))[0]
    root2 = qc.chain.call(qc.anchor.functions.batch(b2[0]))[0]
    # batch 1's readings and proof presented as batch 2
    qc.refused("QualityCertifierNotIncluded", [(b2[0], *b1[1:])], batchId=b2[0], root=root2)
    # a flipped proof node
    flipped = bytearray(b1[3][0])
    flipped[5] ^= 1
    qc.refused(
        "QualityCertifierNotIncluded", [(*b1[:3], [bytes(flipped), *b1[3][1:]], b1[4]), b2], root=root1
    )
    # a flipped flag: sizes still fit, but not one proof node per false flag
    flags = list(b1[4])
    i = flags.index(False)
    flags[i] = True
    qc.refused(
        "QualityCertifierMalformedProof",
        [(*b1[:4], flags), b2],
        batchId=b1[0],
        leaves=3,
        proof=len(b1[3]),
        flags=len(flags),
        falseFlags=len(b1[3]) - 1,
    )
    # two flags swapped: a well-formed multiproof of something else
    assert True in b1[4] and False in b1[4]
    j = list(b1[4]).index(True)
    flags = list(b1[4])
    flags[i], flags[j] = flags[j], flags[i]
    qc.refused("QualityCertifierNotIncluded", [(*b1[:4], flags), b2], batchId=b1[0], root=root1)
    # a lying value: a genuine reading with its value changed is not in the batch
    lying = with_reading(b1, 0, lambda r: r.__setitem__(5, [r[5][0] - 1, *r[5][1:]]))
    qc.refused("QualityCertifierNotIncluded", [lying, b2], batchId=b1[0], root=root1)
    # a reading dropped without fixing the proof
    dropped = (b1[0], b1[1][1:], b1[2][1:], b1[3], b1[4])
    qc.refused("QualityCertifierMalformedProof", [dropped], batchId=b1[0], leaves=2, proof=len(b1[3]))
    # readings out of the multiproof's order
    swapped = (b1[0], [b1[1][2], b1[1][1], b1[1][0]], [b1[2][2], b1[2][1], b1[2][0]], b1[3], b1[4])
    qc.refused("QualityCertifierNotIncluded", [swapped], batchId=b1[0])
    assert len(mine1) == 3


def test_unknown_batch_lot_spec_and_empty_input_are_refused(qc: QC) -> None:
    _, _, batches = good_batches(qc)
    b1 = batches[0]
    qc.refused("ReadingAnchorUnknownBatch", [(99, *b1[1:])], batchId=99)
    qc.refused("ReadingAnchorUnknownBatch", [(0, *b1[1:])], batchId=0)
    nope = lot_key("LOT-NOPE", qc.supplier.address)
    qc.refused("LotRegistryUnknownLot", batches, lot=nope, lotId=nope)
    qc.refused("QualityCertifierNoReadings", [], lotId=lot_key(LOT, qc.supplier.address), batchId=0)
    qc.refused("QualityCertifierNoReadings", [(b1[0], [], [], [b1[3][0]], [])], batchId=b1[0])
    qc.refused(
        "QualityCertifierSignatureCount", [(b1[0], b1[1], b1[2][:2], b1[3], b1[4])], readings=3, signatures=2
    )
    mismatched = with_reading(b1, 1, lambda r: r.__setitem__(5, r[5][:1]))
    qc.refused(
        "QualityCertifierLengthMismatch",
        [mismatched],
        batchId=b1[0],
        index=1,
        metrics=len(b1[1][1][4]),
        values=1,
    )
    # a lot of a product without a spec
    qc.lots.open_lot(
        qc.supplier,
        lot_id="LOT-NOSPEC",
        gtin=OTHER_GTIN,
        quantity=1,
        unit="kg",
        produced_from_ms=0,
        produced_to_ms=0,
    )
    qc.refused("QualityCertifierUnknownSpec", batches, lot="LOT-NOSPEC", gtin=int(OTHER_GTIN), version=0)


def test_duplicate_readings_are_refused(qc: QC) -> None:
    a, b = qc.sign("GW-K1-A", GOOD), qc.sign("GW-K1-B", GOOD)
    id1, tree1 = qc.anchor_batch([a, b, qc.sign("GW-K1-A", GOOD, lot="LOT-OTHER")])
    one = batch_readings(id1, tree1, [a])
    # the same reading twice in one batch (sizes made to fit: refused before the proof is looked at)
    twice = (id1, one[1] * 2, one[2] * 2, one[3][1:], [True, *one[4][1:]])
    qc.refused("QualityCertifierDuplicateReading", [twice], digest=a.digest)
    # the same batch twice
    qc.refused("QualityCertifierDuplicateReading", [one, one], digest=a.digest)
    # the same reading anchored again in a later batch, submitted through both
    id2, tree2 = qc.anchor_batch([a, qc.sign("GW-K1-B", GOOD, lot="LOT-OTHER")])
    again = batch_readings(id2, tree2, [a])
    qc.refused(
        "QualityCertifierDuplicateReading", [batch_readings(id1, tree1, [a, b]), again], digest=a.digest
    )
    # each alone is fine
    qc.certify([batch_readings(id1, tree1, [a, b])])
    assert qc.certifier.certificate(LOT).samples == 2


@pytest.mark.parametrize("scheme", ["secp256k1", "p256"])
def test_bad_signature_is_refused(suite: Any, scheme: str) -> None:
    qc = make_qc(suite, devices={"DEV": scheme})
    qc.set_spec()
    subs = [qc.sign("DEV", GOOD), qc.sign("DEV", {"temp_c": 5, "humidity": 50})]
    batch_id, tree = qc.anchor_batch(subs)
    batch = batch_readings(batch_id, tree, subs)
    device_id = batch[1][0][0]
    digest0 = next(s.digest for s in subs if s.signature == batch[2][0])
    swapped = (batch[0], batch[1], [batch[2][1], batch[2][0]], batch[3], batch[4])
    qc.refused("ReadingAnchorBadSignature", [swapped], deviceId=device_id, digest=digest0)
    short = (batch[0], batch[1], [batch[2][0][:-1], batch[2][1]], batch[3], batch[4])
    qc.refused(
        "ReadingAnchorInvalidSignatureLength", [short], deviceId=device_id, length=len(batch[2][0]) - 1
    )


def test_reading_of_a_revoked_device_after_revocation_is_refused(qc: QC) -> None:
    before = qc.sign("GW-K1-A", GOOD)
    after = qc.sign("GW-K1-A", GOOD)
    also = [qc.sign("GW-K1-B", GOOD), qc.sign("GW-K1-B", GOOD)]
    batch_id, tree = qc.anchor_batch([before, after, *also])
    # the device is revoked from the time of its second reading (a key found compromised then)
    qc.consortium.registry.revoke(qc.consortium.factory, "GW-K1-A", after.reading.ts_ms)
    device_id = device_id_hash("GW-K1-A")
    qc.refused(
        "ReadingAnchorDeviceNotActive",
        [batch_readings(batch_id, tree, [after, *also])],
        deviceId=device_id,
        timestamp=after.reading.ts_ms,
    )
    # its reading from before the revocation was anchored after it (the batch is anchored now): it does
    # not count either, since the device's key may have signed it later (issue 12.8)
    qc.refused(
        "ReadingAnchorAnchoredAfterRevocation",
        [batch_readings(batch_id, tree, [before, *also])],
        deviceId=device_id,
        revokedAtMs=after.reading.ts_ms,
    )
    # the other device's readings count
    qc.certify([batch_readings(batch_id, tree, also)])
    assert qc.certifier.certificate(LOT).certified


def test_unknown_device_is_refused(qc: QC) -> None:
    stranger = DeviceSigner(
        device_id="NEVER-ENROLLED",
        key=DeviceKey.generate("secp256k1"),
        domain=qc.consortium.domain,
    )
    sub = stranger.sign(GOOD, ts_ms=qc.ts, lot_id=LOT)
    batch_id, tree = qc.anchor_batch([sub])
    qc.refused(
        "ReadingAnchorUnknownDevice",
        [batch_readings(batch_id, tree, [sub])],
        deviceId=device_id_hash("NEVER-ENROLLED"),
    )


# ---------------------------------------------------------------- verdicts


def rejected(qc: QC, batches: list[tuple[Any, ...]]) -> tuple[dict[str, Any], Certificate]:
    result = qc.certify(batches)
    assert not qc.certifier.contract.events.LotCertified().process_receipt(result.receipt, errors=DISCARD)
    (event,) = qc.certifier.contract.events.LotRejected().process_receipt(result.receipt, errors=DISCARD)
    cert = qc.certifier.certificate(LOT)
    assert cert.status is CertificateStatus.REJECTED
    assert cert.decided_at == qc.chain.block(result.block_number)["timestamp"]
    assert cert.submitter == qc.auditor.address
    args = dict(event["args"])
    assert (args["lotId"], args["gtin"], args["by"]) == (
        lot_key(LOT, qc.supplier.address),
        int(GTIN),
        qc.auditor.address,
    )
    assert (cert.reason, cert.spec_version, cert.samples) == (
        args["reason"],
        args["specVersion"],
        args["samples"],
    )
    assert (padded_ascii(cert.metric), cert.value, cert.bound, cert.evidence) == (
        args["metric"],
        args["value"],
        args["bound"],
        args["evidence"],
    )
    return args, cert


@pytest.mark.parametrize(
    ("metrics", "reason", "metric", "value", "bound"),
    [
        ({"temp_c": 1.999999, "humidity": 45}, RejectReason.BELOW_MIN, "temp_c", 1_999_999, 2 * M),
        ({"temp_c": 4, "humidity": 60.000001}, RejectReason.ABOVE_MAX, "humidity", 60_000_001, 60 * M),
        ({"temp_c": -40, "humidity": 45}, RejectReason.BELOW_MIN, "temp_c", -40 * M, 2 * M),
        (
            {**GOOD, "weight_g": 1010.5},
            RejectReason.ABOVE_MAX,
            "weight_g",
            1_010_500_000,
            1010 * M,
        ),  # optional
    ],
)
def test_rejected_out_of_bounds(
    qc: QC, metrics: dict[str, float], reason: RejectReason, metric: str, value: int, bound: int
) -> None:
    good = qc.sign("GW-K1-A", GOOD)
    bad = qc.sign("GW-K1-B", metrics)
    batch_id, tree = qc.anchor_batch([good, bad])
    _, cert = rejected(qc, [batch_readings(batch_id, tree, [good, bad])])
    assert (cert.reason, cert.metric, cert.value, cert.bound) == (reason, metric, value, bound)
    assert cert.evidence == bad.digest
    assert (cert.spec_version, cert.samples) == (1, 2)


def test_rejection_names_the_first_failure_in_submission_order(qc: QC) -> None:
    subs = [
        qc.sign("GW-K1-A", {"temp_c": 9, "humidity": 20}),  # two failures in one reading
        qc.sign("GW-K1-B", {"temp_c": 1, "humidity": 45}),
        qc.sign("GW-K1-A", GOOD),
    ]
    id1, tree1 = qc.anchor_batch(subs)
    late = [qc.sign("GW-K1-B", {"temp_c": 100, "humidity": 45})]
    id2, tree2 = qc.anchor_batch(late)
    batches = [batch_readings(id2, tree2, late), batch_readings(id1, tree1, subs)]  # batch 2 first
    _, cert = rejected(qc, batches)
    assert (cert.reason, cert.metric, cert.value, cert.bound) == (
        RejectReason.ABOVE_MAX,
        "temp_c",
        100 * M,
        8 * M,
    )
    assert cert.evidence == late[0].digest and cert.samples == 4

    # batch 1 alone (a later violation is recorded too: evidence always stands): its first failing reading
    # in multiproof order, and within it the first metric in the reading's (sorted) order: humidity first
    expected_first = next(r for r in batches[1][1] if r[5] != [45 * M, 4_500_000])
    expected_digest = next(
        s.digest
        for s in subs
        if device_id_hash(s.reading.device_id) == expected_first[0] and s.reading.seq == expected_first[1]
    )
    _, cert = rejected(qc, [batches[1]])
    assert cert.evidence == expected_digest
    if expected_digest == subs[0].digest:
        assert (cert.reason, cert.metric, cert.value, cert.bound) == (
            RejectReason.BELOW_MIN,
            "humidity",
            20 * M,
            30 * M,
        )
    else:
        assert (cert.reason, cert.metric, cert.value, cert.bound) == (
            RejectReason.BELOW_MIN,
            "temp_c",
            1 * M,
            2 * M,
        )
    assert cert.spec_version == 1


def test_rejected_for_a_missing_metric(qc: QC) -> None:
    subs = [qc.sign("GW-K1-A", {"temp_c": 4}), qc.sign("GW-K1-B", {"temp_c": 5, "pressure": 1})]
    batch_id, tree = qc.anchor_batch(subs)
    _, cert = rejected(qc, [batch_readings(batch_id, tree, subs)])
    assert (cert.reason, cert.metric, cert.value, cert.bound) == (
        RejectReason.MISSING_METRIC,
        "humidity",
        0,
        2,
    )
    assert (cert.evidence, cert.samples) == (bytes(32), 2)


def test_rejected_for_too_few_samples_then_certified_with_more(qc: QC) -> None:
    subs = [qc.sign("GW-K1-A", GOOD), qc.sign("GW-K1-B", {"temp_c": 3})]
    batch_id, tree = qc.anchor_batch(subs)
    _, cert = rejected(qc, [batch_readings(batch_id, tree, subs)])
    # temp_c has 2 samples, humidity only 1 (spec order: humidity first anyway)
    assert (cert.reason, cert.metric, cert.value, cert.bound) == (
        RejectReason.TOO_FEW_SAMPLES,
        "humidity",
        1,
        2,
    )
    # a lack of evidence is not final: more readings certify the lot, and the finding is cleared
    more = [qc.sign("GW-K1-B", GOOD)]
    more_id, more_tree = qc.anchor_batch(more)
    qc.certify([batch_readings(batch_id, tree, subs), batch_readings(more_id, more_tree, more)])
    cert = qc.certifier.certificate(LOT)
    assert cert.certified and (cert.samples, cert.reason, cert.metric, cert.value, cert.bound) == (
        3,
        0,
        "",
        0,
        0,
    )
    assert cert.evidence == bytes(32)


# ---------------------------------------------------------------- the standing verdict


def test_a_subset_cannot_undo_a_certificate_but_evidence_can(qc: QC) -> None:
    mine1, mine2, batches = good_batches(qc)
    qc.certify(batches)
    certified = qc.certifier.certificate(LOT)
    # a subset of the same genuine readings (too few samples) cannot undo the certificate
    qc.refused(
        "QualityCertifierVerdictStands",
        [batches[1]],
        lotId=lot_key(LOT, qc.supplier.address),
        status=int(CertificateStatus.CERTIFIED),
        reason=0,
        specVersion=1,
    )
    assert qc.certifier.certificate(LOT) == certified
    # re-certifying with all of them is fine (the latest submission is recorded)
    qc.certify(batches)
    # a genuine out-of-spec reading is evidence: it overturns the certificate
    bad = [qc.sign("GW-K1-A", {"temp_c": 12, "humidity": 45})]
    bad_id, bad_tree = qc.anchor_batch(bad)
    _, cert = rejected(qc, [batch_readings(bad_id, bad_tree, bad)])
    assert (cert.reason, cert.metric, cert.evidence) == (RejectReason.ABOVE_MAX, "temp_c", bad[0].digest)
    # under the same spec version, the good readings cannot hide it again
    qc.refused(
        "QualityCertifierVerdictStands",
        batches,
        status=int(CertificateStatus.REJECTED),
        reason=int(RejectReason.ABOVE_MAX),
        specVersion=1,
    )
    qc.refused("QualityCertifierVerdictStands", [batches[1]], reason=int(RejectReason.ABOVE_MAX))
    # a new spec version (the enterprise revised its rules) lets the lot be certified again
    qc.set_spec([SpecMetric(name="temp_c", min=0, max=15 * M), SPEC[1]])
    qc.certify(batches)
    cert = qc.certifier.certificate(LOT)
    assert cert.certified and cert.spec_version == 2 and cert.evidence == bytes(32) and cert.metric == ""
    assert len(mine1) + len(mine2) == cert.samples


def test_issue12_a_new_spec_version_does_not_launder_a_rejection(qc: QC) -> None:
    """Issue 12.3: a lot rejected for temp 12 > 8; the spec owner republished the identical spec as
    version 2, and anyone certified the lot from its good readings alone."""
    _, _, batches = good_batches(qc)
    bad = [qc.sign("GW-K1-A", {"temp_c": 12, "humidity": 45})]
    bad_id, bad_tree = qc.anchor_batch(bad)
    _, rejection = rejected(qc, [batch_readings(bad_id, bad_tree, bad)])
    key = lot_key(LOT, qc.supplier.address)
    still_fails = {"lotId": key, "metric": padded_ascii("temp_c"), "value": 12 * M, "recordedVersion": 1}
    # the identical spec as version 2: the recorded reading still fails, the lot stays rejected
    qc.set_spec()
    qc.refused("QualityCertifierViolationStillFails", batches, **still_fails, version=2)
    # nor does a version that dropped the violated metric, or only moved its other bound, reopen it
    qc.set_spec([SPEC[1]])
    qc.refused("QualityCertifierViolationStillFails", batches, **still_fails, version=3)
    qc.set_spec([SpecMetric(name="temp_c", min=-10 * M, max=8 * M), SPEC[1]])
    qc.refused("QualityCertifierViolationStillFails", batches, **still_fails, version=4)
    assert qc.certifier.certificate(LOT) == rejection
    # a new version whose bounds accept the recorded value (12 <= 12) reopens it
    qc.set_spec([SpecMetric(name="temp_c", min=2 * M, max=12 * M), SPEC[1]])
    qc.certify(batches)
    cert = qc.certifier.certificate(LOT)
    assert cert.certified and cert.spec_version == 5
    # and the rejected reading, submitted again under version 5, is no violation any more
    qc.certify([*batches, batch_readings(bad_id, bad_tree, bad)])
    assert qc.certifier.certificate(LOT).certified


# ---------------------------------------------------------------- whose devices count (issue 11.2)


def enroll_for(qc: QC, party: LocalAccount, device_id: str, scheme: str = "secp256k1") -> DeviceSigner:
    """Enroll a device owned by ``party`` (granted the enroller role), with the consortium's test CA."""
    import datetime as dt

    from contracts.enrollment import enroll_with_device_key
    from device_attestation.birth import attest_birth
    from device_attestation.certificates import make_device_csr
    from device_attestation.manufacturer_ca import issue_device_certificate

    qc.consortium.registry.grant_enroller(qc.operator, party.address)
    key = DeviceKey.generate(scheme)
    now = dt.datetime.now(dt.UTC)
    cert = issue_device_certificate(
        ca_key=qc.consortium.ca_key,
        ca_cert=qc.consortium.ca_cert,
        csr=make_device_csr(key, device_id),
        valid_days=10,
        not_before=now - dt.timedelta(hours=1),
    )
    enroll_with_device_key(
        registry=qc.consortium.registry,
        party=party,
        certificate=cert,
        ca_certificates=[qc.consortium.ca_cert],
        device_key=key,
        birth=attest_birth(ca_key=qc.consortium.ca_key, ca_cert=qc.consortium.ca_cert, certificate=cert),
        now=now,
        active_from_ms=0,
    )
    signer = DeviceSigner(device_id=device_id, key=key, domain=qc.consortium.domain)
    qc.devices[device_id] = signer
    qc.ts = max(qc.ts, qc.consortium.registry.device(device_id).active_from_ms)  # it counts from now on
    return signer


def test_issue11_a_competitor_device_cannot_fail_a_certified_lot(qc: QC) -> None:
    """Issue 11.2: factory B's device named factory A's lot in an out-of-spec reading; anyone could
    submit it, and A's certified lot flipped to REJECTED for ever."""
    rival = qc.auditor  # a party that is neither the supplier nor a custodian
    enroll_for(qc, rival, "RIVAL-GW")
    _, _, batches = good_batches(qc)
    qc.certify(batches)
    certified = qc.certifier.certificate(LOT)
    assert certified.certified
    attack = qc.sign("RIVAL-GW", {"temp_c": 40, "humidity": 45})  # names A's lot, far out of spec
    batch_id, tree = qc.anchor_batch([attack, qc.sign("GW-K1-A", GOOD)])
    key = lot_key(LOT, qc.supplier.address)
    for submission in (
        [batch_readings(batch_id, tree, [attack])],
        [*batches, batch_readings(batch_id, tree, [attack])],
    ):
        qc.refused(
            "QualityCertifierForeignDevice",
            submission,
            lotId=key,
            deviceId=device_id_hash("RIVAL-GW"),
            owner=rival.address,
        )
    assert qc.certifier.certificate(LOT) == certified
    # nor can it make a fresh lot fail before its producer certifies it
    fresh = qc.sign("RIVAL-GW", {"temp_c": 40, "humidity": 45}, lot="LOT-OTHER")
    fresh_id, fresh_tree = qc.anchor_batch([fresh])
    qc.refused(
        "QualityCertifierForeignDevice",
        [batch_readings(fresh_id, fresh_tree, [fresh])],
        lot="LOT-OTHER",
        lotId=lot_key("LOT-OTHER", qc.supplier.address),
        deviceId=device_id_hash("RIVAL-GW"),
        owner=rival.address,
    )
    assert qc.certifier.certificate("LOT-OTHER") == NO_CERTIFICATE


def test_devices_of_custodians_count(qc: QC) -> None:
    distributor = qc.enterprise  # admitted to hold lots below
    qc.chain.transact(qc.gate.functions.setAdmitted(distributor.address, TRANSFER_ACTION, True), qc.operator)
    enroll_for(qc, distributor, "DIST-GW")
    cold_chain = [qc.sign("DIST-GW", GOOD), qc.sign("DIST-GW", {"temp_c": 9, "humidity": 45})]
    batch_id, tree = qc.anchor_batch(cold_chain)
    batch = batch_readings(batch_id, tree, cold_chain)
    key = lot_key(LOT, qc.supplier.address)
    qc.refused(
        "QualityCertifierForeignDevice",
        [batch],
        lotId=key,
        deviceId=device_id_hash("DIST-GW"),
        owner=distributor.address,
    )
    qc.lots.propose_transfer(qc.supplier, LOT, distributor.address)
    qc.refused("QualityCertifierForeignDevice", [batch], owner=distributor.address)  # proposed is not held
    qc.lots.accept_transfer(distributor, LOT)
    args, _ = rejected(qc, [batch])  # the custodian's own cold-chain evidence counts
    assert (args["reason"], args["value"]) == (RejectReason.ABOVE_MAX, 9 * M)
    # a past custodian's devices still count once the lot moves on
    qc.chain.transact(qc.gate.functions.setAdmitted(qc.auditor.address, TRANSFER_ACTION, True), qc.operator)
    qc.lots.propose_transfer(distributor, LOT, qc.auditor.address)
    qc.lots.accept_transfer(qc.auditor, LOT)
    assert qc.certifier.preview(qc.auditor.address, LOT, [batch]) is CertificateStatus.REJECTED


def test_devices_named_by_the_spec_owner_count(qc: QC) -> None:
    lab = qc.auditor
    enroll_for(qc, lab, "LAB-1")
    subs = [qc.sign("LAB-1", GOOD), qc.sign("LAB-1", GOOD)]
    batch_id, tree = qc.anchor_batch(subs)
    batch = batch_readings(batch_id, tree, subs)
    lab_id = device_id_hash("LAB-1")
    qc.refused("QualityCertifierForeignDevice", [batch], deviceId=lab_id, owner=lab.address)
    c = qc.certifier
    fn = c.contract.functions.setNamedDevice
    # only the product's spec owner, admitted, names devices
    with reverts("QualityCertifierNotAdmitted", party=qc.supplier.address, action=SPEC_ACTION):
        qc.chain.transact(fn(GTIN, lab_id, True), qc.supplier)
    qc.chain.transact(qc.gate.functions.setAdmitted(qc.supplier.address, SPEC_ACTION, True), qc.operator)
    with reverts(
        "QualityCertifierNotSpecOwner",
        gtin=int(GTIN),
        owner=qc.enterprise.address,
        caller=qc.supplier.address,
    ):
        qc.chain.transact(fn(GTIN, lab_id, True), qc.supplier)
    with reverts("QualityCertifierNotSpecOwner", gtin=int(OTHER_GTIN), owner="0x" + "00" * 20):
        qc.chain.transact(fn(OTHER_GTIN, lab_id, True), qc.supplier)
    with reverts("GtinInvalidCheckDigit"):
        qc.chain.transact(fn("04006381333930", lab_id, True), qc.enterprise)
    assert not c.is_named_device(int(GTIN), "LAB-1")

    result = c.set_named_device(qc.enterprise, GTIN, "LAB-1")
    (event,) = c.contract.events.SpecDeviceNamed().process_receipt(result.receipt, errors=DISCARD)
    assert dict(event["args"]) == {
        "gtin": int(GTIN),
        "deviceId": lab_id,
        "named": True,
        "by": qc.enterprise.address,
    }
    assert c.is_named_device(int(GTIN), "LAB-1") and not c.is_named_device(int(OTHER_GTIN), "LAB-1")
    assert c.preview(qc.auditor.address, LOT, [batch]) is CertificateStatus.CERTIFIED
    c.set_named_device(qc.enterprise, GTIN, "LAB-1", named=False)
    qc.refused("QualityCertifierForeignDevice", [batch], deviceId=lab_id, owner=lab.address)


# ---------------------------------------------------------------- evidence pinned (issue 11.5)


def test_issue11_owner_cannot_destroy_evidence_used_in_a_verdict(qc: QC) -> None:
    """Issue 11.5: the owner revoked its device back-dated to just before its own failing reading;
    the reading stopped verifying and certifyLot reverted for everyone."""
    good = qc.sign("GW-K1-A", GOOD)
    failing = qc.sign("GW-K1-A", {"temp_c": 9.5, "humidity": 45})
    other = qc.sign("GW-K1-B", GOOD)
    batch_id, tree = qc.anchor_batch([good, failing, other])
    batch = batch_readings(batch_id, tree, [good, failing, other])
    args, _ = rejected(qc, [batch])
    assert args["evidence"] == failing.digest
    registry = qc.consortium.registry
    # pinned: the later of the readings' times and their batch's anchoring (issue 12.8), here the anchoring
    anchored_ms = anchored_at_ms(qc, batch_id)
    assert anchored_ms > failing.reading.ts_ms
    assert registry.pinned_evidence_ms("GW-K1-A") == anchored_ms
    assert registry.pinned_evidence_ms("GW-K1-B") == anchored_ms
    owner = qc.consortium.factory
    before = registry.device("GW-K1-A")
    for at in (anchored_ms - 1, anchored_ms, failing.reading.ts_ms, good.reading.ts_ms):
        with reverts(
            "DeviceRegistryEvidencePinned",
            deviceId=device_id_hash("GW-K1-A"),
            pinnedMs=anchored_ms,
            requestedMs=at,
        ):
            registry.revoke(owner, "GW-K1-A", at)
    assert registry.device("GW-K1-A") == before
    # the evidence keeps verifying: on its own, and in a new submission (which the verdict outlives)
    anchor = qc.anchor.functions.verifyReading
    from contracts.registry import reading_tuple
    from device_attestation.reading import reading_struct

    fn = anchor(
        reading_tuple(reading_struct(failing.reading)),
        failing.signature,
        batch_id,
        tree.proof(failing.digest),
    )
    assert qc.chain.call(fn) == failing.digest
    again, _ = rejected(qc, [batch])  # anyone can still submit it: a violation is recorded again
    assert again["evidence"] == failing.digest
    # revoking after the evidence is the owner's right (a key found compromised now)
    mine_after(qc, anchored_ms)
    registry.revoke(owner, "GW-K1-A", anchored_ms + 1)
    assert qc.chain.call(fn) == failing.digest
    # only the operator's ruling, with its reason on chain, reaches back before it
    registry.revoke_with_reason(qc.operator, "GW-K1-A", good.reading.ts_ms, "INC-7: key cloned at the plant")
    with reverts("ReadingAnchorDeviceNotActive", deviceId=device_id_hash("GW-K1-A")):
        qc.chain.call(fn)
    assert qc.certifier.certificate(LOT).reason is RejectReason.ABOVE_MAX  # the verdict itself stands


def test_a_preview_or_a_refused_submission_pins_nothing(qc: QC) -> None:
    subs = [qc.sign("GW-K1-A", GOOD), qc.sign("GW-K1-B", GOOD)]
    batch_id, tree = qc.anchor_batch(subs)
    batch = batch_readings(batch_id, tree, subs)
    assert qc.certifier.preview(qc.auditor.address, LOT, [batch]) is CertificateStatus.CERTIFIED
    qc.refused("QualityCertifierNoReadings", [], batchId=0)
    assert qc.consortium.registry.pinned_evidence_ms("GW-K1-A") is None
    qc.certify([batch])
    assert qc.consortium.registry.pinned_evidence_ms("GW-K1-A") == anchored_at_ms(qc, batch_id)


def mine_after(qc: QC, ms: int) -> None:
    """Make the latest block's time later than ``ms`` (anvil may mine several blocks in one second;
    the embedded chain's blocks are a second apart at least)."""
    if qc.chain.can_warp and int(qc.chain.block()["timestamp"]) * 1000 <= ms:
        qc.chain.warp(ms // 1000 + 1)
        qc.chain.transfer_value(qc.operator, qc.operator.address, 0)


def anchored_at_ms(qc: QC, batch_id: int) -> int:
    """The batch's anchoring time in ms (the block time the anchor keeps, in seconds, x 1000)."""
    return int(qc.chain.call(qc.anchor.functions.batch(batch_id))[2]) * 1000


def test_issue12_readings_anchored_after_a_revocation_do_not_count(qc: QC) -> None:
    """Issue 12.8: a key stolen after its device's revocation signs readings dated before it; anchored
    later, they counted in certifyLot (here: to certify a lot from forged good readings)."""
    genuine = [qc.sign("GW-K1-A", GOOD), qc.sign("GW-K1-A", GOOD)]
    batch_id, tree = qc.anchor_batch(genuine)
    anchored_ms = anchored_at_ms(qc, batch_id)
    registry = qc.consortium.registry
    registry.revoke(qc.operator, "GW-K1-A", anchored_ms + 500)  # the operator: key stolen
    revoked_ms = anchored_ms + 500
    forged = [qc.devices["GW-K1-A"].sign(GOOD, ts_ms=revoked_ms - 10 + i, lot_id=LOT) for i in range(2)]
    mine_after(qc, revoked_ms)
    forged_id, forged_tree = qc.anchor_batch(forged)
    late_ms = anchored_at_ms(qc, forged_id)
    qc.refused(
        "ReadingAnchorAnchoredAfterRevocation",
        [batch_readings(forged_id, forged_tree, forged)],
        deviceId=device_id_hash("GW-K1-A"),
        anchoredAtMs=late_ms,
        revokedAtMs=revoked_ms,
    )
    # readings dated after their batch's anchoring (beyond the clock skew) never count
    ahead = [qc.devices["GW-K1-B"].sign(GOOD, ts_ms=late_ms + 3_600_000, lot_id=LOT) for _ in range(2)]
    ahead_id, ahead_tree = qc.anchor_batch(ahead)
    qc.refused(
        "ReadingAnchorReadingAfterAnchoring",
        [batch_readings(ahead_id, ahead_tree, ahead)],
        deviceId=device_id_hash("GW-K1-B"),
        timestamp=ahead[0].reading.ts_ms,
        anchoredAtMs=anchored_at_ms(qc, ahead_id),
    )
    # what was anchored before the revocation still certifies the lot
    qc.certify([batch_readings(batch_id, tree, genuine)])
    assert qc.certifier.certificate(LOT).certified


# ---------------------------------------------------------------- camera readings (issue 16.1)
# Camera-based defect counts feed lot certification: the simulator's inspection camera signs, per lot,
# the units it inspected and rejected and their pass share; a spec bounding ``cam_pass_share``
# certifies a healthy line's lot from its camera readings and rejects a deteriorating line's.

CAMERA_START = dt.date(2026, 11, 2)


def _camera_lot(health: Health) -> list[dict[str, float | int]]:
    """The camera readings' metrics of the second day's lot of a simulated line (``health``)."""
    spec = FactorySpec(factory_id=f"cam-{health}", kind=SOLAR_CELL, seed=11, health=health)
    _truth, readings = simulate_factory(spec, CAMERA_START, 3)
    camera = spec.camera_id(spec.line_ids()[0])
    mine = [r for r in readings if r.device_id == camera]
    lot = sorted({r.lot_id for r in mine if r.lot_id})[1]
    return [r.metrics for r in mine if r.lot_id == lot and "cam_pass_share" in r.metrics]


def _certify(qc: QC, lot: str, metrics: list[dict[str, float | int]]) -> Any:
    subs = [qc.sign("GW-K1-A", {k: float(v) for k, v in m.items()}, lot=lot) for m in metrics]
    batch, tree = qc.anchor_batch(subs)
    qc.certify([batch_readings(batch, tree, subs)], lot)
    return qc.certifier.certificate(lot)


def test_a_spec_on_the_camera_pass_share_certifies_healthy_lots_and_rejects_a_failing_one(suite: Any) -> None:
    healthy, failing = _camera_lot("healthy"), _camera_lot("deteriorating")
    assert healthy and failing
    for m in healthy + failing:  # the camera's counts are consistent with the share it signs
        assert 0 <= m["cam_defects"] <= m["cam_inspected"]
        assert abs(float(m["cam_pass_share"]) - (1 - m["cam_defects"] / m["cam_inspected"])) < 1e-4
    bar = min(float(m["cam_pass_share"]) for m in healthy)
    worst = min(float(m["cam_pass_share"]) for m in failing)
    assert worst < bar  # the deteriorating line's camera sees what the healthy one's does not

    qc = make_qc(suite, devices={"GW-K1-A": "secp256k1"})
    qc.set_spec([SpecMetric(name="cam_pass_share", min=int(bar * M), max=M)], min_samples=len(healthy))
    good = _certify(qc, "LOT-QC-0001", healthy)
    assert (good.status, good.samples) == (CertificateStatus.CERTIFIED, len(healthy))

    bad = _certify(qc, "LOT-OTHER", failing)
    assert bad.status is CertificateStatus.REJECTED
    assert (bad.reason, bad.metric, bad.bound) == (RejectReason.BELOW_MIN, "cam_pass_share", int(bar * M))
    assert bad.value < int(bar * M)  # the first of the lot's camera readings under the bar
