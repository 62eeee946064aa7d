"""Certified deliveries that back receivables (issue 15), for the tests of Receivables and of its callers.

:class:`Deliveries` places and accepts a buyer's purchase order with a supplier, opens the supplier's
lots and delivers them (the buyer accepts custody), and gives each lot its quality verdict for real: a
QC device the buyer (the product's spec owner) names signs readings of the lot, they are anchored in a
batch and submitted to the QualityCertifier, which certifies or rejects the lot from them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from eth_account.signers.local import LocalAccount
from support import TestConsortium

from contracts.certifier import QualityCertifierClient, SpecMetric, batch_readings
from contracts.chain import Chain
from contracts.lots import LotRegistryClient, lot_key
from contracts.order_terms import OrderTerms
from contracts.orders import PurchaseOrdersClient, due_day
from device_attestation.merkle import MerkleTree
from device_attestation.sdk import DeviceSigner

GTIN = "04006381333931"
M = 1_000_000  # Reading v1 fixed point
SPEC = [SpecMetric(name="temp_c", min=2 * M, max=8 * M)]
GOOD, BAD = {"temp_c": 4.5}, {"temp_c": 9.5}


@dataclass
class Deliveries:
    """A buyer's certified deliveries from a supplier (see the module's notes)."""

    chain: Chain
    lots: LotRegistryClient
    certifier: QualityCertifierClient
    orders: PurchaseOrdersClient
    anchor: Any  # the ReadingAnchor contract
    admin: LocalAccount  # the certifier's admin and the anchor's anchorer
    consortium: TestConsortium  # enrolls the QC device
    buyer: LocalAccount
    supplier: LocalAccount
    gtin: str = GTIN
    device: DeviceSigner | None = None
    terms: dict[bytes, OrderTerms] = field(default_factory=dict)
    _ts: int = 0

    def setup(self, device_id: str = "QC-BACKING-1") -> Deliveries:
        """The buyer owns the product's spec (one metric, one sample) and names a fresh QC device."""
        self.certifier.set_spec_owner(self.admin, self.gtin, self.buyer.address)
        self.certifier.set_spec(self.buyer, self.gtin, SPEC, min_samples=1)
        self.device = self.consortium.enroll(device_id, "secp256k1")
        self.certifier.set_named_device(self.buyer, self.gtin, device_id)
        return self

    def order(
        self, ref: str, *, quantity: int = 1_000, unit_price: int = 1_000, accept: bool = True
    ) -> bytes:
        """The buyer's order ``ref`` (accepted by the supplier unless told); its id."""
        placed = self.orders.place(
            self.buyer,
            ref,
            supplier=self.supplier.address,
            gtin=int(self.gtin),
            quantity=quantity,
            unit_price=unit_price,
            due_day=due_day(dt.date.today() + dt.timedelta(days=30)),
        )
        if accept:
            self.orders.accept(self.supplier, placed.order_id, placed.terms)
        self.terms[placed.order_id] = placed.terms
        return placed.order_id

    def lot(
        self,
        lot_id: str,
        *,
        quantity: int = 500,
        deliver: bool = True,
        verdict: str | None = "certified",
        gtin: str | None = None,
    ) -> bytes:
        """Open the supplier's lot, deliver it to the buyer (accepted) and judge it; its key.
        ``verdict``: "certified", "rejected" or None (no verdict)."""
        self.lots.open_lot(
            self.supplier,
            lot_id=lot_id,
            gtin=gtin or self.gtin,
            quantity=quantity,
            unit="pcs",
            produced_from_ms=0,
            produced_to_ms=1,
        )
        key = lot_key(lot_id, self.supplier.address)
        if deliver:
            self.lots.propose_transfer(self.supplier, key, self.buyer.address)
            self.lots.accept_transfer(self.buyer, key)
        if verdict is not None:
            self.judge(key, lot_id, good=verdict == "certified")
        return key

    def judge(self, key: bytes, lot_id: str, *, good: bool) -> None:
        """Certify (``good``) or reject (a reading above the spec's bound) the lot from one anchored
        reading."""
        assert self.device is not None, "setup() first"
        now_ms = int(self.chain.block("latest")["timestamp"]) * 1000
        self._ts = max(self._ts + 10, now_ms - 20_000)
        sub = self.device.sign(GOOD if good else BAD, ts_ms=self._ts, lot_id=lot_id)
        tree = MerkleTree.build([sub.digest])
        self.chain.transact(self.anchor.functions.anchorBatch(tree.root, 1), self.admin)
        batch_id = int(self.chain.call(self.anchor.functions.batchCount()))
        self.certifier.certify_lot(self.admin, key, [batch_readings(batch_id, tree, [sub])])


def suite_deliveries(
    chain: Chain, deployment: Any, admin: LocalAccount, buyer: LocalAccount, supplier: LocalAccount
) -> Deliveries:
    """:class:`Deliveries` on a deployed suite whose policy admits ``buyer`` (a core enterprise) and
    ``supplier`` (a supplier: it enrolls the QC device); ``admin`` deployed it. Set up."""
    consortium = TestConsortium(chain, deployment)
    consortium.factory = supplier
    return Deliveries(
        chain=chain,
        lots=LotRegistryClient.from_deployment(chain, deployment),
        certifier=QualityCertifierClient.from_deployment(chain, deployment),
        orders=PurchaseOrdersClient.from_deployment(chain, deployment),
        anchor=deployment.contract(chain, "ReadingAnchor"),
        admin=admin,
        consortium=consortium,
        buyer=buyer,
        supplier=supplier,
    ).setup(f"QC-BACKING-{supplier.address[2:10]}")


def backing_json(d: Deliveries, tag: str) -> dict[str, Any]:
    """A fresh order and certified delivered lot, as the API's confirm body takes them."""
    order = d.order(f"PO-{tag}")
    return {"order_id": "0x" + order.hex(), "lots": ["0x" + d.lot(f"LOT-{tag}").hex()]}


def suite_deployment_deliveries(
    service: Any, admin: LocalAccount, buyer: LocalAccount, supplier: LocalAccount
) -> Deliveries:
    """:func:`suite_deliveries` on a ledger service's chain and deployment."""
    return suite_deliveries(service.chain, service.deployment, admin, buyer, supplier)
