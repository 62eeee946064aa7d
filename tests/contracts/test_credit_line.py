"""The enforced credit line (issue 15, Deliver 4): ``Receivables.finance`` takes the seller's oracle's
EIP-712 ``CreditLine`` statement and charges the part's amount to the seller's line; repayment frees it.

On both chains: every revert path of the line (no record, stale record, expired record, statement past
its deadline, wrong total or replayed statement, wrong signer or statement for another bank or part,
zero registry), several banks financing one factory, repayment freeing the line (a default does not,
a late cure does), the domain. Embedded only: the Hypothesis state machine "financed amounts never
exceed the line", where an oracle with a hidden limit signs only totals within it and banks replay
every statement they ever got.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import pytest
from anvil_pool import fresh_anvil_world
from backing import Deliveries
from eth_account.signers.local import LocalAccount
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from support import TestConsortium, reverts
from web3.logs import DISCARD

from contracts.certifier import SPEC_ACTION, QualityCertifierClient
from contracts.chain import Chain, dev_accounts
from contracts.credit import PUBLISH_ACTION, CreditRegistryClient, deploy_credit_registry
from contracts.credit_line import CreditLine, CreditLineError, LineAttestation, LineDomain
from contracts.deploy import deploy_suite
from contracts.deployment import Deployment
from contracts.errors import ContractRevert
from contracts.lots import OPEN_ACTION, TRANSFER_ACTION, LotRegistryClient, deploy_supply_chain
from contracts.orders import PLACE_ACTION, PurchaseOrdersClient, deploy_purchase_orders
from contracts.receivables import (
    CREATE_ACTION,
    FINANCE_ACTION,
    GRACE_PERIOD,
    HOLD_ACTION,
    PartState,
    ReceivablesClient,
    StablecoinClient,
    deploy_finance_settlement,
    receivable_reference,
)
from device_attestation.sdk import DeviceSigner
from tests.contracts._chain_time import now, set_time
from tests.helpers.credit_lines import HOUR, attest, publish_records

#: the contract's own rules: on anvil alone (tests/conftest.py CHAIN_KINDS)
pytestmark = pytest.mark.contract_logic

DAY = 86_400
ZERO = "0x" + "00" * 20
MINT = 10**12


@dataclass
class World:
    chain: Chain
    gate: Any
    credit: CreditRegistryClient
    rec: ReceivablesClient
    coin: StablecoinClient
    op: LocalAccount
    debtor: LocalAccount
    factory: LocalAccount
    tier2: LocalAccount
    bank: LocalAccount
    bank2: LocalAccount
    outsider: LocalAccount
    oracle: LocalAccount
    deliveries: Deliveries  # the factory's certified deliveries to the debtor that back receivables
    delivered: int = 0

    def confirm(self, face: int, *, ref: str) -> int:
        """A receivable of ``face`` owed to the factory, backed by a fresh accepted order and one
        certified lot delivered to the debtor (issue 15); its root part."""
        if self.deliveries.device is None:
            self.deliveries.setup()
        self.delivered += 1
        rid, _ = self.rec.confirm(
            self.debtor,
            supplier=self.factory.address,
            face_value=face,
            due_date=now(self.chain) + 90 * DAY,
            reference=receivable_reference(ref),
            order_id=self.deliveries.order(f"PO-{ref}-{self.delivered}"),
            lots=[self.deliveries.lot(f"LOT-{ref}-{self.delivered}")],
        )
        return self.rec.receivable(rid).root_part

    def offered(self, face: int, bank: LocalAccount, *, ref: str) -> int:
        root = self.confirm(face, ref=ref)
        self.rec.offer(self.factory, root, bank=bank.address, min_price=1)
        return root

    def line(self, bank: LocalAccount, part_id: int, **kw: Any) -> LineAttestation:
        return attest(self.rec, self.oracle, bank.address, part_id, **kw)


def _build(chain: Chain, accounts: list[LocalAccount], deployment: Deployment) -> World:
    """The Receivables on a static gate, with their evidence sources (issue 15.3) and credit registry;
    ``deployment`` is a suite's (its ReadingAnchor and DeviceRegistry judge the backing lots)."""
    op = accounts[0]
    gate_address = chain.deploy("StaticAdmissionGate", op, op.address).contract_address
    assert gate_address is not None
    supply = deploy_supply_chain(chain, op, deployment=deployment, gate_address=gate_address)
    orders = deploy_purchase_orders(chain, op, deployment=deployment, gate_address=gate_address)
    credit = deploy_credit_registry(chain, op, deployment=deployment, gate_address=gate_address)
    out = deploy_finance_settlement(
        chain,
        op,
        deployment=deployment,
        gate_address=gate_address,
        orders=orders,
        lots=supply["LotRegistry"],
        certifier=supply["QualityCertifier"],
        credit_registry=credit,
    )
    a = accounts
    w = World(
        chain=chain,
        gate=chain.contract("StaticAdmissionGate", gate_address),
        credit=CreditRegistryClient(chain, credit),
        rec=ReceivablesClient(chain, out["Receivables"]),
        coin=StablecoinClient(chain, out["TestStablecoin"]),
        op=op,
        debtor=a[1],
        factory=a[2],
        tier2=a[3],
        bank=a[5],
        bank2=a[6],
        outsider=a[7],
        oracle=a[8],
        deliveries=Deliveries(
            chain=chain,
            lots=LotRegistryClient(chain, supply["LotRegistry"]),
            certifier=QualityCertifierClient(chain, supply["QualityCertifier"]),
            orders=PurchaseOrdersClient(chain, orders),
            anchor=deployment.contract(chain, "ReadingAnchor"),
            admin=op,
            consortium=TestConsortium(chain, deployment),
            buyer=a[1],
            supplier=a[2],
        ),
    )
    admissions = [(w.debtor, a) for a in (CREATE_ACTION, PLACE_ACTION, SPEC_ACTION, TRANSFER_ACTION)]
    admissions += [(w.factory, OPEN_ACTION), (w.factory, HOLD_ACTION), (w.tier2, HOLD_ACTION)]
    admissions += [(w.bank, FINANCE_ACTION), (w.bank2, FINANCE_ACTION), (w.oracle, PUBLISH_ACTION)]
    for party, action in admissions:
        chain.transact(w.gate.functions.setAdmitted(party.address, action, True), op)
    for party in (w.debtor, w.bank, w.bank2):
        w.coin.mint(op, party.address, MINT)
        w.coin.approve(party, w.rec.address, MINT)
    return w


