"""Typed client of the QualityCertifier: versioned quality specs and lot certification.

- :class:`QualityCertifierClient`: versioned specs (:class:`Spec` of :class:`SpecMetric`), who sets
  them and names devices, and :meth:`~QualityCertifierClient.certify_lot`, whose standing verdict
  :meth:`~QualityCertifierClient.certificate` decodes into a :class:`Certificate`. Lots are named as
  :class:`contracts.lots.LotRegistryClient` names them (key, or text resolved through its registry).
- :func:`batch_readings` turns a batch's signed readings and its :class:`MerkleTree` into the
  ``BatchReadings`` argument, readings in the multiproof's order.
- The contract is deployed with the LotRegistry: :func:`contracts.lots.deploy_supply_chain`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import IntEnum
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address
from web3.types import BlockIdentifier

from contracts.chain import Chain, TxResult
from contracts.deployment import Deployment
from contracts.lots import Gtin, LotRegistryClient, padded_ascii, parse_gtin, unpadded_ascii
from contracts.registry import device_id_hash, reading_tuple
from device_attestation.merkle import MerkleTree
from device_attestation.reading import reading_struct
from device_attestation.sdk import Submission

__all__ = [
    "SPEC_ACTION",
    "Certificate",
    "CertificateStatus",
    "QualityCertifierClient",
    "RejectReason",
    "Spec",
    "SpecMetric",
    "batch_readings",
    "human_fixed",
]

#: The admission-gate action the QualityCertifier asks of whoever sets a spec.
SPEC_ACTION = keccak(b"supet.spec.set")

_ZERO_ADDRESS = "0x" + "00" * 20


class CertificateStatus(IntEnum):
    """``QualityCertifier.Status``."""

    NONE = 0
    CERTIFIED = 1
    REJECTED = 2


class RejectReason(IntEnum):
    """``QualityCertifier.Reason``."""

    NONE = 0
    BELOW_MIN = 1
    ABOVE_MAX = 2
    MISSING_METRIC = 3
    TOO_FEW_SAMPLES = 4


@dataclass(frozen=True, kw_only=True)
class SpecMetric:
    """One metric of a spec; bounds in Reading v1 fixed point (value x 10^6)."""

    name: str
    min: int
    max: int
    required: bool = True

    def to_tuple(self) -> tuple[bytes, int, int, bool]:
        return (padded_ascii(self.name), self.min, self.max, self.required)


@dataclass(frozen=True, kw_only=True)
class Spec:
    """A spec version as the certifier holds it."""

    gtin: Gtin
    version: int
    metrics: tuple[SpecMetric, ...]
    min_samples: int
    set_by: str
    set_at: int


def human_fixed(fixed: int) -> str:
    """A Reading v1 fixed-point value (x 10^6) in human units, exactly."""
    text = format(Decimal(fixed) / Decimal(1_000_000), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


@dataclass(frozen=True, kw_only=True)
class Certificate:
    """A lot's standing verdict (``status`` NONE while it has none)."""

    status: CertificateStatus
    reason: RejectReason
    spec_version: int
    samples: int
    decided_at: int
    submitter: str
    metric: str
    value: int
    bound: int
    evidence: bytes

    @property
    def certified(self) -> bool:
        return self.status is CertificateStatus.CERTIFIED

    def explain(self) -> str:
        """Why a rejected lot failed, in words (values in human units: Reading v1 fixed point / 10^6)."""
        r = self.reason
        value, bound = human_fixed(self.value), human_fixed(self.bound)
        if r is RejectReason.BELOW_MIN:
            return f"metric {self.metric} value {value} below its minimum {bound}"
        if r is RejectReason.ABOVE_MAX:
            return f"metric {self.metric} value {value} above its maximum {bound}"
        if r is RejectReason.MISSING_METRIC:
            return f"required metric {self.metric} missing (no reading carries it)"
        if r is RejectReason.TOO_FEW_SAMPLES:
            return (
                f"too few samples of metric {self.metric}: {self.value} "
                f"where the spec asks at least {self.bound}"
            )
        return r.name.lower()


def batch_readings(batch_id: int, tree: MerkleTree, submissions: Iterable[Submission]) -> tuple[Any, ...]:
    """The ``BatchReadings`` tuple of some of a batch's readings: readings, signatures, multiproof.

    The readings are put in the multiproof's leaf order (what ``multiProofVerify`` needs); each
    submission's ``digest`` must be in ``tree`` (the batch as anchored).
    """
    by_digest = {s.digest: s for s in submissions}
    proof = tree.multiproof(by_digest)
    ordered = [by_digest[d] for d in proof.leaves]
    return (
        batch_id,
        [reading_tuple(reading_struct(s.reading)) for s in ordered],
        [s.signature for s in ordered],
        list(proof.proof),
        list(proof.proof_flags),
    )


