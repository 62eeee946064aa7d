"""``supet credit``: a bank's side of sealed credit records, from its own node (no service involved);
and the oracle's re-rating pass over a ledger's database (``rerate``).

The chain holds each factory's credit record as a salted commitment; the figures reach a consented bank
encrypted to its account key (``CreditEnvelope`` logs, addressed by consent id: the chain never names
the bank). ``register-key`` registers the bank's public key once, ``records`` opens and verifies every
record sealed for the bank (under the consent ids of the openings it holds, ``--consents``, as
``GET /v1/bank/factories`` serves them; without them, every envelope is tried with the bank's key),
``verify`` checks a
record the bank holds (as the service served it, or from a file) against the commitment on chain,
naming the field that differs, and ``finance`` finances an offered part with the oracle's credit-line
statement the ledger signed for the bank (issue 15).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from contracts.credit import CreditRegistryClient
from contracts.credit_bank import read_bank_records, register_bank_key, verify_record
from contracts.credit_consent import ConsentOpening, InvalidConsentOpening
from contracts.credit_record import CreditOpening, InvalidOpening
from supet.cli.common import DeploymentOpt, KeyFileOpt, RpcOpt, open_deployment
from supet_base.parties import load_party_account

app = typer.Typer(
    help="Sealed credit records: a bank registers its key, reads its records from its node, verifies one.",
    no_args_is_help=True,
)
console = Console(soft_wrap=True)


def _client(rpc: str, deployment: Path) -> CreditRegistryClient:
    chain, dep = open_deployment(rpc, deployment)
    return CreditRegistryClient.from_deployment(chain, dep)


def load_opening(path: Path) -> CreditOpening:
    """A held record from a JSON file: an opening, a served record (its ``opening``), or a bank query's
    answer (its ``current`` record)."""
    try:
        obj: Any = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise InvalidOpening(f"cannot read {path}: {e}") from e
    if isinstance(obj, dict) and isinstance(obj.get("current"), dict):
        obj = obj["current"]
    if isinstance(obj, dict) and isinstance(obj.get("opening"), dict):
        obj = obj["opening"]
    if not isinstance(obj, dict):
        raise InvalidOpening(f"{path} holds no credit record opening")
    return CreditOpening.from_json_obj(obj)


def load_consents(path: Path) -> list[ConsentOpening]:
    """The consent openings a bank holds, from a JSON file: ``GET /v1/bank/factories``'s answer (each
    factory's ``consents``), a list of openings, or one opening."""
    try:
        obj: Any = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise InvalidConsentOpening(f"cannot read {path}: {e}") from e
    if isinstance(obj, dict) and isinstance(obj.get("factories"), list):
        obj = [c for f in obj["factories"] if isinstance(f, dict) for c in f.get("consents") or []]
    if isinstance(obj, dict):
        obj = [obj]
    if not isinstance(obj, list) or not all(isinstance(c, dict) for c in obj):
        raise InvalidConsentOpening(f"{path} holds no consent openings (factory, bank, salt)")
    return [ConsentOpening.from_json_obj(c) for c in obj]


@app.command("register-key")
def register_key(rpc: RpcOpt, deployment: DeploymentOpt, key_file: KeyFileOpt = None) -> None:
    """Register the bank's own account public key, to which its envelopes are encrypted."""
    client = _client(rpc, deployment)
    bank = load_party_account(key_file)
    result = register_bank_key(client, bank)
    console.print(f"registered the envelope key of {bank.address} (tx {result.tx_hash})")


