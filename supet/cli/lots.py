"""``supet lot``: lots and their custody, lineage, quality certification (specs: :mod:`supet.cli.specs`).

Lots (the LotRegistry): ``open`` (the GTIN-14's check digit is checked here first, then by the
contract), ``split``, ``transform`` (lineage: lots the party holds consumed, in part or whole, into
new lots it opens), the two-sided custody transfer (``transfer`` proposes, the recipient
``accept``\\s or ``reject``\\s, the proposer may ``cancel``) and ``show`` (with what the lot was made
from and what was made of it).

Certification: ``lot certify --package FILE`` submits a certification package, a JSON file holding
the lot's QC readings per anchored batch with their signatures and the batch's multiproof (see
:func:`package_json` / :func:`load_package`); it previews the verdict with an ``eth_call`` first,
then sends the transaction unless ``--dry-run``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from eth_utils import is_address, to_checksum_address
from rich.console import Console

from contracts.certification_package import PackageError, load_package, package_json
from contracts.certifier import (
    Certificate,
    CertificateStatus,
    QualityCertifierClient,
)
from contracts.chain import Chain
from contracts.deployment import Deployment
from contracts.lots import (
    MAX_TRANSFORM_INPUTS,
    MAX_TRANSFORM_OUTPUTS,
    Lot,
    LotRegistryClient,
    TransformInput,
    TransformOutput,
    lot_id_hash,
    lot_key,
    parse_gtin,
)
from supet.cli.common import (
    DeploymentOpt,
    GtinOpt,
    KeyFileOpt,
    RpcOpt,
    check_gtin,
    open_deployment,
    utc_seconds,
)
from supet_base.errors import SupetError
from supet_base.parties import load_party_account

__all__ = [
    "load_package",
    "lot_app",
    "package_json",
    "parse_transform_input",
    "parse_transform_output",
]

lot_app = typer.Typer(
    help="Lots: open, split, transform, custody transfers (propose, accept, reject, cancel), show, certify.",
    no_args_is_help=True,
)
console = Console(soft_wrap=True)


class LotNotFound(SupetError):
    """No such lot, or no spec for a product."""

    code = "lot.unknown"


LotIdArg = Annotated[
    str, typer.Argument(help="The lot id (text; on chain it is keyed under its issuer, see --issuer).")
]
IssuerOpt = Annotated[
    str | None,
    typer.Option(
        "--issuer",
        help="Who named the lot (the supplier who opened it, or the custodian who split it off): needed "
        "only when several parties have a lot with this id.",
    ),
]


# ---------------------------------------------------------------- helpers


def _issuer(text: str | None) -> str | None:
    return None if text is None else _address(text, "--issuer")


def _clients(rpc: str, deployment: Path) -> tuple[Chain, Deployment, LotRegistryClient]:
    chain, dep = open_deployment(rpc, deployment)
    return chain, dep, LotRegistryClient.from_deployment(chain, dep)


def _time_ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


def _parse_child(text: str) -> tuple[str, int]:
    child, sep, qty = text.rpartition("=")
    if not sep or not child or not qty.isdigit() or int(qty) == 0:
        raise typer.BadParameter(f"{text!r} is not ID=QUANTITY (a positive integer)", param_hint="--child")
    return child, int(qty)


_KEY = re.compile(r"^0x[0-9a-fA-F]{64}$")


def _unit(text: str, hint: str) -> str:
    if not text.isascii() or not 0 < len(text) <= 32:
        raise typer.BadParameter(f"unit {text!r} is not 1..32 ASCII characters", param_hint=hint)
    return text


def parse_transform_input(text: str) -> tuple[str | bytes, int, str | None]:
    """``LOT:QTY`` or ``LOT:QTY:UNIT`` (split from the right, so a lot id may hold ``:``; ``LOT`` may be a
    0x key): the lot, the quantity consumed (a positive integer) and the declared unit, or None to use
    the lot's own."""
    parts = text.rsplit(":", 2)
    unit: str | None = None
    if len(parts) == 3 and not parts[2].isdigit():
        lot, qty, unit = parts
    else:
        lot, _, qty = text.rpartition(":")
    if not lot or not qty.isascii() or not qty.isdigit() or int(qty) == 0:
        raise typer.BadParameter(
            f"{text!r} is not LOT:QUANTITY[:UNIT] (a positive integer quantity)", param_hint="--input"
        )
    if unit is not None:
        _unit(unit, "--input")
    return (bytes.fromhex(lot[2:]) if _KEY.match(lot) else lot), int(qty), unit