class QualityCertifierClient:
    """Reads and writes of one QualityCertifier (lots by key or text, as :class:`LotRegistryClient`)."""

    def __init__(self, chain: Chain, address: str, *, from_block: int = 0) -> None:
        self.chain = chain
        self.contract = chain.contract("QualityCertifier", address)
        self.from_block = from_block
        self._lots: LotRegistryClient | None = None

    @classmethod
    def from_deployment(cls, chain: Chain, deployment: Deployment) -> QualityCertifierClient:
        return cls(chain, deployment.address("QualityCertifier"), from_block=deployment.block)

    @property
    def lots(self) -> LotRegistryClient:
        """The certifier's LotRegistry (resolves lot ids to keys)."""
        if self._lots is None:
            address = self.chain.call(self.contract.functions.lotRegistry())
            self._lots = LotRegistryClient(self.chain, address, from_block=self.from_block)
        return self._lots

    @property
    def address(self) -> str:
        return str(self.contract.address)

    def set_spec(
        self, enterprise: LocalAccount, gtin: str, metrics: Sequence[SpecMetric], *, min_samples: int
    ) -> TxResult:
        """Set a new spec version; metrics are sent sorted by name, as the contract requires."""
        ordered = sorted(metrics, key=lambda m: padded_ascii(m.name))
        fn = self.contract.functions.setSpec(gtin, [m.to_tuple() for m in ordered], min_samples)
        return self.chain.transact(fn, enterprise)

    def set_spec_owner(self, admin: LocalAccount, gtin: str, owner: str | None) -> TxResult:
        """As the certifier's admin, assign who sets the product's spec versions and names its devices
        (the buyer whose quality bar it is); ``None`` leaves the product without one."""
        parsed = parse_gtin(gtin)
        who = to_checksum_address(owner) if owner is not None else _ZERO_ADDRESS
        return self.chain.transact(self.contract.functions.setSpecOwner(int(parsed), who), admin)

    def spec_owner(self, gtin: int) -> str | None:
        """Who sets the product's spec versions (``None``: nobody assigned)."""
        owner = to_checksum_address(self.chain.call(self.contract.functions.specOwner(gtin)))
        return None if int(owner, 16) == 0 else owner

    def set_named_device(
        self, owner: LocalAccount, gtin: str, device_id: str, named: bool = True
    ) -> TxResult:
        """As the product's spec owner, name a device (or withdraw its name) whose readings count for
        every lot of the product, whoever owns it (an inspector's, a lab's)."""
        fn = self.contract.functions.setNamedDevice(gtin, device_id_hash(device_id), named)
        return self.chain.transact(fn, owner)

    def is_named_device(self, gtin: int, device_id: str | bytes) -> bool:
        did = device_id_hash(device_id) if isinstance(device_id, str) else bytes(device_id)
        return bool(self.chain.call(self.contract.functions.isNamedDevice(gtin, did)))

    def latest_spec_version(self, gtin: int) -> int:
        return int(self.chain.call(self.contract.functions.latestSpecVersion(gtin)))

    def spec(self, gtin: int, version: int | None = None) -> Spec:
        """Version ``version`` of the product's spec (default: the latest)."""
        v = self.latest_spec_version(gtin) if version is None else version
        metrics, min_samples, set_by, set_at = self.chain.call(self.contract.functions.spec(gtin, v))
        return Spec(
            gtin=Gtin(gtin),
            version=v,
            metrics=tuple(
                SpecMetric(name=unpadded_ascii(n), min=lo, max=hi, required=r) for n, lo, hi, r in metrics
            ),
            min_samples=min_samples,
            set_by=set_by,
            set_at=set_at,
        )

    def certify_lot(
        self,
        submitter: LocalAccount,
        lot_id: str | bytes,
        batches: Sequence[tuple[Any, ...]],
        *,
        issuer: str | None = None,
    ) -> TxResult:
        """Submit a lot's QC readings (see :func:`batch_readings`); the verdict is in the receipt's events."""
        fn = self.contract.functions.certifyLot(self.lots.key(lot_id, issuer=issuer), list(batches))
        return self.chain.transact(fn, submitter)

    def preview(
        self,
        submitter: str,
        lot_id: str | bytes,
        batches: Sequence[tuple[Any, ...]],
        *,
        issuer: str | None = None,
    ) -> CertificateStatus:
        """The verdict :meth:`certify_lot` would give now (an ``eth_call``; nothing is recorded)."""
        fn = self.contract.functions.certifyLot(self.lots.key(lot_id, issuer=issuer), list(batches))
        status = self.chain.request(
            lambda: fn.call({"from": to_checksum_address(submitter)}), context="certifyLot preview"
        )
        return CertificateStatus(status)

    def certificate(
        self, lot_id: str | bytes, *, issuer: str | None = None, block: BlockIdentifier = "latest"
    ) -> Certificate:
        fn = self.contract.functions.certificate(self.lots.key(lot_id, issuer=issuer))
        t = self.chain.call(fn, block=block)
        return Certificate(
            status=CertificateStatus(t[0]),
            reason=RejectReason(t[1]),
            spec_version=t[2],
            samples=t[3],
            decided_at=t[4],
            submitter=t[5],
            metric=unpadded_ascii(t[6]),
            value=t[7],
            bound=t[8],
            evidence=bytes(t[9]),
        )
