"""A message from the broker and what it gets: decoded into a submission or refused, then answered
from the pipeline's result (a receipt, an error reply, or nothing: delivered again)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ledger_service.ingest.pipeline import ItemResult
from ledger_service.jsonio import BodyDecodeError, loads_strict
from ledger_service.mqtt.settings import STORE_UNAVAILABLE, MqttError

__all__ = ["Answer", "Message", "MqttStats", "Submitter", "decode", "error_reply", "submit_batch"]

log = logging.getLogger("ledger_service.mqtt")


class Submitter(Protocol):
    """What the bridge needs of the ingest pipeline."""

    def submit(self, objs: Sequence[Any], *, source: str) -> list[ItemResult]: ...


@dataclass(frozen=True, slots=True)
class MqttStats:
    """Counters since the bridge was built (metrics)."""

    #: Messages taken from the broker (redeliveries included).
    received: int
    #: Messages answered with a receipt (identical resubmissions and redeliveries included).
    accepted: int
    #: Messages answered with an error (acknowledged: not delivered again).
    rejected: int
    #: Messages the broker delivered again (DUP flag) after a lost connection or a restart.
    redelivered: int
    #: Messages left unacknowledged because the store was unavailable (the broker delivers them again).
    deferred: int
    #: Local copies dropped because the broker delivers them again (resumed session).
    dropped: int
    #: Calls to the pipeline.
    batches: int
    connected: bool
    #: Messages dead-lettered (the pipeline failed on them ``max_attempts`` times, or decoding raised).
    dead_lettered: int = 0


@dataclass(frozen=True, slots=True)
class Message:
    device: str | None
    topic: str
    payload: bytes
    mid: int
    qos: int
    dup: bool
    generation: int

    @property
    def key(self) -> bytes:
        """The SHA-256 of topic and payload: names a message in logs (the broker's mid changes)."""
        return hashlib.sha256(self.topic.encode("utf-8", "replace") + b"\0" + self.payload).digest()


@dataclass(slots=True)
class Answer:
    """What one message gets: a JSON reply (receipt or error), or nothing (deferred)."""

    reply: dict[str, Any] | None = None
    accepted: bool = False

    def take(self, r: ItemResult, obj: Any) -> bool:
        """Set the reply from the pipeline's result for ``obj``; False when the store was unavailable
        (then nothing is answered: the message is delivered again)."""
        if r.receipt is not None:
            self.reply = r.receipt.to_json_obj()
            self.accepted = True
        elif r.code == STORE_UNAVAILABLE:
            return False
        else:
            self.reply = error_reply(r.code or "reading.rejected", r.message or "", obj)
        return True


def decode(m: Message, max_payload_bytes: int) -> tuple[Any, dict[str, Any] | None]:
    """The submission object, or a refusal reply."""
    if m.device is None:
        return None, error_reply(
            "mqtt.bad_topic", f"publish readings to devices/<device_id>/readings, not {m.topic!r}"
        )
    if len(m.payload) > max_payload_bytes:
        return None, error_reply(
            "request.too_large",
            f"the payload has {len(m.payload)} bytes; one submission may have at most {max_payload_bytes}",
        )
    try:
        obj = loads_strict(m.payload)
    except BodyDecodeError as e:  # too deep, duplicate keys, NaN, a 5,000-digit number, ...
        return None, error_reply(e.code, e.message)
    if not isinstance(obj, dict):
        return None, error_reply(
            "request.bad_shape",
            'publish one submission object {"reading": ..., "scheme": ..., "signature": ...}',
        )
    reading = obj.get("reading")
    claimed = reading.get("device_id") if isinstance(reading, dict) else None
    if isinstance(claimed, str) and claimed != m.device:
        return None, error_reply(
            "mqtt.topic_mismatch",
            f"the reading is from device {claimed!r} but was published to {m.topic!r}: a device "
            f"publishes only its own readings, to devices/{claimed}/readings",
            obj,
        )
    return obj, None


def error_reply(code: str, message: str, obj: Any = None) -> dict[str, Any]:
    """An error reply, with the submission's device_id and seq when it has them."""
    out: dict[str, Any] = {"error": {"code": code, "message": message}}
    reading = obj.get("reading") if isinstance(obj, dict) else None
    if isinstance(reading, dict):
        device_id = reading.get("device_id")
        seq = reading.get("seq")
        if isinstance(device_id, str):
            out["device_id"] = device_id
        if isinstance(seq, int) and not isinstance(seq, bool):
            out["seq"] = seq
    return out


def submit_batch(pipeline: Submitter, objs: list[Any]) -> tuple[list[ItemResult | Exception], int]:
    """The pipeline's results; when it fails on the batch, each submission's alone (or its failure).
    Also the number of pipeline calls made (the bridge's ``batches``)."""
    calls = 1
    try:
        results = pipeline.submit(objs, source="mqtt")
        if len(results) != len(objs):
            raise MqttError(f"the pipeline answered {len(results)} results for {len(objs)} submissions")
        return list(results), calls
    except Exception as e:  # timeout, broken worker pool, a bug: nothing is known as stored
        log.error(
            "MQTT ingest: the pipeline failed on %d submission(s) (%s: %s)%s",
            len(objs),
            type(e).__name__,
            e,
            "; trying each alone" if len(objs) > 1 else "",
        )
        if len(objs) == 1:
            return [e], calls
    out: list[ItemResult | Exception] = []
    for obj in objs:
        calls += 1
        try:
            (result,) = pipeline.submit([obj], source="mqtt")
            out.append(result)
        except Exception as e:
            out.append(e)
    return out, calls
