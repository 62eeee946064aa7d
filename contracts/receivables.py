"""Typed clients of the Receivables contract and of its settlement token.

- :class:`ReceivablesClient`: confirm a receivable backed by a purchase order and delivered,
  certified lots (debtor; issue 15), split / transfer / offer / withdraw
  (holder), finance (bank, with the seller's oracle's credit-line attestation,
  :mod:`contracts.credit_line`), repay (debtor), claim a part's escrow (anyone, paid to its holder: a
  payment the token refused at repayment, e.g. a frozen holder), mark defaulted (anyone, after the
  grace period), rescue tokens sent by mistake (the admin; never the escrow), and every view as
  :class:`Receivable` / :class:`Part` with :class:`PartState`; the backing
  (:meth:`ReceivablesClient.backing_of`, :meth:`~ReceivablesClient.backing_status`) and the flag of a
  financed receivable whose backing went bad (:meth:`~ReceivablesClient.flag_receivable`, :class:`Flag`);
  a seller's outstanding financed amount and the statement (:class:`~contracts.credit_line.CreditLine`)
  its oracle would sign.
- :class:`StablecoinClient`: the ERC-20 the receivables settle in (``TestStablecoin``, "supET Test
  Yuan", tCNY, 2 decimals, in tests and the demo): mint (its owner), approve, balances.
- :func:`receivable_reference` hashes a debtor's invoice number into the on-chain reference.
- :func:`deploy_finance_settlement` deploys the test stablecoin (optionally) and the Receivables.

Amounts are in the token's smallest unit (fen for tCNY); times are Unix seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address
from web3.logs import DISCARD
from web3.types import BlockIdentifier

from contracts.chain import Chain, TxResult
from contracts.credit import CreditRegistryClient
from contracts.credit_line import CreditLine, LineAttestation, LineDomain
from contracts.deployment import Deployment
from contracts.errors import ContractsError, DeploymentError

__all__ = [
    "CONTRACT_NAME",
    "CREATE_ACTION",
    "FINANCE_ACTION",
    "GRACE_PERIOD",
    "HOLD_ACTION",
    "MAX_BACKING_LOTS",
    "MAX_PARTS",
    "MAX_SPLIT_CHILDREN",
    "PUSH_GAS",
    "STABLECOIN_NAME",
    "BackingFault",
    "Flag",
    "InvalidReceivableInput",
    "Part",
    "PartState",
    "Receivable",
    "ReceivablesClient",
    "StablecoinClient",
    "deploy_finance_settlement",
    "receivable_reference",
]

CONTRACT_NAME = "Receivables"
STABLECOIN_NAME = "TestStablecoin"
#: Admission-gate actions: a debtor confirms, a party holds parts, a bank finances.
CREATE_ACTION = keccak(b"supet.receivable.create")
HOLD_ACTION = keccak(b"supet.receivable.hold")
FINANCE_ACTION = keccak(b"supet.receivable.finance")
#: Seconds after the due date before an unpaid part may be marked defaulted (30 days).
GRACE_PERIOD = 30 * 86_400
#: At most this many parts per receivable; the root's split quota is one less, divided at each split.
MAX_PARTS = 128
MAX_SPLIT_CHILDREN = 16
#: A receivable names 1 to this many backing lots.
MAX_BACKING_LOTS = 32
#: Gas each part's payment push may use at repayment; a failing push is escrowed for the part.
PUSH_GAS = 100_000

_ZERO_ADDRESS = "0x" + "00" * 20


class InvalidReceivableInput(ContractsError):
    """A reference or a split is unusable (refused before anything reaches the chain)."""

    code = "receivable.input"


def receivable_reference(invoice: str) -> bytes:
    """``keccak256(utf8(invoice))``: the on-chain reference of the debtor's invoice number."""
    if not invoice:
        raise InvalidReceivableInput("an invoice reference cannot be empty: use the debtor's invoice number")
    return keccak(invoice.encode("utf-8"))


class PartState(IntEnum):
    """``Receivables.PartState`` (``NONE``: no such part)."""

    NONE = 0
    ACTIVE = 1
    OFFERED = 2
    FINANCED = 3
    SPLIT = 4
    PAID = 5
    DEFAULTED = 6

    @property
    def is_leaf(self) -> bool:
        return self not in (PartState.NONE, PartState.SPLIT)


class BackingFault(IntEnum):
    """``Receivables.BackingFault``: what is wrong with a receivable's backing now."""

    NONE = 0
    REJECTED = 1
    RECALLED = 2


