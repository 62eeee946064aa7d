"""Batch Merkle trees: vectors, tampered proofs, a slow reference, properties."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from device_attestation import (
    MerkleError,
    MerkleTree,
    ProofMismatch,
    hash_pair,
    leaf_hash,
    process_proof,
    verify_inclusion,
)
from device_attestation._internal.keccak import keccak256_reference as keccak

REPO = Path(__file__).resolve().parents[2]


def h(hex_text: str) -> bytes:
    return bytes.fromhex(hex_text.removeprefix("0x"))


# --- a slow reference, written from the library's description ----------------------


class ReferenceTree:
    """OpenZeppelin StandardMerkleTree for ["bytes32"] leaves, transcribed literally."""

    def __init__(self, digests: list[bytes]) -> None:
        hashed = [{"value_index": i, "hash": keccak(keccak(d))} for i, d in enumerate(digests)]
        hashed.sort(key=lambda v: v["hash"])  # type: ignore[arg-type,return-value]
        leaves: list[bytes] = [v["hash"] for v in hashed]  # type: ignore[misc]
        tree: list[bytes] = [b""] * (2 * len(leaves) - 1)
        for i, leaf in enumerate(leaves):
            tree[len(tree) - 1 - i] = leaf
        for i in range(len(tree) - 1 - len(leaves), -1, -1):
            a, b = sorted([tree[2 * i + 1], tree[2 * i + 2]])
            tree[i] = keccak(a + b)
        self.tree = tree
        self.tree_index = {
            digests[int(v["value_index"])]: len(tree) - 1 - rank  # type: ignore[call-overload]
            for rank, v in enumerate(hashed)
        }

    def proof(self, digest: bytes) -> list[bytes]:
        i = self.tree_index[digest]
        out = []
        while i > 0:
            sibling = i - (-1) ** (i % 2)
            out.append(self.tree[sibling])
            i = (i - 1) // 2
        return out


def reference_process(leaf: bytes, proof: list[bytes]) -> bytes:
    computed = leaf
    for p in proof:
        a, b = sorted([computed, p])
        computed = keccak(a + b)
    return computed


# --- the vectors ------------------------------------------------------------------


def vector_digests(vectors: dict[str, Any]) -> list[bytes]:
    return [h(r["digest"]) for r in vectors["readings"]]


def test_vector_leaf(reading_vector: dict[str, Any]) -> None:
    assert leaf_hash(h(reading_vector["digest"])) == h(reading_vector["leaf"])


def test_vector_batch_root(vectors: dict[str, Any]) -> None:
    tree = MerkleTree.build(vector_digests(vectors))
    assert tree.root == h(vectors["batch_root"])
    assert len(tree.tree) == 2 * 6 - 1
    assert len(tree) == 6


def test_vector_proof(reading_vector: dict[str, Any], vectors: dict[str, Any]) -> None:
    tree = MerkleTree.build(vector_digests(vectors))
    digest = h(reading_vector["digest"])
    want = [h(p) for p in reading_vector["proof"]]
    assert tree.proof(digest) == want
    verify_inclusion(digest=digest, proof=want, root=h(vectors["batch_root"]))
    assert process_proof(h(reading_vector["leaf"]), want) == h(vectors["batch_root"])


def test_vector_batch_order_does_not_matter(vectors: dict[str, Any]) -> None:
    digests = vector_digests(vectors)
    assert MerkleTree.build(reversed(digests)).root == h(vectors["batch_root"])


# --- tampered proofs --------------------------------------------------------------


def tampered_cases(vectors: dict[str, Any]) -> list[tuple[str, bytes, list[bytes], bytes]]:
    root = h(vectors["batch_root"])
    first = vectors["readings"][0]
    digest = h(first["digest"])
    proof = [h(p) for p in first["proof"]]
    flipped = bytearray(proof[1])
    flipped[31] ^= 1
    other = h(vectors["readings"][1]["digest"])
    return [
        ("flipped sibling", digest, [proof[0], bytes(flipped), proof[2]], root),
        ("dropped sibling", digest, proof[:-1], root),
        ("extra sibling", digest, [*proof, proof[0]], root),
        ("swapped order", digest, [proof[1], proof[0], proof[2]], root),
        ("empty proof", digest, [], root),
        ("wrong root", digest, proof, bytes(32)),
        ("another digest", other, proof, root),
        ("leaf instead of digest", h(first["leaf"]), proof, root),
    ]


def test_tampered_proofs_fail(vectors: dict[str, Any]) -> None:
    for name, digest, proof, root in tampered_cases(vectors):
        with pytest.raises(ProofMismatch, match="inclusion proof does not match") as caught:
            verify_inclusion(digest=digest, proof=proof, root=root)
        err = caught.value
        assert err.expected == root, name
        assert err.computed == process_proof(leaf_hash(digest), proof), name
        assert err.computed != root, name
        assert f"0x{root.hex()}" in err.message
        assert err.code == "merkle.proof_mismatch"


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"digest": bytes(31), "proof": [], "root": bytes(32)}, "the digest must be 32 bytes"),
        ({"digest": bytes(32), "proof": [], "root": bytes(33)}, "the root must be 32 bytes"),
        (
            {"digest": bytes(32), "proof": [bytes(32), bytes(5)], "root": bytes(32)},
            r"proof\[1\] must be 32 bytes, got 5 bytes",
        ),
        (
            {"digest": bytes(32), "proof": ["0x" + "00" * 32], "root": bytes(32)},
            r"proof\[0\] must be 32 bytes, got a str",
        ),
    ],
)
def test_preconditions_are_checked_first(kwargs: dict[str, Any], fragment: str) -> None:
    with pytest.raises(MerkleError, match=fragment) as caught:
        verify_inclusion(**kwargs)
    assert not isinstance(caught.value, ProofMismatch)
    assert caught.value.code == "merkle.bad_node"


# --- building ---------------------------------------------------------------------


def test_single_digest_tree() -> None:
    digest = bytes(range(32))
    tree = MerkleTree.build([digest])
    assert tree.root == leaf_hash(digest)
    assert tree.proof(digest) == []
    verify_inclusion(digest=digest, proof=[], root=tree.root)


def test_empty_batch_is_refused() -> None:
    with pytest.raises(MerkleError, match="empty batch") as caught:
        MerkleTree.build([])
    assert caught.value.code == "merkle.empty"


def test_duplicates_are_refused() -> None:
    a, b = bytes(32), bytes([1]) * 32
    with pytest.raises(MerkleError, match=f"digest 0x{b.hex()} appears twice") as caught:
        MerkleTree.build([a, b, b])
    assert caught.value.code == "merkle.duplicate"


def test_bad_digest_sizes_are_refused() -> None:
    with pytest.raises(MerkleError, match=r"digests\[1\] must be 32 bytes, got 20 bytes"):
        MerkleTree.build([bytes(32), bytes(20)])
    tree = MerkleTree.build([bytes(32), bytearray([1] * 32)])  # type: ignore[list-item]  # bytes-like is fine
    assert bytes([1] * 32) in tree


def test_non_member() -> None:
    tree = MerkleTree.build([bytes(32), bytes([1]) * 32])
    with pytest.raises(MerkleError, match="is not in this batch") as caught:
        tree.proof(bytes([2]) * 32)
    assert caught.value.code == "merkle.not_a_member"


def test_tree_is_immutable() -> None:
    tree = MerkleTree.build([bytes(32), bytes([1]) * 32])
    assert isinstance(tree.tree, tuple)
    with pytest.raises(AttributeError):
        tree.tree = ()  # type: ignore[misc]
    with pytest.raises(TypeError):
        tree._index[bytes(32)] = 5  # type: ignore[index]


def test_dump_and_load(vectors: dict[str, Any]) -> None:
    tree = MerkleTree.build(vector_digests(vectors))
    dumped = json.loads(json.dumps(tree.dump()))
    assert dumped["format"] == "standard-v1"
    assert dumped["leafEncoding"] == ["bytes32"]
    assert dumped["tree"][0] == vectors["batch_root"]
    assert MerkleTree.load(dumped) == tree
    dumped["tree"][3] = "0x" + "00" * 32
    with pytest.raises(MerkleError, match="does not match a rebuild") as caught:
        MerkleTree.load(dumped)
    assert caught.value.code == "merkle.bad_dump"
    with pytest.raises(MerkleError, match="not a standard-v1 bytes32 Merkle tree dump"):
        MerkleTree.load({"format": "standard-v1", "leafEncoding": ["address"]})


def test_hash_pair_is_commutative() -> None:
    a, b = bytes(32), bytes([255]) * 32
    assert hash_pair(a, b) == hash_pair(b, a) == keccak(a + b)


# --- properties against the reference --------------------------------------------

digest_sets = st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=200, unique=True)


@settings(max_examples=60, deadline=None)
@given(digests=digest_sets)
def test_tree_matches_reference(digests: list[bytes]) -> None:
    fast = MerkleTree.build(digests)
    ref = ReferenceTree(digests)
    assert list(fast.tree) == ref.tree
    for d in digests:
        assert fast.leaf_index(d) == ref.tree_index[d]
        proof = fast.proof(d)
        assert proof == ref.proof(d)
        verify_inclusion(digest=d, proof=proof, root=fast.root)
        assert reference_process(keccak(keccak(d)), proof) == fast.root


def test_every_tree_shape_up_to_70_leaves() -> None:
    pool = [keccak(i.to_bytes(2, "big")) for i in range(70)]
    for n in range(1, 71):
        digests = pool[:n]
        fast, ref = MerkleTree.build(digests), ReferenceTree(digests)
        assert list(fast.tree) == ref.tree, n
        for d in digests:
            assert fast.proof(d) == ref.proof(d), n


@settings(max_examples=60, deadline=None)
@given(digests=digest_sets, outsider=st.binary(min_size=32, max_size=32), data=st.data())
def test_non_members_fail(digests: list[bytes], outsider: bytes, data: st.DataObject) -> None:
    assume(outsider not in digests)
    tree = MerkleTree.build(digests)
    member = data.draw(st.sampled_from(digests))
    with pytest.raises(ProofMismatch):
        verify_inclusion(digest=outsider, proof=tree.proof(member), root=tree.root)
    assert outsider not in tree


@settings(max_examples=40, deadline=None)
@given(digests=digest_sets.filter(lambda d: len(d) > 1), data=st.data())
def test_any_flipped_proof_bit_fails(digests: list[bytes], data: st.DataObject) -> None:
    tree = MerkleTree.build(digests)
    member = data.draw(st.sampled_from(digests))
    proof = tree.proof(member)
    i = data.draw(st.integers(0, len(proof) - 1))
    bit = data.draw(st.integers(0, 255))
    node = bytearray(proof[i])
    node[bit // 8] ^= 1 << (bit % 8)
    proof[i] = bytes(node)
    with pytest.raises(ProofMismatch):
        verify_inclusion(digest=member, proof=proof, root=tree.root)


def test_larger_batch() -> None:
    digests = [keccak(i.to_bytes(4, "big")) for i in range(5000)]
    tree = MerkleTree.build(digests)
    for d in digests[::500]:
        verify_inclusion(digest=d, proof=tree.proof(d), root=tree.root)


# --- the real @openzeppelin/merkle-tree -------------------------------------------

_NODE_SCRIPT = """
const { StandardMerkleTree } = require("@openzeppelin/merkle-tree");
const digests = JSON.parse(require("fs").readFileSync(0, "utf8"));
const tree = StandardMerkleTree.of(digests.map(d => [d]), ["bytes32"]);
const proofs = digests.map(d => tree.getProof([d]));
process.stdout.write(JSON.stringify({ root: tree.root, tree: tree.dump().tree, proofs }));
"""


@pytest.mark.node
def test_matches_openzeppelin_merkle_tree_js() -> None:
    node = shutil.which("node")
    package = REPO / "node_modules" / "@openzeppelin" / "merkle-tree"
    if node is None or not package.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail("node or node_modules/@openzeppelin/merkle-tree missing under CI")
        pytest.skip("needs node and `npm ci` (node_modules/@openzeppelin/merkle-tree)")
    digests = [keccak(b"reading %d" % i) for i in range(37)]
    result = subprocess.run(
        [node, "-e", _NODE_SCRIPT],
        input=json.dumps(["0x" + d.hex() for d in digests]),
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=True,
    )
    js = json.loads(result.stdout)
    tree = MerkleTree.build(digests)
    assert tree.root == h(js["root"])
    assert [n.hex() for n in tree.tree] == [n[2:] for n in js["tree"]]
    for d, proof in zip(digests, js["proofs"], strict=True):
        assert tree.proof(d) == [h(p) for p in proof]
    # and OpenZeppelin can load our dump
    load = subprocess.run(
        [
            node,
            "-e",
            'const { StandardMerkleTree } = require("@openzeppelin/merkle-tree");'
            'const t = StandardMerkleTree.load(JSON.parse(require("fs").readFileSync(0, "utf8")));'
            "process.stdout.write(t.root);",
        ],
        input=json.dumps(tree.dump()),
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=True,
    )
    assert load.stdout == "0x" + tree.root.hex()
