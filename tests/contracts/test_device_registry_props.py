"""Property tests of the DeviceRegistry's revocation rules (anvil only, for speed): a
Hypothesis state machine drives one device through random revocations by its owner, by the operator
and by the operator's ruling with a reason, and through evidence pinned by a verdict, valid and
invalid alike. A Python model predicts each step; the chain must agree (success, or the predicted
custom error), and after every step:

- the revocation time in force is the model's, and it only ever moved earlier;
- an owner's revocation was never later than now, nor at or before pinned evidence;
- pinned evidence stays active unless the operator ruled otherwise;
- ``isActiveAt`` agrees with the model around every time that matters.

Times: the device is enrolled active from its enrollment block's time (the registry refuses earlier
activations, issue 12.2), then the chain's clock moves 1000 minutes on before the machine starts;
pinned evidence and past revocations lie on a one-minute grid after the activation, future ones an
hour or more ahead, so "now" (the block time) is never ambiguous.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from anvil_pool import fresh_anvil_world
from eth_utils import keccak
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from contracts.chain import Chain, dev_accounts
from contracts.errors import ContractRevert
from device_attestation.birth import birth_digest, sign_possession
from device_attestation.keys import DeviceKey
from device_attestation.signing import sign_digest

MINUTE = 60_000
UINT64_MAX = 2**64 - 1
CA_KEY = DeviceKey.generate("p256")
SERIAL = "SN-PROPS-1"
DEVICE = keccak(SERIAL.encode())
ENROLLER_ROLE = keccak(b"supet.role.enroller")
EVIDENCE_ROLE = keccak(b"supet.role.evidence")

#: A requested revocation time: "now" (0), a past minute (-1: just before activation), a future hour, the end.
times = st.one_of(
    st.just(("now", 0)),
    st.tuples(st.just("past"), st.integers(-1, 999)),
    st.tuples(st.just("future"), st.integers(1, 1000)),
    st.just(("max", 0)),
)


@dataclass
class Model:
    active_from: int
    revoked_at: int = 0  # 0: not revoked
    pinned: int | None = None
    ruled_before_pin: bool = False
    history: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class World:
    """The enrolled device every example starts from (:func:`anvil_pool.fresh_anvil_world`)."""

    registry: str
    active_from: int


def build_world(chain: Chain) -> World:
    """The registry deployed, the device enrolled by its owner (active from its enrollment block's time),
    the clock moved 1000 minutes on, the pinner granted its role.

    The snapshot's latest block is then 1000 minutes ahead of the wall clock, so the blocks an example
    mines follow it one second apart, as on a chain built for the example."""
    op, owner, pinner, _ = dev_accounts(4)
    no_pinner_yet = "0x" + "00" * 20  # the admin grants EVIDENCE_ROLE below
    address = chain.deploy("DeviceRegistry", op, op.address, no_pinner_yet).contract_address
    assert address is not None
    c = chain.contract("DeviceRegistry", address)
    fns = c.functions
    ca_x, ca_y = (v.to_bytes(32, "big") for v in (CA_KEY.public_key.x, CA_KEY.public_key.y))
    chain.transact(fns.trustCA(ca_x, ca_y, "props"), op)
    ca = chain.call(fns.caKeyHashOf(ca_x, ca_y))
    chain.transact(fns.grantRole(ENROLLER_ROLE, owner.address), op)
    key = DeviceKey.generate("secp256k1")
    fingerprint = keccak(b"fp")
    birth = sign_digest(CA_KEY, birth_digest(SERIAL, key.public_key, fingerprint))
    proof = sign_possession(
        key, device_id=SERIAL, owner=owner.address, chain_id=chain.chain_id, registry=address
    )
    chain.transact(
        fns.enrollSecp256k1(DEVICE, key.public_key.eth_address, fingerprint, ca, 0, birth, proof), owner
    )
    active_from = int(chain.call(fns.device(DEVICE))[3])  # the enrollment block's time
    chain.warp(active_from // 1000 + 1000 * 60)
    chain.transact(fns.grantRole(EVIDENCE_ROLE, pinner.address), op)  # mined then
    return World(registry=address, active_from=active_from)


class RevocationMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.chain, world = fresh_anvil_world("props:device-registry", build_world)
        self.op, self.owner, self.pinner, self.outsider = dev_accounts(4)
        self.c = self.chain.contract("DeviceRegistry", world.registry)
        self.now0 = world.active_from + 1000 * MINUTE
        self.model = Model(active_from=world.active_from)

    # ------------------------------------------------------------ helpers

    def _now(self) -> int:
        return int(self.chain.block()["timestamp"]) * 1000

    def _at(self, choice: tuple[str, int]) -> int:
        kind, k = choice
        if kind == "now":
            return 0
        if kind == "past":
            return self.now0 - 1000 * MINUTE + k * MINUTE
        if kind == "future":
            return self.now0 + 60 * MINUTE * k
        return UINT64_MAX

    def _predict(self, requested: int, *, owner: bool, ruling: bool) -> tuple[str | None, int]:
        """The error the registry must give (None: success) and the effective time."""
        m = self.model
        now = self._now()
        at = now if requested == 0 else requested
        if owner and at > now + MINUTE:  # the next block's time is at most a little after the last's
            return "DeviceRegistryRevocationInFuture", at
        if at < m.active_from:
            return "DeviceRegistryRevocationBeforeActivation", at
        if m.revoked_at and at >= m.revoked_at:
            return "DeviceRegistryRevocationNotEarlier", at
        if not ruling and m.pinned is not None and at <= m.pinned:
            return "DeviceRegistryEvidencePinned", at
        return None, at

    def _revoke(self, choice: tuple[str, int], *, sender, owner: bool, ruling: bool) -> None:  # type: ignore[no-untyped-def]
        requested = self._at(choice)
        expected, at = self._predict(requested, owner=owner, ruling=ruling)
        fn = (
            self.c.functions.revokeWithReason(DEVICE, requested, "ruling")
            if ruling
            else self.c.functions.revoke(DEVICE, requested)
        )
        try:
            self.chain.transact(fn, sender)
        except ContractRevert as e:
            assert expected is not None, f"unexpected revert {e.error_name}: {e}"
            assert e.error_name == expected, f"expected {expected}, got {e.error_name}: {e}"
            return
        assert expected is None, f"expected {expected}, but revoking at {requested} succeeded"
        on_chain = int(self.chain.call(self.c.functions.device(DEVICE))[4])
        if requested == 0:  # "now": the block's time, at or after what we saw
            assert at <= on_chain <= at + MINUTE
        else:
            assert on_chain == at
        if owner:
            assert on_chain <= self._now(), "an owner's revocation is never later than now"
        m = self.model
        if m.pinned is not None and on_chain <= m.pinned:
            assert ruling, "only a ruling reaches back before pinned evidence"
            m.ruled_before_pin = True
        m.revoked_at = on_chain
        m.history.append(on_chain)

    # ------------------------------------------------------------ rules

    @rule(choice=times)
    def owner_revokes(self, choice: tuple[str, int]) -> None:
        self._revoke(choice, sender=self.owner, owner=True, ruling=False)

    @rule(choice=times)
    def operator_revokes(self, choice: tuple[str, int]) -> None:
        self._revoke(choice, sender=self.op, owner=False, ruling=False)

    @rule(choice=times)
    def operator_rules(self, choice: tuple[str, int]) -> None:
        self._revoke(choice, sender=self.op, owner=False, ruling=True)

    @rule(choice=times)
    def outsider_is_refused(self, choice: tuple[str, int]) -> None:
        try:
            self.chain.transact(self.c.functions.revoke(DEVICE, self._at(choice)), self.outsider)
        except ContractRevert as e:
            assert e.error_name == "DeviceRegistryNotOwnerOrOperator"
        else:  # pragma: no cover - a failure report
            raise AssertionError("an outsider revoked the device")

    @rule(k=st.integers(0, 999))
    def verdict_pins(self, k: int) -> None:
        """A verdict used a reading at minute ``k`` (the certifier pins only readings of an active device)."""
        m = self.model
        ts = m.active_from + k * MINUTE
        if m.revoked_at and ts >= m.revoked_at:
            return
        self.chain.transact(self.c.functions.pinEvidence([DEVICE], [ts]), self.pinner)
        m.pinned = ts if m.pinned is None else max(m.pinned, ts)

    # ------------------------------------------------------------ invariants

    @invariant()
    def registry_agrees_with_the_model(self) -> None:
        m = self.model
        device = self.chain.call(self.c.functions.device(DEVICE))
        assert int(device[4]) == m.revoked_at
        pinned, latest = self.chain.call(self.c.functions.pinnedEvidence(DEVICE))
        assert (bool(pinned), int(latest) if pinned else None) == (m.pinned is not None, m.pinned)
        assert m.history == sorted(m.history, reverse=True), "a revocation time moved later"
        assert len(set(m.history)) == len(m.history)

    @invariant()
    def is_active_at_agrees(self) -> None:
        m = self.model
        probes = {m.active_from - 1, m.active_from, m.active_from + 1, self.now0, UINT64_MAX}
        for t in (m.revoked_at, m.pinned):
            if t:
                probes |= {t - 1, t, t + 1}
        for t in sorted(p for p in probes if 0 <= p <= UINT64_MAX):
            expected = t >= m.active_from and (m.revoked_at == 0 or t < m.revoked_at)
            assert bool(self.chain.call(self.c.functions.isActiveAt(DEVICE, t))) == expected, t
        if m.pinned is not None and not m.ruled_before_pin:
            assert self.chain.call(self.c.functions.isActiveAt(DEVICE, m.pinned)), (
                "pinned evidence stopped verifying"
            )


RevocationMachine.TestCase.settings = settings(
    max_examples=10,
    stateful_step_count=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestRevocationMachine = RevocationMachine.TestCase
pytestmark = pytest.mark.scenario  # a state machine: about 5 s on anvil (10-25 s of CPU on py-evm)
