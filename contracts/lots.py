"""Typed client of the LotRegistry: lots, their identifiers and custody (the QualityCertifier's, specs
and certification, is :mod:`contracts.certifier`).

- GTIN-14: :func:`parse_gtin` / :func:`gtin_check_digit` / :func:`format_gtin` follow the same GS1
  mod-10 rule as the contracts' ``Gtin`` library; on chain a GTIN is the number its 14 digits spell.
- Lot ids are scoped to their issuer (the supplier who opened the lot, or the custodian who split it
  off): the on-chain key is :func:`lot_key` ``(lot_id, issuer)`` =
  ``keccak256(abi.encode(issuer, keccak256(utf8(lot_id))))``; readings carry :func:`lot_id_hash`
  (``keccak256(utf8(lot_id))``, Reading v1's ``lotId``, unchanged). Every method taking a lot accepts
  its key (32 bytes) or its text; text is resolved with ``issuer=`` when given, else through the
  registry's ``LotNamed`` index (:class:`LotNotFound` when no lot has that id, :class:`AmbiguousLot`
  when several parties do: pass ``issuer=`` then).
- :class:`LotRegistryClient`: open, split, the two-sided custody transfer, transformations (lineage:
  :meth:`~LotRegistryClient.transform` consumes held lots into new ones;
  :meth:`~LotRegistryClient.inputs_of` and :meth:`~LotRegistryClient.outputs_of` walk it both ways), and
  every view (:meth:`~LotRegistryClient.full_custody_chain` follows split parents back to the opening).
- :func:`deploy_supply_chain` deploys the LotRegistry and the QualityCertifier next to a suite.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from functools import lru_cache
from typing import NewType

from eth_abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address
from web3.logs import DISCARD
from web3.types import BlockIdentifier

from contracts.chain import Chain, TxResult
from contracts.deployment import Deployment
from contracts.errors import ContractsError, DeploymentError
from contracts.registry import DEFAULT_ADMIN_ROLE, EVIDENCE_ROLE

__all__ = [
    "MAX_TRANSFORM_INPUTS",
    "MAX_TRANSFORM_OUTPUTS",
    "OPEN_ACTION",
    "TRANSFER_ACTION",
    "AmbiguousLot",
    "CustodyEntry",
    "Gtin",
    "InvalidGtin",
    "Lot",
    "LotNotFound",
    "LotRegistryClient",
    "LotStatus",
    "PendingTransfer",
    "TransformInput",
    "TransformOutput",
    "Transformation",
    "Transformed",
    "deploy_supply_chain",
    "format_gtin",
    "grant_evidence_role",
    "gtin_check_digit",
    "lot_id_hash",
    "lot_key",
    "padded_ascii",
    "parse_gtin",
    "unpadded_ascii",
]

#: The admission-gate actions the LotRegistry asks (the QualityCertifier's: ``contracts.certifier``).
OPEN_ACTION = keccak(b"supet.lot.open")
TRANSFER_ACTION = keccak(b"supet.lot.transfer")
#: ``LotRegistry.MAX_TRANSFORM_INPUTS`` / ``MAX_TRANSFORM_OUTPUTS``: the bounds of one transformation.
MAX_TRANSFORM_INPUTS = 32
MAX_TRANSFORM_OUTPUTS = 16

#: A GTIN-14 as the number its digits spell (below 10^14).
Gtin = NewType("Gtin", int)

_GTIN_LIMIT = 10**14
_ZERO_ADDRESS = "0x" + "00" * 20


class InvalidGtin(ContractsError):
    """A GTIN-14 is malformed or its check digit is wrong."""

    code = "lot.gtin"


class LotNotFound(ContractsError):
    """No lot on chain has this id (under this issuer, when one was given)."""

    code = "lot.not_found"


class AmbiguousLot(ContractsError):
    """Several parties have a lot with this id: the issuer must be named."""

    code = "lot.ambiguous"

    def __init__(self, message: str, *, issuers: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.issuers = list(issuers)


# ---------------------------------------------------------------- identifiers


def gtin_check_digit(data: str) -> int:
    """The GS1 check digit of 13 data digits (weights 3, 1, 3, ... from the right)."""
    if len(data) != 13 or not data.isascii() or not data.isdigit():
        raise InvalidGtin(f"the data part of a GTIN-14 is 13 ASCII digits, got {data!r}")
    total = sum(int(c) * (3 if i % 2 == 0 else 1) for i, c in enumerate(reversed(data)))
    return (10 - total % 10) % 10


def parse_gtin(text: str) -> Gtin:
    """The GTIN that 14-digit ``text`` spells; :class:`InvalidGtin` as the contracts would refuse it."""
    if len(text.encode("utf-8")) != 14:
        raise InvalidGtin(f"a GTIN-14 has 14 digits, {text!r} has {len(text.encode('utf-8'))} bytes")
    for i, c in enumerate(text):
        if not ("0" <= c <= "9"):
            raise InvalidGtin(f"character {i} of GTIN {text!r} is {c!r}, not a digit")
    expected = gtin_check_digit(text[:13])
    if int(text[13]) != expected:
        raise InvalidGtin(
            f"GTIN {text} ends in {text[13]} but its first 13 digits call for check digit {expected}; "
            "retype the number from the label"
        )
    return Gtin(int(text))


def format_gtin(gtin: int) -> str:
    """The 14-digit text of an on-chain GTIN (zeros padded on the left)."""
    if not 0 <= gtin < _GTIN_LIMIT:
        raise InvalidGtin(f"{gtin} is not a GTIN-14 (it needs 0 <= gtin < 10^14)")
    return f"{gtin:014d}"


@lru_cache(maxsize=65_536)
def lot_id_hash(lot_id: str) -> bytes:
    """``keccak256(utf8(lot_id))``: Reading v1's ``lotId`` (what devices sign). Cached: ingest looks up
    the lots named by every reading that names one (eth_utils' keccak costs ~6 us a call)."""
    return keccak(lot_id.encode("utf-8"))


def lot_key(lot_id: str, issuer: str) -> bytes:
    """The on-chain key of the lot ``issuer`` named ``lot_id`` (``LotRegistry.lotKey``):
    ``keccak256(abi.encode(issuer, keccak256(utf8(lot_id))))``."""
    return keccak(abi_encode(["address", "bytes32"], [to_checksum_address(issuer), lot_id_hash(lot_id)]))


def padded_ascii(text: str) -> bytes:
    """``text`` as ASCII right-padded to 32 bytes (units, Reading v1 metric names)."""
    raw = text.encode("ascii")
    if not 0 < len(raw) <= 32:
        raise ContractsError(f"{text!r} must be 1..32 ASCII characters")
    return raw.ljust(32, b"\0")


def unpadded_ascii(raw: bytes) -> str:
    """The text of 32 bytes :func:`padded_ascii` wrote (trailing zeros dropped)."""
    return bytes(raw).rstrip(b"\0").decode("ascii", errors="replace")


# ---------------------------------------------------------------- lots


class LotStatus(IntEnum):
    """``LotRegistry.Status``."""

    NONE = 0
    ACTIVE = 1
    SPLIT = 2
    CONSUMED = 3


@dataclass(frozen=True, kw_only=True)
class Lot:
    """A lot as the registry holds it: ``remaining + consumed + sum(children's quantity) == quantity``;
    ``produced_by`` is the transformation that opened it (0: opened directly or split off)."""

    key: bytes
    lot_id: str
    gtin: Gtin
    produced_from_ms: int
    produced_to_ms: int
    opened_at: int
    unit: str
    quantity: int
    remaining: int
    supplier: str
    status: LotStatus
    parent_custody_count: int
    custodian: str
    parent: bytes | None
    consumed: int
    produced_by: int

    @property
    def gtin_text(self) -> str:
        return format_gtin(self.gtin)


@dataclass(frozen=True, kw_only=True)
class CustodyEntry:
    """One link of a custody chain: ``custodian`` held lot ``lot_key`` from block time ``since`` (seconds)."""

    lot_key: bytes
    custodian: str
    since: int


@dataclass(frozen=True, kw_only=True)
class PendingTransfer:
    """A proposed custody transfer."""

    from_: str
    to: str
    proposed_at: int


@dataclass(frozen=True, kw_only=True)
class TransformInput:
    """What a transformation consumes of one lot its caller holds: ``quantity`` in ``unit``, which must
    be the lot's own unit (the registry refuses another with ``LotRegistryUnitMismatch``)."""

    lot: str | bytes
    quantity: int
    unit: str
    issuer: str | None = None


@dataclass(frozen=True, kw_only=True)
class TransformOutput:
    """A lot a transformation opens (as :meth:`LotRegistryClient.open_lot` takes one)."""

    lot_id: str
    gtin: str
    quantity: int
    unit: str
    produced_from_ms: int
    produced_to_ms: int


@dataclass(frozen=True, kw_only=True)
class Transformation:
    """A recorded transformation: ``by`` consumed ``inputs`` ((lot key, quantity), in order) and opened
    ``outputs`` (keys, in order) at block time ``at`` (seconds)."""

    transformation_id: int
    by: str
    at: int
    inputs: tuple[tuple[bytes, int], ...]
    outputs: tuple[bytes, ...]


@dataclass(frozen=True, kw_only=True)
class Transformed:
    """A mined transformation: its id, its output lots' keys (in order) and the transaction."""

    transformation_id: int
    outputs: tuple[bytes, ...]
    tx: TxResult


class LotRegistryClient:
    """Reads and writes of one LotRegistry.

    A lot is named by its key (32 bytes) or its text; text resolves with ``issuer=`` when given, else
    through the ``LotNamed`` logs from ``from_block`` on (see the module docstring).
    """

    def __init__(self, chain: Chain, address: str, *, from_block: int = 0) -> None:
        self.chain = chain
        self.contract = chain.contract("LotRegistry", address)
        self.from_block = from_block

    @classmethod
    def from_deployment(cls, chain: Chain, deployment: Deployment) -> LotRegistryClient:
        return cls(chain, deployment.address("LotRegistry"), from_block=deployment.block)

    @property
    def address(self) -> str:
        return str(self.contract.address)

    # --- keys

    def named(self, lot_id: str) -> list[tuple[str, bytes]]:
        """(issuer, key) of every lot named ``lot_id``, in the order they were named."""
        found = self.chain.request(
            lambda: self.contract.events.LotNamed().get_logs(
                from_block=self.from_block,
                to_block="latest",
                argument_filters={"lotIdHash": lot_id_hash(lot_id)},
            ),
            context=f"LotNamed logs of {lot_id!r}",
        )
        ordered = sorted(found, key=lambda log: (log["blockNumber"], log["logIndex"]))
        return [(to_checksum_address(log["args"]["issuer"]), bytes(log["args"]["lotId"])) for log in ordered]

    def key(self, lot_id: str | bytes, *, issuer: str | None = None) -> bytes:
        """The key of a lot given as key, as text with its issuer, or as text alone (resolved on chain):
        :class:`LotNotFound` when no lot has the id, :class:`AmbiguousLot` when several do."""
        if isinstance(lot_id, bytes | bytearray):
            if len(lot_id) != 32:
                raise ContractsError(
                    f"a lot key is 32 bytes, got {len(lot_id)}; pass the lot id as text instead"
                )
            return bytes(lot_id)
        if issuer is not None:
            return lot_key(lot_id, issuer)
        named = self.named(lot_id)
        if not named:
            raise LotNotFound(f"no lot {lot_id!r} on chain: it was never opened or split off")
        if len(named) > 1:
            issuers = [i for i, _ in named]
            raise AmbiguousLot(
                f"{len(named)} parties have a lot {lot_id!r} ({', '.join(issuers)}): name the one you mean "
                "by its issuer (the supplier who opened it, or the custodian who split it off)",
                issuers=issuers,
            )
        return named[0][1]

    # --- writes

    def open_lot(
        self,
        supplier: LocalAccount,
        *,
        lot_id: str,
        gtin: str,
        quantity: int,
        unit: str,
        produced_from_ms: int,
        produced_to_ms: int,
    ) -> TxResult:
        """Open a lot (the GTIN is sent as typed: the contract checks it); its key is
        ``lot_key(lot_id, supplier.address)``."""
        fn = self.contract.functions.openLot(
            lot_id, gtin, quantity, padded_ascii(unit), produced_from_ms, produced_to_ms
        )
        return self.chain.transact(fn, supplier)

    def split_lot(
        self,
        custodian: LocalAccount,
        lot_id: str | bytes,
        children: Mapping[str, int],
        *,
        issuer: str | None = None,
    ) -> TxResult:
        """Split ``children`` (child id -> quantity, in order) off the lot; the children are keyed under
        the custodian (``lot_key(child, custodian.address)``)."""
        fn = self.contract.functions.splitLot(
            self.key(lot_id, issuer=issuer), list(children), list(children.values())
        )
        return self.chain.transact(fn, custodian)

    def transform(
        self,
        transformer: LocalAccount,
        inputs: Sequence[TransformInput],
        outputs: Sequence[TransformOutput],
    ) -> Transformed:
        """Record a transformation (``LotRegistry.transform``): consume ``inputs``, lots ``transformer``
        holds, and open ``outputs`` under it. The registry checks every rule (admission, custody,
        remaining, units, GTINs, new ids, bounds) and reverts with its custom error, changing nothing."""
        ins = [(self.key(i.lot, issuer=i.issuer), i.quantity, padded_ascii(i.unit)) for i in inputs]
        outs = [
            (o.lot_id, o.gtin, o.quantity, padded_ascii(o.unit), o.produced_from_ms, o.produced_to_ms)
            for o in outputs
        ]
        tx = self.chain.transact(self.contract.functions.transform(ins, outs), transformer)
        (event,) = self.contract.events.LotTransformed().process_receipt(tx.receipt, errors=DISCARD)
        return Transformed(
            transformation_id=int(event["args"]["transformationId"]),
            outputs=tuple(bytes(k) for k in event["args"]["outputs"]),
            tx=tx,
        )

    def propose_transfer(
        self, custodian: LocalAccount, lot_id: str | bytes, to: str, *, issuer: str | None = None
    ) -> TxResult:
        fn = self.contract.functions.proposeTransfer(self.key(lot_id, issuer=issuer), to_checksum_address(to))
        return self.chain.transact(fn, custodian)

    def accept_transfer(
        self, recipient: LocalAccount, lot_id: str | bytes, *, issuer: str | None = None
    ) -> TxResult:
        fn = self.contract.functions.acceptTransfer(self.key(lot_id, issuer=issuer))
        return self.chain.transact(fn, recipient)

    def reject_transfer(
        self, recipient: LocalAccount, lot_id: str | bytes, *, issuer: str | None = None
    ) -> TxResult:
        fn = self.contract.functions.rejectTransfer(self.key(lot_id, issuer=issuer))
        return self.chain.transact(fn, recipient)

    def cancel_transfer(
        self, proposer: LocalAccount, lot_id: str | bytes, *, issuer: str | None = None
    ) -> TxResult:
        fn = self.contract.functions.cancelTransfer(self.key(lot_id, issuer=issuer))
        return self.chain.transact(fn, proposer)

    # --- views

    def exists(self, lot_id: str | bytes, *, issuer: str | None = None) -> bool:
        """Whether the lot exists (text alone: whether any party has a lot with this id)."""
        if isinstance(lot_id, str) and issuer is None:
            return bool(self.named(lot_id))
        return bool(self.chain.call(self.contract.functions.exists(self.key(lot_id, issuer=issuer))))

    def lot(
        self, lot_id: str | bytes, *, issuer: str | None = None, block: BlockIdentifier = "latest"
    ) -> Lot:
        """The lot (by key, or by text: see :meth:`key`)."""
        key = self.key(lot_id, issuer=issuer)
        t = self.chain.call(self.contract.functions.lot(key), block=block)
        return Lot(
            key=key,
            lot_id=t[0],
            gtin=Gtin(t[1]),
            produced_from_ms=t[2],
            produced_to_ms=t[3],
            opened_at=t[4],
            unit=unpadded_ascii(t[5]),
            quantity=t[6],
            remaining=t[7],
            supplier=t[8],
            status=LotStatus(t[9]),
            parent_custody_count=t[10],
            custodian=t[11],
            parent=None if bytes(t[12]) == bytes(32) else bytes(t[12]),
            consumed=t[13],
            produced_by=t[14],
        )

    def issuer(self, lot_id: str | bytes, *, issuer: str | None = None) -> str:
        """Who named the lot: the supplier who opened it, or the custodian who split it off."""
        return str(self.chain.call(self.contract.functions.issuerOf(self.key(lot_id, issuer=issuer))))

    def has_held(self, lot_id: str | bytes, party: str, *, issuer: str | None = None) -> bool:
        """Whether ``party`` is the lot's supplier or in its full custody chain (``LotRegistry.hasHeld``)."""
        fn = self.contract.functions.hasHeld(self.key(lot_id, issuer=issuer), to_checksum_address(party))
        return bool(self.chain.call(fn))

    def custody_chain(self, lot_id: str | bytes, *, issuer: str | None = None) -> list[CustodyEntry]:
        """The lot's own custodians, in order."""
        key = self.key(lot_id, issuer=issuer)
        entries = self.chain.call(self.contract.functions.custodyChain(key))
        return [CustodyEntry(lot_key=key, custodian=c, since=s) for c, s in entries]

    def full_custody_chain(self, lot_id: str | bytes, *, issuer: str | None = None) -> list[CustodyEntry]:
        """Custody since the original lot was opened (``LotRegistry.fullCustodyChain``): each ancestor's
        chain up to the split that led here, then the lot's own; each entry names its lot."""
        links = self.chain.call(self.contract.functions.fullCustodyChain(self.key(lot_id, issuer=issuer)))
        return [CustodyEntry(lot_key=bytes(k), custodian=c, since=s) for k, c, s in links]

    def children(self, lot_id: str | bytes, *, issuer: str | None = None) -> list[bytes]:
        keys = self.chain.call(self.contract.functions.children(self.key(lot_id, issuer=issuer)))
        return [bytes(k) for k in keys]

    def transformation_count(self) -> int:
        """How many transformations the registry has recorded (their ids are 1 to this)."""
        return int(self.chain.call(self.contract.functions.transformationCount()))

    def transformation(self, transformation_id: int) -> Transformation:
        """The transformation with this id (``ContractRevert`` ``LotRegistryUnknownTransformation`` when
        there is none)."""
        by, at, inputs, consumed, outputs = self.chain.call(
            self.contract.functions.transformation(transformation_id)
        )
        return Transformation(
            transformation_id=transformation_id,
            by=str(by),
            at=int(at),
            inputs=tuple((bytes(k), int(q)) for k, q in zip(inputs, consumed, strict=True)),
            outputs=tuple(bytes(k) for k in outputs),
        )

    def inputs_of(self, lot_id: str | bytes, *, issuer: str | None = None) -> list[tuple[bytes, int]]:
        """What the lot was made from: (input lot key, quantity consumed) of the transformation that
        opened it; empty for a lot opened directly or split off."""
        keys, consumed = self.chain.call(self.contract.functions.inputsOf(self.key(lot_id, issuer=issuer)))
        return [(bytes(k), int(q)) for k, q in zip(keys, consumed, strict=True)]

    def outputs_of(self, lot_id: str | bytes, *, issuer: str | None = None) -> list[bytes]:
        """What was made from the lot: the output keys of every transformation that consumed it, in order
        (its split-off children are :meth:`children`)."""
        keys = self.chain.call(self.contract.functions.outputsOf(self.key(lot_id, issuer=issuer)))
        return [bytes(k) for k in keys]

    def consumed_by(self, lot_id: str | bytes, *, issuer: str | None = None) -> list[int]:
        """The ids of the transformations that consumed the lot, in order."""
        ids = self.chain.call(self.contract.functions.consumedBy(self.key(lot_id, issuer=issuer)))
        return [int(i) for i in ids]

    def pending_transfer(self, lot_id: str | bytes, *, issuer: str | None = None) -> PendingTransfer | None:
        frm, to, at = self.chain.call(
            self.contract.functions.pendingTransfer(self.key(lot_id, issuer=issuer))
        )
        if int(to, 16) == 0:
            return None
        return PendingTransfer(from_=frm, to=to, proposed_at=at)

    def custodian(self, lot_id: str | bytes, *, issuer: str | None = None) -> str:
        return str(self.chain.call(self.contract.functions.custodianOf(self.key(lot_id, issuer=issuer))))


# ---------------------------------------------------------------- deployment


def deploy_supply_chain(
    chain: Chain,
    deployer: LocalAccount,
    *,
    deployment: Deployment,
    gate_address: str,
    grant_evidence: bool = True,
) -> dict[str, str]:
    """Deploy the LotRegistry and the QualityCertifier next to ``deployment``'s ReadingAnchor.

    Both ask the admission gate at ``gate_address``; the deployer gets their admin role (replace the
    gate, reassign spec ownership). With ``grant_evidence`` (the default) the deployer, who must then
    be the DeviceRegistry's admin, lets the certifier pin the evidence its verdicts use
    (``EVIDENCE_ROLE``): without it ``certifyLot`` reverts. Returns the addresses by contract name, for
    the deployment file.
    """
    if chain.chain_id != deployment.chain_id:
        raise DeploymentError(
            f"the deployment is for chain {deployment.chain_id} but the node serves chain "
            f"{chain.chain_id}: deploy the supply-chain contracts next to their suite"
        )
    gate = to_checksum_address(gate_address)
    if gate == to_checksum_address(_ZERO_ADDRESS) or not chain.w3.eth.get_code(gate):
        raise DeploymentError(
            f"no admission gate at {gate}: deploy the participant registry (or a test gate) first"
        )
    admin = to_checksum_address(deployer.address)
    lots = chain.deploy("LotRegistry", deployer, admin, gate).contract_address
    anchor = deployment.address("ReadingAnchor")
    certifier = chain.deploy("QualityCertifier", deployer, admin, gate, anchor, lots).contract_address
    if lots is None or certifier is None:  # pragma: no cover - a mined constructor always has an address
        raise DeploymentError("a supply-chain constructor was mined without a contract address")
    if grant_evidence:
        grant_evidence_role(chain, deployer, deployment=deployment, certifier=str(certifier))
    return {"LotRegistry": str(lots), "QualityCertifier": str(certifier)}


def grant_evidence_role(chain: Chain, admin: LocalAccount, *, deployment: Deployment, certifier: str) -> None:
    """Let the QualityCertifier at ``certifier`` pin evidence in ``deployment``'s DeviceRegistry, as
    its admin (:class:`DeploymentError`, nothing sent, when ``admin`` lacks that role)."""
    registry = deployment.contract(chain, "DeviceRegistry")
    who = to_checksum_address(admin.address)
    if not chain.call(registry.functions.hasRole(DEFAULT_ADMIN_ROLE, who)):
        raise DeploymentError(
            f"{who} is not the DeviceRegistry's admin, so it cannot let the QualityCertifier {certifier} "
            "pin evidence: have the admin grant it EVIDENCE_ROLE (supet.role.evidence)"
        )
    chain.transact(registry.functions.grantRole(EVIDENCE_ROLE, to_checksum_address(certifier)), admin)
