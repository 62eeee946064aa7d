"""Single use: sign-in nonces the service can recognise without storing them, and the record of
every nonce spent (``used_nonces``), so a replay is refused even after a restart."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import time

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlmodel import Session

from ledger_service.auth._internal import AuthenticatorFields, ms
from ledger_service.auth.errors import AuthenticationFailed
from ledger_service.errors import StoreError
from ledger_service.store.models import UsedNonceRow

__all__ = ["NonceMixin"]


class NonceMixin(AuthenticatorFields):
    """The authenticator's nonces: the sign-in nonce's MAC, and spending a nonce once."""

    def _nonce_mac(self, party: str, rand: str, issued: dt.datetime, expires: dt.datetime) -> str:
        text = f"{self.chain_id}|{self.domain}|{self.uri}|{party}|{rand}|{ms(issued)}|{ms(expires)}"
        return hmac.new(self._nonce_key, text.encode("utf-8"), hashlib.sha256).hexdigest()[:32]

    def _consume(self, key: str, party: str, expires_ms: int, what: str) -> None:
        """Record ``key`` as used; :class:`AuthenticationFailed` (``auth.replayed``) if it was.

        Rows whose credential has expired anyway are pruned now and then: a replay of one
        is refused by its time check before it gets here.
        """
        now_ms = ms(self.clock())
        try:
            with Session(self.engine) as session:
                if time.monotonic() - self._last_prune > 60:
                    self._last_prune = time.monotonic()
                    session.exec(delete(UsedNonceRow).where(UsedNonceRow.expires_ms < now_ms))  # type: ignore[arg-type]
                session.add(UsedNonceRow(nonce=key, party=party, expires_ms=expires_ms))
                session.commit()
        except IntegrityError as e:
            raise AuthenticationFailed(
                f"this {what} was already used: each may be used once; ask for a new challenge or "
                "sign the request again with a fresh nonce",
                code="auth.replayed",
            ) from e
        except SQLAlchemyError as e:
            raise StoreError(f"cannot record the {what} as used: {type(e).__name__}; retry later") from e
