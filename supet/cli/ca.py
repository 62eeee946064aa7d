"""``supet ca``: manufacturer certificate authorities."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from rich.console import Console

from contracts.registry import DeviceRegistryClient
from device_attestation.birth import attest_birth, birth_path, ca_public_point
from device_attestation.certificates import ca_key_hash
from device_attestation.errors import CertificateError
from device_attestation.manufacturer_ca import create_manufacturer_ca, issue_device_certificate
from supet.cli.common import DeploymentOpt, KeyFileOpt, RpcOpt, open_deployment
from supet.files import load_certificate, load_csr, load_private_key, write_private
from supet_base.parties import load_party_account

app = typer.Typer(
    help="Manufacturer CAs: create one, trust one on chain, issue device certificates and attestations.",
    no_args_is_help=True,
)
console = Console(soft_wrap=True)


@app.command("create")
def create(
    out_dir: Annotated[
        Path, typer.Option("--out-dir", help="Writes ca.key.pem (mode 0600) and ca.cert.pem here.")
    ],
    common_name: Annotated[
        str, typer.Option("--cn", help="The CA's common name.")
    ] = "supET Demo Manufacturer CA",
    organization: Annotated[
        str, typer.Option("--org", help="The manufacturer's name.")
    ] = "supET Demo Devices",
    days: Annotated[int, typer.Option("--days", min=1, help="Validity in days.")] = 3650,
    password_env: Annotated[
        str | None,
        typer.Option("--password-env", help="Encrypt the CA key with the password in this variable."),
    ] = None,
) -> None:
    """Create a manufacturer CA (P-256, self-signed) for tests and the demo."""
    import os

    key, cert = create_manufacturer_ca(common_name=common_name, organization=organization, valid_days=days)
    password = os.environ.get(password_env) if password_env else None
    if password_env and not password:
        raise typer.BadParameter(f"${password_env} is empty", param_hint="--password-env")
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password.encode()) if password else serialization.NoEncryption()
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    write_private(
        out_dir / "ca.key.pem",
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption),
    )
    (out_dir / "ca.cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    console.print(f"CA {common_name!r}: key hash 0x{ca_key_hash(cert).hex()}")
    console.print(f"  {out_dir / 'ca.key.pem'}\n  {out_dir / 'ca.cert.pem'}")


@app.command("register")
def register(
    cert: Annotated[Path, typer.Option("--cert", help="The CA certificate (PEM or DER).")],
    rpc: RpcOpt,
    deployment: DeploymentOpt,
    key_file: KeyFileOpt = None,
    label: Annotated[
        str | None, typer.Option("--label", help="A name shown on chain (default: subject).")
    ] = None,
) -> None:
    """Trust a manufacturer CA on chain (the consortium operator's key): registers its P-256 key."""
    ca_cert = load_certificate(cert)
    bc = _basic_constraints(ca_cert)
    if bc is None or not bc.ca:
        raise CertificateError(f"{cert} is not a CA certificate (BasicConstraints CA is not true)")
    chain, dep = open_deployment(rpc, deployment)
    operator = load_party_account(key_file)
    registry = DeviceRegistryClient(chain, dep)
    result = registry.trust_ca(operator, *ca_public_point(ca_cert), label or ca_cert.subject.rfc4514_string())
    console.print(
        f"trusted CA 0x{ca_key_hash(ca_cert).hex()} in tx {result.tx_hash} (block {result.block_number})"
    )


@app.command("issue")
def issue(
    ca_key: Annotated[Path, typer.Option("--ca-key", help="The CA private key (PEM).")],
    ca_cert: Annotated[Path, typer.Option("--ca-cert", help="The CA certificate (PEM).")],
    csr: Annotated[Path, typer.Option("--csr", help="The device's certificate signing request (PEM).")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the device certificate (PEM).")],
    days: Annotated[int, typer.Option("--days", min=1, help="Validity in days.")] = 825,
    password_env: Annotated[
        str | None, typer.Option("--password-env", help="Variable holding the CA key's password.")
    ] = None,
) -> None:
    """Issue a device certificate from a CSR (the CSR's own signature is checked first), and the
    device's birth attestation beside it (what the registry checks on chain at enrollment)."""
    import os

    password = os.environ.get(password_env) if password_env else None
    key = load_private_key(ca_key, password)
    ca = load_certificate(ca_cert)
    certificate = issue_device_certificate(ca_key=key, ca_cert=ca, csr=load_csr(csr), valid_days=days)
    birth = attest_birth(ca_key=key, ca_cert=ca, certificate=certificate)
    out.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    birth.save(birth_path(out))
    console.print(
        f"issued {certificate.subject.rfc4514_string()} serial {certificate.serial_number:x} -> {out}"
    )
    console.print(f"  birth attestation -> {birth_path(out)}")


@app.command("attest")
def attest(
    ca_key: Annotated[Path, typer.Option("--ca-key", help="The CA private key (PEM, P-256).")],
    ca_cert: Annotated[Path, typer.Option("--ca-cert", help="The CA certificate (PEM or DER).")],
    cert: Annotated[
        Path, typer.Option("--cert", help="A device certificate this CA issued (e.g. with OpenSSL).")
    ],
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Where to write the attestation (default: beside --cert, *.birth.json)."),
    ] = None,
    password_env: Annotated[
        str | None, typer.Option("--password-env", help="Variable holding the CA key's password.")
    ] = None,
) -> None:
    """Write the birth attestation of a device certificate issued elsewhere (OpenSSL): the CA key
    signs the device id, scheme, key and certificate fingerprint for the registry to check."""
    import os

    password = os.environ.get(password_env) if password_env else None
    key = load_private_key(ca_key, password)
    device_cert = load_certificate(cert)
    birth = attest_birth(ca_key=key, ca_cert=load_certificate(ca_cert), certificate=device_cert)
    target = out if out is not None else birth_path(cert)
    birth.save(target)
    console.print(f"birth attestation of {birth.device_id} ({birth.public_key.scheme}) -> {target}")


def _basic_constraints(cert: x509.Certificate) -> x509.BasicConstraints | None:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return None
