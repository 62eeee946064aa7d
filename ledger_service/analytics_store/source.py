"""The analytics' only door to data: anchored readings from the store, orders and deliveries from the chain.

Nothing unanchored enters a result. A reading is an input only when its batch is anchored on
chain and numbered at most ``through_batch`` (the cut-off a result names, so a later late reading
cannot change it); every reading handed out is checked first:

* its stored content (``reading_json``) gives back its stored digest under the deployment's
  EIP-712 domain (a changed value is caught here, naming the reading);
* the digests the store holds for each batch rebuild the Merkle root that the ``ReadingAnchor``
  contract holds for that batch number (a reading swapped together with its digest, added or
  removed is caught here, naming the batch).

Orders are ``PurchaseOrders`` records of the factory as supplier that it accepted and the buyer did
not cancel, as of block ``block`` (an order the supplier never accepted is no commitment of its). The
chain holds only a salted commitment to each order's quantity and unit price (issue 14): the source
takes the supplier's openings (``order_terms``), checks each against its order's commitment on chain
(:class:`InputMismatch` when one does not open it) and refuses to compute without the opening of an
order that counts (:class:`SourceError` ``analytics.source.order_terms_missing``). A
delivery is a ``LotRegistry`` ``TransferAccepted`` event from the factory to the order's buyer up
to that block, for the lot's quantity at the block's time. Deliveries are matched to the
buyer's orders of the factory first-due-first (the order due earliest that was placed before the
acceptance and still lacks units takes the units; a remainder goes to the next), the rule of
docs/analytics-profile.md.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from eth_utils import keccak, to_checksum_address
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlmodel import col

from analytics.profile import Delivery, Order
from contracts.chain import Chain
from contracts.deployment import Deployment
from contracts.lots import LotRegistryClient
from contracts.order_terms import OrderTerms
from contracts.orders import PurchaseOrdersClient
from contracts.registry import ReadingAnchorClient
from device_attestation.merkle import MerkleTree
from device_attestation.reading import Domain, Reading, reading_digest
from ledger_service.store.batch_status import BatchStatus
from ledger_service.store.models import BatchRow, DeviceCacheRow, ReadingRow
from ledger_service.store.queries import anchored_readings, batch_digests
from supet_base.errors import SupetError

__all__ = [
    "AnchoredReading",
    "ChainInputs",
    "InputMismatch",
    "LedgerSource",
    "ProfileDevices",
    "SourceError",
]


class SourceError(SupetError):
    """The inputs cannot be read (unknown factory, no anchored data...)."""

    code = "analytics.source"


class InputMismatch(SourceError):
    """An input record does not match what the chain anchors: the store was altered."""

    code = "analytics.input_mismatch"


@dataclass(frozen=True, slots=True)
class AnchoredReading:
    """A reading whose batch is anchored on chain."""

    digest: bytes
    device_id: str
    seq: int
    ts_ms: int
    lot_id: str | None
    metrics: dict[str, float]
    batch: int


@dataclass(frozen=True, slots=True)
class ChainInputs:
    """Orders and deliveries of one factory as of one block, with a digest per input record."""

    orders: tuple[Order, ...]
    deliveries: tuple[Delivery, ...]
    digests: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class ProfileDevices:
    """A factory's devices by their role in its profile (``ProfileParams``' fields of the same names)."""

    machines: tuple[str, ...]
    meters: tuple[tuple[str, str], ...]
    cameras: tuple[str, ...]
    stock_counters: tuple[str, ...]


def _asset(device_id: str) -> str:
    """The asset a device id names by convention: the id up to its last ``-`` (``sun-a-l1-kwh`` ->
    ``sun-a-l1``)."""
    return device_id.rsplit("-", 1)[0]


class LedgerSource:
    """Reads the ledger's store and the chain for the analytics (see the module docstring)."""

    def __init__(
        self, engine: Engine, chain: Chain, deployment: Deployment, *, order_terms: Iterable[OrderTerms] = ()
    ) -> None:
        self.engine = engine
        self.chain = chain
        self.deployment = deployment
        self.order_terms: dict[bytes, OrderTerms] = {}
        self.add_order_terms(order_terms)
        self.domain = Domain(chain_id=chain.chain_id, verifying_contract=deployment.address("ReadingAnchor"))
        self.anchor = ReadingAnchorClient(chain, deployment)

    def add_order_terms(self, openings: Iterable[OrderTerms]) -> None:
        """Take the openings of orders' terms (the supplier's); each is checked against the chain when
        its order is read."""
        for terms in openings:
            self.order_terms[terms.order_id] = terms

    # ------------------------------------------------------------------ devices and batches

    def latest_anchored_batch(self) -> int:
        """The highest on-chain batch number the store holds as anchored (0: none)."""
        with self.engine.connect() as c:
            row = c.execute(
                select(col(BatchRow.chain_batch_id))
                .where(col(BatchRow.status) == BatchStatus.ANCHORED)
                .order_by(col(BatchRow.chain_batch_id).desc())
                .limit(1)
            ).first()
        return int(row[0]) if row and row[0] is not None else 0

    def devices_of(self, owner: str) -> list[str]:
        """The device ids (as they sign) whose enrolling party is ``owner`` and that have readings."""
        owner = to_checksum_address(owner)
        with self.engine.connect() as c:
            hashes = {
                bytes(r[0])
                for r in c.execute(
                    select(col(DeviceCacheRow.device_id_hash)).where(col(DeviceCacheRow.owner) == owner)
                )
            }
            ids = [r[0] for r in c.execute(select(col(ReadingRow.device_id)).distinct())]
        return sorted(d for d in ids if keccak(text=d) in hashes)

    def sample_metrics(self, device_id: str) -> dict[str, float]:
        """The metrics of one stored reading of ``device_id`` (to tell machines from stations)."""
        with self.engine.connect() as c:
            row = c.execute(
                select(col(ReadingRow.reading_json)).where(col(ReadingRow.device_id) == device_id).limit(1)
            ).first()
        return {} if row is None else dict(json.loads(row[0]).get("metrics", {}))

    def profile_devices(self, owner: str) -> ProfileDevices:
        """``owner``'s devices with readings, by the metrics one of their readings carries: ``state`` a
        machine, ``energy_kwh`` a kWh meter, ``cam_inspected`` a camera, ``raw_material_units`` or
        ``finished_goods_units`` a stock counter (other devices, e.g. process stations, are none).

        A meter is paired with the machine of the same asset (its id up to the last ``-``: meter
        ``L1-kwh`` meters machine ``L1-ctl``); give the pairs yourself when the ids do not follow it.
        @raise SourceError ``analytics.source.meter_pairing`` naming a meter with no or several machines
        """
        machines: list[str] = []
        meters: list[str] = []
        cameras: list[str] = []
        counters: list[str] = []
        for device in self.devices_of(owner):
            m = self.sample_metrics(device)
            if "state" in m:
                machines.append(device)
            elif "energy_kwh" in m:
                meters.append(device)
            elif "cam_inspected" in m:
                cameras.append(device)
            elif "raw_material_units" in m or "finished_goods_units" in m:
                counters.append(device)
        pairs = []
        for meter in meters:
            same = [x for x in machines if _asset(x) == _asset(meter)]
            if len(same) != 1:
                raise SourceError(
                    f"meter {meter} pairs with {len(same)} machines of asset {_asset(meter)!r}; give the "
                    "(meter, machine) pairs explicitly",
                    code="analytics.source.meter_pairing",
                )
            pairs.append((meter, same[0]))
        return ProfileDevices(
            machines=tuple(machines),
            meters=tuple(pairs),
            cameras=tuple(cameras),
            stock_counters=tuple(counters),
        )

    # ------------------------------------------------------------------ readings

    def readings(
        self, device_ids: Sequence[str], start_ms: int, end_ms: int, *, through_batch: int
    ) -> list[AnchoredReading]:
        """Anchored readings of ``device_ids``, ``start_ms <= ts_ms < end_ms``, batches ``<= through_batch``.

        Ordered by (device, seq). Every reading and every batch it comes from is checked against
        the chain (module docstring); :class:`InputMismatch` names the first that fails.
        """
        if not device_ids:
            raise SourceError("no devices to read", code="analytics.source.no_devices")
        q = (
            anchored_readings(
                col(ReadingRow.digest),
                col(ReadingRow.device_id),
                col(ReadingRow.seq),
                col(ReadingRow.ts_ms),
                col(ReadingRow.lot_id),
                col(ReadingRow.reading_json),
                col(BatchRow.chain_batch_id),
            )
            .where(
                col(ReadingRow.device_id).in_(list(device_ids)),
                col(ReadingRow.ts_ms) >= start_ms,
                col(ReadingRow.ts_ms) < end_ms,
                col(BatchRow.chain_batch_id) <= through_batch,
            )
            .order_by(col(ReadingRow.device_id), col(ReadingRow.seq))
        )
        out: list[AnchoredReading] = []
        with self.engine.connect() as c:
            rows = c.execute(q).all()
        for digest, device_id, seq, ts_ms, lot_id, text, batch in rows:
            obj = json.loads(text)
            reading = Reading.from_json_obj(obj)
            if reading_digest(reading, self.domain) != bytes(digest):
                raise InputMismatch(
                    f"reading 0x{bytes(digest).hex()} (device {device_id}, seq {seq}): its stored content "
                    "does not give its anchored digest: the store was altered",
                    code="analytics.input_mismatch.reading",
                )
            out.append(
                AnchoredReading(
                    digest=bytes(digest),
                    device_id=device_id,
                    seq=int(seq),
                    ts_ms=int(ts_ms),
                    lot_id=lot_id,
                    metrics={k: float(v) for k, v in reading.metrics.items()},
                    batch=int(batch or 0),
                )
            )
        self.check_batches({r.batch for r in out})
        return out

    def check_batches(self, batches: Iterable[int]) -> None:
        """Rebuild each batch's root from the store's digests and compare it with the chain's."""
        for number in sorted(set(batches)):
            with self.engine.connect() as c:
                row = c.execute(
                    select(col(BatchRow.id), col(BatchRow.count)).where(
                        col(BatchRow.chain_batch_id) == number
                    )
                ).first()
                if row is None:
                    raise InputMismatch(
                        f"batch {number} is not in the store", code="analytics.input_mismatch.batch"
                    )
                assert row[0] is not None
                digests = batch_digests(c, row[0])
            on_chain = self.anchor.batch(number)
            rebuilt = MerkleTree.build(digests).root if digests else b""
            if len(digests) != on_chain.count or rebuilt != bytes(on_chain.root):
                raise InputMismatch(
                    f"batch {number}: the store's {len(digests)} readings rebuild root 0x{rebuilt.hex()}, "
                    f"but the chain anchors 0x{bytes(on_chain.root).hex()} over {on_chain.count}: "
                    "the store was altered",
                    code="analytics.input_mismatch.batch",
                )

    # ------------------------------------------------------------------ orders and deliveries

    def chain_inputs(self, supplier: str, *, block: int) -> ChainInputs:
        """Orders of ``supplier`` and the deliveries matched to them, as of ``block``."""
        supplier_address = to_checksum_address(supplier)
        orders_client = PurchaseOrdersClient.from_deployment(self.chain, self.deployment)
        lots = LotRegistryClient.from_deployment(self.chain, self.deployment)
        placed = []
        keys = self.chain.call(
            orders_client.contract.functions.ordersOfSupplier(supplier_address), block=block
        )
        for key in (bytes(k) for k in keys):
            o = orders_client.order(key, block=block)
            if o.accepted and not o.cancelled:
                placed.append(o)
        placed.sort(key=lambda o: (o.due_day, o.placed_at, o.key))
        quantity = {o.key: self._opened_quantity(o.key, o.terms_commitment) for o in placed}
        orders = tuple(
            Order(
                order_id="0x" + o.key.hex(),
                buyer=o.buyer,
                quantity=float(quantity[o.key]),
                due=o.due_date,
                placed_ms=int(o.placed_at) * 1000,
            )
            for o in placed
        )
        digests = [keccak(b"order" + o.key) for o in placed]
        buyers = {o.buyer for o in placed}
        event = lots.contract.events.TransferAccepted
        logs = self.chain.request(
            lambda: event.get_logs(from_block=0, to_block=block, argument_filters={"from": supplier_address}),
            context="TransferAccepted logs",
        )
        accepted: list[tuple[int, int, bytes, str, int]] = []
        for log in logs:
            to: str = to_checksum_address(log["args"]["to"])
            if to not in buyers:
                continue
            ts = int(self.chain.block(log["blockNumber"])["timestamp"])
            lot_key = bytes(log["args"]["lotId"])
            qty = int(lots.lot(lot_key, block=block).quantity)
            accepted.append((ts, int(log["logIndex"]), lot_key, to, qty))
            digests.append(
                keccak(b"delivery" + bytes(log["transactionHash"]) + int(log["logIndex"]).to_bytes(4, "big"))
            )
        accepted.sort(key=lambda a: (a[0], a[1]))
        remaining = dict(quantity)
        deliveries: list[Delivery] = []
        by_buyer: dict[str, list[Any]] = defaultdict(list)
        for o in placed:
            by_buyer[o.buyer].append(o)
        for ts, _i, _lot, to, qty in accepted:
            for o in by_buyer[to]:
                if qty <= 0:
                    break
                if remaining[o.key] <= 0 or o.placed_at > ts:
                    continue
                take = min(qty, remaining[o.key])
                remaining[o.key] -= take
                qty -= take
                deliveries.append(
                    Delivery(order_id="0x" + o.key.hex(), quantity=float(take), delivered_ms=ts * 1000)
                )
        return ChainInputs(orders=orders, deliveries=tuple(deliveries), digests=tuple(digests))

    def _opened_quantity(self, key: bytes, committed: bytes) -> int:
        """The quantity of order ``key`` from its opening, checked against its commitment on chain."""
        terms = self.order_terms.get(key)
        if terms is None:
            raise SourceError(
                f"order 0x{key.hex()} counts for the factory but its terms are not opened here: the chain "
                "holds only their commitment; give the supplier's openings "
                "(supet analytics ... --order-terms FILE)",
                code="analytics.source.order_terms_missing",
            )
        if terms.commitment() != committed:
            raise InputMismatch(
                f"the opening given for order 0x{key.hex()} does not open its terms commitment on chain "
                f"(0x{committed.hex()}): its quantity, unit price or salt was altered",
                code="analytics.input_mismatch.order_terms",
            )
        return terms.quantity
