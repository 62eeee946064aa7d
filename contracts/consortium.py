"""The consortium bootstrap: one policy file configures admission, and every contract asks it.

:func:`plan_policy` compares a :class:`~contracts.consortium_policy.ConsortiumPolicy` (the policy
file, parsed and checked: :mod:`contracts.consortium_policy`) with the ParticipantRegistry and lists
the transactions that would bring the chain to it; :func:`apply_policy` sends them, in an order the
contract accepts (members before quorums, rules before the actions naming them), and finally points
the DeviceRegistry, LotRegistry and QualityCertifier at the registry. The policy is authoritative for
what it names: issuers of a listed topic are removed when it does not list them. Applying the same
policy twice sends nothing the second time. What the chain holds is read by
:mod:`contracts.consortium_state`.

Members are their own governance (issue 12.12, :mod:`contracts.membership`): the first application
sets the policy's members as the first members, once. Afterwards the admin cannot change them: a
policy naming other members makes ``apply`` open proposals (to admit or remove), which pass when a
majority of the current members approve them; :func:`pending_member_changes` lists what waits for
their votes, and applying again sends nothing for a proposal still open. A policy that lowers a
role's quorum makes ``apply`` open a quorum proposal (:mod:`contracts.quorum_votes`) the same way:
only a majority of the members lowers a quorum. So does a policy that lets one more role perform an
action whose roles were set already: ``apply`` narrows the action to the roles the policy keeps (the
admin's to do) and opens an action-role proposal per added role. :func:`pending_rule_changes` lists
the quorum and action-role proposals the policy waits for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address

from contracts.chain import Chain, TxResult
from contracts.consortium_policy import ConsortiumPolicy, PolicyError
from contracts.consortium_state import GATED_CONTRACTS
from contracts.deployment import Deployment
from contracts.membership import MemberProposal
from contracts.participant_ids import CONSORTIUM_ADMIN_ROLE, DEFAULT_ADMIN_ROLE, id_name
from contracts.participants import CONTRACT_NAME, ParticipantRegistryClient
from contracts.quorum_votes import ActionRoleProposal, QuorumProposal

__all__ = [
    "AppliedStep",
    "PlannedStep",
    "apply_policy",
    "pending_member_changes",
    "pending_rule_changes",
    "plan_policy",
]

_ZERO_ADDRESS = "0x" + "00" * 20


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
        _plan_rule(reg, role, topics, quorum, len(current_members), step)
    for action, roles in policy.action_roles().items():
        _plan_action(reg, action, roles, step)
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


def _plan_rule(
    reg: ParticipantRegistryClient,
    role: bytes,
    topics: tuple[bytes, ...],
    quorum: int,
    members: int,
    step: Callable[[str, Any], None],
) -> None:
    """Define or change a role's rule; a lower quorum than the chain's is the members' to pass: the
    rule keeps its quorum and a proposal to lower it is opened (none when one is open already)."""
    fns = reg.contract.functions
    rule = reg.role_rule(role)
    lower = rule.defined and quorum < rule.quorum
    kept = rule.quorum if lower else quorum
    if not rule.defined or rule.quorum != kept or rule.topics != topics:
        _check_quorum(role, kept, members)
        step(
            f"role {id_name(role)}: requires {_names(topics)}, quorum {kept}",
            fns.setRoleRule(role, list(topics), kept),
        )
    if not lower:
        return
    pending = reg.quorum_votes.open_about(role)
    if pending is None:
        step(
            f"propose to lower the quorum of {id_name(role)} from {rule.quorum} to {quorum} "
            "(a majority of the members must approve)",
            fns.proposeRoleQuorum(role, quorum),
        )
    elif pending.quorum != quorum:
        raise PolicyError(
            f"{pending.describe()} is open, and the policy wants {quorum}: have the members pass it or let "
            "it lapse, then apply the policy again; nothing was sent"
        )


def _plan_action(
    reg: ParticipantRegistryClient, action: bytes, roles: tuple[bytes, ...], step: Callable[[str, Any], None]
) -> None:
    """Set an action's roles the first time; afterwards narrow it to the roles the policy keeps (the
    admin's to do) and propose each added role (the members' to pass; none when one is open already)."""
    fns = reg.contract.functions
    current = tuple(reg.action_roles(action))
    if current == roles:
        return
    first = not reg.action_roles_set(action)
    kept = roles if first else tuple(r for r in roles if r in current)
    if kept != current:
        step(
            f"action {id_name(action)}: allowed to {_names(kept) if kept else 'nobody'}",
            fns.setActionRoles(action, list(kept)),
        )
    for role in roles:
        if role in kept or reg.action_role_votes.open_about(action, role) is not None:
            continue
        step(
            f"propose to let {id_name(role)} perform {id_name(action)} "
            "(a majority of the members must approve)",
            fns.proposeActionRole(action, role),
        )


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


def pending_rule_changes(
    chain: Chain, deployment: Deployment, policy: ConsortiumPolicy
) -> list[QuorumProposal | ActionRoleProposal]:
    """The open quorum and action-role proposals that would bring the rules to ``policy``'s (they wait
    for the members' votes): a quorum lowered to the policy's, a role the policy adds to an action."""
    reg = ParticipantRegistryClient(chain, deployment)
    out: list[QuorumProposal | ActionRoleProposal] = []
    for role, (_, quorum) in policy.role_rules().items():
        lowering = reg.quorum_votes.open_about(role)
        if lowering is not None and lowering.quorum == quorum:
            out.append(lowering)
    for action, roles in policy.action_roles().items():
        current = reg.action_roles(action)
        for role in roles:
            adding = None if role in current else reg.action_role_votes.open_about(action, role)
            if adding is not None:
                out.append(adding)
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