@pytest.fixture
def world(suite: Any) -> World:
    return _build(suite.chain, suite.accounts, suite.deployment)


def _events(world: World, name: str, result: Any) -> list[dict[str, Any]]:
    event = getattr(world.rec.contract.events, name)()
    return [dict(e["args"]) for e in event.process_receipt(result.receipt, errors=DISCARD)]


# ---------------------------------------------------------------- every revert path


def test_every_refusal_of_the_line(world: World) -> None:
    f, b = world.factory.address, world.bank
    part = world.offered(500_000, b, ref="INV-1")
    # the factory has no record yet
    with reverts("ReceivablesNoCreditRecord", factory=f):
        world.rec.finance(b, part, 500_000, world.line(b, part))
    publish_records(world.credit, world.oracle, [f], valid_for=30 * DAY)
    line = world.line(b, part)
    assert line.line.record_index == 0 and line.line.total == 500_000

    # a statement about another record than the current one (stale: a record published since)
    publish_records(world.credit, world.oracle, [f], valid_for=30 * DAY)
    with reverts("ReceivablesStaleCreditRecord", factory=f, attested=0, current=1):
        world.rec.finance(b, part, 500_000, line)
    # the statement's total is not the outstanding amount plus the part's
    for total in (499_999, 500_001, 0):
        bad = CreditLine(**{**_fields(world.line(b, part).line), "total": total})
        with reverts("ReceivablesLineTotalMismatch", factory=f, attested=total, expected=500_000):
            world.rec.finance(b, part, 500_000, bad.sign(world.oracle, world.rec.line_domain()))
    # signed by another key than the factory's oracle, or for another bank, part or contract
    domain = world.rec.line_domain()
    good = world.line(b, part).line
    forged = [
        good.sign(world.outsider, domain),
        CreditLine(**{**_fields(good), "bank": world.bank2.address}).sign(world.oracle, domain),
        CreditLine(**{**_fields(good), "part_id": part + 1}).sign(world.oracle, domain),
        good.sign(
            world.oracle, LineDomain(chain_id=world.chain.chain_id, verifying_contract=world.credit.address)
        ),
        LineAttestation(line=good, signature=b"\x01" * 65),
        LineAttestation(line=good, signature=b""),
    ]
    for bad in forged:
        with reverts("ReceivablesInvalidLineSignature", factory=f, oracle=world.oracle.address):
            world.rec.finance(b, part, 500_000, LineAttestation(line=good, signature=bad.signature))
    # past the statement's deadline (inclusive until then)
    t = now(world.chain)
    late = world.line(b, part, deadline=t + 10)
    set_time(world.chain, t + 11)
    with reverts("ReceivablesLineAttestationExpired", deadline=t + 10):
        world.rec.finance(b, part, 500_000, late)
    # the current record expired: no new financing until the oracle publishes a new one
    until = world.credit.current_record(f).valid_until
    set_time(world.chain, until)
    with reverts("ReceivablesCreditRecordExpired", factory=f, index=1, validUntil=until):
        world.rec.finance(b, part, 500_000, world.line(b, part, deadline=until + HOUR))
    assert world.rec.outstanding_of(f) == 0 and world.rec.part(part).state is PartState.OFFERED

    # a new record: the line opens again
    publish_records(world.credit, world.oracle, [f], valid_for=30 * DAY)
    result = world.rec.finance(b, part, 480_000, world.line(b, part))
    assert _events(world, "LineCharged", result) == [
        {"factory": f, "partId": part, "amount": 500_000, "outstanding": 500_000, "recordIndex": 2}
    ]
    assert world.rec.outstanding_of(f) == 500_000 and world.rec.line_of(part) == f


