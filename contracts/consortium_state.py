"""The consortium's configuration as the chain holds it: rules, action roles, trusted issuers,
members, and each gated contract's admission gate (:func:`read_state`), exportable as a policy file."""

from __future__ import annotations

import json
from dataclasses import dataclass

from eth_utils import to_checksum_address

from contracts.chain import Chain
from contracts.consortium_policy import ConsortiumPolicy
from contracts.deployment import Deployment
from contracts.participant_ids import ACTIONS, TOPICS, id_name
from contracts.participants import ParticipantRegistryClient, RoleRule

__all__ = ["GATED_CONTRACTS", "ConsortiumState", "read_state"]

#: Contracts whose party writes the ParticipantRegistry gates, in the order they are switched.
GATED_CONTRACTS: tuple[str, ...] = (
    "DeviceRegistry",
    "LotRegistry",
    "QualityCertifier",
    "PurchaseOrders",
    "CreditRegistry",
    "Receivables",
)


@dataclass(frozen=True, kw_only=True)
class ConsortiumState:
    """What the chain holds: rules, action roles, trusted issuers, members, and each contract's gate."""

    registry: str
    rules: list[RoleRule]
    actions: dict[bytes, list[bytes]]
    issuers: dict[bytes, list[str]]
    members: list[str]
    gates: dict[str, str]

    def gated(self) -> bool:
        """Whether every gated contract asks the registry."""
        return all(g == self.registry for g in self.gates.values())

    def to_policy_json(self) -> str:
        """The state as a policy file (names where standard, else 0x-hex ids)."""
        data = {
            "description": f"exported from ParticipantRegistry {self.registry}",
            "roles": {
                id_name(r.role): {"topics": [id_name(t) for t in r.topics], "quorum": r.quorum}
                for r in self.rules
            },
            "actions": {
                id_name(a): [id_name(r) for r in roles] for a, roles in self.actions.items() if roles
            },
            "trusted_issuers": {id_name(t): list(a) for t, a in self.issuers.items() if a},
            "members": list(self.members),
        }
        return json.dumps(data, indent=2) + "\n"


def read_state(
    chain: Chain, deployment: Deployment, policy: ConsortiumPolicy | None = None
) -> ConsortiumState:
    """Read the consortium's configuration (issuers of every topic a rule, ``TOPICS`` or ``policy`` names)."""
    reg = ParticipantRegistryClient(chain, deployment)
    rules = [reg.role_rule(role) for role in reg.roles()]
    actions: dict[bytes, list[bytes]] = {bytes(a): reg.action_roles(a) for a in ACTIONS.values()}
    topics: list[bytes] = [bytes(t) for t in TOPICS.values()]
    extra = [t for r in rules for t in r.topics]
    if policy is not None:
        for action in policy.action_roles():
            actions.setdefault(action, reg.action_roles(action))
        extra += list(policy.issuers())
    for t in extra:
        if t not in topics:
            topics.append(t)
    issuers = {t: reg.trusted_issuers(t) for t in topics}
    gates: dict[str, str] = {
        name: to_checksum_address(chain.call(deployment.contract(chain, name).functions.admissionGate()))
        for name in GATED_CONTRACTS
        if name in deployment.contracts
    }
    return ConsortiumState(
        registry=reg.address,
        rules=rules,
        actions=actions,
        issuers=issuers,
        members=reg.members(),
        gates=gates,
    )