@dataclass(frozen=True, kw_only=True)
class Flag:
    """A receivable's on-chain flag: when, which lot, why, by whom (``flagged_at`` 0: not flagged)."""

    flagged_at: int
    fault: BackingFault
    by: str | None
    lot: bytes

    @property
    def flagged(self) -> bool:
        return self.flagged_at != 0


@dataclass(frozen=True, kw_only=True)
class Receivable:
    """A confirmed receivable (``paid_at`` 0 until repaid) and the purchase order behind it."""

    id: int
    debtor: str
    supplier: str
    due_date: int
    created_at: int
    paid_at: int
    face_value: int
    reference: bytes
    root_part: int
    order_id: bytes

    @property
    def paid(self) -> bool:
        return self.paid_at != 0


@dataclass(frozen=True, kw_only=True)
class Part:
    """A part of a receivable (``parent`` 0 for the root; ``offered_to`` None without an open offer;
    ``split_quota``: how many parts may still be created below it, 0 once split)."""

    id: int
    receivable_id: int
    parent: int
    holder: str
    state: PartState
    split_quota: int
    offered_to: str | None
    financed_by: str | None
    amount: int
    min_price: int
    financed_price: int


def _backing_keys(order_id: bytes, lots: Sequence[bytes]) -> list[bytes]:
    """``[order_id, *lots]`` checked: 32-byte keys, 1 to :data:`MAX_BACKING_LOTS` lots, no repeats."""
    keys = [order_id, *lots]
    if any(not isinstance(k, bytes | bytearray) or len(k) != 32 for k in keys):
        raise InvalidReceivableInput("an order id and lot keys are 32 bytes each")
    if not 1 <= len(lots) <= MAX_BACKING_LOTS:
        raise InvalidReceivableInput(f"a receivable names 1 to {MAX_BACKING_LOTS} lots, got {len(lots)}")
    if len(set(lots)) != len(lots):
        raise InvalidReceivableInput("a lot is named twice: each lot backs the receivable once")
    return [bytes(k) for k in keys]


def _opt_address(value: str) -> str | None:
    return None if int(value, 16) == 0 else to_checksum_address(value)


