"""``supet party``: rule-based admission of supply-chain parties (the ParticipantRegistry).

Roles, topics and actions are given by name (``supplier``, ``iso-9001``,
``supet.device.enroll``) or as 0x-hex ids. The consortium admin sets role rules, action
roles, trusted issuers and members, and suspends or reinstates parties; an issuer signs
claims to a file offline and revokes them; parties apply and submit claims; members
approve; ``status`` says, per role, whether a party is admitted and if not, why.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from eth_utils import is_address, keccak, to_checksum_address
from rich.console import Console

from contracts.claims import ClaimDomain, ClaimState, SignedClaim, sign_claim
from contracts.deployment import Deployment
from contracts.participant_ids import (
    ACTIONS,
    PARTY_ROLES,
    TOPICS,
    action_id,
    claim_topic,
    id_name,
    party_role,
)
from contracts.participants import CONTRACT_NAME, ParticipantRegistryClient
from supet.cli.common import DeploymentOpt, KeyFileOpt, RpcOpt, open_deployment
from supet_base.parties import load_party_account

app = typer.Typer(
    help="Party admission: role rules, trusted issuers, claims, applications, approvals, suspension.",
    no_args_is_help=True,
)
issuer_app = typer.Typer(help="Trusted claim issuers per topic (consortium admin).", no_args_is_help=True)
claim_app = typer.Typer(help="Claims: issue (sign to a file), add (submit), revoke.", no_args_is_help=True)
member_app = typer.Typer(
    help="Consortium members, who approve applications: set once by the consortium admin, then changed "
    "only by proposals a majority of the members approve.",
    no_args_is_help=True,
)
app.add_typer(issuer_app, name="issuer")
app.add_typer(claim_app, name="claim")
app.add_typer(member_app, name="member")
console = Console(soft_wrap=True)

_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]*$")
_HEX32 = re.compile(r"^0x[0-9a-fA-F]{64}$")


# ---------------------------------------------------------------- parsing


def _id(text: str, *, kind: str, known: dict[str, bytes], make: Callable[[str], bytes], hint: str) -> bytes:
    if _HEX32.match(text):
        return bytes.fromhex(text[2:])
    if not _NAME.match(text):
        raise typer.BadParameter(
            f"{text!r} is not a {kind} name (lower-case letters, digits, '-' and '.') nor a 0x-hex id; "
            f"known {kind}s: {', '.join(known)}",
            param_hint=hint,
        )
    return bytes(make(text))


def parse_role(text: str, hint: str = "ROLE") -> bytes:
    """A party role from a name (``supplier``) or a 0x-hex id."""
    return _id(text, kind="role", known=dict(PARTY_ROLES), make=party_role, hint=hint)


def parse_topic(text: str, hint: str = "--topic") -> bytes:
    """A claim topic from a name (``iso-9001``) or a 0x-hex id."""
    return _id(text, kind="topic", known=dict(TOPICS), make=claim_topic, hint=hint)


def parse_action(text: str, hint: str = "ACTION") -> bytes:
    """An action from a name (``supet.device.enroll`` or ``device.enroll``) or a 0x-hex id."""
    return _id(text, kind="action", known=dict(ACTIONS), make=action_id, hint=hint)


def parse_address(text: str, hint: str) -> str:
    if not is_address(text):
        raise typer.BadParameter(
            f"{text!r} is not an Ethereum address (0x and 40 hex digits)", param_hint=hint
        )
    return to_checksum_address(text)


def _label(value: bytes) -> str:
    """A standard name for an id, else its 0x-hex."""
    return id_name(value)


def _warn_unknown(value: bytes, table: dict[str, bytes], kind: str) -> None:
    if value not in table.values():
        console.print(f"note: 0x{value.hex()} is not a standard {kind} ({', '.join(table)})")


def _registry(rpc: str, deployment: Path) -> ParticipantRegistryClient:
    chain, dep = open_deployment(rpc, deployment)
    return ParticipantRegistryClient(chain, dep)


def _time(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


RoleArg = Annotated[str, typer.Argument(help="Party role: a name (supplier, bank, ...) or a 0x-hex id.")]
PartyArg = Annotated[str, typer.Argument(help="The party's address.")]
ReasonOpt = Annotated[str, typer.Option("--reason", help="Why (recorded on chain).")]


# ---------------------------------------------------------------- consortium admin


@app.command("role-rule")
def role_rule(
    role: RoleArg,
    rpc: RpcOpt,
    deployment: DeploymentOpt,
    topic: Annotated[
        list[str] | None, typer.Option("--topic", help="A required claim topic (repeat for several).")
    ] = None,
    quorum: Annotated[int, typer.Option("--quorum", min=0, help="Member approvals needed (0: none).")] = 0,
    key_file: KeyFileOpt = None,
) -> None:
    """Set the rule of a role: required claim topics and approval quorum (consortium admin)."""
    role_id = parse_role(role)
    topics = [parse_topic(t) for t in topic or []]
    _warn_unknown(role_id, dict(PARTY_ROLES), "role")
    reg = _registry(rpc, deployment)
    result = reg.set_role_rule(load_party_account(key_file), role_id, topics, quorum)
    shown = ", ".join(_label(t) for t in topics) or "no claims"
    console.print(f"rule of {_label(role_id)}: {shown}; quorum {quorum} (tx {result.tx_hash})")


@app.command("action-roles")
def action_roles(
    action: Annotated[str, typer.Argument(help="The action, e.g. supet.device.enroll, or a 0x-hex id.")],
    rpc: RpcOpt,
    deployment: DeploymentOpt,
    role: Annotated[
        list[str] | None, typer.Option("--role", help="A role allowed to perform it (repeat; none: nobody).")
    ] = None,
    key_file: KeyFileOpt = None,
) -> None:
    """Set which roles may perform an action (consortium admin)."""
    action_value = parse_action(action)
    roles = [parse_role(r, "--role") for r in role or []]
    reg = _registry(rpc, deployment)
    result = reg.set_action_roles(load_party_account(key_file), action_value, roles)
    shown = ", ".join(_label(r) for r in roles) or "nobody"
    console.print(f"{_label(action_value)} may be performed by: {shown} (tx {result.tx_hash})")


@app.command("suspend")
def suspend(
    party: PartyArg, reason: ReasonOpt, rpc: RpcOpt, deployment: DeploymentOpt, key_file: KeyFileOpt = None
) -> None:
    """Suspend a party from every role (consortium admin)."""
    address = parse_address(party, "PARTY")
    result = _registry(rpc, deployment).suspend(load_party_account(key_file), address, reason)
    console.print(f"suspended {address}: {reason} (tx {result.tx_hash})")


@app.command("reinstate")
def reinstate(
    party: PartyArg, reason: ReasonOpt, rpc: RpcOpt, deployment: DeploymentOpt, key_file: KeyFileOpt = None
) -> None:
    """Lift a party's suspension (consortium admin)."""
    address = parse_address(party, "PARTY")
    result = _registry(rpc, deployment).reinstate(load_party_account(key_file), address, reason)
    console.print(f"reinstated {address}: {reason} (tx {result.tx_hash})")