def parse_transform_output(text: str) -> tuple[str, str, int, str]:
    """``LOT:GTIN:QTY:UNIT`` (split from the right, so a lot id may hold ``:``): the new lot's id, its
    GTIN-14 (check digit checked here), quantity (a positive integer) and unit."""
    parts = text.rsplit(":", 3)
    if (
        len(parts) != 4
        or not parts[0]
        or not parts[2].isascii()
        or not parts[2].isdigit()
        or int(parts[2]) == 0
    ):
        raise typer.BadParameter(
            f"{text!r} is not LOT:GTIN:QUANTITY:UNIT (a positive integer quantity)", param_hint="--output"
        )
    lot, gtin, qty, unit = parts
    try:
        parse_gtin(gtin)
    except SupetError as e:
        raise typer.BadParameter(f"{text!r}: {e.message}", param_hint="--output") from None
    return lot, gtin, int(qty), _unit(unit, "--output")


def _address(text: str, hint: str) -> str:
    if not is_address(text):
        raise typer.BadParameter(
            f"{text!r} is not an Ethereum address (0x and 40 hex digits)", param_hint=hint
        )
    return to_checksum_address(text)


# ---------------------------------------------------------------- certification packages


def _print_certificate(cert: Certificate) -> None:
    if cert.status is CertificateStatus.CERTIFIED:
        console.print(f"  certified against spec version {cert.spec_version} from {cert.samples} samples")
    elif cert.status is CertificateStatus.REJECTED:
        console.print(f"  rejected against spec version {cert.spec_version}: {cert.explain()}")
        if cert.evidence != bytes(32):
            console.print(f"  evidence: reading 0x{cert.evidence.hex()}")
    else:
        console.print("  no certificate")


# ---------------------------------------------------------------- lots


@lot_app.command("open")
def open_lot(
    lot_id: LotIdArg,
    gtin: GtinOpt,
    quantity: Annotated[int, typer.Option("--quantity", min=1, help="How much the lot holds (in --unit).")],
    unit: Annotated[
        str, typer.Option("--unit", help="Unit of the quantity (1..32 ASCII characters, e.g. kg).")
    ],
    produced_from: Annotated[int, typer.Option("--from", min=0, help="Start of production (Unix ms).")],
    produced_to: Annotated[int, typer.Option("--to", min=0, help="End of production (Unix ms).")],
    rpc: RpcOpt,
    deployment: DeploymentOpt,
    key_file: KeyFileOpt = None,
) -> None:
    """Open a lot, as its supplier (the party must be admitted to open lots)."""
    check_gtin(gtin)
    if not unit.isascii() or not 0 < len(unit) <= 32:
        raise typer.BadParameter(f"{unit!r} is not 1..32 ASCII characters", param_hint="--unit")
    if produced_to < produced_from:
        raise typer.BadParameter("production ends (--to) before it starts (--from)", param_hint="--to")
    _, _, lots = _clients(rpc, deployment)
    party = load_party_account(key_file)
    result = lots.open_lot(
        party,
        lot_id=lot_id,
        gtin=gtin,
        quantity=quantity,
        unit=unit,
        produced_from_ms=produced_from,
        produced_to_ms=produced_to,
    )
    console.print(
        f"opened lot {lot_id} (key 0x{lot_key(lot_id, party.address).hex()}): {quantity} {unit} "
        f"of GTIN {gtin}, "
        f"supplier {party.address}, in tx {result.tx_hash}"
    )