class ReceivablesClient:
    """Reads and writes of one Receivables contract."""

    def __init__(self, chain: Chain, address: str) -> None:
        self.chain = chain
        self.contract = chain.contract(CONTRACT_NAME, address)

    @classmethod
    def from_deployment(cls, chain: Chain, deployment: Deployment) -> ReceivablesClient:
        return cls(chain, deployment.address(CONTRACT_NAME))

    @property
    def address(self) -> str:
        return str(self.contract.address)

    # --- writes

    def confirm(
        self,
        debtor: LocalAccount,
        *,
        supplier: str,
        face_value: int,
        due_date: int,
        reference: bytes,
        order_id: bytes,
        lots: Sequence[bytes],
    ) -> tuple[int, TxResult]:
        """Confirm a receivable as ``debtor`` for order ``order_id`` delivered in ``lots`` (their keys);
        returns its id (from the event) and the transaction."""
        keys = _backing_keys(order_id, lots)
        fn = self.contract.functions.confirm(
            to_checksum_address(supplier), face_value, due_date, reference, keys[0], keys[1:]
        )
        result = self.chain.transact(fn, debtor)
        (event,) = self.contract.events.ReceivableConfirmed().process_receipt(result.receipt, errors=DISCARD)
        return int(event["args"]["receivableId"]), result

    def split(
        self, holder: LocalAccount, part_id: int, amounts: Sequence[int], holders: Sequence[str]
    ) -> tuple[list[int], TxResult]:
        """Split ``part_id`` into children (amounts and holders in order); returns the children's ids."""
        if len(amounts) != len(holders):
            raise InvalidReceivableInput(
                f"a split needs one holder per amount, got {len(amounts)} amounts and {len(holders)} holders"
            )
        fn = self.contract.functions.split(part_id, list(amounts), [to_checksum_address(h) for h in holders])
        result = self.chain.transact(fn, holder)
        (event,) = self.contract.events.PartSplit().process_receipt(result.receipt, errors=DISCARD)
        return [int(c) for c in event["args"]["children"]], result

    def transfer(self, holder: LocalAccount, part_id: int, to: str) -> TxResult:
        return self.chain.transact(self.contract.functions.transfer(part_id, to_checksum_address(to)), holder)

    def offer(self, holder: LocalAccount, part_id: int, *, bank: str, min_price: int) -> TxResult:
        fn = self.contract.functions.offer(part_id, to_checksum_address(bank), min_price)
        return self.chain.transact(fn, holder)

    def withdraw_offer(self, holder: LocalAccount, part_id: int) -> TxResult:
        return self.chain.transact(self.contract.functions.withdrawOffer(part_id), holder)

    def finance(self, bank: LocalAccount, part_id: int, price: int, line: LineAttestation) -> TxResult:
        """Finance an offered part (the bank must have approved this contract for ``price``) within the
        seller's credit line: ``line`` is its oracle's attestation for this bank, part and total."""
        return self.chain.transact(self.finance_call(part_id, price, line), bank)

    def finance_call(self, part_id: int, price: int, line: LineAttestation) -> Any:
        """The ``finance`` call (unsent), e.g. for a party that signs it elsewhere."""
        return self.contract.functions.finance(part_id, price, line.as_tuple())

    def repay(self, debtor: LocalAccount, receivable_id: int) -> TxResult:
        """Repay a receivable in full (the debtor must have approved this contract for the face value)."""
        return self.chain.transact(self.contract.functions.repay(receivable_id), debtor)

    def claim_escrow(self, caller: LocalAccount, part_id: int) -> TxResult:
        """Pay ``part_id``'s escrowed amount to its holder (``caller`` may be anyone)."""
        return self.chain.transact(self.contract.functions.claimEscrow(part_id), caller)

    def rescue_tokens(self, admin: LocalAccount, token: str, to: str, amount: int) -> TxResult:
        """Return ``amount`` of ``token`` sent here by mistake to ``to``; by the admin (never the escrow)."""
        fn = self.contract.functions.rescueTokens(to_checksum_address(token), to_checksum_address(to), amount)
        return self.chain.transact(fn, admin)

    def mark_defaulted(self, caller: LocalAccount, part_id: int) -> TxResult:
        return self.chain.transact(self.contract.functions.markDefaulted(part_id), caller)

    def flag_receivable(self, caller: LocalAccount, receivable_id: int) -> tuple[list[str], TxResult]:
        """Flag a financed receivable whose backing went bad (anyone); the banks named, and the tx."""
        result = self.chain.transact(self.contract.functions.flagReceivable(receivable_id), caller)
        (event,) = self.contract.events.ReceivableFlagged().process_receipt(result.receipt, errors=DISCARD)
        return [to_checksum_address(b) for b in event["args"]["banks"]], result

    # --- views

    def receivable(self, receivable_id: int, *, block: BlockIdentifier = "latest") -> Receivable:
        t = self.chain.call(self.contract.functions.receivable(receivable_id), block=block)
        return Receivable(
            id=t[0],
            debtor=to_checksum_address(t[1]),
            supplier=to_checksum_address(t[2]),
            due_date=t[3],
            created_at=t[4],
            paid_at=t[5],
            face_value=t[6],
            reference=bytes(t[7]),
            root_part=t[8],
            order_id=bytes(t[9]),
        )

    def backing_of(
        self, receivable_id: int, *, block: BlockIdentifier = "latest"
    ) -> tuple[bytes, list[bytes]]:
        """The order id and the lot keys behind the receivable, as confirmed."""
        order, lots = self.chain.call(self.contract.functions.backingOf(receivable_id), block=block)
        return bytes(order), [bytes(k) for k in lots]

    def receivable_backed_by(self, lot: bytes, *, block: BlockIdentifier = "latest") -> int | None:
        """The receivable lot ``lot`` (its key) backs; None when none."""
        return int(self.chain.call(self.contract.functions.receivableBackedBy(lot), block=block)) or None

    def backing_status(
        self, receivable_id: int, *, block: BlockIdentifier = "latest"
    ) -> tuple[BackingFault, bytes | None]:
        """The first backing lot at fault now and why; (NONE, None) while every lot is sound."""
        fault, lot = self.chain.call(self.contract.functions.backingStatus(receivable_id), block=block)
        return BackingFault(fault), (bytes(lot) if BackingFault(fault) is not BackingFault.NONE else None)

    def flag_of(self, receivable_id: int, *, block: BlockIdentifier = "latest") -> Flag:
        t = self.chain.call(self.contract.functions.flagOf(receivable_id), block=block)
        return Flag(flagged_at=t[0], fault=BackingFault(t[1]), by=_opt_address(t[2]), lot=bytes(t[3]))

    def evidence_sources(self) -> tuple[str, str, str]:
        """The PurchaseOrders, LotRegistry and QualityCertifier the backing is checked against."""
        return tuple(  # type: ignore[return-value]
            to_checksum_address(a) for a in self.chain.call(self.contract.functions.evidenceSources())
        )

    def part(self, part_id: int, *, block: BlockIdentifier = "latest") -> Part:
        t = self.chain.call(self.contract.functions.part(part_id), block=block)
        return Part(
            id=t[0],
            receivable_id=t[1],
            parent=t[2],
            holder=to_checksum_address(t[3]),
            state=PartState(t[4]),
            split_quota=t[5],
            offered_to=_opt_address(t[6]),
            financed_by=_opt_address(t[7]),
            amount=t[8],
            min_price=t[9],
            financed_price=t[10],
        )

    def parts_of(self, receivable_id: int) -> list[int]:
        """The receivable's leaf parts (not split), in creation order."""
        return [int(i) for i in self.chain.call(self.contract.functions.partsOf(receivable_id))]

    def all_parts_of(self, receivable_id: int) -> list[int]:
        """Every part of the receivable (root, split parents, leaves), in creation order."""
        return [int(i) for i in self.chain.call(self.contract.functions.allPartsOf(receivable_id))]

    def parts_held_by(self, holder: str) -> list[int]:
        """The parts ``holder`` holds now (split parents and settled parts included), unordered."""
        fn = self.contract.functions.partsHeldBy(to_checksum_address(holder))
        return [int(i) for i in self.chain.call(fn)]

    def offers_to(self, bank: str) -> list[int]:
        """The parts with an open offer to ``bank``, unordered."""
        return [int(i) for i in self.chain.call(self.contract.functions.offersTo(to_checksum_address(bank)))]

    def receivable_of(self, debtor: str, reference: bytes) -> int | None:
        """The receivable ``debtor`` confirmed under ``reference``; None when none."""
        fn = self.contract.functions.receivableOf(to_checksum_address(debtor), reference)
        return int(self.chain.call(fn)) or None

    def escrow_of(self, part_id: int, *, block: BlockIdentifier = "latest") -> int:
        """What ``part_id`` holds in escrow (a payment the token refused at repayment); 0 when none."""
        return int(self.chain.call(self.contract.functions.escrowOf(part_id), block=block))

    def escrow_total(self, *, block: BlockIdentifier = "latest") -> int:
        """Every part's escrow together: the contract holds at least this much of the token."""
        return int(self.chain.call(self.contract.functions.escrowTotal(), block=block))

    def outstanding_of(self, factory: str, *, block: BlockIdentifier = "latest") -> int:
        """``factory``'s outstanding financed amount: its financed parts' amounts, not yet paid."""
        fn = self.contract.functions.outstandingOf(to_checksum_address(factory))
        return int(self.chain.call(fn, block=block))

    def line_of(self, part_id: int) -> str | None:
        """The factory whose line financing ``part_id`` charged; None if none (not financed, or paid)."""
        return _opt_address(str(self.chain.call(self.contract.functions.lineOf(part_id))))

    def credit_registry(self) -> str:
        return to_checksum_address(self.chain.call(self.contract.functions.creditRegistry()))

    def line_domain(self) -> LineDomain:
        """The EIP-712 domain credit-line statements are signed for (this contract on this chain)."""
        return LineDomain(chain_id=self.chain.chain_id, verifying_contract=self.address)

    def credit_line(self, bank: str, part_id: int, *, deadline: int) -> CreditLine:
        """The statement that would let ``bank`` finance ``part_id`` now: the seller (the part's holder),
        its current record's index (0 when it has none: the contract refuses ``ReceivablesNoCreditRecord``),
        and its outstanding amount plus the part's. Nothing is checked against a limit here: the oracle
        signs only a statement whose total is within the limit it committed to
        (``ledger_service.credit_desk.line``)."""
        p = self.part(part_id)
        count = CreditRegistryClient(self.chain, self.credit_registry()).record_count(p.holder)
        return CreditLine(
            factory=p.holder,
            bank=bank,
            part_id=part_id,
            record_index=max(count - 1, 0),
            total=self.outstanding_of(p.holder) + p.amount,
            deadline=deadline,
        )

    def receivable_count(self) -> int:
        return int(self.chain.call(self.contract.functions.receivableCount()))

    def token(self) -> str:
        return to_checksum_address(self.chain.call(self.contract.functions.token()))

    def admission_gate(self) -> str:
        return to_checksum_address(self.chain.call(self.contract.functions.admissionGate()))


