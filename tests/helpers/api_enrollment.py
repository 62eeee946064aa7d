"""A device enrolled through the ledger's ``/v1/devices`` API, step by step, as a party's tool does it
(importable as ``api_enrollment``: tests/helpers is on sys.path).

Each step takes the HTTP client to send it with (a ``TestClient`` or an ``httpx.Client``: the steps of one
enrollment may go to different service instances) and the party's auth headers:
:func:`ask_challenge`, :func:`prepare` (the device's answers, the CA's birth attestation, the device's
proof of possession), :func:`relay` (the party signs the prepared transaction; the service relays and
confirms it). :func:`certified_device` makes the device: a fresh key and a certificate of the CA.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from eth_account.signers.local import LocalAccount

from contracts.enrollment import answer_challenge
from device_attestation.birth import BirthAttestation, attest_birth, sign_possession
from device_attestation.certificates import Challenge, make_device_csr
from device_attestation.keys import DeviceKey
from device_attestation.manufacturer_ca import issue_device_certificate


@dataclass(frozen=True)
class NewDevice:
    """A device with its key, its certificate, the issuing CA's certificate and birth attestation."""

    device_id: str
    key: DeviceKey
    cert: x509.Certificate
    ca_cert: x509.Certificate
    birth: BirthAttestation


def certified_device(
    ca_key: Any,
    ca_cert: x509.Certificate,
    device_id: str,
    scheme: str = "p256",
    *,
    key: DeviceKey | None = None,
) -> NewDevice:
    """A device certified by the CA (``key``: a new certificate for a key it has already)."""
    key = key or DeviceKey.generate(scheme)
    cert = issue_device_certificate(
        ca_key=ca_key,
        ca_cert=ca_cert,
        csr=make_device_csr(key, device_id),
        valid_days=10,
        not_before=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1),
    )
    birth = attest_birth(ca_key=ca_key, ca_cert=ca_cert, certificate=cert)
    return NewDevice(device_id=device_id, key=key, cert=cert, ca_cert=ca_cert, birth=birth)


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def ask_challenge(client: Any, headers: dict[str, str]) -> Challenge:
    """``POST /v1/devices/challenge``: the challenge (it must be issued)."""
    r = client.post("/v1/devices/challenge", headers=headers)
    assert r.status_code == 200, r.text
    body = r.json()
    return Challenge(
        nonce=bytes.fromhex(body["nonce"][2:]),
        issued_at=dt.datetime.fromtimestamp(body["issued_at_s"], dt.UTC),
        audience=body["audience"],
    )


def possession_for(device: NewDevice, owner: str, challenge: Challenge) -> str:
    """The device's on-chain proof of possession for ``owner`` at the challenge's registry."""
    _, chain_id, registry = challenge.audience.split(":")
    proof = sign_possession(
        device.key, device_id=device.device_id, owner=owner, chain_id=int(chain_id), registry=registry
    )
    return "0x" + proof.hex()


def enrollment_request(device: NewDevice, challenge: Challenge, owner: str) -> dict[str, Any]:
    """The body of ``POST /v1/devices``: the device answers ``challenge``, proves possession for ``owner``."""
    return {
        "certificate": _pem(device.cert),
        "ca_certificate": _pem(device.ca_cert),
        "challenge_nonce": "0x" + challenge.nonce.hex(),
        "pop_signature": "0x" + answer_challenge(device.key, challenge, device.cert).hex(),
        "birth_attestation": device.birth.to_json(),
        "possession_signature": possession_for(device, owner, challenge),
    }


def prepare(client: Any, headers: dict[str, str], device: NewDevice, challenge: Challenge, owner: str) -> Any:
    """``POST /v1/devices``: the response (200 with the prepared transaction, or a refusal)."""
    return client.post("/v1/devices", headers=headers, json=enrollment_request(device, challenge, owner))


def relay(
    client: Any, headers: dict[str, str], party: LocalAccount, device_id: str, prepared: dict[str, Any]
) -> Any:
    """``POST /v1/devices/{id}/confirm`` with ``party``'s signature of the prepared transaction."""
    raw = party.sign_transaction(prepared["transaction"]).raw_transaction.to_0x_hex()
    return client.post(f"/v1/devices/{device_id}/confirm", headers=headers, json={"signed_transaction": raw})
