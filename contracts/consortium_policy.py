"""The consortium policy file: one JSON document that configures admission (the model, parsed and checked).

A :class:`ConsortiumPolicy` (JSON, see ``docs/consortium-policy.example.json``) states:

- ``roles``: per party role, the claim topics a party must hold and the quorum of consortium
  approvals its application needs;
- ``actions``: per action (``supet.device.enroll``, ``supet.lot.open``, ...), the roles allowed
  to perform it; a known action the policy leaves out is allowed to nobody;
- ``trusted_issuers``: per claim topic, the addresses whose signed claims count;
- ``members``: the consortium members (who approve applications).

Every check that can fail without the chain (unknown role in an action, quorum above the member
count, bad address) fails here, when the policy is parsed, before any transaction. Bringing a chain
to a policy is :mod:`contracts.consortium`'s; reading what a chain holds, :mod:`contracts.consortium_state`'s.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from eth_utils import is_address, to_checksum_address
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from contracts.errors import ContractsError
from contracts.participant_ids import ACTIONS, action_id, claim_topic, party_role

__all__ = ["MAX_ROLES_PER_ACTION", "MAX_TOPICS", "ConsortiumPolicy", "PolicyError", "RolePolicy"]

#: Limits of the ParticipantRegistry (``MAX_TOPICS``, ``MAX_ROLES_PER_ACTION``).
MAX_TOPICS = 8
MAX_ROLES_PER_ACTION = 16

_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]*$")
_HEX32 = re.compile(r"^0x[0-9a-fA-F]{64}$")


class PolicyError(ContractsError):
    """A consortium policy is unusable or cannot be applied (nothing was sent)."""

    code = "consortium.policy"


def _check_name(text: str, kind: str) -> str:
    if not (_HEX32.match(text) or _NAME.match(text)):
        raise ValueError(
            f"{text!r} is not a {kind} name (lower-case letters, digits, '-' and '.') nor a 0x-hex id"
        )
    return text


def _id_of(text: str, make: Callable[[str], bytes]) -> bytes:
    return bytes.fromhex(text[2:]) if _HEX32.match(text) else bytes(make(text))


def _checksum(text: str, where: str) -> str:
    if not is_address(text) or int(text, 16) == 0:
        raise ValueError(f"{where}: {text!r} is not a non-zero Ethereum address (0x and 40 hex digits)")
    return to_checksum_address(text)


class RolePolicy(BaseModel):
    """A party role's rule: the claim topics a party must hold, and how many members approve it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    topics: list[str] = Field(default_factory=list, description="Claim topics (names or 0x-hex ids).")
    quorum: int = Field(default=0, ge=0, lt=2**32, description="Consortium approvals needed (0: none).")

    @field_validator("topics")
    @classmethod
    def _topics(cls, topics: list[str]) -> list[str]:
        for topic in topics:
            _check_name(topic, "topic")
        if len({_id_of(t, claim_topic) for t in topics}) != len(topics):
            raise ValueError(f"a topic is listed twice in {topics}")
        if len(topics) > MAX_TOPICS:
            raise ValueError(f"{len(topics)} topics; a role may require at most {MAX_TOPICS}")
        return topics


