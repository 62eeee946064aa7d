"""What the portal's pages show, gathered from the services the API uses (no logic of their own).

- Auditor: :func:`lot_view` (the lot timeline of :mod:`ledger_service.lots.timeline` and the lot's standing
  certificate), :func:`check_reading` (a reading's proof bundle checked with
  :func:`auditor.verify.verify_bundle` against the chain).
- Factory: :func:`factory_devices` (its devices from ``DeviceEnrolled`` events, their registry record
  and their stored head: readings, gaps, last reading), :func:`factory_lots` (lots it opened, split
  off or accepted, as the LotRegistry holds them now).
- Factory: :func:`factory_access_log` (one page of who looked at its credit data, newest first,
  with the links to the older and newer pages and the count of refused non-admitted keys).
- Bank: :func:`profile_png` (the latest published profile of a factory as a chart).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlencode

from sqlmodel import Session, select

from analytics.charts import profile_chart
from auditor.bundle import ProofBundle
from auditor.errors import VerificationError
from auditor.lot_chain import ChainStep, transformation_text
from auditor.verify import verify_bundle
from contracts.certifier import CertificateStatus, QualityCertifierClient
from contracts.lots import LotRegistryClient, format_gtin
from contracts.registry import DeviceRecord, device_id_hash
from ledger_service.analytics_store.publish import list_published
from ledger_service.auth import AuthenticatedParty
from ledger_service.credit_desk import queries as finance_desk
from ledger_service.errors import NotFound
from ledger_service.lots.timeline import LotPage, ReadingStep, lot_timeline
from ledger_service.portal.errors import BadForm
from ledger_service.proofs import ProofPending, parse_digest, proof_bundle
from ledger_service.service import LedgerService
from ledger_service.store.models import DeviceHeadRow

__all__ = [
    "ACCESS_PAGE",
    "FACTORY_PAGE",
    "AccessLogView",
    "DeviceHealth",
    "LotSummary",
    "LotView",
    "PageLinks",
    "StepRow",
    "Verdict",
    "check_reading",
    "factory_access_log",
    "factory_devices",
    "factory_lots",
    "fmt_ms",
    "lot_view",
    "profile_png",
    "proof_json",
]

KIND_LABELS = {
    "opened": "Opened",
    "split": "Split",
    "transfer_proposed": "Transfer proposed",
    "transfer_accepted": "Transfer accepted",
    "transfer_rejected": "Transfer rejected",
    "transfer_cancelled": "Transfer cancelled",
    "transformed": "Transformed",
    "certified": "Certified",
    "rejected": "Rejected by QC",
    "reading": "Reading",
}


def fmt_ms(ms: int | None) -> str:
    """Unix ms as ``YYYY-MM-DD HH:MM:SS UTC`` (``-`` for none)."""
    if not ms:
        return "-"
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


# ---------------------------------------------------------------------------- auditor


@dataclass(frozen=True, kw_only=True, slots=True)
class StepRow:
    """One row of a lot's timeline as the page shows it."""

    kind: str
    label: str
    time: str
    actor: str
    what: str
    #: ``on chain`` (a transaction), or the reading's status: ``anchored``, ``batched``, ``pending``.
    status: str
    tx_hash: str | None
    block: int | None
    digest: str | None


@dataclass(frozen=True, kw_only=True, slots=True)
class LotView:
    lot_id: str
    on_chain: bool
    certificate: str
    steps: list[StepRow]
    next_cursor: str | None
    recall: str | None = None  # the recall notice the lot is under (issue 15), None when none


def _what(step: ChainStep | ReadingStep) -> str:
    if isinstance(step, ReadingStep):
        d = step.to_json_obj()["details"]
        metrics = ", ".join(f"{k} = {v}" for k, v in sorted(d["metrics"].items()))
        return f"seq {d['seq']}: {metrics}"
    d = step.details
    if step.kind == "opened" and "gtin" in d:
        return f"GTIN {d['gtin']}, {d['quantity']} {d['unit']} by {d['supplier']}"
    if step.kind == "opened":
        return f"split off {d['split_from']}: {d['quantity']} to {d['custodian']}"
    if step.kind == "split":
        return f"child {d['child_lot_id']}: {d['quantity']} (parent keeps {d['remaining']})"
    if step.kind.startswith("transfer_"):
        return f"from {d['from']} to {d['to']}"
    if step.kind == "transformed":
        return f"transformation {d['transformation_id']} by {d['by']}: {transformation_text(d)}"
    if step.kind == "certified":
        return f"GTIN {d['gtin']}, spec v{d['spec_version']}, {d['samples']} samples within bounds"
    return (
        f"spec v{d['spec_version']}: {d['reason']} on {d['metric']} (value {d['value']}, bound {d['bound']})"
    )


