"""Typed refusals of the finance API. Each is a :class:`~ledger_service.errors.LedgerError` with a
dotted ``code`` and the HTTP status the API answers with."""

from __future__ import annotations

from ledger_service.errors import LedgerError

__all__ = [
    "AccessLogError",
    "AccessRefused",
    "FinanceError",
    "FinanceNotDeployed",
    "PublishRefused",
]


class FinanceError(LedgerError):
    """Base of the finance API's errors."""

    code = "finance.error"
    http_status = 400

    def __init__(self, message: str, *, code: str | None = None, http_status: int | None = None) -> None:
        super().__init__(message, code=code)
        if http_status is not None:
            self.http_status = http_status


class AccessRefused(FinanceError):
    """A party may not read this (HTTP 403): ``finance.no_consent``, ``finance.consent_expired``,
    ``finance.not_a_bank``, ``finance.not_the_factory``, ``finance.not_an_oracle``,
    ``finance.not_the_factory_oracle``."""

    code = "finance.refused"
    http_status = 403


class PublishRefused(FinanceError):
    """A credit record cannot be published as asked (HTTP 400/409)."""

    code = "finance.publish_refused"


class FinanceNotDeployed(FinanceError):
    """The deployment has no CreditRegistry (or Receivables) contract (HTTP 404)."""

    code = "finance.not_deployed"
    http_status = 404


class AccessLogError(FinanceError):
    """An access-log entry does not verify (tampered, not anchored, proof mismatch)."""

    code = "access_log.invalid"
    http_status = 409
