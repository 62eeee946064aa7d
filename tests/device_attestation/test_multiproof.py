"""Multiproofs: a literal transcription of ``getMultiProof``, the vectors, tamperings, properties,
and the real ``@openzeppelin/merkle-tree`` (node) producing byte-identical multiproofs."""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from device_attestation import MerkleError, MerkleTree, ProofMismatch, leaf_hash
from device_attestation._internal.keccak import keccak256_reference as keccak
from device_attestation.merkle import MultiProof, process_multiproof, verify_multiproof

REPO = Path(__file__).resolve().parents[2]


def h(hex_text: str) -> bytes:
    return bytes.fromhex(hex_text.removeprefix("0x"))


# --- a slow reference, transcribed from @openzeppelin/merkle-tree's core.js ------------


def reference_multiproof(tree: list[bytes], indices: list[int]) -> tuple[list[int], list[bytes], list[bool]]:
    """``getMultiProof(tree, indices)`` line by line: (leaf indices in order, proof, proofFlags)."""
    indices = sorted(indices, reverse=True)
    assert all(a != b for a, b in pairwise(indices))
    stack = list(indices)
    proof: list[bytes] = []
    flags: list[bool] = []
    while stack and stack[0] > 0:
        j = stack.pop(0)
        s = j - (-1) ** (j % 2)
        p = (j - 1) // 2
        if stack and s == stack[0]:
            flags.append(True)
            stack.pop(0)
        else:
            flags.append(False)
            proof.append(tree[s])
        stack.append(p)
    if not indices:
        proof.append(tree[0])
    return indices, proof, flags


def reference_process(leaves: list[bytes], proof: list[bytes], flags: list[bool]) -> bytes:
    """OpenZeppelin ``MerkleProof.processMultiProof``, with its two array pointers."""
    assert len(leaves) + len(proof) == len(flags) + 1
    if not flags:
        return leaves[0] if leaves else proof[0]
    hashes: list[bytes] = [b""] * len(flags)
    leaf_pos = hash_pos = proof_pos = 0
    for i, flag in enumerate(flags):
        if leaf_pos < len(leaves):
            a = leaves[leaf_pos]
            leaf_pos += 1
        else:
            a = hashes[hash_pos]
            hash_pos += 1
        if flag:
            if leaf_pos < len(leaves):
                b = leaves[leaf_pos]
                leaf_pos += 1
            else:
                b = hashes[hash_pos]
                hash_pos += 1
        else:
            b = proof[proof_pos]
            proof_pos += 1
        x, y = sorted([a, b])
        hashes[i] = keccak(x + y)
    assert proof_pos == len(proof)
    return hashes[-1]


def check_against_reference(digests: list[bytes], subset: list[bytes]) -> MultiProof:
    tree = MerkleTree.build(digests)
    mp = tree.multiproof(subset)
    indices, proof, flags = reference_multiproof(list(tree.tree), [tree.leaf_index(d) for d in subset])
    assert [tree.leaf_index(d) for d in mp.leaves] == indices
    assert list(mp.proof) == proof
    assert list(mp.proof_flags) == flags
    if subset:
        verify_multiproof(leaves=mp.leaves, proof=mp.proof, proof_flags=mp.proof_flags, root=tree.root)
        assert reference_process(list(mp.leaf_hashes), proof, flags) == tree.root
    return mp


# --- the vectors ------------------------------------------------------------------


def vector_digests(vectors: dict[str, Any]) -> list[bytes]:
    return [h(r["digest"]) for r in vectors["readings"]]


def test_vector_batch_every_subset(vectors: dict[str, Any]) -> None:
    digests = vector_digests(vectors)
    root = h(vectors["batch_root"])
    for mask in range(1, 1 << len(digests)):
        subset = [d for i, d in enumerate(digests) if mask >> i & 1]
        mp = check_against_reference(digests, subset)
        assert sorted(mp.leaves) == sorted(subset)
        verify_multiproof(leaves=mp.leaves, proof=mp.proof, proof_flags=mp.proof_flags, root=root)


def test_whole_batch_needs_no_proof_nodes(vectors: dict[str, Any]) -> None:
    digests = vector_digests(vectors)
    mp = MerkleTree.build(digests).multiproof(digests)
    assert mp.proof == ()
    assert mp.proof_flags == (True,) * (len(digests) - 1)


