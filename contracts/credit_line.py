"""The credit line's statement (issue 15): an oracle's EIP-712 ``CreditLine`` that ``Receivables.finance``
checks before a bank finances a part.

The limit of a factory's credit record is a commitment on chain (docs/credit-commitments.md), so the
contract cannot compare a financing with it. The factory's oracle, which knows the limit, signs instead:
"``total``, the factory's outstanding financed amount once ``bank`` finances part ``part_id``, is at most
the limit of the factory's record ``record_index``, until ``deadline``". The contract checks the
signature (the factory's bound oracle), that the record is the factory's current valid one, the
deadline, and that ``total`` is the factory's outstanding amount plus the part's
(docs/contracts-finance.md, "The credit line").

- :class:`CreditLine`: the statement; :meth:`CreditLine.sign` has the oracle sign it for a
  :class:`LineDomain` (the Receivables contract's EIP-712 domain) into a :class:`LineAttestation`.
- :class:`LineAttestation`: what a bank passes to ``finance`` (``as_tuple`` is the ABI tuple); it
  travels as JSON (``to_json_obj`` / ``from_json_obj``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address
from eth_utils.exceptions import ValidationError as EthUtilsValidationError
from hexbytes import HexBytes

from contracts.eip712 import EIP712_DOMAIN_TYPE
from contracts.errors import ContractsError

__all__ = [
    "CREDIT_LINE_TYPES",
    "DOMAIN_NAME",
    "DOMAIN_VERSION",
    "LINE_ATTESTATION_TYPE",
    "CreditLine",
    "CreditLineError",
    "LineAttestation",
    "LineDomain",
]

#: The EIP-712 domain name and version of the Receivables contract.
DOMAIN_NAME = "supET Receivables"
DOMAIN_VERSION = "1"
#: The EIP-712 types of a credit-line statement (the contract's ``CREDIT_LINE_TYPEHASH``).
CREDIT_LINE_TYPES: dict[str, list[dict[str, str]]] = {
    "EIP712Domain": EIP712_DOMAIN_TYPE,
    "CreditLine": [
        {"name": "factory", "type": "address"},
        {"name": "bank", "type": "address"},
        {"name": "partId", "type": "uint256"},
        {"name": "recordIndex", "type": "uint256"},
        {"name": "total", "type": "uint256"},
        {"name": "deadline", "type": "uint64"},
    ],
}
#: The ``type`` of an attestation's JSON.
LINE_ATTESTATION_TYPE = "supet.credit-line.v1"


class CreditLineError(ContractsError):
    """A credit-line statement or its JSON is unusable (refused before anything reaches the chain)."""

    code = "credit_line.input"


@dataclass(frozen=True, kw_only=True)
class LineDomain:
    """The EIP-712 domain of one Receivables contract: a statement signed for it counts nowhere else."""

    chain_id: int
    verifying_contract: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": self.chain_id,
            "verifyingContract": to_checksum_address(self.verifying_contract),
        }


def _address(name: str, value: str) -> str:
    try:
        return str(to_checksum_address(value))
    except (ValueError, TypeError, EthUtilsValidationError) as e:
        raise CreditLineError(f"credit line {name} {value!r} is not an address") from e


@dataclass(frozen=True, kw_only=True)
class CreditLine:
    """The oracle's statement: ``factory``'s outstanding financed amount, once ``bank`` finances part
    ``part_id``, is ``total``, at most the limit of its record ``record_index``; usable until ``deadline``
    (Unix seconds, inclusive)."""

    factory: str
    bank: str
    part_id: int
    record_index: int
    total: int
    deadline: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "factory", _address("factory", self.factory))
        object.__setattr__(self, "bank", _address("bank", self.bank))
        for name, bits in (("part_id", 256), ("record_index", 256), ("total", 256), ("deadline", 64)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 2**bits:
                raise CreditLineError(
                    f"credit line {name} must be an unsigned {bits}-bit integer, not {value!r}"
                )

    def message(self) -> dict[str, Any]:
        return {
            "factory": self.factory,
            "bank": self.bank,
            "partId": self.part_id,
            "recordIndex": self.record_index,
            "total": self.total,
            "deadline": self.deadline,
        }

    def typed_data(self, domain: LineDomain) -> dict[str, Any]:
        """The full EIP-712 message (for eth_account or a wallet's ``eth_signTypedData_v4``)."""
        return {
            "types": CREDIT_LINE_TYPES,
            "primaryType": "CreditLine",
            "domain": domain.as_dict(),
            "message": self.message(),
        }

    def digest(self, domain: LineDomain) -> bytes:
        """The EIP-712 digest the oracle signs (the contract's ``_hashTypedDataV4``)."""
        signable = encode_typed_data(full_message=self.typed_data(domain))
        return keccak(b"\x19" + signable.version + signable.header + signable.body)

    def sign(self, oracle: LocalAccount, domain: LineDomain) -> LineAttestation:
        """The statement signed by ``oracle`` for ``domain``."""
        signed = oracle.sign_message(encode_typed_data(full_message=self.typed_data(domain)))
        return LineAttestation(line=self, signature=bytes(signed.signature))


@dataclass(frozen=True, kw_only=True)
class LineAttestation:
    """A signed :class:`CreditLine`: what a bank passes to ``Receivables.finance``."""

    line: CreditLine
    signature: bytes

    def as_tuple(self) -> tuple[int, int, int, bytes]:
        """The ABI tuple of ``Receivables.LineAttestation`` (recordIndex, total, deadline, signature)."""
        return (self.line.record_index, self.line.total, self.line.deadline, self.signature)

    def signer(self, domain: LineDomain) -> str:
        """The address that signed it (an EOA oracle), recovered for ``domain``."""
        signable = encode_typed_data(full_message=self.line.typed_data(domain))
        return str(Account.recover_message(signable, signature=self.signature))

    def to_json_obj(self) -> dict[str, Any]:
        return {
            "type": LINE_ATTESTATION_TYPE,
            "factory": self.line.factory,
            "bank": self.line.bank,
            "part_id": self.line.part_id,
            "record_index": self.line.record_index,
            "total": str(self.line.total),
            "deadline": self.line.deadline,
            "signature": "0x" + self.signature.hex(),
        }

    @classmethod
    def from_json_obj(cls, obj: Any) -> LineAttestation:
        """An attestation from its JSON; :class:`CreditLineError` naming what is wrong."""
        if not isinstance(obj, dict) or obj.get("type") != LINE_ATTESTATION_TYPE:
            raise CreditLineError(f"not a credit-line attestation (type {LINE_ATTESTATION_TYPE} expected)")
        try:
            line = CreditLine(
                factory=str(obj["factory"]),
                bank=str(obj["bank"]),
                part_id=int(obj["part_id"]),
                record_index=int(obj["record_index"]),
                total=int(obj["total"]),
                deadline=int(obj["deadline"]),
            )
            signature = bytes(HexBytes(str(obj["signature"])))
        except (KeyError, ValueError, TypeError) as e:
            raise CreditLineError(f"credit-line attestation field missing or malformed: {e}") from e
        return cls(line=line, signature=signature)
