"""``supet consortium``: apply the consortium's admission policy in one step, and show what is in force.

``apply`` reads a policy file (see ``docs/consortium-policy.example.json``), sends only the
transactions that differ from the chain (members, trusted issuers, role rules, action roles), then
points the DeviceRegistry, LotRegistry and QualityCertifier at the ParticipantRegistry; it prints
each step. Members are set this way once; later member changes are proposals that a majority of
the members must approve (``supet party member approve``): ``apply`` opens them and lists those
still waiting. Applying the same policy again sends nothing. ``show`` prints the rules, action roles,
trusted issuers, members and each contract's admission gate (``--json``: as a policy file).

Two more changes are the members' to pass, never the admin's alone (issue 12.12): lowering a role's
quorum, and letting one more role perform an action whose roles were set. ``apply`` opens their
proposals when the policy asks for them and says so; ``propose-quorum`` / ``approve-quorum`` and
``propose-action-role`` / ``approve-action-role`` open and approve them by hand (a member's proposal
carries its vote; the vote making a majority of the members carries the change out).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console

from contracts.chain import Chain, TxResult
from contracts.consortium import apply_policy, pending_member_changes, pending_rule_changes, plan_policy
from contracts.consortium_policy import ConsortiumPolicy
from contracts.consortium_state import read_state
from contracts.deployment import Deployment
from contracts.member_votes import ProposalSent, ProposalVotes
from contracts.participant_ids import id_name
from contracts.participants import ParticipantRegistryClient
from contracts.quorum_votes import ActionRoleProposal, QuorumProposal
from supet.cli.common import DeploymentOpt, KeyFileOpt, RpcOpt, open_deployment
from supet.cli.party import parse_action, parse_role
from supet_base.parties import load_party_account

app = typer.Typer(
    help="The consortium's admission policy: apply it from a file, show what is in force.",
    no_args_is_help=True,
)
console = Console(soft_wrap=True, markup=False, highlight=False)

PolicyOpt = Annotated[
    Path, typer.Option("--policy", help="The policy file (JSON; see docs/consortium-policy.example.json).")
]


@app.command("apply")
def apply(
    policy: PolicyOpt,
    rpc: RpcOpt,
    deployment: DeploymentOpt,
    key_file: KeyFileOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the steps that would be sent; send nothing.")
    ] = False,
) -> None:
    """Bring the deployment to the policy (as the suite's admin) and switch every contract to the gate."""
    loaded = ConsortiumPolicy.load(policy)  # a bad file fails here, before the chain is asked
    for topic in loaded.untrusted_topics():
        console.print(f"warning: no issuer is trusted for {topic}: no party can hold a role requiring it")
    chain, dep = open_deployment(rpc, deployment)
    if dry_run:
        steps = plan_policy(chain, dep, loaded)
        for s in steps:
            console.print(f"would: {s.description}")
        waiting = _print_pending(chain, dep, loaded)
        if steps:
            console.print(f"{len(steps)} step(s) to apply")
        elif not waiting:
            console.print("the policy is applied already")
        return
    applied = apply_policy(chain, dep, load_party_account(key_file), loaded)
    for a in applied:
        console.print(f"{a.description} (tx {a.tx_hash})")
    waiting = _print_pending(chain, dep, loaded)
    if applied:
        console.print(f"applied {len(applied)} step(s); every gated contract asks the ParticipantRegistry")
    elif not waiting:
        console.print("nothing to do: the policy is applied already")


def _print_pending(chain: Chain, dep: Deployment, policy: ConsortiumPolicy) -> int:
    """Print the member, quorum and action-role proposals the policy waits for; return how many."""
    pending = pending_member_changes(chain, dep, policy)
    for p in pending:
        console.print(
            f"waiting for the members: {p.describe()} has {p.approvals} approval(s) of a majority of the "
            f"members; they approve with `supet party member approve {p.id}`"
        )
    rules = pending_rule_changes(chain, dep, policy)
    for r in rules:
        console.print(
            f"waiting for the members: {r.describe()} has {r.approvals} approval(s) of a majority of the "
            f"members (only they may make this change); they approve with `{_approve_command(r)}`"
        )
    return len(pending) + len(rules)


def _approve_command(p: QuorumProposal | ActionRoleProposal) -> str:
    if isinstance(p, QuorumProposal):
        return f"supet consortium approve-quorum {id_name(p.role)}"
    return f"supet consortium approve-action-role {id_name(p.action)} {id_name(p.role)}"


RoleArg = Annotated[str, typer.Argument(help="The party role: a name (supplier, bank, ...) or a 0x-hex id.")]
ActionArg = Annotated[
    str, typer.Argument(help="The action: a name (supet.device.enroll, ...) or a 0x-hex id.")
]


def _registry(rpc: str, deployment: Path) -> ParticipantRegistryClient:
    chain, dep = open_deployment(rpc, deployment)
    return ParticipantRegistryClient(chain, dep)


def _print_vote(
    p: QuorumProposal | ActionRoleProposal, passed: bool, needed: int, tx: TxResult, *, opened: bool
) -> None:
    if passed:
        console.print(f"{p.describe()} passed (tx {tx.tx_hash})")
        return
    verb = "opened" if opened else "approved"
    console.print(
        f"{p.describe()} {verb}: {p.approvals} approval(s) of the {needed} needed, open until block time "
        f"{p.expires_at}; members approve with `{_approve_command(p)}` (tx {tx.tx_hash})"
    )


#: The kinds of proposal these commands open and approve.
_P = TypeVar("_P", QuorumProposal, ActionRoleProposal)


def _print_opened(votes: ProposalVotes[_P], sent: ProposalSent) -> None:
    _print_vote(votes.proposal(sent.id), sent.executed, votes.needed(), sent.tx, opened=True)


def _approve_open(votes: ProposalVotes[_P], p: _P | None, key_file: Path | None, *, none_open: str) -> None:
    """Approve the open proposal ``p`` with the key in ``key_file``; ``none_open`` says what to do when
    none is open."""
    if p is None:
        raise typer.BadParameter(none_open, param_hint="ROLE")
    result = votes.approve(load_party_account(key_file), p.id)
    _print_vote(votes.proposal(p.id), votes.passed(result), votes.needed(), result, opened=False)


@app.command("propose-quorum")
def propose_quorum(
    role: RoleArg,
    quorum: Annotated[int, typer.Argument(help="The lower quorum (0: claims alone admit).", min=0)],
    rpc: RpcOpt,
    deployment: DeploymentOpt,
    key_file: KeyFileOpt = None,
) -> None:
    """Propose to lower a role's quorum, as a member (your vote counts at once) or the consortium admin."""
    role_id = parse_role(role)
    votes = _registry(rpc, deployment).quorum_votes
    _print_opened(votes, votes.propose(load_party_account(key_file), role_id, quorum))


@app.command("approve-quorum")
def approve_quorum(
    role: RoleArg,
    rpc: RpcOpt,
    deployment: DeploymentOpt,
    key_file: KeyFileOpt = None,
) -> None:
    """Approve the open proposal to lower a role's quorum, as a member; the majority's vote lowers it."""
    role_id = parse_role(role)
    votes = _registry(rpc, deployment).quorum_votes
    _approve_open(
        votes,
        votes.open_about(role_id),
        key_file,
        none_open=f"no proposal to lower the quorum of {id_name(role_id)} is open; open one with "
        "`supet consortium propose-quorum ROLE QUORUM`",
    )


@app.command("propose-action-role")
def propose_action_role(
    action: ActionArg,
    role: RoleArg,
    rpc: RpcOpt,
    deployment: DeploymentOpt,
    key_file: KeyFileOpt = None,
) -> None:
    """Propose to let one more role perform an action, as a member (your vote counts at once) or the
    consortium admin."""
    action_id, role_id = parse_action(action), parse_role(role)
    votes = _registry(rpc, deployment).action_role_votes
    _print_opened(votes, votes.propose(load_party_account(key_file), action_id, role_id))


@app.command("approve-action-role")
def approve_action_role(
    action: ActionArg,
    role: RoleArg,
    rpc: RpcOpt,
    deployment: DeploymentOpt,
    key_file: KeyFileOpt = None,
) -> None:
    """Approve the open proposal to let a role perform an action, as a member; the majority's vote adds it."""
    action_id, role_id = parse_action(action), parse_role(role)
    votes = _registry(rpc, deployment).action_role_votes
    _approve_open(
        votes,
        votes.open_about(action_id, role_id),
        key_file,
        none_open=f"no proposal to let {id_name(role_id)} perform {id_name(action_id)} is open; open one "
        "with `supet consortium propose-action-role ACTION ROLE`",
    )


@app.command("show")
def show(
    rpc: RpcOpt,
    deployment: DeploymentOpt,
    as_json: Annotated[bool, typer.Option("--json", help="Print the state as a policy file.")] = False,
) -> None:
    """Print the role rules, action roles, trusted issuers, members and admission gates in force."""
    chain, dep = open_deployment(rpc, deployment)
    state = read_state(chain, dep)
    if as_json:
        typer.echo(state.to_policy_json(), nl=False)
        return
    console.print(f"ParticipantRegistry {state.registry}")
    console.print("roles:" if state.rules else "roles: none defined")
    for rule in state.rules:
        topics = ", ".join(id_name(t) for t in rule.topics) or "no claims"
        console.print(f"  {id_name(rule.role)}: {topics}; quorum {rule.quorum}")
    console.print("actions:")
    for action, roles in state.actions.items():
        console.print(f"  {id_name(action)}: {', '.join(id_name(r) for r in roles) or 'nobody'}")
    trusted = {t: a for t, a in state.issuers.items() if a}
    console.print("trusted issuers:" if trusted else "trusted issuers: none")
    for topic, issuers in trusted.items():
        console.print(f"  {id_name(topic)}: {', '.join(issuers)}")
    console.print(f"members: {', '.join(state.members) or 'none'}")
    console.print("admission gates:")
    for name, gate in state.gates.items():
        if gate == state.registry:
            where = "ParticipantRegistry"
        elif int(gate, 16) == 0:
            where = "none (roles only)"
        else:
            where = f"{gate} (not this ParticipantRegistry)"
        console.print(f"  {name}: {where}")
