"""A message from the broker and what it gets: decoded into a submission or refused, then answered
from the pipeline's result (a receipt, an error reply, or nothing: delivered again)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from ledger_service.ingest.pipeline import ItemResult
from ledger_service.jsonio import MAX_DEPTH, BodyDecodeError, loads_strict
from ledger_service.mqtt.settings import STORE_UNAVAILABLE, MqttError

__all__ = [
    "NOT_DECODED",
    "Answer",
    "Message",
    "MqttStats",
    "Submitter",
    "decode",
    "decode_payloads",
    "error_reply",
    "submit_batch",
    "submit_each",
]

log = logging.getLogger("ledger_service.mqtt")


class Submitter(Protocol):
    """What the bridge needs of the ingest pipeline."""

    def submit(self, objs: Sequence[Any], *, source: str) -> list[ItemResult]: ...


@dataclass(frozen=True, slots=True)
class MqttStats:
    """Counters since the bridge was built (metrics)."""

    #: Messages taken from the broker (redeliveries included).
    received: int
    #: Readings answered with a receipt (identical resubmissions and redeliveries included).
    accepted: int
    #: Readings answered with an error, a message refused as a whole counting as one (acknowledged:
    #: not delivered again).
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
    """What one message gets: a reply for the whole message (a refusal), or one reply per reading it
    carries (a receipt or an error); nothing while a reading is deferred (delivered again).

    A message carries one submission ``{"reading", "scheme", "signature"}`` (answered with its receipt
    or error, as one JSON object) or a batch ``{"readings": [...]}`` of one device's submissions
    (answered like the HTTP batch: ``{"accepted", "rejected", "results": [{"index", "receipt"} or
    {"index", "error"}]}``).
    """

    batch: bool = False
    #: A refusal of the whole message (bad topic, too large, not JSON, bad shape): its only reply.
    refusal: dict[str, Any] | None = None
    #: One per reading: its receipt (accepted) or error reply; None until answered.
    replies: list[dict[str, Any] | None] = field(default_factory=list)
    accepted: list[bool] = field(default_factory=list)

    @classmethod
    def refused(cls, reply: dict[str, Any]) -> Answer:
        return cls(refusal=reply)

    @classmethod
    def for_items(cls, n: int, *, batch: bool) -> Answer:
        return cls(batch=batch, replies=[None] * n, accepted=[False] * n)

    def take(self, item: int, r: ItemResult, obj: Any) -> bool:
        """Set reading ``item``'s reply from the pipeline's result for ``obj``; False when the store
        was unavailable (then nothing is answered: the message is delivered again)."""
        if r.receipt is not None:
            self.replies[item] = r.receipt.to_json_obj()
            self.accepted[item] = True
        elif r.code == STORE_UNAVAILABLE:
            return False
        else:
            self.replies[item] = error_reply(r.code or "reading.rejected", r.message or "", obj)
        return True

    @property
    def n_accepted(self) -> int:
        return sum(self.accepted)

    @property
    def n_rejected(self) -> int:
        """Readings refused (a refusal of the whole message counts as one)."""
        return 1 if self.refusal is not None else len(self.replies) - sum(self.accepted)

    def payload(self) -> dict[str, Any]:
        """The JSON reply published to the device's receipts topic."""
        if self.refusal is not None:
            return self.refusal
        if not self.batch:
            (reply,) = self.replies
            assert reply is not None, "a reading was left unanswered"
            return reply
        results: list[dict[str, Any]] = []
        for i, (reply, ok) in enumerate(zip(self.replies, self.accepted, strict=True)):
            assert reply is not None, "a reading was left unanswered"
            results.append({"index": i, "receipt": reply} if ok else {"index": i, **reply})
        accepted = self.n_accepted
        return {"accepted": accepted, "rejected": len(results) - accepted, "results": results}


#: ``decode``'s ``value`` when the payload was not decoded beforehand.
NOT_DECODED: Any = object()