@app.command("records")
def records(
    rpc: RpcOpt,
    deployment: DeploymentOpt,
    key_file: KeyFileOpt = None,
    factory: Annotated[str | None, typer.Option(help="Only this factory's records.")] = None,
    consents: Annotated[
        Path | None,
        typer.Option(
            help="The consent openings the bank holds (GET /v1/bank/factories saved as JSON): only the "
            "envelopes under their ids are read, and each is reported. Without it every envelope on "
            "chain is tried with the bank's key."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the openings as JSON.")] = False,
) -> None:
    """Open and verify every credit record sealed for the bank, read from the node alone."""
    client = _client(rpc, deployment)
    bank = load_party_account(key_file)
    held = load_consents(consents) if consents is not None else None
    found = read_bank_records(client, bytes(bank.key), consents=held, factory=factory)
    if as_json:
        out = [
            {"opening": r.opening.to_json_obj() if r.opening else None, "problem": r.problem} for r in found
        ]
        typer.echo(json.dumps(out, indent=2))
        return
    if not found:
        console.print(f"no credit record is sealed for {bank.address}")
    for r in found:
        o, head = r.opening, f"{r.record.factory} record {r.record.index}"
        if o is None:
            console.print(f"[red]FAIL[/] {head}: {r.problem}")
            continue
        console.print(
            f"[green]ok[/] {head}: grade {o.grade_name}, PD {o.pd * 100:.2f}%, limit "
            f"{o.limit / 100:,.2f} {o.currency}, valid until {o.valid_until}; verified against "
            f"0x{r.record.record_commitment.hex()}"
        )


@app.command("verify")
def verify(
    record_file: Annotated[
        Path, typer.Argument(help="The record held: an opening, or the service's answer.")
    ],
    rpc: RpcOpt,
    deployment: DeploymentOpt,
    key_file: Annotated[
        Path | None,
        typer.Option(
            "--key-file", help="The bank's key: names a differing hidden field from its own envelope."
        ),
    ] = None,
) -> None:
    """Check a credit record the bank holds against its commitment on chain; a differing field is named."""
    client = _client(rpc, deployment)
    opening = load_opening(record_file)
    bank_key = bytes(load_party_account(key_file).key) if key_file is not None else None
    record = verify_record(client, opening, bank_key=bank_key)
    console.print(
        f"VERIFIED: record {record.index} of {record.factory} (oracle {record.oracle}) opens commitment "
        f"0x{record.record_commitment.hex()}: grade {opening.grade_name}, PD {opening.pd * 100:.2f}%, "
        f"limit {opening.limit / 100:,.2f} {opening.currency}"
    )


@app.command("rerate")
def rerate(
    rpc: RpcOpt,
    deployment: DeploymentOpt,
    key_file: KeyFileOpt = None,
    database: Annotated[
        str | None,
        typer.Option("--database", help="The ledger's database URL (default: $SUPET_DATABASE_URL)."),
    ] = None,
    factory: Annotated[
        str | None, typer.Option("--factory", help="Only this factory (default: every factory rated here).")
    ] = None,
    order_terms: Annotated[
        Path | None,
        typer.Option(
            "--order-terms", help="The suppliers' openings of their orders' terms (JSON list), for profiles."
        ),
    ] = None,
    renew_before_days: Annotated[
        float, typer.Option("--renew-before-days", help="Renew a record expiring within this many days.")
    ] = 7.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the pass's report as JSON.")] = False,
) -> None:
    """One re-rating pass as the analytics oracle (--key-file): profiles refreshed from newly anchored
    readings, superseding records published where the rating moved or the record is about to expire."""
    import os

    from contracts.order_terms import read_openings
    from ledger_service.credit_desk.desk import FinanceDesk
    from ledger_service.credit_desk.rerating import Rerater
    from ledger_service.store.engine import make_engine

    url = database or os.environ.get("SUPET_DATABASE_URL")
    if not url:
        raise typer.BadParameter("give --database or set SUPET_DATABASE_URL")
    chain, dep = open_deployment(rpc, deployment)
    oracle = load_party_account(key_file)
    desk = FinanceDesk(chain=chain, deployment=dep, engine=make_engine(url), anchor_signer=oracle)
    rerater = Rerater(
        desk,
        oracle,
        order_terms=read_openings(order_terms) if order_terms is not None else [],
        renew_before_s=int(renew_before_days * 86_400),
    )
    report = rerater.run([factory] if factory else None)
    if as_json:
        typer.echo(json.dumps(report.to_json_obj(), indent=2))
    else:
        for o in report.outcomes:
            grades = f" ({o.grade_before} -> {o.grade_after})" if o.grade_after else ""
            index = f", record {o.record_index}" if o.action == "published" else ""
            console.print(f"{o.factory}: {o.action}{grades}{index}{': ' + o.detail if o.detail else ''}")
        console.print(
            f"{len(report.outcomes)} factories, {len(report.published)} records published, "
            f"{report.seconds:.2f} s"
        )
    if any(o.action == "failed" for o in report.outcomes):
        raise typer.Exit(1)


@app.command("finance")
def finance(
    rpc: RpcOpt,
    deployment: DeploymentOpt,
    part: Annotated[int, typer.Argument(help="The part offered to the bank.")],
    price: Annotated[int, typer.Option(help="What the bank pays the holder (token units, fen for tCNY).")],
    line: Annotated[
        Path,
        typer.Option(
            help="The oracle's credit-line statement for this bank and part: the ledger's answer to POST "
            "/v1/bank/receivables/parts/{part}/line saved as JSON (or its `attestation`)."
        ),
    ],
    key_file: KeyFileOpt = None,
) -> None:
    """Finance an offered part from the bank's own node, within the seller's credit line (issue 15); the
    bank approves the Receivables contract for the price first."""
    from contracts.credit_line import CreditLineError, LineAttestation
    from contracts.receivables import ReceivablesClient

    chain, dep = open_deployment(rpc, deployment)
    bank = load_party_account(key_file)
    try:
        obj: Any = json.loads(line.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CreditLineError(f"cannot read {line}: {e}") from e
    attestation = LineAttestation.from_json_obj(obj.get("attestation", obj) if isinstance(obj, dict) else obj)
    if attestation.line.bank != bank.address or attestation.line.part_id != part:
        raise CreditLineError(
            f"{line} is a statement for bank {attestation.line.bank} and part {attestation.line.part_id}, "
            f"not {bank.address} and {part}: ask the ledger for this part's"
        )
    rc = ReceivablesClient.from_deployment(chain, dep)
    result = rc.finance(bank, part, price, attestation)
    seller = attestation.line.factory
    console.print(
        f"financed part {part} at {price / 100:,.2f} (tx {result.tx_hash}); {seller}'s outstanding financed "
        f"amount is now {rc.outstanding_of(seller) / 100:,.2f}"
    )
