"""The MQTT bridge: the client, its connection and session, the worker that has micro-batches checked
and hands them to the writer, and the answer thread that publishes receipts and acknowledges after the
commit (see :mod:`ledger_service.mqtt` and, for the stages, :mod:`ledger_service.mqtt.stages`)."""

from __future__ import annotations

import logging
import queue
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from ledger_service.jsonio import dumps_exact
from ledger_service.mqtt.answers import Answer, Message, MqttStats, Submitter
from ledger_service.mqtt.dead_letter import dead_letter
from ledger_service.mqtt.settings import (
    DEFAULT_SHARE_GROUP,
    MqttError,
    parse_mqtt_url,
    readings_filter,
    receipts_topic,
    stale_filters,
    topic_device,
)
from ledger_service.mqtt.stages import Job, dead_letter_failed, decode_batch, job_results, staged

__all__ = ["MqttBridge"]

log = logging.getLogger("ledger_service.mqtt")

#: Receive Maximum the protocol allows.
_MAX_RECEIVE = 65_535
#: DISCONNECT reason code: another connection took over the session (MQTT 5, 0x8E).
_SESSION_TAKEN_OVER = 142
#: This many connections lost within this many seconds: say that the client id may be used twice.
_FLAPPING_LOSSES = 3
_FLAPPING_WINDOW = 60.0


