"""What the parties who are not entitled try, and get (issue 14): bank B, admitted but without sun-a's
consent, asks the ledger for sun-a's credit record, profile and a raw reading, then reads the chain from
its own node (the registry's records of sun-a and every envelope sealed for sun-a's record) and tries to
open the envelopes with its key; an anonymous client asks for a raw reading, its proof and an undisclosed
lot. Each attempt is kept with its answer, for the report, the summary and the tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eth_account.signers.local import LocalAccount
from sqlmodel import Session, col, or_, select

from contracts.credit_bank import open_delivered
from contracts.credit_envelope import EnvelopeError
from contracts.credit_record import CreditRecordMismatch, InvalidOpening
from ledger_service.credit_desk.desk import desk_of
from ledger_service.store.models import ReadingRow
from supet.demo.scene import Scene

__all__ = ["anonymous_tries", "bank_b_tries", "privacy_lines", "privacy_rows", "reading_of"]


def _answer(r: Any) -> dict[str, Any]:
    """An HTTP answer as the story keeps it: its status and, for a refusal, the error's code."""
    code = ""
    if r.status_code >= 400:
        try:
            code = str(r.json().get("error", {}).get("code", ""))
        except ValueError:
            code = ""
    return {"status": r.status_code, "code": code}


def reading_of(scene: Scene, device_ids: list[str], *, not_of_lots: Sequence[str] = ()) -> str:
    """The digest (0x hex) of one anchored reading of these devices, from the ledger's store, naming none
    of ``not_of_lots`` (a disclosed lot's readings are public)."""
    with Session(scene.service.engine) as s:
        row = s.exec(
            select(ReadingRow)
            .where(
                col(ReadingRow.device_id).in_(device_ids),
                col(ReadingRow.batch_id).is_not(None),
                or_(col(ReadingRow.lot_id).is_(None), col(ReadingRow.lot_id).not_in(list(not_of_lots))),
            )
            .order_by(col(ReadingRow.id))
            .limit(1)
        ).first()
    if row is None:
        raise RuntimeError(f"no anchored reading of {device_ids[:3]}... in the demo's store")
    return "0x" + row.digest.hex()


def bank_b_tries(
    scene: Scene, factory: str, digest: str, bank_b: LocalAccount, banks: list[str]
) -> dict[str, Any]:
    """Bank B, admitted but not consented, tries the ledger and then its own node for ``factory``'s
    credit figures; ``digest`` is one of the factory's readings, ``banks`` the consortium's admitted
    banks (unused since envelopes name no bank: bank B reads every envelope of the factory's records
    from the logs and tries to open each)."""
    api = scene.api
    auth = api.headers(bank_b)
    tries: dict[str, Any] = {
        "credit": _answer(api.http.get(f"/v1/bank/factories/{factory}/credit", headers=auth)),
        "profile": _answer(api.http.get(f"/v1/bank/factories/{factory}/profile", headers=auth)),
        "reading": _answer(api.http.get(f"/v1/readings/{digest}", headers=auth)),
    }
    # its own node: the records of the factory (through the registry's client, as any member reads it)
    credit = desk_of(scene.service).credit
    records = [credit.record_at(factory, i) for i in range(credit.record_count(factory))]
    tries["records"] = [
        {
            "index": r.index,
            "commitment": "0x" + r.record_commitment.hex(),
            "valid_until": r.valid_until,
            "model_version": r.model_version_text,
            "analytics_commitment": "0x" + r.analytics_commitment.hex(),
        }
        for r in records
    ]
    # every envelope of the factory's records is in the logs, addressed by consent id (it names no bank,
    # issue 14): bank B tries its key on each
    envelopes = credit.envelopes_for(None, factory=factory)
    opened = 0
    failures: list[str] = []
    for env in envelopes:
        try:
            open_delivered(credit, env, bytes(bank_b.key))
        except (EnvelopeError, InvalidOpening, CreditRecordMismatch) as e:
            failures.append(e.code)
            continue
        opened += 1
    tries["envelopes"] = {
        "seen": len(envelopes),
        # the chain does not say whom an envelope is for: only opening it does
        "addressed_to_it": opened,
        "opened": opened,
        "refused": sorted(set(failures)),
    }
    return tries


