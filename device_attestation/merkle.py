"""Batch Merkle trees, exactly as ``@openzeppelin/merkle-tree`` builds them.

A batch's tree is ``StandardMerkleTree.of(digests.map(d => [d]), ["bytes32"])``
(spec section 5):

* leaf = ``keccak256(keccak256(abi.encode(bytes32 digest)))``, which for a
  32-byte digest is ``keccak256(keccak256(digest))``;
* leaves sorted ascending by their bytes;
* a complete binary tree in an array of ``2n - 1`` nodes, leaves at the end in
  reverse order (``tree[len - 1 - i] = sorted_leaves[i]``), and
  ``tree[i] = keccak256(sort(tree[2i + 1], tree[2i + 2]))``;
* a proof is the list of siblings from the leaf up, which OpenZeppelin
  ``MerkleProof.verify(proof, root, leaf)`` accepts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from ._internal.hexutil import hex0x, parse_hex
from ._internal.keccak import keccak256
from .errors import MerkleError, ProofMismatch

__all__ = ["MerkleTree", "hash_pair", "leaf_hash", "process_proof", "verify_inclusion"]

_FORMAT: Final = "standard-v1"
_LEAF_ENCODING: Final = ("bytes32",)


def _require_node(value: object, what: str) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview) and len(value) == 32:
        return bytes(value)
    size = (
        f"{len(value)} bytes"
        if isinstance(value, bytes | bytearray | memoryview)
        else f"a {type(value).__name__}"
    )
    raise MerkleError(f"{what} must be 32 bytes, got {size}", code="merkle.bad_node")


def leaf_hash(digest: bytes) -> bytes:
    """The tree leaf of a reading digest: ``keccak256(keccak256(digest))``."""
    digest = _require_node(digest, "a digest")
    return keccak256(keccak256(digest))


def hash_pair(a: bytes, b: bytes) -> bytes:
    """``keccak256`` of the two 32-byte nodes concatenated, smaller first."""
    return keccak256(a + b if a < b else b + a)


def process_proof(leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root that ``proof`` leads to from ``leaf`` (OpenZeppelin ``MerkleProof.processProof``).

    ``leaf`` is a leaf hash (see :func:`leaf_hash`), not a digest.
    """
    computed = _require_node(leaf, "the leaf")
    for i, sibling in enumerate(proof):
        node = _require_node(sibling, f"proof[{i}]")
        computed = keccak256(computed + node if computed < node else node + computed)
    return computed


def verify_inclusion(*, digest: bytes, proof: Sequence[bytes], root: bytes) -> None:
    """Check that ``digest`` is in the batch whose tree has ``root``; ``None`` or raise.

    Preconditions (checked first, :class:`MerkleError` when violated):
    ``digest`` and ``root`` are 32 bytes each, and so is every element of
    ``proof`` (which may be empty: a one-reading batch's root is its leaf).

    Raises :class:`ProofMismatch`, carrying the expected and the computed root,
    when the proof leads elsewhere.
    """
    digest = _require_node(digest, "the digest")
    root = _require_node(root, "the root")
    nodes = [_require_node(p, f"proof[{i}]") for i, p in enumerate(proof)]
    computed = process_proof(keccak256(keccak256(digest)), nodes)
    if computed != root:
        raise ProofMismatch(expected=root, computed=computed)


