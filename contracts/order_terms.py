"""A purchase order's terms (quantity, unit price) and their salted commitment (issue 14).

Every consortium member reads every slot, log and transaction input of ``PurchaseOrders``, so an
order's business figures never reach the chain. The order holds

    termsCommitment = keccak256(abi.encode(TERMS_TAG, orderId, quantity, unitPrice, salt))

with ``TERMS_TAG = keccak256("supet.order-terms.v1")`` and a fresh 256-bit salt, defined once here
(:meth:`OrderTerms.commitment`) and once in Solidity (``PurchaseOrders.termsCommitmentOf``);
``tests/contracts/test_order_terms.py`` holds the test vector both must give.

- :class:`OrderTerms` is an **opening**: the order id, quantity, unit price and salt. The buyer's
  client draws it (:meth:`OrderTerms.fresh`) when it places the order and sends it to the supplier
  off chain; the supplier accepts with its commitment, so it accepts exactly those terms.
- :func:`write_openings` / :func:`read_openings` keep a party's openings in a JSON file (the form the
  analytics take them in: ``supet analytics profile --order-terms FILE``).

``quantity`` is in the unit of the product's lots (above zero); ``unit_price`` is the price per unit
in minor units of the consortium's settlement currency (zero allowed: a free sample order).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_abi import encode
from eth_utils import keccak

from contracts.errors import ContractsError

__all__ = [
    "OPENING_FORMAT",
    "TERMS_TAG",
    "InvalidTerms",
    "OrderTerms",
    "OrderTermsMismatch",
    "read_openings",
    "write_openings",
]

#: The domain tag of an order's terms commitment (``PurchaseOrders.TERMS_TAG``).
TERMS_TAG = keccak(b"supet.order-terms.v1")
#: The ``format`` of an opening as JSON.
OPENING_FORMAT = "supet.order-terms-opening.v1"

_UINT256 = 2**256


class InvalidTerms(ContractsError):
    """Order terms (or their JSON) that are not usable: refused before anything reaches the chain."""

    code = "order.terms.invalid"


class OrderTermsMismatch(ContractsError):
    """An opening does not open the order's commitment on chain (the terms, or the salt, differ)."""

    code = "order.terms.mismatch"

    def __init__(self, message: str, *, order_id: bytes, committed: bytes, given: bytes) -> None:
        super().__init__(message)
        self.order_id = order_id
        self.committed = committed
        self.given = given


def _b32(value: bytes, name: str) -> bytes:
    if not isinstance(value, bytes | bytearray) or len(value) != 32:
        raise InvalidTerms(f"{name} is 32 bytes, got {value!r}")
    return bytes(value)


@dataclass(frozen=True, kw_only=True)
class OrderTerms:
    """An order's terms with their salt: what opens its ``termsCommitment``."""

    order_id: bytes
    quantity: int
    unit_price: int
    salt: bytes

    def __post_init__(self) -> None:
        _b32(self.order_id, "order_id")
        _b32(self.salt, "salt")
        if isinstance(self.quantity, bool) or not isinstance(self.quantity, int):
            raise InvalidTerms(f"quantity is an integer, got {self.quantity!r}")
        if not 0 < self.quantity < _UINT256:
            raise InvalidTerms(
                f"an order's quantity must be above zero (and below 2**256), got {self.quantity}"
            )
        if isinstance(self.unit_price, bool) or not isinstance(self.unit_price, int):
            raise InvalidTerms(f"unit_price is an integer (minor units), got {self.unit_price!r}")
        if not 0 <= self.unit_price < _UINT256:
            raise InvalidTerms(f"unit_price must be 0 to 2**256 - 1 minor units, got {self.unit_price}")

    @classmethod
    def fresh(cls, order_id: bytes, *, quantity: int, unit_price: int) -> OrderTerms:
        """The terms of ``order_id`` with a fresh 256-bit salt (:func:`secrets.token_bytes`)."""
        return cls(order_id=order_id, quantity=quantity, unit_price=unit_price, salt=secrets.token_bytes(32))

    def commitment(self) -> bytes:
        """``keccak256(abi.encode(TERMS_TAG, orderId, quantity, unitPrice, salt))``."""
        return keccak(
            encode(
                ["bytes32", "bytes32", "uint256", "uint256", "bytes32"],
                [TERMS_TAG, self.order_id, self.quantity, self.unit_price, self.salt],
            )
        )

    @property
    def total_price(self) -> int:
        """Quantity times unit price, in minor units."""
        return self.quantity * self.unit_price

    def to_json_obj(self) -> dict[str, Any]:
        """The opening as JSON (``format`` :data:`OPENING_FORMAT`), with its commitment."""
        return {
            "format": OPENING_FORMAT,
            "order_id": "0x" + self.order_id.hex(),
            "quantity": str(self.quantity),
            "unit_price": str(self.unit_price),
            "salt": "0x" + self.salt.hex(),
            "terms_commitment": "0x" + self.commitment().hex(),
        }

    @classmethod
    def from_json_obj(cls, obj: Any) -> OrderTerms:
        """An opening from :meth:`to_json_obj`'s form; its ``terms_commitment``, when given, must match."""
        if not isinstance(obj, dict) or obj.get("format") != OPENING_FORMAT:
            raise InvalidTerms(f"an order-terms opening is a JSON object with format {OPENING_FORMAT!r}")
        try:
            terms = cls(
                order_id=_hex32(obj["order_id"], "order_id"),
                quantity=int(str(obj["quantity"]), 10),
                unit_price=int(str(obj["unit_price"]), 10),
                salt=_hex32(obj["salt"], "salt"),
            )
        except KeyError as e:
            raise InvalidTerms(f"an order-terms opening lacks {e.args[0]!r}") from None
        except ValueError as e:
            raise InvalidTerms(f"an order-terms opening has a bad number: {e}") from None
        given = obj.get("terms_commitment")
        if given is not None and _hex32(given, "terms_commitment") != terms.commitment():
            raise InvalidTerms(
                f"the opening of order 0x{terms.order_id.hex()} does not give its own "
                f"terms_commitment {given}"
            )
        return terms


def _hex32(text: Any, name: str) -> bytes:
    if not isinstance(text, str) or not text.startswith("0x") or len(text) != 66:
        raise InvalidTerms(f"{name} is 0x and 64 hex digits, got {text!r}")
    try:
        return bytes.fromhex(text[2:])
    except ValueError:
        raise InvalidTerms(f"{name} is 0x and 64 hex digits, got {text!r}") from None


def write_openings(path: Path, openings: Iterable[OrderTerms]) -> None:
    """Write ``openings`` to ``path`` as a JSON list (the salts are secrets: keep the file private)."""
    path.write_text(json.dumps([o.to_json_obj() for o in openings], indent=1) + "\n", encoding="utf-8")
    path.chmod(0o600)


def read_openings(path: Path) -> list[OrderTerms]:
    """The openings in ``path`` (a JSON list of :meth:`OrderTerms.to_json_obj` objects)."""
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise InvalidTerms(f"cannot read order-terms openings from {path}: {e}") from None
    if not isinstance(obj, list):
        raise InvalidTerms(f"{path} holds a JSON list of order-terms openings")
    return [OrderTerms.from_json_obj(o) for o in obj]
