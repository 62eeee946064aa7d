"""A factory's consent to a bank as a salted commitment: the consent id and its opening (issue 14).

The chain never names the bank a factory consents to. ``CreditRegistry`` keys a consent by its
**consent id**::

    consentId = keccak256(abi.encode(address factory, address bank, bytes32 salt))

with ``salt`` 32 bytes from :mod:`secrets`, fresh per consent (``CreditRegistry.consentIdOf`` computes
the same in Solidity; :data:`CONSENT_ID_VECTOR` is the test vector both sides check). Without the salt,
nobody can try every admitted bank's address against an id. A :class:`ConsentOpening` (factory, bank,
salt) is what the factory, the service and the consented bank hold off chain; whoever holds one checks
it against the chain with :func:`check_consent_opening`.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from eth_abi import encode
from eth_utils import is_address, keccak, to_checksum_address

from contracts.errors import ContractsError

__all__ = [
    "CONSENT_ID_VECTOR",
    "CONSENT_OPENING_SCHEMA",
    "ConsentOpening",
    "InvalidConsentOpening",
    "consent_id",
    "new_consent",
]

CONSENT_OPENING_SCHEMA: Final = "supet.consent-opening.v1"

#: The encoding's test vector: the Python and the Solidity side (``consentIdOf``) both give ``id``.
CONSENT_ID_VECTOR: Final = {
    "factory": "0x1111111111111111111111111111111111111111",
    "bank": "0x2222222222222222222222222222222222222222",
    "salt": "0x" + "33" * 32,
    "id": "0x93a444846e4fda069407f6c3b1f13662af7192b9829015f800dc507b04dfeab1",
}


class InvalidConsentOpening(ContractsError):
    """A consent opening is malformed (a bad address, a salt that is not 32 bytes, an id it does not open)."""

    code = "credit.consent.invalid"


def _address(value: object, name: str) -> str:
    if not isinstance(value, str) or not is_address(value):
        raise InvalidConsentOpening(f"{name} is a 0x-hex 20-byte address, got {value!r}")
    return to_checksum_address(value)


def _b32(value: object, name: str) -> bytes:
    raw: bytes
    if isinstance(value, bytes | bytearray):
        raw = bytes(value)
    elif isinstance(value, str):
        try:
            raw = bytes.fromhex(value.removeprefix("0x"))
        except ValueError as e:
            raise InvalidConsentOpening(f"{name} is 0x-hex 32 bytes, got {value!r}") from e
    else:
        raise InvalidConsentOpening(f"{name} is 0x-hex 32 bytes, got {type(value).__name__}")
    if len(raw) != 32:
        raise InvalidConsentOpening(f"{name} is 32 bytes, got {len(raw)}")
    return raw


def consent_id(factory: str, bank: str, salt: bytes) -> bytes:
    """``keccak256(abi.encode(factory, bank, salt))``: the consent's key on chain."""
    f, b = _address(factory, "factory"), _address(bank, "bank")
    return keccak(encode(["address", "address", "bytes32"], [f, b, _b32(salt, "salt")]))


@dataclass(frozen=True, kw_only=True)
class ConsentOpening:
    """A consent's opening: the factory, the bank it consents to, and the salt of its id."""

    factory: str
    bank: str
    salt: bytes

    def __post_init__(self) -> None:
        object.__setattr__(self, "factory", _address(self.factory, "factory"))
        object.__setattr__(self, "bank", _address(self.bank, "bank"))
        object.__setattr__(self, "salt", _b32(self.salt, "salt"))
        if self.factory == self.bank:
            raise InvalidConsentOpening(f"a factory ({self.factory}) cannot consent to itself")

    @property
    def consent_id(self) -> bytes:
        return consent_id(self.factory, self.bank, self.salt)

    @property
    def consent_id_hex(self) -> str:
        return "0x" + self.consent_id.hex()

    def to_json_obj(self) -> dict[str, str]:
        return {
            "schema": CONSENT_OPENING_SCHEMA,
            "consent_id": self.consent_id_hex,
            "factory": self.factory,
            "bank": self.bank,
            "salt": "0x" + self.salt.hex(),
        }

    @classmethod
    def from_json_obj(cls, obj: Mapping[str, Any]) -> ConsentOpening:
        """An opening from its JSON; a ``consent_id`` given must be the one it opens."""
        try:
            opening = cls(factory=obj["factory"], bank=obj["bank"], salt=obj["salt"])
        except KeyError as e:
            raise InvalidConsentOpening(
                f"a consent opening needs factory, bank and salt; {e} is missing"
            ) from e
        claimed = obj.get("consent_id")
        if claimed is not None and _b32(claimed, "consent_id") != opening.consent_id:
            raise InvalidConsentOpening(
                f"this opening gives consent id {opening.consent_id_hex}, not {claimed}: the factory, bank "
                "or salt is not the one of that consent"
            )
        return opening


def new_consent(factory: str, bank: str) -> ConsentOpening:
    """A fresh consent of ``factory`` to ``bank``: a 256-bit salt from :mod:`secrets`."""
    return ConsentOpening(factory=factory, bank=bank, salt=secrets.token_bytes(32))
