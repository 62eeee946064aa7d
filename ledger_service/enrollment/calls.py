"""The DeviceRegistry call of an enrollment, and the checks of the party's signed transaction the
service relays: it must be exactly the prepared call, signed by the party, on this chain."""

from __future__ import annotations

from typing import Any

from eth_account import Account
from eth_account.typed_transactions import TypedTransaction
from eth_utils import ValidationError as EthValidationError
from eth_utils import to_checksum_address
from hexbytes import HexBytes
from rlp.exceptions import RLPException

from contracts.registry import device_id_hash
from device_attestation.certificates import VerifiedDevice
from device_attestation.keys import Scheme
from ledger_service.enrollment.checks import Attested
from ledger_service.enrollment.errors import EnrollmentRefused

__all__ = ["check_signed_transaction", "enroll_call"]


def enroll_call(
    verified: VerifiedDevice, attested: Attested, active_from: int
) -> tuple[str, tuple[Any, ...]]:
    """The registry function (``enrollP256`` or ``enrollSecp256k1``) and its arguments for ``verified``."""
    pub = verified.public_key
    did = device_id_hash(verified.device_id)
    if verified.scheme is Scheme.P256:
        return "enrollP256", (
            did,
            pub.x.to_bytes(32, "big"),
            pub.y.to_bytes(32, "big"),
            verified.fingerprint,
            verified.ca_key_hash,
            active_from,
            attested.birth,
            attested.proof,
        )
    return "enrollSecp256k1", (
        did,
        to_checksum_address(pub.eth_address),
        verified.fingerprint,
        verified.ca_key_hash,
        active_from,
        attested.birth,
        attested.proof,
    )


def check_signed_transaction(
    raw: bytes, *, party: str, registry_address: str, data: str, chain_id: int
) -> None:
    """Refuse (``enroll.bad_transaction``) ``raw`` unless it is an EIP-1559 transaction signed by
    ``party`` calling the registry with ``data`` on ``chain_id``, sending no value."""
    if not raw or raw[0] != 2:
        raise EnrollmentRefused(
            "signed_transaction must be an EIP-1559 (type 2) transaction: sign the `transaction` "
            "object POST /v1/devices returned (e.g. Account.sign_transaction) and send its raw bytes",
            code="enroll.bad_transaction",
        )
    try:
        fields = TypedTransaction.from_bytes(HexBytes(raw)).as_dict()
        sender = Account.recover_transaction(raw)
    except (RLPException, EthValidationError, ValueError, TypeError) as e:
        raise EnrollmentRefused(
            f"signed_transaction cannot be decoded ({type(e).__name__}: {e}); send the raw signed bytes",
            code="enroll.bad_transaction",
        ) from e
    to = fields.get("to")
    problems = []
    if sender != party:
        problems.append(f"it is signed by {sender}, not by you ({party})")
    if not to or to_checksum_address(bytes(to)) != registry_address:
        problems.append(f"it is not addressed to the DeviceRegistry {registry_address}")
    if HexBytes(fields.get("data", b"")) != HexBytes(data):
        problems.append("its data is not the prepared enrollment call")
    if fields.get("chainId") != chain_id:
        problems.append(f"it is for chain {fields.get('chainId')}, not {chain_id}")
    if fields.get("value", 0) != 0:
        problems.append("it sends value")
    if problems:
        raise EnrollmentRefused(
            "the signed transaction is not the prepared enrollment: "
            + "; ".join(problems)
            + ". Sign the `transaction` POST /v1/devices returned, unchanged",
            code="enroll.bad_transaction",
        )