def _row(step: ChainStep | ReadingStep) -> StepRow:
    if isinstance(step, ReadingStep):
        return StepRow(
            kind="reading",
            label=KIND_LABELS["reading"],
            time=fmt_ms(step.row.ts_ms),
            actor=step.row.device_id,
            what=_what(step),
            status=step.status,
            tx_hash=None,
            block=None,
            digest="0x" + bytes(step.row.digest).hex(),
        )
    return StepRow(
        kind=step.kind,
        label=KIND_LABELS.get(step.kind, step.kind),
        time=fmt_ms(step.time_ms),
        actor=step.actor,
        what=_what(step),
        status="on chain",
        tx_hash=step.tx_hash,
        block=step.block_number,
        digest=None,
    )


def _certificate_text(service: LedgerService, lot_id: str) -> str:
    cert = QualityCertifierClient.from_deployment(service.chain, service.deployment).certificate(lot_id)
    when = fmt_ms(cert.decided_at * 1000)
    if cert.status is CertificateStatus.CERTIFIED:
        return f"Certified against spec v{cert.spec_version} with {cert.samples} samples ({when})"
    if cert.status is CertificateStatus.NONE:
        return "Not certified: no quality verdict has been recorded for this lot"
    return (
        f"Rejected against spec v{cert.spec_version}: {cert.reason.name.lower()} on "
        f"{cert.metric or 'a metric'} ({when})"
    )


def lot_view(service: LedgerService, lot_id: str, *, cursor: str | None = None, limit: int = 100) -> LotView:
    """A page of ``lot_id``'s timeline and its standing certificate; ``NotFound`` for an unknown lot."""
    page: LotPage = lot_timeline(service, lot_id, cursor=cursor, limit=limit)
    return LotView(
        lot_id=lot_id,
        on_chain=page.on_chain,
        certificate=_certificate_text(service, lot_id) if page.on_chain else "Not on chain: not certified",
        steps=[_row(s) for s in page.steps],
        next_cursor=page.next_cursor,
        recall=page.recall.text() if page.recall is not None else None,
    )


def proof_json(service: LedgerService, digest_text: str) -> bytes:
    """The proof bundle of a reading as JSON; ``NotFound`` (``proof.pending`` while not anchored)."""
    return json.dumps(proof_bundle(service, parse_digest(digest_text)), sort_keys=True).encode("utf-8")


@dataclass(frozen=True, kw_only=True, slots=True)
class Verdict:
    """The outcome of checking one reading's proof against the chain."""

    ok: bool
    headline: str
    detail: str
    code: str | None
    digest: str
    facts: dict[str, str]


def check_reading(service: LedgerService, digest_text: str) -> Verdict:
    """Fetch the reading's proof bundle from the store and verify it against the chain alone.

    A reading not anchored yet, or unknown, is a verdict too (not verified, with the reason).
    """
    try:
        digest = parse_digest(digest_text)
        bundle_obj = proof_bundle(service, digest)
    except ProofPending as e:
        return Verdict(
            ok=False,
            headline="Not verifiable yet",
            detail=e.message,
            code=e.code,
            digest=digest_text,
            facts={"status": e.status},
        )
    except NotFound as e:
        return Verdict(
            ok=False, headline="Unknown reading", detail=e.message, code=e.code, digest=digest_text, facts={}
        )
    try:
        bundle = ProofBundle.from_json_obj(bundle_obj)
        v = verify_bundle(bundle, chain=service.chain, deployment=service.deployment)
    except VerificationError as e:
        return Verdict(
            ok=False,
            headline="Verification FAILED",
            detail=e.message,
            code=e.code,
            digest=digest_text,
            facts={},
        )
    return Verdict(
        ok=True,
        headline="Verified",
        detail=(
            "The reading's digest, its signature by the registered device key, the device's enrolment at the "
            "reading's time, its inclusion in the batch and the batch's anchoring transaction all check out "
            "against the chain."
        ),
        code=None,
        digest="0x" + v.digest.hex(),
        facts={
            "device": v.device_id,
            "seq": str(v.seq),
            "batch": str(v.batch_id),
            "root": "0x" + v.root.hex(),
            "anchored in block": str(v.anchor_block),
            "confirmations": str(v.confirmations),
            "signature scheme": str(v.scheme.value),
        },
    )