@dataclass(frozen=True, slots=True, repr=False)
class MerkleTree:
    """An immutable batch tree; build it with :meth:`MerkleTree.build`.

    ``tree`` is the node array (root first), ``digests`` the batch in the
    order it was given.
    """

    tree: tuple[bytes, ...]
    digests: tuple[bytes, ...]
    _index: Mapping[bytes, int] = field(compare=False)

    @classmethod
    def build(cls, digests: Iterable[bytes]) -> MerkleTree:
        """The tree of a batch of distinct 32-byte reading digests.

        Raises :class:`MerkleError` for an empty batch, a digest that is not
        32 bytes, or a digest given twice.
        """
        values = tuple(digests)
        if not values:
            raise MerkleError(
                "cannot build a tree of an empty batch; add at least one digest",
                code="merkle.empty",
            )
        for i, d in enumerate(values):
            if type(d) is not bytes or len(d) != 32:
                values = tuple(_require_node(d, f"digests[{i}]") for i, d in enumerate(values))
                break
        n = len(values)
        if len(set(values)) != n:
            seen: set[bytes] = set()
            dup = b""
            for d in values:
                if d in seen:
                    dup = d
                    break
                seen.add(d)
            raise MerkleError(
                f"digest {hex0x(dup)} appears twice in the batch; a reading is anchored once, "
                "drop the duplicate",
                code="merkle.duplicate",
            )
        k = keccak256
        leaves = [k(k(d)) for d in values]
        order = sorted(range(n), key=leaves.__getitem__)  # value indices by leaf bytes
        size = 2 * n - 1
        nodes: list[bytes] = [b""] * (n - 1)
        nodes.extend(leaves[j] for j in reversed(order))
        for i in range(n - 2, -1, -1):
            a = nodes[2 * i + 1]
            b = nodes[2 * i + 2]
            nodes[i] = k(a + b if a < b else b + a)
        index = {values[j]: size - 1 - rank for rank, j in enumerate(order)}
        return cls(tuple(nodes), values, MappingProxyType(index))

    @property
    def root(self) -> bytes:
        """The root written on chain (32 bytes)."""
        return self.tree[0]

    def __len__(self) -> int:
        return len(self.digests)

    def __contains__(self, digest: object) -> bool:
        return digest in self._index

    def __repr__(self) -> str:
        return f"MerkleTree(root={hex0x(self.root)}, digests={len(self.digests)})"

    def leaf_index(self, digest: bytes) -> int:
        """Index of ``digest``'s leaf in :attr:`tree` (what OpenZeppelin calls ``treeIndex``)."""
        try:
            return self._index[bytes(digest)]
        except (KeyError, TypeError):
            raise MerkleError(
                f"digest {hex0x(bytes(digest)) if isinstance(digest, bytes) else digest!r} "
                "is not in this batch; look up the batch that anchored it",
                code="merkle.not_a_member",
            ) from None

    def proof(self, digest: bytes) -> list[bytes]:
        """Siblings from ``digest``'s leaf up to the root."""
        i = self.leaf_index(digest)
        tree = self.tree
        out = []
        while i > 0:
            out.append(tree[i + 1] if i % 2 else tree[i - 1])
            i = (i - 1) // 2
        return out

    # --- OpenZeppelin's JSON dump format ------------------------------------------

    def dump(self) -> dict[str, Any]:
        """The tree as ``StandardMerkleTree.dump()`` writes it (``standard-v1``)."""
        return {
            "format": _FORMAT,
            "leafEncoding": list(_LEAF_ENCODING),
            "tree": [hex0x(node) for node in self.tree],
            "values": [{"value": [hex0x(d)], "treeIndex": self._index[d]} for d in self.digests],
        }

    @classmethod
    def load(cls, data: Mapping[str, Any]) -> MerkleTree:
        """A tree from :meth:`dump`'s (or OpenZeppelin's) JSON, rebuilt and checked."""
        try:
            if data["format"] != _FORMAT or tuple(data["leafEncoding"]) != _LEAF_ENCODING:
                raise ValueError(
                    f"expected format {_FORMAT!r} with leafEncoding ['bytes32'], got "
                    f"{data['format']!r} / {data['leafEncoding']!r}"
                )
            digests = [parse_hex(v["value"][0], length=32) for v in data["values"]]
            stored = [parse_hex(node, length=32) for node in data["tree"]]
            tree_indices = [int(v["treeIndex"]) for v in data["values"]]
        except (KeyError, IndexError, TypeError, ValueError) as e:
            raise MerkleError(
                f"not a standard-v1 bytes32 Merkle tree dump: {e}", code="merkle.bad_dump"
            ) from e
        tree = cls.build(digests)
        if list(tree.tree) != stored or [tree._index[d] for d in digests] != tree_indices:
            raise MerkleError(
                "the dumped tree does not match a rebuild from its values; the dump is "
                "corrupt or was not built with sorted leaves",
                code="merkle.bad_dump",
            )
        return tree
