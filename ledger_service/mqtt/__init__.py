"""MQTT ingest: the same submissions as HTTP, published to ``devices/<device_id>/readings``.

The bridge subscribes at QoS 1 with a persistent MQTT v5 session (its own fixed
client id, ``clean_start`` false, a session expiry), so readings published while
the service is briefly away are queued by the broker and delivered when it is back.
It subscribes to the MQTT 5 shared subscription ``$share/<group>/devices/+/readings``
(``SUPET_MQTT_SHARE_GROUP``, default ``supet-ledger``): with several instances, each
with its own client id, the broker hands each message to one member of the group, and
the instance that took it publishes its receipt, so the receipt reaches the device
whichever instance took it. Without a group it subscribes to ``devices/+/readings``.

What Mosquitto (2.0) does with a member's messages (measured): a member that goes away
with its session kept (killed, or stopped) keeps its share. The messages it had in
flight unacknowledged stay in its session and are **not** handed to the other members;
new messages keep being handed to it in its turn and queued in its session. All of them
are delivered, in order, when an instance connects with that client id again (a
restart); the rest of the group takes none of them. So restart a dead instance with its
client id (or start another with that id); an instance removed for good leaves its share
queued until its session expires (``SUPET_MQTT_SESSION_EXPIRY_SECONDS``), when the broker
drops it: those readings have no receipt, and their devices resend them.

A message carries one submission, or ``{"readings": [...]}`` of its device's submissions
(at most ``max_readings``; answered like the HTTP batch: ``{"accepted", "rejected", "results"}``).

Acknowledgement is manual: a message's PUBACK is sent only once its reading is
durably committed (or definitively refused), after its receipt was published to
``devices/<device_id>/receipts``. A crash before the commit leaves the message
unacknowledged and the broker delivers it again; the ledger's idempotency turns
such a redelivery into the same receipt. Nothing acknowledged is lost.

Messages are handled in micro-batches (never on the network thread): up to ``batch_max``
messages (and ``batch_max_bytes`` of payload), or what arrives within ``batch_wait`` seconds of
the first, are decoded in one strict pass and checked by the pipeline in one call
(:meth:`IngestPipeline.prepare`) by the worker thread while the previous micro-batch commits; then
handed to the writer, once the previous commit is decided, and answered (receipts, acknowledgements)
by the answer thread, in order (:mod:`~ledger_service.mqtt.stages`). A pipeline with only
:meth:`~IngestPipeline.submit` is called one micro-batch at a time.

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

The package: :mod:`~ledger_service.mqtt.bridge` (:class:`MqttBridge`: the client, its session and
the worker), :mod:`~ledger_service.mqtt.stages` (a micro-batch's stages),
:mod:`~ledger_service.mqtt.answers` (a message decoded and answered),
:mod:`~ledger_service.mqtt.dead_letter` and :mod:`~ledger_service.mqtt.settings` (the broker URL,
the topics, the errors).
"""
