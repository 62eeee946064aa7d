"""What the demo story must show, checked on its result: shared by the embedded run
(tests/cli/test_demo.py) and the story on anvil (tests/cli/test_demo_anvil.py), two modules so that
xdist runs them on two workers at once."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from chain_scan import (
    PD_TABLE_PPM,
    all_storage,
    brute_force,
    chain_bytes,
    figure_patterns,
    find_leaks,
    number_patterns,
    public_salts,
)

from supet.demo import DemoResult


def check_story(r: DemoResult, out: Path) -> None:
    assert r.readings > 5_000 and r.rejected == 0 and r.batches >= 1
    # One lot fails its spec, and the demo names the reading that broke which bound.
    assert list(r.certificates.values()).count("REJECTED") >= 1
    assert r.failed_lot is not None and r.failed_reason is not None
    assert re.search(
        r"value [0-9.]+ (below|above) its (minimum|maximum) [0-9.]+ \(reading 0x[0-9a-f]{16}", r.failed_reason
    )
    assert "-qc, seq " in r.failed_reason
    # Profiles, yield models and credit records for the three factories.
    assert set(r.profiles) == {"sun-a", "sun-b", "rub-c"} and set(r.records) == set(r.profiles)
    for p in r.profiles.values():
        assert p["readings"] > 0 and p["commitment"].startswith("0x")
    assert all(y["auc"] > 0.5 and len(y["top"]) == 5 for y in r.yields.values())
    assert r.recomputed  # a profile re-derived from the chain and the store
    # The deteriorating factory is rated below the healthy one of its kind.
    assert int(r.records["sun-b"]["grade"][1:]) > int(r.records["sun-a"]["grade"][1:])
    # Consent: bank A is answered, bank B refused; both attempts are in sun-a's access log.
    assert r.bank_answer == 200 and r.refused_answer == (403, "finance.no_consent")
    assert len(r.access_log) >= 2
    # Issue 14: the chain holds sun-a's record as a commitment; bank A opens it from its node and from
    # the ledger's answer, both verified; a tampered grade is named; bank B finds no envelope.
    s = r.sealed
    assert s["commitment"].startswith("0x") and s["opened"] and len(s["delivered_to"]) == 1
    assert s["opened"]["grade"] == r.records["sun-a"]["grade"] and s["served_verified"]
    assert s["tampered_fields"] == ["grade"] and s["bank_b_envelopes"] == 0
    # Bank B, admitted but not consented, is refused by the ledger and finds commitments on its node.
    b = r.bank_b
    assert b["credit"] == {"status": 403, "code": "finance.no_consent"}
    assert b["profile"] == {"status": 403, "code": "finance.no_consent"}
    assert b["reading"] == {"status": 403, "code": "access.not_owner"}
    assert [rec["commitment"] for rec in b["records"]][-1] == s["commitment"]
    assert all(
        set(rec) == {"index", "commitment", "valid_until", "model_version", "analytics_commitment"}
        for rec in b["records"]
    )
    env = b["envelopes"]
    assert env["seen"] >= 1 and env["addressed_to_it"] == 0 and env["opened"] == 0 and env["refused"]
    # An anonymous client gets no raw reading, no proof and no undisclosed lot; the owner gets the proof.
    a = r.anonymous
    assert a["reading"] == a["proof"] == {"status": 401, "code": "access.anonymous"}
    assert a["owner"]["status"] == 200
    assert a["lot"] == {"status": 401, "code": "access.anonymous"}
    assert a["disclosed"] == [r.audit["lot"]] and a["private_lot"] not in a["disclosed"]
    # The receivable is financed at a discount and repaid to its holders.
    rc = r.receivable
    assert rc["paid"] and 0 < rc["price"] < rc["kept_part"]
    # backed by a certified lot (issue 15.3), financed within sun-a's line, freed by the repayment
    assert 0 < rc["face"] <= 200_000 and rc["invoiced"] > 0 and rc["lot"].startswith("LOT-sun-a-")
    assert rc["outstanding"] == rc["kept_part"] and rc["headroom"] >= 0 and rc["line_freed"]
    assert r.audit["ok"] and r.audit["readings"] > 0
    _check_across_tiers(r)
    _check_proof(r)
    # The report, with its charts.
    assert r.report is not None and r.report.exists()
    html = r.report.read_text(encoding="utf-8")
    pngs = sorted(p.name for p in out.glob("*.png"))
    assert len(pngs) == 6 and all(name in html for name in pngs)
    assert all((out / n).read_bytes().startswith(b"\x89PNG") for n in pngs)


def _check_proof(r: DemoResult) -> None:
    """Issue 16: rub-c's record cites its rejected lots and the buyer's late payments, each in its own
    window; sun-b's first line reports window breaches in its new readings."""
    judged = {lot: v for lot, v in r.certificates.items() if lot.startswith("LOT-rub-c-l")}
    rejected = sorted(lot for lot, v in judged.items() if v == "REJECTED")
    assert len(judged) >= 5 and rejected and len(rejected) < len(judged)
    reasons = " | ".join(r.records["rub-c"]["reasons"])
    lots_reason = re.search(
        rf"{len(rejected)} of {len(judged)} lots rejected by the quality certifier in the \d+ days since its "
        r"first verdict \((LOT-rub-c-l\d-\d{8})",
        reasons,
    )
    assert lots_reason is not None, reasons
    assert lots_reason.group(1) in rejected
    paid = r.proof["receivables"]
    assert len(paid) == 3 and sum(1 for p in paid if p["paid"] is None) == 1
    assert all(p["days_late"] >= 21 and p["lot"] in judged and judged[p["lot"]] == "certified" for p in paid)
    late = re.search(
        r"Buyer Meridian Assembly paid 3 confirmed receivables (\d+) days late on average, 1 still unpaid "
        r"\(counted as days overdue so far\) in the \d+ days since its first receivable fell due",
        reasons,
    )
    assert late is not None and int(late.group(1)) >= 21, reasons
    b = r.breaches
    assert b["line"] == "sun-b-l1" and b["version"] == 1 and b["excursions"] > 0
    assert b["outside"] >= b["excursions"] and b["checked"] > b["outside"]
    assert sum(p["checked"] for p in b["parameters"]) == b["checked"]


