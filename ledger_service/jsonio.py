"""Decoding submission bodies exactly as the device encoded them."""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

#: A JSON number token of 19 or more digits (outside a string): orjson may not keep it exact.
_BIG_NUMBER = re.compile(rb"[:\[,]\s*-?\d{19,}")


class BodyDecodeError(ValueError):
    """The body is not valid JSON (or not UTF-8)."""


def loads_exact(body: bytes | str) -> Any:
    """Decode JSON fast (orjson) unless a number too large for 64 bits appears.

    Reading v1 metric values may be integers far beyond 64 bits; the device signed the exact
    integer, so such bodies are decoded with the standard library, which keeps it exact.
    """
    if isinstance(body, str):
        body = body.encode()
    try:
        if _BIG_NUMBER.search(body):
            return json.loads(body)
        return orjson.loads(body)
    except (orjson.JSONDecodeError, json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise BodyDecodeError(str(e)) from e


def dumps_exact(obj: Any) -> bytes:
    """Encode JSON fast (orjson), falling back to the standard library for integers beyond 64 bits."""
    try:
        return orjson.dumps(obj)
    except TypeError:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
