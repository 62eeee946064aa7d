"""``supet audit lot``: an auditor re-verifies a lot's whole history from the chain and the bundles alone.

The lot's chain events (opening or split, custody transfers, certification) are read from the chain
itself, never from a ledger. The readings' proof bundles come from a ledger's HTTP API (only as
claims: each is verified against the chain) or from a directory of bundle files, for a fully offline
audit. One verdict line per step; exit status 0 only when every step verifies.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.markup import escape

from contracts.chain import Chain
from contracts.deploy import Deployment
from ledger_service.lots import ChainStep, lot_chain_steps
from ledger_service.verify import BundleVerifier, ProofBundle, VerificationError
from supet.cli.common import DeploymentOpt, RpcOpt, open_deployment
from supet.errors import SupetError

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


@dataclass(frozen=True, kw_only=True)
class Verdict:
    """One line of the audit: a step and whether it verified (``ok`` None: noted, not judged)."""

    ok: bool | None
    key: tuple[int, int, int, int, str, int]
    kind: str
    text: str

    @property
    def failed(self) -> bool:
        return self.ok is False


@dataclass(frozen=True, kw_only=True)
class BundleSource:
    """A reading's bundle as given to the audit (``error``: it could not even be read)."""

    origin: str
    bundle: ProofBundle | None = None
    error: str | None = None


def _when(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _short(address: str) -> str:
    return address[:10] + "…" if len(address) > 12 else address


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


def fetch_ledger_history(client: httpx.Client, lot_id: str) -> list[dict[str, Any]]:
    """Every step the ledger reports for the lot, all pages; [] when it knows no such lot."""
    steps: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 500}
        if cursor:
            params["cursor"] = cursor
        try:
            r = client.get(f"/v1/lots/{lot_id}/history", params=params)
        except httpx.HTTPError as e:
            raise LedgerUnavailable(
                f"cannot reach the ledger at {client.base_url}: {e}; pass --ledger URL, or --bundles DIR "
                "for an offline audit"
            ) from e
        if r.status_code == 404 and not steps:
            return []
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


# ---------------------------------------------------------------- judging


def _chain_text(step: ChainStep) -> str:
    d = step.details
    if step.kind == "opened" and "split_from" in d:
        what = f"split off {d['split_from']} ({d['quantity']}) into {_short(step.actor)}'s custody"
    elif step.kind == "opened":
        what = f"opened: GTIN {d['gtin']}, {d['quantity']} {d['unit']} by supplier {_short(step.actor)}"
    elif step.kind == "split":
        what = f"split off {d['child_lot_id']} ({d['quantity']}), {d['remaining']} remain"
    elif step.kind.startswith("transfer_"):
        what = f"{step.kind.replace('_', ' ')}: {_short(d['from'])} -> {_short(d['to'])}"
    elif step.kind == "certified":
        what = (
            f"certified against spec v{d['spec_version']} from {d['samples']} sample(s) "
            f"by {_short(step.actor)}"
        )
    else:
        what = (
            f"rejected against spec v{d['spec_version']}: {d['reason']} {d['metric']} "
            f"{d['value']} (bound {d['bound']})"
        )
    return f"{what}; tx {step.tx_hash} in block {step.block_number}"


def judge_chain_steps(steps: list[ChainStep], *, head: int, min_confirmations: int) -> list[Verdict]:
    """The chain's own events are the record: each passes once deep enough."""
    out = []
    for s in steps:
        confirmations = head - s.block_number
        ok = confirmations >= min_confirmations
        text = _chain_text(s)
        if not ok:
            text += f": only {confirmations} confirmation(s), {min_confirmations} required"
        out.append(Verdict(ok=ok, key=s.sort_key, kind=s.kind, text=text))
    return out


