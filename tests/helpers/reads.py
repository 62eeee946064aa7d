"""Signed reads for tests (issue 14: readings, histories and lot evidence are not public).

- :func:`token` / :func:`bearer`: sign in as a party (EIP-4361 through the API) and its header;
- :func:`sign_client_in`: make every later request of a test client carry the party's token (for
  tests whose reads are the owner's, as a factory's own tooling would make them);
- :func:`signed_request`: the ``X-Supet-*`` headers of one party-signed request;
- :func:`device_headers`: the headers of one device-signed request (its own receipts and proofs).
"""

from __future__ import annotations

import secrets
import time
from typing import Any
from urllib.parse import urlsplit

from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount

from device_attestation.sdk import DeviceSigner
from ledger_service.auth import canonical_request


def token(client: Any, account: LocalAccount) -> str:
    """A bearer token for ``account``, from ``client``'s service (sign-in with Ethereum)."""
    r = client.post("/v1/auth/challenge", json={"address": account.address})
    assert r.status_code == 200, r.text
    message = r.json()["message"]
    signature = account.sign_message(encode_defunct(text=message)).signature.to_0x_hex()
    r = client.post("/v1/auth/token", json={"message": message, "signature": signature})
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def bearer(client: Any, account: LocalAccount) -> dict[str, str]:
    """``Authorization: Bearer`` for ``account``."""
    return {"Authorization": f"Bearer {token(client, account)}"}


def sign_client_in(client: Any, account: LocalAccount) -> Any:
    """Every later request of ``client`` carries ``account``'s token; answers the client."""
    client.headers["Authorization"] = f"Bearer {token(client, account)}"
    return client


def signed_request(
    account: LocalAccount,
    *,
    public_url: str,
    chain_id: int,
    method: str,
    path: str,
    body: bytes = b"",
    timestamp_ms: int | None = None,
    nonce: str | None = None,
    signer: LocalAccount | None = None,
) -> dict[str, str]:
    """The ``X-Supet-*`` headers of one request signed by ``account`` (``path`` with its query), at
    ``timestamp_ms`` (default: now) with ``nonce`` (default: a fresh one); ``signer`` signs it in
    ``account``'s name instead (a forgery, for the tests of refusals)."""
    ts = timestamp_ms if timestamp_ms is not None else int(time.time() * 1000)
    nonce = nonce or secrets.token_hex(16)
    text = canonical_request(
        domain=urlsplit(public_url).netloc,
        chain_id=chain_id,
        address=account.address,
        method=method,
        path=path,
        body=body,
        timestamp_ms=ts,
        nonce=nonce,
    )
    signature = (signer or account).sign_message(encode_defunct(text=text)).signature.to_0x_hex()
    return {
        "X-Supet-Address": account.address,
        "X-Supet-Timestamp": str(ts),
        "X-Supet-Nonce": nonce,
        "X-Supet-Signature": signature,
    }


def device_headers(signer: DeviceSigner, path: str, method: str = "GET") -> dict[str, str]:
    """The headers of one request signed by the device (its key, its deployment's domain)."""
    return signer.request_headers(method, path)
