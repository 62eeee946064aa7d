"""Prepare-and-relay of a party's own transactions: the service never holds a party's key.

:func:`prepare` turns a contract call into the unsigned EIP-1559 transaction the authenticated party
signs locally (chain id, the party's nonce from the chain, gas from ``estimate_gas``, fees). The gas
estimate runs the call, so a call the contract would refuse is answered here, before anything is
signed, with the contract's custom error (:class:`RelayRefused` ``finance.reverts``).

:func:`relay` sends a signed transaction only if it is exactly the prepared call: it is an EIP-1559
(type 2) or EIP-2930 (type 1) transaction (else ``finance.relay_type``: a legacy transaction, an EIP-4844
blob transaction or an EIP-7702 set-code transaction, whose authorization list would let the relay set
code on an account, are never forwarded), it carries no field the service did not prepare (a non-empty
access list: ``finance.relay_extra_fields``), it decodes to the
expected ``to``, ``data``, ``value`` and chain id (else ``finance.relay_mismatch``), it was signed by the
authenticated party (else ``finance.relay_signer``), and its nonce is unused and leaves no gap (else
``finance.relay_nonce``). Nothing is sent when a check fails. A transaction the node refuses is
``finance.relay_refused``; one mined but reverted is ``finance.reverted`` with the custom error and the
transaction hash. Every refusal carries ``details`` (the revert's ``error`` name and ``args``) for the
API to show next to the code.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Final, cast

from eth_account import Account
from eth_account.typed_transactions import TypedTransaction
from eth_typing import ChecksumAddress
from eth_utils import to_checksum_address
from eth_utils.exceptions import ValidationError as EthValidationError
from hexbytes import HexBytes
from web3.contract.contract import ContractFunction

from contracts.chain import Chain, TxResult
from contracts.errors import ContractRevert, NodeRefused
from ledger_service.credit_desk.errors import FinanceError

__all__ = [
    "RelayConflict",
    "RelayForbidden",
    "RelayRefused",
    "Relayed",
    "expected_call",
    "prepare",
    "relay",
    "revert_details",
]


class RelayRefused(FinanceError):
    """A party transaction cannot be prepared or relayed as asked; nothing was sent.

    Codes: ``finance.reverts`` (409, the contract would refuse the call), ``finance.reverted`` (409,
    mined and reverted), ``finance.relay_bad_transaction`` (400, undecodable), ``finance.relay_mismatch``
    (400, not the prepared call), ``finance.relay_type`` (400, not an EIP-1559 or EIP-2930 transaction),
    ``finance.relay_extra_fields`` (400, a field the service did not prepare, such as an access list),
    ``finance.relay_signer`` (403, signed by another key),
    ``finance.relay_nonce`` (409, nonce already used: a replay), ``finance.relay_refused`` (409, the
    node refused it).
    """

    code = "finance.relay_refused"

    def __init__(self, message: str, *, code: str, details: Mapping[str, Any] | None = None) -> None:
        super().__init__(message, code=code)
        self.details: dict[str, Any] = dict(details or {})


class RelayConflict(RelayRefused):
    """The call conflicts with the chain's state (HTTP 409): ``finance.reverts``, ``finance.reverted``,
    ``finance.relay_nonce``, ``finance.relay_refused``."""


class RelayForbidden(RelayRefused):
    """The transaction is signed by another key than the party's (HTTP 403): ``finance.relay_signer``."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Relayed:
    """A relayed transaction, mined and successful."""

    tx_hash: str
    block_number: int
    gas_used: int
    result: TxResult


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return value


def revert_details(e: ContractRevert) -> dict[str, Any]:
    """The custom error of a revert as JSON: ``{"error": name, "args": {...}}``."""
    return {"error": e.error_name, "args": _jsonable(e.error_args)}


def _revert_text(e: ContractRevert) -> str:
    args = ", ".join(f"{k}={_jsonable(v)}" for k, v in e.error_args.items())
    return f"{e.error_name or 'a revert without a custom error'}({args})"


def expected_call(chain: Chain, fn: ContractFunction, *, value: int = 0) -> dict[str, Any]:
    """What a signed transaction must carry to be ``fn``: ``to``, ``data``, ``value``, ``chainId``."""
    return {
        "to": to_checksum_address(str(fn.address)),
        "data": HexBytes(fn._encode_transaction_data()).to_0x_hex(),
        "value": value,
        "chainId": chain.chain_id,
    }