def judge_bundles(
    sources: list[BundleSource],
    lot_id: str,
    *,
    chain: Chain,
    deployment: Deployment,
    min_confirmations: int,
) -> list[Verdict]:
    """Verify each bundle against the chain and check that its reading names this lot."""
    verifier = BundleVerifier(chain=chain, deployment=deployment)
    seen: set[bytes] = set()
    out = []
    for src in sources:
        if src.bundle is None:
            out.append(
                Verdict(
                    ok=False,
                    key=(-1, 1, 0, 0, src.origin, 0),
                    kind="reading",
                    text=(f"{src.origin}: not a proof bundle: {src.error}"),
                )
            )
            continue
        b = src.bundle
        r = b.reading
        key = (r.ts_ms, 1, 0, 0, r.device_id, r.seq)
        label = f"reading {r.device_id} seq {r.seq} ({src.origin})"
        if b.digest in seen:
            continue
        seen.add(b.digest)
        try:
            v = verifier.verify(b, min_confirmations=min_confirmations)
        except VerificationError as e:
            out.append(Verdict(ok=False, key=key, kind="reading", text=f"{label}: {e.message} [{e.code}]"))
            continue
        if r.lot_id != lot_id:
            out.append(
                Verdict(
                    ok=False,
                    key=key,
                    kind="reading",
                    text=f"{label}: a valid reading, but of lot {r.lot_id!r}, not {lot_id!r}",
                )
            )
            continue
        metrics = ", ".join(f"{k}={val}" for k, val in r.metrics.items())
        out.append(
            Verdict(
                ok=True,
                key=key,
                kind="reading",
                text=(
                    f"reading {r.device_id} seq {r.seq} [{metrics}]: signed by the registered key, "
                    f"anchored in batch {v.batch_id} at block {v.anchor_block}; digest 0x{v.digest.hex()}"
                ),
            )
        )
    return out


def judge_pending(pending: list[dict[str, Any]], *, allow: bool) -> list[Verdict]:
    out = []
    for step in pending:
        d = step.get("details") or {}
        ref = step.get("reference") or {}
        key = (int(step.get("time_ms") or 0), 1, 0, 0, str(d.get("device_id", "")), int(d.get("seq") or 0))
        text = (
            f"reading {d.get('device_id')} seq {d.get('seq')}: {ref.get('status')} at the ledger, "
            f"not anchored yet: nothing to verify (digest {ref.get('digest')})"
        )
        out.append(Verdict(ok=None if allow else False, key=key, kind="reading", text=text))
    return out


def judge_ledger_claims(ours: list[ChainStep], ledger_steps: list[dict[str, Any]]) -> list[Verdict]:
    """Where the ledger's account of the chain events differs from the chain's own."""
    mine = {(s.tx_hash.lower(), s.log_index): s for s in ours}
    theirs = {}
    for step in ledger_steps:
        ref = step.get("reference") or {}
        if ref.get("type") == "transaction":
            theirs[(str(ref.get("tx_hash", "")).lower(), int(ref.get("log_index") or 0))] = step
    out = []
    for k, step in theirs.items():
        if k not in mine or mine[k].kind != step.get("kind"):
            out.append(
                Verdict(
                    ok=False,
                    key=(int(step.get("time_ms") or 0), 0, 0, 0, "", 0),
                    kind=str(step.get("kind")),
                    text=f"the ledger reports a {step.get('kind')} in tx {k[0]} that the chain does not have",
                )
            )
    for k, s in mine.items():
        if k not in theirs:
            out.append(
                Verdict(
                    ok=False,
                    key=s.sort_key,
                    kind=s.kind,
                    text=f"the ledger's history omits the {s.kind} in tx {s.tx_hash}",
                )
            )
    return out


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
            ledger_steps = fetch_ledger_history(client, lot_id)
        sources, pending = _ledger_sources(ledger_steps)
        origin = f"the ledger at {ledger} ({len(sources)} anchored reading(s), {len(pending)} not anchored)"
    chain, dep = open_deployment(rpc, deployment)
    console.print(
        f"auditing lot {escape(lot_id)} on chain {dep.chain_id} at {escape(chain.rpc)}; "
        f"readings from {escape(origin)}"
    )
    chain_steps = lot_chain_steps(chain, dep, lot_id)
    verdicts = judge_chain_steps(chain_steps, head=chain.block_number(), min_confirmations=min_confirmations)
    if not any(s.kind == "opened" for s in chain_steps):
        verdicts.append(
            Verdict(
                ok=False,
                key=(-1, 0, 0, 0, "", 0),
                kind="opened",
                text=f"lot {lot_id!r} was never opened on chain (no LotOpened, no LotSplit creating it)",
            )
        )
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
