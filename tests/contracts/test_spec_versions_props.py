"""Property tests of spec versions against recorded verdicts (embedded chain only, for speed): a
Hypothesis state machine publishes random spec versions (temperature bounds on a small grid, the metric
sometimes dropped, one or two samples required) and submits random sets of one lot's genuine readings
(temperatures on the same grid, each in its own anchored batch). A Python model predicts each verdict
from the standing rules; the chain must agree (the recorded verdict, or the predicted custom error),
and after every step:

- the lot's certificate is the model's;
- a recorded bound violation is never followed by a certificate under its own version, nor under a
  later version whose bounds reject the recorded value or do not bound its metric (issue 12.3);
- a certificate is never replaced by a mere lack of evidence.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from support import TestConsortium

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
from contracts.errors import ContractRevert
from contracts.lots import OPEN_ACTION, LotRegistryClient, deploy_supply_chain
from device_attestation.merkle import MerkleTree

GTIN = "04006381333931"
LOT = "LOT-PROPS-1"
M = 1_000_000
#: Temperatures of the readings, and the grid the bounds are drawn from (°C).
TEMPS = (0, 5, 8, 12)
GRID = st.sampled_from((-5, 2, 5, 8, 12, 20))
HUMIDITY = SpecMetric(name="humidity", min=30 * M, max=60 * M)


@dataclass(frozen=True)
class Version:
    bounds: tuple[int, int] | None  # temp_c's [min, max] in °C; None: the version does not bound temp_c
    min_samples: int


@dataclass(frozen=True)
class Standing:
    status: CertificateStatus = CertificateStatus.NONE
    reason: RejectReason = RejectReason.NONE
    version: int = 0
    value: int = 0  # the violation's recorded temperature (°C)


VIOLATIONS = (RejectReason.BELOW_MIN, RejectReason.ABOVE_MAX)


class SpecVersionMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.chain = Chain.embedded()
        accounts = dev_accounts(8)
        op, self.supplier, self.enterprise, self.auditor = accounts[0], accounts[1], accounts[5], accounts[7]
        deployment = deploy_suite(self.chain, op)
        gate_address = self.chain.deploy("StaticAdmissionGate", op, op.address).contract_address
        assert gate_address is not None
        gate = self.chain.contract("StaticAdmissionGate", gate_address)
        addresses = deploy_supply_chain(self.chain, op, deployment=deployment, gate_address=gate_address)
        self.chain.transact(gate.functions.setAdmitted(self.supplier.address, OPEN_ACTION, True), op)
        self.chain.transact(gate.functions.setAdmitted(self.enterprise.address, SPEC_ACTION, True), op)
        self.lots = LotRegistryClient(self.chain, addresses["LotRegistry"])
        self.certifier = QualityCertifierClient(self.chain, addresses["QualityCertifier"])
        self.certifier.set_spec_owner(op, GTIN, self.enterprise.address)
        self.lots.open_lot(
            self.supplier, lot_id=LOT, gtin=GTIN, quantity=1, unit="kg", produced_from_ms=0, produced_to_ms=1
        )
        consortium = TestConsortium(self.chain, deployment)  # its factory is dev account 1, the supplier
        device = consortium.enroll("PROPS-GW", "secp256k1")
        anchor = deployment.contract(self.chain, "ReadingAnchor")
        # Dated from the chain's clock, inside the device's activation (the registry's latest block less
        # 55 s, issue 12.2) and before each reading's anchoring: the wall clock may lie far from it.
        ts = int(self.chain.block("latest")["timestamp"]) * 1000 - 50_000
        self.batches = []
        for i, temp in enumerate(TEMPS):  # one reading a batch: submission order is judging order
            sub = device.sign({"temp_c": temp, "humidity": 45}, ts_ms=ts + 1000 * i, lot_id=LOT)
            tree = MerkleTree.build([sub.digest])
            self.chain.transact(anchor.functions.anchorBatch(tree.root, 1), op)
            self.batches.append(batch_readings(i + 1, tree, [sub]))
        self.versions: list[Version] = []
        self.standing = Standing()

    # ------------------------------------------------------------ the model

    def _predict(self, picks: list[int]) -> tuple[str | None, Standing]:
        """The error the certifier must give (None: success) and the standing after the submission."""
        v = len(self.versions)
        spec = self.versions[-1]
        reason, value = RejectReason.NONE, 0
        if spec.bounds is not None:
            lo, hi = spec.bounds
            for i in picks:
                t = TEMPS[i]
                if t < lo or t > hi:
                    reason, value = (RejectReason.BELOW_MIN if t < lo else RejectReason.ABOVE_MAX), t
                    break
        if reason is RejectReason.NONE and len(picks) < spec.min_samples:
            reason = RejectReason.TOO_FEW_SAMPLES
        s = self.standing
        on_record = s.status is CertificateStatus.REJECTED and s.reason in VIOLATIONS
        if reason is RejectReason.NONE:
            if on_record and s.version == v:
                return "QualityCertifierVerdictStands", s
            if on_record and (spec.bounds is None or not spec.bounds[0] <= s.value <= spec.bounds[1]):
                return "QualityCertifierViolationStillFails", s
            return None, Standing(CertificateStatus.CERTIFIED, reason, v)
        if reason not in VIOLATIONS and (s.status is CertificateStatus.CERTIFIED or on_record):
            return "QualityCertifierVerdictStands", s
        return None, Standing(CertificateStatus.REJECTED, reason, v, value if reason in VIOLATIONS else 0)

    # ------------------------------------------------------------ rules

    @initialize(a=GRID, b=GRID, min_samples=st.integers(1, 2))
    def first_version(self, a: int, b: int, min_samples: int) -> None:
        self.publish(a, b, False, min_samples)

    @rule(a=GRID, b=GRID, drop=st.booleans(), min_samples=st.integers(1, 2))
    def publish(self, a: int, b: int, drop: bool, min_samples: int) -> None:
        lo, hi = min(a, b), max(a, b)
        metrics = [HUMIDITY] if drop else [SpecMetric(name="temp_c", min=lo * M, max=hi * M), HUMIDITY]
        self.certifier.set_spec(self.enterprise, GTIN, metrics, min_samples=min_samples)
        self.versions.append(Version(None if drop else (lo, hi), min_samples))

    @rule()
    def republish(self) -> None:
        """The spec owner republishes the latest version unchanged (the laundering attempt of issue 12.3)."""
        latest = self.versions[-1]
        lo, hi = latest.bounds or (0, 0)
        self.publish(lo, hi, latest.bounds is None, latest.min_samples)

    @rule(picks=st.lists(st.integers(0, len(TEMPS) - 1), min_size=1, max_size=3, unique=True))
    def submit(self, picks: list[int]) -> None:
        expected, after = self._predict(picks)
        before = self.certifier.certificate(LOT)
        try:
            self.certifier.certify_lot(self.auditor, LOT, [self.batches[i] for i in picks])
        except ContractRevert as e:
            assert expected is not None, f"unexpected revert {e.error_name}: {e}"
            assert e.error_name == expected, f"expected {expected}, got {e.error_name}: {e}"
            assert self.certifier.certificate(LOT) == before, "a refused submission changed the standing"
            return
        assert expected is None, f"expected {expected}, but the submission was recorded"
        previous = self.standing
        violated = previous.status is CertificateStatus.REJECTED and previous.reason in VIOLATIONS
        if violated and after.status is CertificateStatus.CERTIFIED:
            bounds = self.versions[after.version - 1].bounds
            assert after.version > previous.version
            assert bounds is not None and bounds[0] <= previous.value <= bounds[1], "laundered"
        if previous.status is CertificateStatus.CERTIFIED:
            assert after.status is CertificateStatus.CERTIFIED or after.reason in VIOLATIONS
        self.standing = after

    # ------------------------------------------------------------ invariants

    @invariant()
    def certificate_agrees_with_the_model(self) -> None:
        cert = self.certifier.certificate(LOT)
        s = self.standing
        assert (cert.status, cert.reason, cert.spec_version) == (s.status, s.reason, s.version)
        if s.reason in VIOLATIONS:
            assert (cert.metric, cert.value) == ("temp_c", s.value * M)
        assert self.certifier.latest_spec_version(int(GTIN)) == len(self.versions)


SpecVersionMachine.TestCase.settings = settings(
    max_examples=10,
    stateful_step_count=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestSpecVersionMachine = SpecVersionMachine.TestCase
pytestmark = pytest.mark.scenario  # a long state machine: handed out first under xdist
