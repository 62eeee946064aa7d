"""The ParticipantRegistry's identifiers: party roles, claim topics, actions and governance roles.

Party roles (``keccak256("supet.party.supplier")``), claim topics (``keccak256("supet.topic.iso-9001")``)
and actions (``keccak256("supet.device.enroll")``), by name in :data:`PARTY_ROLES`, :data:`TOPICS`,
:data:`ACTIONS`, or from any name with :func:`party_role`, :func:`claim_topic`, :func:`action_id`;
:func:`id_name` names a known id back. The client is :mod:`contracts.participants`.
"""

from __future__ import annotations

from typing import NewType

from eth_utils import keccak

__all__ = [
    "ACTIONS",
    "CONSORTIUM_ADMIN_ROLE",
    "CONSORTIUM_MEMBER_ROLE",
    "DEFAULT_ADMIN_ROLE",
    "PARTY_ROLES",
    "ROLE_PREFIX",
    "TOPICS",
    "TOPIC_PREFIX",
    "ActionId",
    "RoleId",
    "TopicId",
    "action_id",
    "claim_topic",
    "id_name",
    "party_role",
]

RoleId = NewType("RoleId", bytes)
"""A party role id: ``keccak256("supet.party.<name>")``."""
TopicId = NewType("TopicId", bytes)
"""A claim topic id: ``keccak256("supet.topic.<name>")``."""
ActionId = NewType("ActionId", bytes)
"""An action id: ``keccak256("supet.<area>.<verb>")``."""

#: Governance roles of the contract (OpenZeppelin AccessControl).
DEFAULT_ADMIN_ROLE = bytes(32)
CONSORTIUM_ADMIN_ROLE = keccak(b"supet.role.consortium-admin")
CONSORTIUM_MEMBER_ROLE = keccak(b"supet.role.consortium-member")

ROLE_PREFIX = "supet.party."
TOPIC_PREFIX = "supet.topic."


def party_role(name: str) -> RoleId:
    """The id of party role ``name`` (``"supplier"`` or ``"supet.party.supplier"``)."""
    full = name if name.startswith(ROLE_PREFIX) else ROLE_PREFIX + name
    return RoleId(keccak(full.encode("utf-8")))


def claim_topic(name: str) -> TopicId:
    """The id of claim topic ``name`` (``"iso-9001"`` or ``"supet.topic.iso-9001"``)."""
    full = name if name.startswith(TOPIC_PREFIX) else TOPIC_PREFIX + name
    return TopicId(keccak(full.encode("utf-8")))


def action_id(name: str) -> ActionId:
    """The id of action ``name`` (``"supet.device.enroll"``; ``"device.enroll"`` is completed)."""
    full = name if name.startswith("supet.") else "supet." + name
    return ActionId(keccak(full.encode("utf-8")))


#: The party roles of the issue, by short name.
PARTY_ROLES: dict[str, RoleId] = {
    name: party_role(name)
    for name in (
        "supplier",
        "core-enterprise",
        "distributor",
        "logistics",
        "warehouse",
        "marketplace",
        "bank",
        "insurer",
        "auditor",
        "analytics-oracle",
        "consortium-member",
    )
}

#: Claim topics the consortium is expected to use, by short name (any other name works too).
TOPICS: dict[str, TopicId] = {
    name: claim_topic(name)
    for name in (
        "business-licence",
        "iso-9001",
        "banking-licence",
        "insurance-licence",
        "audit-accreditation",
        "logistics-licence",
        "warehouse-licence",
        "kyc",
    )
}

#: The actions supET contracts ask the gate about, by full name.
ACTIONS: dict[str, ActionId] = {
    name: action_id(name)
    for name in (
        "supet.device.enroll",
        "supet.lot.open",
        "supet.lot.transfer",
        "supet.spec.set",
        "supet.consent.grant",
        "supet.credit.publish",
        "supet.receivable.create",
        "supet.receivable.finance",
        "supet.order.place",
        "supet.credit.query",
        "supet.receivable.hold",
        "supet.lot.recall",
    )
}


def id_name(value: bytes) -> str:
    """A known role, topic or action name for ``value``, else its 0x-hex."""
    for table in (PARTY_ROLES, TOPICS, ACTIONS):
        for name, known in table.items():
            if known == value:
                return name
    return "0x" + bytes(value).hex()
