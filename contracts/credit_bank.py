"""A bank's side of sealed credit records, from its own node: no service involved.

* :func:`seal_for_bank` (the oracle's side): an opening encrypted to the registered key of the bank a
  consent's opening names, bound to the chain, registry, factory, bank and record commitment, and
  addressed on chain by the consent id only.
* :func:`read_bank_records`: every envelope sealed for the bank (``CreditEnvelope`` logs under the
  consent ids whose openings the bank holds, from ``GET /v1/bank/factories``; or, without them, every
  envelope on chain tried with the bank's key), opened and checked against the record's commitment.
* :func:`verify_record`: a record the bank holds (from the service, a loan file...) checked against the
  commitment; a mismatch names the field, hidden fields against the bank's own envelope when the bank's
  key is given (:class:`~contracts.credit_record.CreditRecordMismatch`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from eth_account import Account
from eth_account.signers.local import LocalAccount

from contracts.chain import TxResult
from contracts.credit import CreditRecord, CreditRegistryClient, DeliveredEnvelope, Envelope
from contracts.credit_consent import ConsentOpening, InvalidConsentOpening
from contracts.credit_envelope import EnvelopeError, envelope_aad, open_envelope, public_key_of, seal
from contracts.credit_record import CreditOpening, CreditRecordMismatch, InvalidOpening, check_opening
from contracts.errors import ContractRevert

__all__ = [
    "OpenedRecord",
    "locate_record",
    "open_delivered",
    "read_bank_records",
    "register_bank_key",
    "seal_for_bank",
    "verify_record",
]


@dataclass(frozen=True, kw_only=True)
class OpenedRecord:
    """One envelope read from the chain: the record on chain and what it opened to (or why not)."""

    envelope: DeliveredEnvelope
    record: CreditRecord
    opening: CreditOpening | None
    problem: str | None

    @property
    def verified(self) -> bool:
        return self.opening is not None and self.problem is None


def register_bank_key(client: CreditRegistryClient, account: LocalAccount) -> TxResult:
    """Register the bank ``account``'s own public key for the envelopes sealed for it."""
    return client.register_envelope_key(account, public_key_of(bytes(account.key)))


def seal_for_bank(client: CreditRegistryClient, opening: CreditOpening, consent: ConsentOpening) -> Envelope:
    """``opening`` encrypted to the registered key of the bank ``consent`` names, addressed by its
    consent id; :class:`EnvelopeError` when the bank has no key, :class:`InvalidConsentOpening` when the
    consent is another factory's. Whether the consent stands and the bank is admitted is the caller's to
    check (the contract checks the standing again)."""
    if consent.factory != opening.factory:
        raise InvalidConsentOpening(
            f"the consent is {consent.factory}'s, the record {opening.factory}'s: seal under the "
            "factory's own consent"
        )
    bank = consent.bank
    key = client.envelope_key_of(bank)
    if key is None:
        raise EnvelopeError(
            f"{bank} registered no envelope key (CreditRegistry.registerEnvelopeKey, `supet credit "
            "register-key`): nothing can be encrypted to it"
        )
    aad = envelope_aad(client.chain.chain_id, client.address, opening.factory, bank, opening.commitment())
    plain = CreditOpening.from_json_obj({**opening.to_json_obj(), "index": None}).to_bytes()
    return Envelope(consent_id=consent.consent_id, ciphertext=seal(plain, key, aad))


def open_delivered(
    client: CreditRegistryClient, env: DeliveredEnvelope, bank_key: bytes
) -> tuple[CreditRecord, CreditOpening]:
    """Open one delivered envelope with the bank's key and check it against its record on chain (raises
    when it fails: :class:`EnvelopeError` when it was not sealed for this bank)."""
    bank = Account.from_key(bank_key).address
    record = client.record_at_by(env.factory, env.oracle, env.index)
    aad = envelope_aad(client.chain.chain_id, client.address, env.factory, bank, record.record_commitment)
    opening = CreditOpening.from_bytes(open_envelope(env.ciphertext, bank_key, aad))
    opening = opening.located(oracle=env.oracle, index=env.index)
    check_opening(opening, record)
    return record, opening