@lot_app.command("split")
def split(
    lot_id: LotIdArg,
    child: Annotated[
        list[str],
        typer.Option("--child", help="A child lot as ID=QUANTITY (repeat for several, in order)."),
    ],
    rpc: RpcOpt,
    deployment: DeploymentOpt,
    key_file: KeyFileOpt = None,
    issuer: IssuerOpt = None,
) -> None:
    """Split child lots off a lot, as its custodian (while no transfer is pending); the children are
    keyed under the custodian."""
    children: dict[str, int] = {}
    for text in child:
        cid, qty = _parse_child(text)
        if cid in children:
            raise typer.BadParameter(f"child {cid!r} is given twice", param_hint="--child")
        children[cid] = qty
    _, _, lots = _clients(rpc, deployment)
    key = lots.key(lot_id, issuer=_issuer(issuer))
    result = lots.split_lot(load_party_account(key_file), key, children)
    remaining = lots.lot(key).remaining
    parts = ", ".join(f"{c} ({q})" for c, q in children.items())
    console.print(f"split {parts} off {lot_id}, which keeps {remaining}, in tx {result.tx_hash}")


@lot_app.command("transform")
def transform(
    inputs: Annotated[
        list[str],
        typer.Option(
            "--input",
            help="An input lot you hold and the quantity consumed, as LOT:QTY or LOT:QTY:UNIT (the unit, "
            "when given, must be the lot's own; LOT may be a 0x key). Repeat for each input.",
        ),
    ],
    outputs: Annotated[
        list[str],
        typer.Option(
            "--output",
            help="A lot to open from the inputs, as LOT:GTIN:QTY:UNIT. Repeat for each output.",
        ),
    ],
    produced_from: Annotated[int, typer.Option("--from", min=0, help="Start of production (Unix ms).")],
    produced_to: Annotated[int, typer.Option("--to", min=0, help="End of production (Unix ms).")],
    rpc: RpcOpt,
    deployment: DeploymentOpt,
    key_file: KeyFileOpt = None,
) -> None:
    """Record a transformation: consume lots you hold (in part or whole) into new lots you open (the
    party must be admitted to open lots and be the custodian of every input)."""
    ins = [parse_transform_input(t) for t in inputs]
    outs = [parse_transform_output(t) for t in outputs]
    if not 0 < len(ins) <= MAX_TRANSFORM_INPUTS:
        raise typer.BadParameter(f"give 1 to {MAX_TRANSFORM_INPUTS} inputs", param_hint="--input")
    if not 0 < len(outs) <= MAX_TRANSFORM_OUTPUTS:
        raise typer.BadParameter(f"give 1 to {MAX_TRANSFORM_OUTPUTS} outputs", param_hint="--output")
    if len({o[0] for o in outs}) != len(outs):
        raise typer.BadParameter("an output lot id is given twice", param_hint="--output")
    if produced_to < produced_from:
        raise typer.BadParameter("production ends (--to) before it starts (--from)", param_hint="--to")
    _, _, lots = _clients(rpc, deployment)
    keys = [lots.key(lot) for lot, _, _ in ins]
    if len(set(keys)) != len(keys):
        raise typer.BadParameter("an input lot is given twice", param_hint="--input")
    held = {k: lots.lot(k) for k in keys}
    party = load_party_account(key_file)
    done = lots.transform(
        party,
        [
            TransformInput(lot=k, quantity=q, unit=held[k].unit if u is None else u)
            for k, (_, q, u) in zip(keys, ins, strict=True)
        ],
        [
            TransformOutput(
                lot_id=lot,
                gtin=gtin,
                quantity=q,
                unit=unit,
                produced_from_ms=produced_from,
                produced_to_ms=produced_to,
            )
            for lot, gtin, q, unit in outs
        ],
    )
    consumed = ", ".join(
        f"{q} {held[k].unit} of {held[k].lot_id}" for k, (_, q, _) in zip(keys, ins, strict=True)
    )
    made = ", ".join(
        f"{lot} ({q} {unit}, key 0x{k.hex()})"
        for (lot, _, q, unit), k in zip(outs, done.outputs, strict=True)
    )
    console.print(
        f"transformation {done.transformation_id}: consumed {consumed} into {made}, in tx {done.tx.tx_hash}"
    )


