"""Decoding JSON strictly and exactly, and encoding it back.

:func:`loads_strict` is the one decoder for bytes that come from outside: request bodies (every JSON
body, by :class:`ledger_service.api.limits.RequestLimitsMiddleware`, before any route or
authentication work) and MQTT payloads. Whatever a digest or a signature depends on is decoded by it,
so a document means one thing to the service and to any other strict parser:

- nesting deeper than :data:`MAX_DEPTH` is refused by a linear scan *before* any recursive parse (the
  standard library's C scanner recurses once per level, and py_ecc, imported by the service, raises
  the recursion limit to 100,000: 150,000 nested ``[`` overflowed the C stack and killed the process).
  The one parse that may come first is orjson's on a body of at most 64 KiB (:func:`_loads_quick`),
  which refuses, rather than overflows, beyond 1,024 levels; the standard library's parse always
  comes after the scan;
- a key repeated in one object is refused (a first-wins parser would show an auditor another value);
- ``NaN``, ``Infinity``, numbers that overflow a double (``1e400``) and integers of more than
  :data:`MAX_INT_DIGITS` digits are refused (Python refuses to convert 4,300+ digits with a bare
  ``ValueError``, and even below that the conversion is quadratic);
- the body must be UTF-8, without unpaired surrogate escapes (``"\\ud800"`` names no character).

Every refusal is one typed error, :class:`BodyDecodeError` (``request.bad_json``, HTTP 400).

Integers stay exact: Reading v1 metric values may exceed 64 bits and the device signed the exact
integer. The fast path is orjson; a document in which orjson had to turn an integer into a float (any
float of magnitude 2**63 or more) is decoded again by the standard library, which keeps it exact.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import orjson

from ledger_service.errors import LedgerError

#: Deepest nesting of arrays and objects accepted. The API's deepest body (a batch of readings) has 4.
MAX_DEPTH = 32
#: Most digits in an integer. Reading v1 values times 10^6 fit int256 (78 digits); a uint256 has 78.
MAX_INT_DIGITS = 100

#: Bytes deleted before the structure scan: everything but quotes, brackets and colons.
_NOT_STRUCTURE = bytes(range(256)).translate(None, b'"[]{}:')
#: The depth scan works on this many structure bytes at a time (bounded memory on a 16 MiB body).
_SCAN_CHUNK = 1 << 22
#: orjson returns a float for an integer beyond 64 bits; any float this large may have been one.
_EXACT_FLOAT_LIMIT = float(2**63)


class BodyDecodeError(LedgerError, ValueError):
    """The body is not strict JSON: malformed, not UTF-8, too deep, a duplicate key, NaN, or a huge number."""

    code = "request.bad_json"

    def __init__(self, message: str) -> None:
        super().__init__(message, code=self.code)


def nesting_depth(body: bytes) -> int:
    """The deepest nesting of arrays and objects in ``body``, outside strings, in linear time.

    Exact for valid JSON; for invalid JSON it agrees with any parser up to the first syntax error, which
    is as far as a parser gets, so a parse of a body whose depth is bounded here recurses no deeper.
    """
    return _scan(body)[0]


def _scan(body: bytes) -> tuple[int, int]:
    """The nesting depth of ``body`` and its colons outside strings (for valid JSON: its object members).

    Vectorised (numpy), a chunk at a time so that memory stays bounded: about 10 ms for a batch of
    10,000 readings (3.4 MB), 0.25 s for 16 MiB of brackets.
    """
    structure = _structure(body, _NOT_STRUCTURE)
    depth = deepest = colons = 0
    in_string = False
    for start in range(0, len(structure), _SCAN_CHUNK):
        a = np.frombuffer(structure, np.uint8, count=min(_SCAN_CHUNK, len(structure) - start), offset=start)
        inside = np.bitwise_xor.accumulate(a == 0x22)  # True from an opening quote to its closing one
        if in_string:
            np.logical_not(inside, out=inside)
        step = (a == 0x5B).astype(np.int8) + (a == 0x7B) - (a == 0x5D) - (a == 0x7D)
        step[inside] = 0
        levels = np.cumsum(step, dtype=np.int32)
        deepest = max(deepest, depth + int(levels.max()))
        depth += int(levels[-1])
        colons += int(np.count_nonzero(a == 0x3A)) - int(np.count_nonzero((a == 0x3A) & inside))
        in_string = bool(inside[-1])
    return deepest, colons


def _structure(body: bytes, delete: bytes) -> bytes:
    """``body`` without escaped backslashes and escaped quotes, and without the bytes in ``delete``.

    Inside a string ``\\\\`` is one escaped backslash and ``\\"`` an escaped quote; dropping both, left to
    right as a parser reads them, leaves quotes that each open or close a string.
    """
    return body.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, delete)


def _reject_constant(name: str) -> Any:
    raise BodyDecodeError(f"{name} is not a JSON number: send a finite number")


def _parse_int(text: str) -> int:
    digits = len(text) - (text[0] == "-")
    if digits > MAX_INT_DIGITS:
        raise BodyDecodeError(
            f"an integer has {digits} digits; at most {MAX_INT_DIGITS} are accepted (int256 has 78)"
        )
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise BodyDecodeError(f"the number {text[:40]!r} overflows a double: send a finite number")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise BodyDecodeError(f"the key {key[:64]!r} appears twice in one object: send each key once")
            seen.add(key)
    return obj


_EXACT = json.JSONDecoder(
    object_pairs_hook=_unique_keys,
    parse_int=_parse_int,
    parse_float=_parse_float,
    parse_constant=_reject_constant,
)


def _shape(obj: Any) -> tuple[int, bool, int]:
    """Keys in every object of ``obj``, whether a float of magnitude 2**63 or more appears, and how many
    levels of arrays and objects it nests. Only arrays and objects go on the walk's stack; the values
    in them are looked at where they are (most of a document is scalars)."""
    t = type(obj)
    if t is not dict and t is not list:
        return 0, t is float and not -_EXACT_FLOAT_LIMIT < obj < _EXACT_FLOAT_LIMIT, 0
    keys = 0
    big = False
    deepest = 0
    stack = [(obj, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        o, depth = pop()
        if type(o) is dict:
            keys += len(o)
            children = o.values()
        else:
            children = o
        if depth > deepest:
            deepest = depth
        for c in children:
            t = type(c)
            if t is dict or t is list:
                push((c, depth + 1))
            elif t is float and not -_EXACT_FLOAT_LIMIT < c < _EXACT_FLOAT_LIMIT:
                big = True
    return keys, big, deepest


#: Bodies up to this size are first decoded by :func:`_loads_quick` (a single reading: ~400 bytes).
_QUICK_BYTES = 64 * 1024
_SLOW = object()


def _loads_quick(raw: bytes, max_depth: int) -> Any:
    """The common case without the structure scan (whose numpy set-up dominates a small body): orjson
    decodes first (it refuses, never overflows, beyond 1,024 levels), one walk of the value counts its
    depth, members and big floats, and the value is returned when it is certainly what the full path
    returns: not too deep, no float that may have been a big integer, and as many colons in the whole
    body as members (colons outside strings are members plus repeated keys, so this rules out a
    repeated key). Anything else, including every refusal, is :data:`_SLOW`: the full path decides,
    with its own messages.
    """
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _SLOW
    if type(value) is dict or type(value) is list:
        members, big, deepest = _shape(value)
        if big or deepest > max_depth or raw.count(b":") != members:
            return _SLOW
    elif type(value) is float and not -_EXACT_FLOAT_LIMIT < value < _EXACT_FLOAT_LIMIT:
        return _SLOW
    return value


def loads_strict(body: bytes | bytearray | memoryview | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """Decode one JSON document from outside, strictly and exactly; raise :class:`BodyDecodeError`.

    See the module's docstring for what is refused and why.
    """
    raw = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else bytes(body)
    if len(raw) <= _QUICK_BYTES:
        quick = _loads_quick(raw, max_depth)
        if quick is not _SLOW:
            return quick
    if raw.count(b"{") + raw.count(b"[") <= 1:  # a scalar or one flat array or object: nothing to scan
        depth, colons = 1, -1
    else:
        depth, colons = _scan(raw)
    if depth > max_depth:
        raise BodyDecodeError(
            f"the JSON nests {depth} levels deep; at most {max_depth} are accepted: flatten the document"
        )
    try:
        value = orjson.loads(raw)  # refuses NaN, Infinity, 1e400, invalid UTF-8 and unpaired surrogates
    except orjson.JSONDecodeError as e:
        raise BodyDecodeError(f"the body is not valid JSON: {e}") from e
    if type(value) is dict or type(value) is list:
        members, big, _ = _shape(value)
        if big or members != colons:
            # an integer orjson could not keep exact, or a repeated key (one flat object is always
            # decoded here: it was not scanned): the standard library decodes it exactly, key by key
            value = _decode_exact(raw)
    elif type(value) is float and not -_EXACT_FLOAT_LIMIT < value < _EXACT_FLOAT_LIMIT:
        value = _decode_exact(raw)
    return value


def _decode_exact(raw: bytes) -> Any:
    """The standard library's decode (exact integers), for a document orjson accepted at a bounded depth."""
    try:
        return _EXACT.decode(raw.decode("utf-8"))
    except BodyDecodeError:
        raise
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError, RecursionError) as e:
        raise BodyDecodeError(f"the body is not valid JSON: {e}") from e


def loads_exact(body: bytes | str) -> Any:
    """Decode JSON the service wrote itself (stored readings): :func:`loads_strict`, same guarantees."""
    return loads_strict(body)


def dumps_exact(obj: Any) -> bytes:
    """Encode JSON fast (orjson), falling back to the standard library for integers beyond 64 bits."""
    try:
        return orjson.dumps(obj)
    except TypeError:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
