"""The bridge's micro-batches in stages, so that the next one is checked while the previous one commits.

The bridge's worker thread takes a micro-batch, decodes it and has the pipeline check it
(:meth:`Staged.prepare`: routing, digests, signatures, time rules; nothing stored), then waits until
the previous micro-batch's commit is decided and only then hands this one to the writer
(:meth:`Staged.enqueue`). The bridge's answer thread waits for each commit in turn, publishes the
receipts and acknowledges the messages, in the order of delivery. So at any time one micro-batch is
checked, one commits and one is answered, and:

- the writer gets the micro-batches in the order of delivery, each only once the one before it is
  known stored: a device's readings get the outcomes (sequence rules, gaps) they would get one
  micro-batch after the other;
- nothing is acknowledged before its commit, acknowledgements keep the order of delivery;
- when a commit fails (the store unavailable, the pipeline raising), the next micro-batch is not
  handed to the writer until that one's slow path is over (each submission alone, retries,
  dead letters, or a reconnection for redelivery); after a reconnection it is dropped, as every
  local copy is, and the broker delivers it again.

A pipeline without these stages (only ``submit``) is called as before, one micro-batch at a time.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Protocol

from ledger_service.ingest.pipeline import ItemResult
from ledger_service.mqtt.answers import (
    NOT_DECODED,
    Answer,
    Message,
    Submitter,
    decode,
    decode_payloads,
    error_reply,
    submit_batch,
    submit_each,
)
from ledger_service.mqtt.settings import DEAD_PIPELINE_ERROR, DEAD_UNDECODABLE, MqttError

__all__ = ["Job", "Staged", "dead_letter_failed", "decode_batch", "job_results", "staged"]

log = logging.getLogger("ledger_service.mqtt")

#: Longest wait for a micro-batch's commit (the writer's own timeout for a submit).
COMMIT_TIMEOUT = 60.0


class Staged(Protocol):
    """The pipeline's stages (:class:`~ledger_service.ingest.pipeline.IngestPipeline`)."""

    def prepare(self, objs: Sequence[Any], *, source: str) -> Any: ...

    def enqueue(self, prepared: Any) -> Future[Any]: ...

    def finish(self, prepared: Any, outcomes: Sequence[Any]) -> list[ItemResult]: ...


def staged(pipeline: object) -> Staged | None:
    """``pipeline`` as :class:`Staged` when it has the three stages, else None (``submit`` only)."""
    if all(callable(getattr(pipeline, name, None)) for name in ("prepare", "enqueue", "finish")):
        return pipeline  # type: ignore[return-value]
    return None


@dataclass(slots=True)
class Job:
    """One micro-batch on its way: its live messages, their answers so far, the submissions they carry
    (and which message and item each is), and what the pipeline's stages made of them."""

    live: list[Message]
    answers: list[Answer]
    objs: list[Any]
    #: per submission: (its message's slot in ``live``, its index in that message)
    owners: list[tuple[int, int]]
    #: :meth:`Staged.prepare`'s result (None: not prepared, or without stages)
    prepared: Any = None
    #: :meth:`Staged.enqueue`'s future: resolved with the writer's outcomes after the commit
    future: Future[Any] | None = None
    #: what a stage raised (the submissions then go to the pipeline one at a time)
    error: Exception | None = None
    #: set once its commit is decided: stored, or its slow path over (the next one may go on then)
    decided: threading.Event = field(default_factory=threading.Event)


#: ``dead_letter(message, reason, detail, attempts, submission or None)``: the error reply for a
#: message dead-lettered now (:meth:`MqttBridge._dead_letter`).
DeadLetter = Callable[..., dict[str, Any]]


def decode_batch(
    live: list[Message],
    max_payload_bytes: int,
    max_readings: int,
    dead_letter: DeadLetter,
) -> Job:
    """Decode every message (one strict pass, :func:`decode_payloads`; each alone if that raises) into
    a :class:`Job`. A message whose decoding raises (a bug: the same bytes fail again) is dead-lettered
    at once and answered with the reply ``dead_letter`` gives."""
    try:
        values = decode_payloads(live, max_payload_bytes)
    except Exception:
        log.exception("MQTT ingest: decoding %d payloads at once raised; decoding each alone", len(live))
        values = [NOT_DECODED] * len(live)
    answers: list[Answer] = []
    objs: list[Any] = []
    owners: list[tuple[int, int]] = []
    for slot, (m, value) in enumerate(zip(live, values, strict=True)):
        try:
            answer, items = decode(m, max_payload_bytes, max_readings, value)
        except Exception as e:  # a decoder bug: the same bytes fail again, so do not wait for them
            log.exception("MQTT ingest: decoding a message on %r raised", m.topic)
            answers.append(Answer.refused(dead_letter(m, DEAD_UNDECODABLE, f"{type(e).__name__}: {e}", 1)))
            continue
        answers.append(answer)
        for item, obj in enumerate(items):
            if obj is not None:
                objs.append(obj)
                owners.append((slot, item))
    return Job(live=live, answers=answers, objs=objs, owners=owners)


def job_results(
    pipeline: Submitter, stages: Staged | None, job: Job, timeout: float = COMMIT_TIMEOUT
) -> tuple[list[ItemResult | Exception], int]:
    """The pipeline's results for the job's submissions: its commit's when it was handed to the writer
    (waited for at most ``timeout`` seconds), else, or when a stage failed, :func:`submit_batch`'s or
    each submission's alone (:func:`submit_each`). Also the number of pipeline calls made."""
    if stages is None or not job.objs:
        return submit_batch(pipeline, job.objs) if job.objs else ([], 0)
    try:
        if job.error is not None:
            raise job.error
        if job.future is None:
            raise MqttError("the micro-batch was not handed to the writer")
        got = stages.finish(job.prepared, job.future.result(timeout=timeout))
        if len(got) != len(job.objs):
            raise MqttError(f"the pipeline answered {len(got)} results for {len(job.objs)} submissions")
        return list(got), 0
    except Exception as e:  # a broken check or writer, a timeout: nothing is known as stored
        log.error(
            "MQTT ingest: the pipeline failed on %d submission(s) (%s: %s); trying each alone",
            len(job.objs),
            type(e).__name__,
            e,
        )
    return submit_each(pipeline, job.objs)


def dead_letter_failed(
    job: Job, failed: dict[int, Exception], attempts: int, dead_letter: DeadLetter
) -> None:
    """Dead-letter each message holding a submission the pipeline kept failing on (once per message);
    such a submission is answered ``mqtt.dead_letter``."""
    by_slot: dict[int, list[int]] = {}
    for k in failed:
        by_slot.setdefault(job.owners[k][0], []).append(k)
    for slot, ks in by_slot.items():
        first = failed[ks[0]]
        answer = job.answers[slot]
        single = not answer.batch
        reply = dead_letter(
            job.live[slot],
            DEAD_PIPELINE_ERROR,
            f"{type(first).__name__}: {first}",
            attempts,
            job.objs[ks[0]] if single else None,
        )
        code, message = reply["error"]["code"], reply["error"]["message"]
        for k in ks:
            answer.replies[job.owners[k][1]] = reply if single else error_reply(code, message, job.objs[k])
