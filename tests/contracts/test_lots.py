"""LotRegistry on both chains: GTIN-14 checks, opening and splitting lots (quantities conserved),
two-sided custody transfers, transformations (lineage: held lots consumed into new ones), the admission
gate, and every refusal with its exact error and no state change."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from support import reverts
from web3.logs import DISCARD

from contracts.chain import Chain
from contracts.errors import DeploymentError
from contracts.lots import (
    OPEN_ACTION,
    TRANSFER_ACTION,
    AmbiguousLot,
    InvalidGtin,
    LotNotFound,
    LotRegistryClient,
    LotStatus,
    TransformInput,
    TransformOutput,
    deploy_supply_chain,
    format_gtin,
    gtin_check_digit,
    lot_id_hash,
    lot_key,
    padded_ascii,
    parse_gtin,
)

#: the contract's own rules: on anvil alone (tests/conftest.py CHAIN_KINDS)
pytestmark = pytest.mark.contract_logic

GTIN = "04006381333931"  # EAN-13 4006381333931, padded to 14 digits
T0 = 1_764_400_000_000  # production window (Unix ms)
T1 = T0 + 8 * 3_600_000


@dataclass
class World:
    chain: Chain
    gate: Any
    lots: LotRegistryClient
    operator: LocalAccount
    supplier: LocalAccount
    distributor: LocalAccount
    retailer: LocalAccount
    outsider: LocalAccount

    def admit(self, party: LocalAccount, action: bytes, admitted: bool = True) -> None:
        self.chain.transact(self.gate.functions.setAdmitted(party.address, action, admitted), self.operator)

    def open(self, lot_id: str = "LOT-1", quantity: int = 1000, **kw: Any) -> None:
        args: dict[str, Any] = {
            "lot_id": lot_id,
            "gtin": GTIN,
            "quantity": quantity,
            "unit": "kg",
            "produced_from_ms": T0,
            "produced_to_ms": T1,
        }
        args.update(kw)
        self.lots.open_lot(self.supplier, **args)

    def snapshot(self, lot_id: str) -> tuple[Any, ...]:
        """Everything the registry holds about a lot (to assert a refusal changed nothing)."""
        return (
            self.lots.lot(lot_id),
            self.lots.custody_chain(lot_id),
            self.lots.children(lot_id),
            self.lots.pending_transfer(lot_id),
        )


def make_world(suite: Any, *, admit: bool = True) -> World:
    chain: Chain = suite.chain
    op, *_ = suite.accounts
    gate_address = chain.deploy("StaticAdmissionGate", op, op.address).contract_address
    assert gate_address is not None
    addresses = deploy_supply_chain(chain, op, deployment=suite.deployment, gate_address=gate_address)
    world = World(
        chain=chain,
        gate=chain.contract("StaticAdmissionGate", gate_address),
        lots=LotRegistryClient(chain, addresses["LotRegistry"]),
        operator=op,
        supplier=suite.accounts[2],
        distributor=suite.accounts[3],
        retailer=suite.accounts[4],
        outsider=suite.accounts[6],
    )
    if admit:
        world.admit(world.supplier, OPEN_ACTION)
        world.admit(world.distributor, TRANSFER_ACTION)
        world.admit(world.retailer, TRANSFER_ACTION)
    return world


@pytest.fixture
def world(suite: Any) -> World:
    return make_world(suite)


# ---------------------------------------------------------------- GTIN-14

VALID_GTINS = ["04006381333931", "00036000291452", "10614141000415", "95012345678903", "00000000000000"]


def test_gtin_check_digit_python() -> None:
    for text in VALID_GTINS:
        assert gtin_check_digit(text[:13]) == int(text[13])
        assert format_gtin(parse_gtin(text)) == text
    with pytest.raises(InvalidGtin, match="call for check digit 1"):
        parse_gtin("04006381333932")
    with pytest.raises(InvalidGtin, match="has 13 bytes"):
        parse_gtin("0400638133393")
    with pytest.raises(InvalidGtin, match="character 3 of GTIN"):
        parse_gtin("040x6381333931")
    with pytest.raises(InvalidGtin, match="not a GTIN-14"):
        format_gtin(10**14)


def test_valid_gtins_parse_on_chain(world: World) -> None:
    for text in VALID_GTINS:
        assert world.chain.call(world.lots.contract.functions.parseGtin(text)) == int(text)


@pytest.mark.parametrize(
    ("text", "error", "args"),
    [
        ("04006381333932", "GtinInvalidCheckDigit", {"gtin": 4006381333932, "expected": 1, "found": 2}),
        ("95012345678900", "GtinInvalidCheckDigit", {"gtin": 95012345678900, "expected": 3, "found": 0}),
        ("4006381333931", "GtinInvalidLength", {"length": 13}),
        ("004006381333931", "GtinInvalidLength", {"length": 15}),
        ("", "GtinInvalidLength", {"length": 0}),
        ("0400638133393a", "GtinInvalidCharacter", {"index": 13, "character": "0x61"}),
        (" 4006381333931", "GtinInvalidCharacter", {"index": 0, "character": "0x20"}),
        ("04006381-33931", "GtinInvalidCharacter", {"index": 8, "character": "0x2d"}),
        ("0400638133393\u0661", "GtinInvalidLength", {"length": 15}),  # an Arabic-Indic digit: 2 bytes
    ],
)
def test_bad_gtins_are_refused(world: World, text: str, error: str, args: dict[str, Any]) -> None:
    with reverts(error, **args):
        world.chain.call(world.lots.contract.functions.parseGtin(text))
    with reverts(error, **args):
        world.open(gtin=text)
    assert not world.lots.exists("LOT-1")


# ---------------------------------------------------------------- opening


def test_open_lot(world: World) -> None:
    result = world.lots.open_lot(
        world.supplier,
        lot_id="LOT-2026-0001",
        gtin=GTIN,
        quantity=1200,
        unit="kg",
        produced_from_ms=T0,
        produced_to_ms=T1,
    )
    key = lot_key("LOT-2026-0001", world.supplier.address)
    id_hash = keccak(b"LOT-2026-0001")
    assert lot_id_hash("LOT-2026-0001") == id_hash
    assert key == keccak(bytes(12) + bytes.fromhex(world.supplier.address[2:]) + id_hash)  # abi.encode
    c = world.lots.contract
    assert world.chain.call(c.functions.lotKey(world.supplier.address, "LOT-2026-0001")) == key
    assert world.chain.call(c.functions.lotIdHashOf(key)) == id_hash
    assert world.chain.call(c.functions.issuerOf(key)) == world.supplier.address
    (named,) = c.events.LotNamed().process_receipt(result.receipt, errors=DISCARD)
    assert dict(named["args"]) == {"lotIdHash": id_hash, "issuer": world.supplier.address, "lotId": key}
    assert world.lots.named("LOT-2026-0001") == [(world.supplier.address, key)]
    (event,) = world.lots.contract.events.LotOpened().process_receipt(result.receipt, errors=DISCARD)
    assert event["args"]["lotId"] == key
    assert event["args"]["gtin"] == int(GTIN)
    assert event["args"]["supplier"] == world.supplier.address
    assert event["args"]["lotIdText"] == "LOT-2026-0001"
    assert (event["args"]["quantity"], event["args"]["unit"]) == (1200, padded_ascii("kg"))
    assert (event["args"]["producedFromMs"], event["args"]["producedToMs"]) == (T0, T1)

    lot = world.lots.lot("LOT-2026-0001")
    opened_at = world.chain.block(result.block_number)["timestamp"]
    assert lot.key == key and lot.lot_id == "LOT-2026-0001"
    assert lot.gtin_text == GTIN
    assert (lot.quantity, lot.remaining, lot.unit) == (1200, 1200, "kg")
    assert (lot.produced_from_ms, lot.produced_to_ms, lot.opened_at) == (T0, T1, opened_at)
    assert lot.supplier == lot.custodian == world.supplier.address
    assert lot.status is LotStatus.ACTIVE and lot.parent is None
    assert world.lots.exists("LOT-2026-0001")
    (entry,) = world.lots.custody_chain("LOT-2026-0001")
    assert (entry.custodian, entry.since) == (world.supplier.address, opened_at)
    assert world.lots.pending_transfer("LOT-2026-0001") is None
    assert world.lots.children("LOT-2026-0001") == []


def test_open_refusals_change_nothing(world: World) -> None:
    world.open("LOT-1")
    before = world.snapshot("LOT-1")
    cases: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
        ("LotRegistryZeroQuantity", {"quantity": 0}, {}),
        ("LotRegistryZeroUnit", {"unit": "\0"}, {}),
        (
            "LotRegistryInvalidWindow",
            {"produced_from_ms": T1, "produced_to_ms": T0},
            {"producedFromMs": T1, "producedToMs": T0},
        ),
        ("LotRegistryInvalidLotId", {"lot_id": ""}, {"length": 0}),
        ("LotRegistryInvalidLotId", {"lot_id": "L" * 257}, {"length": 257}),
        ("LotRegistryLotExists", {"lot_id": "LOT-1"}, {"lotId": lot_key("LOT-1", world.supplier.address)}),
    ]
    for error, kwargs, args in cases:
        with reverts(error, **args):
            world.open(**{"lot_id": "LOT-2", **kwargs})
    assert not world.lots.exists("LOT-2")
    assert world.snapshot("LOT-1") == before
    world.open("L" * 256, produced_from_ms=T0, produced_to_ms=T0)  # the limits themselves are fine
    assert world.lots.lot("L" * 256).lot_id == "L" * 256


def test_open_needs_admission(world: World) -> None:
    for party in (world.outsider, world.distributor):  # the distributor may hold lots, not open them
        with reverts("LotRegistryNotAdmitted", party=party.address, action=OPEN_ACTION):
            world.lots.open_lot(
                party,
                lot_id="LOT-X",
                gtin=GTIN,
                quantity=1,
                unit="pcs",
                produced_from_ms=T0,
                produced_to_ms=T1,
            )
    assert not world.lots.exists("LOT-X")


def test_gate_with_nothing_admitted_refuses_everything(suite: Any) -> None:
    world = make_world(suite, admit=False)
    with reverts("LotRegistryNotAdmitted", party=world.supplier.address, action=OPEN_ACTION):
        world.open("LOT-1")
    world.admit(world.supplier, OPEN_ACTION)
    world.open("LOT-1")
    with reverts("LotRegistryNotAdmitted", party=world.distributor.address, action=TRANSFER_ACTION):
        world.lots.propose_transfer(world.supplier, "LOT-1", world.distributor.address)
    world.admit(world.supplier, OPEN_ACTION, False)  # withdrawn: no new lots
    with reverts("LotRegistryNotAdmitted", party=world.supplier.address, action=OPEN_ACTION):
        world.open("LOT-2")
    assert world.lots.pending_transfer("LOT-1") is None
    assert not world.lots.exists("LOT-2")


def test_admission_gate_is_replaceable_by_the_admin_only(world: World) -> None:
    c = world.lots.contract
    assert world.chain.call(c.functions.admissionGate()) == world.gate.address
    other = world.chain.deploy("StaticAdmissionGate", world.operator, world.operator.address).contract_address
    with reverts("AccessControlUnauthorizedAccount", account=world.supplier.address, neededRole=bytes(32)):
        world.chain.transact(c.functions.setAdmissionGate(other), world.supplier)
    with reverts("LotRegistryZeroGate"):
        world.chain.transact(c.functions.setAdmissionGate("0x" + "00" * 20), world.operator)
    assert world.chain.call(c.functions.admissionGate()) == world.gate.address
    result = world.chain.transact(c.functions.setAdmissionGate(other), world.operator)
    (event,) = c.events.AdmissionGateSet().process_receipt(result.receipt)
    assert event["args"]["gate"] == other
    with reverts("LotRegistryNotAdmitted", party=world.supplier.address):  # the new gate admits nobody yet
        world.open("LOT-1")


def test_unknown_lot(world: World) -> None:
    key = lot_key("NOPE", world.supplier.address)
    c = world.lots.contract
    assert not world.lots.exists("NOPE")
    assert not world.lots.exists("NOPE", issuer=world.supplier.address)
    views = (c.functions.lot, c.functions.gtinOf, c.functions.custodianOf, c.functions.custodyChain)
    for fn in (*views, c.functions.lotIdHashOf, c.functions.issuerOf):
        with reverts("LotRegistryUnknownLot", lotId=key):
            world.chain.call(fn(key))
    with reverts("LotRegistryUnknownLot", lotId=key):
        world.chain.call(c.functions.hasHeld(key, world.supplier.address))
    for write in (
        lambda lot: world.lots.propose_transfer(world.supplier, lot, world.distributor.address),
        lambda lot: world.lots.accept_transfer(world.distributor, lot),
        lambda lot: world.lots.reject_transfer(world.distributor, lot),
        lambda lot: world.lots.cancel_transfer(world.supplier, lot),
        lambda lot: world.lots.split_lot(world.supplier, lot, {"NOPE-A": 1}),
    ):
        with reverts("LotRegistryUnknownLot", lotId=key):
            write(key)
        with pytest.raises(LotNotFound, match="no lot 'NOPE' on chain"):  # by text: found by nobody
            write("NOPE")


# ---------------------------------------------------------------- splitting


def test_split_conserves_quantities_and_links_children(world: World) -> None:
    world.open("LOT-1", quantity=1000)
    first = world.lots.split_lot(world.supplier, "LOT-1", {"LOT-1-A": 300, "LOT-1-B": 250})
    parent = world.lots.lot("LOT-1")
    assert (parent.quantity, parent.remaining, parent.status) == (1000, 450, LotStatus.ACTIVE)
    events = world.lots.contract.events.LotSplit().process_receipt(first.receipt, errors=DISCARD)
    assert [
        (e["args"]["childLotIdText"], e["args"]["quantity"], e["args"]["parentRemaining"]) for e in events
    ] == [
        ("LOT-1-A", 300, 700),
        ("LOT-1-B", 250, 450),
    ]
    assert all(e["args"]["parentId"] == lot_key("LOT-1", world.supplier.address) for e in events)
    assert all(e["args"]["custodian"] == world.supplier.address for e in events)

    # the rest, in one child: the parent is now entirely split
    world.lots.split_lot(world.supplier, "LOT-1", {"LOT-1-C": 450})
    parent = world.lots.lot("LOT-1")
    assert (parent.remaining, parent.status) == (0, LotStatus.SPLIT)
    kids = world.lots.children("LOT-1")
    assert kids == [
        lot_key("LOT-1-A", world.supplier.address),
        lot_key("LOT-1-B", world.supplier.address),
        lot_key("LOT-1-C", world.supplier.address),
    ]
    children = [world.lots.lot(k) for k in kids]
    assert parent.remaining + sum(c.quantity for c in children) == parent.quantity  # conservation
    split_at = world.chain.block("latest")["timestamp"]
    for child in children:
        assert child.parent == lot_key("LOT-1", world.supplier.address)
        assert (child.gtin, child.unit, child.produced_from_ms, child.produced_to_ms) == (
            parent.gtin,
            parent.unit,
            parent.produced_from_ms,
            parent.produced_to_ms,
        )
        assert child.supplier == parent.supplier
        assert child.custodian == world.supplier.address
        assert child.quantity == child.remaining and child.status is LotStatus.ACTIVE
        (entry,) = world.lots.custody_chain(child.key)
        assert entry.custodian == world.supplier.address and entry.since <= split_at

    # children split further; grandchildren conserve the child's quantity too
    world.lots.split_lot(world.supplier, "LOT-1-A", {"LOT-1-A-1": 100, "LOT-1-A-2": 200})
    a = world.lots.lot("LOT-1-A")
    assert a.remaining == 0 and a.status is LotStatus.SPLIT
    assert world.lots.lot("LOT-1-A-2").parent == lot_key("LOT-1-A", world.supplier.address)

    # a fully split lot can neither move nor split
    for lot_id in ("LOT-1", "LOT-1-A"):
        with reverts("LotRegistryLotFullySplit", lotId=lot_key(lot_id, world.supplier.address)):
            world.lots.split_lot(world.supplier, lot_id, {lot_id + "-Z": 1})
        with reverts("LotRegistryLotFullySplit", lotId=lot_key(lot_id, world.supplier.address)):
            world.lots.propose_transfer(world.supplier, lot_id, world.distributor.address)


def test_split_refusals_change_nothing(world: World) -> None:
    world.open("LOT-1", quantity=100)
    world.open("LOT-OTHER", quantity=5)
    before = world.snapshot("LOT-1")
    key = lot_key("LOT-1", world.supplier.address)
    fn = world.lots.contract.functions.splitLot
    cases: list[tuple[LocalAccount, list[str], list[int], str, dict[str, Any]]] = [
        (
            world.distributor,
            ["A"],
            [1],
            "LotRegistryNotCustodian",
            {"caller": world.distributor.address, "lotId": key, "custodian": world.supplier.address},
        ),
        (
            world.supplier,
            ["A", "B"],
            [60, 41],
            "LotRegistrySplitExceedsRemaining",
            {"requested": 101, "remaining": 100},
        ),
        (world.supplier, ["A", "B"], [10, 0], "LotRegistryZeroQuantity", {}),
        (world.supplier, ["A", "B"], [10], "LotRegistryInvalidSplit", {"children": 2, "quantities": 1}),
        (world.supplier, [], [], "LotRegistryInvalidSplit", {"children": 0, "quantities": 0}),
        (world.supplier, [f"C{i}" for i in range(65)], [1] * 65, "LotRegistryInvalidSplit", {"children": 65}),
        (
            world.supplier,
            ["A", "LOT-OTHER"],
            [1, 1],
            "LotRegistryLotExists",
            {"lotId": lot_key("LOT-OTHER", world.supplier.address)},
        ),
        (
            world.supplier,
            ["A", "A"],
            [1, 1],
            "LotRegistryLotExists",
            {"lotId": lot_key("A", world.supplier.address)},
        ),
        (world.supplier, ["LOT-1"], [1], "LotRegistryLotExists", {"lotId": key}),
        (world.supplier, ["A", ""], [1, 1], "LotRegistryInvalidLotId", {"length": 0}),
    ]
    for sender, ids, quantities, error, args in cases:
        with reverts(error, **args):
            world.chain.transact(fn(key, ids, quantities), sender)
    assert world.snapshot("LOT-1") == before
    assert not world.lots.exists("A")

    world.lots.propose_transfer(world.supplier, "LOT-1", world.distributor.address)
    pending = world.snapshot("LOT-1")
    with reverts("LotRegistryTransferPending", lotId=key, to=world.distributor.address):
        world.lots.split_lot(world.supplier, "LOT-1", {"A": 1})
    assert world.snapshot("LOT-1") == pending


# ---------------------------------------------------------------- custody


def test_propose_and_accept_moves_custody(world: World) -> None:
    world.open("LOT-1")
    key = lot_key("LOT-1", world.supplier.address)
    c = world.lots.contract
    proposed = world.lots.propose_transfer(world.supplier, "LOT-1", world.distributor.address)
    (event,) = c.events.TransferProposed().process_receipt(proposed.receipt)
    assert dict(event["args"]) == {
        "lotId": key,
        "from": world.supplier.address,
        "to": world.distributor.address,
    }
    pending = world.lots.pending_transfer("LOT-1")
    assert pending is not None
    assert (pending.from_, pending.to) == (world.supplier.address, world.distributor.address)
    assert pending.proposed_at == world.chain.block(proposed.block_number)["timestamp"]
    assert world.lots.custodian("LOT-1") == world.supplier.address  # nothing moves on a proposal alone

    accepted = world.lots.accept_transfer(world.distributor, "LOT-1")
    (event,) = c.events.TransferAccepted().process_receipt(accepted.receipt)
    assert dict(event["args"]) == {
        "lotId": key,
        "from": world.supplier.address,
        "to": world.distributor.address,
    }
    assert world.lots.custodian("LOT-1") == world.distributor.address
    assert world.lots.pending_transfer("LOT-1") is None

    # and on to the retailer
    world.lots.propose_transfer(world.distributor, "LOT-1", world.retailer.address)
    last = world.lots.accept_transfer(world.retailer, "LOT-1")
    chain = world.lots.custody_chain("LOT-1")
    assert [e.custodian for e in chain] == [
        world.supplier.address,
        world.distributor.address,
        world.retailer.address,
    ]
    assert chain[-1].since == world.chain.block(last.block_number)["timestamp"]
    assert [e.since for e in chain] == sorted(e.since for e in chain)
    assert world.chain.call(c.functions.custodyCount(key)) == 3
    assert world.chain.call(c.functions.custodyEntry(key, 1)) == (world.distributor.address, chain[1].since)
    with reverts("LotRegistryNoCustodyEntry", lotId=key, index=3, count=3):
        world.chain.call(c.functions.custodyEntry(key, 3))
    assert world.lots.lot("LOT-1").custodian == world.retailer.address


def test_reject_and_cancel_keep_custody(world: World) -> None:
    world.open("LOT-1")
    c = world.lots.contract
    world.lots.propose_transfer(world.supplier, "LOT-1", world.distributor.address)
    rejected = world.lots.reject_transfer(world.distributor, "LOT-1")
    (event,) = c.events.TransferRejected().process_receipt(rejected.receipt)
    assert (event["args"]["from"], event["args"]["to"]) == (world.supplier.address, world.distributor.address)
    assert world.lots.pending_transfer("LOT-1") is None
    assert world.lots.custodian("LOT-1") == world.supplier.address

    world.lots.propose_transfer(world.supplier, "LOT-1", world.retailer.address)
    cancelled = world.lots.cancel_transfer(world.supplier, "LOT-1")
    (event,) = c.events.TransferCancelled().process_receipt(cancelled.receipt)
    assert (event["args"]["from"], event["args"]["to"]) == (world.supplier.address, world.retailer.address)
    assert world.lots.pending_transfer("LOT-1") is None
    assert [e.custodian for e in world.lots.custody_chain("LOT-1")] == [world.supplier.address]
    with reverts(
        "LotRegistryNoPendingTransfer", lotId=lot_key("LOT-1", world.supplier.address)
    ):  # a rejected offer cannot be accepted
        world.lots.accept_transfer(world.retailer, "LOT-1")


def test_custody_refusals_change_nothing(world: World) -> None:
    world.open("LOT-1")
    key = lot_key("LOT-1", world.supplier.address)
    s, d, r, o = world.supplier, world.distributor, world.retailer, world.outsider
    with reverts("LotRegistryNoPendingTransfer", lotId=key):
        world.lots.accept_transfer(d, "LOT-1")
    with reverts("LotRegistryNoPendingTransfer", lotId=key):
        world.lots.reject_transfer(d, "LOT-1")
    with reverts("LotRegistryNoPendingTransfer", lotId=key):
        world.lots.cancel_transfer(s, "LOT-1")
    with reverts("LotRegistryNotCustodian", caller=d.address, lotId=key, custodian=s.address):
        world.lots.propose_transfer(d, "LOT-1", r.address)
    with reverts("LotRegistryInvalidRecipient", to=s.address):
        world.lots.propose_transfer(s, "LOT-1", s.address)
    with reverts("LotRegistryInvalidRecipient", to="0x" + "00" * 20):
        world.lots.propose_transfer(s, "LOT-1", "0x" + "00" * 20)
    with reverts("LotRegistryNotAdmitted", party=o.address, action=TRANSFER_ACTION):
        world.lots.propose_transfer(s, "LOT-1", o.address)
    idle = world.snapshot("LOT-1")
    assert idle[3] is None

    world.lots.propose_transfer(s, "LOT-1", d.address)
    pending = world.snapshot("LOT-1")
    with reverts("LotRegistryTransferPending", lotId=key, to=d.address):  # one at a time
        world.lots.propose_transfer(s, "LOT-1", r.address)
    for wrong in (r, s, o):
        with reverts("LotRegistryNotRecipient", caller=wrong.address, lotId=key, expected=d.address):
            world.lots.accept_transfer(wrong, "LOT-1")
        with reverts("LotRegistryNotRecipient", caller=wrong.address, lotId=key, expected=d.address):
            world.lots.reject_transfer(wrong, "LOT-1")
    for wrong in (d, r):
        with reverts("LotRegistryNotProposer", caller=wrong.address, lotId=key, expected=s.address):
            world.lots.cancel_transfer(wrong, "LOT-1")
    # admission withdrawn between the proposal and the acceptance: refused at acceptance too
    world.admit(d, TRANSFER_ACTION, False)
    with reverts("LotRegistryNotAdmitted", party=d.address, action=TRANSFER_ACTION):
        world.lots.accept_transfer(d, "LOT-1")
    assert world.snapshot("LOT-1") == pending
    world.lots.reject_transfer(d, "LOT-1")  # still free to say no
    assert world.snapshot("LOT-1") == idle


def test_full_custody_chain_follows_splits(world: World) -> None:
    s, d, r = world.supplier, world.distributor, world.retailer
    world.open("LOT-1", quantity=10)
    world.lots.propose_transfer(s, "LOT-1", d.address)
    world.lots.accept_transfer(d, "LOT-1")
    world.lots.split_lot(d, "LOT-1", {"LOT-1-A": 4})
    world.lots.propose_transfer(d, "LOT-1-A", r.address)
    world.lots.accept_transfer(r, "LOT-1-A")
    world.lots.split_lot(r, "LOT-1-A", {"LOT-1-A-1": 1})
    # the parent moves on after the split: not part of the child's history
    world.lots.propose_transfer(d, "LOT-1", r.address)
    world.lots.accept_transfer(r, "LOT-1")
    world.lots.propose_transfer(r, "LOT-1-A-1", d.address)
    world.lots.accept_transfer(d, "LOT-1-A-1")

    assert world.lots.lot("LOT-1-A").parent_custody_count == 2
    assert world.lots.lot("LOT-1-A-1").parent_custody_count == 2
    assert world.lots.lot("LOT-1").parent_custody_count == 0
    assert [e.custodian for e in world.lots.custody_chain("LOT-1-A")] == [d.address, r.address]
    parent_chain = world.lots.custody_chain("LOT-1")
    own = world.lots.custody_chain("LOT-1-A")
    full = world.lots.full_custody_chain("LOT-1-A")
    lot1, lot1a, lot1a1 = (
        lot_key("LOT-1", s.address),
        lot_key("LOT-1-A", d.address),
        lot_key("LOT-1-A-1", r.address),
    )
    assert [(e.lot_key, e.custodian) for e in full] == [
        (lot1, s.address),
        (lot1, d.address),
        (lot1a, r.address),
    ]
    assert [e.since for e in full] == [parent_chain[0].since, parent_chain[1].since, own[1].since]
    grandchild = world.lots.full_custody_chain("LOT-1-A-1")
    assert [(e.lot_key, e.custodian) for e in grandchild] == [
        (lot1, s.address),
        (lot1, d.address),
        (lot1a, r.address),
        (lot1a1, d.address),
    ]
    # hasHeld: the supplier, and whoever is in the full chain; not who held the parent after the split
    held = world.lots.contract.functions.hasHeld
    assert [world.chain.call(held(lot1a1, p.address)) for p in (s, d, r, world.outsider)] == [
        True,
        True,
        True,
        False,
    ]
    child_b = world.lots.contract.functions
    world.lots.split_lot(r, "LOT-1", {"LOT-1-B": 1})  # r holds LOT-1 now; d held it before
    lot1b = lot_key("LOT-1-B", r.address)
    assert [world.chain.call(held(lot1b, p.address)) for p in (s, d, r)] == [True, True, True]
    assert world.chain.call(child_b.issuerOf(lot1b)) == r.address
    assert world.chain.call(held(lot1a, world.outsider.address)) is False
    assert [e.since for e in grandchild] == sorted(e.since for e in grandchild)
    # an original lot's full chain is its own chain
    assert world.lots.full_custody_chain("LOT-1") == parent_chain
    assert len(parent_chain) == 3
    nope = lot_key("NOPE", world.supplier.address)
    with reverts("LotRegistryUnknownLot", lotId=nope):
        world.lots.full_custody_chain(nope)


def test_deploy_refuses_a_missing_gate(suite: Any) -> None:
    with pytest.raises(DeploymentError, match="no admission gate"):
        deploy_supply_chain(
            suite.chain, suite.operator, deployment=suite.deployment, gate_address="0x" + "00" * 20
        )
    with pytest.raises(DeploymentError, match="no admission gate"):
        deploy_supply_chain(
            suite.chain, suite.operator, deployment=suite.deployment, gate_address=suite.accounts[5].address
        )


def test_issue11_a_rival_cannot_take_a_lot_id_first(world: World) -> None:
    """Issue 11.2 (related): lots were keyed by keccak(lotId) alone, so another supplier could open
    a lot id first and the producer could not open it any more. Keys are scoped to the issuer now."""
    rival = world.outsider
    world.admit(rival, OPEN_ACTION)
    world.lots.open_lot(
        rival, lot_id="LOT-1", gtin=GTIN, quantity=1, unit="kg", produced_from_ms=T0, produced_to_ms=T1
    )
    world.open("LOT-1", quantity=1000)  # the producer opens its own LOT-1 all the same
    mine, theirs = lot_key("LOT-1", world.supplier.address), lot_key("LOT-1", rival.address)
    assert mine != theirs
    assert world.lots.lot(mine).supplier == world.supplier.address and world.lots.lot(mine).quantity == 1000
    assert world.lots.lot(theirs).supplier == rival.address and world.lots.lot(theirs).quantity == 1
    assert world.lots.lot("LOT-1", issuer=world.supplier.address).key == mine
    # the same issuer cannot name two lots alike
    with reverts("LotRegistryLotExists", lotId=theirs):
        world.lots.open_lot(
            rival, lot_id="LOT-1", gtin=GTIN, quantity=1, unit="kg", produced_from_ms=T0, produced_to_ms=T1
        )
    # the text alone no longer says which lot: the client asks for the issuer
    assert world.lots.named("LOT-1") == [(rival.address, theirs), (world.supplier.address, mine)]
    with pytest.raises(AmbiguousLot, match="2 parties have a lot 'LOT-1'") as info:
        world.lots.lot("LOT-1")
    assert info.value.issuers == [rival.address, world.supplier.address]
    assert info.value.code == "lot.ambiguous"
    # a rival's child ids live in its own namespace too: splitting cannot squat the producer's ids
    world.lots.split_lot(rival, theirs, {"LOT-2": 1})
    world.open("LOT-2")
    assert world.lots.lot("LOT-2", issuer=world.supplier.address).supplier == world.supplier.address


# ---------------------------------------------------------------- transformation (lineage)

GTIN_FINISHED = "00036000291452"
GTIN_BAD = "00036000291453"


def _in(lot: str | bytes, quantity: int, unit: str = "kg") -> TransformInput:
    return TransformInput(lot=lot, quantity=quantity, unit=unit)


def _out(lot_id: str, quantity: int = 10, unit: str = "pcs", gtin: str = GTIN_FINISHED) -> TransformOutput:
    return TransformOutput(
        lot_id=lot_id, gtin=gtin, quantity=quantity, unit=unit, produced_from_ms=T0, produced_to_ms=T1
    )


def factory_world(world: World) -> LocalAccount:
    """The distributor becomes a factory: it may open lots (and so transform) and holds the supplier's
    LOT-RAW (1000 kg); it opens its own LOT-OWN (50 kg)."""
    factory = world.distributor
    world.admit(factory, OPEN_ACTION)
    world.open("LOT-RAW", quantity=1000)
    world.lots.propose_transfer(world.supplier, "LOT-RAW", factory.address)
    world.lots.accept_transfer(factory, "LOT-RAW")
    world.lots.open_lot(
        factory, lot_id="LOT-OWN", gtin=GTIN, quantity=50, unit="kg", produced_from_ms=T0, produced_to_ms=T1
    )
    return factory


def test_transform_consumes_inputs_and_opens_outputs(world: World) -> None:
    factory = factory_world(world)
    raw = lot_key("LOT-RAW", world.supplier.address)
    own = lot_key("LOT-OWN", factory.address)
    fin1, fin2 = lot_key("FIN-1", factory.address), lot_key("FIN-2", factory.address)
    assert world.lots.transformation_count() == 0
    done = world.lots.transform(
        factory, [_in("LOT-RAW", 300), _in("LOT-OWN", 50)], [_out("FIN-1", 10), _out("FIN-2", 4, "box")]
    )
    assert (done.transformation_id, done.outputs) == (1, (fin1, fin2))
    c = world.lots.contract
    receipt = done.tx.receipt
    consumed = c.events.LotConsumed().process_receipt(receipt, errors=DISCARD)
    assert [dict(e["args"]) for e in consumed] == [
        {"lotId": raw, "transformationId": 1, "by": factory.address, "quantity": 300, "remaining": 700},
        {"lotId": own, "transformationId": 1, "by": factory.address, "quantity": 50, "remaining": 0},
    ]
    produced = c.events.LotProduced().process_receipt(receipt, errors=DISCARD)
    assert [dict(e["args"]) for e in produced] == [
        {"lotId": fin1, "transformationId": 1},
        {"lotId": fin2, "transformationId": 1},
    ]
    opened = c.events.LotOpened().process_receipt(receipt, errors=DISCARD)
    assert [(e["args"]["lotId"], e["args"]["supplier"], e["args"]["gtin"]) for e in opened] == [
        (fin1, factory.address, int(GTIN_FINISHED)),
        (fin2, factory.address, int(GTIN_FINISHED)),
    ]
    (event,) = c.events.LotTransformed().process_receipt(receipt, errors=DISCARD)
    assert dict(event["args"]) == {
        "transformationId": 1,
        "by": factory.address,
        "inputs": [raw, own],
        "consumed": [300, 50],
        "outputs": [fin1, fin2],
    }

    # the inputs: partial consumption leaves the remainder open and traceable; a full one is Consumed
    r = world.lots.lot(raw)
    assert (r.quantity, r.remaining, r.consumed, r.status, r.custodian) == (
        1000,
        700,
        300,
        LotStatus.ACTIVE,
        factory.address,
    )
    o = world.lots.lot(own)
    assert (o.remaining, o.consumed, o.status) == (0, 50, LotStatus.CONSUMED)
    # the outputs: lots like any opened one, by the factory, linked to the transformation
    f2 = world.lots.lot(fin2)
    assert (f2.quantity, f2.remaining, f2.unit, f2.gtin_text) == (4, 4, "box", GTIN_FINISHED)
    assert f2.supplier == f2.custodian == factory.address and f2.parent is None
    assert (f2.produced_by, f2.status, r.produced_by) == (1, LotStatus.ACTIVE, 0)
    assert world.lots.issuer(fin2) == factory.address
    # the lineage both ways
    assert world.lots.inputs_of("FIN-1") == [(raw, 300), (own, 50)]
    assert world.lots.inputs_of(raw) == []
    assert world.lots.outputs_of(raw) == [fin1, fin2] == world.lots.outputs_of(own)
    assert world.lots.outputs_of(fin1) == []
    assert world.lots.consumed_by(raw) == [1]
    t = world.lots.transformation(1)
    assert (t.by, t.inputs, t.outputs) == (factory.address, ((raw, 300), (own, 50)), (fin1, fin2))
    assert t.at == world.chain.block(done.tx.block_number)["timestamp"]
    assert world.lots.transformation_count() == 1

    # a consumed lot can no longer move, split or be consumed
    with reverts("LotRegistryLotConsumed", lotId=own):
        world.lots.propose_transfer(factory, own, world.retailer.address)
    with reverts("LotRegistryLotConsumed", lotId=own):
        world.lots.split_lot(factory, own, {"OWN-A": 1})
    with reverts("LotRegistryLotConsumed", lotId=own):
        world.lots.transform(factory, [_in(own, 1)], [_out("FIN-X")])

    # the remainder splits, moves and is consumed again; every lot stays conserved
    world.lots.split_lot(factory, raw, {"RAW-A": 100})
    second = world.lots.transform(factory, [_in(raw, 600), _in("RAW-A", 40)], [_out("FIN-3", 7)])
    assert second.transformation_id == 2
    r = world.lots.lot(raw)
    assert (r.remaining, r.consumed, r.status) == (0, 900, LotStatus.CONSUMED)
    assert (
        r.remaining + r.consumed + sum(world.lots.lot(k).quantity for k in world.lots.children(raw)) == 1000
    )
    a = world.lots.lot("RAW-A")
    assert (a.remaining, a.consumed, a.status) == (60, 40, LotStatus.ACTIVE)
    fin3 = lot_key("FIN-3", factory.address)
    assert world.lots.outputs_of(raw) == [fin1, fin2, fin3]
    assert world.lots.consumed_by(raw) == [1, 2]
    assert world.lots.inputs_of(fin3) == [(raw, 600), (lot_key("RAW-A", factory.address), 40)]
    # an output is an input in its turn (a later tier)
    world.lots.transform(factory, [_in(fin3, 7, "pcs")], [_out("PACK-1", 1, "pallet")])
    assert world.lots.inputs_of("PACK-1") == [(fin3, 7)]
    assert world.lots.lot(fin3).status is LotStatus.CONSUMED


def test_transform_refusals_change_nothing(world: World) -> None:
    factory = factory_world(world)
    raw = lot_key("LOT-RAW", world.supplier.address)
    own = lot_key("LOT-OWN", factory.address)
    world.open("LOT-SUPPLIERS", quantity=10)  # held by the supplier, not the factory
    theirs = lot_key("LOT-SUPPLIERS", world.supplier.address)
    nope = lot_key("NOPE", factory.address)
    kg, pcs = padded_ascii("kg"), padded_ascii("pcs")
    fn = world.lots.contract.functions.transform

    def inp(key: bytes, quantity: int = 1, unit: bytes = kg) -> tuple[bytes, int, bytes]:
        return (key, quantity, unit)

    def out(lot_id: str = "FIN-1", **kw: Any) -> tuple[Any, ...]:
        o = {"gtin": GTIN_FINISHED, "quantity": 10, "unit": pcs, "from": T0, "to": T1, **kw}
        return (lot_id, o["gtin"], o["quantity"], o["unit"], o["from"], o["to"])

    snapshots = lambda: (  # noqa: E731
        world.snapshot("LOT-RAW"),
        world.snapshot("LOT-OWN"),
        world.snapshot("LOT-SUPPLIERS"),
        world.lots.transformation_count(),
    )
    before = snapshots()
    cases: list[tuple[LocalAccount, list[Any], list[Any], str, dict[str, Any]]] = [
        (world.outsider, [inp(raw)], [out()], "LotRegistryNotAdmitted", {"party": world.outsider.address}),
        (world.retailer, [inp(raw)], [out()], "LotRegistryNotAdmitted", {"action": OPEN_ACTION}),
        (factory, [], [out()], "LotRegistryInvalidTransformation", {"inputs": 0, "outputs": 1}),
        (factory, [inp(raw)], [], "LotRegistryInvalidTransformation", {"inputs": 1, "outputs": 0}),
        (factory, [inp(raw)] * 33, [out()], "LotRegistryInvalidTransformation", {"inputs": 33}),
        (
            factory,
            [inp(raw)],
            [out(f"F{i}") for i in range(17)],
            "LotRegistryInvalidTransformation",
            {"inputs": 1, "outputs": 17},
        ),
        (factory, [inp(nope)], [out()], "LotRegistryUnknownLot", {"lotId": nope}),
        (
            factory,
            [inp(raw), inp(theirs)],
            [out()],
            "LotRegistryNotCustodian",
            {"caller": factory.address, "lotId": theirs, "custodian": world.supplier.address},
        ),
        (factory, [inp(raw), inp(own), inp(raw)], [out()], "LotRegistryDuplicateInput", {"lotId": raw}),
        (
            factory,
            [inp(raw, 1000), inp(own, 51)],
            [out()],
            "LotRegistryConsumptionExceedsRemaining",
            {"lotId": own, "requested": 51, "remaining": 50},
        ),
        (factory, [inp(raw, 0)], [out()], "LotRegistryZeroQuantity", {}),
        (
            factory,
            [inp(raw, 5, pcs)],
            [out()],
            "LotRegistryUnitMismatch",
            {"lotId": raw, "declared": pcs, "unit": kg},
        ),
        (factory, [inp(raw)], [out(gtin=GTIN_BAD)], "GtinInvalidCheckDigit", {"expected": 2, "found": 3}),
        (factory, [inp(raw)], [out(gtin="123")], "GtinInvalidLength", {"length": 3}),
        (factory, [inp(raw)], [out("LOT-OWN")], "LotRegistryLotExists", {"lotId": own}),
        (
            factory,
            [inp(raw)],
            [out("FIN-1"), out("FIN-1")],
            "LotRegistryLotExists",
            {"lotId": lot_key("FIN-1", factory.address)},
        ),
        (factory, [inp(raw)], [out(quantity=0)], "LotRegistryZeroQuantity", {}),
        (factory, [inp(raw)], [out(unit=bytes(32))], "LotRegistryZeroUnit", {}),
        (
            factory,
            [inp(raw)],
            [out(**{"from": T1, "to": T0})],
            "LotRegistryInvalidWindow",
            {"producedFromMs": T1, "producedToMs": T0},
        ),
        (factory, [inp(raw)], [out("")], "LotRegistryInvalidLotId", {"length": 0}),
        (factory, [inp(raw)], [out("L" * 257)], "LotRegistryInvalidLotId", {"length": 257}),
    ]
    for sender, ins, outs, error, args in cases:
        with reverts(error, **args):
            world.chain.transact(fn(ins, outs), sender)
    assert snapshots() == before
    assert not world.lots.exists("FIN-1")

    # an input promised to someone else (a pending transfer) cannot be consumed
    world.lots.propose_transfer(factory, raw, world.retailer.address)
    pending = snapshots()
    with reverts("LotRegistryTransferPending", lotId=raw, to=world.retailer.address):
        world.lots.transform(factory, [_in(raw, 1)], [_out("FIN-1")])
    assert snapshots() == pending
    world.lots.cancel_transfer(factory, raw)
    # an input entirely split cannot be consumed
    world.lots.split_lot(factory, own, {"OWN-ALL": 50})
    with reverts("LotRegistryLotFullySplit", lotId=own):
        world.lots.transform(factory, [_in(own, 1)], [_out("FIN-1")])
    # the limits themselves are fine: 32 inputs, 16 outputs
    world.lots.split_lot(factory, raw, {f"RAW-{i}": 1 for i in range(31)})
    done = world.lots.transform(
        factory,
        [_in(raw, 1)] + [_in(f"RAW-{i}", 1) for i in range(31)],
        [_out(f"FIN-{i}", 1) for i in range(16)],
    )
    assert done.transformation_id == 1 and len(done.outputs) == 16
    assert all(world.lots.lot(f"RAW-{i}").status is LotStatus.CONSUMED for i in range(31))
    # an unknown transformation
    for tid in (0, 2):
        with reverts("LotRegistryUnknownTransformation", transformationId=tid):
            world.lots.transformation(tid)
    assert world.lots.inputs_of("OWN-ALL") == [] and world.lots.outputs_of("OWN-ALL") == []
    with reverts("LotRegistryUnknownLot", lotId=nope):
        world.lots.outputs_of(nope)
    with reverts("LotRegistryUnknownLot", lotId=nope):
        world.lots.inputs_of(nope)
    with reverts("LotRegistryUnknownLot", lotId=nope):
        world.lots.consumed_by(nope)
