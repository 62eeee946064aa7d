"""Signed reads from a ledger (issue 14): a reading, its proof and a device's history are not public.

A command reads as one of:

- the device itself (``--device-key`` and ``--device-id``): each request signed with the device key
  (:func:`device_attestation.request_signing.sign_device_request`) under the EIP-712 domain the
  ledger announces (``GET /v1/deployment``);
- a party (``--key-file``, or ``$SUPET_PARTY_KEY``): signed in once with EIP-4361
  (``POST /v1/auth/challenge``, ``POST /v1/auth/token``), its bearer token sent on each request;
- nobody: then only what a lot's holder disclosed is answered.

This module loads no part of the ledger service: it speaks its HTTP API only.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import httpx
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount

from device_attestation.keys import DeviceKey
from device_attestation.reading import Domain
from device_attestation.request_signing import sign_device_request
from supet_base.errors import SupetError
from supet_base.parties import KEY_ENV, load_party_account

__all__ = ["Credentials", "SignInFailed", "device_credentials", "party_credentials", "read_credentials"]

#: The headers to send with a GET of a path (with its query).
Credentials = Callable[[str], dict[str, str]]


class SignInFailed(SupetError):
    """The ledger did not let the party sign in."""

    code = "cli.sign_in"


def party_credentials(client: httpx.Client, base: str, account: LocalAccount) -> Credentials:
    """Sign ``account`` in at the ledger (EIP-4361); its bearer token on every request."""
    try:
        r = client.post(f"{base}/v1/auth/challenge", json={"address": account.address})
        if r.status_code == 200:
            message = str(r.json()["message"])
            signature = account.sign_message(encode_defunct(text=message)).signature.to_0x_hex()
            r = client.post(f"{base}/v1/auth/token", json={"message": message, "signature": signature})
    except httpx.HTTPError as e:
        raise SignInFailed(f"cannot reach the ledger at {base} to sign in: {e}") from e
    if r.status_code != 200:
        raise SignInFailed(
            f"the ledger refused {account.address}'s sign-in: HTTP {r.status_code} {r.text[:300]}"
        )
    headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
    return lambda path: headers


def device_credentials(key: DeviceKey, device_id: str, domain: Domain) -> Credentials:
    """Every GET signed by the device (a fresh timestamp and nonce each time: a replay is refused)."""
    return lambda path: sign_device_request(key, device_id=device_id, domain=domain, method="GET", path=path)


def read_credentials(
    client: httpx.Client,
    base: str,
    *,
    domain: Callable[[], Domain],
    device_key: Path | None = None,
    device_id: str | None = None,
    key_file: Path | None = None,
    device_password: str | None = None,
) -> Credentials:
    """The credentials a read command sends (see the module docstring): the device's when its key and
    id are given, else the party's when a key file or ``$SUPET_PARTY_KEY`` is, else none."""
    if (device_key is None) != (device_id is None):
        raise SupetError("give --device-key and --device-id together", code="cli.usage")
    if device_key is not None and device_id is not None:
        key = DeviceKey.load(device_key, password=device_password)
        return device_credentials(key, device_id, domain())
    if key_file is not None or os.environ.get(KEY_ENV):
        return party_credentials(client, base, load_party_account(key_file))
    return lambda path: {}
