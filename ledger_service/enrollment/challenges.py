"""The enrollment desk's proof-of-possession challenges, kept in the database (issue 17): every instance on
one database redeems a challenge any of them issued, each challenge once, also after a restart.

:class:`StoredChallengeBook` has the verbs of the library's in-memory
:class:`contracts.enrollment.ChallengeBook` (``audience``, ``max_age``, ``issue``, ``redeem``), with the
party a challenge is issued to: a challenge is redeemed only by that party, and a party holds at most
``max_open`` open challenges, counted in the database over every instance. Rows are
``enrollment_challenges`` (:class:`~ledger_service.store.models.EnrollmentChallengeRow`).

- Single use: :meth:`~StoredChallengeBook.redeem` is one ``DELETE ... WHERE nonce AND party AND not
  expired``; of two instances redeeming one challenge at once, the database lets one delete the row,
  the other finds nothing (``pop.unknown_challenge``).
- The limit: :meth:`~StoredChallengeBook.issue` is one ``INSERT ... SELECT ... WHERE (the party's open
  rows) < max_open``, serialised per party: on PostgreSQL by a transaction-scoped advisory lock on the
  party taken first (two instances' inserts would not see each other's uncommitted rows), on SQLite by
  the database's one writer (one statement, under its write lock).
- Expiry: a challenge is kept ``max_age`` after it was issued, then it is unknown; expired rows are
  purged (one indexed ``DELETE``, in its own transaction) when a challenge is issued, at most once per
  ``PURGE_EVERY``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
from typing import Final

from sqlalchemy import BigInteger, Engine, LargeBinary, String, delete, func, insert, literal, select, text
from sqlalchemy.exc import SQLAlchemyError

from device_attestation.certificates import Challenge, new_challenge
from ledger_service.enrollment.errors import EnrollmentRefused, TooManyChallenges
from ledger_service.errors import StoreError
from ledger_service.store.models import EnrollmentChallengeRow

__all__ = ["PURGE_EVERY", "StoredChallengeBook"]

#: Expired rows are purged at most this often (by the instance issuing a challenge).
PURGE_EVERY: Final = dt.timedelta(minutes=1)

_T = EnrollmentChallengeRow.__table__  # type: ignore[attr-defined]
#: The advisory-lock namespace of the per-party issue lock (a constant of this module: 'enrl').
_LOCK_SPACE = 0x656E726C
_PARTY_LOCK = text("SELECT pg_advisory_xact_lock(:space, :key)")


def _ms(t: dt.datetime) -> int:
    return int(t.timestamp() * 1000)


def _party_key(party: str) -> int:
    """A 32-bit advisory-lock key of ``party`` (collisions only serialise two parties' issues)."""
    return int.from_bytes(hashlib.sha256(party.lower().encode()).digest()[:4], "big", signed=True)


class StoredChallengeBook:
    """Challenges bound to the party that asked, single use and bounded per party, in the database."""

    def __init__(self, engine: Engine, audience: str, *, max_age: dt.timedelta, max_open: int) -> None:
        self.engine = engine
        self.audience = audience
        #: How long a challenge is kept after it was issued (then it is unknown and purged).
        self.max_age = max_age
        #: Open challenges one party may hold at once, over every instance.
        self.max_open = max_open
        self._issuing = threading.Lock()
        self._purged_at: dt.datetime | None = None

    def issue(self, now: dt.datetime, *, party: str) -> Challenge:
        """A fresh challenge for ``party``, stored before it is returned; :class:`TooManyChallenges`
        (``enroll.too_many_challenges``) when the party holds ``max_open`` open ones."""
        challenge = new_challenge(self.audience, now)
        now_ms = _ms(now)
        try:
            if self._purged_at is None or now - self._purged_at >= PURGE_EVERY or now < self._purged_at:
                self.purge(now)
            with self._issuing, self.engine.begin() as conn:
                if conn.dialect.name == "postgresql":  # serialise the party's issues over instances
                    conn.execute(_PARTY_LOCK, {"space": _LOCK_SPACE, "key": _party_key(party)})
                open_now = (
                    select(func.count())
                    .select_from(_T)
                    .where(_T.c.party == party, _T.c.expires_ms >= now_ms)
                    .scalar_subquery()
                )
                values = select(
                    literal(challenge.nonce, LargeBinary),
                    literal(party, String),
                    literal(challenge.audience, String),
                    literal(int(challenge.issued_at.timestamp()), BigInteger),
                    literal(_ms(challenge.issued_at + self.max_age), BigInteger),
                ).where(open_now < self.max_open)
                columns = ["nonce", "party", "audience", "issued_s", "expires_ms"]
                stored = conn.execute(insert(_T).from_select(columns, values).returning(_T.c.nonce)).first()
        except SQLAlchemyError as e:
            raise StoreError(f"cannot store the challenge: {type(e).__name__}; ask again later") from e
        if stored is None:
            raise TooManyChallenges(
                f"{party} holds {self.max_open} open challenges; use them or wait "
                f"{int(self.max_age.total_seconds())} s for them to lapse",
                code="enroll.too_many_challenges",
            )
        return challenge

    def redeem(self, nonce: bytes, now: dt.datetime, *, party: str) -> Challenge:
        """Take ``party``'s open challenge ``nonce`` out of the database, once; refused
        (``pop.unknown_challenge``) when it is unknown, expired, used, or another party's."""
        try:
            with self.engine.begin() as conn:
                row = conn.execute(
                    delete(_T)
                    .where(_T.c.nonce == nonce, _T.c.party == party, _T.c.expires_ms >= _ms(now))
                    .returning(_T.c.issued_s, _T.c.audience)
                ).first()
        except SQLAlchemyError as e:
            raise StoreError(f"cannot redeem the challenge: {type(e).__name__}; retry later") from e
        if row is None:
            raise EnrollmentRefused(
                "unknown, expired or already used challenge (or one issued to another party): ask "
                "POST /v1/devices/challenge for a new one and have the device sign it",
                code="pop.unknown_challenge",
            )
        return Challenge(
            nonce=nonce, issued_at=dt.datetime.fromtimestamp(row.issued_s, dt.UTC), audience=row.audience
        )

    def purge(self, now: dt.datetime) -> int:
        """Delete the challenges expired at ``now`` (every party's); how many."""
        with self.engine.begin() as conn:
            deleted = conn.execute(delete(_T).where(_T.c.expires_ms < _ms(now))).rowcount
        self._purged_at = now
        return int(deleted)

    def open_count(self, party: str, now: dt.datetime) -> int:
        """The open challenges ``party`` holds now, over every instance."""
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    select(func.count())
                    .select_from(_T)
                    .where(_T.c.party == party, _T.c.expires_ms >= _ms(now))
                ).scalar_one()
            )
