"""The re-rating pass on a schedule (issue 15): a background thread of the service.

Started by :meth:`ledger_service.service.LedgerService.start` when ``SUPET_RERATING_INTERVAL_SECONDS``
is above 0 (with ``SUPET_RERATING_ORACLE_KEY``); one :meth:`Rerater.run` every interval, the first one
interval after the start. A failed pass (the chain or the database down) is logged and retried at the
next interval: a pass leaves nothing half-done (:mod:`ledger_service.credit_desk.rerating`).

Several instances on one database: where anchoring runs, the service gates the worker on the anchoring
lead (:attr:`~ledger_service.periodic.PeriodicWorker.gate`, :mod:`ledger_service.anchoring.leader`), so
one instance publishes with the oracle key; the others skip their passes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from eth_account import Account

from contracts.order_terms import read_openings
from ledger_service.credit_desk.desk import desk_of
from ledger_service.credit_desk.rerating import Rerater, RerateReport
from ledger_service.errors import ConfigError
from ledger_service.periodic import PeriodicWorker

__all__ = ["ReratingWorker", "rerater_for"]

log = logging.getLogger(__name__)


class ReratingWorker(PeriodicWorker):
    """Runs ``make_rerater().run()`` every ``interval`` seconds until stopped."""

    def __init__(self, make_rerater: Callable[[], Rerater], interval: float) -> None:
        super().__init__(interval, name="supet-rerating", what="re-rating")
        self.make_rerater = make_rerater
        self.last_report: RerateReport | None = None

    def run_once(self) -> RerateReport | None:
        """One pass now; its report, or None when it failed as a whole (logged)."""
        try:
            report = self.make_rerater().run()
        except Exception as e:  # the pass is retried at the next interval, whatever failed
            self.last_error = f"{type(e).__name__}: {e}"
            log.warning("re-rating pass failed, retried in %.0f s: %s", self.interval, e)
            return None
        self.passes += 1
        self.last_report, self.last_error = report, None
        published = report.published
        log.info(
            "re-rating pass: %d factories, %d records published, %.2f s",
            len(report.outcomes),
            len(published),
            report.seconds,
        )
        return report


def rerater_for(service: Any) -> Rerater:
    """A :class:`Rerater` of ``service`` as its settings say: the oracle's key, the order terms file (read
    now, so a supplier's new openings count from the next pass), the renewal margin, and a claim settle
    time of twice the chain timeout (a claim younger than that may still be on its way)."""
    settings = service.settings
    if settings.rerating_oracle_key is None:
        raise ConfigError("re-rating needs SUPET_RERATING_ORACLE_KEY, the analytics oracle's key")
    try:
        oracle = Account.from_key(settings.rerating_oracle_key.get_secret_value())
    except ValueError as e:
        raise ConfigError("SUPET_RERATING_ORACLE_KEY is not a valid private key (0x-hex, 32 bytes)") from e
    terms = read_openings(settings.rerating_order_terms) if settings.rerating_order_terms is not None else []
    return Rerater(
        desk_of(service),
        oracle,
        order_terms=terms,
        renew_before_s=settings.rerating_renew_before_seconds,
        settle_s=2 * settings.anchor_timeout_seconds,
    )
