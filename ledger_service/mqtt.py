"""MQTT ingest: the same submissions as HTTP, published to ``devices/<device_id>/readings``.

The bridge subscribes to ``devices/+/readings`` at QoS 1 with a persistent MQTT v5
session (fixed client id, ``clean_start`` false, a session expiry), so readings
published while the service is briefly away are queued by the broker and
delivered when it is back.

Acknowledgement is manual: a message's PUBACK is sent only once its reading is
durably committed (or definitively refused), after its receipt was published to
``devices/<device_id>/receipts``. A crash before the commit leaves the message
unacknowledged and the broker delivers it again; the ledger's idempotency turns
such a redelivery into the same receipt. Nothing acknowledged is lost.

Messages are handled in micro-batches by one worker thread (never the network
thread): up to ``batch_max`` messages, or what arrives within ``batch_wait``
seconds of the first, go to :meth:`IngestPipeline.submit` in one call.

When the store is unavailable (``store.unavailable``) nothing is acknowledged
and nothing is published: the bridge drops its local copies, disconnects
(keeping the session), waits with a growing delay and reconnects, and the broker
redelivers every unacknowledged message in its original order.

Bad input is answered as bad input: a payload that is not strict JSON (too deep,
a duplicate key, NaN, a 5,000-digit number, ...; see :func:`ledger_service.jsonio.loads_strict`)
gets an error receipt (``request.bad_json``) and is acknowledged, like any refused reading.
When the pipeline fails on a batch (an exception, not a refusal), each message is tried
alone, and one that keeps failing is tried again after a growing pause, ``max_attempts``
times in all. Then it is **dead-lettered**: published unchanged to ``dead-letters/<its
topic>`` (QoS 1, with ``reason``, ``attempts`` and ``error`` user properties; subscribe to
``dead-letters/#`` with a persistent session to keep them), logged with its SHA-256,
answered with an error receipt (``mqtt.dead_letter``), acknowledged, and counted
(``supet_mqtt_dead_letters_total{reason}``). The others of its batch are answered as usual,
and the bridge never disconnects for it, so readiness is not affected. A payload whose
decoding raises is dead-lettered at once (decoding is deterministic). Acknowledgements stay
in the order of delivery (Mosquitto drops a client that acknowledges out of order while
publishing). A process that dies while trying such a message leaves it unacknowledged: the
broker delivers it again after the restart.

Broker requirements: MQTT v5 (Mosquitto 2 is fine). The broker holds only
``max_queued_messages`` messages per session beyond those in flight (Mosquitto:
1000 by default) and drops QoS 1 messages above that; size it for the backlog
you expect while the service is away. A device has its reading in the ledger
when it gets the receipt, not when the broker acknowledges its PUBLISH: keep a
reading until its receipt arrives and resend it otherwise (resending is safe).

Topic names cannot hold ``/``, ``+`` or ``#`` inside one level: devices whose id
contains these characters must use HTTP.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from ledger_service.errors import ConfigError, LedgerError
from ledger_service.ingest.pipeline import ItemResult
from ledger_service.jsonio import BodyDecodeError, dumps_exact, loads_strict

log = logging.getLogger(__name__)

#: What the bridge subscribes to.
READINGS_TOPIC = "devices/+/readings"
#: The result code that leaves a message unacknowledged, for the broker to deliver again.
STORE_UNAVAILABLE = "store.unavailable"
#: A dead-lettered message is republished to this prefix + its topic.
DEAD_LETTER_PREFIX = "dead-letters/"
#: Dead-letter reasons (the ``reason`` label of ``supet_mqtt_dead_letters_total``).
DEAD_PIPELINE_ERROR = "pipeline_error"
DEAD_UNDECODABLE = "undecodable"
#: Receive Maximum the protocol allows.
_MAX_RECEIVE = 65_535


class _QuietDisconnect(logging.Filter):
    """Drop paho's "Client is not connected" error: its network loop logs it once after a deliberate
    disconnect (stop, or a pause for redelivery); lost connections are reported by on_disconnect."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Client is not connected")


_PAHO_LOG = logging.getLogger(f"{__name__}.paho")
_PAHO_LOG.addFilter(_QuietDisconnect())


class MqttError(LedgerError):
    """The MQTT bridge cannot work as configured."""

    code = "mqtt.error"


