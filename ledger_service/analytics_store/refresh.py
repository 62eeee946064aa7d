"""A factory's profile brought up to date with the readings anchored since it was published (issue 15).

A published profile names its data window: its devices (machines, and the meters, cameras and stock
counters of a version-2 profile), its period and the last anchored batch it
read (``through_batch``). :func:`new_data` says whether readings of those machines were anchored in a
later batch, and up to which day; :func:`refresh_profile` publishes the next profile over the same
machines, interval and period length, ending on the day of the newest anchored reading, through the
latest anchored batch and as of the latest block (orders and deliveries). Nothing unanchored enters it
(the analytics source's rule), and a profile whose inputs did not move is not published again.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import col

from ledger_service.analytics_store.publish import ProfileParams, Published, publish_profile
from ledger_service.analytics_store.source import LedgerSource
from ledger_service.store.models import BatchRow, ReadingRow
from ledger_service.store.queries import anchored_readings

__all__ = ["NewData", "new_data", "profile_params_of", "refresh_profile"]


@dataclass(frozen=True, slots=True)
class NewData:
    """Readings of a profile's machines anchored after its window: how many, up to which batch and day."""

    readings: int
    through_batch: int
    last_day: dt.date


def profile_params_of(params: dict[str, Any]) -> ProfileParams | None:
    """A published profile's parameters, or None when it names no data window (made elsewhere)."""
    if params.get("kind") != "profile" or not params.get("machines"):
        return None
    return ProfileParams.from_json_obj(params)


def new_data(engine: Engine, params: ProfileParams) -> NewData | None:
    """Readings of ``params``' devices (machines, meters, cameras, stock counters) anchored in batches
    after ``params.through_batch``; None if none."""
    q = anchored_readings(
        func.count(col(ReadingRow.digest)),
        func.max(col(BatchRow.chain_batch_id)),
        func.max(col(ReadingRow.ts_ms)),
    ).where(
        col(ReadingRow.device_id).in_(list(params.devices)),
        col(BatchRow.chain_batch_id) > params.through_batch,
    )
    with engine.connect() as c:
        n, batch, ts_ms = c.execute(q).one()
    if not n:
        return None
    day = dt.datetime.fromtimestamp(int(ts_ms) / 1000, dt.UTC).date()
    return NewData(readings=int(n), through_batch=int(batch), last_day=day)


def refresh_profile(engine: Engine, source: LedgerSource, params: ProfileParams) -> Published | None:
    """Publish the profile after ``params`` when readings of its machines were anchored since; else None.

    The period keeps its length and ends on the newest anchored reading's day (never before the old end).
    @raise SourceError, InputMismatch, ChainError as :func:`publish_profile` (nothing is stored then)
    """
    fresh = new_data(engine, params)
    if fresh is None:
        return None
    end = max(params.end, fresh.last_day)
    length = params.end - params.start
    nxt = replace(
        params,
        start=end - length,
        end=end,
        through_batch=max(fresh.through_batch, source.latest_anchored_batch()),
        block=source.chain.block_number(),
    )
    return publish_profile(engine, source, nxt)
