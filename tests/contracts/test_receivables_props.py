"""Property tests of the Receivables (anvil only, for speed): a Hypothesis state machine
drives one receivable through random splits, transfers, offers, withdrawals, financing, repayment,
time travel past the grace period and defaults, valid and invalid alike, settling in a token that may
freeze any party (``FreezableToken``): a frozen holder's payment is escrowed at repayment (pull payment)
and claimed later. A Python model predicts each step; the chain must agree (success, or the predicted
custom error), and after every step:

- the leaf parts' amounts sum to the face value, and each part (and its escrow) matches the model;
- the token is conserved (every unit minted is in some party's balance or in the contract's escrow, and
  the contract holds exactly the escrowed total);
- no part is financed twice, paid twice, or moves after settlement.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from anvil_pool import fresh_anvil_world
from backing import Deliveries
from eth_account.signers.local import LocalAccount
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from support import TestConsortium
from web3.types import RPCEndpoint

from contracts.certifier import SPEC_ACTION, QualityCertifierClient
from contracts.chain import Chain, dev_accounts
from contracts.credit import PUBLISH_ACTION, CreditRegistryClient
from contracts.deploy import deploy_suite
from contracts.errors import ContractRevert
from contracts.lots import OPEN_ACTION, TRANSFER_ACTION, LotRegistryClient, deploy_supply_chain
from contracts.orders import PLACE_ACTION, PurchaseOrdersClient, deploy_purchase_orders
from contracts.receivables import (
    CREATE_ACTION,
    FINANCE_ACTION,
    GRACE_PERIOD,
    HOLD_ACTION,
    MAX_PARTS,
    PartState,
    ReceivablesClient,
    StablecoinClient,
)
from tests.helpers.credit_lines import attest, publish_records

DAY = 86_400
MINT = 10**12
LEAF = (PartState.ACTIVE, PartState.OFFERED, PartState.FINANCED, PartState.DEFAULTED)


@dataclass
class ModelPart:
    holder: str
    amount: int
    state: PartState = PartState.ACTIVE
    offered_to: str | None = None
    min_price: int = 0
    financed_price: int = 0
    escrow: int = 0
    quota: int = 0


@dataclass
class Model:
    face: int
    due: int
    parts: dict[int, ModelPart] = field(default_factory=dict)
    paid: bool = False
    past_grace: bool = False
    next_id: int = 1


@dataclass(frozen=True)
class World:
    """The deployed world every example starts from (:func:`anvil_pool.fresh_anvil_world`)."""

    gate: str
    coin: str
    rec: str
    order: bytes  # the accepted order and the certified lot delivered to the debtor that back the receivable
    lot: bytes


def build_world(chain: Chain) -> World:
    """A gate admitting the debtor, three holders and two banks; the token minted to the debtor and the
    banks and approved for the Receivables; an order of the debtor's with the first holder, delivered in
    a certified lot; a record of each holder from the oracle, valid for ten years (the credit line
    itself: test_credit_line.py). Each example starts from a snapshot after it."""
    a = dev_accounts(9)
    op, debtor, holders, banks = a[0], a[1], a[2:5], a[5:7]
    suite = deploy_suite(chain, op)
    gate_address = chain.deploy("StaticAdmissionGate", op, op.address).contract_address
    assert gate_address is not None
    gate = chain.contract("StaticAdmissionGate", gate_address)
    supply = deploy_supply_chain(chain, op, deployment=suite, gate_address=gate_address)
    orders = deploy_purchase_orders(chain, op, deployment=suite, gate_address=gate_address)
    coin_address = chain.deploy("FreezableToken", op, op.address).contract_address
    assert coin_address is not None
    credit = chain.deploy("CreditRegistry", op, op.address, gate_address, op.address).contract_address
    assert credit is not None
    sources = (orders, supply["LotRegistry"], supply["QualityCertifier"], credit)
    rec = chain.deploy("Receivables", op, op.address, gate_address, coin_address, *sources).contract_address
    assert rec is not None
    coin = StablecoinClient(chain, coin_address)
    admissions = [(debtor, a) for a in (CREATE_ACTION, PLACE_ACTION, SPEC_ACTION, TRANSFER_ACTION)]
    admissions += [(holders[0], OPEN_ACTION)] + [(h, HOLD_ACTION) for h in holders]
    admissions += [(b, FINANCE_ACTION) for b in banks] + [(a[8], PUBLISH_ACTION)]
    for party, action in admissions:
        chain.transact(gate.functions.setAdmitted(party.address, action, True), op)
    for party in [debtor, *banks]:
        coin.mint(op, party.address, MINT)
        coin.approve(party, rec, MINT)
    publish_records(
        CreditRegistryClient(chain, credit), a[8], [h.address for h in holders], valid_for=3650 * DAY
    )
    deliveries = Deliveries(
        chain=chain,
        lots=LotRegistryClient(chain, sources[1]),
        certifier=QualityCertifierClient(chain, sources[2]),
        orders=PurchaseOrdersClient(chain, orders),
        anchor=suite.contract(chain, "ReadingAnchor"),
        admin=op,
        consortium=TestConsortium(chain, suite),
        buyer=debtor,
        supplier=holders[0],
    ).setup()
    order, lot = deliveries.order("PO-PROPS"), deliveries.lot("LOT-PROPS")
    return World(gate=gate_address, coin=coin_address, rec=rec, order=order, lot=lot)


class ReceivablesMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.chain, world = fresh_anvil_world("props:receivables", build_world)
        a = dev_accounts(8)
        self.op, self.debtor = a[0], a[1]
        self.holders: list[LocalAccount] = [a[2], a[3], a[4]]
        self.banks: list[LocalAccount] = [a[5], a[6]]
        self.outsider = a[7]
        self.oracle = dev_accounts(9)[8]
        self.by_address = {x.address: x for x in a}
        self.token = self.chain.contract("FreezableToken", world.coin)
        self.frozen: set[str] = set()
        self.rec = ReceivablesClient(self.chain, world.rec)
        self.backing = {"order_id": world.order, "lots": [world.lot]}
        self.coin = StablecoinClient(self.chain, world.coin)
        self.minted = MINT * 3
        self.model: Model | None = None

    # ------------------------------------------------------------ helpers

    def _expect(self, error: str | None, action) -> bool:  # type: ignore[no-untyped-def]
        """Run ``action``; it must succeed when ``error`` is None, else revert with ``error``."""
        try:
            action()
        except ContractRevert as e:
            assert error is not None, f"unexpected revert {e.error_name}: {e}"
            assert e.error_name == error, f"expected {error}, got {e.error_name}: {e}"
            return False
        assert error is None, f"expected {error}, but it succeeded"
        return True

    def _pick(self, index: int) -> tuple[int, ModelPart]:
        m = self.model
        assert m is not None
        ids = sorted(m.parts)
        pid = ids[index % len(ids)]
        return pid, m.parts[pid]

    def _now(self) -> int:
        return int(self.chain.block()["timestamp"])

    # ------------------------------------------------------------ rules

    @initialize(face=st.integers(2, 10**8))
    def confirm(self, face: int) -> None:
        due = self._now() + 10 * DAY
        rid, _ = self.rec.confirm(
            self.debtor,
            supplier=self.holders[0].address,
            face_value=face,
            due_date=due,
            reference=b"\1" * 32,
            **self.backing,
        )
        assert rid == 1
        self.model = Model(
            face=face,
            due=due,
            parts={1: ModelPart(holder=self.holders[0].address, amount=face, quota=MAX_PARTS - 1)},
        )
        self.model.next_id = 2

    @rule(
        index=st.integers(0, 10**6),
        n=st.integers(1, 17),
        cuts=st.lists(st.integers(0, 10**8), min_size=16, max_size=16),
        who=st.lists(st.integers(0, 2), min_size=17, max_size=17),
        skew=st.sampled_from([0, 0, 0, 1, -1]),
        as_holder=st.booleans(),
    )
    def split(self, index: int, n: int, cuts: list[int], who: list[int], skew: int, as_holder: bool) -> None:
        m = self.model
        assert m is not None
        pid, p = self._pick(index)
        # amounts: n - 1 cut points inside the part (duplicates give zero amounts), skew breaks the sum
        points = sorted(c % (p.amount + 1) for c in cuts[: max(n - 1, 0)])
        bounds = [0, *points, p.amount]
        amounts = [bounds[i + 1] - bounds[i] for i in range(n)]
        amounts[-1] = max(0, amounts[-1] + skew)
        holders = [self.holders[w].address for w in who[:n]]
        sender = self.by_address[p.holder] if as_holder else self.outsider
        if sender.address != p.holder:
            error: str | None = "ReceivablesNotHolder"
        elif p.state is not PartState.ACTIVE:
            error = "ReceivablesPartNotActive"
        elif not 2 <= n <= 16:
            error = "ReceivablesInvalidSplit"
        elif 0 in amounts:
            error = "ReceivablesZeroSplitAmount"
        elif sum(amounts) != p.amount:
            error = "ReceivablesSplitSumMismatch"
        elif n > p.quota:
            error = "ReceivablesSplitQuotaExceeded"
        else:
            error = None
        fn = self.rec.contract.functions.split(pid, amounts, holders)
        if self._expect(error, lambda: self.chain.transact(fn, sender)):
            p.state = PartState.SPLIT
            share, extra = divmod(p.quota - n, n)
            p.quota = 0
            for i, (amount, holder) in enumerate(zip(amounts, holders, strict=True)):
                quota = share + 1 if i < extra else share
                m.parts[m.next_id] = ModelPart(holder=holder, amount=amount, quota=quota)
                m.next_id += 1
            assert len(m.parts) + sum(q.quota for q in m.parts.values()) <= MAX_PARTS

    @rule(index=st.integers(0, 10**6), to=st.integers(0, 2))
    def transfer(self, index: int, to: int) -> None:
        pid, p = self._pick(index)
        target = self.holders[to].address
        if p.state is not PartState.ACTIVE:
            error: str | None = "ReceivablesPartNotActive"
        elif target == p.holder:
            error = "ReceivablesInvalidHolder"
        else:
            error = None
        sender = self.by_address[p.holder]
        if self._expect(error, lambda: self.rec.transfer(sender, pid, target)):
            p.holder = target

    @rule(index=st.integers(0, 10**6), bank=st.integers(0, 1), frac=st.integers(0, 1001))
    def offer(self, index: int, bank: int, frac: int) -> None:
        m = self.model
        assert m is not None
        pid, p = self._pick(index)
        b = self.banks[bank].address
        min_price = p.amount * frac // 1000
        if p.state is not PartState.ACTIVE:
            error: str | None = "ReceivablesPartNotActive"
        elif m.past_grace:
            error = "ReceivablesPastDue"
        elif b == p.holder:
            error = "ReceivablesInvalidBank"
        elif not 0 < min_price <= p.amount:
            error = "ReceivablesInvalidMinPrice"
        else:
            error = None
        sender = self.by_address[p.holder]
        if self._expect(error, lambda: self.rec.offer(sender, pid, bank=b, min_price=min_price)):
            p.state, p.offered_to, p.min_price = PartState.OFFERED, b, min_price

    @rule(index=st.integers(0, 10**6))
    def withdraw(self, index: int) -> None:
        pid, p = self._pick(index)
        error = None if p.state is PartState.OFFERED else "ReceivablesNotOffered"
        sender = self.by_address[p.holder]
        if self._expect(error, lambda: self.rec.withdraw_offer(sender, pid)):
            p.state, p.offered_to, p.min_price = PartState.ACTIVE, None, 0

    @rule(index=st.integers(0, 10**6), bank=st.integers(0, 1), frac=st.integers(0, 1100))
    def finance(self, index: int, bank: int, frac: int) -> None:
        m = self.model
        assert m is not None
        pid, p = self._pick(index)
        b = self.banks[bank]
        if p.state is PartState.OFFERED and p.offered_to is not None:
            b = (
                self.by_address[p.offered_to] if frac % 5 else self.banks[1 - bank]
            )  # sometimes the wrong bank
        # just below the offer's minimum when frac is 0 (never negative: a uint256 on chain)
        price = max(0, p.min_price + (p.amount - p.min_price) * frac // 1000 - (1 if frac == 0 else 0))
        if p.state is not PartState.OFFERED:
            error: str | None = "ReceivablesNotOffered"
        elif b.address != p.offered_to:
            error = "ReceivablesNotOfferedTo"
        elif m.past_grace:
            error = "ReceivablesPastDue"
        elif not p.min_price <= price <= p.amount:
            error = "ReceivablesPriceOutOfRange"
        elif b.address in self.frozen or p.holder in self.frozen:
            error = "FreezableTokenFrozen"
        else:
            error = None
        line = attest(self.rec, self.oracle, b.address, pid)
        if self._expect(error, lambda: self.rec.finance(b, pid, price, line)):
            assert p.financed_price == 0, "financed twice"
            p.state, p.holder, p.offered_to, p.min_price = PartState.FINANCED, b.address, None, 0
            p.financed_price = price

    @rule()
    def repay(self) -> None:
        m = self.model
        assert m is not None
        if m.paid:
            error: str | None = "ReceivablesAlreadyPaid"
        elif self.debtor.address in self.frozen:
            error = "FreezableTokenFrozen"
        else:
            error = None
        before = {a: self.coin.balance_of(a) for a in self.by_address}
        if self._expect(error, lambda: self.rec.repay(self.debtor, 1)):
            m.paid = True
            expected = dict.fromkeys(self.by_address, 0)
            for p in m.parts.values():
                if p.state in LEAF:
                    expected[self.debtor.address] -= p.amount
                    if p.holder in self.frozen:  # escrowed for the part, not lost, not blocking
                        p.escrow = p.amount
                    else:
                        expected[p.holder] += p.amount
                    p.state, p.offered_to, p.min_price = PartState.PAID, None, 0
            after = {a: self.coin.balance_of(a) for a in self.by_address}
            assert {a: after[a] - before[a] for a in after} == expected

    @rule(who=st.integers(0, 5), freeze=st.booleans())
    def set_frozen(self, who: int, freeze: bool) -> None:
        """The token's issuer freezes or unfreezes a holder, a bank or the debtor."""
        party = [*self.holders, *self.banks, self.debtor][who].address
        self.chain.transact(self.token.functions.setFrozen(party, freeze), self.op)
        if freeze:
            self.frozen.add(party)
        else:
            self.frozen.discard(party)

    @rule(index=st.integers(0, 10**6))
    def claim_escrow(self, index: int) -> None:
        pid, p = self._pick(index)
        if p.escrow == 0:
            error: str | None = "ReceivablesNothingEscrowed"
        elif p.holder in self.frozen:
            error = "FreezableTokenFrozen"
        else:
            error = None
        before = self.coin.balance_of(p.holder)
        if self._expect(error, lambda: self.rec.claim_escrow(self.outsider, pid)):
            assert self.coin.balance_of(p.holder) - before == p.escrow
            p.escrow = 0

    @rule()
    def pass_grace_period(self) -> None:
        m = self.model
        assert m is not None
        if m.past_grace:
            return
        self.chain.warp(m.due + GRACE_PERIOD + 60)
        self.chain.w3.provider.make_request(RPCEndpoint("evm_mine"), [])
        m.past_grace = True

    @rule(index=st.integers(0, 10**6))
    def mark_defaulted(self, index: int) -> None:
        m = self.model
        assert m is not None
        pid, p = self._pick(index)
        if p.state not in (PartState.ACTIVE, PartState.OFFERED, PartState.FINANCED):
            error: str | None = "ReceivablesNotDefaultable"
        elif not m.past_grace:
            error = "ReceivablesGracePeriodRunning"
        else:
            error = None
        if self._expect(error, lambda: self.rec.mark_defaulted(self.outsider, pid)):
            p.state, p.offered_to, p.min_price = PartState.DEFAULTED, None, 0

    # ------------------------------------------------------------ invariants

    @invariant()
    def chain_agrees_with_the_model(self) -> None:
        """Every part equals the model's; the leaves sum to the face value; offers and payment match."""
        if self.model is None:
            return
        chain_parts = {pid: self.rec.part(pid) for pid in self.model.parts}
        for pid, p in self.model.parts.items():
            assert self.rec.escrow_of(pid) == p.escrow, pid
            c = chain_parts[pid]
            assert (c.holder, c.amount, c.state, c.offered_to, c.min_price, c.financed_price) == (
                p.holder,
                p.amount,
                p.state,
                p.offered_to,
                p.min_price,
                p.financed_price,
            ), pid
            assert c.split_quota == p.quota, pid
        leaves = self.rec.parts_of(1)
        assert leaves == sorted(i for i, c in chain_parts.items() if c.state is not PartState.SPLIT)
        assert sum(chain_parts[i].amount for i in leaves) == self.model.face
        offered: dict[str, list[int]] = {b.address: [] for b in self.banks}
        for pid, p in self.model.parts.items():
            if p.offered_to is not None:
                offered[p.offered_to].append(pid)
        assert {b: sorted(self.rec.offers_to(b)) for b in offered} == offered
        assert self.rec.receivable(1).paid == self.model.paid

    @invariant()
    def stablecoin_is_conserved(self) -> None:
        assert self.coin.total_supply() == self.minted
        escrowed = sum(p.escrow for p in self.model.parts.values()) if self.model else 0
        assert sum(self.coin.balance_of(a) for a in self.by_address) + escrowed == self.minted
        assert self.coin.balance_of(self.rec.address) == escrowed == self.rec.escrow_total()


ReceivablesMachine.TestCase.settings = settings(
    max_examples=8,
    stateful_step_count=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestReceivablesMachine = ReceivablesMachine.TestCase
pytestmark = pytest.mark.scenario  # a state machine: about 5 s on anvil (10-25 s of CPU on py-evm)