@lot_app.command("transfer")
def transfer(
    lot_id: LotIdArg,
    to: Annotated[str, typer.Option("--to", help="The proposed next custodian's address.")],
    rpc: RpcOpt,
    deployment: DeploymentOpt,
    key_file: KeyFileOpt = None,
    issuer: IssuerOpt = None,
) -> None:
    """Propose handing a lot over (its custodian); the recipient accepts or rejects."""
    recipient = _address(to, "--to")
    _, _, lots = _clients(rpc, deployment)
    result = lots.propose_transfer(load_party_account(key_file), lot_id, recipient, issuer=_issuer(issuer))
    console.print(f"proposed transfer of {lot_id} to {recipient} in tx {result.tx_hash}")


@lot_app.command("accept")
def accept(
    lot_id: LotIdArg,
    rpc: RpcOpt,
    deployment: DeploymentOpt,
    key_file: KeyFileOpt = None,
    issuer: IssuerOpt = None,
) -> None:
    """Accept a proposed transfer, as its recipient (who must be admitted to take custody)."""
    _, _, lots = _clients(rpc, deployment)
    party = load_party_account(key_file)
    result = lots.accept_transfer(party, lot_id, issuer=_issuer(issuer))
    console.print(f"accepted {lot_id}: custodian is now {party.address} (tx {result.tx_hash})")


@lot_app.command("reject")
def reject(
    lot_id: LotIdArg,
    rpc: RpcOpt,
    deployment: DeploymentOpt,
    key_file: KeyFileOpt = None,
    issuer: IssuerOpt = None,
) -> None:
    """Reject a proposed transfer, as its recipient; custody stays where it was."""
    _, _, lots = _clients(rpc, deployment)
    result = lots.reject_transfer(load_party_account(key_file), lot_id, issuer=_issuer(issuer))
    console.print(f"rejected the transfer of {lot_id} (tx {result.tx_hash})")


@lot_app.command("cancel")
def cancel(
    lot_id: LotIdArg,
    rpc: RpcOpt,
    deployment: DeploymentOpt,
    key_file: KeyFileOpt = None,
    issuer: IssuerOpt = None,
) -> None:
    """Withdraw a proposed transfer, as its proposer."""
    _, _, lots = _clients(rpc, deployment)
    result = lots.cancel_transfer(load_party_account(key_file), lot_id, issuer=_issuer(issuer))
    console.print(f"cancelled the transfer of {lot_id} (tx {result.tx_hash})")


@lot_app.command("show")
def show(lot_id: LotIdArg, rpc: RpcOpt, deployment: DeploymentOpt, issuer: IssuerOpt = None) -> None:
    """Show a lot: record, custodian, pending transfer, full custody chain, children, certificate."""
    chain, dep, lots = _clients(rpc, deployment)
    if not lots.exists(lot_id, issuer=_issuer(issuer)):
        raise LotNotFound(f"{lot_id}: no such lot (open it with `supet lot open`)")
    lot = lots.lot(lot_id, issuer=_issuer(issuer))
    lot_id_key = lot.key
    names: dict[bytes, str] = {lot.key: lot.lot_id}

    def name(key: bytes) -> str:
        if key not in names:
            names[key] = lots.lot(key).lot_id
        return names[key]

    console.print(f"lot {lot.lot_id} (key 0x{lot.key.hex()}): {lot.status.name.lower()}")
    console.print(f"  issued by {lots.issuer(lot_id_key)}")
    console.print(f"  GTIN {lot.gtin_text}, {lot.remaining} of {lot.quantity} {lot.unit} remaining")
    console.print(f"  produced {_time_ms(lot.produced_from_ms)} .. {_time_ms(lot.produced_to_ms)}")
    console.print(f"  supplier {lot.supplier}, opened {utc_seconds(lot.opened_at)}")
    if lot.parent is not None:
        console.print(f"  split from {name(lot.parent)}")
    console.print(f"  custodian {lot.custodian}")
    pending = lots.pending_transfer(lot_id_key)
    if pending is None:
        console.print("  pending transfer: none")
    else:
        console.print(
            f"  pending transfer: {pending.from_} -> {pending.to} since {utc_seconds(pending.proposed_at)}"
        )
    console.print("  custody chain:")
    for entry in lots.full_custody_chain(lot_id_key):
        console.print(f"    {utc_seconds(entry.since)}  {entry.custodian}  ({name(entry.lot_key)})")
    kids = lots.children(lot_id_key)
    console.print(f"  children: {', '.join(name(k) for k in kids) if kids else 'none'}")
    _print_lineage(lots, lot, name)
    certifier = QualityCertifierClient.from_deployment(chain, dep)
    _print_certificate(certifier.certificate(lot_id_key))


