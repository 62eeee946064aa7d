"""Device-signed requests: a device reads its own receipts and proofs, signed with its enrolled key.

The format is :mod:`device_attestation.request_signing` (headers ``X-Supet-Device``,
``X-Supet-Timestamp``, ``X-Supet-Nonce``, ``X-Supet-Signature``). The service checks the time window
and the nonce's form as for a party's signed request, the signature against the key the
DeviceRegistry enrolled (the service's mirror of it), that the device is not revoked now, and
spends the nonce in ``used_nonces``: a replay is refused (``auth.replayed``), after a restart too.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

from device_attestation.errors import AttestationError
from device_attestation.keys import DevicePublicKey, Scheme
from device_attestation.reading import Domain
from device_attestation.request_signing import device_request_digest
from device_attestation.signing import verify_signature
from ledger_service.auth._internal import ms
from ledger_service.auth.errors import AuthenticationFailed
from ledger_service.auth.party import PartyAddress, parse_address
from ledger_service.auth.signed_requests import SignedRequestMixin
from ledger_service.registry_cache import CachedDevice

__all__ = ["AuthenticatedDevice", "DeviceRequestMixin"]


@dataclass(frozen=True, kw_only=True, slots=True)
class AuthenticatedDevice:
    """A device that signed this request with its enrolled key, and the party that owns it."""

    device_id: str
    owner: PartyAddress
    #: The request's nonce (spent).
    credential_id: str


@lru_cache(maxsize=4096)
def _p256(x: int, y: int) -> DevicePublicKey:
    return DevicePublicKey(scheme=Scheme.P256, x=x, y=y)


class DeviceRequestMixin(SignedRequestMixin):
    """The authenticator's check of a device-signed request."""

    #: The EIP-712 domain the devices sign under (chain id, ReadingAnchor); None: device requests off.
    reading_domain: Domain | None

    def verify_device_request(
        self,
        *,
        method: str,
        path: str,
        body: bytes,
        device_id: str,
        timestamp: str,
        nonce: str,
        signature: str,
        device: CachedDevice | None,
    ) -> AuthenticatedDevice:
        """Check a device-signed request (``device``: the registry's record of ``device_id``, None when
        it is not enrolled) and spend its nonce; the device and its owner."""
        ts_ms, window_ms = self._check_fresh(timestamp, nonce)
        if self.reading_domain is None or device is None:
            raise AuthenticationFailed(
                f"device {device_id!r} is not enrolled in this deployment's DeviceRegistry: only an "
                "enrolled device signs its own requests",
                code="auth.unknown_device",
            )
        now_ms = ms(self.clock())
        if device.revoked_at_ms and device.revoked_at_ms <= now_ms:
            raise AuthenticationFailed(
                f"device {device_id!r} was revoked at {device.revoked_at_ms} (Unix ms): its key signs no "
                "request any more; its owner reads its data",
                code="auth.device_revoked",
            )
        digest = device_request_digest(
            domain=self.reading_domain,
            device_id=device_id,
            method=method,
            path=path,
            body=body,
            timestamp_ms=ts_ms,
            nonce=nonce,
        )
        public = _p256(*device.key) if isinstance(device.key, tuple) else device.key
        try:
            raw = bytes.fromhex(signature.removeprefix("0x"))
            verify_signature(device.scheme, public, digest, raw)
        except (ValueError, AttestationError) as e:
            raise AuthenticationFailed(
                "the device request's signature does not verify against the enrolled key: sign "
                "device_request_digest(domain, device id, METHOD, path?query, sha256(body), timestamp, "
                f"nonce) with the device key (chain {self.reading_domain.chain_id}, anchor "
                f"{self.reading_domain.verifying_contract}): {e}",
                code="auth.bad_signature",
            ) from e
        owner = parse_address(device.owner, "the device's owner")
        slot = hashlib.sha256(device_id.encode("utf-8")).hexdigest()[:32]
        self._consume(f"dev:{slot}:{nonce}", owner, ts_ms + window_ms, "device request nonce")
        return AuthenticatedDevice(device_id=device_id, owner=owner, credential_id=nonce)