class StablecoinClient:
    """The settlement ERC-20 (``TestStablecoin`` ABI: ERC-20 plus the owner's ``mint``)."""

    def __init__(self, chain: Chain, address: str) -> None:
        self.chain = chain
        self.contract = chain.contract(STABLECOIN_NAME, address)

    @classmethod
    def from_deployment(cls, chain: Chain, deployment: Deployment) -> StablecoinClient:
        return cls(chain, deployment.address(STABLECOIN_NAME))

    @property
    def address(self) -> str:
        return str(self.contract.address)

    def mint(self, owner: LocalAccount, to: str, amount: int) -> TxResult:
        """Mint ``amount`` (fen) to ``to``; only the token's owner may."""
        return self.chain.transact(self.contract.functions.mint(to_checksum_address(to), amount), owner)

    def approve(self, holder: LocalAccount, spender: str, amount: int) -> TxResult:
        fn = self.contract.functions.approve(to_checksum_address(spender), amount)
        return self.chain.transact(fn, holder)

    def transfer(self, holder: LocalAccount, to: str, amount: int) -> TxResult:
        return self.chain.transact(self.contract.functions.transfer(to_checksum_address(to), amount), holder)

    def balance_of(self, account: str, *, block: BlockIdentifier = "latest") -> int:
        fn = self.contract.functions.balanceOf(to_checksum_address(account))
        return int(self.chain.call(fn, block=block))

    def allowance(self, owner: str, spender: str) -> int:
        fn = self.contract.functions.allowance(to_checksum_address(owner), to_checksum_address(spender))
        return int(self.chain.call(fn))

    def total_supply(self) -> int:
        return int(self.chain.call(self.contract.functions.totalSupply()))

    def decimals(self) -> int:
        return int(self.chain.call(self.contract.functions.decimals()))

    def symbol(self) -> str:
        return str(self.chain.call(self.contract.functions.symbol()))

    def name(self) -> str:
        return str(self.chain.call(self.contract.functions.name()))


