"""What the demo's chapters share: its options and results, the scene they play on, and helpers."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount

from contracts.chain import Chain
from contracts.credit_record import CreditOpening
from contracts.deployment import Deployment
from contracts.onboarding import Onboarding
from ledger_service.service import LedgerService
from supet.demo.report import Report

__all__ = [
    "BUYER_NAME",
    "FIXED",
    "RUBBER_GTIN",
    "SOLAR_GTIN",
    "Answer",
    "Api",
    "DemoOptions",
    "DemoResult",
    "Progress",
    "Scene",
    "Step",
    "day_s",
    "pct",
]

Step = Callable[[str], None]
Progress = Callable[[str, int, int], None]

SOLAR_GTIN = "09506000134352"
RUBBER_GTIN = "09506000134369"
FIXED = 1_000_000  # Reading v1 fixed point
#: The buyer's name, as the credit desk gives it in a factory's reasons (the chain knows its address only).
BUYER_NAME = "Meridian Assembly"


@dataclass(frozen=True)
class DemoOptions:
    """Knobs of the story (defaults: a week at 10-minute intervals, about two minutes on 2 cores)."""

    out_dir: Path
    rpc: str = "embedded"
    days: int = 7
    interval_s: int = 600
    seed: int = 7


@dataclass
class DemoResult:
    """What the story produced, for the summary, the report and the tests."""

    report: Path | None = None
    readings: int = 0
    rejected: int = 0
    batches: int = 0
    certificates: dict[str, str] = field(default_factory=dict)
    failed_lot: str | None = None
    failures: dict[str, str] = field(default_factory=dict)
    failed_reason: str | None = None
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    yields: dict[str, dict[str, Any]] = field(default_factory=dict)
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    bank_answer: int = 0
    refused_answer: tuple[int, str] = (0, "")
    sealed: dict[str, Any] = field(default_factory=dict)
    #: Issue 14: what bank B (no consent) tried, at the ledger and on its own node, and what it got.
    bank_b: dict[str, Any] = field(default_factory=dict)
    #: Issue 14: what an anonymous client tried (a raw reading, its proof, an undisclosed lot).
    anonymous: dict[str, Any] = field(default_factory=dict)
    access_log: list[dict[str, Any]] = field(default_factory=list)
    receivable: dict[str, Any] = field(default_factory=dict)
    #: Issue 15: a tier-2 lot consumed by sun-a, recalled, traced downstream; the refused financing.
    recall: dict[str, Any] = field(default_factory=dict)
    audit: dict[str, Any] = field(default_factory=dict)
    #: Issue 16: the buyer's receivables to the proof factory (rub-c), confirmed, due and paid late.
    proof: dict[str, Any] = field(default_factory=dict)
    #: Issue 16: a line's window set and the breaches the live check counted in its new readings.
    breaches: dict[str, Any] = field(default_factory=dict)
    recomputed: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    chain_time_simulated: bool = False
    #: The chain the story ran on and its deployment, kept for whoever checks it afterwards (the tests'
    #: full-node scan); the records the oracle published, with their salts, by factory (the ledger's
    #: own copies, ``credit_openings``).
    chain: Chain | None = None
    deployment: Deployment | None = None
    openings: dict[str, CreditOpening] = field(default_factory=dict)


class Api:
    """A party's HTTP session with the ledger (EIP-4361 sign-in)."""

    def __init__(self, base: str) -> None:
        self.http = httpx.Client(base_url=base, timeout=120)
        self.tokens: dict[str, str] = {}

    def headers(self, who: LocalAccount) -> dict[str, str]:
        if who.address not in self.tokens:
            msg = self.http.post("/v1/auth/challenge", json={"address": who.address}).json()["message"]
            sig = who.sign_message(encode_defunct(text=msg)).signature.to_0x_hex()
            r = self.http.post("/v1/auth/token", json={"message": msg, "signature": sig})
            r.raise_for_status()
            self.tokens[who.address] = r.json()["access_token"]
        return {"Authorization": f"Bearer {self.tokens[who.address]}"}


@dataclass(frozen=True)
class Answer:
    code: str | None


@dataclass(frozen=True)
class Scene:
    """Where the story plays once the ledger runs: the chain, the service, the parties, the report."""

    opts: DemoOptions
    res: DemoResult
    report: Report
    chain: Chain
    deployment: Deployment
    service: LedgerService
    ob: Onboarding
    acct: dict[str, LocalAccount]
    api: Api
    start: dt.date
    end: dt.date
    step: Step
    progress: Progress


def day_s(day: dt.date) -> int:
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp())


def pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"
