"""A batch's Merkle tree as the store keeps it: the node array, concatenated (root first)."""

from __future__ import annotations

from contracts.errors import ContractsError
from device_attestation.merkle import MerkleTree

__all__ = ["build_encoded_tree", "decode_tree", "encode_tree"]


def encode_tree(tree: MerkleTree) -> bytes:
    """The node array, concatenated (root first)."""
    return b"".join(tree.tree)


def build_encoded_tree(digests: list[bytes]) -> tuple[bytes, bytes]:
    """A batch's (root, encoded node array): what closing a batch stores. Picklable, for worker processes."""
    tree = MerkleTree.build(digests)
    return tree.root, encode_tree(tree)


def decode_tree(blob: bytes, digests: list[bytes]) -> MerkleTree:
    """Rebuild a stored batch's tree (checked against the stored nodes)."""
    tree = MerkleTree.build(digests)
    if encode_tree(tree) != blob:
        raise ContractsError("stored batch tree does not match its readings: the store is corrupt")
    return tree
