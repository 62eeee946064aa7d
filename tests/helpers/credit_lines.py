"""Credit lines in the contract tests: an oracle's record for each seller (a commitment to no figure:
the limit is the oracle's to know) and the oracle's signed ``CreditLine`` for a financing, read from the
chain as the credit desk reads it (``ReceivablesClient.credit_line``) but with no limit of its own."""

from __future__ import annotations

import secrets

from eth_account.signers.local import LocalAccount

from contracts.chain import Chain
from contracts.credit import CreditRegistryClient
from contracts.credit_line import LineAttestation
from contracts.receivables import ReceivablesClient

__all__ = ["HOUR", "attest", "chain_now", "publish_records"]

HOUR = 3_600


def chain_now(chain: Chain) -> int:
    return int(chain.block("latest")["timestamp"])


def publish_records(
    credit: CreditRegistryClient, oracle: LocalAccount, factories: list[str], *, valid_for: int
) -> None:
    """Publish a record (random commitments) of each factory as ``oracle``, valid ``valid_for`` seconds."""
    until = chain_now(credit.chain) + valid_for
    for f in factories:
        credit.publish_record(
            oracle,
            f,
            record_commitment=secrets.token_bytes(32),
            valid_until=until,
            model_version=secrets.token_bytes(32),
            analytics_commitment=secrets.token_bytes(32),
        )


def attest(
    rec: ReceivablesClient, oracle: LocalAccount, bank: str, part_id: int, *, deadline: int | None = None
) -> LineAttestation:
    """``oracle``'s statement letting ``bank`` finance ``part_id`` now (deadline: an hour from now)."""
    deadline = chain_now(rec.chain) + HOUR if deadline is None else deadline
    return rec.credit_line(bank, part_id, deadline=deadline).sign(oracle, rec.line_domain())
