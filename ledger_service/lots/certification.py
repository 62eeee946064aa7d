"""A lot's certification package, from the ledger: what ``QualityCertifier.certifyLot`` needs.

Only the ledger holds the anchored batches' trees, so only it can build the multiproofs. The
package holds every ANCHORED stored reading of the lot, grouped by chain batch (ascending chain
batch id), each batch as :func:`contracts.certifier.batch_readings` gives it (readings in the
multiproof's leaf order, their signatures, the multiproof) and serialised by
:func:`supet.cli.lots.package_json`, the format ``supet lot certify LOT --package FILE`` reads
(``supet.certification-package.v1``). Pending and batched (not yet anchored) readings are left out.

:class:`~ledger_service.errors.NotFound` when the lot was never opened on chain
(``lot.not_found``) or has no anchored reading yet (``lot.no_anchored_readings``).

Over HTTP the package is paged (:func:`certification_package_page`): a page holds whole batches,
in ascending chain batch id, adding batches while the page holds fewer than ``limit`` readings of
the lot (at least one batch, so a page holds at most ``limit`` readings or one batch); its
``next_cursor`` is the last chain batch id on it. ``certifyLot`` takes the concatenation of every
page's ``batches``. Pages are cached, rendered, under the lot's
:func:`ledger_service.lots.epcis.export_fingerprint` (:class:`~ledger_service.lots.epcis.ExportCache`).
"""

from __future__ import annotations

from typing import Any, Final

from sqlalchemy import func
from sqlmodel import Session, col, select

from contracts.certification_package import package_json
from contracts.certifier import batch_readings
from contracts.lots import LotRegistryClient
from device_attestation.keys import Scheme
from device_attestation.merkle import MerkleTree
from device_attestation.reading import Reading
from device_attestation.sdk import Submission
from ledger_service.errors import LedgerError, NotFound
from ledger_service.jsonio import dumps_exact, loads_exact
from ledger_service.lots.epcis import ExportPage, export_cache_of, export_fingerprint, lot_state
from ledger_service.service import LedgerService
from ledger_service.store.batch_status import BatchStatus
from ledger_service.store.batch_tree import decode_tree
from ledger_service.store.models import BatchRow, ReadingRow
from ledger_service.store.queries import anchored_readings, batch_digests

__all__ = [
    "DEFAULT_PACKAGE_PAGE",
    "MAX_PACKAGE_PAGE",
    "InvalidPackageCursor",
    "certification_package",
    "certification_package_page",
]

#: Readings of the lot per page of the package (whole batches): the default and the hard maximum.
DEFAULT_PACKAGE_PAGE: Final = 2000
MAX_PACKAGE_PAGE: Final = 5000


class InvalidPackageCursor(LedgerError):
    """The package's paging cursor is not a chain batch id this endpoint issued."""

    code = "lot.bad_cursor"


def _submission(row: ReadingRow) -> Submission:
    return Submission(
        reading=Reading.from_json_obj(loads_exact(row.reading_json)),
        scheme=Scheme(row.scheme),
        signature=bytes(row.signature),
        digest=bytes(row.digest),
    )


def _anchored_batches(
    service: LedgerService,
    lot_id: str,
    batch_ids: list[int] | None = None,
    devices: list[str] | None = None,
) -> list[tuple[int, MerkleTree, list[ReadingRow]]]:
    """(chain batch id, batch tree, the lot's rows in it) of each anchored batch holding the lot
    (only the store batches ``batch_ids`` and the readings of ``devices`` when given)."""
    out: list[tuple[int, MerkleTree, list[ReadingRow]]] = []
    with Session(service.engine) as s:
        query = (
            select(ReadingRow)
            .where(col(ReadingRow.lot_id) == lot_id, col(ReadingRow.batch_id).is_not(None))
            .order_by(col(ReadingRow.id))
        )
        if batch_ids is not None:
            query = query.where(col(ReadingRow.batch_id).in_(batch_ids))
        if devices is not None:
            query = query.where(col(ReadingRow.device_id).in_(devices))
        rows = [r[0] if isinstance(r, tuple) else r for r in s.exec(query)]
        by_batch: dict[int, list[ReadingRow]] = {}
        for r in rows:
            assert r.batch_id is not None
            by_batch.setdefault(r.batch_id, []).append(r)
        for batch_id, mine in by_batch.items():
            batch = s.get(BatchRow, batch_id)
            if batch is None or batch.status != BatchStatus.ANCHORED or batch.chain_batch_id is None:
                continue
            digests = batch_digests(s, batch_id)
            out.append((batch.chain_batch_id, decode_tree(batch.tree, digests), mine))
        s.expunge_all()
    return sorted(out, key=lambda b: b[0])