class MqttUrlError(ConfigError):
    """The MQTT URL cannot be used (``SUPET_MQTT_URL``)."""

    code = "config.mqtt_url"


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """Where the broker is, from ``mqtt://[user[:password]@]host[:port]`` (``mqtts://``: TLS)."""

    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def __str__(self) -> str:
        user = f"{self.username}@" if self.username else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'mqtts' if self.tls else 'mqtt'}://{user}{host}:{self.port}"


def parse_mqtt_url(url: str) -> BrokerAddress:
    """Parse an MQTT URL; raise :class:`MqttUrlError` saying what is wrong with it."""
    hint = "expected mqtt://[user[:password]@]host[:port] or mqtts://... (TLS)"
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as e:
        raise MqttUrlError(f"MQTT URL {_redact(url)!r} is malformed ({e}); {hint}") from e
    scheme = parts.scheme.lower()
    if scheme not in ("mqtt", "mqtts"):
        raise MqttUrlError(f"MQTT URL {_redact(url)!r}: unknown scheme {parts.scheme!r}; {hint}")
    if not parts.hostname:
        raise MqttUrlError(f"MQTT URL {_redact(url)!r} has no host; {hint}")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise MqttUrlError(f"MQTT URL {_redact(url)!r}: a path, query or fragment is not supported; {hint}")
    if port == 0:
        raise MqttUrlError(f"MQTT URL {_redact(url)!r}: port 0 is not a broker port; {hint}")
    tls = scheme == "mqtts"
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if password is not None and username is None:
        raise MqttUrlError(f"MQTT URL {_redact(url)!r}: a password needs a user name; {hint}")
    return BrokerAddress(
        host=parts.hostname,
        port=port if port is not None else (8883 if tls else 1883),
        tls=tls,
        username=username,
        password=password,
    )


def _redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        return parts._replace(netloc=netloc).geturl()
    except ValueError:
        return "<unparsable URL>"


def topic_device(topic: str) -> str | None:
    """The device id of ``devices/<device_id>/readings``, or None for another topic."""
    parts = topic.split("/")
    if len(parts) == 3 and parts[0] == "devices" and parts[2] == "readings":
        return parts[1]
    return None


def receipts_topic(device_id: str) -> str:
    return f"devices/{device_id}/receipts"


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
class _Message:
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
class _Answer:
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
            self.reply = _error(r.code or "reading.rejected", r.message or "", obj)
        return True


