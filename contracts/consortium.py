"""The consortium bootstrap: one policy file configures admission, and every contract asks it.

A :class:`ConsortiumPolicy` (JSON, see ``docs/consortium-policy.example.json``) states:

- ``roles``: per party role, the claim topics a party must hold and the quorum of consortium
  approvals its application needs;
- ``actions``: per action (``supet.device.enroll``, ``supet.lot.open``, ...), the roles allowed
  to perform it; a known action the policy leaves out is allowed to nobody;
- ``trusted_issuers``: per claim topic, the addresses whose signed claims count;
- ``members``: the consortium members (who approve applications).

:func:`plan_policy` compares the policy with the ParticipantRegistry and lists the transactions
that would bring the chain to it; :func:`apply_policy` sends them, in an order the contract
accepts (members before quorums, rules before the actions naming them), and finally points the
DeviceRegistry, LotRegistry and QualityCertifier at the registry. The policy is authoritative for
what it names: issuers of a listed topic are removed when it does not list them. Applying the same
policy twice sends nothing the second time. Every check that can fail without the chain (unknown
role in an action, quorum above the member count, bad address) fails before any transaction.

Members are their own governance (issue 12.12, :mod:`contracts.membership`): the first application
sets the policy's members as the first members, once. Afterwards the admin cannot change them: a
policy naming other members makes ``apply`` open proposals (to admit or remove), which pass when a
majority of the current members approve them; :func:`pending_member_changes` lists what waits for
their votes, and applying again sends nothing for a proposal still open.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils import is_address, to_checksum_address
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from contracts.chain import Chain, TxResult
from contracts.deployment import Deployment
from contracts.errors import ContractsError
from contracts.membership import MemberProposal
from contracts.participant_ids import (
    ACTIONS,
    CONSORTIUM_ADMIN_ROLE,
    DEFAULT_ADMIN_ROLE,
    TOPICS,
    action_id,
    claim_topic,
    id_name,
    party_role,
)
from contracts.participants import CONTRACT_NAME, ParticipantRegistryClient, RoleRule

#: Contracts whose party writes the ParticipantRegistry gates, in the order they are switched.
GATED_CONTRACTS: tuple[str, ...] = (
    "DeviceRegistry",
    "LotRegistry",
    "QualityCertifier",
    "PurchaseOrders",
    "CreditRegistry",
    "Receivables",
)
#: Limits of the ParticipantRegistry (``MAX_TOPICS``, ``MAX_ROLES_PER_ACTION``).
MAX_TOPICS = 8
MAX_ROLES_PER_ACTION = 16

_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]*$")
_HEX32 = re.compile(r"^0x[0-9a-fA-F]{64}$")
_ZERO_ADDRESS = "0x" + "00" * 20


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


# ---------------------------------------------------------------- plan and apply


@dataclass(frozen=True)
class PlannedStep:
    """One transaction that brings the chain closer to the policy."""

    description: str
    contract: str
    fn: Any = field(repr=False)


@dataclass(frozen=True, kw_only=True)
class AppliedStep:
    """A step as sent: what it did and its mined transaction."""

    description: str
    contract: str
    tx_hash: str
    block_number: int
    gas_used: int


def _names(ids: tuple[bytes, ...] | list[bytes]) -> str:
    return "[" + ", ".join(id_name(i) for i in ids) + "]"


def _has_role(chain: Chain, contract: Any, role: bytes, account: str) -> bool:
    return bool(chain.call(contract.functions.hasRole(role, to_checksum_address(account))))


def _plan_members(
    reg: ParticipantRegistryClient, policy: ConsortiumPolicy, step: Callable[[str, Any], None]
) -> set[str]:
    """Set or propose the policy's members; return the members the rules are checked against."""
    fns = reg.contract.functions
    current_members = set(reg.members())
    wanted_members = list(policy.members)
    membership = reg.membership
    bootstrapped = membership.is_bootstrapped()
    if not bootstrapped and wanted_members:
        step(
            f"set the first consortium members {', '.join(wanted_members)}",
            fns.bootstrapMembers(wanted_members),
        )
        current_members = set(wanted_members)
    elif bootstrapped:
        for member in wanted_members:
            if member not in current_members and membership.open_about(member) is None:
                step(
                    f"propose to admit consortium member {member} (a majority of the members must approve)",
                    fns.proposeMember(member, True),
                )
    return current_members


def _plan_issuers(
    reg: ParticipantRegistryClient, policy: ConsortiumPolicy, step: Callable[[str, Any], None]
) -> list[PlannedStep]:
    """Trust the listed topics' issuers (the policy's list is the whole list); return the removals,
    which come after every addition."""
    fns = reg.contract.functions
    issuers = policy.issuers()
    removals: list[PlannedStep] = []
    for topic, wanted in issuers.items():
        current = reg.trusted_issuers(topic)
        for issuer in wanted:
            if issuer not in current:
                step(f"trust {issuer} for {id_name(topic)}", fns.addTrustedIssuer(topic, issuer))
        for issuer in current:
            if issuer not in wanted:
                removals.append(
                    PlannedStep(
                        f"stop trusting {issuer} for {id_name(topic)}",
                        CONTRACT_NAME,
                        fns.removeTrustedIssuer(topic, issuer),
                    )
                )
    return removals