def prepare(chain: Chain, party: str, fn: ContractFunction, *, context: str) -> dict[str, Any]:
    """The unsigned transaction calling ``fn`` from ``party`` (JSON-ready; sign it without ``from``).

    Raises :class:`RelayRefused` ``finance.reverts`` (409) when the contract would refuse the call.
    """
    sender = to_checksum_address(party)
    try:
        gas = int(chain.estimate_gas(fn, sender) * 1.2) + 10_000
    except ContractRevert as e:
        raise RelayConflict(
            f"{context}: the contract would refuse this call: {_revert_text(e)}; nothing to sign",
            code="finance.reverts",
            details=revert_details(e),
        ) from e
    nonce = chain.request(lambda: chain.w3.eth.get_transaction_count(sender, "pending"), context="nonce")
    tx = chain.request(
        lambda: fn.build_transaction({"from": sender, "chainId": chain.chain_id, "nonce": nonce, "gas": gas}),
        context=context,
    )
    return {
        k: (v if isinstance(v, int | str) else HexBytes(cast(Any, v)).to_0x_hex())
        for k, v in dict(tx).items()
    }


#: The transaction types relayed, and the fields each may carry. The service prepares type 2; a wallet
#: may sign the same call as type 1. Never: legacy (type 0: a fee model the service did not prepare and,
#: before EIP-155, no chain id), EIP-4844 blob (3) and EIP-7702 set-code (4) transactions.
RELAYED_TYPES: Final[Mapping[int, frozenset[str]]] = {
    1: frozenset({"type", "chainId", "nonce", "gasPrice", "gas", "to", "value", "data", "accessList"}),
    2: frozenset(
        {
            "type",
            "chainId",
            "nonce",
            "maxPriorityFeePerGas",
            "maxFeePerGas",
            "gas",
            "to",
            "value",
            "data",
            "accessList",
        }
    ),
}
_TYPE_NAMES: Final = {0: "legacy", 1: "EIP-2930", 2: "EIP-1559", 3: "EIP-4844 blob", 4: "EIP-7702 set-code"}
_SIGNATURE_FIELDS: Final = frozenset({"v", "r", "s", "yParity"})


def _tx_type(raw: bytes) -> int:
    """The EIP-2718 type of raw transaction bytes (0 for a legacy RLP list)."""
    if not raw:
        raise RelayRefused(
            "signed_transaction is empty; send the 0x-hex raw bytes of the prepared transaction signed as "
            "it is (EIP-1559, type 2)",
            code="finance.relay_bad_transaction",
        )
    return 0 if raw[0] >= 0xC0 else raw[0]


def _refuse_unprepared(tx_type: int, fields: Mapping[str, Any], expected: Mapping[str, Any]) -> None:
    """:class:`RelayRefused` if the transaction carries a field the service did not prepare."""
    allowed = RELAYED_TYPES[tx_type]
    extra = sorted(k for k in fields if k not in allowed and k not in _SIGNATURE_FIELDS)
    if fields.get("accessList") and fields.get("accessList") != expected.get("accessList"):
        extra.insert(0, "accessList")
    if extra:
        raise RelayRefused(
            f"the signed transaction carries {', '.join(extra)}, which the service did not prepare: sign "
            "the prepared transaction as it is (no access list); nothing sent",
            code="finance.relay_extra_fields",
            details={"fields": extra},
        )


def _decode(signed_raw: str) -> tuple[bytes, dict[str, Any], str]:
    try:
        raw = bytes.fromhex(signed_raw.removeprefix("0x"))
    except ValueError as e:
        raise RelayRefused(
            "signed_transaction is not 0x-hex; send the 0x-hex raw bytes of the prepared transaction signed "
            "as it is (EIP-1559, type 2)",
            code="finance.relay_bad_transaction",
        ) from e
    tx_type = _tx_type(raw)
    if tx_type not in RELAYED_TYPES:
        name = _TYPE_NAMES.get(tx_type, "an unknown type")
        raise RelayRefused(
            f"the signed transaction is a type {tx_type} ({name}) transaction; only the prepared EIP-1559 "
            "(type 2) or an EIP-2930 (type 1) transaction is relayed: sign the prepared transaction as "
            "it is; nothing sent",
            code="finance.relay_type",
            details={"type": tx_type, "accepted": sorted(RELAYED_TYPES)},
        )
    try:
        fields = TypedTransaction.from_bytes(HexBytes(raw)).as_dict()
        sender = to_checksum_address(Account.recover_transaction(raw))
    except Exception as e:  # any decoding failure is the caller's
        raise RelayRefused(
            f"signed_transaction cannot be decoded ({type(e).__name__}); send the 0x-hex raw bytes of the "
            "prepared transaction signed as it is (EIP-1559, type 2)",
            code="finance.relay_bad_transaction",
        ) from e
    return raw, fields, sender


