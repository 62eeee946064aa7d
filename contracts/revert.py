"""Turn revert data into a typed :class:`ContractRevert` naming the custom error and its arguments."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, Final

from eth_abi import decode
from eth_abi.exceptions import DecodingError
from eth_utils import function_signature_to_4byte_selector, to_checksum_address

from contracts.artifacts import all_abis
from contracts.errors import ContractRevert
from contracts.participant_ids import id_name

_PANIC_REASONS = {
    0x01: "assertion failed",
    0x11: "arithmetic overflow or underflow",
    0x12: "division or modulo by zero",
    0x21: "invalid enum value",
    0x22: "invalid storage byte array",
    0x31: "pop on empty array",
    0x32: "array index out of bounds",
    0x41: "out of memory",
    0x51: "call to an uninitialised function",
}


_ADMIT = (
    "{party} is not admitted for {action}. A consortium admin admits parties with "
    "`supet consortium apply --policy FILE` (roles, issuers, which roles may do what), the party "
    "applies for a role allowed to do it (`supet party apply ROLE`), and `supet party status {party}` "
    "says what is still missing; on a development chain `supet deploy --dev` admits the deployer"
)

#: What to do about a revert, by custom error name: the commands that remove its cause. The one
#: place such advice lives; ``{party}``, ``{action}`` and the error's other arguments are filled in
#: (an action id by its name). ``decode_revert`` ends the message with it.
REVERT_HINTS: Final[Mapping[str, str]] = {
    "DeviceRegistryNotAdmitted": _ADMIT.replace("{action}", "supet.device.enroll (enrolling devices)"),
    "LotRegistryNotAdmitted": _ADMIT,
    "LotRegistryNotRecaller": (
        "only lot {lotId}'s producer {producer}, or a party admitted for supet.lot.recall (the consortium "
        "maps it to its certifying roles with `supet consortium apply --policy FILE`), may recall it"
    ),
    "LotRegistryNotDownstream": (
        "lot {lotId} is not split off or made from a recalled or flagged lot: flag its parent or inputs "
        "first (`supet lot recall` flags a trace's lots parents first), or it is not downstream at all"
    ),
    "QualityCertifierNotAdmitted": _ADMIT,
    "PurchaseOrdersNotAdmitted": _ADMIT,
    "CreditRegistryNotAdmitted": _ADMIT,
    "ReceivablesNotAdmitted": _ADMIT,
    "DeviceRegistryUntrustedCA": (
        "the manufacturer CA {caKeyHash} is not trusted on this chain: the consortium operator "
        "registers it with `supet ca register --cert CA.pem`"
    ),
    "ParticipantRegistryNotApplied": (
        "{party} has not applied for this role: it applies with `supet party apply ROLE` first"
    ),
    "ParticipantRegistryNotMember": (
        "{account} is not a consortium member: only members approve (`supet consortium show` lists them)"
    ),
    "ParticipantRegistryUntrustedIssuer": (
        "{issuer} is not a trusted issuer of that topic: the consortium's policy lists its trusted "
        "issuers (`trusted_issuers`, applied with `supet consortium apply --policy FILE`)"
    ),
    "ParticipantRegistryActionRoleByVoteOnly": (
        "once {action}'s roles are set, only a majority of the members lets another role do it: a member "
        "proposes it with `supet consortium propose-action-role {action} {role}` and the others approve "
        "with `supet consortium approve-action-role {action} {role}` (`supet consortium apply` opens it)"
    ),
    "ParticipantRegistryQuorumLowerByVoteOnly": (
        "only a majority of the members lowers a role's quorum (from {current} to {quorum}): a member "
        "proposes it with `supet consortium propose-quorum {role} {quorum}` and the others approve "
        "with `supet consortium approve-quorum {role}`"
    ),
}


class _Filled(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "{" + key + "}"


def revert_hint(error_name: str | None, args: Mapping[str, Any]) -> str | None:
    """What to do about the custom error ``error_name`` with ``args`` (None when the table has no advice)."""
    template = REVERT_HINTS.get(error_name or "")
    if template is None:
        return None
    values = _Filled({k: str(v) for k, v in args.items()})
    action = args.get("action")
    if isinstance(action, str) and action.startswith("0x"):
        values["action"] = id_name(bytes.fromhex(action[2:]))
    role = args.get("role")
    if isinstance(role, str) and role.startswith("0x"):
        values["role"] = id_name(bytes.fromhex(role[2:]))
    values.setdefault("party", "the party")
    values.setdefault("action", "this action")
    return template.format_map(values)


@dataclass(frozen=True)
class _ErrorSpec:
    contract: str
    name: str
    names: tuple[str, ...]
    types: tuple[str, ...]


def _abi_type(param: Mapping[str, Any]) -> str:
    t = str(param["type"])
    if t.startswith("tuple"):
        inner = ",".join(_abi_type(c) for c in param["components"])
        return f"({inner}){t[5:]}"
    return t


@cache
def _error_table() -> dict[bytes, _ErrorSpec]:
    table: dict[bytes, _ErrorSpec] = {}
    for contract, abi in all_abis().items():
        for item in abi:
            if item.get("type") != "error":
                continue
            types = tuple(_abi_type(p) for p in item["inputs"])
            selector = function_signature_to_4byte_selector(f"{item['name']}({','.join(types)})")
            table.setdefault(
                selector,
                _ErrorSpec(contract, item["name"], tuple(p["name"] for p in item["inputs"]), types),
            )
    return table


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, str) and value.startswith("0x") and len(value) == 42:
        return to_checksum_address(value)
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


def decode_revert(data: bytes, *, context: str = "") -> ContractRevert:
    """A :class:`ContractRevert` for revert ``data`` (selector + ABI-encoded arguments)."""
    where = f" in {context}" if context else ""
    if len(data) < 4:
        return ContractRevert(f"reverted{where} without a reason", contract=None, error_name=None, data=data)
    selector, payload = data[:4], data[4:]
    try:
        if selector == bytes.fromhex("08c379a0"):
            (reason,) = decode(["string"], payload)
            return ContractRevert(
                f"reverted{where}: {reason}",
                contract=None,
                error_name="Error",
                args={"reason": reason},
                data=data,
            )
        if selector == bytes.fromhex("4e487b71"):
            (code,) = decode(["uint256"], payload)
            why = _PANIC_REASONS.get(code, f"panic 0x{code:02x}")
            return ContractRevert(
                f"panicked{where}: {why}",
                contract=None,
                error_name="Panic",
                args={"code": code},
                data=data,
            )
        spec = _error_table().get(selector)
        if spec is None:
            return ContractRevert(
                f"reverted{where} with unknown error 0x{selector.hex()}",
                contract=None,
                error_name=None,
                data=data,
            )
        values = decode(list(spec.types), payload)
    except DecodingError as e:
        return ContractRevert(
            f"reverted{where} with undecodable data 0x{data.hex()} ({e})",
            contract=None,
            error_name=None,
            data=data,
        )
    args = {name or f"arg{i}": _plain(v) for i, (name, v) in enumerate(zip(spec.names, values, strict=True))}
    shown = ", ".join(f"{k}={v}" for k, v in args.items())
    hint = revert_hint(spec.name, args)
    return ContractRevert(
        f"{spec.name}({shown}){where}" + (f": {hint}" if hint else ""),
        contract=spec.contract,
        error_name=spec.name,
        args=args,
        data=data,
        hint=hint,
    )