def _check_across_tiers(r: DemoResult) -> None:
    """Issue 15: the tier-2 supplier's wafers consumed by sun-a in a transformation into two certified lots
    of cells delivered to the buyer; the wafers recalled, every lot made from them flagged and traced with
    its holder; a receivable backed by the cells refused financing, another refused at confirmation."""
    t = r.recall
    assert t["wafers"].startswith("WAFERS-T2-") and t["consumed"] == 2_903 and t["left"] == 4_817 - 2_903
    assert t["transformation"] >= 1 and all(r.certificates[c] == "certified" for c in t["cells"])
    # the trace downstream of the wafers: both lots of cells, held by the buyer, under the notice
    assert sorted((x["lot"], x["holder"], x["notice"]) for x in t["trace"]) == [
        *((c, "the buyer", t["notice"]) for c in sorted(t["cells"])),
        (t["kept"], "sun-a", t["notice"]),
    ]
    assert t["receivable"] >= 1 and t["part_state"] == "OFFERED"
    assert t["finance_refused"]["error"] == "ReceivablesBackingLotRecalled"
    assert t["finance_refused"]["args"] == {"receivableId": t["receivable"], "lotId": t["cell_keys"][0]}
    assert t["confirm_refused"] == {"error": "ReceivablesLotRecalled", "args": {"lotId": t["cell_keys"][1]}}
    # the financed receivable of the story is still another one, backed by a lot no recall touched
    assert r.receivable["id"] != t["receivable"] and r.receivable["lot"] not in t["cells"]


