"""Prepared enrollments, kept in the database (issue 17): what the desk verified when it prepared an
enrollment, so any instance on the database relays only that transaction and confirms the mined enrollment
against the verified certificate, also after a restart.

A row of ``prepared_enrollments`` (:class:`~ledger_service.store.models.PreparedEnrollmentRow`) holds the
registry call as ABI-encoded ``data``; its arguments are decoded from it with the registry's ABI (and
checked to encode back to the same bytes), so the row holds one copy of the call. One row per (party,
device): preparing again replaces it, confirming deletes it, and rows past their expiry are purged when
an enrollment is prepared.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, delete, select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from web3.contract import Contract
from web3.exceptions import Web3Exception

from device_attestation.keys import Scheme
from ledger_service.errors import StoreError
from ledger_service.store.models import PreparedEnrollmentRow

__all__ = ["PreparedEnrollment", "PreparedEnrollments"]

_T = PreparedEnrollmentRow.__table__  # type: ignore[attr-defined]


def _ms(t: dt.datetime) -> int:
    return int(t.timestamp() * 1000)


@dataclass(frozen=True, kw_only=True, slots=True)
class PreparedEnrollment:
    """An enrollment the service verified, waiting for the party's signed transaction."""

    party: str
    device_id: str
    scheme: Scheme
    fn_name: str
    args: tuple[Any, ...]
    data: str
    cert_fingerprint: bytes
    ca_key_hash: bytes
    active_from_ms: int
    expires_at: dt.datetime


class PreparedEnrollments:
    """The prepared enrollments of every instance on the database, by (party, device)."""

    def __init__(self, engine: Engine, registry: Contract) -> None:
        self.engine = engine
        #: The DeviceRegistry contract whose calls are prepared (its ABI decodes a row's ``data``).
        self.registry = registry

    def save(self, prepared: PreparedEnrollment, now: dt.datetime) -> None:
        """Store ``prepared`` (replacing the party's earlier one for the device), durably; purge the
        expired ones."""
        row = {
            "party": prepared.party,
            "device_id": prepared.device_id,
            "scheme": prepared.scheme.value,
            "fn_name": prepared.fn_name,
            "data": prepared.data,
            "cert_fingerprint": prepared.cert_fingerprint,
            "ca_key_hash": prepared.ca_key_hash,
            "active_from_ms": prepared.active_from_ms,
            "prepared_ms": _ms(now),
            "expires_ms": _ms(prepared.expires_at),
        }
        for attempt in (1, 2):
            try:
                with self.engine.begin() as conn:
                    conn.execute(delete(_T).where(_T.c.expires_ms < _ms(now)))
                    conn.execute(
                        delete(_T).where(_T.c.party == prepared.party, _T.c.device_id == prepared.device_id)
                    )
                    conn.execute(_T.insert().values(**row))
                return
            except IntegrityError as e:  # another instance stored one for the device between the two
                if attempt == 2:
                    raise StoreError(f"cannot store the prepared enrollment: {e.orig}; prepare again") from e
            except SQLAlchemyError as e:
                raise StoreError(
                    f"cannot store the prepared enrollment: {type(e).__name__}; prepare again later"
                ) from e

    def get(self, party: str, device_id: str) -> PreparedEnrollment | None:
        """``party``'s prepared enrollment of ``device_id``, expired or not (None if there is none)."""
        try:
            with self.engine.connect() as conn:
                row = conn.execute(select(_T).where(_T.c.party == party, _T.c.device_id == device_id)).first()
        except SQLAlchemyError as e:
            raise StoreError(f"cannot read the prepared enrollment: {type(e).__name__}; retry later") from e
        if row is None:
            return None
        return PreparedEnrollment(
            party=row.party,
            device_id=row.device_id,
            scheme=Scheme(row.scheme),
            fn_name=row.fn_name,
            args=self._args(row.fn_name, row.data),
            data=row.data,
            cert_fingerprint=bytes(row.cert_fingerprint),
            ca_key_hash=bytes(row.ca_key_hash),
            active_from_ms=int(row.active_from_ms),
            expires_at=dt.datetime.fromtimestamp(row.expires_ms / 1000, dt.UTC),
        )

    def discard(self, party: str, device_id: str) -> None:
        """Forget ``party``'s prepared enrollment of ``device_id`` (it was confirmed)."""
        try:
            with self.engine.begin() as conn:
                conn.execute(delete(_T).where(_T.c.party == party, _T.c.device_id == device_id))
        except SQLAlchemyError as e:
            raise StoreError(
                f"cannot discard the confirmed enrollment: {type(e).__name__}; confirm again"
            ) from e

    def _args(self, fn_name: str, data: str) -> tuple[Any, ...]:
        """The arguments of the registry call ``data`` (``fn_name``), decoded with the registry's ABI."""
        try:
            fn, params = self.registry.decode_function_input(data)
            args = tuple(params[i["name"]] for i in fn.abi["inputs"])
            same = fn.fn_name == fn_name and self.registry.encode_abi(fn_name, args=list(args)) == data
        except (ValueError, KeyError, Web3Exception):
            same = False
        if not same:
            raise StoreError(
                f"the stored enrollment call is not a {fn_name} call of this DeviceRegistry: the "
                "store holds a row of another deployment; prepare the enrollment again"
            )
        return args
