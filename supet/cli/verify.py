"""``supet verify``: an auditor checks a reading's proof bundle against the chain alone."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from auditor.bundle import ProofBundle
from auditor.errors import CHECKS, VerificationError
from auditor.verify import BundleVerifier, VerifiedReading
from contracts.chain import Chain
from contracts.deployment import Deployment
from supet.cli.common import DeploymentOpt, RpcOpt, open_deployment

console = Console(soft_wrap=True, highlight=False)

_PASS = "[green]✓[/]"
_FAIL = "[bold red]✗[/]"
_SKIP = "[dim]·[/]"


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
            metavar="BUNDLE.json",
            help="The proof bundle (Reading v1 section 6), or - to read it from standard input.",
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

    Exit status 0: valid (and, with --on-chain, both agree). 1: invalid, with the
    error's code and message. 2: usage error (e.g. no such bundle file).
    """
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
