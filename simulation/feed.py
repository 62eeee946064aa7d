"""Drive a simulated world (:mod:`simulation.factories`) through a real deployment.

Everything goes the way a real consortium's data goes: the buyer and the factories are admitted
by the consortium's rules (:class:`contracts.onboarding.Onboarding`); each factory enrolls its
devices with certificates from its device CA and proof of possession; the devices sign their
readings (Reading v1) and send them to the ledger's ingest (a ``submit`` callable: the in-process
pipeline, or HTTP to ``supet serve``) at their send time, store-and-forward readings late; the
buyer places its purchase orders on chain (``PurchaseOrders``: only a salted commitment to each order's
quantity and unit price, whose openings the feed hands the factory and keeps in
``FeedResult.order_terms``) and each factory accepts its own on those terms;
each line's day of output is opened as a lot and transferred to the buyer, who accepts it
(``LotRegistry``).

Time: the readings carry the simulated times. Where the chain's clock can be set (the embedded
chain built with ``start_time``, or anvil) the chain follows the simulated day, so orders, lots and
acceptances carry the simulated times too; on any other node they carry the node's real time
(``FeedResult.chain_time_simulated`` says which), and OTIF then measures the run, not the story.
The ledger refuses readings older than its store-and-forward window (``late_window_ms``): a
simulated period must lie inside it.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from cryptography import x509
from eth_account.signers.local import LocalAccount

from contracts.chain import Chain
from contracts.deployment import Deployment
from contracts.enrollment import enroll_with_device_key
from contracts.lots import LotRegistryClient, lot_key
from contracts.onboarding import Onboarding
from contracts.order_terms import OrderTerms
from contracts.orders import PurchaseOrdersClient, due_day
from contracts.registry import DeviceRegistryClient
from device_attestation.birth import attest_birth, ca_public_point
from device_attestation.certificates import make_device_csr
from device_attestation.keys import DeviceKey, parse_scheme
from device_attestation.manufacturer_ca import create_manufacturer_ca, issue_device_certificate
from device_attestation.reading import Domain, Reading, reading_digest
from device_attestation.signing import sign_digest
from simulation.truth import FactoryTruth, SimReading, World

__all__ = ["FeedResult", "SimulationFeed", "SubmitResult"]

DAY_S = 86_400
#: The unit price of every simulated order, in minor units (the simulation has no prices of its own).
SIM_UNIT_PRICE = 1_000


class SubmitResult(Protocol):
    """What the ingest answers per submission: ``code`` is None when accepted."""

    @property
    def code(self) -> str | None: ...


Submit = Callable[[list[dict[str, Any]]], Sequence[SubmitResult]]
Progress = Callable[[str, int, int], None]


@dataclass
class FeedResult:
    """What the feed did: parties, devices, how the ledger answered, what went on chain."""

    buyer: str = ""
    factories: dict[str, str] = field(default_factory=dict)
    devices: dict[str, str] = field(default_factory=dict)
    sent: int = 0
    accepted: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    lots: list[str] = field(default_factory=list)
    orders: list[str] = field(default_factory=list)
    #: The openings of the orders' terms commitments (buyer and supplier hold them; the chain does not).
    order_terms: list[OrderTerms] = field(default_factory=list)
    chain_time_simulated: bool = False


def _day_s(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp())


@dataclass
class SimulationFeed:
    """Feeds a :class:`World` into a deployment and a ledger (see the module docstring)."""

    chain: Chain
    deployment: Deployment
    onboarding: Onboarding
    submit: Submit
    progress: Progress | None = None
    chunk: int = 5_000
    result: FeedResult = field(default_factory=FeedResult)

    def __post_init__(self) -> None:
        self.domain = Domain(
            chain_id=self.chain.chain_id, verifying_contract=self.deployment.address("ReadingAnchor")
        )
        self.keys: dict[str, DeviceKey] = {}
        self.parties: dict[str, LocalAccount] = {}
        self.lots = LotRegistryClient.from_deployment(self.chain, self.deployment)
        self.orders = PurchaseOrdersClient.from_deployment(self.chain, self.deployment)
        self.registry = DeviceRegistryClient(self.chain, self.deployment)

    # ------------------------------------------------------------------ set-up

    def _tick(self, step: str, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(step, done, total)

    def setup(self, world: World) -> None:
        """Admit the buyer and the factories, trust a device CA, enroll every device."""
        ob = self.onboarding
        buyer = ob.account("buyer")
        ob.admit(buyer, "core-enterprise")
        self.parties["buyer"] = buyer
        self.result.buyer = buyer.address
        now = dt.datetime.now(dt.UTC)
        ca_key, ca_cert = create_manufacturer_ca(
            common_name="Simulated Device CA",
            organization="supET simulation",
            valid_days=400,
            not_before=now - dt.timedelta(days=60),
        )
        self.registry.trust_ca(ob.admin, *ca_public_point(ca_cert), "Simulated Device CA")
        # The registry refuses an activation before the enrollment block (less 60 s): devices count
        # from their enrollment block (0), which on the simulated chain (set a day before the
        # period) precedes the period; on a node at the real time, earlier readings fail. Not the
        # period's start: the embedded chain estimates gas at the wall clock's time, not its own.
        start_ms = 0
        total = sum(len(f.spec.device_ids()) for f in world.factories)
        done = 0
        for f in world.factories:
            party = ob.account(f"factory-{f.spec.factory_id}")
            ob.admit(party, "supplier")
            self.parties[f.spec.factory_id] = party
            self.result.factories[f.spec.factory_id] = party.address
            for device_id in f.spec.device_ids():
                self._enroll(device_id, party, ca_key, ca_cert, now, start_ms, f.spec.scheme_of(device_id))
                self.result.devices[device_id] = f.spec.factory_id
                done += 1
                self._tick("enroll devices", done, total)

    def _enroll(
        self,
        device_id: str,
        party: LocalAccount,
        ca_key: Any,
        ca_cert: x509.Certificate,
        now: dt.datetime,
        active_from_ms: int,
        scheme: str = "p256",
    ) -> None:
        key = DeviceKey.generate(parse_scheme(scheme))
        cert = issue_device_certificate(
            ca_key=ca_key,
            ca_cert=ca_cert,
            csr=make_device_csr(key, device_id),
            valid_days=365,
            not_before=now - dt.timedelta(days=30),
        )
        enroll_with_device_key(
            registry=self.registry,
            party=party,
            certificate=cert,
            ca_certificates=[ca_cert],
            device_key=key,
            birth=attest_birth(ca_key=ca_key, ca_cert=ca_cert, certificate=cert),
            now=now,
            active_from_ms=active_from_ms,
        )
        self.keys[device_id] = key

    # ------------------------------------------------------------------ streaming

    def sign(self, r: SimReading) -> dict[str, Any]:
        """The signed submission of one simulated reading."""
        reading = Reading(device_id=r.device_id, seq=r.seq, ts_ms=r.ts_ms, lot_id=r.lot_id, metrics=r.metrics)
        key = self.keys[r.device_id]
        signature = sign_digest(key, reading_digest(reading, self.domain))
        return {"reading": reading.to_json_obj(), "scheme": key.scheme, "signature": "0x" + signature.hex()}

    def _send(self, readings: list[SimReading], total: int) -> None:
        for i in range(0, len(readings), self.chunk):
            part = readings[i : i + self.chunk]
            answers = self.submit([self.sign(r) for r in part])
            for a in answers:
                if a.code is None:
                    self.result.accepted += 1
                else:
                    self.result.rejected[a.code] += 1
            self.result.sent += len(part)
            self._tick("stream readings", self.result.sent, total)

    def _warp(self, ts: int) -> None:
        if self.chain.can_warp and ts > int(self.chain.block("latest")["timestamp"]):
            self.chain.warp(ts)

    def run(self, world: World) -> FeedResult:
        """Set up (unless done), then stream the period day by day; returns :attr:`result`."""
        if not self.keys:
            self.setup(world)
        self.result.chain_time_simulated = self.chain.can_warp
        buyer = self.parties["buyer"]
        queue = world.send_order()
        total = len(queue)
        pos = 0
        pending_accept: list[bytes] = []
        for d in range(world.days):
            day = world.start + dt.timedelta(days=d)
            self._warp(_day_s(day) + 8 * 3600)
            # The buyer's morning: today's orders first, then it accepts yesterday's lots (the
            # simulator's truth treats an order placed at the acceptance's time as open for it).
            for f in world.factories:
                self._place_orders(f, day, buyer)
            for lot_id in pending_accept:
                self.lots.accept_transfer(buyer, lot_id)
            pending_accept = []
            end_ms = _day_s(day + dt.timedelta(days=1)) * 1000
            batch: list[SimReading] = []
            while pos < total and queue[pos].send_ms <= end_ms:
                batch.append(queue[pos])
                pos += 1
            self._send(batch, total)
            for f in world.factories:
                ship = _day_s(day) + f.spec.ship_hour * 3600
                self._warp(ship)
                pending_accept.extend(self._ship(f, day))
        self._warp(_day_s(world.start + dt.timedelta(days=world.days)) + 8 * 3600)
        for lot_id in pending_accept:
            self.lots.accept_transfer(buyer, lot_id)
        self._send(queue[pos:], total)
        return self.result

    def _place_orders(self, f: FactoryTruth, day: dt.date, buyer: LocalAccount) -> None:
        supplier = self.parties[f.spec.factory_id]
        for o in f.orders:
            if o.placed_ms // 1000 // DAY_S == _day_s(day) // DAY_S:
                placed = self.orders.place(
                    buyer,
                    o.order_ref,
                    supplier=supplier.address,
                    gtin=int(f.spec.gtin),
                    quantity=o.quantity,
                    unit_price=SIM_UNIT_PRICE,
                    due_day=due_day(o.due),
                )
                # the buyer sends the factory the opening; the factory takes the order on those terms
                self.orders.accept(supplier, placed.order_id, placed.terms)
                self.result.orders.append(o.order_ref)
                self.result.order_terms.append(placed.terms)

    def _ship(self, f: FactoryTruth, day: dt.date) -> list[bytes]:
        """Open and propose the day's lots; their on-chain keys (scoped to the factory), to accept."""
        party = self.parties[f.spec.factory_id]
        shipped: list[bytes] = []
        for d in f.deliveries:
            if d.day != day or d.quantity <= 0:
                continue
            self.lots.open_lot(
                party,
                lot_id=d.lot_id,
                gtin=f.spec.gtin,
                quantity=d.quantity,
                unit="pcs",
                produced_from_ms=_day_s(day) * 1000,
                produced_to_ms=_day_s(day + dt.timedelta(days=1)) * 1000 - 1,
            )
            key = lot_key(d.lot_id, party.address)
            self.lots.propose_transfer(party, key, self.parties["buyer"].address)
            self.result.lots.append(d.lot_id)
            shipped.append(key)
        return shipped
