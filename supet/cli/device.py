"""``supet device``: device keys, CSRs, enrollment and revocation."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from cryptography.hazmat.primitives import serialization
from rich.console import Console

from contracts.enrollment import enroll_with_device_key
from contracts.registry import DeviceRegistryClient
from device_attestation.birth import BirthAttestation, birth_path
from device_attestation.certificates import make_device_csr
from device_attestation.keys import DeviceKey, parse_scheme
from supet.cli.common import DeploymentOpt, KeyFileOpt, RpcOpt, open_deployment
from supet.files import load_certificate
from supet_base.parties import load_party_account

app = typer.Typer(
    help="Device keys, certificate requests, enrollment on chain, revocation.", no_args_is_help=True
)
console = Console(soft_wrap=True)

PasswordEnvOpt = Annotated[
    str | None,
    typer.Option("--password-env", help="Name of the environment variable holding the key file's password."),
]


def _password(env_name: str | None) -> str | None:
    if env_name is None:
        return None
    value = os.environ.get(env_name)
    if not value:
        raise typer.BadParameter(f"${env_name} is not set or empty", param_hint="--password-env")
    return value


@app.command("keygen")
def keygen(
    out: Annotated[Path, typer.Option("--out", help="Where to write the private key (PEM, mode 0600).")],
    scheme: Annotated[
        str, typer.Option("--scheme", help="p256 (secure elements) or secp256k1 (gateways).")
    ] = "p256",
    password_env: PasswordEnvOpt = None,
) -> None:
    """Generate a device key."""
    key = DeviceKey.generate(parse_scheme(scheme))
    key.save(out, password=_password(password_env))
    pub = key.public_key
    detail = f"address {pub.eth_address}" if key.scheme == "secp256k1" else f"x 0x{pub.x:064x}"
    console.print(f"{key.scheme} key -> {out} ({detail})")


@app.command("csr")
def csr(
    key: Annotated[Path, typer.Option("--key", help="The device's private key (PEM).")],
    device_id: Annotated[str, typer.Option("--device-id", help="The device serial (becomes the CN).")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the CSR (PEM).")],
    password_env: PasswordEnvOpt = None,
) -> None:
    """Make a certificate signing request for the device's key."""
    request = make_device_csr(DeviceKey.load(key, password=_password(password_env)), device_id)
    out.write_bytes(request.public_bytes(serialization.Encoding.PEM))
    console.print(f"CSR for {device_id} -> {out}")


@app.command("enroll")
def enroll(
    cert: Annotated[Path, typer.Option("--cert", help="The device certificate (PEM or DER).")],
    ca_cert: Annotated[Path, typer.Option("--ca-cert", help="The issuing manufacturer CA's certificate.")],
    device_key: Annotated[
        Path,
        typer.Option("--device-key", help="The device key, to answer the proof-of-possession challenge."),
    ],
    rpc: RpcOpt,
    deployment: DeploymentOpt,
    key_file: KeyFileOpt = None,
    active_from: Annotated[
        int | None,
        typer.Option(
            "--active-from",
            help="Unix ms from which readings count (default: now; never before the enrollment block).",
        ),
    ] = None,
    birth: Annotated[
        Path | None,
        typer.Option(
            "--birth",
            help="The CA's birth attestation (default: beside --cert, *.birth.json, as `supet ca issue` "
            "writes it).",
        ),
    ] = None,
    password_env: PasswordEnvOpt = None,
) -> None:
    """Enroll a device on chain, as its owning party: certificate chain, the CA's birth attestation,
    and the device's proof of possession for the party (made here with the device key)."""
    attestation = BirthAttestation.load(birth if birth is not None else birth_path(cert))
    chain, dep = open_deployment(rpc, deployment)
    party = load_party_account(key_file)
    result = enroll_with_device_key(
        registry=DeviceRegistryClient(chain, dep),
        party=party,
        certificate=load_certificate(cert),
        ca_certificates=[load_certificate(ca_cert)],
        device_key=DeviceKey.load(device_key, password=_password(password_env)),
        birth=attestation,
        active_from_ms=active_from,
        now=datetime.now(UTC),
    )
    console.print(
        f"enrolled {result.device_id} ({result.scheme}) owned by {party.address} "
        f"in tx {result.tx_hash}, active from {result.active_from_ms}"
    )


@app.command("revoke")
def revoke(
    device_id: Annotated[str, typer.Option("--device-id", help="The device serial.")],
    rpc: RpcOpt,
    deployment: DeploymentOpt,
    key_file: KeyFileOpt = None,
    at: Annotated[
        int, typer.Option("--at", help="Unix ms from which its readings stop counting (0: now).", min=0)
    ] = 0,
    reason: Annotated[
        str | None,
        typer.Option(
            "--reason",
            help="The operator's ruling, recorded on chain: needed to revoke before evidence a verdict "
            "already used (the device's pinned time).",
        ),
    ] = None,
) -> None:
    """Revoke a device (its owner or the operator). A revocation only moves earlier; an owner's time is
    at most now and after the latest reading a verdict used; only the operator, with --reason, may go
    before that."""
    chain, dep = open_deployment(rpc, deployment)
    registry = DeviceRegistryClient(chain, dep)
    party = load_party_account(key_file)
    if reason is not None:
        if not reason.strip():
            raise typer.BadParameter(
                "give the reason of the ruling (an incident reference)", param_hint="--reason"
            )
        result = registry.revoke_with_reason(party, device_id, at, reason)
    else:
        result = registry.revoke(party, device_id, at)
    record = registry.device(device_id)
    ruled = f" (ruling: {reason})" if reason is not None else ""
    console.print(f"revoked {device_id} from {record.revoked_at_ms}{ruled} in tx {result.tx_hash}")


@app.command("show")
def show(
    device_id: Annotated[str, typer.Option("--device-id", help="The device serial.")],
    rpc: RpcOpt,
    deployment: DeploymentOpt,
) -> None:
    """Show a device as the registry holds it."""
    chain, dep = open_deployment(rpc, deployment)
    record = DeviceRegistryClient(chain, dep).device(device_id)
    if not record.enrolled:
        console.print(f"{device_id}: not enrolled")
        raise typer.Exit(1)
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    console.print(f"{device_id}: {record.scheme.name.lower()} owner {record.owner}")
    console.print(
        f"  active from {record.active_from_ms}, revoked at {record.revoked_at_ms or '-'}, "
        f"active now: {record.active_at(now_ms)}"
    )
    pinned = DeviceRegistryClient(chain, dep).pinned_evidence_ms(device_id)
    console.print(f"  evidence pinned by verdicts up to {pinned if pinned is not None else '-'}")
    console.print(f"  certificate sha256 0x{record.cert_fingerprint.hex()}, CA 0x{record.ca_key_hash.hex()}")
