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
  ``MerkleProof.verify(proof, root, leaf)`` accepts;
* a multiproof (:meth:`MerkleTree.multiproof`) proves several digests at once,
  exactly as ``getMultiProof`` builds it: the leaves in descending tree index
  (that is, ascending leaf hash), the sibling hashes and the flags that
  OpenZeppelin ``MerkleProof.multiProofVerify(proof, proofFlags, root, leaves)``
  accepts.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from types import MappingProxyType
from typing import Any, Final

from ._internal.hexutil import hex0x, parse_hex
from ._internal.keccak import keccak256
from .errors import MerkleError, ProofMismatch

__all__ = [
    "MerkleTree",
    "MultiProof",
    "hash_pair",
    "leaf_hash",
    "process_multiproof",
    "process_proof",
    "verify_inclusion",
    "verify_multiproof",
]

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


@dataclass(frozen=True, kw_only=True, slots=True)
class MultiProof:
    """A proof that several digests are in one batch (``getMultiProof``'s result).

    ``leaves`` are the proven *digests* (the values, as ``getMultiProof``
    returns them), in the order OpenZeppelin's ``multiProofVerify`` consumes
    their leaf hashes: descending tree index, which is ascending leaf hash.
    ``proof`` holds the sibling hashes the leaves cannot supply themselves and
    ``proof_flags`` tells, step by step, whether the second operand comes from
    the leaves/computed hashes (``True``) or from ``proof`` (``False``).
    """

    leaves: tuple[bytes, ...]
    proof: tuple[bytes, ...]
    proof_flags: tuple[bool, ...]

    @property
    def leaf_hashes(self) -> tuple[bytes, ...]:
        """``leaf_hash`` of each of :attr:`leaves`: the ``leaves`` argument of ``multiProofVerify``."""
        return tuple(leaf_hash(d) for d in self.leaves)

    def to_json_obj(self) -> dict[str, Any]:
        """``leaves``, ``proof``, ``proofFlags`` as ``getMultiProof`` returns them (leaves: bare digests)."""
        return {
            "leaves": [hex0x(d) for d in self.leaves],
            "proof": [hex0x(p) for p in self.proof],
            "proofFlags": list(self.proof_flags),
        }


def process_multiproof(leaves: Sequence[bytes], proof: Sequence[bytes], proof_flags: Sequence[bool]) -> bytes:
    """The root a multiproof leads to (OpenZeppelin ``MerkleProof.processMultiProof``).

    ``leaves`` are leaf hashes (see :func:`leaf_hash`), not digests. Raises
    :class:`MerkleError` (code ``merkle.bad_multiproof``) when the counts do
    not fit together (``len(leaves) + len(proof) != len(proof_flags) + 1``),
    when the flags ask for more nodes than there are, or when part of
    ``proof`` is left unused: the cases where the contract reverts with
    ``MerkleProofInvalidMultiproof``.
    """
    nodes = [_require_node(leaf, f"leaves[{i}]") for i, leaf in enumerate(leaves)]
    siblings = [_require_node(p, f"proof[{i}]") for i, p in enumerate(proof)]
    flags = list(proof_flags)
    if len(nodes) + len(siblings) != len(flags) + 1:
        raise MerkleError(
            f"a multiproof needs len(leaves) + len(proof) == len(proof_flags) + 1, got "
            f"{len(nodes)} + {len(siblings)} and {len(flags)} flags; rebuild it with MerkleTree.multiproof",
            code="merkle.bad_multiproof",
        )
    if not flags:
        return nodes[0] if nodes else siblings[0]
    queue = deque(nodes)
    pending = deque(siblings)
    computed = b""
    for step, flag in enumerate(flags):
        if not queue or (not flag and not pending) or (flag and len(queue) < 2):
            raise MerkleError(
                f"multiproof step {step} runs out of nodes; the flags do not match the proof",
                code="merkle.bad_multiproof",
            )
        a = queue.popleft()
        b = queue.popleft() if flag else pending.popleft()
        computed = keccak256(a + b if a < b else b + a)
        queue.append(computed)
    if pending:
        raise MerkleError(
            f"{len(pending)} proof node(s) left unused; the flags do not match the proof",
            code="merkle.bad_multiproof",
        )
    return computed


def verify_multiproof(
    *, leaves: Sequence[bytes], proof: Sequence[bytes], proof_flags: Sequence[bool], root: bytes
) -> None:
    """Check that the digests ``leaves`` are all in the batch with ``root``; ``None`` or raise.

    ``leaves`` are *digests* in the order of :attr:`MultiProof.leaves`.

    Preconditions (checked first, :class:`MerkleError` when violated): at least
    one digest (OpenZeppelin would accept an empty set whose "proof" is the root
    itself: it proves nothing, so it is refused here), every node 32 bytes, and
    the counts of a well-formed multiproof (see :func:`process_multiproof`).

    Raises :class:`ProofMismatch`, carrying the expected and the computed root,
    when the multiproof leads elsewhere (a digest not in the batch, a tampered
    node or flag, or the leaves out of order).
    """
    if not leaves:
        raise MerkleError(
            "a multiproof of no digest proves nothing; give at least one digest",
            code="merkle.empty",
        )
    root = _require_node(root, "the root")
    hashes = [leaf_hash(_require_node(d, f"leaves[{i}]")) for i, d in enumerate(leaves)]
    computed = process_multiproof(hashes, proof, proof_flags)
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

    def multiproof(self, digests: Iterable[bytes]) -> MultiProof:
        """One proof for several digests of this batch, exactly as ``getMultiProof`` builds it.

        The order of ``digests`` does not matter: the result lists them in the
        order ``multiProofVerify`` needs (descending tree index). Raises
        :class:`MerkleError` for a digest not in the batch or given twice. An
        empty request gives what the JavaScript library gives (no leaves, the
        root as the only proof node), which :func:`verify_multiproof` refuses.
        """
        wanted = sorted(((self.leaf_index(d), bytes(d)) for d in digests), reverse=True)
        for (a, digest), (b, _) in pairwise(wanted):
            if a == b:
                raise MerkleError(
                    f"digest {hex0x(digest)} is asked for twice; a multiproof proves each "
                    "digest once, drop the duplicate",
                    code="merkle.duplicate",
                )
        indices = [i for i, _ in wanted]
        tree = self.tree
        stack = deque(indices)
        proof: list[bytes] = []
        flags: list[bool] = []
        while stack and stack[0] > 0:
            j = stack.popleft()
            s = j - 1 if j % 2 == 0 else j + 1  # the sibling
            if stack and stack[0] == s:
                flags.append(True)
                stack.popleft()
            else:
                flags.append(False)
                proof.append(tree[s])
            stack.append((j - 1) // 2)
        if not indices:
            proof.append(tree[0])
        return MultiProof(leaves=tuple(d for _, d in wanted), proof=tuple(proof), proof_flags=tuple(flags))

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
