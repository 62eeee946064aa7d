"""What a submission gets back from the writer: a :class:`Receipt` or a refusal (code, message).

The refusals made here are the sequence rules' own (:mod:`ledger_service.ingest.committer`): a
reading out of order against the device's clock, and equivocation (another reading already signed
with the same ``seq``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from ledger_service.ingest.checks import Checked

__all__ = ["Outcome", "Receipt", "equivocation_refusal", "group_by_device", "out_of_order_refusal"]


class Receipt:
    """What an accepted (or identically resubmitted) reading gets back. Immutable.

    ``gap`` is (first, last) of the sequence numbers the device had skipped before this reading
    when it was accepted (kept with the reading, so a resubmission gets the same receipt).
    A plain slotted class: one is made per reading on the hot path.
    """

    __slots__ = ("device_id", "digest", "gap", "seq", "status")

    digest: bytes
    device_id: str
    seq: int
    status: str
    gap: tuple[int, int] | None

    def __init__(
        self,
        *,
        digest: bytes,
        device_id: str,
        seq: int,
        status: str = "accepted",
        gap: tuple[int, int] | None = None,
    ) -> None:
        object.__setattr__(self, "digest", digest)
        object.__setattr__(self, "device_id", device_id)
        object.__setattr__(self, "seq", seq)
        object.__setattr__(self, "status", status)
        object.__setattr__(self, "gap", gap)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Receipt is immutable: cannot set {name}")

    def _key(self) -> tuple[object, ...]:
        return (self.digest, self.device_id, self.seq, self.status, self.gap)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Receipt) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def to_json_obj(self) -> dict[str, Any]:
        """The receipt as JSON, as HTTP answers it and MQTT publishes it (one shape, built here)."""
        return {
            "digest": "0x" + self.digest.hex(),
            "device_id": self.device_id,
            "seq": self.seq,
            "status": self.status,
            "gap": list(self.gap) if self.gap else None,
        }

    def __repr__(self) -> str:
        return (
            f"Receipt(digest=0x{self.digest.hex()}, device_id={self.device_id!r}, seq={self.seq}, "
            f"status={self.status!r}, gap={self.gap})"
        )


#: A commit outcome: a receipt or (code, message).
Outcome = Receipt | tuple[str, str]


def out_of_order_refusal(ch: Checked, other_seq: int, other_ts: int, relation: str) -> tuple[str, str]:
    """The refusal of a reading whose ``ts_ms`` disagrees with that of ``other_seq`` (after / before it)."""
    return (
        "reading.out_of_order",
        f"seq {ch.seq} of device {ch.device_id!r} comes {relation} seq {other_seq}, but its ts_ms {ch.ts_ms} "
        f"is {'earlier' if relation == 'after' else 'later'} than that reading's {other_ts}: a device's "
        "sequence numbers must increase with time; check the device's counter and clock",
    )


def equivocation_refusal(device_id: str, seq: int, known: bytes) -> tuple[str, str]:
    """The refusal of a second, different reading of ``seq`` (``known``: the digest stored first)."""
    return (
        "reading.equivocation",
        f"device {device_id!r} already signed a different reading with seq {seq} (0x{known.hex()}); "
        "this conflicting reading was recorded as evidence against the device and refused",
    )


def group_by_device(outcomes: Sequence[Outcome]) -> dict[str, int]:
    """Accepted receipts per device (metrics, logs)."""
    counts: dict[str, int] = defaultdict(int)
    for o in outcomes:
        if isinstance(o, Receipt):
            counts[o.device_id] += 1
    return dict(counts)