@member_app.command("bootstrap")
def member_bootstrap(
    members: Annotated[list[str], typer.Argument(help="The first members' addresses.")],
    rpc: RpcOpt,
    deployment: DeploymentOpt,
    key_file: KeyFileOpt = None,
) -> None:
    """Set the first consortium members, once (consortium admin; `supet consortium apply` does it too)."""
    addresses = [parse_address(m, "MEMBERS") for m in members]
    result = _registry(rpc, deployment).membership.bootstrap(load_party_account(key_file), addresses)
    console.print(f"the consortium members are {', '.join(addresses)} (tx {result.tx_hash})")


def _propose(rpc: str, deployment: Path, key_file: Path | None, member: str, *, admit: bool) -> None:
    address = parse_address(member, "MEMBER")
    sent = _registry(rpc, deployment).membership.propose(load_party_account(key_file), address, admit=admit)
    what = "admit" if admit else "remove"
    if sent.executed:
        done = "is a consortium member" if admit else "is no longer a consortium member"
        console.print(
            f"proposal {sent.id} to {what} {address} passed at once: {address} {done} (tx {sent.tx.tx_hash})"
        )
    else:
        console.print(
            f"proposal {sent.id} to {what} {address} is open for 7 days; a majority of the members "
            f"approve it with `supet party member approve {sent.id}` (tx {sent.tx.tx_hash})"
        )


