"""``supet consortium``: apply the consortium's admission policy in one step, and show what is in force.

``apply`` reads a policy file (see ``docs/consortium-policy.example.json``), sends only the
transactions that differ from the chain (members, trusted issuers, role rules, action roles), then
points the DeviceRegistry, LotRegistry and QualityCertifier at the ParticipantRegistry; it prints
each step. Members are set this way once; later member changes are proposals that a majority of
the members must approve (``supet party member approve``): ``apply`` opens them and lists those
still waiting. Applying the same policy again sends nothing. ``show`` prints the rules, action roles,
trusted issuers, members and each contract's admission gate (``--json``: as a policy file).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from contracts.chain import Chain
from contracts.consortium import apply_policy, pending_member_changes, plan_policy
from contracts.consortium_policy import ConsortiumPolicy
from contracts.consortium_state import read_state
from contracts.deployment import Deployment
from contracts.participant_ids import id_name
from supet.cli.common import DeploymentOpt, KeyFileOpt, RpcOpt, open_deployment
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
    """Print the member proposals the policy waits for; return how many."""
    pending = pending_member_changes(chain, dep, policy)
    for p in pending:
        console.print(
            f"waiting for the members: {p.describe()} has {p.approvals} approval(s) of a majority of the "
            f"members; they approve with `supet party member approve {p.id}`"
        )
    return len(pending)


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