def _refuse_mismatch(fields: Mapping[str, Any], expected: Mapping[str, Any], context: str) -> None:
    """Refuse a signed transaction that is not the ``expected`` call (to, data, value, chain id)."""
    to = fields.get("to")
    problems = []
    if not to or to_checksum_address(bytes(to)) != to_checksum_address(expected["to"]):
        problems.append(f"it is not addressed to {expected['to']}")
    if HexBytes(fields.get("data", b"")) != HexBytes(expected["data"]):
        problems.append(f"its data is not the prepared {context} call")
    if int(fields.get("value", 0)) != int(expected.get("value", 0)):
        problems.append(f"it sends {fields.get('value')} wei, the prepared call {expected.get('value', 0)}")
    if fields.get("chainId") != int(expected["chainId"]):
        problems.append(f"its chain id is {fields.get('chainId')}, this chain's {expected['chainId']}")
    if problems:
        raise RelayRefused(
            f"the signed transaction is not the prepared {context}: "
            + "; ".join(problems)
            + "; nothing sent",
            code="finance.relay_mismatch",
        )


def _refuse_nonce(chain: Chain, party: ChecksumAddress, fields: Mapping[str, Any]) -> None:
    """Refuse a nonce already used by ``party`` or one that leaves a gap."""
    used = int(chain.request(lambda: chain.w3.eth.get_transaction_count(party, "latest"), context="nonce"))
    nonce = int(fields.get("nonce", 0))
    if nonce < used:
        raise RelayConflict(
            f"nonce {nonce} of {party} is already used ({used} transactions mined): this transaction was "
            "sent already or replaced; prepare a new one",
            code="finance.relay_nonce",
            details={"nonce": nonce, "next_nonce": used},
        )
    pending = int(
        chain.request(lambda: chain.w3.eth.get_transaction_count(party, "pending"), context="nonce")
    )
    if nonce > pending:
        raise RelayConflict(
            f"nonce {nonce} of {party} leaves a gap (the next is {pending}): it would wait in the node's "
            "queue instead of being mined; prepare a new one",
            code="finance.relay_nonce",
            details={"nonce": nonce, "next_nonce": pending},
        )


def _send_raw(chain: Chain, party: ChecksumAddress, raw: bytes, context: str) -> HexBytes:
    """Send ``raw``; a refusal by the contract or the node becomes :class:`RelayRefused`."""
    try:
        try:
            tx_hash = chain.request(
                lambda: chain.w3.eth.send_raw_transaction(raw), context=f"{context} relay"
            )
        except ContractRevert as e:  # nodes that execute on submission (the embedded chain)
            raise RelayConflict(
                f"{context}: the contract refused the transaction: {_revert_text(e)}",
                code="finance.reverted",
                details=revert_details(e),
            ) from e
        except (NodeRefused, ValueError, EthValidationError) as e:  # embedded: eth_utils' ValidationError
            text = str(e)
            nonce_problem = "nonce" in text.lower()
            raise RelayConflict(
                f"the node refused the transaction ({text})",
                code="finance.relay_nonce" if nonce_problem else "finance.relay_refused",
            ) from e
    finally:
        chain.reset_nonce(party)  # the service's cached nonce (if any) no longer holds
    return tx_hash


def relay(chain: Chain, party: str, expected: Mapping[str, Any], signed_raw: str, *, context: str) -> Relayed:
    """Send ``signed_raw`` if it is exactly the ``expected`` call signed by ``party``; wait for it.

    ``expected`` is :func:`expected_call`'s answer (or a prepared transaction: its ``to``, ``data``,
    ``value`` and ``chainId`` are compared). Raises :class:`RelayRefused`; nothing is sent unless every
    check passes.
    """
    party = to_checksum_address(party)
    raw, fields, sender = _decode(signed_raw)
    _refuse_unprepared(int(fields["type"]), fields, expected)
    _refuse_mismatch(fields, expected, context)
    if sender != party:
        raise RelayForbidden(
            f"the signed transaction is signed by {sender}, not by you ({party}); sign it with your own key",
            code="finance.relay_signer",
        )
    _refuse_nonce(chain, party, fields)
    tx_hash = _send_raw(chain, party, raw, context)
    h = HexBytes(tx_hash).to_0x_hex()
    try:
        result = chain.wait(h, context=context)
    except ContractRevert as e:
        raise RelayConflict(
            f"{context}: transaction {h} was mined but reverted: {_revert_text(e)}",
            code="finance.reverted",
            details={**revert_details(e), "tx_hash": h},
        ) from e
    return Relayed(
        tx_hash=result.tx_hash, block_number=result.block_number, gas_used=result.gas_used, result=result
    )
