"""``supet verify``: an auditor checks proof bundles (a file or a directory) against the chain alone."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from auditor.bundle import ProofBundle
from auditor.errors import CHECKS, VerificationError
from auditor.verify import BundleVerifier, Verdict, VerifiedReading
from contracts.chain import Chain
from contracts.deployment import Deployment
from supet.cli.common import DeploymentOpt, RpcOpt, open_deployment

console = Console(soft_wrap=True, highlight=False)

_PASS = "[green]✓[/]"
_FAIL = "[bold red]✗[/]"
_SKIP = "[dim]·[/]"
_PRINT_CHUNK = 500


def _read_bundle(source: str) -> ProofBundle:
    """The bundle in file ``source`` (``-``: standard input). A missing file is a usage error."""
    if source == "-":
        return ProofBundle.from_json(sys.stdin.buffer.read())
    path = Path(source)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise typer.BadParameter(f"no such file: {source}", param_hint="BUNDLE") from None
    except IsADirectoryError:
        raise typer.BadParameter(f"{source} is a directory, not a bundle file", param_hint="BUNDLE") from None
    except OSError as e:
        raise typer.BadParameter(f"cannot read {source}: {e.strerror}", param_hint="BUNDLE") from e
    return ProofBundle.from_json(data)


def _details(bundle: ProofBundle, result: VerifiedReading | None) -> dict[str, str]:
    """What each check looked at, for the verdict lines."""
    reading = bundle.reading
    details = {
        "deployment": f"chain {bundle.chain_id}, ReadingAnchor {bundle.anchor_contract}",
        "digest": f"0x{bundle.digest.hex()}",
        "batch": f"batch {bundle.batch_id}",
        "root": f"0x{bundle.root.hex()}",
        "inclusion": f"{len(bundle.proof)} sibling(s)",
        "device active": f"{reading.device_id} at ts_ms {reading.ts_ms}",
        "signature": f"{bundle.scheme.value}, {len(bundle.signature)} bytes",
        "anchor tx": f"0x{bundle.anchor_tx.hex()}",
    }
    if result is not None:
        details["batch"] += f", anchored at {result.anchored_at} (Unix s)"
        details["signature"] = f"{result.scheme.value}, by the registered key"
        details["anchor tx"] += f" in block {result.anchor_block}, {result.confirmations} block(s) on top"
    return details


def _print_checks(
    bundle: ProofBundle, result: VerifiedReading | None, error: VerificationError | None
) -> None:
    details = _details(bundle, result)
    failed = error.check if error is not None else None
    if error is not None and failed not in CHECKS:  # a verdict no single check explains
        for check in CHECKS:
            console.print(f"{_SKIP} {check:<14} [dim]not determined[/]")
        console.print(f"{_FAIL} {'verdict':<14} {escape(error.message)}")
        return
    reached = True
    for check in CHECKS:
        if failed == check:
            console.print(f"{_FAIL} {check:<14} {escape(error.message if error else '')}")
            reached = False
        elif reached:
            console.print(f"{_PASS} {check:<14} {escape(details[check])}")
        else:
            console.print(f"{_SKIP} {check:<14} [dim]not checked[/]")


def _verdict_name(error: VerificationError | None) -> str:
    return "valid" if error is None else f"invalid ({error.code})"


def verify(
    bundle: Annotated[
        str,
        typer.Argument(
            metavar="BUNDLE.json|DIR",
            help="The proof bundle (Reading v1 section 6), - to read it from standard input, or a "
            "directory: every *.json inside it.",
            show_default=False,
        ),
    ],
    rpc: RpcOpt,
    deployment: DeploymentOpt,
    min_confirmations: Annotated[
        int,
        typer.Option(
            "--min-confirmations",
            min=0,
            help="Blocks required on top of the anchoring transaction's block.",
        ),
    ] = 0,
    on_chain: Annotated[
        bool,
        typer.Option(
            "--on-chain",
            help="Also verify through the contract's own ReadingAnchor.verifyReading and report "
            "whether the two verdicts agree.",
        ),
    ] = False,
) -> None:
    """Verify a reading's proof bundle with the chain alone: no ledger service is trusted.

    The bundle's chain id and anchor contract are only claims: YOUR deployment
    file decides. The checks, in order, one line printed per check:

      deployment     the bundle names your deployment's chain and anchor contract
      digest         the reading's EIP-712 digest, recomputed, is the bundle's
      batch          the anchor contract holds the batch
      root           the anchored root is the bundle's root
      inclusion      the Merkle proof leads from the digest to that root
      device active  the registry knows the device, active at the reading's time
      signature      by the registered key, in the registered scheme
      anchor tx      the anchoring transaction is canonical and deep enough

    --on-chain also runs the contract's own ReadingAnchor.verifyReading and says
    whether both verdicts agree.

    Given a directory, every *.json in it is verified in one run (each batch,
    device and anchoring transaction read once, in JSON-RPC batch requests): one
    verdict line per file, then a summary.

    Exit status 0: valid (and, with --on-chain, both agree); for a directory, every
    file. 1: invalid, with the error's code and message. 2: usage error (e.g. no
    such bundle file, a directory without *.json).
    """
    if bundle != "-" and Path(bundle).is_dir():
        verify_directory(
            Path(bundle), rpc, deployment, min_confirmations=min_confirmations, on_chain=on_chain
        )
        return
    proof = _bundle_or_exit(bundle)
    chain, dep = open_deployment(rpc, deployment)
    reading = proof.reading
    console.print(
        f"bundle: {escape(reading.device_id)} seq {reading.seq} in batch {proof.batch_id} "
        f"on chain {proof.chain_id}; verifying against {escape(str(deployment))} at {escape(chain.rpc)}"
    )
    offline_error: VerificationError | None = None
    result: VerifiedReading | None = None
    try:  # the verifier's constructor checks the deployment too
        result = BundleVerifier(chain=chain, deployment=dep).verify(
            proof, min_confirmations=min_confirmations
        )
    except VerificationError as e:
        offline_error = e
    _print_checks(proof, result, offline_error)
    onchain_error = _check_on_chain(chain, dep, proof, min_confirmations, offline_error) if on_chain else None
    _print_verdict(result, offline_error, onchain_error)


def _bundle_or_exit(source: str) -> ProofBundle:
    """The bundle in ``source``; one that is not a bundle at all ends the command (exit 1)."""
    try:
        return _read_bundle(source)
    except VerificationError as e:  # not a bundle at all: no check ran
        console.print(f"{_FAIL} bundle         {escape(e.message)}")
        console.print(f"[bold red]INVALID[/] [dim]({e.code})[/]: {escape(e.message)}")
        raise typer.Exit(1) from e


def _check_on_chain(
    chain: Chain,
    dep: Deployment,
    proof: ProofBundle,
    min_confirmations: int,
    offline_error: VerificationError | None,
) -> VerificationError | None:
    """Run the contract's own verifyReading, print its verdict and whether it agrees with the
    offline one; a disagreement ends the command (exit 1). Returns the on-chain error, if any."""
    onchain_error: VerificationError | None = None
    try:
        BundleVerifier(chain=chain, deployment=dep).verify_on_chain(
            proof, min_confirmations=min_confirmations
        )
    except VerificationError as e:
        onchain_error = e
    console.print(
        f"on chain (ReadingAnchor.verifyReading): {_verdict_name(onchain_error)}"
        + (f": {escape(onchain_error.message)}" if onchain_error else "")
    )
    offline_kind = type(offline_error) if offline_error else None
    onchain_kind = type(onchain_error) if onchain_error else None
    if offline_kind is onchain_kind:
        console.print(
            f"[green]agree[/]: offline and on-chain verdicts are both {_verdict_name(offline_error)}"
        )
        return onchain_error
    console.print(
        f"[bold red]DISAGREE[/]: offline says {_verdict_name(offline_error)}, "
        f"on chain says {_verdict_name(onchain_error)}; report this bundle"
    )
    console.print(
        "[bold red]INVALID[/] [dim](verify.disagreement)[/]: the offline and on-chain verifiers disagree"
    )
    raise typer.Exit(1)


def _print_verdict(
    result: VerifiedReading | None,
    offline_error: VerificationError | None,
    onchain_error: VerificationError | None,
) -> None:
    """The last line: VALID, or INVALID with the error (exit 1)."""
    if offline_error is not None:
        console.print(f"[bold red]INVALID[/] [dim]({offline_error.code})[/]: {escape(offline_error.message)}")
        raise typer.Exit(1)
    if result is None or onchain_error is not None:  # both excluded above: they agree, offline passed
        raise typer.Exit(1)
    console.print(
        f"[bold green]VALID[/]: {escape(result.device_id)} seq {result.seq}, digest 0x{result.digest.hex()}, "
        f"anchored in batch {result.batch_id} at block {result.anchor_block} "
        f"({result.confirmations} confirmation(s))"
    )


# ---------------------------------------------------------------- a directory of bundles


def _read_directory(directory: Path) -> list[tuple[str, ProofBundle | VerificationError]]:
    """Every ``*.json`` of ``directory``, by name: its bundle, or why it is not one."""
    paths = sorted(directory.glob("*.json"))
    if not paths:
        raise typer.BadParameter(f"{directory} holds no *.json bundle file", param_hint="BUNDLE")
    out: list[tuple[str, ProofBundle | VerificationError]] = []
    for path in paths:
        try:
            out.append((path.name, ProofBundle.from_json(path.read_bytes())))
        except VerificationError as e:
            out.append((path.name, e))
        except OSError as e:
            raise typer.BadParameter(f"cannot read {path}: {e.strerror}", param_hint="BUNDLE") from e
    return out


def verify_directory(
    directory: Path, rpc: str, deployment: Path, *, min_confirmations: int, on_chain: bool
) -> None:
    """Verify every bundle file of ``directory`` in one run; one line per file, a summary, exit 1 if any
    fails (or, with ``on_chain``, any verdict differs from the contract's)."""
    files = _read_directory(directory)
    chain, dep = open_deployment(rpc, deployment)
    console.print(
        f"{len(files)} bundle file(s) in {escape(str(directory))}; verifying against "
        f"{escape(str(deployment))} at {escape(chain.rpc)}"
    )
    verifier = BundleVerifier(chain=chain, deployment=dep)
    bundles = [b for _, b in files if isinstance(b, ProofBundle)]
    verdicts = iter(verifier.verify_many(bundles, min_confirmations=min_confirmations))
    failed = disagreed = 0
    lines: list[str] = []
    for name, parsed in files:
        verdict: Verdict = next(verdicts) if isinstance(parsed, ProofBundle) else parsed
        failed += isinstance(verdict, VerificationError)
        if isinstance(parsed, ProofBundle) and on_chain:
            onchain = _on_chain_error(verifier, parsed, min_confirmations)
            if type(onchain) is not type(_error(verdict)):
                disagreed += 1
                lines.append(
                    f"{_FAIL} {escape(name)}: [bold red]DISAGREE[/]: offline says "
                    f"{_verdict_name(_error(verdict))}, on chain says {_verdict_name(onchain)}"
                )
        lines.append(_file_line(name, verdict))
        if len(lines) >= _PRINT_CHUNK:  # one print per chunk: rich's per-call cost is per line otherwise
            console.print("\n".join(lines))
            lines.clear()
    if lines:
        console.print("\n".join(lines))
    _print_summary(len(files), failed, disagreed, directory)


def _error(verdict: Verdict) -> VerificationError | None:
    return verdict if isinstance(verdict, VerificationError) else None


def _on_chain_error(
    verifier: BundleVerifier, bundle: ProofBundle, min_confirmations: int
) -> VerificationError | None:
    """The contract's own verdict (ReadingAnchor.verifyReading): None when it accepts the bundle."""
    try:
        verifier.verify_on_chain(bundle, min_confirmations=min_confirmations)
    except VerificationError as e:
        return e
    return None


def _file_line(name: str, verdict: Verdict) -> str:
    if isinstance(verdict, VerificationError):
        code = f"[dim]({verdict.code})[/]"
        return f"{_FAIL} {escape(name)}: [bold red]INVALID[/] {code}: {escape(verdict.message)}"
    return (
        f"{_PASS} {escape(name)}: valid: {escape(verdict.device_id)} seq {verdict.seq}, batch "
        f"{verdict.batch_id}, block {verdict.anchor_block} ({verdict.confirmations} confirmation(s))"
    )


def _print_summary(total: int, failed: int, disagreed: int, directory: Path) -> None:
    where = escape(str(directory))
    if disagreed:
        console.print(
            f"[bold red]INVALID[/] [dim](verify.disagreement)[/]: the offline and on-chain verifiers "
            f"disagree on {disagreed} of {total} bundle(s) in {where}; report them"
        )
        raise typer.Exit(1)
    if failed:
        console.print(
            f"[bold red]INVALID[/]: {failed} of {total} bundle(s) in {where} failed; {total - failed} valid"
        )
        raise typer.Exit(1)
    console.print(f"[bold green]VALID[/]: all {total} bundle(s) in {where} verified")