def test_one_digest_is_the_single_proof(vectors: dict[str, Any]) -> None:
    digests = vector_digests(vectors)
    tree = MerkleTree.build(digests)
    for d in digests:
        mp = tree.multiproof([d])
        assert mp.leaves == (d,)
        assert list(mp.proof) == tree.proof(d)
        assert mp.proof_flags == (False,) * len(mp.proof)


def test_leaves_come_in_ascending_leaf_hash_order(vectors: dict[str, Any]) -> None:
    digests = vector_digests(vectors)
    mp = MerkleTree.build(digests).multiproof(reversed(digests))
    assert list(mp.leaf_hashes) == sorted(leaf_hash(d) for d in digests)


def test_single_digest_tree() -> None:
    d = bytes(range(32))
    tree = MerkleTree.build([d])
    mp = tree.multiproof([d])
    assert mp == MultiProof(leaves=(d,), proof=(), proof_flags=())
    verify_multiproof(leaves=[d], proof=[], proof_flags=[], root=tree.root)


def test_json_form(vectors: dict[str, Any]) -> None:
    digests = vector_digests(vectors)
    mp = MerkleTree.build(digests).multiproof(digests[:2])
    obj = mp.to_json_obj()
    assert set(obj) == {"leaves", "proof", "proofFlags"}
    assert obj["leaves"] == ["0x" + d.hex() for d in mp.leaves]
    assert obj["proofFlags"] == list(mp.proof_flags)


# --- refusals ---------------------------------------------------------------------


def test_duplicate_and_non_member_are_refused(vectors: dict[str, Any]) -> None:
    digests = vector_digests(vectors)
    tree = MerkleTree.build(digests)
    with pytest.raises(MerkleError, match=f"digest 0x{digests[1].hex()} is asked for twice") as caught:
        tree.multiproof([digests[0], digests[1], digests[1]])
    assert caught.value.code == "merkle.duplicate"
    with pytest.raises(MerkleError, match="is not in this batch") as caught:
        tree.multiproof([digests[0], bytes(32)])
    assert caught.value.code == "merkle.not_a_member"


def test_empty_request_matches_the_library_but_does_not_verify(vectors: dict[str, Any]) -> None:
    tree = MerkleTree.build(vector_digests(vectors))
    mp = tree.multiproof([])
    assert mp == MultiProof(leaves=(), proof=(tree.root,), proof_flags=())
    assert process_multiproof([], mp.proof, mp.proof_flags) == tree.root  # what OpenZeppelin accepts
    with pytest.raises(MerkleError, match="proves nothing") as caught:
        verify_multiproof(leaves=[], proof=mp.proof, proof_flags=[], root=tree.root)
    assert caught.value.code == "merkle.empty"


def tampered_multiproofs(
    digests: list[bytes],
) -> tuple[bytes, list[tuple[str, list[bytes], list[bytes], list[bool]]]]:
    tree = MerkleTree.build(digests)
    subset = [digests[0], digests[3], digests[4]]
    mp = tree.multiproof(subset)
    leaves, proof, flags = list(mp.leaves), list(mp.proof), list(mp.proof_flags)
    assert proof, "the case needs proof nodes"
    flipped = bytearray(proof[0])
    flipped[0] ^= 0x80
    outsider = keccak(b"not in the batch")
    i_false = flags.index(False)
    cases = [
        ("flipped proof node", leaves, [bytes(flipped), *proof[1:]], flags),
        ("another digest", [outsider, *leaves[1:]], proof, flags),
        ("leaf hash instead of digest", [leaf_hash(leaves[0]), *leaves[1:]], proof, flags),
        ("leaves reversed", leaves[::-1], proof, flags),
        ("flag flipped", leaves, proof, [*flags[:i_false], True, *flags[i_false + 1 :]]),
    ]
    return tree.root, cases