def _print_lineage(lots: LotRegistryClient, lot: Lot, name: Callable[[bytes], str]) -> None:
    """What the lot was made from (the transformation that opened it) and what was made of it."""
    if lot.produced_by:
        t = lots.transformation(lot.produced_by)
        made_from = ", ".join(f"{q} {lots.lot(k).unit} of {name(k)}" for k, q in t.inputs)
        console.print(f"  made from (transformation {t.transformation_id}, {utc_seconds(t.at)}): {made_from}")
    ids = lots.consumed_by(lot.key)
    if not ids:
        console.print("  consumed: none")
        return
    console.print(f"  consumed: {lot.consumed} {lot.unit}")
    for tid in ids:
        t = lots.transformation(tid)
        quantity = next(q for k, q in t.inputs if k == lot.key)
        into = ", ".join(name(k) for k in t.outputs)
        console.print(f"    {utc_seconds(t.at)}  {quantity} {lot.unit} into {into} (transformation {tid})")


@lot_app.command("certify")
def certify(
    lot_id: LotIdArg,
    package: Annotated[
        Path,
        typer.Option(
            "--package",
            help="Certification package (JSON): the lot's QC readings per anchored batch, with "
            "signatures and each batch's multiproof.",
        ),
    ],
    rpc: RpcOpt,
    deployment: DeploymentOpt,
    key_file: KeyFileOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only preview the verdict (eth_call); record nothing.")
    ] = False,
    issuer: IssuerOpt = None,
) -> None:
    """Judge a lot against its product's latest spec from its QC readings, and record the verdict."""
    named, batches = load_package(package)
    if named is not None and named != lot_id:
        raise PackageError(f"{package} is the package of lot {named!r}, not of {lot_id!r}")
    expected = lot_id_hash(lot_id)
    for b in batches:
        for j, r in enumerate(b[1]):
            if r[3] != expected:
                raise PackageError(
                    f"reading {j} of batch {b[0]} is of lot 0x{r[3].hex()}, not of {lot_id} "
                    f"(0x{expected.hex()})"
                )
    chain, dep = open_deployment(rpc, deployment)
    certifier = QualityCertifierClient.from_deployment(chain, dep)
    key = certifier.lots.key(lot_id, issuer=_issuer(issuer))
    party = load_party_account(key_file)
    samples = sum(len(b[1]) for b in batches)
    verdict = certifier.preview(party.address, key, batches)
    console.print(
        f"preview: lot {lot_id} would be {verdict.name.lower()} "
        f"({samples} readings in {len(batches)} batches)"
    )
    if dry_run:
        console.print("dry run: nothing sent")
        return
    result = certifier.certify_lot(party, key, batches)
    cert = certifier.certificate(key)
    console.print(f"lot {lot_id}: {cert.status.name.lower()} (tx {result.tx_hash})")
    _print_certificate(cert)


# ``lot recall`` (issue 15) lives with ``supet trace``; registered here, after every name it imports.
from supet.cli.trace import recall as _recall  # noqa: E402

lot_app.command("recall")(_recall)
