"""A consortium member with a full node, reading everything its node holds (issue 14).

Used by tests/contracts/test_credit_sealed.py (a small scenario) and tests/helpers/demo_checks.py (after the
whole demo story). A member reads:

- every block's transactions: their input (calldata) and every log of their receipts
  (:func:`chain_bytes`);
- every storage slot of every account (:func:`all_storage`): on the embedded chain, the whole state
  trie at the head, walked account by account (each account's storage trie, node by node); on anvil,
  ``anvil_dumpState`` (every account with its storage). :func:`storage_values` reads one contract.

It then looks for figures in what it read (:func:`find_leaks`, patterns from :func:`figure_patterns`
and :func:`number_patterns`), and tries to open a credit record's commitment with guessed figures and
every salt derivable from public values (:func:`brute_force`).
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Sequence
from typing import Any

from eth_utils import keccak

from contracts.chain import Chain
from contracts.credit_record import CreditOpening

__all__ = [
    "PD_TABLE_PPM",
    "all_storage",
    "brute_force",
    "chain_bytes",
    "figure_patterns",
    "find_leaks",
    "number_patterns",
    "public_salts",
    "storage_values",
]

#: The master scale's PD band edges in ppm (finance/rating.py), and the midpoints a guesser would try.
PD_TABLE_PPM = (1, 2_500, 5_000, 10_000, 20_000, 40_000, 80_000, 150_000, 250_000, 400_000, 1_000_000)


def _embedded_state(chain: Chain) -> Any:
    return chain.w3.provider.ethereum_tester.backend.chain.get_vm().state  # type: ignore[attr-defined]


def _storage_trie_values(raw_db: Any, root: bytes) -> list[bytes]:
    import rlp
    from trie import HexaryTrie
    from trie.iter import NodeIterator

    trie = HexaryTrie(raw_db, root)
    return [rlp.decode(v).rjust(32, b"\0") for _, v in NodeIterator(trie).items()]


def _anvil_state(chain: Chain) -> dict[str, Any]:
    raw = chain.w3.provider.make_request("anvil_dumpState", [])["result"]  # type: ignore[arg-type]
    state: dict[str, Any] = json.loads(gzip.decompress(bytes.fromhex(raw.removeprefix("0x"))))
    return state


def storage_values(chain: Chain, address: str) -> list[bytes]:
    """Every non-zero storage value of the contract at ``address``, as 32-byte words: the state trie of
    the embedded chain, ``anvil_dumpState`` on anvil (what a node operator can read, slot by slot)."""
    if chain.is_embedded:
        from eth_utils import to_canonical_address

        state = _embedded_state(chain)
        accounts = state._account_db
        root = accounts._get_storage_root(to_canonical_address(address))
        return _storage_trie_values(accounts._raw_store_db, root)
    storage = _anvil_state(chain)["accounts"][address.lower()]["storage"]
    return [int(v, 16).to_bytes(32, "big") for v in storage.values()]


def all_storage(chain: Chain, names: dict[str, str] | None = None) -> dict[str, list[bytes]]:
    """Every non-zero storage word of **every** account of the chain's state at its head, by account.

    Embedded: the account trie is walked leaf by leaf (its keys are ``keccak(address)``; an account
    whose address is in ``names`` (address -> name) is labelled with its name, any other by its hashed
    key), and each account's storage trie likewise: the walk is complete, nothing is looked up by a
    guessed slot. Anvil: ``anvil_dumpState`` lists every account with its whole storage.
    """
    labels = {keccak(bytes.fromhex(a.removeprefix("0x"))): n for a, n in (names or {}).items()}
    out: dict[str, list[bytes]] = {}
    if chain.is_embedded:
        import rlp
        from trie import HexaryTrie
        from trie.iter import NodeIterator

        state = _embedded_state(chain)
        accounts = state._account_db
        raw_db = accounts._raw_store_db
        blank = keccak(rlp.encode(b""))
        for key, value in NodeIterator(HexaryTrie(raw_db, state.state_root)).items():
            _nonce, _balance, storage_root, _code_hash = rlp.decode(value)
            if storage_root == blank:
                continue
            label = labels.get(bytes(key), "account keccak 0x" + bytes(key).hex())
            out[label] = _storage_trie_values(raw_db, storage_root)
        return out
    by_address = {a.lower(): n for a, n in (names or {}).items()}
    for address, account in _anvil_state(chain)["accounts"].items():
        words = [int(v, 16).to_bytes(32, "big") for v in (account.get("storage") or {}).values()]
        if words:
            out[by_address.get(address.lower(), address)] = words
    return out


def chain_bytes(chain: Chain, from_block: int) -> list[tuple[str, bytes]]:
    """Every transaction input and every log (topics and data) of every block from ``from_block``."""
    out: list[tuple[str, bytes]] = []
    for n in range(from_block, chain.block_number() + 1):
        block = chain.w3.eth.get_block(n, full_transactions=True)
        txs: list[Any] = list(block["transactions"])
        for tx in txs:
            to = tx.get("to") or "(a deployment)"
            out.append((f"input of {tx['hash'].hex()} to {to}", bytes(tx.get("input", tx.get("data", b"")))))
            for log in chain.w3.eth.get_transaction_receipt(tx["hash"])["logs"]:
                topics = b"".join(bytes(t) for t in log["topics"])
                where = f"log {log['logIndex']} of {tx['hash'].hex()} from {log['address']}"
                out.append((where, topics + bytes(log["data"])))
    return out


def figure_patterns(o: CreditOpening) -> dict[str, bytes]:
    """How a credit record's figures show when in clear: ABI words, the packed layout of the old record,
    text (and JSON text) as the service writes them. A limit or PD below 1,000 (a zero limit: a grade
    that gets none) has no pattern of its own: such a word or text is everywhere on a chain and would
    say nothing; the commitment's brute force (:func:`brute_force`) covers it."""
    patterns = {
        "currency": b"CNY",
        # the grade as text in its context (a bare 'S5"' is 3 bytes: a chain's random words hold it by chance)
        "grade (json text)": f'"grade":"S{o.grade}"'.encode(),
        "grade (json text, spaced)": f'"grade": "S{o.grade}"'.encode(),
        "grade (a reason's text)": f" -> S{o.grade}:".encode(),
        "grade (json)": f'"grade":{o.grade}'.encode(),
        "reasons": o.reasons[0].encode() if o.reasons else b'"reasons":[',
    }
    if o.limit >= 1_000:
        patterns["limit (abi word)"] = o.limit.to_bytes(32, "big")
        patterns["limit (text)"] = str(o.limit).encode()
    if o.pd_ppm >= 1_000:
        patterns["pd_ppm (abi word)"] = o.pd_ppm.to_bytes(32, "big")
    if o.pd_ppm >= _PACKED_MIN:
        patterns["pd_ppm (uint32)"] = o.pd_ppm.to_bytes(4, "big")
        patterns["pd_ppm (text)"] = str(o.pd_ppm).encode()
    patterns["grade and pd (abi words)"] = o.grade.to_bytes(32, "big") + o.pd_ppm.to_bytes(32, "big")
    patterns["grade and pd (packed)"] = o.pd_ppm.to_bytes(4, "big") + o.grade.to_bytes(1, "big")
    return patterns