def _numbers(obj: Any, prefix: str = "") -> Iterator[tuple[str, float | int]]:
    """Every number in a JSON value (booleans aside), with its path."""
    if isinstance(obj, bool):
        return
    if isinstance(obj, int | float):
        if math.isfinite(obj):
            yield prefix, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _numbers(v, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _numbers(v, f"{prefix}[{i}]")


def full_node_scan(r: DemoResult) -> None:
    """A consortium member with full node access, after the whole demo story (the module's one run).

    What it reads: every block from genesis to the head, every transaction's input, every log of every
    receipt (:func:`chain_scan.chain_bytes`), and every non-zero storage slot of **every account** in
    the state at the head (:func:`chain_scan.all_storage`: on the embedded chain the account trie walked
    leaf by leaf, each account's storage trie likewise; on anvil ``anvil_dumpState``, every account with
    its storage). The walk is complete for the head's state: no slot is computed from a guessed layout,
    so mappings and dynamic arrays are covered too. It does not read the storage of past states (a slot
    overwritten since; the transactions that wrote it are read).

    What it looks for: each factory's grade, PD and limit (from the oracle's records of the demo, and
    the openings with their salts), encoded as the contracts and the service would (ABI words, uint32
    PD in ppm, the old packed record, limit in minor units, text and JSON text), and every number of
    each factory's profile (plain, x100, x10^4, x10^6 and x10^18, as words, uint64/uint32 and text; as
    float text). It finds none but the lots' quantities in LotRegistry (a finding: see below). Then it
    tries to open each record's commitment: grades 1..10 x the
    master scale's PD band edges (and the true PD) x limits on the model's 1,000-unit grid around the
    true one (and the true one), with the zero salt; and every grade x PD with the true limit, with
    every salt derivable from public values. Nothing opens; with the real salt the true record does.
    """
    from finance.rating import LimitPolicy
    from ledger_service.credit_desk.sealing import MINOR_UNITS

    chain, deployment = r.chain, r.deployment
    assert chain is not None and deployment is not None and set(r.openings) == set(r.records)

    names = {address: name for name, address in deployment.contracts.items()}
    storage = all_storage(chain, names)
    seen = [
        (f"{where} ({names.get(where.rsplit(' ', 1)[-1], 'no contract')})", data)
        for where, data in chain_bytes(chain, 0)
    ]
    seen += [(f"storage of {who}", word) for who, words in storage.items() for word in words]
    # the walk reaches the deployed contracts' storage, and the scan sees what is on chain
    assert {"CreditRegistry", "DeviceRegistry", "LotRegistry"} <= set(storage)
    assert any(r.openings["sun-a"].commitment() in data for _, data in seen)
    face = int(r.receivable["face"] * 100)  # a receivable's face value is public by design: a control
    assert find_leaks({"control": number_patterns("face", face)}, seen)

    patterns: dict[str, dict[str, bytes]] = {}
    for fid, o in r.openings.items():
        rec = r.records[fid]
        assert (o.grade, o.pd_ppm, o.limit) == (
            int(rec["grade"].lstrip("S")),
            max(1, round(rec["pd"] * 1_000_000)),
            rec["limit"] * MINOR_UNITS,
        )
        # the stablecoin of the consortium is tCNY: the currency alone says nothing of a record
        found = {k: v for k, v in figure_patterns(o).items() if k != "currency"}
        # the grade's text is in figure_patterns, in its JSON and reason contexts: a bare '"S5"' (4 bytes)
        # turns up by chance in a chain's random words (signatures, hashes) once in a few runs
        found.update(number_patterns("pd", rec["pd"], scales=(10_000, 1_000_000, 10**18)))
        found.update(number_patterns("limit", rec["limit"], scales=(1, MINOR_UNITS, 10**18)))
        for reason in rec["reasons"]:
            found[f"reason {reason[:20]}"] = reason.encode()
        patterns[f"{fid} record"] = found
    for fid, profile in r.profiles.items():
        figures: dict[str, bytes] = {}
        for path, value in _numbers({k: v for k, v in profile.items() if k != "commitment"}):
            figures.update(number_patterns(path, value, scales=(1, 100, 10_000, 1_000_000, 10**18)))
        assert len(figures) > 20
        patterns[f"{fid} profile"] = figures
    leaks = find_leaks(patterns, seen)
    # A finding, not yet decided (issue 14, Deliver 2: "lot quantities"): LotRegistry keeps each lot's
    # quantity in clear (openLot's input, its log, its storage), and the demo's lots are a day's output,
    # so a factory's daily output and delivered units show there. Until docs/access-policy.md decides
    # whether lot quantities stay public or become commitments, they are the only figures tolerated
    # here, and only in LotRegistry; any other figure anywhere fails.
    lot_quantities = [
        leak
        for leak in leaks
        if leak[0].endswith(" profile")
        and leak[1].split(" ")[0].startswith(("daily_output[", "delivered_units"))
        and "LotRegistry" in leak[2]
    ]
    unexpected = [leak for leak in leaks if leak not in lot_quantities]
    assert unexpected == [], unexpected

    rounding = LimitPolicy().rounding * MINOR_UNITS
    for fid, o in r.openings.items():
        grid = {o.limit, 0, *(max(0, o.limit + k * rounding) for k in range(-40, 41))}
        assert brute_force(o, [bytes(32)], sorted(grid), PD_TABLE_PPM) == [], fid
        assert brute_force(o, public_salts(o), [o.limit], PD_TABLE_PPM) == [], fid
        assert brute_force(o, [o.salt], [o.limit], PD_TABLE_PPM) == [(o.grade, o.pd_ppm, o.limit)], fid