def _fields(line: CreditLine) -> dict[str, Any]:
    return {
        "factory": line.factory,
        "bank": line.bank,
        "part_id": line.part_id,
        "record_index": line.record_index,
        "total": line.total,
        "deadline": line.deadline,
    }


def test_a_statement_works_once(world: World) -> None:
    """Replay: a statement names the outstanding amount it was made for and its part."""
    f, b = world.factory.address, world.bank
    publish_records(world.credit, world.oracle, [f], valid_for=30 * DAY)
    p1 = world.offered(300_000, b, ref="INV-1")
    p2 = world.offered(200_000, b, ref="INV-2")
    l1, l2 = world.line(b, p1), world.line(b, p2)  # both made at outstanding 0
    world.rec.finance(b, p1, 300_000, l1)
    with reverts("ReceivablesNotOffered", partId=p1, state=PartState.FINANCED):
        world.rec.finance(b, p1, 300_000, l1)  # the same part again
    with reverts("ReceivablesLineTotalMismatch", factory=f, attested=200_000, expected=500_000):
        world.rec.finance(b, p2, 200_000, l2)  # made before p1 was financed: spent by it
    # l1 on another part: the signature covers the part
    with reverts("ReceivablesLineTotalMismatch", factory=f, attested=300_000, expected=500_000):
        world.rec.finance(b, p2, 200_000, l1)
    world.rec.finance(b, p2, 200_000, world.line(b, p2))
    assert world.rec.outstanding_of(f) == 500_000