def read_bank_records(
    client: CreditRegistryClient,
    bank_key: bytes,
    *,
    consents: Sequence[ConsentOpening] | None = None,
    factory: str | None = None,
    from_block: int = 0,
) -> list[OpenedRecord]:
    """Every envelope sealed for the bank of ``bank_key`` (of ``factory``), opened and verified.

    With ``consents`` (the openings the bank holds, e.g. from ``GET /v1/bank/factories``), the envelopes
    under their ids, each reported (a failure too). Without them, every envelope on chain is tried with
    the bank's key and those that open are the bank's (the others, sealed for other banks, are skipped
    unreported: the bank cannot tell them from damaged ones).

    @raise InvalidConsentOpening when a consent names another bank than ``bank_key``'s
    """
    bank = Account.from_key(bank_key).address
    ids: list[bytes] | None = None
    if consents is not None:
        for c in consents:
            if c.bank != bank:
                raise InvalidConsentOpening(f"consent {c.consent_id_hex} is to {c.bank}, not to {bank}")
        ids = [c.consent_id for c in consents]
    out: list[OpenedRecord] = []
    for env in client.envelopes_for(ids, factory=factory, from_block=from_block):
        record = client.record_at_by(env.factory, env.oracle, env.index)
        try:
            _, opening = open_delivered(client, env, bank_key)
        except (EnvelopeError, InvalidOpening, CreditRecordMismatch) as e:
            if ids is None:
                continue
            out.append(OpenedRecord(envelope=env, record=record, opening=None, problem=f"{e.code}: {e}"))
            continue
        out.append(OpenedRecord(envelope=env, record=record, opening=opening, problem=None))
    return out


def locate_record(client: CreditRegistryClient, opening: CreditOpening) -> CreditRecord:
    """The on-chain record ``opening`` claims to be: by its index when it has one, else the record of
    its oracle (the factory's bound one by default) whose commitment or analytics commitment it matches."""
    oracle = opening.oracle or client.oracle_of(opening.factory)
    if oracle is None:
        raise CreditRecordMismatch(f"{opening.factory} has no credit record on chain", fields=["factory"])
    if opening.index is not None:
        try:
            return client.record_at_by(opening.factory, oracle, opening.index)
        except ContractRevert as e:
            raise CreditRecordMismatch(
                f"{opening.factory} has no record {opening.index} from {oracle} on chain", fields=["index"]
            ) from e
    history = [
        client.record_at_by(opening.factory, oracle, i)
        for i in range(client.record_count_by(opening.factory, oracle))
    ]
    mine = opening.commitment()
    for match in (
        lambda r: r.record_commitment == mine,
        lambda r: r.analytics_commitment == opening.analytics_commitment,
    ):
        found = [r for r in history if match(r)]
        if found:
            return found[-1]
    raise CreditRecordMismatch(
        f"no record of {opening.factory} from {oracle} on chain has this record's commitment or analytics "
        "commitment; give its index",
        fields=["record_commitment"],
    )


def verify_record(
    client: CreditRegistryClient, opening: CreditOpening, *, bank_key: bytes | None = None
) -> CreditRecord:
    """Check ``opening`` against its record's commitment on chain; the record when it matches.

    With ``bank_key``, the bank's own envelope of that record (when there is one) names the hidden field
    that differs; without it, a hidden difference is named ``record_commitment``.
    @raise CreditRecordMismatch naming the fields that differ
    """
    record = locate_record(client, opening)
    reference = None
    if bank_key is not None and opening.commitment() != record.record_commitment:
        reference = _own_envelope(client, record, bank_key)
    check_opening(opening, record, reference=reference)
    return record


def _own_envelope(
    client: CreditRegistryClient, record: CreditRecord, bank_key: bytes
) -> CreditOpening | None:
    # envelopes name no bank: the one of this record that opens with the bank's key is its own
    for env in client.envelopes_for(None, factory=record.factory, index=record.index):
        if env.oracle != record.oracle:
            continue
        try:
            return open_delivered(client, env, bank_key)[1]
        except (EnvelopeError, InvalidOpening, CreditRecordMismatch):
            continue
    return None
