"""The :class:`Authenticator`: one object per app holding the keys, clock and store that sign-in,
tokens, signed requests and nonces share (each concern in its own module)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import threading
from collections.abc import Callable
from urllib.parse import urlsplit

from eth_utils import to_checksum_address
from sqlalchemy import Engine

from device_attestation.reading import Domain
from ledger_service.auth.device_requests import DeviceRequestMixin
from ledger_service.auth.party import utcnow
from ledger_service.auth.siwe import SignInMixin
from ledger_service.auth.tokens import revocations_of
from ledger_service.config import Settings

__all__ = ["Authenticator"]


class Authenticator(SignInMixin, DeviceRequestMixin):
    """Issues sign-in challenges and tokens; checks tokens and signed requests.

    Keys are derived from ``settings.token_secret`` (one for tokens, one for nonces), so
    the two uses never share a key. ``clock`` may be replaced (tests). ``sole_writer``: whether this
    process is, at the time asked, the only one writing the database (the service's SQLite instance
    lock); then a token's revocation is checked from memory (:mod:`.tokens`).

    Sign-in (:meth:`issue_login`, :meth:`redeem_login`) is in :mod:`.siwe`, tokens
    (:meth:`verify_token`, :meth:`revoke`) in :mod:`.tokens`, :meth:`verify_signed_request` in
    :mod:`.signed_requests`, :meth:`verify_device_request` (a device's own reads) in
    :mod:`.device_requests`, spending nonces in :mod:`.nonces`. ``reading_anchor`` (the deployment's
    ReadingAnchor) is the domain devices sign their requests under; without it they cannot.
    """

    def __init__(
        self,
        *,
        settings: Settings,
        engine: Engine,
        chain_id: int,
        registry_address: str,
        reading_anchor: str | None = None,
        clock: Callable[[], dt.datetime] = utcnow,
        sole_writer: Callable[[], bool] | None = None,
    ) -> None:
        url = urlsplit(settings.public_url)
        self.domain = url.netloc
        self.uri = settings.public_url
        self.chain_id = chain_id
        self.audience = f"supet-ledger:eip155:{chain_id}:{to_checksum_address(registry_address)}"
        self.login_ttl = dt.timedelta(seconds=settings.login_ttl_seconds)
        self.token_ttl = dt.timedelta(seconds=settings.token_ttl_seconds)
        self.request_window = dt.timedelta(seconds=settings.signed_request_window_seconds)
        self.reading_domain = (
            Domain(chain_id=chain_id, verifying_contract=reading_anchor) if reading_anchor else None
        )
        self.engine = engine
        self.clock = clock
        secret = settings.token_secret_bytes()
        self._token_key = hmac.new(secret, b"supet.auth.token.v1", hashlib.sha256).digest()
        self._nonce_key = hmac.new(secret, b"supet.auth.login-nonce.v1", hashlib.sha256).digest()
        self._last_prune = 0.0
        self._last_revoked_prune = 0.0
        self._token_cache = {}
        self._token_lock = threading.Lock()
        self.sole_writer = sole_writer
        self._revocations = revocations_of(engine)