class MqttBridge:
    """Ingest signed readings from MQTT into the pipeline; publish receipts; ack after the commit."""

    def __init__(
        self,
        *,
        url: str,
        pipeline: Submitter,
        on_accepted: Callable[[], None] | None = None,
        client_id: str = "supet-ledger",
        batch_max: int = 500,
        batch_wait: float = 0.01,
        receive_maximum: int | None = None,
        session_expiry: int = 7 * 24 * 3600,
        keepalive: int = 30,
        max_payload_bytes: int = 64 * 1024,
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
        self.address = parse_mqtt_url(url)
        self.url = str(self.address)
        self.pipeline = pipeline
        self.on_accepted = on_accepted
        self.client_id = client_id
        self.batch_max = batch_max
        self.batch_wait = batch_wait
        #: Unacknowledged messages the broker may have in flight to us: two batches' worth by default,
        #: so the broker keeps sending while a batch is committed.
        self.receive_maximum = min(_MAX_RECEIVE, receive_maximum or max(2 * batch_max, 20))
        self.session_expiry = session_expiry
        self.keepalive = keepalive
        self.max_payload_bytes = max_payload_bytes
        self.store_retry_min = store_retry_min
        self.store_retry_max = store_retry_max
        #: A message on which the pipeline fails this many times is dead-lettered.
        self.max_attempts = max_attempts
        #: Called with the reason of each dead-lettered message (metrics).
        self.on_dead_letter = on_dead_letter
        #: The last connection or subscription problem, for readiness (None when fine).
        self.last_error: str | None = None

        self._queue: queue.Queue[_Message] = queue.Queue()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
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
        c.max_inflight_messages_set(1000)  # receipts in flight to the broker
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
            if self._worker is not None and self._worker.is_alive():
                raise MqttError(
                    "the previous MQTT ingest worker is still finishing a batch; start again later"
                )
            self._stop.clear()
            self._queue = queue.Queue()  # anything left from before is unacknowledged: delivered again
            self._running = True
            self._worker = threading.Thread(target=self._run, name="supet-mqtt-ingest", daemon=True)
            self._worker.start()
            log.info("MQTT ingest: connecting to %s as %r", self.url, self.client_id)
            self._connect_async()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the batch in hand, then disconnect (the session stays: the broker keeps queueing)."""
        if not self._running:
            return
        self._stop.set()
        worker = self._worker
        if worker is not None:
            worker.join(timeout)
            if worker.is_alive():
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
        # retained readings only with a new subscription: not again on every reconnect
        options = SubscribeOptions(qos=1, retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB)
        rc, _ = client.subscribe(READINGS_TOPIC, options=options)
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
            self.last_error = f"the broker refused the subscription to {READINGS_TOPIC}: {failed[0]}"
            log.error("MQTT ingest: %s", self.last_error)
            self._subscribed = False
            return
        self.last_error = None
        self._subscribed = True
        log.info("MQTT ingest: subscribed to %s on %s", READINGS_TOPIC, self.url)

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
        if was and not self._stop.is_set() and not self._pausing:
            self.last_error = f"connection lost: {reason_code}"
            log.warning("MQTT ingest: %s; reconnecting", self.last_error)

    def _on_message(self, client: paho.Client, userdata: object, msg: paho.MQTTMessage) -> None:
        self._received += 1
        if msg.dup:
            self._redelivered += 1
        try:
            topic = msg.topic
        except UnicodeDecodeError:
            topic = ""
        self._queue.put(
            _Message(
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
        while not self._stop.is_set():
            try:
                first = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            batch = [first]
            deadline = time.monotonic() + self.batch_wait
            while len(batch) < self.batch_max:
                remaining = deadline - time.monotonic()
                try:
                    batch.append(
                        self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                    )
                except queue.Empty:
                    break
            try:
                self._process(batch)
            except Exception:  # a bug: keep ingest alive; the messages stay unacknowledged
                log.exception(
                    "MQTT ingest: handling a batch of %d failed (a bug); left for the broker to send again",
                    len(batch),
                )
                self._redeliver_later("a batch failed")

    def _process(self, batch: list[_Message]) -> None:
        with self._ack_lock:
            floor = self._floor
        live = [m for m in batch if m.generation >= floor]
        self._dropped += len(batch) - len(live)
        if not live:
            return
        answers = [_Answer() for _ in live]
        objs: list[Any] = []
        slots: list[int] = []
        for i, m in enumerate(live):
            try:
                obj, refusal = self._decode(m)
            except Exception as e:  # a decoder bug: the same bytes fail again, so do not wait for them
                log.exception("MQTT ingest: decoding a message on %r raised", m.topic)
                answers[i].reply = self._dead_letter(m, DEAD_UNDECODABLE, f"{type(e).__name__}: {e}", 1)
                continue
            if refusal is not None:
                answers[i].reply = refusal
            else:
                objs.append(obj)
                slots.append(i)
        store_down = False
        failed: dict[int, Exception] = {}  # slot -> why the pipeline failed on that message alone
        if objs:
            for slot, obj, r in zip(slots, objs, self._submit(objs), strict=True):
                if isinstance(r, Exception):
                    failed[slot] = r
                elif not answers[slot].take(r, obj):
                    store_down = True
        attempts = 1
        while failed and not store_down and attempts < self.max_attempts:
            # tried alone and failed: again after a growing pause (a passing fault), then dead-lettered
            if self._stop.wait(min(self.store_retry_max, self.store_retry_min * 2 ** (attempts - 1))):
                return  # stopping: nothing of this batch was answered; the broker delivers it again
            attempts += 1
            for slot in list(failed):
                self._batches += 1
                try:
                    (r,) = self.pipeline.submit([objs[slots.index(slot)]], source="mqtt")
                except Exception as e:
                    failed[slot] = e
                    continue
                del failed[slot]
                if not answers[slot].take(r, objs[slots.index(slot)]):
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
        for slot, exc in failed.items():
            answers[slot].reply = self._dead_letter(
                live[slot],
                DEAD_PIPELINE_ERROR,
                f"{type(exc).__name__}: {exc}",
                attempts,
                objs[slots.index(slot)],
            )
        self._store_delay = self.store_retry_min
        accepted = 0
        for m, a in zip(live, answers, strict=True):
            assert a.reply is not None
            if a.accepted:
                accepted += 1
            if m.device is not None:
                self._client.publish(receipts_topic(m.device), dumps_exact(a.reply), qos=1)
            self._ack(m)
        self._accepted += accepted
        self._rejected += len(live) - accepted
        if accepted and self.on_accepted is not None:
            try:
                self.on_accepted()
            except Exception:  # the callback's failure must not stop ingest; anchoring retries on its own
                log.exception("MQTT ingest: on_accepted failed")

    def _submit(self, objs: list[Any]) -> list[ItemResult | Exception]:
        """The pipeline's results; when it fails on the batch, each submission's alone (or its failure)."""
        self._batches += 1
        try:
            results = self.pipeline.submit(objs, source="mqtt")
            if len(results) != len(objs):
                raise MqttError(f"the pipeline answered {len(results)} results for {len(objs)} submissions")
            return list(results)
        except Exception as e:  # timeout, broken worker pool, a bug: nothing is known as stored
            log.error(
                "MQTT ingest: the pipeline failed on %d submission(s) (%s: %s)%s",
                len(objs),
                type(e).__name__,
                e,
                "; trying each alone" if len(objs) > 1 else "",
            )
            if len(objs) == 1:
                return [e]
        out: list[ItemResult | Exception] = []
        for obj in objs:
            self._batches += 1
            try:
                (result,) = self.pipeline.submit([obj], source="mqtt")
                out.append(result)
            except Exception as e:
                out.append(e)
        return out

    def _dead_letter(
        self, m: _Message, reason: str, detail: str, attempts: int, obj: Any = None
    ) -> dict[str, Any]:
        """Publish ``m`` to the dead-letter topic, log and count it; the error reply for its device."""
        props = Properties(PacketTypes.PUBLISH)
        props.UserProperty = [("reason", reason), ("attempts", str(attempts)), ("error", detail[:200])]
        self._client.publish(DEAD_LETTER_PREFIX + (m.topic or "unknown"), m.payload, qos=1, properties=props)
        self._dead_lettered += 1
        log.error(
            "MQTT ingest: dead-lettered a message on %r (%d bytes, sha256 %s) after %d attempt(s): %s: %s",
            m.topic,
            len(m.payload),
            m.key.hex(),
            attempts,
            reason,
            detail[:300],
            extra={"event": "mqtt.dead_letter", "reason": reason},
        )
        if self.on_dead_letter is not None:
            try:
                self.on_dead_letter(reason)
            except Exception:  # counting must not stop ingest
                log.exception("MQTT ingest: on_dead_letter failed")
        return _error(
            "mqtt.dead_letter",
            f"the ledger could not process this message ({attempts} attempts); it was set aside "
            f"on {DEAD_LETTER_PREFIX}{m.topic} for the operator: resend the reading later or over HTTP",
            obj,
        )

    def _decode(self, m: _Message) -> tuple[Any, dict[str, Any] | None]:
        """The submission object, or a refusal reply."""
        if m.device is None:
            return None, _error(
                "mqtt.bad_topic", f"publish readings to devices/<device_id>/readings, not {m.topic!r}"
            )
        if len(m.payload) > self.max_payload_bytes:
            return None, _error(
                "request.too_large",
                f"the payload has {len(m.payload)} bytes; one submission may have at most "
                f"{self.max_payload_bytes}",
            )
        try:
            obj = loads_strict(m.payload)
        except BodyDecodeError as e:  # too deep, duplicate keys, NaN, a 5,000-digit number, ...
            return None, _error(e.code, e.message)
        if not isinstance(obj, dict):
            return None, _error(
                "request.bad_shape",
                'publish one submission object {"reading": ..., "scheme": ..., "signature": ...}',
            )
        reading = obj.get("reading")
        claimed = reading.get("device_id") if isinstance(reading, dict) else None
        if isinstance(claimed, str) and claimed != m.device:
            return None, _error(
                "mqtt.topic_mismatch",
                f"the reading is from device {claimed!r} but was published to {m.topic!r}: a device "
                f"publishes only its own readings, to devices/{claimed}/readings",
                obj,
            )
        return obj, None

    def _ack(self, m: _Message) -> None:
        if m.qos == 0:
            return
        with self._ack_lock:
            # On another connection the broker delivers the message again (same session) or has
            # forgotten it (new session); either way this mid is not ours to acknowledge now.
            if m.generation == self._generation:
                self._client.ack(m.mid, m.qos)

    def _redeliver_later(self, reason: str) -> None:
        """Disconnect (keeping the session), wait, reconnect: the broker delivers unacked messages again."""
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


def _error(code: str, message: str, obj: Any = None) -> dict[str, Any]:
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
