"""Device-signed requests: a device reads its own receipts and proofs with its device key (issue 14).

A device proves who it is on a read the way it proves a reading: with its enrolled key (P-256 or
secp256k1), over a digest bound to one deployment. The request carries four headers:

- ``X-Supet-Device``: the device id it was enrolled under (ASCII);
- ``X-Supet-Timestamp``: Unix time in ms (the service accepts it within its window, 60 s by default);
- ``X-Supet-Nonce``: 16..64 characters of ``[A-Za-z0-9_-]``, fresh for every request (the service
  records it, so a replay is refused);
- ``X-Supet-Signature``: 0x-hex of :func:`device_attestation.signing.sign_digest` over
  :func:`device_request_digest` (64 bytes for P-256, 65 for secp256k1, low-S).

The digest is keccak-256 of :func:`device_request_text`, one field per line: the tag
``supET device request v1``, the EIP-712 domain's chain id and verifying contract (the
ReadingAnchor the device signs its readings for), the device id, the HTTP method (upper case), the
path with its query string, the SHA-256 of the body (hex) and the timestamp and nonce.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Final

from ._internal.hexutil import hex0x
from ._internal.keccak import keccak256
from .keys import DeviceKey
from .reading import Domain
from .signing import sign_digest

__all__ = [
    "DEVICE_HEADER",
    "DEVICE_REQUEST_TAG",
    "device_request_digest",
    "device_request_text",
    "sign_device_request",
]

#: First line of a device request's canonical text (its version).
DEVICE_REQUEST_TAG: Final = "supET device request v1"
#: The header naming the device (instead of a party's ``X-Supet-Address``).
DEVICE_HEADER: Final = "X-Supet-Device"


def device_request_text(
    *,
    domain: Domain,
    device_id: str,
    method: str,
    path: str,
    body: bytes,
    timestamp_ms: int,
    nonce: str,
) -> str:
    """The canonical text of a device request (see the module docstring)."""
    return "\n".join(
        [
            DEVICE_REQUEST_TAG,
            str(domain.chain_id),
            domain.verifying_contract,
            device_id,
            method.upper(),
            path,
            hashlib.sha256(body).hexdigest(),
            str(timestamp_ms),
            nonce,
        ]
    )


def device_request_digest(
    *,
    domain: Domain,
    device_id: str,
    method: str,
    path: str,
    body: bytes,
    timestamp_ms: int,
    nonce: str,
) -> bytes:
    """keccak-256 of :func:`device_request_text`: what the device key signs."""
    text = device_request_text(
        domain=domain,
        device_id=device_id,
        method=method,
        path=path,
        body=body,
        timestamp_ms=timestamp_ms,
        nonce=nonce,
    )
    return keccak256(text.encode("utf-8"))


def sign_device_request(
    key: DeviceKey,
    *,
    device_id: str,
    domain: Domain,
    method: str,
    path: str,
    body: bytes = b"",
    timestamp_ms: int | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """The four ``X-Supet-*`` headers of a request signed by the device (``path`` with its query)."""
    ts = time.time_ns() // 1_000_000 if timestamp_ms is None else timestamp_ms
    fresh = secrets.token_hex(16) if nonce is None else nonce
    digest = device_request_digest(
        domain=domain, device_id=device_id, method=method, path=path, body=body, timestamp_ms=ts, nonce=fresh
    )
    return {
        DEVICE_HEADER: device_id,
        "X-Supet-Timestamp": str(ts),
        "X-Supet-Nonce": fresh,
        "X-Supet-Signature": hex0x(sign_digest(key, digest)),
    }
