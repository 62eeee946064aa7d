"""A receivable's backing package, served to a bank (issue 15.3): order -> lots -> custody -> quality
certificates -> confirmation -> value, each step checked against the chain by
:func:`contracts.backing_check.check_backing` (what ``supet finance check`` runs on the bank's own node).

The value step needs the order's terms opening (quantity, unit price, salt): the chain holds only their
commitment, so the caller sends the opening it holds; it is used for this check and not stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from contracts.backing_check import check_backing
from contracts.order_terms import InvalidTerms, OrderTerms
from ledger_service.credit_desk.errors import FinanceError
from ledger_service.credit_desk.queries import receivables_client

__all__ = ["backing_report"]


def backing_report(
    service: Any, receivable_id: int, openings: Sequence[dict[str, Any]] = ()
) -> dict[str, Any]:
    """The receivable's backing report (``ok``, and each step's ``ok`` and ``detail``) as JSON; an opening
    that is not one is refused (:class:`FinanceError` ``finance.bad_order_terms``)."""
    try:
        terms = [OrderTerms.from_json_obj(o) for o in openings]
    except InvalidTerms as e:
        raise FinanceError(f"an order-terms opening is unusable: {e}", code="finance.bad_order_terms") from e
    report = check_backing(service.chain, receivables_client(service), receivable_id, terms)
    return report.to_json_obj()
