"""``supet audit lot``: an auditor re-verifies a lot's whole history from the chain and the bundles alone.

The lot's chain events (opening or split, custody transfers, certification) are read from the chain
itself, never from a ledger. The readings' proof bundles come from a ledger's HTTP API (only as
claims: each is verified against the chain) or from a directory of bundle files, for a fully offline
audit. The judging is :mod:`auditor.lot_audit`'s; this command fetches, prints and sets the exit
status: one verdict line per step; exit status 0 only when every step verifies.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.markup import escape

from auditor.bundle import ProofBundle
from auditor.errors import VerificationError
from auditor.lot_audit import (
    BundleSource,
    judge_bundles,
    judge_chain_steps,
    judge_ledger_claims,
    judge_opened,
    judge_pending,
)
from auditor.lot_chain import lot_chain_steps
from supet.cli.common import DeploymentOpt, RpcOpt, open_deployment
from supet.cli.ledger_reads import party_credentials
from supet_base.errors import SupetError
from supet_base.parties import load_party_account

app = typer.Typer(
    name="audit",
    help="Audit a lot: re-verify its history against the chain, trusting no ledger.",
    no_args_is_help=True,
)
console = Console(soft_wrap=True, highlight=False)

_PASS = "[green]✓[/]"
_FAIL = "[bold red]✗[/]"
_NOTE = "[yellow]·[/]"

DEFAULT_LEDGER = "http://127.0.0.1:8000"


class LedgerUnavailable(SupetError):
    """The ledger's HTTP API could not give the lot's history."""

    code = "audit.ledger"


def _when(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


# ---------------------------------------------------------------- sources


def load_bundles_dir(directory: Path) -> list[BundleSource]:
    """Every ``*.json`` of ``directory`` as a bundle (a file that is not one is a failed step)."""
    if not directory.is_dir():
        raise typer.BadParameter(f"{directory} is not a directory of bundle files", param_hint="--bundles")
    out = []
    for path in sorted(directory.glob("*.json")):
        try:
            out.append(BundleSource(origin=path.name, bundle=ProofBundle.from_json(path.read_bytes())))
        except VerificationError as e:
            out.append(BundleSource(origin=path.name, error=e.message))
        except OSError as e:
            out.append(BundleSource(origin=path.name, error=f"cannot read: {e.strerror}"))
    return out


def _ledger_client(base_url: str) -> httpx.Client:
    return httpx.Client(base_url=base_url, timeout=30.0)


def fetch_ledger_history(
    client: httpx.Client, lot_id: str, headers: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """Every step the ledger reports for the lot, all pages; [] when it knows no such lot. ``headers``:
    the reader's credentials (a lot's evidence is answered to its custodians and named auditors, and
    to anyone once it was disclosed)."""
    steps: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 500}
        if cursor:
            params["cursor"] = cursor
        try:
            r = client.get(f"/v1/lots/{lot_id}/history", params=params, headers=headers)
        except httpx.HTTPError as e:
            raise LedgerUnavailable(
                f"cannot reach the ledger at {client.base_url}: {e}; pass --ledger URL, or --bundles DIR "
                "for an offline audit"
            ) from e
        if r.status_code == 404 and not steps:
            return []
        if r.status_code in (401, 403):
            raise LedgerUnavailable(
                f"the ledger does not show lot {lot_id!r} to this reader ({r.status_code} "
                f"{_code(r)}): a lot's evidence is for its custodians and the auditors its holder "
                "named (sign in with --key-file), or for anyone once its holder disclosed it; or "
                "audit offline with --bundles DIR"
            )
        if r.status_code != 200:
            raise LedgerUnavailable(
                f"the ledger answered {r.status_code} for the lot's history: {r.text[:300]}"
            )
        try:
            page = r.json()
            steps += list(page["steps"])
            cursor = page.get("next_cursor")
        except (ValueError, KeyError, TypeError) as e:
            raise LedgerUnavailable(f"the ledger's history is not the documented shape: {e}") from e
        if not cursor:
            return steps


def _code(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return "no error code"


def _ledger_sources(steps: list[dict[str, Any]]) -> tuple[list[BundleSource], list[dict[str, Any]]]:
    """The anchored readings' bundles, and the readings the ledger has not anchored yet."""
    bundles, pending = [], []
    for step in steps:
        if step.get("kind") != "reading":
            continue
        ref = step.get("reference") or {}
        origin = f"ledger reading {ref.get('digest')}"
        if ref.get("status") != "anchored":
            pending.append(step)
            continue
        try:
            bundles.append(BundleSource(origin=origin, bundle=ProofBundle.from_json_obj(ref.get("proof"))))
        except VerificationError as e:
            bundles.append(BundleSource(origin=origin, error=e.message))
    return bundles, pending


