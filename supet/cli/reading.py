"""``supet reading``: sign a reading as a device and submit it to a ledger; fetch a reading's proof bundle.

Both talk to a running ledger (``supet serve``) over its HTTP API only, the way a device or an
auditor's tooling does: ``submit`` signs a Reading v1 with the device SDK
(:class:`device_attestation.sdk.DeviceSigner`) under the EIP-712 domain the ledger announces at
``GET /v1/deployment`` (or the one a ``--deployment`` file gives, which then must agree) and posts
it to ``POST /v1/readings``; ``proof`` asks ``GET /v1/readings/{digest}/proof`` until the reading is
anchored and writes the bundle, which ``supet verify`` checks against the chain alone.

``submit`` prints the reading's digest alone on stdout (``DIGEST=$(supet reading submit ...)``);
what it did goes to stderr.

``proof`` reads as the device's owner (signed in with ``--key-file`` or ``$SUPET_PARTY_KEY``) or as
the device (``--device-key`` and ``--device-id``: a device-signed request); without either, only a
reading of a lot its holder disclosed is answered (issue 14, docs/access-policy.md).
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console

from contracts.deployment import Deployment
from device_attestation.keys import DeviceKey
from device_attestation.reading import Domain
from device_attestation.sdk import DeviceSigner
from supet.cli.common import KeyFileOpt
from supet.cli.ledger_reads import read_credentials
from supet_base.errors import SupetError

app = typer.Typer(
    help="Submit a device's signed reading to a ledger; fetch a reading's proof bundle.", no_args_is_help=True
)
err = Console(stderr=True, soft_wrap=True, highlight=False)

LedgerOpt = Annotated[
    str,
    typer.Option("--ledger", envvar="SUPET_LEDGER", help="Base URL of the ledger service (`supet serve`)."),
]


class LedgerRequestError(SupetError):
    """The ledger could not be reached, or refused or did not answer the request as expected."""

    code = "cli.ledger"


def _metric(text: str) -> tuple[str, int | float]:
    name, sep, raw = text.partition("=")
    if not sep or not name or not raw:
        raise typer.BadParameter(
            f"{text!r}: write a metric as NAME=VALUE (temp_c=4.2)", param_hint="--metric"
        )
    value: int | float
    try:
        value = int(raw)
    except ValueError:
        try:
            value = float(raw)
        except ValueError:
            raise typer.BadParameter(f"{text!r}: {raw!r} is not a number", param_hint="--metric") from None
    if not math.isfinite(value):
        raise typer.BadParameter(f"{text!r}: the value must be finite", param_hint="--metric")
    return name, value


def _get(client: httpx.Client, url: str, headers: dict[str, str] | None = None) -> httpx.Response:
    try:
        return client.get(url, headers=headers)
    except httpx.HTTPError as e:
        raise LedgerRequestError(f"cannot reach the ledger at {url}: {e}; is `supet serve` running?") from e


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError as e:
        raise LedgerRequestError(
            f"{response.request.url} answered {response.status_code} with a body that is not JSON; "
            "is --ledger the ledger service's URL?"
        ) from e


def _refusal(response: httpx.Response) -> str:
    body = _json(response)
    problem = body.get("error") if isinstance(body, dict) else None
    if isinstance(problem, dict):
        return f"{problem.get('code')}: {problem.get('message')}"
    return f"HTTP {response.status_code}: {body}"


def ledger_domain(client: httpx.Client, ledger: str) -> Domain:
    """The EIP-712 domain the ledger at ``ledger`` checks signatures under (``GET /v1/deployment``)."""
    response = _get(client, f"{ledger}/v1/deployment")
    if response.status_code != 200:
        raise LedgerRequestError(f"the ledger did not give its deployment: {_refusal(response)}")
    body = _json(response)
    return Domain(chain_id=int(body["chain_id"]), verifying_contract=str(body["contracts"]["ReadingAnchor"]))


def _domain(client: httpx.Client, ledger: str, deployment: Path | None) -> Domain:
    announced = ledger_domain(client, ledger)
    if deployment is None:
        return announced
    dep = Deployment.load(deployment)
    pinned = Domain(chain_id=dep.chain_id, verifying_contract=dep.address("ReadingAnchor"))
    if pinned != announced:
        raise LedgerRequestError(
            f"the ledger at {ledger} anchors on chain {announced.chain_id} at "
            f"{announced.verifying_contract}, "
            f"but {deployment} says chain {pinned.chain_id} at {pinned.verifying_contract}: the device "
            "would sign for the wrong anchor; point --ledger and --deployment at the same deployment"
        )
    return pinned


@app.command("submit")
def submit(
    device_key: Annotated[Path, typer.Option("--device-key", help="The device's private key (PEM).")],
    device_id: Annotated[str, typer.Option("--device-id", help="The device serial it was enrolled under.")],
    seq: Annotated[
        int,
        typer.Option(
            "--seq",
            min=0,
            help="The reading's sequence number: it must grow with each reading of the device "
            "(the ledger refuses a reused one with other content as equivocation).",
        ),
    ],
    metric: Annotated[
        list[str], typer.Option("--metric", help="NAME=VALUE, repeatable (temp_c=4.2 --metric rh=55).")
    ],
    ledger: LedgerOpt,
    lot: Annotated[str | None, typer.Option("--lot", help="The lot the reading belongs to.")] = None,
    ts_ms: Annotated[
        int | None, typer.Option("--ts-ms", min=0, help="The reading's time, Unix ms (default: now).")
    ] = None,
    deployment: Annotated[
        Path | None,
        typer.Option(
            "--deployment",
            help="Sign for this deployment's anchor, and refuse a ledger that anchors elsewhere "
            "(default: the domain the ledger announces).",
        ),
    ] = None,
    password_env: Annotated[
        str | None,
        typer.Option("--password-env", help="Name of the environment variable holding the key's password."),
    ] = None,
) -> None:
    """Sign one reading with the device key and POST it to the ledger; print its digest on stdout."""
    metrics = dict(_metric(m) for m in metric)
    password = os.environ.get(password_env) if password_env else None
    if password_env and not password:
        raise typer.BadParameter(f"${password_env} is not set or empty", param_hint="--password-env")
    key = DeviceKey.load(device_key, password=password)
    base = ledger.rstrip("/")
    with httpx.Client(timeout=30.0) as client:
        domain = _domain(client, base, deployment)
        signer = DeviceSigner(device_id=device_id, key=key, domain=domain, start_seq=seq)
        submission = signer.sign(metrics, ts_ms=ts_ms, lot_id=lot)
        try:
            response = client.post(f"{base}/v1/readings", json=submission.to_json_obj())
        except httpx.HTTPError as e:
            raise LedgerRequestError(f"cannot reach the ledger at {base}: {e}") from e
    if response.status_code != 201:
        raise LedgerRequestError(f"the ledger refused the reading: {_refusal(response)}")
    receipt = _json(response)
    if receipt.get("digest") != "0x" + submission.digest.hex():
        raise LedgerRequestError(
            f"the ledger's receipt names digest {receipt.get('digest')}, not the signed reading's "
            f"0x{submission.digest.hex()}: it computes another domain; do not trust this ledger's receipts"
        )
    err.print(f"{device_id} seq {seq} -> {base}: {receipt.get('status')}")
    typer.echo(receipt["digest"])


@app.command("proof")
def proof(
    digest: Annotated[str, typer.Argument(help="The reading's digest (0x + 64 hex digits).")],
    ledger: LedgerOpt,
    out: Annotated[Path, typer.Option("--out", help="Where to write the proof bundle (JSON).")] = Path(
        "bundle.json"
    ),
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout", min=0, help="Seconds to wait for the reading to be anchored (0: ask once)."
        ),
    ] = 60.0,
    key_file: KeyFileOpt = None,
    device_key: Annotated[
        Path | None,
        typer.Option("--device-key", help="Read as the device: its private key (PEM); with --device-id."),
    ] = None,
    device_id: Annotated[
        str | None, typer.Option("--device-id", help="Read as the device: the serial it was enrolled under.")
    ] = None,
) -> None:
    """Write the proof bundle of an anchored reading, waiting until its batch is anchored.

    Reads as the device's owner (--key-file, default $SUPET_PARTY_KEY) or as the device
    (--device-key and --device-id); a reading is not public unless its lot was disclosed.
    """
    base = ledger.rstrip("/")
    deadline = time.monotonic() + timeout
    path = f"/v1/readings/{digest}/proof"
    with httpx.Client(timeout=30.0) as client:
        credentials = read_credentials(
            client,
            base,
            domain=lambda: ledger_domain(client, base),
            device_key=device_key,
            device_id=device_id,
            key_file=key_file,
        )
        while True:
            response = _get(client, base + path, credentials(path))
            if response.status_code == 200:
                break
            body = _json(response)
            problem = body.get("error", {}) if isinstance(body, dict) else {}
            if response.status_code != 404 or problem.get("code") != "proof.pending":
                raise LedgerRequestError(f"no proof for {digest}: {_refusal(response)}")
            if time.monotonic() >= deadline:
                raise LedgerRequestError(
                    f"{digest} is still {body.get('status')} after {timeout:g} s (expected batch "
                    f"{body.get('expected_batch')}): is the ledger's anchoring worker running? "
                    "`GET /readyz` shows `anchoring_error`; retry with a longer --timeout",
                    code="cli.proof_pending",
                )
            time.sleep(0.5)
    bundle = _json(response)
    out.write_text(json.dumps(bundle, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    err.print(f"proof bundle of {digest} -> {out}")