def certification_package(service: LedgerService, lot_id: str) -> dict[str, Any]:
    """The lot's certification package (``supet.certification-package.v1``, see the module docstring).

    :class:`NotFound` for a lot not on chain or without anchored readings; a
    :class:`~contracts.errors.ChainError` when the chain is unreachable.
    """
    if not LotRegistryClient.from_deployment(service.chain, service.deployment).exists(lot_id):
        raise NotFound(f"no lot {lot_id!r} on chain: it was never opened or split off", code="lot.not_found")
    batches = [
        batch_readings(chain_batch_id, tree, [_submission(r) for r in rows])
        for chain_batch_id, tree, rows in _anchored_batches(service, lot_id)
    ]
    if not batches:
        raise NotFound(
            f"lot {lot_id!r} has no anchored readings yet: readings are certified once their batch is "
            "anchored on chain; retry after the next anchoring",
            code="lot.no_anchored_readings",
        )
    return package_json(lot_id, batches)


def _page_batches(
    service: LedgerService, lot_id: str, devices: list[str], after_chain_batch: int, limit: int
) -> tuple[list[int], int | None]:
    """The store ids of the anchored batches of the next page, and the last one's chain batch id
    when more follow."""
    with Session(service.engine) as s:
        counts = s.execute(
            anchored_readings(col(BatchRow.id), col(BatchRow.chain_batch_id), func.count(col(ReadingRow.id)))
            .where(
                col(ReadingRow.lot_id) == lot_id,
                col(ReadingRow.device_id).in_(devices),
                col(BatchRow.chain_batch_id) > after_chain_batch,
            )
            .group_by(col(BatchRow.id), col(BatchRow.chain_batch_id))
            .order_by(col(BatchRow.chain_batch_id))
        ).all()
    chosen: list[int] = []
    held = 0
    for i, (batch_id, _, n) in enumerate(counts):
        if chosen and held + int(n) > limit:
            return chosen, int(counts[i - 1][1] or 0)
        chosen.append(int(batch_id or 0))
        held += int(n)
    return chosen, None


def certification_package_page(
    service: LedgerService,
    lot_id: str,
    *,
    issuer: str | None = None,
    cursor: str | None = None,
    limit: int = DEFAULT_PACKAGE_PAGE,
) -> ExportPage:
    """One page of the lot's certification package (see the module docstring), cached.

    The lot is resolved as the timeline resolves it (``lot_id`` of ``issuer``, or the one lot with
    that id; :class:`~ledger_service.lots.timeline.AmbiguousLotId` otherwise) and holds only readings of the
    devices that may speak for it (:func:`ledger_service.lots.timeline.lot_devices`: what ``certifyLot``
    accepts). The page is the package's JSON with ``next_cursor`` (``None`` on the last page).
    :class:`NotFound` as :func:`certification_package` (``lot.no_anchored_readings`` only on the
    first page); :class:`InvalidPackageCursor` (``lot.bad_cursor``) for a cursor that is no chain
    batch id; ``ValueError`` for a limit outside 1..:data:`MAX_PACKAGE_PAGE`.
    """
    if not 1 <= limit <= MAX_PACKAGE_PAGE:
        raise ValueError(f"limit must be 1..{MAX_PACKAGE_PAGE}, got {limit}")
    after = 0
    if cursor is not None:
        if not cursor.isascii() or not cursor.isdigit() or len(cursor) > 18:
            raise InvalidPackageCursor(
                f"cursor {cursor[:80]!r} was not issued by this endpoint: pass the `next_cursor` of the "
                "previous page, or none for the first page"
            )
        after = int(cursor)
    state = lot_state(service, lot_id, issuer)
    if state is None:
        raise NotFound(f"no lot {lot_id!r} on chain: it was never opened or split off", code="lot.not_found")
    key, chain_steps, devices = state.key, state.chain_steps, state.devices
    cache = export_cache_of(service)
    fingerprint = export_fingerprint(service, lot_id, chain_steps, devices)
    cache_key = ("package", lot_id, "0x" + key.hex(), after, limit, fingerprint)
    cached = cache.get(cache_key)
    if cached is not None:
        return cached
    batch_ids, last = _page_batches(service, lot_id, devices, after, limit)
    batches = [
        batch_readings(chain_batch_id, tree, [_submission(r) for r in rows])
        for chain_batch_id, tree, rows in _anchored_batches(service, lot_id, batch_ids, devices)
    ]
    if not batches and cursor is None:
        raise NotFound(
            f"lot {lot_id!r} has no anchored readings yet: readings are certified once their batch is "
            "anchored on chain; retry after the next anchoring",
            code="lot.no_anchored_readings",
        )
    next_cursor = str(last) if last is not None else None
    body = {**package_json(lot_id, batches), "next_cursor": next_cursor}
    page = ExportPage(body=dumps_exact(body), next_cursor=next_cursor)
    cache.put(cache_key, page)
    return page