def test_tampered_multiproofs_fail(vectors: dict[str, Any]) -> None:
    root, cases = tampered_multiproofs(vector_digests(vectors))
    for name, leaves, proof, flags in cases:
        with pytest.raises(MerkleError) as caught:
            verify_multiproof(leaves=leaves, proof=proof, proof_flags=flags, root=root)
        err = caught.value
        if isinstance(err, ProofMismatch):
            assert err.expected == root, name
            assert err.computed != root, name
        else:
            assert err.code == "merkle.bad_multiproof", name


@pytest.mark.parametrize(
    ("leaves", "proof", "flags", "fragment"),
    [
        ([bytes(32)], [bytes(32)], [], r"len\(leaves\) \+ len\(proof\) == len\(proof_flags\) \+ 1"),
        ([bytes(32), bytes(32)], [], [False], "runs out of nodes"),
        ([bytes(32)], [bytes(32), bytes(32)], [False, True], "runs out of nodes"),
    ],
)
def test_malformed_multiproofs(
    leaves: list[bytes], proof: list[bytes], flags: list[bool], fragment: str
) -> None:
    with pytest.raises(MerkleError, match=fragment) as caught:
        process_multiproof(leaves, proof, flags)
    assert caught.value.code == "merkle.bad_multiproof"
    assert not isinstance(caught.value, ProofMismatch)


def test_preconditions_are_checked_first() -> None:
    with pytest.raises(MerkleError, match=r"leaves\[1\] must be 32 bytes, got 3 bytes") as caught:
        verify_multiproof(leaves=[bytes(32), b"abc"], proof=[], proof_flags=[True], root=bytes(32))
    assert caught.value.code == "merkle.bad_node"
    with pytest.raises(MerkleError, match="the root must be 32 bytes"):
        verify_multiproof(leaves=[bytes(32)], proof=[], proof_flags=[], root=b"")
    with pytest.raises(MerkleError, match=r"proof\[0\] must be 32 bytes"):
        process_multiproof([bytes(32)], [b"x"], [False])


# --- properties against the reference -------------------------------------------

digest_sets = st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=120, unique=True)


@settings(max_examples=80, deadline=None)
@given(digests=digest_sets, data=st.data())
def test_multiproof_matches_reference(digests: list[bytes], data: st.DataObject) -> None:
    subset = data.draw(st.lists(st.sampled_from(digests), unique=True))
    mp = check_against_reference(digests, subset)
    assert sorted(mp.leaves) == sorted(subset)