# ---------------------------------------------------------------------------- factory


@dataclass(frozen=True, kw_only=True, slots=True)
class DeviceHealth:
    """A device of the factory and how it is doing."""

    device_id: str
    enrolled_at: str
    state: str
    revoked_at: str
    last_reading: str
    readings: int
    gaps: int
    missing: int


def _device_state(record: DeviceRecord, now_ms: int) -> str:
    if not record.enrolled:
        return "not enrolled"
    if record.revoked_at_ms and record.revoked_at_ms <= now_ms:
        return "revoked"
    if record.revoked_at_ms:
        return "active (revocation scheduled)"
    if record.active_from_ms > now_ms:
        return "not active yet"
    return "active"


#: Devices, and lots, per page of the factory page (its lists are paged like every list of the API).
FACTORY_PAGE: Final = 50


@dataclass(frozen=True, kw_only=True, slots=True)
class PageLinks:
    """Where one page of a factory-page list sits: rows ``first`` to ``last`` (1-based) of ``total``,
    and the query strings of the previous and next pages (``None`` at either end)."""

    total: int
    first: int
    last: int
    previous: str | None
    next: str | None


def _offset(query: Mapping[str, str], name: str) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return 0
    if not raw.isascii() or not raw.isdigit() or len(raw) > 9:
        raise BadForm(f"{name} is a row number (a whole number); follow the page links instead")
    return int(raw)


def _page_links(query: Mapping[str, str], name: str, start: int, shown: int, total: int) -> PageLinks:
    def link(offset: int) -> str:
        return urlencode({**query, name: str(offset)})

    return PageLinks(
        total=total,
        first=start + 1 if shown else 0,
        last=start + shown,
        previous=link(max(0, start - FACTORY_PAGE)) if start > 0 else None,
        next=link(start + FACTORY_PAGE) if start + FACTORY_PAGE < total else None,
    )


def factory_devices(
    service: LedgerService, owner: str, query: Mapping[str, str] | None = None
) -> tuple[list[DeviceHealth], PageLinks]:
    """One page (``devices_from``: the row to start at; :data:`FACTORY_PAGE` rows) of the devices
    ``owner`` enrolled (``DeviceEnrolled`` events), by device id, with their health.

    The chain knows a device by the hash of its id; the id is found among the devices the store has
    readings of. A device that never sent a reading shows as its id hash. The registry record and the
    enrollment block are read for the devices of the page only.
    """
    query = query or {}
    start = _offset(query, "devices_from")
    chain, deployment = service.chain, service.deployment
    registry = deployment.contract(chain, "DeviceRegistry")
    logs = chain.request(
        lambda: registry.events.DeviceEnrolled().get_logs(
            from_block=deployment.block, to_block="latest", argument_filters={"owner": owner}
        ),
        context=f"DeviceEnrolled logs of {owner}",
    )
    with Session(service.engine) as s:
        heads = {device_id_hash(h.device_id): h for h in s.exec(select(DeviceHeadRow)).all()}
    enrolled: dict[bytes, Any] = {}
    for log in logs:
        enrolled.setdefault(bytes(log["args"]["deviceId"]), log)

    def shown_id(did: bytes) -> str:
        head = heads.get(did)
        return head.device_id if head is not None else "0x" + did.hex()

    ordered = sorted(enrolled, key=shown_id)
    page = ordered[start : start + FACTORY_PAGE]
    now_ms = int(chain.block("latest")["timestamp"]) * 1000
    out = []
    for did in page:
        record = DeviceRecord.from_call(did, chain.call(registry.functions.device(did)))
        head = heads.get(did)
        block = chain.block(int(enrolled[did]["blockNumber"]))
        out.append(
            DeviceHealth(
                device_id=shown_id(did),
                enrolled_at=fmt_ms(int(block["timestamp"]) * 1000),
                state=_device_state(record, now_ms),
                revoked_at=fmt_ms(record.revoked_at_ms),
                last_reading=fmt_ms(head.last_ts_ms) if head is not None else "never",
                readings=head.readings if head is not None else 0,
                gaps=head.gaps if head is not None else 0,
                missing=head.missing if head is not None else 0,
            )
        )
    return out, _page_links(query, "devices_from", start, len(out), len(ordered))


@dataclass(frozen=True, kw_only=True, slots=True)
class LotSummary:
    """A lot the factory has to do with, as the LotRegistry holds it now."""

    lot_id: str
    gtin: str
    quantity: str
    remaining: str
    relation: str
    custodian: str
    status: str
    certificate: str