class _QuietDisconnect(logging.Filter):
    """Drop paho's "Client is not connected" error: its network loop logs it once after a deliberate
    disconnect (stop, or a pause for redelivery); lost connections are reported by on_disconnect."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Client is not connected")


_PAHO_LOG = logging.getLogger("ledger_service.mqtt.paho")
_PAHO_LOG.addFilter(_QuietDisconnect())


class MqttBridge:
    """Ingest signed readings from MQTT into the pipeline; publish receipts; ack after the commit."""

    def __init__(
        self,
        *,
        url: str,
        pipeline: Submitter,
        on_accepted: Callable[[], None] | None = None,
        client_id: str = "supet-ledger",
        share_group: str | None = DEFAULT_SHARE_GROUP,
        batch_max: int = 1000,
        batch_max_bytes: int = 4 * 1024 * 1024,
        batch_wait: float = 0.01,
        receive_maximum: int | None = None,
        session_expiry: int = 7 * 24 * 3600,
        keepalive: int = 30,
        max_payload_bytes: int = 64 * 1024,
        max_readings: int = 10_000,
        reconnect_min_delay: int = 1,
        reconnect_max_delay: int = 30,
        store_retry_min: float = 1.0,
        store_retry_max: float = 30.0,
        max_attempts: int = 3,
        on_dead_letter: Callable[[str], None] | None = None,
    ) -> None:
        if batch_max < 1:
            raise MqttError(f"batch_max must be at least 1, got {batch_max}")
        if batch_wait < 0:
            raise MqttError(f"batch_wait must not be negative, got {batch_wait}")
        if not client_id:
            raise MqttError("client_id must not be empty: a persistent session needs a fixed client id")
        if max_attempts < 1:
            raise MqttError(f"max_attempts must be at least 1, got {max_attempts}")
        if max_readings < 1:
            raise MqttError(f"max_readings must be at least 1, got {max_readings}")
        #: What the bridge subscribes to: ``$share/<group>/devices/+/readings`` (MQTT 5 shared
        #: subscription: the group's members take turns), or ``devices/+/readings`` without a group.
        self.topic_filter = readings_filter(share_group)
        self.share_group = share_group or None
        self.address = parse_mqtt_url(url)
        self.url = str(self.address)
        self.pipeline = pipeline
        self.on_accepted = on_accepted
        self.client_id = client_id
        self.batch_max = batch_max
        #: A micro-batch stops growing at this many payload bytes (about 13,000 readings).
        self.batch_max_bytes = batch_max_bytes
        self.batch_wait = batch_wait
        #: Unacknowledged messages the broker may have in flight to us: two batches' worth by default,
        #: so the broker keeps sending while a batch is committed.
        self.receive_maximum = min(_MAX_RECEIVE, receive_maximum or max(2 * batch_max, 20))
        self.session_expiry = session_expiry
        self.keepalive = keepalive
        self.max_payload_bytes = max_payload_bytes
        #: Most readings one ``{"readings": [...]}`` message may carry.
        self.max_readings = max_readings
        self.store_retry_min = store_retry_min
        self.store_retry_max = store_retry_max
        #: A message on which the pipeline fails this many times is dead-lettered.
        self.max_attempts = max_attempts
        #: Called with the reason of each dead-lettered message (metrics).
        self.on_dead_letter = on_dead_letter
        #: The last connection or subscription problem, for readiness (None when fine).
        self.last_error: str | None = None

        self._queue: queue.Queue[Message] = queue.Queue()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        #: The pipeline's stages (:mod:`ledger_service.mqtt.stages`); None: ``submit`` only.
        self._stages = staged(pipeline)
        #: Micro-batches handed from the worker to the answer thread, in order (None: the end).
        self._jobs: queue.Queue[Job | None] = queue.Queue()
        self._answerer: threading.Thread | None = None
        #: The last micro-batch handed on: the worker hands the next one to the writer once its commit
        #: is decided (``Job.decided``: stored, or its slow path over).
        self._last: Job | None = None
        self._lifecycle = threading.Lock()  # start/stop/reconnect of the client
        # ack/generation: an ack is sent only on the connection the message came on
        self._ack_lock = threading.Lock()
        self._generation = 0
        self._floor = 0  # messages of older generations are delivered again by the broker: drop them
        self._connected = False
        self._subscribed = False
        self._running = False
        self._pausing = False
        self._store_delay = store_retry_min
        self._lost: list[float] = []  # when recent connections were lost (a client id used twice?)

        self._received = 0
        self._accepted = 0
        self._rejected = 0
        self._redelivered = 0
        self._deferred = 0
        self._dropped = 0
        self._batches = 0
        self._dead_lettered = 0

        self._client = self._make_client(reconnect_min_delay, reconnect_max_delay)

    # ------------------------------------------------------------------ life cycle

    def _make_client(self, min_delay: int, max_delay: int) -> paho.Client:
        c = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        c.manual_ack_set(True)
        if self.address.username is not None:
            c.username_pw_set(self.address.username, self.address.password)
        if self.address.tls:
            c.tls_set_context(ssl.create_default_context())
        c.reconnect_delay_set(min_delay=min_delay, max_delay=max_delay)
        # Receipts in flight to the broker: no limit in paho (0). With a limit, each PUBACK from the
        # broker makes paho scan every message in flight (quadratic: at 1,000 in flight it took more
        # CPU than the rest of MQTT ingest); what is in flight is bounded by what the broker sends us
        # (receive_maximum), one receipt per message.
        c.max_inflight_messages_set(0)
        c.enable_logger(_PAHO_LOG)
        c.on_connect = self._on_connect
        c.on_connect_fail = self._on_connect_fail
        c.on_disconnect = self._on_disconnect
        c.on_subscribe = self._on_subscribe
        c.on_message = self._on_message
        return c

    def _connect_properties(self) -> Properties:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.session_expiry
        props.ReceiveMaximum = self.receive_maximum
        return props

    def _connect_async(self) -> None:
        self._client.connect_async(
            self.address.host,
            self.address.port,
            keepalive=self.keepalive,
            clean_start=False,
            properties=self._connect_properties(),
        )
        self._client.loop_start()

    def start(self) -> None:
        """Connect (in the background, retrying) and start handling messages. Returns at once."""
        with self._lifecycle:
            if self._running:
                return
            if any(t is not None and t.is_alive() for t in (self._worker, self._answerer)):
                raise MqttError(
                    "the previous MQTT ingest worker is still finishing a batch; start again later"
                )
            self._stop.clear()
            self._queue = queue.Queue()  # anything left from before is unacknowledged: delivered again
            self._jobs = queue.Queue()
            self._last = None
            self._running = True
            self._worker = threading.Thread(target=self._run, name="supet-mqtt-ingest", daemon=True)
            self._answerer = threading.Thread(target=self._answer_all, name="supet-mqtt-answer", daemon=True)
            self._answerer.start()
            self._worker.start()
            log.info("MQTT ingest: connecting to %s as %r", self.url, self.client_id)
            self._connect_async()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the batch in hand, then disconnect (the session stays: the broker keeps queueing)."""
        if not self._running:
            return
        self._stop.set()
        deadline = time.monotonic() + timeout
        for thread in (self._worker, self._answerer):  # the worker ends the answer thread's queue
            if thread is not None:
                thread.join(max(0.0, deadline - time.monotonic()))
                if thread.is_alive():
                    log.warning("MQTT ingest: the batch in hand did not finish within %.0fs", timeout)
        with self._lifecycle:
            self._client.disconnect()
            self._client.loop_stop()
            self._running = False
            self._connected = False
            self._subscribed = False
        log.info("MQTT ingest stopped")

    @property
    def connected(self) -> bool:
        """Connected to the broker and subscribed."""
        return self._connected and self._subscribed

    def status(self) -> str:
        """For readiness: ``ok``, or what is wrong."""
        if self.connected:
            return "ok"
        if not self._running:
            return "stopped"
        return f"disconnected: {self.last_error}" if self.last_error else "disconnected"

    def stats(self) -> MqttStats:
        return MqttStats(
            received=self._received,
            accepted=self._accepted,
            rejected=self._rejected,
            redelivered=self._redelivered,
            deferred=self._deferred,
            dropped=self._dropped,
            batches=self._batches,
            connected=self.connected,
            dead_lettered=self._dead_lettered,
        )

    @property
    def received(self) -> int:
        return self._received

    @property
    def accepted(self) -> int:
        return self._accepted

    @property
    def rejected(self) -> int:
        return self._rejected

    @property
    def redelivered(self) -> int:
        return self._redelivered

    # ------------------------------------------------------------------ network thread callbacks

    def _on_connect(
        self,
        client: paho.Client,
        userdata: object,
        flags: paho.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            self.last_error = f"broker refused the connection: {reason_code}"
            log.error("MQTT ingest: %s (%s)", self.last_error, self.url)
            return
        with self._ack_lock:
            self._generation += 1
            if flags.session_present:
                # the broker delivers every unacknowledged message again: local copies are stale
                self._floor = self._generation
            self._connected = True
        if not flags.session_present:
            log.info(
                "MQTT ingest: new session on %s (no messages were queued for %r)", self.url, self.client_id
            )
        if flags.session_present:
            # A resumed session keeps the subscription of an earlier configuration (shared or not):
            # two subscriptions would deliver every reading twice.
            stale = [f for f in stale_filters(self.share_group) if f != self.topic_filter]
            client.unsubscribe(stale)
        # retained readings only with a new subscription: not again on every reconnect (a shared
        # subscription never gets retained messages)
        options = SubscribeOptions(qos=1, retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB)
        rc, _ = client.subscribe(self.topic_filter, options=options)
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            self.last_error = f"subscribe failed: {paho.error_string(rc)}"
            log.error("MQTT ingest: %s", self.last_error)

    def _on_connect_fail(self, client: paho.Client, userdata: object) -> None:
        self.last_error = f"cannot connect to {self.url}"
        log.warning("MQTT ingest: %s; retrying", self.last_error)

    def _on_subscribe(
        self,
        client: paho.Client,
        userdata: object,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        failed = [rc for rc in reason_codes if rc.is_failure]
        if failed:
            self.last_error = f"the broker refused the subscription to {self.topic_filter}: {failed[0]}"
            log.error("MQTT ingest: %s", self.last_error)
            self._subscribed = False
            return
        self.last_error = None
        self._subscribed = True
        log.info("MQTT ingest: subscribed to %s on %s as %r", self.topic_filter, self.url, self.client_id)

    def _on_disconnect(
        self,
        client: paho.Client,
        userdata: object,
        flags: paho.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        with self._ack_lock:
            self._generation += 1
            was = self._connected
            self._connected = False
            self._subscribed = False
        if reason_code == _SESSION_TAKEN_OVER:
            # Another client connected with our client id: the broker gave it our session. Taking it
            # back would make the two take it from each other at every reconnect; stop and say why.
            self.last_error = (
                f"session taken over: another client connected to {self.url} as {self.client_id!r}; "
                "each instance needs its own client id (SUPET_MQTT_CLIENT_ID). Not reconnecting"
            )
            log.error("MQTT ingest: %s", self.last_error)
            client.disconnect()  # ends paho's reconnect loop
            return
        if was and not self._stop.is_set() and not self._pausing:
            self.last_error = f"connection lost: {reason_code}"
            log.warning("MQTT ingest: %s; reconnecting", self.last_error)
            self._note_lost()

    def _note_lost(self) -> None:
        """Say so when connections keep being lost: Mosquitto 2.0 closes a session's connection without
        saying why (no DISCONNECT 0x8E) when another client connects with the same client id, and the
        two then take the session from each other at every reconnect."""
        now = time.monotonic()
        self._lost = [t for t in self._lost if now - t < _FLAPPING_WINDOW] + [now]
        if len(self._lost) >= _FLAPPING_LOSSES:
            self._lost = []
            log.error(
                "MQTT ingest: the connection to %s was lost %d times within %.0f s: if another instance "
                "connects as %r, the two take the session from each other; each instance needs its own "
                "client id (SUPET_MQTT_CLIENT_ID)",
                self.url,
                _FLAPPING_LOSSES,
                _FLAPPING_WINDOW,
                self.client_id,
                extra={"event": "mqtt.connection_flapping"},
            )

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        self._received += 1
        if msg.dup:
            self._redelivered += 1
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            topic = ""
        self._queue.put(
            Message(
                device=topic_device(topic),
                topic=topic,
                payload=bytes(msg.payload),
                mid=msg.mid,
                qos=msg.qos,
                dup=bool(msg.dup),
                generation=self._generation,
            )
        )

    # ------------------------------------------------------------------ the worker

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    first = self._queue.get(timeout=0.2)
                except queue.Empty:
                    continue
                batch = [first]
                size = len(first.payload)
                deadline = time.monotonic() + self.batch_wait
                # messages may carry many readings each: a batch is bounded in bytes too (the first is
                # always taken; each is at most max_payload_bytes)
                while len(batch) < self.batch_max and size < self.batch_max_bytes:
                    remaining = deadline - time.monotonic()
                    try:
                        m = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                    except queue.Empty:
                        break
                    batch.append(m)
                    size += len(m.payload)
                try:
                    self._stage(batch)
                except Exception:  # a bug: keep ingest alive; the messages stay unacknowledged
                    log.exception("MQTT ingest: a batch of %d failed (a bug); redelivery", len(batch))
                    self._jobs.join()  # the batches handed on are answered first
                    self._redeliver_later("a batch failed")
        finally:
            self._jobs.put(None)  # the answer thread ends once it has answered what it was given

    def _stage(self, batch: list[Message]) -> None:
        """Decode and check ``batch`` while the previous one commits, then hand it to the writer (once
        the previous commit is decided) and to the answer thread."""
        with self._ack_lock:  # the broker delivers those of an older connection again: dropped
            floor = self._floor
        live = [m for m in batch if m.generation >= floor]
        self._dropped += len(batch) - len(live)
        if not live:
            return
        job = decode_batch(live, self.max_payload_bytes, self.max_readings, self._dead_letter)
        stages = self._stages
        if job.objs and stages is not None:
            self._batches += 1
            try:
                job.prepared = stages.prepare(job.objs, source="mqtt")
            except Exception as e:  # tried again one at a time by the answer thread
                job.error = e
        if self._last is not None:
            self._last.decided.wait()
        if self._stop.is_set():
            return  # nothing of it is answered: the broker delivers it again
        if self._stale(job.live):  # a reconnection since (the previous batch failed)
            return
        if job.prepared is not None and job.error is None and stages is not None:
            try:
                job.future = stages.enqueue(job.prepared)
            except Exception as e:
                job.error = e
        self._last = job
        self._jobs.put(job)

    def _answer_all(self) -> None:
        """The answer thread: each micro-batch's results, receipts and acknowledgements, in order."""
        while True:
            job = self._jobs.get()
            try:
                if job is None:
                    return
                try:
                    self._answer(job)
                except Exception:  # a bug: keep ingest alive; the messages stay unacknowledged
                    log.exception(
                        "MQTT ingest: answering %d messages failed (a bug); redelivery", len(job.live)
                    )
                    self._redeliver_later("a batch failed")
            finally:
                if job is not None:
                    job.decided.set()
                self._jobs.task_done()

    def _stale(self, live: list[Message]) -> bool:
        """A reconnection since these were taken: the broker delivers them again (dropped, counted)."""
        with self._ack_lock:
            stale = any(m.generation < self._floor for m in live)
        self._dropped += len(live) if stale else 0
        return stale

    def _answer(self, job: Job) -> None:
        live, answers, objs, owners = job.live, job.answers, job.objs, job.owners
        if job.future is None and self._stale(live):  # not with the writer: no need to go on
            return
        store_down = False
        failed: dict[int, Exception] = {}  # submission -> why the pipeline failed on it alone
        results, calls = job_results(self.pipeline, self._stages, job)
        self._batches += calls
        for k, r in enumerate(results):
            if isinstance(r, Exception):
                failed[k] = r
            elif not answers[owners[k][0]].take(owners[k][1], r, objs[k]):
                store_down = True
        if not failed and not store_down:
            job.decided.set()  # stored: the next batch may go to the writer while these are answered
        attempts = 1
        while failed and not store_down and attempts < self.max_attempts:
            # tried alone and failed: again after a growing pause (a passing fault), then dead-lettered
            if self._stop.wait(min(self.store_retry_max, self.store_retry_min * 2 ** (attempts - 1))):
                return  # stopping: nothing of this batch was answered; the broker delivers it again
            attempts += 1
            for k in list(failed):
                self._batches += 1
                try:
                    (r,) = self.pipeline.submit([objs[k]], source="mqtt")
                except Exception as e:
                    failed[k] = e
                    continue
                del failed[k]
                if not answers[owners[k][0]].take(owners[k][1], r, objs[k]):
                    store_down = True
        if store_down:
            # Nothing of this batch is acknowledged: the store's answer for the others may be a rejection
            # that depends on readings not stored (a sequence rule), so all of it is delivered again.
            self._deferred += len(live)
            log.warning(
                "MQTT ingest: store unavailable; %d messages left for the broker to deliver again", len(live)
            )
            self._redeliver_later("store unavailable")
            return
        dead_letter_failed(job, failed, attempts, self._dead_letter)
        self._store_delay = self.store_retry_min
        self._publish_answers(live, answers)

    def _publish_answers(self, live: list[Message], answers: list[Answer]) -> None:
        """Publish each message's reply to its device's receipts topic and acknowledge it, in order."""
        accepted = 0
        for m, a in zip(live, answers, strict=True):
            accepted += a.n_accepted
            self._rejected += a.n_rejected
            if m.device is not None:
                self._client.publish(receipts_topic(m.device), dumps_exact(a.payload()), qos=1)
            self._ack(m)
        self._accepted += accepted
        if accepted and self.on_accepted is not None:
            try:
                self.on_accepted()
            except Exception:  # the callback's failure must not stop ingest; anchoring retries on its own
                log.exception("MQTT ingest: on_accepted failed")

    def _dead_letter(
        self, m: Message, reason: str, detail: str, attempts: int, obj: Any = None
    ) -> dict[str, Any]:
        """Dead-letter ``m`` (:func:`dead_letter`) and count it; the error reply for its device."""
        self._dead_lettered += 1
        return dead_letter(self._client, m, reason, detail, attempts, obj, self.on_dead_letter)

    def _ack(self, m: Message) -> None:
        if m.qos == 0:
            return
        with self._ack_lock:
            # On another connection the broker delivers the message again (same session) or has
            # forgotten it (new session); either way this mid is not ours to acknowledge now.
            if m.generation == self._generation:
                self._client.ack(m.mid, m.qos)

    def _redeliver_later(self, reason: str) -> None:
        """Disconnect (keeping the session), wait, reconnect: the broker delivers unacked messages again.
        Every local copy is stale from now on, those the worker holds too (dropped before the writer)."""
        with self._ack_lock:
            self._floor = self._generation + 1
        delay = self._store_delay
        self._store_delay = min(self.store_retry_max, self._store_delay * 2)
        with self._lifecycle:
            if self._stop.is_set():
                return
            self.last_error = f"{reason}: reconnecting in {delay:.1f}s for redelivery"
            self._pausing = True
            self._client.disconnect()
            self._client.loop_stop()
        try:
            if self._stop.wait(delay):
                return
            with self._lifecycle:
                if self._stop.is_set():
                    return
                self._connect_async()
        finally:
            self._pausing = False
