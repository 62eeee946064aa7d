"""A small device SDK: sign readings and produce submission JSON (spec section 4)."""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._internal.hexutil import hex0x, parse_hex
from .errors import InvalidReading, SignatureLengthError
from .keys import DeviceKey, Scheme, parse_scheme
from .reading import Domain, Reading, reading_digest
from .request_signing import sign_device_request
from .signing import sign_digest

__all__ = ["DeviceSigner", "Submission"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Submission:
    """A signed reading, ready to POST to ``/v1/readings`` or publish over MQTT.

    ``digest`` is the EIP-712 digest under the domain it was made for; it is
    not sent (the service recomputes it) but is handy for receipts.
    """

    reading: Reading
    scheme: Scheme
    signature: bytes
    digest: bytes

    def to_json_obj(self) -> dict[str, Any]:
        """``{"reading": {...}, "scheme": ..., "signature": "0x..."}``."""
        return {
            "reading": self.reading.to_json_obj(),
            "scheme": self.scheme.value,
            "signature": hex0x(self.signature),
        }

    @classmethod
    def from_json_obj(cls, obj: object, *, domain: Domain) -> Submission:
        """Parse a submission and compute its digest under ``domain``.

        Checks the shape only (reading, known scheme, hex signature); verify
        the signature with :func:`device_attestation.signing.check_reading`.
        """
        if not isinstance(obj, Mapping):
            raise InvalidReading(f"a submission is a JSON object, got {type(obj).__name__}", path="")
        extra = set(obj) - {"reading", "scheme", "signature"}
        if extra:
            raise InvalidReading(
                f"unknown submission field(s) {sorted(extra)}; send only reading, scheme, signature",
                path=sorted(extra)[0],
            )
        for name in ("reading", "scheme", "signature"):
            if name not in obj:
                raise InvalidReading(f"{name}: missing; a submission needs it", path=name)
        reading = Reading.from_json_obj(obj["reading"])
        scheme_value = obj["scheme"]
        scheme = parse_scheme(scheme_value if isinstance(scheme_value, str) else repr(scheme_value))
        try:
            signature = parse_hex(obj["signature"])
        except ValueError as e:
            raise SignatureLengthError(
                f"signature: {e}; send the signature as 0x-prefixed hex",
                code="signature.encoding",
            ) from e
        return cls(
            reading=reading,
            scheme=scheme,
            signature=signature,
            digest=reading_digest(reading, domain),
        )


class DeviceSigner:
    """Signs a device's readings with consecutive sequence numbers.

    Not a value object: it holds the next ``seq``. Thread-safe. Persist
    :attr:`next_seq` across restarts (and pass it as ``start_seq``): the
    ledger treats a reused ``seq`` with other content as equivocation.
    """

    def __init__(self, *, device_id: str, key: DeviceKey, domain: Domain, start_seq: int = 1) -> None:
        # Validate device_id and start_seq the way a reading would.
        Reading(device_id=device_id, seq=start_seq, ts_ms=0, metrics={"x": 0})
        self._device_id = device_id
        self._key = key
        self._domain = domain
        self._next_seq = start_seq
        self._lock = threading.Lock()

    @property
    def device_id(self) -> str:
        return self._device_id

    @property
    def scheme(self) -> Scheme:
        return self._key.scheme

    @property
    def key(self) -> DeviceKey:
        return self._key

    @property
    def domain(self) -> Domain:
        return self._domain

    @property
    def next_seq(self) -> int:
        """The ``seq`` the next :meth:`sign` will use."""
        return self._next_seq

    def sign(
        self,
        metrics: Mapping[str, int | float],
        *,
        ts_ms: int | None = None,
        lot_id: str | None = None,
    ) -> Submission:
        """Sign one reading with the next ``seq``; ``ts_ms`` defaults to now.

        The sequence number is consumed only when the reading is valid.
        """
        if ts_ms is None:
            ts_ms = time.time_ns() // 1_000_000
        with self._lock:
            reading = Reading(
                device_id=self._device_id,
                seq=self._next_seq,
                ts_ms=ts_ms,
                lot_id=lot_id,
                metrics=dict(metrics),
            )
            self._next_seq += 1
        digest = reading_digest(reading, self._domain)
        return Submission(
            reading=reading,
            scheme=self._key.scheme,
            signature=sign_digest(self._key, digest),
            digest=digest,
        )

    def request_headers(self, method: str, path: str, body: bytes = b"") -> dict[str, str]:
        """Headers that sign a request to the ledger as this device (its own receipts and proofs:
        ``GET /v1/readings/{digest}``, ``.../proof``, ``GET /v1/devices/{id}/readings``); ``path``
        with its query string. Fresh timestamp and nonce each call: a replay is refused."""
        return sign_device_request(
            self._key, device_id=self._device_id, domain=self._domain, method=method, path=path, body=body
        )

    def __repr__(self) -> str:
        return (
            f"DeviceSigner(device_id={self._device_id!r}, scheme={self.scheme.value!r}, "
            f"next_seq={self._next_seq})"
        )
