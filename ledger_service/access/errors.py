"""Refusals of the access policy (issue 14). Each has a stable ``code``; the HTTP status is named by
class in the one map, :mod:`ledger_service.api.errors`: :class:`AnonymousRefused` 401 (with
``WWW-Authenticate``), :class:`AccessDenied` 403.

Codes (the full table is docs/access-policy.md):

- ``access.anonymous``: nobody signed the request and the data was not disclosed;
- ``access.not_owner``: the caller is not the party (or device) whose data it is;
- ``access.not_custodian``: not the lot's issuer, a custodian (past or present) or a named auditor;
- ``access.not_a_party``: not a party to the receivable;
- ``access.not_holder``: only the lot's holder (or its buyer, to disclose) may do this;
- ``access.no_policy``: a read route the policy has no entry for (refused to everyone);
- finance data keeps the finance codes it always had: ``finance.not_the_factory``,
  ``finance.not_a_bank``, ``finance.no_consent`` (never granted, or revoked),
  ``finance.consent_expired``.
"""

from __future__ import annotations

from ledger_service.errors import LedgerError

__all__ = ["AccessDenied", "AccessError", "AnonymousRefused"]


class AccessError(LedgerError):
    """Base of the access policy's refusals."""

    code = "access.denied"


class AccessDenied(AccessError):
    """The caller proved who it is, and the policy does not let it read (or do) this (HTTP 403)."""

    code = "access.denied"


class AnonymousRefused(AccessError):
    """Nobody signed the request, and only a signed-in party or device may read this (HTTP 401)."""

    code = "access.anonymous"