def test_the_credit_registry_is_the_admins(world: World) -> None:
    fns = world.rec.contract.functions
    assert world.rec.credit_registry() == world.credit.address
    with reverts("AccessControlUnauthorizedAccount", account=world.outsider.address):
        world.chain.transact(fns.setCreditRegistry(world.outsider.address), world.outsider)
    with reverts("ReceivablesZeroCreditRegistry"):
        world.chain.transact(fns.setCreditRegistry(ZERO), world.op)
    with reverts("ReceivablesZeroCreditRegistry"):
        d = world.deliveries
        sources = (d.orders.address, d.lots.address, d.certifier.address)
        world.chain.deploy(
            "Receivables", world.op, world.op.address, world.gate.address, world.coin.address, *sources, ZERO
        )
    result = world.chain.transact(fns.setCreditRegistry(world.credit.address), world.op)
    (ev,) = world.rec.contract.events.CreditRegistrySet().process_receipt(result.receipt, errors=DISCARD)
    assert ev["args"]["registry"] == world.credit.address
    # the domain the client signs for is the contract's (ERC-5267)
    domain = world.chain.call(fns.eip712Domain())
    assert (domain[1], domain[2], domain[3], domain[4]) == (
        "supET Receivables",
        "1",
        world.chain.chain_id,
        world.rec.address,
    )
    assert world.rec.line_domain() == LineDomain(
        chain_id=world.chain.chain_id, verifying_contract=world.rec.address
    )


# ---------------------------------------------------------------- several banks, repayment, default


def test_several_banks_one_factory_and_repayment_frees_the_line(world: World) -> None:
    f = world.factory.address
    publish_records(world.credit, world.oracle, [f, world.tier2.address], valid_for=365 * DAY)
    # one receivable split with the tier-2 supplier: each seller's line is its own
    root = world.confirm(1_000_000, ref="INV-A")
    (mine, theirs), _ = world.rec.split(world.factory, root, [600_000, 400_000], [f, world.tier2.address])
    world.rec.offer(world.factory, mine, bank=world.bank.address, min_price=1)
    world.rec.offer(world.tier2, theirs, bank=world.bank2.address, min_price=1)
    other = world.offered(250_000, world.bank2, ref="INV-B")
    world.rec.finance(world.bank, mine, 590_000, world.line(world.bank, mine))
    world.rec.finance(world.bank2, other, 240_000, world.line(world.bank2, other))
    world.rec.finance(world.bank2, theirs, 390_000, world.line(world.bank2, theirs))
    assert world.rec.outstanding_of(f) == 850_000  # across both banks and both receivables
    assert world.rec.outstanding_of(world.tier2.address) == 400_000
    assert [world.rec.line_of(p) for p in (mine, other, theirs)] == [f, f, world.tier2.address]

    # repaying receivable A frees both sellers' parts of it
    rid = world.rec.part(mine).receivable_id
    result = world.rec.repay(world.debtor, rid)
    assert _events(world, "LineReleased", result) == [
        {"factory": f, "partId": mine, "amount": 600_000, "outstanding": 250_000},
        {"factory": world.tier2.address, "partId": theirs, "amount": 400_000, "outstanding": 0},
    ]
    assert world.rec.outstanding_of(f) == 250_000 and world.rec.line_of(mine) is None

    # a default keeps the line charged (the bank is still owed); the late cure frees it
    rid_b = world.rec.part(other).receivable_id
    set_time(world.chain, world.rec.receivable(rid_b).due_date + GRACE_PERIOD + 1)
    result = world.rec.mark_defaulted(world.outsider, other)
    assert _events(world, "LineReleased", result) == []
    assert world.rec.outstanding_of(f) == 250_000
    result = world.rec.repay(world.debtor, rid_b)
    assert [e["outstanding"] for e in _events(world, "LineReleased", result)] == [0]
    assert world.rec.outstanding_of(f) == 0


