"""Property test of the LotRegistry's quantities (anvil only, for speed): a Hypothesis state
machine opens lots, splits them, hands them between two factories and records transformations with
random inputs and quantities, valid and invalid alike (beyond what remains, foreign lots, wrong units,
duplicates). A Python model predicts each step; the chain must agree (success, or the predicted custom
error), and after every step, for every lot:

- nothing is consumed or split off beyond what was held: ``remaining >= 0`` and
  ``remaining + consumed + sum(children's quantity) == quantity``;
- its remaining, consumed, status and custodian match the model, and its lineage (``inputsOf``,
  ``outputsOf``) is what the model recorded.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from anvil_pool import fresh_anvil_world
from eth_account.signers.local import LocalAccount
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from contracts.chain import Chain, dev_accounts
from contracts.errors import ContractRevert
from contracts.lots import (
    OPEN_ACTION,
    TRANSFER_ACTION,
    LotRegistryClient,
    LotStatus,
    TransformInput,
    TransformOutput,
    lot_key,
)

GTIN = "04006381333931"
T0 = 1_764_400_000_000
UNITS = ("kg", "pcs")


@dataclass
class ModelLot:
    key: bytes
    quantity: int
    unit: str
    custodian: str
    remaining: int
    consumed: int = 0
    children: list[bytes] = field(default_factory=list)
    status: LotStatus = LotStatus.ACTIVE
    inputs: list[tuple[bytes, int]] = field(default_factory=list)
    outputs: list[bytes] = field(default_factory=list)


@dataclass(frozen=True)
class World:
    """The deployed world every example starts from (:func:`anvil_pool.fresh_anvil_world`)."""

    lots: str


def build_world(chain: Chain) -> World:
    """A gate admitting two factories to open and hold lots, the LotRegistry."""
    a = dev_accounts(4)
    op, factories = a[0], a[1:3]
    gate_address = chain.deploy("StaticAdmissionGate", op, op.address).contract_address
    assert gate_address is not None
    gate = chain.contract("StaticAdmissionGate", gate_address)
    for party in factories:
        for action in (OPEN_ACTION, TRANSFER_ACTION):
            chain.transact(gate.functions.setAdmitted(party.address, action, True), op)
    lots = chain.deploy("LotRegistry", op, op.address, gate_address).contract_address
    assert lots is not None
    return World(lots=lots)


class LotsMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.chain, world = fresh_anvil_world("props:lots", build_world)
        a = dev_accounts(4)
        self.factories: list[LocalAccount] = [a[1], a[2]]
        self.outsider = a[3]
        self.lots = LotRegistryClient(self.chain, world.lots)
        self.model: dict[bytes, ModelLot] = {}
        self.names = 0
        self.transformations = 0

    # ------------------------------------------------------------ helpers

    def _name(self) -> str:
        self.names += 1
        return f"L{self.names}"

    def _expect(self, error: str | None, action) -> bool:  # type: ignore[no-untyped-def]
        try:
            action()
        except ContractRevert as e:
            assert error is not None, f"unexpected revert {e.error_name}: {e}"
            assert e.error_name == error, f"expected {error}, got {e.error_name}: {e}"
            return False
        assert error is None, f"expected {error}, but it succeeded"
        return True

    def _pick(self, index: int) -> ModelLot | None:
        if not self.model:
            return None
        keys = list(self.model)
        return self.model[keys[index % len(keys)]]

    @staticmethod
    def _spent_error(lot: ModelLot) -> str | None:
        if lot.status is LotStatus.SPLIT:
            return "LotRegistryLotFullySplit"
        if lot.status is LotStatus.CONSUMED:
            return "LotRegistryLotConsumed"
        return None

    # ------------------------------------------------------------ rules

    @rule(who=st.integers(0, 1), quantity=st.integers(1, 10**6), unit=st.sampled_from(UNITS))
    def open_lot(self, who: int, quantity: int, unit: str) -> None:
        party = self.factories[who]
        name = self._name()
        self.lots.open_lot(
            party,
            lot_id=name,
            gtin=GTIN,
            quantity=quantity,
            unit=unit,
            produced_from_ms=T0,
            produced_to_ms=T0,
        )
        key = lot_key(name, party.address)
        self.model[key] = ModelLot(
            key=key, quantity=quantity, unit=unit, custodian=party.address, remaining=quantity
        )

    @rule(index=st.integers(0, 10**6), cuts=st.lists(st.integers(0, 10**6), min_size=1, max_size=3))
    def split(self, index: int, cuts: list[int]) -> None:
        lot = self._pick(index)
        if lot is None:
            return
        party = next(f for f in self.factories if f.address == lot.custodian)
        quantities = [c % (lot.remaining + 2) for c in cuts]  # may be zero or too much
        names = [self._name() for _ in quantities]
        error = self._spent_error(lot)
        if error is None and 0 in quantities:
            error = "LotRegistryZeroQuantity"
        elif error is None and sum(quantities) > lot.remaining:
            error = "LotRegistrySplitExceedsRemaining"
        if not self._expect(
            error, lambda: self.lots.split_lot(party, lot.key, dict(zip(names, quantities, strict=True)))
        ):
            return
        for name, q in zip(names, quantities, strict=True):
            key = lot_key(name, party.address)
            self.model[key] = ModelLot(
                key=key, quantity=q, unit=lot.unit, custodian=party.address, remaining=q
            )
            lot.children.append(key)
            lot.remaining -= q
        if lot.remaining == 0:
            lot.status = LotStatus.SPLIT

    @rule(index=st.integers(0, 10**6))
    def hand_over(self, index: int) -> None:
        lot = self._pick(index)
        if lot is None:
            return
        giver = next(f for f in self.factories if f.address == lot.custodian)
        taker = next(f for f in self.factories if f.address != lot.custodian)
        if self._expect(
            self._spent_error(lot), lambda: self.lots.propose_transfer(giver, lot.key, taker.address)
        ):
            self.lots.accept_transfer(taker, lot.key)
            lot.custodian = taker.address

    @rule(
        who=st.integers(0, 2),
        picks=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 10**6)), min_size=1, max_size=4),
        wrong_unit=st.integers(0, 9),
        outputs=st.lists(st.integers(1, 10**6), min_size=1, max_size=3),
    )
    def transform(self, who: int, picks: list[tuple[int, int]], wrong_unit: int, outputs: list[int]) -> None:
        if not self.model:
            return
        party = self.outsider if who == 2 else self.factories[who]
        keys = list(self.model)
        inputs: list[tuple[ModelLot, int, str]] = []
        for index, q in picks:
            lot = self.model[keys[index % len(keys)]]
            inputs.append((lot, q % (lot.remaining + 2), lot.unit))
        if wrong_unit == 0:  # now and then, the first input declared in the other unit
            lot, q, unit = inputs[0]
            inputs[0] = (lot, q, UNITS[1 - UNITS.index(unit)])
        names = [self._name() for _ in outputs]
        error = "LotRegistryNotAdmitted" if who == 2 else None
        seen: set[bytes] = set()
        for lot, q, unit in inputs:
            if error is not None:
                break
            if lot.key in seen:
                error = "LotRegistryDuplicateInput"
            elif lot.custodian != party.address:
                error = "LotRegistryNotCustodian"
            else:
                error = self._spent_error(lot)
                if error is None and unit != lot.unit:
                    error = "LotRegistryUnitMismatch"
                elif error is None and q == 0:
                    error = "LotRegistryZeroQuantity"
                elif error is None and q > lot.remaining:
                    error = "LotRegistryConsumptionExceedsRemaining"
            seen.add(lot.key)
        ins = [TransformInput(lot=lot.key, quantity=q, unit=unit) for lot, q, unit in inputs]
        outs = [
            TransformOutput(
                lot_id=n, gtin=GTIN, quantity=q, unit="pcs", produced_from_ms=T0, produced_to_ms=T0
            )
            for n, q in zip(names, outputs, strict=True)
        ]
        done: list[int] = []
        if not self._expect(
            error, lambda: done.append(self.lots.transform(party, ins, outs).transformation_id)
        ):
            return
        self.transformations += 1
        assert done == [self.transformations]
        out_keys = [lot_key(n, party.address) for n in names]
        for lot, q, _ in inputs:
            lot.remaining -= q
            lot.consumed += q
            lot.outputs.extend(out_keys)
            if lot.remaining == 0:
                lot.status = LotStatus.CONSUMED
        for key, q in zip(out_keys, outputs, strict=True):
            self.model[key] = ModelLot(
                key=key,
                quantity=q,
                unit="pcs",
                custodian=party.address,
                remaining=q,
                inputs=[(lot.key, q_in) for lot, q_in, _ in inputs],
            )

    # ------------------------------------------------------------ invariants

    @invariant()
    def quantities_are_conserved_and_match_the_model(self) -> None:
        for key, m in self.model.items():
            lot = self.lots.lot(key)
            children = self.lots.children(key)
            assert lot.remaining >= 0
            assert (
                lot.remaining + lot.consumed + sum(self.model[c].quantity for c in children) == lot.quantity
            )
            assert children == m.children
            assert (lot.quantity, lot.remaining, lot.consumed) == (m.quantity, m.remaining, m.consumed)
            assert (lot.status, lot.custodian, lot.unit) == (m.status, m.custodian, m.unit)

    @invariant()
    def lineage_matches_the_model(self) -> None:
        assert self.lots.transformation_count() == self.transformations
        for key, m in self.model.items():
            assert self.lots.inputs_of(key) == m.inputs
            assert self.lots.outputs_of(key) == m.outputs


LotsMachine.TestCase.settings = settings(
    max_examples=10,
    stateful_step_count=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestLotQuantities = LotsMachine.TestCase
pytestmark = pytest.mark.scenario  # a state machine: about 5 s on anvil (10-25 s of CPU on py-evm)