@member_app.command("add")
def member_add(
    member: Annotated[str, typer.Argument(help="The account to admit as a member.")],
    rpc: RpcOpt,
    deployment: DeploymentOpt,
    key_file: KeyFileOpt = None,
) -> None:
    """Propose to admit a member (as a member, whose vote counts, or the consortium admin)."""
    _propose(rpc, deployment, key_file, member, admit=True)


@member_app.command("remove")
def member_remove(
    member: Annotated[str, typer.Argument(help="The member to remove.")],
    rpc: RpcOpt,
    deployment: DeploymentOpt,
    key_file: KeyFileOpt = None,
) -> None:
    """Propose to remove a member (once passed, its approvals stop counting at once)."""
    _propose(rpc, deployment, key_file, member, admit=False)


@member_app.command("approve")
def member_approve(
    proposal: Annotated[int, typer.Argument(help="The member proposal's id.", min=1)],
    rpc: RpcOpt,
    deployment: DeploymentOpt,
    key_file: KeyFileOpt = None,
) -> None:
    """Approve a member proposal, as a member; the vote making a majority carries it out."""
    reg = _registry(rpc, deployment)
    result = reg.membership.approve(load_party_account(key_file), proposal)
    p = reg.membership.proposal(proposal)
    if reg.membership.passed(result):
        console.print(f"{p.describe()} passed (tx {result.tx_hash})")
    else:
        console.print(
            f"{p.describe()}: {p.approvals} approval(s), {reg.membership.needed()} needed "
            f"(tx {result.tx_hash})"
        )


TopicOpt = Annotated[
    str, typer.Option("--topic", help="The claim topic: a name (iso-9001, ...) or a 0x-hex id.")
]
IssuerOpt = Annotated[str, typer.Option("--issuer", help="The issuer's signing address.")]


@issuer_app.command("add")
def issuer_add(
    topic: TopicOpt, issuer: IssuerOpt, rpc: RpcOpt, deployment: DeploymentOpt, key_file: KeyFileOpt = None
) -> None:
    """Trust an issuer for a claim topic."""
    topic_id, address = parse_topic(topic), parse_address(issuer, "--issuer")
    _warn_unknown(topic_id, dict(TOPICS), "topic")
    result = _registry(rpc, deployment).add_trusted_issuer(load_party_account(key_file), topic_id, address)
    console.print(f"{address} is trusted for {_label(topic_id)} (tx {result.tx_hash})")


@issuer_app.command("remove")
def issuer_remove(
    topic: TopicOpt, issuer: IssuerOpt, rpc: RpcOpt, deployment: DeploymentOpt, key_file: KeyFileOpt = None
) -> None:
    """Stop trusting an issuer for a topic (its claims on it stop counting at once)."""
    topic_id, address = parse_topic(topic), parse_address(issuer, "--issuer")
    result = _registry(rpc, deployment).remove_trusted_issuer(load_party_account(key_file), topic_id, address)
    console.print(f"{address} is no longer trusted for {_label(topic_id)} (tx {result.tx_hash})")


# ---------------------------------------------------------------- claims


