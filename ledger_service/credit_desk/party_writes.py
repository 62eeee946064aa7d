"""Party writes of the finance desk: prepared for the caller to sign, then relayed (moved out of the
routes, issue 13).

Each write is a pair: :func:`prepare_write` answers the unsigned transaction for the caller's own
address (after the admission check; a call the contract would refuse is refused 409
``finance.reverts`` with the custom error, before anything is signed), and :func:`relay_write`
relays exactly that call signed by the caller (see ledger_service/tx_relay.py for the checks). The
service never holds a party's key. The builders (:func:`grant_consent`, :func:`confirm`,
:func:`split`...) check who may write and name the contract call; oracle publishing is
:func:`prepared_publish` then :func:`publish_record`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from eth_utils import to_checksum_address
from web3.logs import DISCARD

from contracts.chain import TxResult
from contracts.credit import Envelope
from contracts.credit_consent import ConsentOpening, InvalidConsentOpening
from contracts.credit_line import CreditLineError, LineAttestation
from contracts.participant_ids import action_id
from contracts.participants import ParticipantRegistryClient
from contracts.receivables import StablecoinClient, receivable_reference
from ledger_service.credit_desk.consents import (
    consent_json,
    opening_for_grant,
    pair_standing,
    register_opening,
)
from ledger_service.credit_desk.desk import (
    PUBLISH_ACTION,
    FinanceDesk,
    assess_profile,
    desk_of,
    prepare_publish,
    relay_publish,
)
from ledger_service.credit_desk.errors import AccessRefused, FinanceError, PublishRefused
from ledger_service.credit_desk.queries import (
    PAYER_ACTIONS,
    address,
    receivables_client,
    require_receivables_party,
)
from ledger_service.credit_desk.sealing import record_json, set_index, store_opening
from ledger_service.errors import NotFound
from ledger_service.tx_relay import expected_call, prepare, relay

__all__ = [
    "Write",
    "approve",
    "confirm",
    "finance",
    "grant_consent",
    "holder_write",
    "offer",
    "prepare_write",
    "prepared_publish",
    "publish_record",
    "register_consent",
    "relay_write",
    "repay",
    "require_admitted",
    "revoke_consent",
    "split",
    "transfer",
    "withdraw_offer",
]

_REPAY_NOTE = (
    "repay moves the face value from the debtor to the holders: the debtor must first approve the "
    "Receivables contract for it (POST /v1/stablecoin/approve/prepare)"
)
_FINANCE_NOTE = (
    "finance moves `price` from the bank to the holder: the bank must first approve the Receivables "
    "contract for it (POST /v1/stablecoin/approve/prepare)"
)


class Write:
    """One party write: the call, the admission it needs, and how to read its outcome."""

    def __init__(
        self,
        fn: Any,
        *,
        context: str,
        note: str | None = None,
        outcome: Callable[[TxResult], dict[str, Any]] | None = None,
        opening: ConsentOpening | None = None,
    ) -> None:
        self.fn, self.context, self.note, self.outcome = fn, context, note, outcome
        #: a consent grant's opening, answered by the prepare step too
        self.opening = opening


def require_admitted(service: Any, party: str, action: str, why: str) -> None:
    """Refuse (403 ``finance.not_admitted``) a party the gate does not admit for ``action``."""
    client = receivables_client(service) if action.startswith("supet.receivable.") else None
    gate = (
        ParticipantRegistryClient.at(service.chain, client.admission_gate())
        if client is not None
        else desk_of(service).gate_client()
    )
    if not gate.is_admitted(party, action_id(action)):
        raise AccessRefused(
            f"{party} is not admitted for {action} ({why}); GET /v1/parties/{party}/admission says what "
            "is missing",
            code="finance.not_admitted",
        )


def prepare_write(service: Any, party: str, write: Write) -> dict[str, Any]:
    """The unsigned transaction of ``write`` for ``party`` to sign (``RelayRefused`` if it would revert)."""
    tx = prepare(service.chain, party, write.fn, context=write.context)
    out: dict[str, Any] = {"party": party, "call": write.context, "transaction": tx}
    if write.opening is not None:
        out["consent"] = write.opening.to_json_obj()
    if write.note:
        out["note"] = write.note
    return out


def relay_write(service: Any, party: str, write: Write, signed: str) -> dict[str, Any]:
    """Relay ``party``'s signed copy of exactly ``write``; the mined transaction and its outcome."""
    expected = expected_call(service.chain, write.fn)
    done = relay(service.chain, party, expected, signed, context=write.context)
    out: dict[str, Any] = {
        "party": party,
        "call": write.context,
        "tx_hash": done.tx_hash,
        "block_number": done.block_number,
        "gas_used": done.gas_used,
    }
    if write.outcome is not None:
        out.update(write.outcome(done.result))
    if write.note:
        out["note"] = write.note
    return out