class ConsortiumPolicy(BaseModel):
    """The consortium's admission policy (see the module documentation)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str = ""
    roles: dict[str, RolePolicy]
    actions: dict[str, list[str]] = Field(default_factory=dict)
    trusted_issuers: dict[str, list[str]] = Field(default_factory=dict)
    members: list[str] = Field(default_factory=list)

    @field_validator("roles")
    @classmethod
    def _roles(cls, roles: dict[str, RolePolicy]) -> dict[str, RolePolicy]:
        for name in roles:
            _check_name(name, "role")
        if len({_id_of(n, party_role) for n in roles}) != len(roles):
            raise ValueError("a role is listed twice (by name and by id)")
        return roles

    @field_validator("trusted_issuers")
    @classmethod
    def _issuers(cls, issuers: dict[str, list[str]]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for topic, addresses in issuers.items():
            _check_name(topic, "topic")
            checked = [_checksum(a, f"trusted issuer of {topic}") for a in addresses]
            if len(set(checked)) != len(checked):
                raise ValueError(f"an issuer of {topic} is listed twice")
            out[topic] = checked
        return out

    @field_validator("members")
    @classmethod
    def _members(cls, members: list[str]) -> list[str]:
        checked = [_checksum(a, "member") for a in members]
        if len(set(checked)) != len(checked):
            raise ValueError("a member is listed twice")
        return checked

    @model_validator(mode="after")
    def _consistent(self) -> ConsortiumPolicy:
        defined = {_id_of(n, party_role) for n in self.roles}
        for action, roles in self.actions.items():
            _check_name(action, "action")
            for role in roles:
                _check_name(role, "role")
                if _id_of(role, party_role) not in defined:
                    raise ValueError(
                        f"action {action} allows role {role!r}, which the policy does not define "
                        f"(defined roles: {', '.join(self.roles)})"
                    )
            if len({_id_of(r, party_role) for r in roles}) != len(roles):
                raise ValueError(f"action {action} lists a role twice")
            if len(roles) > MAX_ROLES_PER_ACTION:
                raise ValueError(f"action {action} allows {len(roles)} roles; at most {MAX_ROLES_PER_ACTION}")
        if len({_id_of(a, action_id) for a in self.actions}) != len(self.actions):
            raise ValueError("an action is listed twice (by name and by id)")
        for name, rule in self.roles.items():
            if rule.quorum > len(self.members):
                raise ValueError(
                    f"role {name} needs a quorum of {rule.quorum} but the policy names "
                    f"{len(self.members)} member(s)"
                )
        return self

    # ------------------------------------------------------------ loading

    @classmethod
    def from_json(cls, text: str, *, source: str = "policy") -> ConsortiumPolicy:
        """Parse a policy; :class:`PolicyError` says what is wrong and where."""
        try:
            return cls.model_validate_json(text)
        except ValidationError as e:
            problems = "; ".join(
                ".".join(str(p) for p in err["loc"])
                + (": " if err["loc"] else "")
                + err["msg"].removeprefix("Value error, ")
                for err in e.errors()
            )
            raise PolicyError(f"{source} is not a valid consortium policy: {problems}") from e

    @classmethod
    def load(cls, path: Path) -> ConsortiumPolicy:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as e:
            raise PolicyError(f"cannot read the policy file {path}: {e.strerror}") from e
        return cls.from_json(text, source=str(path))

    # ------------------------------------------------------------ resolved ids

    def role_rules(self) -> dict[bytes, tuple[tuple[bytes, ...], int]]:
        """Role id -> (topic ids in policy order, quorum)."""
        return {
            _id_of(name, party_role): (tuple(_id_of(t, claim_topic) for t in rule.topics), rule.quorum)
            for name, rule in self.roles.items()
        }

    def action_roles(self) -> dict[bytes, tuple[bytes, ...]]:
        """Action id -> allowed role ids; every known action is present (absent from the policy: none)."""
        out: dict[bytes, tuple[bytes, ...]] = {bytes(a): () for a in ACTIONS.values()}
        for action, roles in self.actions.items():
            out[_id_of(action, action_id)] = tuple(_id_of(r, party_role) for r in roles)
        return out

    def issuers(self) -> dict[bytes, tuple[str, ...]]:
        """Topic id -> trusted issuer addresses (checksummed)."""
        return {_id_of(t, claim_topic): tuple(a) for t, a in self.trusted_issuers.items()}

    def untrusted_topics(self) -> list[str]:
        """Topics some role requires but no issuer is trusted for (no party can hold that role)."""
        trusted = {t for t, a in self.issuers().items() if a}
        return sorted(
            {t for rule in self.roles.values() for t in rule.topics if _id_of(t, claim_topic) not in trusted}
        )