# ---------------------------------------------------------------- the command


@app.command("lot")
def lot(
    lot_id: Annotated[str, typer.Argument(metavar="LOT_ID", help="The lot id as opened on chain.")],
    rpc: RpcOpt,
    deployment: DeploymentOpt,
    ledger: Annotated[
        str,
        typer.Option("--ledger", help="The ledger's base URL, for the readings' proof bundles."),
    ] = DEFAULT_LEDGER,
    bundles: Annotated[
        Path | None,
        typer.Option(
            "--bundles",
            help="A directory of proof bundle files (*.json) instead of the ledger: a fully offline audit.",
        ),
    ] = None,
    min_confirmations: Annotated[
        int, typer.Option("--min-confirmations", min=0, help="Blocks required on top of each step's block.")
    ] = 0,
    allow_pending: Annotated[
        bool,
        typer.Option(
            "--allow-pending", help="Readings the ledger has not anchored yet do not fail the audit."
        ),
    ] = False,
    key_file: Annotated[
        Path | None,
        typer.Option(
            "--key-file",
            help="Read the lot from the ledger as this party (a custodian, or an auditor its holder "
            "named): its key file; without it only a disclosed lot is answered.",
        ),
    ] = None,
) -> None:
    """Re-verify a lot's whole history with the chain and the proof bundles alone.

    The lot's opening (or the split that created it), custody transfers and
    certification verdicts are read from the chain's own events. Every reading's
    proof bundle is verified as `supet verify` does (digest, batch, root, inclusion,
    device active, signature, anchoring transaction) and must carry this lot id.
    With the ledger as source, its account of the chain events is also compared
    with the chain's.

    One line per step, in time order: ✓ verified, ✗ not. Exit status 0 only when
    every step verifies; 1 otherwise.
    """
    sources: list[BundleSource]
    pending: list[dict[str, Any]] = []
    ledger_steps: list[dict[str, Any]] | None = None
    if bundles is not None:
        sources = load_bundles_dir(bundles)
        origin = f"{len(sources)} bundle file(s) in {bundles}"
    else:
        with _ledger_client(ledger) as client:
            headers = party_credentials(client, "", load_party_account(key_file))("") if key_file else None
            ledger_steps = fetch_ledger_history(client, lot_id, headers)
        sources, pending = _ledger_sources(ledger_steps)
        origin = f"the ledger at {ledger} ({len(sources)} anchored reading(s), {len(pending)} not anchored)"
    chain, dep = open_deployment(rpc, deployment)
    console.print(
        f"auditing lot {escape(lot_id)} on chain {dep.chain_id} at {escape(chain.rpc)}; "
        f"readings from {escape(origin)}"
    )
    chain_steps = lot_chain_steps(chain, dep, lot_id)
    verdicts = judge_chain_steps(chain_steps, head=chain.block_number(), min_confirmations=min_confirmations)
    verdicts += judge_opened(chain_steps, lot_id)
    verdicts += judge_bundles(
        sources, lot_id, chain=chain, deployment=dep, min_confirmations=min_confirmations
    )
    verdicts += judge_pending(pending, allow=allow_pending)
    if ledger_steps is not None:
        verdicts += judge_ledger_claims(chain_steps, ledger_steps)
    verdicts.sort(key=lambda v: v.key)
    for v in verdicts:
        mark = _PASS if v.ok else (_NOTE if v.ok is None else _FAIL)
        when = _when(v.key[0]) if v.key[0] >= 0 else "-" * 20
        console.print(f"{mark} {when} {v.kind:<18} {escape(v.text)}")
    failed = sum(1 for v in verdicts if v.failed)
    readings = sum(1 for v in verdicts if v.kind == "reading" and v.ok)
    if failed:
        console.print(
            f"[bold red]NOT VERIFIED[/]: {failed} of {len(verdicts)} step(s) failed for lot {escape(lot_id)}"
        )
        raise typer.Exit(1)
    console.print(
        f"[bold green]VERIFIED[/]: lot {escape(lot_id)}, {len(chain_steps)} chain step(s) and "
        f"{readings} reading(s) verified against the chain"
    )