# ---------------------------------------------------------------------------- publishing (oracle)


def prepared_publish(
    desk: FinanceDesk,
    party: str,
    *,
    factory_address: str,
    profile_commitment: str,
    price: float | None,
    revenue: float | None,
    currency: str,
    valid_until: int | None,
    salt: str | None = None,
    envelopes: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """Assess a factory from its published profile: the record (with a fresh salt), its envelopes for the
    consented banks, and the ``publishRecord`` transaction for the oracle ``party`` to sign;
    ``_internal`` holds the assessment, its commitment and the opening.

    The submit step passes back the ``salt`` and ``envelopes`` the prepare step answered (they are part
    of the signed call, and ECIES is randomised): the record is rebuilt with that salt and the call
    with those envelopes, so the relay sends only what was prepared.
    """
    if not desk.admitted(party, PUBLISH_ACTION):
        raise AccessRefused(
            f"{party} is not admitted for supet.credit.publish (the analytics oracle)",
            code="finance.not_an_oracle",
        )
    factory = address(factory_address)
    desk.require_factory_oracle(factory, party)
    assessment, commitment = assess_profile(
        desk.engine,
        factory,
        profile_commitment,
        price=price,
        revenue=revenue,
        currency=currency,
        proof=desk.proof_facts(factory),
    )
    _, now_s = desk.head()
    opening, sealed, sealed_for, skipped = desk.seal(
        assessment,
        commitment,
        factory=factory,
        oracle=party,
        valid_until=valid_until if valid_until is not None else now_s + 90 * 86_400,
        salt=_salt(salt) if salt is not None else None,
    )
    if envelopes is not None:
        banks = dict(zip((e.consent_id for e in sealed), sealed_for, strict=True))
        sealed = [_envelope(e) for e in envelopes]
        sealed_for = [banks.get(e.consent_id, "") for e in sealed]
    tx = prepare_publish(desk, party, opening, sealed)
    return {
        "factory": factory,
        "valid_until": opening.valid_until,
        "salt": "0x" + opening.salt.hex(),
        "record": record_json_of(opening),
        "opening": opening.to_json_obj(),
        # the oracle seals, so it learns the banks; the chain gets the consent ids only
        "envelopes": [
            {"consent_id": "0x" + e.consent_id.hex(), "bank": bank, "ciphertext": "0x" + e.ciphertext.hex()}
            for e, bank in zip(sealed, sealed_for, strict=True)
        ],
        "envelopes_skipped": skipped,
        "assessment": assessment.to_json_obj(),
        "assessment_commitment": commitment.to_json_obj(),
        "transaction": tx,
        "_internal": (assessment, commitment, opening),
    }


def record_json_of(opening: Any) -> dict[str, Any]:
    """The record a prepare step answers the oracle: its figures and its commitment."""
    return {
        "grade": opening.grade_name,
        "pd_ppm": opening.pd_ppm,
        "limit_minor": opening.limit,
        "currency": opening.currency,
        "model_version": opening.model_version_text,
        "commitment": "0x" + opening.analytics_commitment.hex(),
        "record_commitment": "0x" + opening.commitment().hex(),
    }


def _salt(text: str) -> bytes:
    try:
        raw = bytes.fromhex(text.removeprefix("0x"))
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise PublishRefused(
            "salt is the 0x-hex 32 bytes the prepare step answered", code="finance.publish.bad_transaction"
        )
    return raw


def _envelope(obj: dict[str, str]) -> Envelope:
    try:
        consent_id = bytes.fromhex(obj["consent_id"].removeprefix("0x"))
        if len(consent_id) != 32:
            raise ValueError("a consent id is 32 bytes")
        return Envelope(consent_id=consent_id, ciphertext=bytes.fromhex(obj["ciphertext"].removeprefix("0x")))
    except (KeyError, ValueError, AttributeError, TypeError) as e:
        raise PublishRefused(
            "envelopes are the [{consent_id, ciphertext}] the prepare step answered",
            code="finance.publish.bad_transaction",
        ) from e


def publish_record(
    desk: FinanceDesk, party: str, prepared: dict[str, Any], valid_until: int | None, signed: str
) -> dict[str, Any]:
    """Store the assessment and the opening of ``prepared`` (:func:`prepared_publish`, rebuilt with the
    echoed salt and envelopes) and relay the oracle's signed ``publishRecord`` (exactly the prepared
    one); the record as published, opened."""
    assessment, commitment, opening = prepared.pop("_internal")
    if valid_until is None:
        raise PublishRefused(
            "send the valid_until the prepare step returned (it is part of the signed call)",
            code="finance.publish.bad_transaction",
        )
    desk.store_assessment(prepared["factory"], assessment, commitment)
    store_opening(desk.engine, opening)
    tx_hash = relay_publish(desk, party, prepared["transaction"], signed)
    record = desk.current_record(prepared["factory"])
    assert record is not None
    set_index(desk.engine, record.record_commitment, record.index)
    return {
        "record": record_json(record, opening.located(oracle=record.oracle, index=record.index)),
        "tx_hash": tx_hash,
        "assessment_commitment": commitment.to_json_obj(),
        "envelopes": [e["consent_id"] for e in prepared["envelopes"]],
    }


# ---------------------------------------------------------------------------- consents (the factory)


def grant_consent(service: Any, party: str, bank: str, expires_at: int) -> Write:
    """The factory ``party`` lets ``bank`` read its credit data until ``expires_at`` (chain time).

    Only the consent id reaches the chain. Its opening (factory, bank, salt) is kept in the store before
    this returns, so before the prepare step answers (and the relay step uses the same): the pair's
    opening is reused, so granting again renews the same consent. The prepare and relay answers carry
    the opening (``consent``); the bank gets it from ``GET /v1/bank/factories``.
    """
    require_admitted(service, party, "supet.consent.grant", "factories granting consent")
    bank = address(bank)
    if bank == party:
        raise FinanceError(f"a factory ({party}) cannot consent to itself", code="finance.bad_consent")
    desk = desk_of(service)
    opening = opening_for_grant(desk.credit, desk.engine, party, bank)
    fn = desk.credit.grant_call(opening.consent_id, expires_at)
    return Write(
        fn, context="grantConsent", outcome=lambda _r: {"consent": opening.to_json_obj()}, opening=opening
    )


def revoke_consent(service: Any, party: str, bank: str | None = None, consent_id: str | None = None) -> Write:
    """The factory ``party`` withdraws a standing consent: ``consent_id``, or its standing consent to
    ``bank`` (the service finds the id by the opening it holds)."""
    # no admission asked: a factory may always withdraw its consent (the contract asks none either)
    desk = desk_of(service)
    if (bank is None) == (consent_id is None):
        raise FinanceError("give exactly one of bank and consent_id", code="finance.bad_query")
    if consent_id is not None:
        raw = _consent_id(consent_id)
    else:
        pair = pair_standing(desk.credit, desk.engine, party, address(str(bank)), now_s=desk.head()[1])
        if pair.opening is None:
            raise FinanceError(
                f"{party} holds no consent to {bank} this service knows of; give its consent_id",
                code="finance.no_consent",
            )
        raw = pair.opening.consent_id
    fn = desk.credit.revoke_call(raw)
    return Write(fn, context="revokeConsent", outcome=lambda _r: {"consent_id": "0x" + raw.hex()})


def register_consent(service: Any, party: str, bank: str, salt: str) -> dict[str, Any]:
    """The factory ``party`` registers the opening of a consent it granted on chain itself
    (``CreditRegistryClient.grant_consent`` returns it); checked against the chain, then kept."""
    desk = desk_of(service)
    try:
        opening = ConsentOpening(
            factory=party, bank=address(bank), salt=bytes.fromhex(salt.removeprefix("0x"))
        )
    except (InvalidConsentOpening, ValueError) as e:
        raise FinanceError(f"not a consent opening: {e}", code="finance.bad_consent") from e
    consent = register_opening(desk.credit, desk.engine, opening)
    return {"consent": consent_json(opening, consent, now_s=desk.head()[1])}


def _consent_id(text: str) -> bytes:
    try:
        raw = bytes.fromhex(text.removeprefix("0x"))
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise FinanceError(f"a consent id is 0x-hex 32 bytes, got {text!r}", code="finance.bad_consent")
    return raw


# ---------------------------------------------------------------------------- receivables (the debtor)


def _key(value: str, what: str) -> bytes:
    """A 0x-hex 32-byte id; :class:`FinanceError` ``finance.bad_key`` otherwise."""
    text = value.removeprefix("0x")
    if len(text) != 64 or any(c not in "0123456789abcdefABCDEF" for c in text):
        raise FinanceError(
            f"{what} {value!r} is not a 32-byte key (0x and 64 hex digits)", code="finance.bad_key"
        )
    return bytes.fromhex(text)


def confirm(
    service: Any,
    party: str,
    supplier: str,
    face_value: int,
    due_date: int,
    reference: str,
    backing: tuple[str, list[str]],
) -> Write:
    """The debtor ``party`` confirms what it owes ``supplier`` for ``backing``: the purchase order's id
    and the delivered lots' keys (issue 15; the contract checks each); the outcome names the receivable."""
    require_admitted(service, party, "supet.receivable.create", "core enterprises confirming what they owe")
    rc = receivables_client(service)
    ref = receivable_reference(reference)
    order = _key(backing[0], "the order id")
    lots = [_key(k, "a lot key") for k in backing[1]]
    fn = rc.contract.functions.confirm(address(supplier), face_value, due_date, ref, order, lots)

    def outcome(result: TxResult) -> dict[str, Any]:
        (ev,) = rc.contract.events.ReceivableConfirmed().process_receipt(result.receipt, errors=DISCARD)
        rid = int(ev["args"]["receivableId"])
        return {"receivable_id": rid, "root_part": int(ev["args"]["rootPart"])}

    return Write(fn, context="confirm", outcome=outcome)


def repay(service: Any, party: str, receivable_id: int) -> Write:
    """The debtor repays a receivable (only its own debtor)."""
    rc = receivables_client(service)
    if receivable_id > rc.receivable_count():
        raise NotFound(f"there is no receivable {receivable_id}", code="finance.no_receivable")
    debtor = rc.receivable(receivable_id).debtor
    if debtor != party:
        raise AccessRefused(
            f"only the debtor {debtor} repays receivable {receivable_id}; you are {party}",
            code="finance.not_the_debtor",
        )
    return Write(rc.contract.functions.repay(receivable_id), context="repay", note=_REPAY_NOTE)


# ---------------------------------------------------------------------------- parts (holder, bank)


def holder_write(service: Any, party: str, part_id: int, name: str, *args: Any) -> Write:
    """A holder's write on a part: ``split``, ``transfer``, ``offer`` or ``withdrawOffer``."""
    require_admitted(service, party, "supet.receivable.hold", "parties holding receivables")
    rc = receivables_client(service)
    fn = getattr(rc.contract.functions, name)(part_id, *args)
    outcome = None
    if name == "split":

        def outcome(result: TxResult) -> dict[str, Any]:
            (ev,) = rc.contract.events.PartSplit().process_receipt(result.receipt, errors=DISCARD)
            return {"children": [int(c) for c in ev["args"]["children"]]}

    return Write(fn, context=name, outcome=outcome)


def split(service: Any, party: str, part_id: int, amounts: list[int], holders: list[str]) -> Write:
    """Split a part into one child per (amount, holder)."""
    if len(amounts) != len(holders):
        raise FinanceError(
            f"one holder per amount: {len(amounts)} amounts, {len(holders)} holders",
            code="finance.bad_split",
        )
    checked = [address(h) for h in holders]
    return holder_write(service, party, part_id, "split", list(amounts), checked)


def transfer(service: Any, party: str, part_id: int, to: str) -> Write:
    """The holder hands a part to ``to``."""
    return holder_write(service, party, part_id, "transfer", address(to))


def offer(service: Any, party: str, part_id: int, bank: str, min_price: int) -> Write:
    """The holder offers a part to ``bank`` for at least ``min_price``."""
    return holder_write(service, party, part_id, "offer", address(bank), min_price)


def withdraw_offer(service: Any, party: str, part_id: int) -> Write:
    """The holder withdraws its standing offer of a part."""
    return holder_write(service, party, part_id, "withdrawOffer")


def finance(service: Any, party: str, part_id: int, price: int, line: dict[str, Any]) -> Write:
    """A bank finances an offered part at ``price`` within the seller's credit line: ``line`` is the
    oracle's statement (``POST /v1/bank/receivables/parts/{id}/line``'s ``attestation``) for this bank
    and part."""
    require_admitted(service, party, "supet.receivable.finance", "banks financing receivables")
    try:
        attestation = LineAttestation.from_json_obj(line)
    except CreditLineError as e:
        raise FinanceError(e.message, code="finance.line.bad_attestation") from e
    if attestation.line.bank != to_checksum_address(party) or attestation.line.part_id != part_id:
        raise FinanceError(
            f"the statement is for bank {attestation.line.bank} and part {attestation.line.part_id}, not "
            f"{party} and {part_id}: ask for this part's (POST /v1/bank/receivables/parts/{part_id}/line)",
            code="finance.line.mismatch",
        )
    fn = receivables_client(service).finance_call(part_id, price, attestation)
    return Write(fn, context="finance", note=_FINANCE_NOTE)


# ---------------------------------------------------------------------------- the settlement token


def approve(service: Any, party: str, amount: int) -> Write:
    """A payer approves the Receivables contract (always the spender) for ``amount``."""
    require_receivables_party(service, party, PAYER_ACTIONS, "approve the Receivables contract")
    rc = receivables_client(service)
    coin = StablecoinClient(service.chain, rc.token())
    fn = coin.contract.functions.approve(rc.address, amount)  # the spender is always the Receivables
    return Write(fn, context="approve")
