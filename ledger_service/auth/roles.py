"""Roles: what a party may do is read from the chain (DeviceRegistry roles, or its admission gate)
at request time, pinned to the latest block and cached for that block only, so a revoked role stops
working with the block that revokes it."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Final

from eth_utils import keccak, to_checksum_address

from contracts.chain import Chain
from contracts.deployment import Deployment
from contracts.errors import ContractRevert
from contracts.registry import ENROLLER_ROLE, OPERATOR_ROLE
from contracts.revert import revert_hint
from ledger_service.auth.errors import RoleRequired

__all__ = ["ENROLLER", "ENROLL_ACTION", "OPERATOR", "RoleChecker", "RoleSpec"]

log = logging.getLogger(__name__)

#: ``DeviceRegistry.ENROLL_ACTION``: what the admission gate is asked before an enrollment.
ENROLL_ACTION: Final = keccak(b"supet.device.enroll")
_GATE_ABI: Final = [
    {
        "type": "function",
        "name": "isAdmitted",
        "stateMutability": "view",
        "inputs": [{"name": "party", "type": "address"}, {"name": "action", "type": "bytes32"}],
        "outputs": [{"name": "", "type": "bool"}],
    }
]


@dataclass(frozen=True, kw_only=True, slots=True)
class RoleSpec:
    """A DeviceRegistry role a route may require."""

    name: str
    role_id: bytes
    #: The admission gate's action for this role, if a gate (when set) decides it instead.
    gate_action: bytes | None
    #: What to do about a refusal, for any party (``ADDRESS`` stands for the party).
    advice: str
    #: The custom error whose :data:`contracts.revert.REVERT_HINTS` entry says what to do, if any.
    hint_error: str | None = None

    def advice_for(self, party: str) -> str:
        """What ``party`` does to get the role: the contracts' hint naming it, else :attr:`advice`."""
        if self.hint_error is not None:
            hint = revert_hint(self.hint_error, {"party": party})
            if hint is not None:
                return hint
        return self.advice


_ENROLL_REVERT: Final = "DeviceRegistryNotAdmitted"

ENROLLER: Final = RoleSpec(
    name="enroller",
    role_id=ENROLLER_ROLE,
    gate_action=ENROLL_ACTION,
    advice=revert_hint(_ENROLL_REVERT, {"party": "ADDRESS"}) or "ask a consortium admin to admit ADDRESS",
    hint_error=_ENROLL_REVERT,
)
OPERATOR: Final = RoleSpec(
    name="operator",
    role_id=OPERATOR_ROLE,
    gate_action=None,
    advice="only the consortium operator holds OPERATOR_ROLE; ask its admin to grant it",
)


class RoleChecker:
    """Answers "does this party hold this role?" from the chain, as of the latest block.

    Answers are cached for the block they were read at (and ``max_age`` seconds at most),
    so a role granted or revoked takes effect with the block that does it.
    """

    def __init__(self, *, chain: Chain, deployment: Deployment, max_age: float = 5.0) -> None:
        self.chain = chain
        self.registry = deployment.contract(chain, "DeviceRegistry")
        self.max_age = max_age
        self._cache: dict[tuple[str, str], tuple[int, bytes, float, bool]] = {}
        self._lock = threading.Lock()

    def holds(self, party: str, role: RoleSpec) -> bool:
        """Whether ``party`` holds ``role`` at the latest block (``ChainError`` if unreachable)."""
        head = self.chain.request(lambda: self.chain.w3.eth.get_block("latest"), context="latest block")
        number, block_hash = int(head["number"]), bytes(head["hash"])
        key = (party, role.name)
        with self._lock:
            cached = self._cache.get(key)
        if (
            cached is not None
            and cached[0] == number
            and cached[1] == block_hash
            and time.monotonic() - cached[2] <= self.max_age
        ):
            return cached[3]
        answer = self._ask(party, role, number)
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key] = (number, block_hash, time.monotonic(), answer)
        return answer

    def require(self, party: str, role: RoleSpec) -> None:
        """``None`` if ``party`` holds ``role``; :class:`RoleRequired` otherwise."""
        if not self.holds(party, role):
            raise RoleRequired(
                f"{party} does not hold the {role.name} role on the DeviceRegistry "
                f"{self.registry.address} (chain {self.chain.chain_id}): {role.advice_for(party)}",
                role=role.name,
                party=party,
            )

    def _ask(self, party: str, role: RoleSpec, block: int) -> bool:
        fns = self.registry.functions
        if role.gate_action is not None:
            gate = str(self.chain.call(fns.admissionGate(), block=block))
            if int(gate, 16) != 0:
                contract = self.chain.w3.eth.contract(address=to_checksum_address(gate), abi=_GATE_ABI)
                try:
                    admitted = self.chain.call(
                        contract.functions.isAdmitted(party, role.gate_action), block=block
                    )
                except ContractRevert as e:
                    # the registry asks the same gate and would revert the same way: not admitted
                    log.warning("admission gate %s reverted for %s: %s", gate, party, e)
                    return False
                return bool(admitted)
        return bool(self.chain.call(fns.hasRole(role.role_id, party), block=block))
