"""A lot's certification package, from the ledger: what ``QualityCertifier.certifyLot`` needs.

Only the ledger holds the anchored batches' trees, so only it can build the multiproofs. The
package holds every ANCHORED stored reading of the lot, grouped by chain batch (ascending chain
batch id), each batch as :func:`contracts.lots.batch_readings` gives it (readings in the
multiproof's leaf order, their signatures, the multiproof) and serialised by
:func:`supet.cli.lots.package_json`, the format ``supet lot certify LOT --package FILE`` reads
(``supet.certification-package.v1``). Pending and batched (not yet anchored) readings are left out.

:class:`~ledger_service.errors.NotFound` when the lot was never opened on chain
(``lot.not_found``) or has no anchored reading yet (``lot.no_anchored_readings``).
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from contracts.certification_package import package_json
from contracts.lots import LotRegistryClient, batch_readings
from device_attestation.keys import Scheme
from device_attestation.merkle import MerkleTree
from device_attestation.reading import Reading
from device_attestation.sdk import Submission
from ledger_service.anchoring import ANCHORED, decode_tree
from ledger_service.errors import NotFound
from ledger_service.jsonio import loads_exact
from ledger_service.service import LedgerService
from ledger_service.store.models import BatchRow, ReadingRow

__all__ = ["certification_package"]


def _submission(row: ReadingRow) -> Submission:
    return Submission(
        reading=Reading.from_json_obj(loads_exact(row.reading_json)),
        scheme=Scheme(row.scheme),
        signature=bytes(row.signature),
        digest=bytes(row.digest),
    )


def _anchored_batches(service: LedgerService, lot_id: str) -> list[tuple[int, MerkleTree, list[ReadingRow]]]:
    """(chain batch id, batch tree, the lot's rows in it) of each anchored batch holding the lot."""
    out: list[tuple[int, MerkleTree, list[ReadingRow]]] = []
    with Session(service.engine) as s:
        query = (
            select(ReadingRow)
            .where(col(ReadingRow.lot_id) == lot_id, col(ReadingRow.batch_id).is_not(None))
            .order_by(col(ReadingRow.id))
        )
        rows = [r[0] if isinstance(r, tuple) else r for r in s.exec(query)]
        by_batch: dict[int, list[ReadingRow]] = {}
        for r in rows:
            assert r.batch_id is not None
            by_batch.setdefault(r.batch_id, []).append(r)
        for batch_id, mine in by_batch.items():
            batch = s.get(BatchRow, batch_id)
            if batch is None or batch.status != ANCHORED or batch.chain_batch_id is None:
                continue
            digests = [
                bytes(d)
                for (d,) in s.execute(
                    select(col(ReadingRow.digest))
                    .where(col(ReadingRow.batch_id) == batch_id)
                    .order_by(col(ReadingRow.id))
                )
            ]
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