def test_statement_json_round_trip_and_refusals() -> None:
    line = CreditLine(
        factory="0x" + "11" * 20, bank="0x" + "22" * 20, part_id=3, record_index=1, total=5, deadline=9
    )
    oracle = dev_accounts(9)[8]
    domain = LineDomain(chain_id=1337, verifying_contract="0x" + "33" * 20)
    signed = line.sign(oracle, domain)
    assert LineAttestation.from_json_obj(signed.to_json_obj()) == signed
    assert signed.signer(domain) == oracle.address
    with pytest.raises(CreditLineError, match="not a credit-line attestation"):
        LineAttestation.from_json_obj({"type": "other"})
    with pytest.raises(CreditLineError, match="missing or malformed"):
        LineAttestation.from_json_obj({**signed.to_json_obj(), "total": "x"})
    with pytest.raises(CreditLineError, match="not an address"):
        CreditLine(**{**_fields(line), "bank": "0x12"})
    with pytest.raises(CreditLineError, match="deadline must be an unsigned 64-bit"):
        CreditLine(**{**_fields(line), "deadline": 2**64})


# ---------------------------------------------------------------- the property


@dataclass(frozen=True)
class PropWorld:
    gate: str
    credit: str
    rec: str
    coin: str
    # the backing (issue 15.3): the evidence contracts, the ReadingAnchor, the named QC device (set up)
    lots: str
    certifier: str
    orders: str
    anchor: str
    device: DeviceSigner
    consortium: TestConsortium  # enrolled the device (not used again)


def _build_prop(chain: Chain) -> PropWorld:
    accounts = dev_accounts(10)
    deployment = deploy_suite(chain, accounts[0])
    w = _build(chain, accounts, deployment)
    d = w.deliveries.setup()
    assert d.device is not None
    return PropWorld(
        gate=w.gate.address,
        credit=w.credit.address,
        rec=w.rec.address,
        coin=w.coin.address,
        lots=d.lots.address,
        certifier=d.certifier.address,
        orders=d.orders.address,
        anchor=d.anchor.address,
        device=d.device,
        consortium=d.consortium,
    )


def _prop_deliveries(chain: Chain, pw: PropWorld, a: list[LocalAccount]) -> Deliveries:
    """The world's deliveries behind this example's chain, with a fresh signer of the named QC device
    (the chain was rolled back: no reading of it is anchored yet)."""
    device = DeviceSigner(device_id=pw.device.device_id, key=pw.device.key, domain=pw.device.domain)
    return Deliveries(
        chain=chain,
        lots=LotRegistryClient(chain, pw.lots),
        certifier=QualityCertifierClient(chain, pw.certifier),
        orders=PurchaseOrdersClient(chain, pw.orders),
        anchor=chain.contract("ReadingAnchor", pw.anchor),
        admin=a[0],
        consortium=pw.consortium,
        buyer=a[1],
        supplier=a[2],
        device=device,
    )


