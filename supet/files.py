"""Reading and writing key and certificate files, with our errors."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from device_attestation.errors import CertificateError, KeyFileError


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise KeyFileError(f"cannot read the {what} {path}: {e.strerror}") from e


def load_certificate(path: Path) -> x509.Certificate:
    """A certificate from a PEM or DER file."""
    data = _read(path, "certificate")
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificate(data)
        return x509.load_der_x509_certificate(data)
    except ValueError as e:
        raise CertificateError(f"{path} is not an X.509 certificate (PEM or DER): {e}") from e


def load_csr(path: Path) -> x509.CertificateSigningRequest:
    """A certificate signing request from a PEM or DER file."""
    data = _read(path, "CSR")
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_csr(data)
        return x509.load_der_x509_csr(data)
    except ValueError as e:
        raise CertificateError(f"{path} is not a certificate signing request: {e}") from e


def load_private_key(path: Path, password: str | None = None) -> ec.EllipticCurvePrivateKey:
    """An EC private key (a CA's) from a PEM file, optionally encrypted."""
    data = _read(path, "private key")
    try:
        key = serialization.load_pem_private_key(data, password.encode() if password else None)
    except (ValueError, TypeError) as e:
        raise KeyFileError(
            f"cannot load the private key {path}: wrong password or not a PEM key ({e})"
        ) from e
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise KeyFileError(f"{path} is not an elliptic-curve key")
    return key


def write_private(path: Path, data: bytes) -> None:
    """Write a secret file readable by its owner only (0600), atomically."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