@settings(max_examples=60, deadline=None)
@given(digests=digest_sets.filter(lambda d: len(d) > 2), data=st.data())
def test_any_flipped_bit_fails(digests: list[bytes], data: st.DataObject) -> None:
    tree = MerkleTree.build(digests)
    subset = data.draw(st.lists(st.sampled_from(digests), min_size=1, max_size=len(digests) - 1, unique=True))
    mp = tree.multiproof(subset)
    leaves, proof = list(mp.leaves), list(mp.proof)
    in_proof = bool(proof) and data.draw(st.booleans())
    target = proof if in_proof else leaves
    i = data.draw(st.integers(0, len(target) - 1))
    bit = data.draw(st.integers(0, 255))
    node = bytearray(target[i])
    node[bit // 8] ^= 1 << (bit % 8)
    target[i] = bytes(node)
    with pytest.raises(ProofMismatch):
        verify_multiproof(leaves=leaves, proof=proof, proof_flags=mp.proof_flags, root=tree.root)


@settings(max_examples=60, deadline=None)
@given(digests=digest_sets, outsider=st.binary(min_size=32, max_size=32), data=st.data())
def test_a_non_member_cannot_take_a_members_place(
    digests: list[bytes], outsider: bytes, data: st.DataObject
) -> None:
    assume(outsider not in digests)
    tree = MerkleTree.build(digests)
    subset = data.draw(st.lists(st.sampled_from(digests), min_size=1, unique=True))
    mp = tree.multiproof(subset)
    leaves = list(mp.leaves)
    leaves[data.draw(st.integers(0, len(leaves) - 1))] = outsider
    with pytest.raises(ProofMismatch):
        verify_multiproof(leaves=leaves, proof=mp.proof, proof_flags=mp.proof_flags, root=tree.root)


def test_every_tree_shape_and_many_subsets_up_to_40_leaves() -> None:
    pool = [keccak(i.to_bytes(2, "big")) for i in range(40)]
    rng = random.Random(7)
    for n in range(1, 41):
        digests = pool[:n]
        for _ in range(6):
            k = rng.randint(1, n)
            check_against_reference(digests, rng.sample(digests, k))


# --- the real @openzeppelin/merkle-tree -------------------------------------------

_NODE_SCRIPT = """
const { StandardMerkleTree } = require("@openzeppelin/merkle-tree");
const cases = JSON.parse(require("fs").readFileSync(0, "utf8"));
const out = cases.map(({ digests, subset }) => {
  const tree = StandardMerkleTree.of(digests.map(d => [d]), ["bytes32"]);
  const mp = tree.getMultiProof(subset.map(d => [d]));
  return { root: tree.root, leaves: mp.leaves.map(l => l[0]), proof: mp.proof, proofFlags: mp.proofFlags };
});
process.stdout.write(JSON.stringify(out));
"""

_NODE_VERIFY = """
const { StandardMerkleTree } = require("@openzeppelin/merkle-tree");
const cases = JSON.parse(require("fs").readFileSync(0, "utf8"));
const out = cases.map(({ digests, multiproof }) => {
  const tree = StandardMerkleTree.of(digests.map(d => [d]), ["bytes32"]);
  const { leaves, proof, proofFlags } = multiproof;
  const mp = { leaves: leaves.map(d => [d]), proof, proofFlags };
  try { return tree.verifyMultiProof(mp); } catch (e) { return false; }
});
process.stdout.write(JSON.stringify(out));
"""


def _node() -> str:
    node = shutil.which("node")
    package = REPO / "node_modules" / "@openzeppelin" / "merkle-tree"
    if node is None or not package.is_dir():
        if os.environ.get("CI") == "true":
            pytest.fail("node or node_modules/@openzeppelin/merkle-tree missing under CI")
        pytest.skip("needs node and `npm ci` (node_modules/@openzeppelin/merkle-tree)")
    return node


def _run_node(script: str, payload: object) -> Any:
    result = subprocess.run(
        [_node(), "-e", script],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
        check=True,
    )
    return json.loads(result.stdout)


def _hex(data: bytes) -> str:
    return "0x" + data.hex()


@pytest.mark.node
def test_matches_openzeppelin_get_multi_proof() -> None:
    rng = random.Random(2026)
    cases: list[tuple[list[bytes], list[bytes]]] = []
    for n in [1, 2, 3, 5, 6, 7, 8, 13, 16, 17, 31, 50, 64, 100]:
        digests = [keccak(b"reading %d of %d" % (i, n)) for i in range(n)]
        for k in sorted({1, n, max(1, n // 2), rng.randint(1, n), rng.randint(1, n)}):
            cases.append((digests, rng.sample(digests, k)))
    js = _run_node(
        _NODE_SCRIPT,
        [{"digests": [_hex(d) for d in ds], "subset": [_hex(d) for d in sub]} for ds, sub in cases],
    )
    for (digests, subset), got in zip(cases, js, strict=True):
        tree = MerkleTree.build(digests)
        mp = tree.multiproof(subset)
        assert tree.root == h(got["root"])
        assert [_hex(d) for d in mp.leaves] == got["leaves"]
        assert [_hex(p) for p in mp.proof] == got["proof"]
        assert list(mp.proof_flags) == got["proofFlags"]


@pytest.mark.node
def test_openzeppelin_verifies_ours_and_refuses_tampered(vectors: dict[str, Any]) -> None:
    digests = vector_digests(vectors)
    tree = MerkleTree.build(digests)
    good = [tree.multiproof(digests[:k]) for k in range(1, len(digests) + 1)]
    _, tampered = tampered_multiproofs(digests)
    payload = [{"digests": [_hex(d) for d in digests], "multiproof": mp.to_json_obj()} for mp in good]
    payload += [
        {
            "digests": [_hex(d) for d in digests],
            "multiproof": {
                "leaves": [_hex(x) for x in leaves],
                "proof": [_hex(p) for p in proof],
                "proofFlags": flags,
            },
        }
        for _, leaves, proof, flags in tampered
    ]
    verdicts = _run_node(_NODE_VERIFY, payload)
    assert verdicts == [True] * len(good) + [False] * len(tampered)
