"""A batch's Merkle tree as the store keeps it: the node array, concatenated (root first), and each
reading's proof path (its sibling hashes from the leaf up, concatenated) in the reading's row, so that
serving a proof reads that row only (issue 17.3)."""

from __future__ import annotations

from bisect import bisect_left
from typing import NamedTuple

from contracts.errors import ContractsError
from device_attestation.merkle import MerkleTree, leaf_hash

__all__ = [
    "EncodedTree",
    "build_encoded_tree",
    "decode_tree",
    "encode_tree",
    "path_from_nodes",
    "split_path",
]

NODE = 32


class EncodedTree(NamedTuple):
    """What closing a batch stores: the root, the node array (root first) and, for each digest in the
    order given, its proof path (the sibling hashes from the leaf up, concatenated)."""

    root: bytes
    nodes: bytes
    paths: list[bytes]


def encode_tree(tree: MerkleTree) -> bytes:
    """The node array, concatenated (root first)."""
    return b"".join(tree.tree)


def build_encoded_tree(digests: list[bytes]) -> EncodedTree:
    """A batch's root, encoded node array and proof paths. Picklable, for worker processes."""
    tree = MerkleTree.build(digests)
    return EncodedTree(tree.root, encode_tree(tree), [b"".join(tree.proof(d)) for d in digests])


def split_path(path: bytes) -> list[bytes]:
    """A stored proof path as the list of its 32-byte sibling hashes."""
    if len(path) % NODE:
        raise ContractsError(
            "a stored proof path is not a whole number of 32-byte nodes: the store is corrupt"
        )
    return [path[i : i + NODE] for i in range(0, len(path), NODE)]


def path_from_nodes(nodes: bytes, digest: bytes) -> bytes:
    """``digest``'s proof path, read from a batch's stored node array (for readings batched before
    paths were stored): its leaf is found by bisection among the sorted leaves, nothing is rebuilt.
    Raises :class:`ContractsError` when the digest's leaf is not in the array."""
    size = len(nodes) // NODE
    if size == 0 or len(nodes) % NODE:
        raise ContractsError(
            "a stored batch tree is not a whole number of 32-byte nodes: the store is corrupt"
        )
    n = (size + 1) // 2
    leaf = leaf_hash(digest)
    leaves = _Leaves(nodes, size, n)  # ascending: sorted_leaves[i] = tree[size - 1 - i]
    rank = bisect_left(leaves, leaf)
    if rank >= n or leaves[rank] != leaf:
        raise ContractsError(
            f"reading 0x{digest.hex()} is not in its batch's stored tree: the store is corrupt"
        )
    i = size - 1 - rank
    out = []
    while i > 0:
        s = i + 1 if i % 2 else i - 1
        out.append(nodes[s * NODE : (s + 1) * NODE])
        i = (i - 1) // 2
    return b"".join(out)


class _Leaves:
    """The leaves of a node array in ascending order, as a sequence (for :func:`bisect_left`)."""

    def __init__(self, nodes: bytes, size: int, n: int) -> None:
        self.nodes, self.size, self.n = nodes, size, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> bytes:
        j = self.size - 1 - i
        return self.nodes[j * NODE : (j + 1) * NODE]


def decode_tree(blob: bytes, digests: list[bytes]) -> MerkleTree:
    """Rebuild a stored batch's tree (checked against the stored nodes)."""
    tree = MerkleTree.build(digests)
    if encode_tree(tree) != blob:
        raise ContractsError("stored batch tree does not match its readings: the store is corrupt")
    return tree
