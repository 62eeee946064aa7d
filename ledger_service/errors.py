"""Errors of the ledger service. Each rejection has a stable ``code`` clients can rely on."""

from __future__ import annotations

from supet_base.errors import SupetError


class LedgerError(SupetError):
    """Base of every ledger-service error."""

    code = "ledger.error"


class ConfigError(LedgerError):
    """The service's settings are unusable (e.g. a placeholder secret outside development)."""

    code = "config.invalid"


class StoreError(LedgerError):
    """The database could not be reached or refused a write."""

    code = "store.unavailable"


class IngestUnavailable(LedgerError):
    """The ingest pipeline could not check submissions (its checking threads stopped or failed):
    nothing was stored, the submitter may retry."""

    code = "ingest.unavailable"


class Rejection(LedgerError):
    """A submission was refused. ``code`` says why; ``message`` says what to fix."""

    code = "reading.rejected"

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, code=code)


class NotFound(LedgerError):
    """The requested object does not exist (yet)."""

    code = "not_found"


class AuthError(LedgerError):
    """The caller did not prove who it is, or lacks the role."""

    code = "auth.failed"


class InstanceLockedError(LedgerError):
    """Another service instance already serves this SQLite database (SQLite is single-instance)."""

    code = "store.instance_locked"