def number_patterns(name: str, value: float | int, *, scales: Sequence[int] = (1,)) -> dict[str, bytes]:
    """How a figure ``value`` shows when in clear: for each scale, the scaled integer as an ABI word,
    as a uint64 and a uint32 (packed layouts), and as text; a fraction also as its JSON text (``repr``)
    and with 2 to 6 decimals. A whole number (a count, a quantity) is not scaled. A scaled integer below
    1,000 is left out: such small numbers fill every chain (counters, indices, flags) and would say
    nothing."""
    out: dict[str, bytes] = {}
    whole = float(value).is_integer()
    if whole:  # a count or a quantity: as itself only (a whole 1.0 scaled is any fixed-point "one")
        value, scales = int(value), (1,)
    for scale in scales:
        n = round(value * scale)
        tag = f"{name} x{scale}" if scale != 1 else name
        if abs(n) >= 1_000 and n > 0:
            out[f"{tag} (abi word)"] = n.to_bytes(32, "big")
            # packed: only with 3 significant bytes or more (see _PACKED_MIN)
            if _PACKED_MIN <= n < 2**64:
                out[f"{tag} (uint64)"] = n.to_bytes(8, "big")
            if _PACKED_MIN <= n < 2**32:
                out[f"{tag} (uint32)"] = n.to_bytes(4, "big")
        if abs(n) >= 1_000:
            out[f"{tag} (text)"] = str(n).encode()
    if not whole:
        out[f"{name} (json)"] = json.dumps(value).encode()
        for d in range(2, 7):
            text = f"{value:.{d}f}"
            if len(text.strip("-0.")) >= 3:  # "0.83" alone would match any text that says 0.83
                out[f"{name} ({d} decimals)"] = text.encode()
    return out


def find_leaks(
    patterns: dict[str, dict[str, bytes]], seen: Iterable[tuple[str, bytes]]
) -> list[tuple[str, str, str]]:
    """Every (owner, pattern name, where) such that a pattern of ``patterns`` (owner -> name -> bytes)
    occurs in a piece of what the node holds (``seen``: where -> bytes). An ``(abi word)`` pattern counts
    only on a word boundary of ABI data: from the start (a log's topics and data), after a 4-byte selector
    (a call's input), or from the end (a constructor's arguments after its code). Anywhere else, a
    small number's 30 zero bytes and its last 2 are a zero word's tail followed by the first 2 bytes of a
    random word (a key, a hash) once in 65,536 such pairs: the scan found "figures" that way. Nor does a
    word that reads as an ABI offset into the same data (:func:`_offset_like`)."""
    seen = list(seen)
    return [
        (owner, name, where)
        for owner, named in patterns.items()
        for name, pattern in named.items()
        for where, data in seen
        if _occurs(pattern, data, aligned="(abi word" in name)
    ]


