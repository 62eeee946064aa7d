"""Property tests of spec versions against recorded verdicts (anvil only, for speed): a
Hypothesis state machine publishes random spec versions (temperature bounds on a small grid, the metric
sometimes dropped, one or two samples required) and submits random sets of one lot's genuine readings
(temperatures on the same grid, each in its own anchored batch). A Python model predicts each verdict
from the standing rules; the chain must agree (the recorded verdict, or the predicted custom error),
and after every step:

- the lot's certificate is the model's;
- a recorded bound violation is never followed by a certificate under its own version, nor under a
  later version whose bounds reject the recorded value or do not bound its metric (issue 12.3);
- a certificate is never replaced by a mere lack of evidence.

The laundering attempt of issue 12.3 (reject, republish, certify from the good readings) is steered
to, not left to chance: the first step of every example (``opening``) publishes a version that rejects
some temperatures and accepts others, records a rejection under it, republishes that version (or
drops its metric) and submits only the readings it accepted; ``launder`` repeats the attempt whenever
a violation is on record later. Without the fix (``QualityCertifierViolationStillFails``) the first
example fails, whatever the seed; the random rules explore from there. Every example starts from one
snapshot of the deployed world (a lot, a device, four anchored readings), taken once per process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from anvil_pool import fresh_anvil_world
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
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
#: Bounds from the grid that reject some of the readings' temperatures and accept others.
SPLITTING = [
    (lo, hi)
    for lo in (-5, 2, 5, 8, 12, 20)
    for hi in (-5, 2, 5, 8, 12, 20)
    if lo <= hi and any(lo <= t <= hi for t in TEMPS) and any(not lo <= t <= hi for t in TEMPS)
]


def accepted(bounds: tuple[int, int]) -> list[int]:
    """The readings (indices) whose temperature lies within ``bounds``."""
    return [i for i, t in enumerate(TEMPS) if bounds[0] <= t <= bounds[1]]


@st.composite
def openings(draw: st.DrawFn) -> tuple[tuple[int, int], int, list[int]]:
    """A splitting version's bounds, its minimum samples (the accepted readings can meet it), and a
    submission holding at least one rejected reading."""
    bounds = draw(st.sampled_from(SPLITTING))
    good = accepted(bounds)
    min_samples = draw(st.integers(1, min(2, len(good))))
    picks = draw(
        st.lists(st.integers(0, len(TEMPS) - 1), min_size=1, max_size=3, unique=True).filter(
            lambda p: any(i not in good for i in p)
        )
    )
    return bounds, min_samples, picks


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


@dataclass(frozen=True)
class World:
    """The deployed world every example starts from (:func:`anvil_pool.fresh_anvil_world`)."""

    certifier: str
    batches: list[Any]


def build_world(chain: Chain) -> World:
    accounts = dev_accounts(8)
    op, supplier, enterprise = accounts[0], accounts[1], accounts[5]
    deployment = deploy_suite(chain, op, stablecoin=False)
    gate_address = chain.deploy("StaticAdmissionGate", op, op.address).contract_address
    assert gate_address is not None
    gate = chain.contract("StaticAdmissionGate", gate_address)
    addresses = deploy_supply_chain(chain, op, deployment=deployment, gate_address=gate_address)
    chain.transact(gate.functions.setAdmitted(supplier.address, OPEN_ACTION, True), op)
    chain.transact(gate.functions.setAdmitted(enterprise.address, SPEC_ACTION, True), op)
    lots = LotRegistryClient(chain, addresses["LotRegistry"])
    certifier = QualityCertifierClient(chain, addresses["QualityCertifier"])
    certifier.set_spec_owner(op, GTIN, enterprise.address)
    lots.open_lot(
        supplier, lot_id=LOT, gtin=GTIN, quantity=1, unit="kg", produced_from_ms=0, produced_to_ms=1
    )
    consortium = TestConsortium(chain, deployment)  # its factory is dev account 1, the supplier
    device = consortium.enroll("PROPS-GW", "secp256k1")
    anchor = deployment.contract(chain, "ReadingAnchor")
    # Dated from the chain's clock, inside the device's activation (the registry's latest block less
    # 55 s, issue 12.2) and before each reading's anchoring: the wall clock may lie far from it.
    ts = int(chain.block("latest")["timestamp"]) * 1000 - 50_000
    batches = []
    for i, temp in enumerate(TEMPS):  # one reading a batch: submission order is judging order
        sub = device.sign({"temp_c": temp, "humidity": 45}, ts_ms=ts + 1000 * i, lot_id=LOT)
        tree = MerkleTree.build([sub.digest])
        chain.transact(anchor.functions.anchorBatch(tree.root, 1), op)
        batches.append(batch_readings(i + 1, tree, [sub]))
    return World(certifier=addresses["QualityCertifier"], batches=batches)


class SpecVersionMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.chain, world = fresh_anvil_world("props:spec-versions", build_world)
        accounts = dev_accounts(8)
        self.enterprise, self.auditor = accounts[5], accounts[7]
        self.certifier = QualityCertifierClient(self.chain, world.certifier)
        self.batches = world.batches
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

    def _violation_on_record(self) -> bool:
        s = self.standing
        return s.status is CertificateStatus.REJECTED and s.reason in VIOLATIONS

    # ------------------------------------------------------------ rules

    @initialize(opening=openings(), drop=st.booleans())
    def opening(self, opening: tuple[tuple[int, int], int, list[int]], drop: bool) -> None:
        """A first version that rejects some readings, a rejection recorded under it, then issue 12.3's
        laundering attempt: the version republished (``drop``: without its metric), and a submission
        of only the readings it accepted."""
        (lo, hi), min_samples, picks = opening
        self.publish(lo, hi, False, min_samples)
        self.submit(picks)
        assert self._violation_on_record()
        self.launder(drop)

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

    @precondition(lambda self: self._violation_on_record())
    @rule(drop=st.booleans())
    def launder(self, drop: bool) -> None:
        """Issue 12.3's attempt: the version that recorded the violation published again (or with its
        metric dropped), then a submission of only the readings it accepts."""
        recorded = self.versions[self.standing.version - 1]
        assert recorded.bounds is not None  # a bound violation is found only under a version with bounds
        lo, hi = recorded.bounds
        self.publish(lo, hi, drop, recorded.min_samples)
        good = accepted(recorded.bounds)
        if good:
            self.submit(good)

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
pytestmark = pytest.mark.scenario  # a state machine: about 5 s on anvil (10-25 s of CPU on py-evm)