class CreditLineMachine(RuleBasedStateMachine):
    """One factory, two banks, receivables confirmed, offered, financed, repaid and defaulted at random;
    the oracle's limit (hidden from the contract) changes with each record it publishes. The oracle signs
    a statement only when the total is within its current limit; banks try every statement they ever
    got (replays). After every step, the factory's outstanding amount is the sum of its financed unpaid
    parts and at most the limit of the record it was last charged under."""

    def __init__(self) -> None:
        super().__init__()
        self.chain, pw = fresh_anvil_world("props:credit-line", _build_prop)
        a = dev_accounts(10)
        self.debtor, self.factory, self.banks, self.outsider, self.oracle = (
            a[1],
            a[2],
            [a[5], a[6]],
            a[7],
            a[8],
        )
        self.rec = ReceivablesClient(self.chain, pw.rec)
        self.deliveries = _prop_deliveries(self.chain, pw, a)
        self.credit = CreditRegistryClient(self.chain, pw.credit)
        self.limit = 0
        self.charged_limit = 0  # the limit in force when the outstanding amount last grew
        self.parts: dict[int, tuple[int, int]] = {}  # part -> (receivable, amount)
        self.financed: set[int] = set()
        self.paid: set[int] = set()
        self.got: list[tuple[int, LocalAccount, LineAttestation]] = []
        self.refused = 0

    @initialize(limit=st.integers(0, 2_000_000))
    def first_record(self, limit: int) -> None:
        self._publish(limit)

    def _publish(self, limit: int) -> None:
        publish_records(self.credit, self.oracle, [self.factory.address], valid_for=365 * DAY)
        self.limit = limit

    def _outstanding(self) -> int:
        return sum(self.parts[p][1] for p in self.financed - self.paid)

    @rule(limit=st.integers(0, 2_000_000))
    def re_rate(self, limit: int) -> None:
        self._publish(limit)

    @precondition(lambda self: len(self.parts) < 8)
    @rule(amount=st.integers(1, 800_000), bank=st.integers(0, 1))
    def confirm_and_offer(self, amount: int, bank: int) -> None:
        n = len(self.parts) + 1
        tag = f"{n}-{secrets.token_hex(4)}"
        rid, _ = self.rec.confirm(
            self.debtor,
            supplier=self.factory.address,
            face_value=amount,
            due_date=now(self.chain) + 90 * DAY,
            reference=receivable_reference(f"INV-{tag}"),
            order_id=self.deliveries.order(f"PO-{tag}"),
            lots=[self.deliveries.lot(f"LOT-{tag}")],
        )
        part = self.rec.receivable(rid).root_part
        self.rec.offer(self.factory, part, bank=self.banks[bank].address, min_price=1)
        self.parts[part] = (rid, amount)

    @precondition(lambda self: bool(self.parts))
    @rule(index=st.integers(0, 10**6))
    def ask_and_finance(self, index: int) -> None:
        """The bank the part is offered to asks the oracle; the oracle signs only within its limit."""
        part = sorted(self.parts)[index % len(self.parts)]
        if part in self.financed or part in self.paid:
            return
        bank = next(b for b in self.banks if b.address == self.rec.part(part).offered_to)
        statement = self.rec.credit_line(bank.address, part, deadline=now(self.chain) + HOUR)
        if statement.total > self.limit:  # the oracle refuses: nothing to finance with
            self.refused += 1
            return
        signed = statement.sign(self.oracle, self.rec.line_domain())
        self.got.append((part, bank, signed))
        self.rec.finance(bank, part, self.parts[part][1], signed)
        self.financed.add(part)
        self.charged_limit = self.limit

    @precondition(lambda self: bool(self.got))
    @rule(index=st.integers(0, 10**6))
    def replay(self, index: int) -> None:
        """A bank tries a statement it got before: always refused."""
        part, bank, signed = self.got[index % len(self.got)]
        with pytest.raises(ContractRevert) as e:
            self.rec.finance(bank, part, self.parts[part][1], signed)
        assert e.value.error_name in {
            "ReceivablesNotOffered",
            "ReceivablesLineTotalMismatch",
            "ReceivablesStaleCreditRecord",
            "ReceivablesPastDue",
        }

    @precondition(lambda self: bool(self.parts))
    @rule(index=st.integers(0, 10**6))
    def repay(self, index: int) -> None:
        part = sorted(self.parts)[index % len(self.parts)]
        if part in self.paid:
            return
        self.rec.repay(self.debtor, self.parts[part][0])
        self.paid.add(part)

    @invariant()
    def line_holds(self) -> None:
        outstanding = self.rec.outstanding_of(self.factory.address)
        assert outstanding == self._outstanding()
        assert outstanding <= self.charged_limit  # the limit in force when it last grew
        for part in self.parts:
            charged = part in self.financed and part not in self.paid
            assert self.rec.line_of(part) == (self.factory.address if charged else None)


CreditLineMachine.TestCase.settings = settings(
    max_examples=5,
    stateful_step_count=10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestCreditLineMachine = CreditLineMachine.TestCase