def _logs(service: LedgerService, event: Any, filters: dict[str, Any], context: str) -> list[Any]:
    """The logs of ``event`` matching ``filters`` since the deployment's block."""
    deployment = service.deployment
    found = service.chain.request(
        lambda: event().get_logs(from_block=deployment.block, to_block="latest", argument_filters=filters),
        context=context,
    )
    return list(found)


def factory_lots(
    service: LedgerService, party: str, query: Mapping[str, str] | None = None
) -> tuple[list[LotSummary], PageLinks]:
    """One page (``lots_from``: the row to start at; :data:`FACTORY_PAGE` rows) of the lots ``party``
    opened (supplier), received by a split (custodian) or accepted in a transfer, in the order they
    came to it; the LotRegistry and the certifier are read for the lots of the page only."""
    query = query or {}
    start = _offset(query, "lots_from")
    chain, deployment = service.chain, service.deployment
    lots = LotRegistryClient.from_deployment(chain, deployment)
    certifier = QualityCertifierClient.from_deployment(chain, deployment)
    ev = lots.contract.events
    found: dict[bytes, tuple[tuple[int, int], str]] = {}
    for event, filters, key_arg, relation in (
        (ev.LotOpened, {"supplier": party}, "lotId", "supplier"),
        (ev.LotSplit, {"custodian": party}, "childId", "split to you"),
        (ev.TransferAccepted, {"to": party}, "lotId", "received"),
    ):
        for log in _logs(service, event, filters, f"{event.event_name} logs of {party}"):
            at = (int(log["blockNumber"]), int(log["logIndex"]))
            key = bytes(log["args"][key_arg])
            if key not in found or at < found[key][0]:
                found[key] = (at, relation)
    ordered = sorted(found, key=lambda k: found[k][0])
    out = []
    for key in ordered[start : start + FACTORY_PAGE]:
        lot = lots.lot(key)
        cert = certifier.certificate(key)
        out.append(
            LotSummary(
                lot_id=lot.lot_id,
                gtin=format_gtin(lot.gtin),
                quantity=f"{lot.quantity} {lot.unit}",
                remaining=f"{lot.remaining} {lot.unit}",
                relation=found[key][1],
                custodian=lots.custodian(key),
                status=lot.status.name.lower(),
                certificate=cert.status.name.lower() if cert.status is not CertificateStatus.NONE else "none",
            )
        )
    return out, _page_links(query, "lots_from", start, len(out), len(ordered))


@dataclass(frozen=True, kw_only=True, slots=True)
class AccessLogView:
    """One page of the factory's access log (newest first) and where the neighbouring pages are."""

    entries: list[dict[str, Any]]
    #: The query string of the older page (``None`` on the oldest), of the newer (``None`` on the newest).
    older: str | None
    newer: str | None
    #: Refused attempts of parties not admitted at all, counted apart (never anchored).
    refused: dict[str, Any]


#: Entries per page of the factory page's access log.
ACCESS_PAGE: Final = 50


def _cursor(query: Mapping[str, str], name: str) -> int | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise BadForm(f"{name} is an entry id (a whole number); follow the page links instead")
    return int(raw)


def factory_access_log(
    service: LedgerService, party: AuthenticatedParty, query: Mapping[str, str]
) -> AccessLogView:
    """The page of ``party``'s access log that ``query`` names (``log_before`` / ``log_after``: the
    cursors of the page links; neither: the newest page), from the finance desk the API uses too."""
    before, after = _cursor(query, "log_before"), _cursor(query, "log_after")
    if before is not None and after is not None:
        raise BadForm("give log_before or log_after, not both; follow the page links instead")
    page = finance_desk.factory_access_log(
        service, party.address, party.address, before_id=before, after_id=after, limit=ACCESS_PAGE
    )
    older, newer = page["older_before_id"], page["newer_after_id"]
    return AccessLogView(
        entries=page["entries"],
        older=f"log_before={older}" if older is not None else None,
        newer=f"log_after={newer}" if newer is not None else None,
        refused=page["refused_unadmitted"],
    )


# ---------------------------------------------------------------------------- bank


def profile_png(service: LedgerService, factory: str) -> bytes:
    """The chart of ``factory``'s latest published profile; ``NotFound`` when none was published."""
    found = list_published(service.engine, kind="profile", subject=factory)
    if not found:
        raise NotFound(f"no published profile of {factory}", code="portal.no_profile")
    return profile_chart(found[0].result)
