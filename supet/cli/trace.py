"""``supet trace`` and ``supet lot recall`` (issue 15).

``supet trace LOT --upstream|--downstream`` asks the ledger (``GET /v1/lots/{lot_id}/trace``, signed in as
the party of ``--key-file`` / ``$SUPET_PARTY_KEY``: a trace is shown to the lot's issuer, custodians and
named auditors only) and prints every lot upstream with its producer and verdicts, or downstream with its
present holder, and any recall notice. ``--verify`` re-checks the answer against the chain from here
(``--rpc``, ``--deployment``): each holder, producer, edge and recall notice, and that no edge was left
out; it exits 1 on a mismatch.

``supet lot recall LOT --reason TEXT`` records a recall notice on chain as the lot's producer or a party
admitted for ``supet.lot.recall`` (the reason's hash on chain, its text stays here), then flags every lot
downstream, walking the lineage on chain, in batches (``--batch``).
"""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from eth_utils import is_address, to_checksum_address
from rich.console import Console

from contracts.lot_recall import MAX_FLAG_BATCH, LotRecallClient
from contracts.lots import LotRegistryClient
from ledger_service.lots.trace import Trace, verify_trace
from supet.cli.common import DeploymentOpt, KeyFileOpt, RpcOpt, open_deployment
from supet.cli.ledger_reads import read_credentials
from supet.cli.reading import LedgerOpt, LedgerRequestError, _get, _json, _refusal, ledger_domain
from supet_base.parties import load_party_account

__all__ = ["downstream_on_chain", "recall", "trace"]

console = Console(soft_wrap=True)

LotIdArg = Annotated[str, typer.Argument(help="The lot id (text; on chain it is keyed under its issuer).")]
IssuerOpt = Annotated[
    str | None,
    typer.Option(
        "--issuer", help="Who named the lot: needed only when several parties have a lot with this id."
    ),
]


def _issuer(text: str | None) -> str | None:
    if text is None:
        return None
    if not is_address(text):
        raise typer.BadParameter(
            f"{text!r} is not an Ethereum address (0x and 40 hex digits)", param_hint="--issuer"
        )
    return to_checksum_address(text)


def _ledger_client(base_url: str) -> httpx.Client:
    """The HTTP client of one command (tests hand in the app's)."""
    return httpx.Client(timeout=60.0)


def _print_trace(body: dict[str, Any]) -> None:
    root = body["root"]
    upstream = body["direction"] == "upstream"
    console.print(
        f"{body['direction']} trace of {root['lot_id']} ({root['lot_key']}): {body['count']} lot(s)"
    )
    for lot in [root, *body["lots"]]:
        who = f"producer {lot['producer']}" if upstream else f"holder {lot['holder']}"
        flag = f"  RECALLED (notice {lot['recall_notice']})" if lot["recalled"] else ""
        pad = "  " * lot["depth"]
        line = f"{pad}{lot['lot_id']}  {lot['quantity']} {lot['unit']}  {lot['status']}  {who}{flag}"
        console.print(line, markup=False)
        if upstream:
            for v in lot["verdicts"]:
                reason = f" ({v['reason']})" if v.get("reason") else ""
                console.print(
                    f"{'  ' * lot['depth']}  {v['verdict']}{reason} against spec v{v['spec_version']}"
                )
    for n in body["recall_notices"]:
        reason = n.get("reason") or f"reason hash {n['reason_hash']}"
        console.print(f"recall notice {n['notice_id']} on {n['root']} by {n['by']}: {reason}", markup=False)


def trace(
    lot_id: LotIdArg,
    ledger: LedgerOpt,
    upstream: Annotated[bool, typer.Option("--upstream", help="Every lot it was made from.")] = False,
    downstream: Annotated[bool, typer.Option("--downstream", help="Every lot made from it.")] = False,
    verify: Annotated[bool, typer.Option("--verify", help="Re-check the trace against the chain.")] = False,
    rpc: Annotated[
        str | None, typer.Option("--rpc", envvar="SUPET_RPC", help="JSON-RPC URL of the chain (--verify).")
    ] = None,
    deployment: Annotated[
        Path | None,
        typer.Option("--deployment", envvar="SUPET_DEPLOYMENT", help="Deployment file (--verify)."),
    ] = None,
    issuer: IssuerOpt = None,
    key_file: KeyFileOpt = None,
) -> None:
    """Trace a lot upstream (producers, verdicts) or downstream (present holders) from the ledger."""
    if verify and (rpc is None or deployment is None):
        raise typer.BadParameter("--verify needs --rpc and --deployment", param_hint="--verify")
    if upstream == downstream:
        raise typer.BadParameter("give one of --upstream and --downstream", param_hint="--upstream")
    direction = "upstream" if upstream else "downstream"
    base = ledger.rstrip("/")
    path = f"/v1/lots/{lot_id}/trace?direction={direction}"
    who = _issuer(issuer)
    if who is not None:
        path += f"&issuer={who}"
    with _ledger_client(base) as client:
        credentials = read_credentials(
            client, base, domain=lambda: ledger_domain(client, base), key_file=key_file
        )
        response = _get(client, base + path, credentials(path))
        if response.status_code != 200:
            raise LedgerRequestError(f"no trace of {lot_id}: {_refusal(response)}")
        body = _json(response)
    _print_trace(body)
    if verify and rpc is not None and deployment is not None:
        chain, dep = open_deployment(rpc, deployment)
        check = verify_trace(chain, dep, Trace.from_json_obj(body))
        if not check.ok:
            for m in check.mismatches:
                console.print(f"MISMATCH {m}", markup=False)
            raise typer.Exit(1)
        console.print(
            f"verified on chain: {check.lots} lot(s), {check.edges} edge(s), {check.calls} call(s), "
            "no mismatch"
        )


def downstream_on_chain(lots: LotRegistryClient, root: bytes) -> list[bytes]:
    """Every lot split off or made from ``root``, transitively, breadth-first, from the chain alone."""
    seen = {root}
    order: list[bytes] = []
    queue = deque([root])
    while queue:
        key = queue.popleft()
        for child in [*lots.children(key), *lots.outputs_of(key)]:
            if child not in seen:
                seen.add(child)
                order.append(child)
                queue.append(child)
    return order


def recall(
    lot_id: LotIdArg,
    reason: Annotated[str, typer.Option("--reason", help="Why (only its hash goes on chain).")],
    rpc: RpcOpt,
    deployment: DeploymentOpt,
    issuer: IssuerOpt = None,
    batch: Annotated[
        int, typer.Option("--batch", min=1, max=MAX_FLAG_BATCH, help="Lots flagged per transaction.")
    ] = MAX_FLAG_BATCH,
    key_file: KeyFileOpt = None,
) -> None:
    """Recall a lot (as its producer, or admitted for supet.lot.recall), then flag every lot downstream."""
    if not reason.strip():
        raise typer.BadParameter("say why the lot is recalled", param_hint="--reason")
    chain, dep = open_deployment(rpc, deployment)
    recalls = LotRecallClient.from_deployment(chain, dep)
    party = load_party_account(key_file)
    key = recalls.lots.key(lot_id, issuer=_issuer(issuer))
    done = recalls.recall(party, key, reason)
    console.print(f"recall notice {done.notice_id} on {lot_id} (0x{key.hex()}) in tx {done.tx.tx_hash}")
    downstream = downstream_on_chain(recalls.lots, key)
    flagged = recalls.flag_downstream(party, done.notice_id, downstream, batch=batch)
    console.print(
        f"flagged {flagged.flagged} downstream lot(s) of {len(downstream)} "
        f"in {len(flagged.txs)} transaction(s)"
    )