def anonymous_tries(
    scene: Scene, digest: str, *, owner: LocalAccount, private_lot: str | None
) -> dict[str, Any]:
    """An anonymous client asks for a raw reading, its proof, an undisclosed lot and the disclosed list;
    the reading's ``owner`` asks for it too (it is there: the refusal is the policy's)."""
    http = scene.api.http
    out: dict[str, Any] = {
        "digest": digest,
        "reading": _answer(http.get(f"/v1/readings/{digest}")),
        "proof": _answer(http.get(f"/v1/readings/{digest}/proof")),
        "owner": _answer(http.get(f"/v1/readings/{digest}/proof", headers=scene.api.headers(owner))),
    }
    if private_lot is not None:
        out["private_lot"] = private_lot
        out["lot"] = _answer(http.get(f"/v1/lots/{private_lot}/history"))
    listed = http.get("/v1/disclosures")
    listed.raise_for_status()
    body = listed.json()
    out["disclosed"] = sorted(str(d["lot_id"]) for d in body["lots"])
    return out


def _said(a: dict[str, Any]) -> str:
    return f"HTTP {a['status']}" + (f" {a['code']}" if a.get("code") else "")


def privacy_rows(
    bank_b: dict[str, Any], anonymous: dict[str, Any], factory: str = "sun-a"
) -> list[list[str]]:
    """Rows of (who, tried, got): bank B's attempts and the anonymous client's, as kept by
    :func:`bank_b_tries` and :func:`anonymous_tries` (either may be empty)."""
    rows: list[list[str]] = []
    if bank_b:
        who = "bank B (admitted, no consent)"
        env, recs = bank_b["envelopes"], bank_b["records"]
        rows += [
            [who, f"{factory}'s credit record, from the ledger", _said(bank_b["credit"])],
            [who, f"{factory}'s profile, from the ledger", _said(bank_b["profile"])],
            [who, f"a raw reading of {factory}, from the ledger", _said(bank_b["reading"])],
            [
                who,
                f"{factory}'s records in CreditRegistry, from its own node",
                f"{len(recs)} record(s), each a commitment ("
                + ", ".join(r["commitment"][:12] + "..." for r in recs)
                + ") with its validity, model version and analytics commitment: no grade, PD or limit",
            ],
            [
                who,
                f"the envelopes of {factory}'s records in the logs, opened with its own key",
                f"{env['seen']} seen, {env['addressed_to_it']} addressed to it, {env['opened']} opened"
                + (f" ({', '.join(env['refused'])})" if env["refused"] else ""),
            ],
        ]
    if anonymous:
        short = anonymous["digest"][:12] + "..."
        rows += [
            ["anonymous", f"reading {short} (raw telemetry)", _said(anonymous["reading"])],
            ["anonymous", f"reading {short}'s proof bundle", _said(anonymous["proof"])],
            [
                f"{factory} (its owner, signed in)",
                f"reading {short}'s proof bundle",
                _said(anonymous["owner"]),
            ],
        ]
        if "lot" in anonymous:
            rows.append(
                [
                    "anonymous",
                    f"undisclosed lot {anonymous['private_lot']}'s history",
                    _said(anonymous["lot"]),
                ]
            )
        rows.append(["anonymous", "the list of disclosed lots", ", ".join(anonymous["disclosed"]) or "none"])
    return rows


def privacy_lines(bank_b: dict[str, Any], anonymous: dict[str, Any], factory: str = "sun-a") -> list[str]:
    """The summary's lines: what bank B and an anonymous client tried, and what each got."""
    return [f"{who} tried {tried}: {got}" for who, tried, got in privacy_rows(bank_b, anonymous, factory)]
