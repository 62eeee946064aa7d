"""The GS1 EPCIS event hash of an event, and the JSON-LD context supET's EPCIS documents use.

Every event's ``eventID`` is its GS1 event hash (``ni:///sha-256;<hex>?ver=CBV2.0``, computed by
``epcis-event-hash-generator`` over the event without ``eventID``): :func:`event_hash`.

Cost: the generator expands each event as JSON-LD (pyld), about 3.5 ms of CPU an event, most of it
resolving GS1's context for the one-event document. :func:`event_hashes` remembers each hash by the
SHA-256 of the event's JSON (:data:`HASH_MEMO_ENTRIES` at most, least recently used first out), so an
event is hashed once however often it is exported; an event's hash depends on nothing but its
content, so a remembered hash is never stale. Events are hashed one per document on purpose: the
generator's bare-string heuristic looks at every value of the document, so an event hashed among
others could get another hash than the same event alone (a metric or lot named like a CBV value
used by another event), and an auditor re-hashing one event must get its eventID.
"""

from __future__ import annotations

import copy
import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any, Final

__all__ = [
    "DOCUMENT_CONTEXT",
    "EPCIS_CONTEXT",
    "HASH_MEMO_ENTRIES",
    "SUPET_NS",
    "event_hash",
    "event_hashes",
]

#: GS1's EPCIS 2.0 JSON-LD context (the versioned URL of https://ref.gs1.org/standards/epcis/).
EPCIS_CONTEXT: Final = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
#: The supET extension namespace (chain references, raw metrics, verdict details).
SUPET_NS: Final = "https://supet.example/ns/epcis/"
#: The ``@context`` of every document (and of the one-event document an event is hashed in).
DOCUMENT_CONTEXT: Final[list[Any]] = [EPCIS_CONTEXT, {"supet": SUPET_NS}]


def event_hash(event: Mapping[str, Any]) -> str:
    """The GS1 EPCIS event hash of ``event`` (``ni:///sha-256;<hex>?ver=CBV2.0``), ignoring its eventID.

    The event is hashed in a one-event document with this module's ``@context`` (so the ``supet``
    extensions are expanded to :data:`SUPET_NS` as the algorithm requires).
    """
    from epcis_event_hash_generator.hash_generator import epcis_hashes_from_events
    from epcis_event_hash_generator.json_to_py import (
        event_list_from_epcis_document_json,
    )

    body = {k: copy.deepcopy(v) for k, v in event.items() if k != "eventID"}
    document = {
        "@context": copy.deepcopy(DOCUMENT_CONTEXT),
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "1970-01-01T00:00:00.000Z",
        "epcisBody": {"eventList": [body]},
    }
    hashes: list[str] = epcis_hashes_from_events(event_list_from_epcis_document_json(document))
    if len(hashes) != 1:
        raise ValueError("the EPCIS event hash generator could not hash this event")
    return hashes[0]


#: How many event hashes :func:`event_hashes` remembers (about 250 bytes each).
HASH_MEMO_ENTRIES: Final = 100_000


class _HashMemo:
    """A bounded LRU of event hashes by the SHA-256 of the event's JSON (thread-safe)."""

    def __init__(self, entries: int) -> None:
        self.entries = entries
        self._data: OrderedDict[bytes, str] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: bytes) -> str | None:
        with self._lock:
            found = self._data.get(key)
            if found is not None:
                self._data.move_to_end(key)
            return found

    def put(self, key: bytes, value: str) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.entries:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        return len(self._data)


_MEMO = _HashMemo(HASH_MEMO_ENTRIES)


def _json(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _body_key(body: Mapping[str, Any]) -> bytes:
    return hashlib.sha256(_json({k: v for k, v in body.items() if k != "eventID"}).encode()).digest()


def event_hashes(bodies: Sequence[Mapping[str, Any]]) -> list[str]:
    """The GS1 event hash of each event (:func:`event_hash`), each event hashed at most once."""
    out: list[str] = []
    for body in bodies:
        key = _body_key(body)
        found = _MEMO.get(key)
        if found is None:
            found = event_hash(body)
            _MEMO.put(key, found)
        out.append(found)
    return out
