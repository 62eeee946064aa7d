"""Typed refusals of the finance API. Each is a :class:`~ledger_service.errors.LedgerError` with a
dotted ``code``; the HTTP status the API answers with is named by class in the one map,
:mod:`ledger_service.api.errors`."""

from __future__ import annotations

from ledger_service.errors import LedgerError

__all__ = [
    "AccessLogError",
    "AccessRefused",
    "FinanceError",
    "FinanceNotDeployed",
    "LineRefused",
    "LineUnavailable",
    "PublishRefused",
    "UnknownProfile",
]


class FinanceError(LedgerError):
    """Base of the finance API's errors."""

    code = "finance.error"


class AccessRefused(FinanceError):
    """A party may not read this (HTTP 403): ``finance.no_consent``, ``finance.consent_expired``,
    ``finance.not_a_bank``, ``finance.not_the_factory``, ``finance.not_an_oracle``,
    ``finance.not_the_factory_oracle``."""

    code = "finance.refused"


class PublishRefused(FinanceError):
    """A credit record cannot be published as asked (HTTP 400)."""

    code = "finance.publish_refused"


class UnknownProfile(PublishRefused):
    """The profile commitment to assess is not a published result of this service (HTTP 404)."""

    code = "finance.publish.unknown_profile"


class FinanceNotDeployed(FinanceError):
    """The deployment has no CreditRegistry (or Receivables) contract (HTTP 404)."""

    code = "finance.not_deployed"


class AccessLogError(FinanceError):
    """An access-log entry does not verify (tampered, not anchored, proof mismatch)."""

    code = "access_log.invalid"


class LineRefused(FinanceError):
    """The oracle does not sign (HTTP 409): ``finance.line.exceeded``, ``finance.line.record_stale``,
    ``finance.line.no_record``, ``finance.line.not_offered``, ``finance.line.not_the_oracle``,
    ``finance.line.no_opening``."""

    code = "finance.line.refused"


class LineUnavailable(FinanceError):
    """This service holds no oracle key (HTTP 503, ``finance.line.no_oracle_key``)."""

    code = "finance.line.no_oracle_key"
