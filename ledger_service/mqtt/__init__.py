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

The package: :mod:`~ledger_service.mqtt.bridge` (:class:`MqttBridge`: the client, its session and
the worker), :mod:`~ledger_service.mqtt.answers` (a message decoded and answered),
:mod:`~ledger_service.mqtt.dead_letter` and :mod:`~ledger_service.mqtt.settings` (the broker URL,
the topics, the errors).
"""