def deploy_finance_settlement(
    chain: Chain,
    deployer: LocalAccount,
    *,
    deployment: Deployment,
    gate_address: str,
    orders: str,
    lots: str,
    certifier: str,
    credit_registry: str | None = None,
    admin: str | None = None,
    token: str | None = None,
) -> dict[str, str]:
    """Deploy the Receivables settling in ``token``; without one, deploy a ``TestStablecoin`` first
    (owned by ``admin``, default the deployer, who mints) and settle in it. Its receivables are backed
    by the orders of PurchaseOrders ``orders`` and lots of LotRegistry ``lots`` judged by the
    QualityCertifier ``certifier``; credit lines are bounded by the records of ``credit_registry``
    (default: the deployment's ``CreditRegistry``) (issue 15).

    Returns the addresses by contract name (``TestStablecoin`` only when deployed here).
    """
    if chain.chain_id != deployment.chain_id:
        raise DeploymentError(
            f"the deployment is for chain {deployment.chain_id} but the node serves chain "
            f"{chain.chain_id}: deploy the Receivables next to its suite"
        )
    gate = to_checksum_address(gate_address)
    if gate == to_checksum_address(_ZERO_ADDRESS):
        raise DeploymentError("the Receivables need an admission gate: deploy the participant registry first")
    credit = credit_registry or deployment.contracts.get("CreditRegistry")
    if credit is None or int(credit, 16) == 0:
        raise DeploymentError("the Receivables need a CreditRegistry (credit lines): deploy it first")
    owner = to_checksum_address(admin or deployer.address)
    out: dict[str, str] = {}
    if token is None:
        coin = chain.deploy(STABLECOIN_NAME, deployer, owner).contract_address
        if coin is None:  # pragma: no cover - a mined constructor always has an address
            raise DeploymentError("the TestStablecoin constructor was mined without a contract address")
        out[STABLECOIN_NAME] = token = str(coin)
    elif int(token, 16) == 0 or not chain.w3.eth.get_code(to_checksum_address(token)):
        raise DeploymentError(f"no settlement token at {token}: deploy the ERC-20 first or omit it")
    sources = [to_checksum_address(a) for a in (orders, lots, certifier, credit)]
    result = chain.deploy(CONTRACT_NAME, deployer, owner, gate, to_checksum_address(token), *sources)
    if result.contract_address is None:  # pragma: no cover - a mined constructor always has an address
        raise DeploymentError("the Receivables constructor was mined without a contract address")
    out[CONTRACT_NAME] = str(result.contract_address)
    return out