@claim_app.command("issue")
def claim_issue(
    subject: Annotated[str, typer.Option("--subject", help="The party the claim is about.")],
    topic: TopicOpt,
    deployment: DeploymentOpt,
    out: Annotated[Path, typer.Option("--out", help="Where to write the signed claim (JSON).")],
    evidence: Annotated[
        Path | None,
        typer.Option("--evidence", help="The evidence document; its keccak-256 becomes the data hash."),
    ] = None,
    data_hash: Annotated[
        str | None, typer.Option("--data-hash", help="The data hash (0x + 64 hex), instead of --evidence.")
    ] = None,
    valid_days: Annotated[
        int | None, typer.Option("--valid-days", min=1, help="Valid for this many days from now.")
    ] = None,
    expires_at: Annotated[
        int | None,
        typer.Option("--expires-at", min=1, help="Expiry as Unix seconds, instead of --valid-days."),
    ] = None,
    key_file: KeyFileOpt = None,
) -> None:
    """Sign a claim as its issuer (offline: only the deployment file is read), to a JSON file."""
    if (evidence is None) == (data_hash is None):
        raise typer.BadParameter(
            "give exactly one of --evidence FILE or --data-hash HEX", param_hint="--evidence"
        )
    if (valid_days is None) == (expires_at is None):
        raise typer.BadParameter(
            "give exactly one of --valid-days N or --expires-at UNIX", param_hint="--valid-days"
        )
    if data_hash is not None:
        if not _HEX32.match(data_hash):
            raise typer.BadParameter("expected 0x and 64 hex digits", param_hint="--data-hash")
        digest = bytes.fromhex(data_hash[2:])
    else:
        assert evidence is not None
        try:
            digest = keccak(evidence.read_bytes())
        except OSError as e:
            raise typer.BadParameter(f"cannot read {evidence}: {e.strerror}", param_hint="--evidence") from e
    if expires_at is None:
        assert valid_days is not None
        expires_at = int((datetime.now(UTC) + timedelta(days=valid_days)).timestamp())
    dep = Deployment.load(deployment)
    domain = ClaimDomain(chain_id=dep.chain_id, verifying_contract=dep.address(CONTRACT_NAME))
    signed = sign_claim(
        load_party_account(key_file),
        subject=parse_address(subject, "--subject"),
        topic=parse_topic(topic),
        data_hash=digest,
        expires_at=expires_at,
        domain=domain,
    )
    out.write_text(signed.to_json(), encoding="utf-8")
    console.print(
        f"claim 0x{signed.claim_id.hex()} by {signed.claim.issuer}: {signed.claim.subject} holds "
        f"{_label(signed.claim.topic)} until {_time(expires_at)} -> {out}"
    )


ClaimFileArg = Annotated[Path, typer.Argument(help="A claim file written by `supet party claim issue`.")]


@claim_app.command("add")
def claim_add(
    claim_file: ClaimFileArg, rpc: RpcOpt, deployment: DeploymentOpt, key_file: KeyFileOpt = None
) -> None:
    """Submit a signed claim (usually by its subject; anyone may)."""
    signed = SignedClaim.load(claim_file)
    reg = _registry(rpc, deployment)
    result = reg.add_claim(load_party_account(key_file), signed)
    console.print(
        f"claim 0x{signed.claim_id.hex()} added: {signed.claim.subject} holds {_label(signed.claim.topic)} "
        f"until {_time(signed.claim.expires_at)} (tx {result.tx_hash})"
    )


@claim_app.command("revoke")
def claim_revoke(
    rpc: RpcOpt,
    deployment: DeploymentOpt,
    claim_file: Annotated[
        Path | None, typer.Argument(help="The claim file (or give --subject and --topic).")
    ] = None,
    subject: Annotated[
        str | None, typer.Option("--subject", help="Revoke the claim this party holds for --topic.")
    ] = None,
    topic: Annotated[
        str | None, typer.Option("--topic", help="The topic of the claim (with --subject).")
    ] = None,
    key_file: KeyFileOpt = None,
) -> None:
    """Revoke a claim you issued: it stops counting at once (or can no longer be added)."""
    if claim_file is not None and (subject is not None or topic is not None):
        raise typer.BadParameter("give CLAIM_FILE or --subject and --topic, not both", param_hint="--subject")
    if claim_file is None and (subject is None or topic is None):
        raise typer.BadParameter("give CLAIM_FILE, or both --subject and --topic", param_hint="--subject")
    reg = _registry(rpc, deployment)
    if claim_file is not None:
        claim = SignedClaim.load(claim_file).claim
    else:
        assert subject is not None and topic is not None
        claim = reg.claim_of(parse_address(subject, "--subject"), parse_topic(topic)).claim()
    issuer = load_party_account(key_file)
    result = reg.revoke_claim(issuer, claim)
    claim_id = claim.claim_id(reg.domain)
    console.print(
        f"claim 0x{claim_id.hex()} ({claim.subject}, {_label(claim.topic)}) revoked by {issuer.address} "
        f"(tx {result.tx_hash})"
    )


# ---------------------------------------------------------------- parties and members