def decode(
    m: Message, max_payload_bytes: int, max_readings: int, value: Any = NOT_DECODED
) -> tuple[Answer, list[Any]]:
    """The message's answer so far and its submission objects (None where a reading is refused).

    ``value`` is the payload already decoded by :func:`decode_payloads` (or the error it raised);
    by default the payload is decoded here."""
    refusal = _refusal(m, max_payload_bytes)
    if refusal is not None:
        return Answer.refused(refusal), []
    try:
        if value is NOT_DECODED:
            value = loads_strict(m.payload)
        elif isinstance(value, BodyDecodeError):
            raise value
    except BodyDecodeError as e:  # too deep, duplicate keys, NaN, a 5,000-digit number, ...
        return Answer.refused(error_reply(e.code, e.message)), []
    if isinstance(value, dict) and set(value) == {"readings"}:
        items = value["readings"]
        if not isinstance(items, list) or not items:
            return Answer.refused(
                error_reply("request.bad_shape", "`readings` must be a non-empty list of submissions")
            ), []
        if len(items) > max_readings:
            return Answer.refused(
                error_reply(
                    "request.too_many",
                    f"a message holds at most {max_readings} readings, got {len(items)}: split it",
                )
            ), []
        answer = Answer.for_items(len(items), batch=True)
    elif isinstance(value, dict):
        items = [value]
        answer = Answer.for_items(1, batch=False)
    else:
        return Answer.refused(
            error_reply(
                "request.bad_shape",
                'publish one submission object {"reading": ..., "scheme": ..., "signature": ...} '
                'or {"readings": [...]} of this device\'s submissions',
            )
        ), []
    objs: list[Any] = []
    for i, obj in enumerate(items):
        mismatch = _topic_mismatch(m, obj)
        if mismatch is not None:
            answer.replies[i] = mismatch
            objs.append(None)
        else:
            objs.append(obj)
    return answer, objs


def _refusal(m: Message, max_payload_bytes: int) -> dict[str, Any] | None:
    """Why the message is refused before its payload is decoded, if it is."""
    if m.device is None:
        return error_reply(
            "mqtt.bad_topic", f"publish readings to devices/<device_id>/readings, not {m.topic!r}"
        )
    if len(m.payload) > max_payload_bytes:
        return error_reply(
            "request.too_large",
            f"the payload has {len(m.payload)} bytes; one message may have at most {max_payload_bytes}",
        )
    return None


def _topic_mismatch(m: Message, obj: Any) -> dict[str, Any] | None:
    reading = obj.get("reading") if isinstance(obj, dict) else None
    claimed = reading.get("device_id") if isinstance(reading, dict) else None
    if isinstance(claimed, str) and claimed != m.device:
        return error_reply(
            "mqtt.topic_mismatch",
            f"the reading is from device {claimed!r} but was published to {m.topic!r}: a device "
            f"publishes only its own readings, to devices/{claimed}/readings",
            obj,
        )
    return None


def decode_payloads(messages: Sequence[Message], max_payload_bytes: int) -> list[Any]:
    """Each message's payload decoded strictly (:func:`loads_strict`), or the
    :class:`BodyDecodeError` it raised; :data:`NOT_DECODED` for a message refused before decoding.

    One strict decode for the whole batch: the payloads that each parse as one complete JSON value
    are joined into one array, so :func:`loads_strict`'s scans run once (per message they cost more
    than the parse). Joined, each element is exactly its payload's value. When the array is refused
    (a repeated key, too deep, ...) each payload is decoded alone, which names its own error."""
    out: list[Any] = [NOT_DECODED] * len(messages)
    whole: list[int] = []
    for i, m in enumerate(messages):
        if _refusal(m, max_payload_bytes) is not None:
            continue
        try:
            orjson.loads(m.payload)
        except orjson.JSONDecodeError:
            out[i] = _decode_alone(m.payload)
            continue
        whole.append(i)
    if len(whole) == 1:
        out[whole[0]] = _decode_alone(messages[whole[0]].payload)
    elif whole:
        joined = b"[" + b",".join(messages[i].payload for i in whole) + b"]"
        try:
            values = loads_strict(joined, max_depth=MAX_DEPTH + 1)
        except BodyDecodeError:
            values = [_decode_alone(messages[i].payload) for i in whole]
        if len(values) != len(whole):  # cannot happen (each payload is one value): decode alone
            values = [_decode_alone(messages[i].payload) for i in whole]
        for i, v in zip(whole, values, strict=True):
            out[i] = v
    return out


def _decode_alone(payload: bytes) -> Any:
    try:
        return loads_strict(payload)
    except BodyDecodeError as e:
        return e


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
    out, more = submit_each(pipeline, objs)
    return out, calls + more


def submit_each(pipeline: Submitter, objs: list[Any]) -> tuple[list[ItemResult | Exception], int]:
    """Each submission's result alone (or the exception the pipeline raised on it); also the number
    of pipeline calls made."""
    out: list[ItemResult | Exception] = []
    for obj in objs:
        try:
            (result,) = pipeline.submit([obj], source="mqtt")
            out.append(result)
        except Exception as e:
            out.append(e)
    return out, len(objs)
