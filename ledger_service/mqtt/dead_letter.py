"""Dead-lettering: a message the ledger cannot process is set aside on ``dead-letters/<its topic>``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ledger_service.mqtt.answers import Message, error_reply
from ledger_service.mqtt.settings import DEAD_LETTER_PREFIX

__all__ = ["dead_letter"]

log = logging.getLogger("ledger_service.mqtt")


def dead_letter(
    client: paho.Client,
    m: Message,
    reason: str,
    detail: str,
    attempts: int,
    obj: Any = None,
    on_dead_letter: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Publish ``m`` to the dead-letter topic, log it and report it to ``on_dead_letter`` (metrics);
    the error reply for its device. The bridge counts it."""
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = [("reason", reason), ("attempts", str(attempts)), ("error", detail[:200])]
    client.publish(DEAD_LETTER_PREFIX + (m.topic or "unknown"), m.payload, qos=1, properties=props)
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
    if on_dead_letter is not None:
        try:
            on_dead_letter(reason)
        except Exception:  # counting must not stop ingest
            log.exception("MQTT ingest: on_dead_letter failed")
    return error_reply(
        "mqtt.dead_letter",
        f"the ledger could not process this message ({attempts} attempts); it was set aside "
        f"on {DEAD_LETTER_PREFIX}{m.topic} for the operator: resend the reading later or over HTTP",
        obj,
    )