@app.command("sign-in-message")
def sign_in_message(
    message: Annotated[
        Path | None,
        typer.Argument(
            help="The file holding the portal's sign-in message (default: standard input).", dir_okay=False
        ),
    ] = None,
    key_file: KeyFileOpt = None,
) -> None:
    """Sign the portal's sign-in message with the party key, for people without a browser wallet: prints
    the EIP-191 ``personal_sign`` signature (0x-hex) to paste into the portal's form."""
    text = message.read_text(encoding="utf-8") if message is not None else sys.stdin.read()
    print(sign_message(text, load_party_account(key_file)))


def sign_message(message: str, account: LocalAccount) -> str:
    """The 0x-hex ``personal_sign`` signature of ``message`` as the portal shows it (line ends normalised
    to ``\\n``, trailing ones dropped: a copy from a file or a terminal signs the same text)."""
    text = message.replace("\r\n", "\n").rstrip("\n")
    return str(account.sign_message(encode_defunct(text=text)).signature.to_0x_hex())


@app.command("apply")
def apply(role: RoleArg, rpc: RpcOpt, deployment: DeploymentOpt, key_file: KeyFileOpt = None) -> None:
    """Apply for a role as the acting party."""
    role_id = parse_role(role)
    party = load_party_account(key_file)
    reg = _registry(rpc, deployment)
    result = reg.apply(party, role_id)
    console.print(f"{party.address} applied for {_label(role_id)} (tx {result.tx_hash})")
    console.print(f"  now: {reg.why_not_admitted(party.address, role_id).explain()}")


@app.command("withdraw")
def withdraw(role: RoleArg, rpc: RpcOpt, deployment: DeploymentOpt, key_file: KeyFileOpt = None) -> None:
    """Withdraw the acting party's application for a role (its approvals are dropped)."""
    role_id = parse_role(role)
    party = load_party_account(key_file)
    result = _registry(rpc, deployment).withdraw(party, role_id)
    console.print(f"{party.address} withdrew from {_label(role_id)} (tx {result.tx_hash})")


@app.command("approve")
def approve(
    party: PartyArg, role: RoleArg, rpc: RpcOpt, deployment: DeploymentOpt, key_file: KeyFileOpt = None
) -> None:
    """Approve a party's application for a role, as a consortium member."""
    address, role_id = parse_address(party, "PARTY"), parse_role(role)
    member = load_party_account(key_file)
    reg = _registry(rpc, deployment)
    result = reg.approve(member, address, role_id)
    console.print(f"{member.address} approved {address} as {_label(role_id)} (tx {result.tx_hash})")
    console.print(f"  now: {reg.why_not_admitted(address, role_id).explain()}")


# ---------------------------------------------------------------- status


_CLAIM_STATE = {
    ClaimState.MISSING: "missing",
    ClaimState.VALID: "valid",
    ClaimState.EXPIRED: "expired",
    ClaimState.REVOKED: "revoked",
    ClaimState.ISSUER_UNTRUSTED: "issuer no longer trusted",
}


@app.command("status")
def status(
    party: PartyArg,
    rpc: RpcOpt,
    deployment: DeploymentOpt,
    role: Annotated[
        list[str] | None,
        typer.Option("--role", help="Only these roles (repeat); default: every defined role."),
    ] = None,
) -> None:
    """Whether a party is admitted, per role, and if not why; its claims and suspension."""
    address = parse_address(party, "PARTY")
    reg = _registry(rpc, deployment)
    roles = [parse_role(r, "--role") for r in role] if role else reg.roles()
    suspension = reg.suspension(address)
    console.print(f"party {address}")
    if suspension.suspended:
        console.print(f"  SUSPENDED since {_time(suspension.since)}: {suspension.reason}")
    elif suspension.since:
        console.print(f"  reinstated {_time(suspension.since)}: {suspension.reason}")
    if not roles:
        console.print("  no role is defined yet (supet party role-rule)")
    for role_id in roles:
        verdict = reg.why_not_admitted(address, role_id)
        shown = verdict.explain() if verdict.admitted else f"not admitted: {verdict.explain()}"
        console.print(f"  {_label(role_id)}: {shown}")
        for topic_id in reg.role_rule(role_id).topics:
            stored = reg.claim_of(address, topic_id)
            state = _CLAIM_STATE[reg.claim_state(address, topic_id)]
            where = f" from {stored.issuer}, expires {_time(stored.expires_at)}" if stored.present else ""
            console.print(f"    claim {_label(topic_id)}: {state}{where}")
