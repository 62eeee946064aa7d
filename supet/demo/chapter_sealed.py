"""The credit chapter's sealed records (issue 14): the chain shows sun-a's record as a commitment only;
bank A, consented, opens it from its own node (its envelope) and from the ledger's answer, and verifies
both against the commitment; a tampered copy is refused with the field named; bank B finds nothing."""

from __future__ import annotations

import dataclasses
from typing import Any

from eth_account.signers.local import LocalAccount

from contracts.credit_bank import read_bank_records, register_bank_key, verify_record
from contracts.credit_record import CreditOpening, CreditRecordMismatch
from ledger_service.credit_desk.desk import desk_of
from supet.demo.scene import Scene

__all__ = ["register_bank_keys", "sealed_rows", "sealed_story"]


def register_bank_keys(scene: Scene, *banks: LocalAccount) -> None:
    """Each bank registers its account key for the envelopes sealed for it (its own transaction)."""
    credit = desk_of(scene.service).credit
    for bank in banks:
        register_bank_key(credit, bank)


def sealed_story(
    scene: Scene, factory: str, bank_a: LocalAccount, bank_b: LocalAccount, served: dict[str, Any] | None
) -> dict[str, Any]:
    """After ``factory`` consented to bank A: the oracle delivers the current record's envelope; what the
    chain, bank A (node and ledger) and bank B see of it."""
    desk = desk_of(scene.service)
    delivered = desk.deliver_envelopes(scene.acct["oracle"], factory)
    record = desk.credit.current_record(factory)
    mine = [r for r in read_bank_records(desk.credit, bytes(bank_a.key), factory=factory) if r.verified]
    opened = mine[-1].opening if mine else None
    out: dict[str, Any] = {
        "commitment": "0x" + record.record_commitment.hex(),
        "valid_until": record.valid_until,
        "model_version": record.model_version_text,
        "delivered_to": delivered,
        "opened": None,
        "served_verified": False,
        "tampered_fields": [],
        # envelopes name no bank (issue 14): bank B tries its key on every one, and opens none
        "bank_b_envelopes": len(read_bank_records(desk.credit, bytes(bank_b.key))),
    }
    if opened is not None:
        out["opened"] = {"grade": opened.grade_name, "pd": opened.pd, "limit": opened.limit / 100}
        out["currency"] = opened.currency
        try:
            verify_record(
                desk.credit,
                dataclasses.replace(opened, grade=1 if opened.grade != 1 else 2),
                bank_key=bytes(bank_a.key),
            )
        except CreditRecordMismatch as e:
            out["tampered_fields"] = list(e.fields)
    if served and served.get("opening"):
        held = CreditOpening.from_json_obj(served["opening"])
        out["served_verified"] = verify_record(desk.credit, held) == record
    return out


def sealed_rows(s: dict[str, Any]) -> list[list[str]]:
    """The report's rows: who sees what of sun-a's record."""
    o = s.get("opened")
    figures = (
        f"{o['grade']}, PD {100 * o['pd']:.2f}%, limit {o['limit']:,.2f} {s.get('currency', '')}"
        if o
        else "-"
    )
    return [
        [
            "any node (chain)",
            f"commitment {s['commitment'][:18]}..., valid until {s['valid_until']}, "
            f"model {s['model_version']}; no grade, PD or limit",
        ],
        ["bank A, its envelope opened from its own node", f"{figures}: verified against the commitment"],
        [
            "bank A, the ledger's answer (record + salt)",
            "verified against the commitment" if s["served_verified"] else "NOT verified",
        ],
        [
            "a tampered copy (grade changed)",
            f"refused: {', '.join(s['tampered_fields'])} differs" if s["tampered_fields"] else "NOT refused",
        ],
        ["bank B (no consent), its own node", f"{s['bank_b_envelopes']} envelopes: the commitment alone"],
    ]