#: A packed (uint64, uint32) pattern needs 3 significant bytes: with 2, its leading zeros and last two
#: bytes turn up by chance where a zero word meets a random one (see :func:`find_leaks`); such a number is
#: still looked for as an aligned ABI word and as text.
_PACKED_MIN = 1 << 16


def _occurs(pattern: bytes, data: bytes, *, aligned: bool) -> bool:
    if not aligned:
        return pattern in data
    if len(pattern) == 32 and _offset_like(int.from_bytes(pattern, "big"), data):
        return False
    at = data.find(pattern)
    while at >= 0:
        if at % 32 == 0 or (at - 4) % 32 == 0 or (len(data) - at) % 32 == 0:
            return True
        at = data.find(pattern, at + 1)
    return False


def _offset_like(value: int, data: bytes) -> bool:
    """Whether one ABI word of ``value`` reads as an offset into ``data``: a multiple of 32 within its
    length. ABI encoding writes such words for every dynamic value (a certification's evidence array of
    structs holds hundreds: 6848, 7296, 7680, 8128, ...), so a figure equal to one (rub-c's OEE of
    0.8128, as 8128 x 10^-4, on one day's demo data) is not told apart from the encoding itself."""
    return value % 32 == 0 and 0 < value < len(data)


def public_salts(o: CreditOpening, tx_hash: bytes | None = None) -> list[bytes]:
    """Every salt a member could derive from the record's public values: none (zero), the analytics
    commitment, the model version, the commitment itself, the publishing transaction's hash, the
    factory and ``validUntil``, each raw and hashed."""
    public = [o.analytics_commitment, o.model_version, o.commitment()]
    if tx_hash is not None:
        public.append(tx_hash)
    factory = bytes.fromhex(o.factory.removeprefix("0x"))
    salts = [bytes(32), *public, *(keccak(p) for p in public), keccak(factory), factory.rjust(32, b"\0")]
    salts.append(o.valid_until.to_bytes(32, "big"))
    return salts


def brute_force(
    o: CreditOpening, salts: Sequence[bytes], limits: Sequence[int], pds: Sequence[int] = PD_TABLE_PPM
) -> list[tuple[int, int, int]]:
    """Every (grade 1..10, pd_ppm of ``pds`` and the true one, limit of ``limits``) whose record, with
    one of ``salts`` and the public fields (the true currency and reasons given, as the best-informed
    guesser would have them), gives the record's commitment ``o.commitment()``.

    A guess is the record's ABI encoding (:func:`contracts.credit_record.record_commitment`: eleven
    words) with its grade, PD, limit and salt words replaced, hashed: the same preimage as
    ``dataclasses.replace(o, ...).commitment()`` at a few microseconds a guess instead of about a
    hundred (the demo's scan tries some 30,000). The encoding is checked against ``o.commitment()``
    first, so a change of the record's layout fails here instead of making every guess miss."""
    pd_table = sorted({o.pd_ppm, *pds})
    target = o.commitment()
    words = [bytes(w) for w in _record_words(o)]
    assert keccak(b"".join(words)) == target, "the record's layout changed: update _record_words"
    hits = []
    for salt in salts:
        assert len(salt) == 32
        for grade in range(1, 11):
            for pd in pd_table:
                head = b"".join(words[:2]) + grade.to_bytes(32, "big") + pd.to_bytes(32, "big")
                for limit in limits:
                    guess = head + limit.to_bytes(32, "big") + b"".join(words[5:10]) + salt
                    if keccak(guess) == target:
                        hits.append((grade, pd, limit))
    return hits


_RECORD_TYPES = [
    *("bytes32", "address", "uint8", "uint32", "uint256", "bytes3"),
    *("bytes32", "uint64", "bytes32", "bytes32", "bytes32"),
]


def _record_words(o: CreditOpening) -> list[bytes]:
    """The eleven ABI words of the record's commitment preimage (contracts/credit_record.py's module
    docstring): typehash, factory, grade, pd_ppm, limit, currency, reasons hash, valid_until, model
    version, analytics commitment, salt."""
    from eth_abi import encode
    from eth_utils import to_checksum_address

    from contracts.credit import currency_code
    from contracts.credit_record import RECORD_TYPEHASH

    encoded = encode(
        _RECORD_TYPES,
        [
            RECORD_TYPEHASH,
            to_checksum_address(o.factory),
            o.grade,
            o.pd_ppm,
            o.limit,
            currency_code(o.currency),
            keccak(b"".join(keccak(text=r) for r in o.reasons)),
            o.valid_until,
            o.model_version,
            o.analytics_commitment,
            o.salt,
        ],
    )
    return [encoded[i : i + 32] for i in range(0, len(encoded), 32)]
