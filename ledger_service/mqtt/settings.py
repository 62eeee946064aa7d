"""The MQTT bridge's settings: the broker's URL, the topics, the result codes it acts on, its errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from ledger_service.errors import ConfigError, LedgerError

__all__ = [
    "DEAD_LETTER_PREFIX",
    "DEAD_PIPELINE_ERROR",
    "DEAD_UNDECODABLE",
    "DEFAULT_SHARE_GROUP",
    "READINGS_TOPIC",
    "STORE_UNAVAILABLE",
    "BrokerAddress",
    "MqttError",
    "MqttShareGroupError",
    "MqttUrlError",
    "check_share_group",
    "parse_mqtt_url",
    "readings_filter",
    "receipts_topic",
    "stale_filters",
    "topic_device",
]

#: Where devices publish their readings.
READINGS_TOPIC = "devices/+/readings"
#: The shared subscription's group by default (``SUPET_MQTT_SHARE_GROUP``).
DEFAULT_SHARE_GROUP = "supet-ledger"
#: The result code that leaves a message unacknowledged, for the broker to deliver again.
STORE_UNAVAILABLE = "store.unavailable"
#: A dead-lettered message is republished to this prefix + its topic.
DEAD_LETTER_PREFIX = "dead-letters/"
#: Dead-letter reasons (the ``reason`` label of ``supet_mqtt_dead_letters_total``).
DEAD_PIPELINE_ERROR = "pipeline_error"
DEAD_UNDECODABLE = "undecodable"


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


class MqttShareGroupError(ConfigError):
    """The shared subscription's group name cannot be used (``SUPET_MQTT_SHARE_GROUP``)."""

    code = "config.mqtt_share_group"


def check_share_group(group: str | None) -> str | None:
    """``group`` if it can name a shared subscription's group (None or empty: no group); raise
    :class:`MqttShareGroupError` otherwise."""
    if not group:
        return None
    if any(c in group for c in "/+#") or any(ord(c) < 0x20 or ord(c) == 0x7F for c in group):
        raise MqttShareGroupError(
            f"the MQTT share group {group!r} may not contain '/', '+', '#' or control characters "
            "(MQTT 5, 4.8.2): use e.g. supet-ledger"
        )
    return group


def readings_filter(share_group: str | None) -> str:
    """The topic filter the bridge subscribes to: ``$share/<group>/devices/+/readings`` (a shared
    subscription: each reading goes to one member of the group), or ``devices/+/readings``."""
    group = check_share_group(share_group)
    return f"$share/{group}/{READINGS_TOPIC}" if group else READINGS_TOPIC


def stale_filters(share_group: str | None) -> list[str]:
    """Filters a resumed session may still hold from another configuration, to unsubscribe: the plain
    filter when a group is set, the default group's when none is."""
    if check_share_group(share_group):
        return [READINGS_TOPIC]
    return [readings_filter(DEFAULT_SHARE_GROUP)]


def topic_device(topic: str) -> str | None:
    """The device id of ``devices/<device_id>/readings``, or None for another topic."""
    parts = topic.split("/")
    if len(parts) == 3 and parts[0] == "devices" and parts[2] == "readings":
        return parts[1]
    return None


def receipts_topic(device_id: str) -> str:
    return f"devices/{device_id}/receipts"
