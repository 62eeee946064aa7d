"""The credit line's statements (issue 15): the oracle signs, at a consented bank's request, that
financing a part keeps the seller within the limit of its current record.

``Receivables.finance`` needs the seller's oracle's EIP-712 ``CreditLine`` statement
(:mod:`contracts.credit_line`): the limit is a commitment on chain, and only the oracle, which holds the
record's opening, can compare. :func:`attest_line` makes and signs that statement for a bank, after:

- the part is ``Offered`` to that bank (``finance.line.not_offered``);
- the bank is admitted as a bank (``finance.not_a_bank``, counted in the refusal tally) and one of the
  seller's consents to it stands (``finance.line.no_consent``): the statement says something about the
  seller's limit, which only a consented bank may learn;
- the seller has a record (``finance.line.no_record``), still valid (``finance.line.record_stale``),
  published by this oracle (``finance.line.not_the_oracle``), whose opening this ledger holds
  (``finance.line.no_opening``);
- the seller's outstanding financed amount plus the part's is at most the record's limit
  (``finance.line.exceeded``).

Every request of an admitted bank, signed or refused, is written to the seller's access log (action
``line``) before the answer leaves, like a credit query. The statement names the seller's outstanding
amount: once any financing of the seller lands, every other statement made before it is spent (the
contract refuses its total), so two banks asking at once can never both land beyond the limit; the
second asks again. The limit is in the record's minor units, which must be the settlement token's
smallest units (CNY fen for tCNY).

The oracle's key: the service signs with ``SUPET_ORACLE_KEY`` (:func:`oracle_signer`); without it the
route answers 503 ``finance.line.no_oracle_key``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Final

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address

from contracts.credit_line import LineAttestation
from contracts.errors import ContractRevert
from contracts.receivables import PartState, ReceivablesClient
from ledger_service.credit_desk.desk import ANSWERED, FinanceDesk, desk_of
from ledger_service.credit_desk.errors import AccessRefused, FinanceError, LineRefused, LineUnavailable
from ledger_service.credit_desk.queries import receivables_client
from ledger_service.credit_desk.sealing import served_opening
from ledger_service.errors import NotFound

__all__ = [
    "DEFAULT_TTL",
    "LINE_ACTION",
    "LineGrant",
    "LineRefused",
    "LineUnavailable",
    "attest_line",
    "line_for_bank",
    "oracle_signer",
]

#: How long a statement may be used (seconds of chain time): long enough to sign and send ``finance``.
DEFAULT_TTL: Final = 900
#: The access-log action of a line request.
LINE_ACTION: Final = "line"


@dataclass(frozen=True, slots=True)
class LineGrant:
    """A signed statement and what the consented bank may know of it: the limit it was checked against
    (the bank reads the record anyway) and the headroom left after this financing."""

    attestation: LineAttestation
    limit: int
    currency: str
    valid_until: int

    def to_json_obj(self) -> dict[str, Any]:
        total = self.attestation.line.total
        return {
            "attestation": self.attestation.to_json_obj(),
            "limit": str(self.limit),
            "currency": self.currency,
            "outstanding_after": str(total),
            "headroom_after": str(self.limit - total),
            "record_valid_until": self.valid_until,
        }


def oracle_signer(settings: Any) -> LocalAccount:
    """The oracle's key from ``SUPET_ORACLE_KEY``; :class:`LineUnavailable` without one."""
    key = getattr(settings, "oracle_key", None)
    if key is None:
        raise LineUnavailable(
            "this ledger signs no credit-line statements: set SUPET_ORACLE_KEY to the key of the oracle "
            "that publishes the factories' records"
        )
    return Account.from_key(key.get_secret_value())


def _next_block_time(desk: FinanceDesk) -> int:
    """The time of the block ``finance`` would land in (the pending block's; a chain with a simulated
    clock may be far ahead of its latest block), never before the latest block's."""
    _, latest = desk.head()
    return max(latest, int(desk.chain.block("pending")["timestamp"]))


def attest_line(
    desk: FinanceDesk,
    rc: ReceivablesClient,
    oracle: LocalAccount,
    bank: str,
    part_id: int,
    *,
    ttl: int = DEFAULT_TTL,
) -> LineGrant:
    """``oracle``'s statement letting ``bank`` finance ``part_id`` now, or the typed refusal (see the
    module docstring); logged in the seller's access log either way."""
    bank = to_checksum_address(bank)
    try:
        part = rc.part(part_id)
    except ContractRevert as e:
        raise NotFound(f"no part {part_id}: {e.message}", code="finance.unknown_part") from e
    if part.state is not PartState.OFFERED or part.offered_to != bank:
        raise LineRefused(
            f"part {part_id} is {part.state.name}, offered to {part.offered_to}: a statement is signed only "
            "for the bank a part is offered to",
            code="finance.line.not_offered",
        )
    seller = part.holder
    desk.require_bank(bank, LINE_ACTION, seller)
    now_s = _next_block_time(desk)

    def refuse(error: FinanceError) -> FinanceError:
        desk.log(bank, seller, LINE_ACTION, error.code)
        return error

    if desk.consent_refusal(seller, bank, now_s=now_s) is not None:
        raise refuse(
            AccessRefused(
                f"{seller} has no standing consent to {bank}: a credit-line statement discloses something "
                "of its limit; ask the factory to grant consent",
                code="finance.line.no_consent",
            )
        )
    record = desk.current_record(seller)
    if record is None:
        raise refuse(LineRefused(f"{seller} has no credit record", code="finance.line.no_record"))
    if now_s >= record.valid_until:
        raise refuse(
            LineRefused(
                f"{seller}'s record {record.index} expired at {record.valid_until} (chain time {now_s}): "
                "no new financing until the oracle publishes a new record",
                code="finance.line.record_stale",
            )
        )
    if record.oracle != oracle.address:
        raise refuse(
            LineRefused(
                f"{seller}'s records are published by {record.oracle}; this ledger signs as {oracle.address}",
                code="finance.line.not_the_oracle",
            )
        )
    opening, why = served_opening(desk.engine, record)
    if opening is None:
        raise refuse(
            LineRefused(
                f"the limit of record {record.index} is unknown here: {why}", code="finance.line.no_opening"
            )
        )
    # the deadline counts from the later of the chain's and the wall clock: a chain whose clock is
    # simulated may stamp the next block far ahead of its latest one
    start = max(now_s, int(time.time()))
    statement = rc.credit_line(bank, part_id, deadline=min(start + ttl, record.valid_until - 1))
    if statement.record_index != record.index:  # a record published between the two reads
        raise refuse(
            LineRefused(
                f"{seller}'s record changed while signing; ask again", code="finance.line.record_stale"
            )
        )
    if statement.total > opening.limit:
        raise refuse(
            LineRefused(
                f"financing part {part_id} ({part.amount}) would bring {seller}'s outstanding financed "
                f"amount to {statement.total}, above the limit {opening.limit} {opening.currency} of record "
                f"{record.index}",
                code="finance.line.exceeded",
            )
        )
    desk.log(bank, seller, LINE_ACTION, ANSWERED)
    return LineGrant(
        attestation=statement.sign(oracle, rc.line_domain()),
        limit=opening.limit,
        currency=opening.currency,
        valid_until=record.valid_until,
    )


def line_for_bank(service: Any, bank: str, part_id: int) -> dict[str, Any]:
    """The route's answer: :func:`attest_line` with the service's oracle key, as JSON."""
    oracle = oracle_signer(service.settings)
    grant = attest_line(desk_of(service), receivables_client(service), oracle, bank, part_id)
    return grant.to_json_obj()
