"""Judging a lot's whole history (``supet audit lot``): one verdict per step, trusting no ledger.

The lot's chain events come from :func:`auditor.lot_chain.lot_chain_steps`; each passes once deep
enough (:func:`judge_chain_steps`). Every reading's proof bundle is verified as ``supet verify`` does
and must carry the lot's id (:func:`judge_bundles`). A ledger's own account of the chain events is
compared with the chain's (:func:`judge_ledger_claims`). Where the bundles come from (files, a
ledger's HTTP API) and how verdicts are printed is the command's business.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from auditor.bundle import ProofBundle
from auditor.errors import VerificationError
from auditor.lot_chain import ChainStep, transformation_text
from auditor.verify import BundleVerifier, VerifiedReading
from contracts.chain import Chain
from contracts.deployment import Deployment

__all__ = [
    "BundleSource",
    "Verdict",
    "judge_bundles",
    "judge_chain_steps",
    "judge_ledger_claims",
    "judge_opened",
    "judge_pending",
]


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


def _short(address: str) -> str:
    return address[:10] + "…" if len(address) > 12 else address


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
    elif step.kind == "transformed":
        what = f"transformation {d['transformation_id']} by {_short(step.actor)}: {transformation_text(d)}"
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


def judge_opened(steps: list[ChainStep], lot_id: str) -> list[Verdict]:
    """A failed verdict when the chain never opened the lot (no ``opened`` step), else none."""
    if any(s.kind == "opened" for s in steps):
        return []
    return [
        Verdict(
            ok=False,
            key=(-1, 0, 0, 0, "", 0),
            kind="opened",
            text=f"lot {lot_id!r} was never opened on chain (no LotOpened, no LotSplit creating it)",
        )
    ]


def judge_bundles(
    sources: list[BundleSource],
    lot_id: str,
    *,
    chain: Chain,
    deployment: Deployment,
    min_confirmations: int,
) -> list[Verdict]:
    """Verify each bundle against the chain and check that its reading names this lot.

    The bundles are verified in one run (:meth:`BundleVerifier.verify_many`: each batch, device and
    anchoring read once); a bundle given twice (same digest) is judged once."""
    verifier = BundleVerifier(chain=chain, deployment=deployment)
    seen: set[bytes] = set()
    unreadable: list[Verdict] = []
    bundles: list[ProofBundle] = []
    origins: list[str] = []
    for src in sources:
        if src.bundle is None:
            unreadable.append(
                Verdict(
                    ok=False,
                    key=(-1, 1, 0, 0, src.origin, 0),
                    kind="reading",
                    text=(f"{src.origin}: not a proof bundle: {src.error}"),
                )
            )
        elif src.bundle.digest not in seen:
            seen.add(src.bundle.digest)
            bundles.append(src.bundle)
            origins.append(src.origin)
    verdicts = verifier.verify_many(bundles, min_confirmations=min_confirmations)
    judged = [
        _reading_verdict(b, origin, v, lot_id)
        for b, origin, v in zip(bundles, origins, verdicts, strict=True)
    ]
    return unreadable + judged


def _reading_verdict(
    b: ProofBundle, origin: str, v: VerifiedReading | VerificationError, lot_id: str
) -> Verdict:
    r = b.reading
    key = (r.ts_ms, 1, 0, 0, r.device_id, r.seq)
    label = f"reading {r.device_id} seq {r.seq} ({origin})"
    if isinstance(v, VerificationError):
        return Verdict(ok=False, key=key, kind="reading", text=f"{label}: {v.message} [{v.code}]")
    if r.lot_id != lot_id:
        return Verdict(
            ok=False,
            key=key,
            kind="reading",
            text=f"{label}: a valid reading, but of lot {r.lot_id!r}, not {lot_id!r}",
        )
    metrics = ", ".join(f"{k}={val}" for k, val in r.metrics.items())
    return Verdict(
        ok=True,
        key=key,
        kind="reading",
        text=(
            f"reading {r.device_id} seq {r.seq} [{metrics}]: signed by the registered key, "
            f"anchored in batch {v.batch_id} at block {v.anchor_block}; digest 0x{v.digest.hex()}"
        ),
    )


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
