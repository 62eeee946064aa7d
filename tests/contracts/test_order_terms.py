"""An order's terms commitment (issue 14): the one definition in Python against a fixed test vector and
the Solidity one (``PurchaseOrders.termsCommitmentOf``, on both chains), the opening's JSON form and
its file, and every refusal of bad terms."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from eth_abi import encode
from eth_utils import keccak

from contracts.order_terms import (
    OPENING_FORMAT,
    TERMS_TAG,
    InvalidTerms,
    OrderTerms,
    read_openings,
    write_openings,
)
from contracts.orders import deploy_purchase_orders, order_id

# The test vector: buyer 0x...0b0b's order "PO-2026-0042", 1,200 units at 1,250 minor units each, salt
# 0x5a repeated. Solidity's termsCommitmentOf and the Python client must both give COMMITMENT.
BUYER = "0x0000000000000000000000000000000000000B0b"
ORDER_ID = bytes.fromhex("9bd522aa6cbe4832c76737c892b2f911339f776d515ca03b635841a3801babf6")
VECTOR = OrderTerms(order_id=ORDER_ID, quantity=1200, unit_price=1250, salt=bytes([0x5A]) * 32)
COMMITMENT = bytes.fromhex("a553830c10f4bbdca777a09018139b9a9e955014d8c166d387222844583ea50d")


def test_tag_and_vector() -> None:
    assert keccak(b"supet.order-terms.v1") == TERMS_TAG
    assert order_id(BUYER, "PO-2026-0042") == ORDER_ID
    assert VECTOR.commitment() == COMMITMENT
    # the layout, written out: abi.encode of five 32-byte words
    words = TERMS_TAG + ORDER_ID + (1200).to_bytes(32, "big") + (1250).to_bytes(32, "big") + VECTOR.salt
    assert keccak(words) == COMMITMENT
    assert (
        keccak(
            encode(
                ["bytes32", "bytes32", "uint256", "uint256", "bytes32"],
                [TERMS_TAG, ORDER_ID, 1200, 1250, VECTOR.salt],
            )
        )
        == COMMITMENT
    )
    assert VECTOR.total_price == 1_500_000


def test_solidity_gives_the_vector(suite: Any) -> None:
    op = suite.operator
    gate = suite.chain.deploy("StaticAdmissionGate", op, op.address).contract_address
    address = deploy_purchase_orders(suite.chain, op, deployment=suite.deployment, gate_address=gate)
    fns = suite.chain.contract("PurchaseOrders", address).functions
    assert suite.chain.call(fns.TERMS_TAG()) == TERMS_TAG
    assert suite.chain.call(fns.termsCommitmentOf(ORDER_ID, 1200, 1250, VECTOR.salt)) == COMMITMENT
    # each field moves the commitment
    assert suite.chain.call(fns.termsCommitmentOf(ORDER_ID, 1201, 1250, VECTOR.salt)) != COMMITMENT
    assert suite.chain.call(fns.termsCommitmentOf(ORDER_ID, 1200, 1251, VECTOR.salt)) != COMMITMENT


def test_fresh_salts_differ() -> None:
    a = OrderTerms.fresh(ORDER_ID, quantity=1200, unit_price=1250)
    b = OrderTerms.fresh(ORDER_ID, quantity=1200, unit_price=1250)
    assert len(a.salt) == 32 and a.salt != b.salt and a.commitment() != b.commitment()


def test_json_round_trip_and_file(tmp_path: Path) -> None:
    obj = VECTOR.to_json_obj()
    assert obj == {
        "format": OPENING_FORMAT,
        "order_id": "0x" + ORDER_ID.hex(),
        "quantity": "1200",
        "unit_price": "1250",
        "salt": "0x" + "5a" * 32,
        "terms_commitment": "0x" + COMMITMENT.hex(),
    }
    assert OrderTerms.from_json_obj(obj) == VECTOR
    path = tmp_path / "terms.json"
    other = OrderTerms.fresh(ORDER_ID, quantity=7, unit_price=0)
    write_openings(path, [VECTOR, other])
    assert path.stat().st_mode & 0o777 == 0o600  # the salts are secrets
    assert read_openings(path) == [VECTOR, other]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"quantity": 0}, "quantity must be above zero"),
        ({"quantity": 2**256}, "quantity must be above zero"),
        ({"quantity": True}, "quantity is an integer"),
        ({"quantity": 1.5}, "quantity is an integer"),
        ({"unit_price": -1}, "unit_price must be 0 to"),
        ({"unit_price": "1"}, "unit_price is an integer"),
        ({"salt": b"short"}, "salt is 32 bytes"),
        ({"order_id": b"\x00" * 31}, "order_id is 32 bytes"),
    ],
)
def test_bad_terms_refused(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"order_id": ORDER_ID, "quantity": 1, "unit_price": 1, "salt": bytes(32)}
    args.update(kwargs)
    with pytest.raises(InvalidTerms, match=message):
        OrderTerms(**args)


def test_bad_json_refused(tmp_path: Path) -> None:
    good = VECTOR.to_json_obj()
    cases: list[tuple[Any, str]] = [
        ([], "JSON object with format"),
        ({**good, "format": "other"}, "JSON object with format"),
        ({k: v for k, v in good.items() if k != "salt"}, "lacks 'salt'"),
        ({**good, "quantity": "12x"}, "bad number"),
        ({**good, "salt": "0x5a"}, "salt is 0x and 64 hex digits"),
        ({**good, "salt": "0x" + "zz" * 32}, "salt is 0x and 64 hex digits"),
        ({**good, "quantity": "1201"}, "does not give its own terms_commitment"),
    ]
    for obj, message in cases:
        with pytest.raises(InvalidTerms, match=message):
            OrderTerms.from_json_obj(obj)
    path = tmp_path / "bad.json"
    path.write_text("{", encoding="utf-8")
    with pytest.raises(InvalidTerms, match="cannot read order-terms openings"):
        read_openings(path)
    path.write_text("{}", encoding="utf-8")
    with pytest.raises(InvalidTerms, match="a JSON list"):
        read_openings(path)
    with pytest.raises(InvalidTerms, match="cannot read"):
        read_openings(tmp_path / "missing.json")