def plan_policy(
    chain: Chain, deployment: Deployment, policy: ConsortiumPolicy, *, admin: str | None = None
) -> list[PlannedStep]:
    """The transactions that bring the deployment to ``policy`` (empty: it is applied already).

    With ``admin``, refuse (:class:`PolicyError`) when that account lacks a role a step needs.
    """
    reg = ParticipantRegistryClient(chain, deployment)
    fns = reg.contract.functions
    steps: list[PlannedStep] = []

    def step(description: str, fn: Any, contract: str = CONTRACT_NAME) -> None:
        steps.append(PlannedStep(description, contract, fn))

    # members first: a rule's quorum may not exceed the member count when it is set
    current_members = _plan_members(reg, policy, step)
    wanted_members = list(policy.members)
    membership = reg.membership
    # trusted issuers of the listed topics (the policy's list is the whole list)
    steps.extend(_plan_issuers(reg, policy, step))
    # role rules, then the actions naming them
    for role, (topics, quorum) in policy.role_rules().items():
        rule = reg.role_rule(role)
        if not rule.defined or rule.quorum != quorum or rule.topics != topics:
            _check_quorum(role, quorum, len(current_members))
            step(
                f"role {id_name(role)}: requires {_names(topics)}, quorum {quorum}",
                fns.setRoleRule(role, list(topics), quorum),
            )
    for action, roles in policy.action_roles().items():
        if tuple(reg.action_roles(action)) != roles:
            step(
                f"action {id_name(action)}: allowed to {_names(roles) if roles else 'nobody'}",
                fns.setActionRoles(action, list(roles)),
            )
    # members the policy no longer names: removal proposals (after the rules, checked against the larger set)
    for member in sorted(current_members - set(wanted_members)):
        if membership.open_about(member) is None:
            step(
                f"propose to remove consortium member {member} (a majority of the members must approve)",
                fns.proposeMember(member, False),
            )
    # finally every gated contract asks the registry
    for name in GATED_CONTRACTS:
        if name not in deployment.contracts:  # an older deployment, or one without Receivables
            continue
        contract = deployment.contract(chain, name)
        gate = to_checksum_address(chain.call(contract.functions.admissionGate()))
        if gate != reg.address:
            was = "no gate (roles only)" if gate == to_checksum_address(_ZERO_ADDRESS) else gate
            step(
                f"{name}: admission gate {was} -> ParticipantRegistry {reg.address}",
                contract.functions.setAdmissionGate(reg.address),
                name,
            )
    if admin is not None:
        _check_admin(chain, deployment, reg, steps, admin)
    return steps


def _check_quorum(role: bytes, quorum: int, members: int) -> None:
    """Refuse (before anything is sent) a rule whose quorum exceeds the members the chain will have."""
    if quorum > members:
        raise PolicyError(
            f"role {id_name(role)} needs a quorum of {quorum} but the consortium has {members} member(s), "
            "and only its members admit more: apply a policy with the new members and the current "
            "quorum, have a majority of the members approve the proposals (`supet party member "
            "approve`), then apply this one; nothing was sent"
        )


def pending_member_changes(
    chain: Chain, deployment: Deployment, policy: ConsortiumPolicy
) -> list[MemberProposal]:
    """The open proposals that would bring the members to ``policy``'s (they wait for the members' votes)."""
    reg = ParticipantRegistryClient(chain, deployment)
    current = set(reg.members())
    wanted = set(policy.members)
    out: list[MemberProposal] = []
    for account in sorted((wanted - current) | (current - wanted)):
        proposal = reg.membership.open_about(account)
        if proposal is not None and proposal.admit == (account in wanted):
            out.append(proposal)
    return out


def _check_admin(
    chain: Chain, deployment: Deployment, reg: ParticipantRegistryClient, steps: list[PlannedStep], admin: str
) -> None:
    needed: dict[str, bytes] = {}
    for s in steps:
        needed[s.contract] = CONSORTIUM_ADMIN_ROLE if s.contract == CONTRACT_NAME else DEFAULT_ADMIN_ROLE
    for name, role in needed.items():
        contract = reg.contract if name == CONTRACT_NAME else deployment.contract(chain, name)
        if not _has_role(chain, contract, role, admin):
            what = "consortium admin" if role == CONSORTIUM_ADMIN_ROLE else "default admin"
            raise PolicyError(
                f"{to_checksum_address(admin)} lacks the {what} role of {name}, which applying the policy "
                "needs; nothing was sent: use the key of the suite's admin"
            )


def apply_policy(
    chain: Chain, deployment: Deployment, admin: LocalAccount, policy: ConsortiumPolicy
) -> list[AppliedStep]:
    """Bring the deployment to ``policy`` as ``admin``; return the steps sent (empty: nothing to do).

    Permissions are checked before the first transaction. A step the chain refuses raises its
    :class:`~contracts.errors.ContractRevert`; the steps before it stay applied, and applying the
    policy again resumes from where it stopped.
    """
    applied: list[AppliedStep] = []
    for s in plan_policy(chain, deployment, policy, admin=admin.address):
        result: TxResult = chain.transact(s.fn, admin)
        applied.append(
            AppliedStep(
                description=s.description,
                contract=s.contract,
                tx_hash=result.tx_hash,
                block_number=result.block_number,
                gas_used=result.gas_used,
            )
        )
    return applied


# ---------------------------------------------------------------- the state on chain


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
