"""ReadingAnchor on both chains: the Reading v1 vectors verify on chain, and every revert path."""

from __future__ import annotations

from typing import Any

import pytest
from enrollments import (  # the fixtures harness_anvil, harness_suite
    enroll_without_attestation,
    harness_anvil_fixture,  # noqa: F401
    harness_suite_fixture,  # noqa: F401
)
from eth_abi import encode
from eth_utils import keccak
from support import TestConsortium, b32, load_vectors, reverts

from contracts.registry import ReadingAnchorClient, device_id_hash, verify_reading_on_chain
from device_attestation.merkle import MerkleTree
from device_attestation.reading import reading_struct
from device_attestation.sdk import Submission

V = load_vectors()
P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
CA = keccak(b"test manufacturer CA")
FINGERPRINT = keccak(b"device certificate")


def struct_of(vector: dict[str, Any]) -> tuple[Any, ...]:
    s = vector["struct"]
    return (
        b32(s["deviceId"]),
        s["seq"],
        s["timestamp"],
        b32(s["lotId"]),
        [b32(m) for m in s["metrics"]],
        s["values"],
    )


def device(device_id: str) -> dict[str, Any]:
    return next(d for d in V["devices"] if d["device_id"] == device_id)


def enroll_vectors(suite, *, active_from: int = 0, only: str | None = None) -> None:  # type: ignore[no-untyped-def]
    """Record the vector devices in the test-only harness (public keys only: no proof of possession)."""
    for d in V["devices"]:
        if only and d["device_id"] != only:
            continue
        key: dict[str, Any] = (
            {"x": int(d["public_key_x"], 16), "y": int(d["public_key_y"], 16)}
            if d["scheme"] == "p256"
            else {"address": d["address"]}
        )
        enroll_without_attestation(
            suite.chain,
            suite.deployment,
            suite.accounts[1],
            d["device_id"],
            cert_fingerprint=FINGERPRINT,
            ca_key_hash=CA,
            active_from_ms=active_from,
            **key,
        )


def anchor_vector_batch(suite) -> int:  # type: ignore[no-untyped-def]
    anchor = suite.contract("ReadingAnchor")
    suite.chain.transact(
        anchor.functions.anchorBatch(b32(V["batch_root"]), len(V["readings"])), suite.operator
    )
    return int(suite.chain.call(anchor.functions.batchCount()))


def test_domain_matches_the_vectors(suite) -> None:  # type: ignore[no-untyped-def]
    anchor = suite.contract("ReadingAnchor")
    dom = V["domain"]
    assert suite.deployment.address("ReadingAnchor") == dom["verifyingContract"]
    assert suite.chain.chain_id == dom["chainId"]
    type_hash = keccak(b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")
    expected = keccak(
        encode(
            ["bytes32", "bytes32", "bytes32", "uint256", "address"],
            [
                type_hash,
                keccak(dom["name"].encode()),
                keccak(dom["version"].encode()),
                dom["chainId"],
                dom["verifyingContract"],
            ],
        )
    )
    assert suite.chain.call(anchor.functions.domainSeparator()) == expected


@pytest.mark.parametrize("index", range(len(V["readings"])))
def test_contract_digest_equals_vector(suite, index: int) -> None:  # type: ignore[no-untyped-def]
    vector = V["readings"][index]
    anchor = suite.contract("ReadingAnchor")
    assert suite.chain.call(anchor.functions.digest(struct_of(vector))) == b32(vector["digest"])


def test_every_vector_reading_verifies_on_chain(harness_suite) -> None:  # type: ignore[no-untyped-def]
    suite = harness_suite  # the vector devices: recorded without attestation (test-only registry)
    enroll_vectors(suite)
    batch_id = anchor_vector_batch(suite)
    anchor = suite.contract("ReadingAnchor")
    root, count, anchored_at = suite.chain.call(anchor.functions.batch(batch_id))
    assert (root, count) == (b32(V["batch_root"]), 6)
    assert anchored_at > 0
    assert suite.chain.call(anchor.functions.batchOfRoot(b32(V["batch_root"]))) == batch_id
    for vector in V["readings"]:
        fn = anchor.functions.verifyReading(
            struct_of(vector), b32(vector["signature"]), batch_id, [b32(p) for p in vector["proof"]]
        )
        assert suite.chain.call(fn) == b32(vector["digest"])


def test_anchor_numbers_batches_and_emits(suite) -> None:  # type: ignore[no-untyped-def]
    anchor = suite.contract("ReadingAnchor")
    results = [
        suite.chain.transact(anchor.functions.anchorBatch(keccak(bytes([i])), i + 1), suite.operator)
        for i in range(3)
    ]
    assert suite.chain.call(anchor.functions.batchCount()) == 3
    for i, result in enumerate(results):
        (event,) = anchor.events.BatchAnchored().process_receipt(result.receipt)
        assert event["args"]["batchId"] == i + 1
        assert event["args"]["root"] == keccak(bytes([i]))
        assert event["args"]["count"] == i + 1
        assert event["args"]["by"] == suite.operator.address


# ---------------------------------------------------------------- anchorBatch reverts


def test_anchor_requires_the_anchor_role(suite) -> None:  # type: ignore[no-untyped-def]
    anchor = suite.contract("ReadingAnchor")
    outsider = suite.accounts[5]
    with reverts(
        "AccessControlUnauthorizedAccount", account=outsider.address, neededRole=keccak(b"supet.role.anchor")
    ):
        suite.chain.transact(anchor.functions.anchorBatch(keccak(b"r"), 1), outsider)
    assert suite.chain.call(anchor.functions.batchCount()) == 0


def test_anchor_refuses_zero_root_and_zero_count(suite) -> None:  # type: ignore[no-untyped-def]
    anchor = suite.contract("ReadingAnchor")
    with reverts("ReadingAnchorZeroRoot"):
        suite.chain.transact(anchor.functions.anchorBatch(bytes(32), 1), suite.operator)
    with reverts("ReadingAnchorZeroCount"):
        suite.chain.transact(anchor.functions.anchorBatch(keccak(b"r"), 0), suite.operator)
    assert suite.chain.call(anchor.functions.batchCount()) == 0


def test_anchor_refuses_a_root_twice(suite) -> None:  # type: ignore[no-untyped-def]
    anchor = suite.contract("ReadingAnchor")
    suite.chain.transact(anchor.functions.anchorBatch(keccak(b"r"), 3), suite.operator)
    with reverts("ReadingAnchorRootAlreadyAnchored", root=keccak(b"r"), batchId=1):
        suite.chain.transact(anchor.functions.anchorBatch(keccak(b"r"), 3), suite.operator)
    assert suite.chain.call(anchor.functions.batchCount()) == 1


# ---------------------------------------------------------------- verifyReading reverts


@pytest.mark.parametrize("batch_id", [0, 2])
def test_unknown_batch(suite, batch_id: int) -> None:  # type: ignore[no-untyped-def]
    anchor_vector_batch(suite)
    anchor = suite.contract("ReadingAnchor")
    with reverts("ReadingAnchorUnknownBatch", batchId=batch_id):
        suite.chain.call(anchor.functions.batch(batch_id))
    v = V["readings"][0]
    with reverts("ReadingAnchorUnknownBatch", batchId=batch_id):
        suite.chain.call(
            anchor.functions.verifyReading(
                struct_of(v), b32(v["signature"]), batch_id, [b32(p) for p in v["proof"]]
            )
        )


def test_length_mismatch(suite) -> None:  # type: ignore[no-untyped-def]
    anchor = suite.contract("ReadingAnchor")
    s = list(struct_of(V["readings"][0]))
    s[5] = s[5][:2]
    with reverts("ReadingAnchorLengthMismatch", metrics=3, values=2):
        suite.chain.call(anchor.functions.digest(tuple(s)))


def test_tampered_proof_or_reading_is_not_included(harness_suite) -> None:  # type: ignore[no-untyped-def]
    suite = harness_suite  # the vector devices: recorded without attestation (test-only registry)
    enroll_vectors(suite)
    batch_id = anchor_vector_batch(suite)
    anchor = suite.contract("ReadingAnchor")
    v = V["readings"][0]
    proof = [b32(p) for p in v["proof"]]
    bad_proof = [proof[0][:-1] + bytes([proof[0][-1] ^ 1]), *proof[1:]]
    with reverts("ReadingAnchorNotIncluded", digest=b32(v["digest"]), batchId=batch_id):
        suite.chain.call(
            anchor.functions.verifyReading(struct_of(v), b32(v["signature"]), batch_id, bad_proof)
        )
    with reverts("ReadingAnchorNotIncluded", digest=b32(v["digest"]), batchId=batch_id):
        suite.chain.call(
            anchor.functions.verifyReading(struct_of(v), b32(v["signature"]), batch_id, proof[:-1])
        )
    s = list(struct_of(v))
    s[5] = [s[5][0] + 1, *s[5][1:]]  # a lying value changes the digest: not in the batch
    with reverts("ReadingAnchorNotIncluded", batchId=batch_id):
        suite.chain.call(anchor.functions.verifyReading(tuple(s), b32(v["signature"]), batch_id, proof))


def test_unknown_device(harness_suite) -> None:  # type: ignore[no-untyped-def]
    suite = harness_suite  # the vector devices: recorded without attestation (test-only registry)
    enroll_vectors(suite, only="SN-P256-0001")
    batch_id = anchor_vector_batch(suite)
    anchor = suite.contract("ReadingAnchor")
    v = next(r for r in V["readings"] if r["scheme"] == "secp256k1")
    with reverts("ReadingAnchorUnknownDevice", deviceId=b32(v["struct"]["deviceId"])):
        suite.chain.call(
            anchor.functions.verifyReading(
                struct_of(v), b32(v["signature"]), batch_id, [b32(p) for p in v["proof"]]
            )
        )


def test_device_not_active_before_enrollment_time_or_after_revocation(harness_suite) -> None:  # type: ignore[no-untyped-def]
    suite = harness_suite  # the vector devices: recorded without attestation (test-only registry)
    first_ts = V["readings"][0]["reading"]["ts_ms"]
    enroll_vectors(suite, active_from=first_ts + 1)
    batch_id = anchor_vector_batch(suite)
    anchor = suite.contract("ReadingAnchor")
    registry = suite.contract("DeviceRegistry")
    v0 = V["readings"][0]
    with reverts("ReadingAnchorDeviceNotActive", deviceId=b32(v0["struct"]["deviceId"]), timestamp=first_ts):
        suite.chain.call(
            anchor.functions.verifyReading(
                struct_of(v0), b32(v0["signature"]), batch_id, [b32(p) for p in v0["proof"]]
            )
        )
    # revoke the P-256 device at the time of its third reading: that reading is not active; the second
    # was active, but its batch was anchored (now) after the revocation, so it does not count either
    # (issue 12.8: the device's key may have signed it after the revocation, back-dated)
    v2, v4 = V["readings"][2], V["readings"][4]
    did = b32(v4["struct"]["deviceId"])
    suite.chain.transact(registry.functions.revoke(did, v4["reading"]["ts_ms"]), suite.accounts[1])
    anchored_ms = suite.chain.call(anchor.functions.batch(batch_id))[2] * 1000
    with reverts(
        "ReadingAnchorAnchoredAfterRevocation",
        deviceId=did,
        anchoredAtMs=anchored_ms,
        revokedAtMs=v4["reading"]["ts_ms"],
    ):
        suite.chain.call(
            anchor.functions.verifyReading(
                struct_of(v2), b32(v2["signature"]), batch_id, [b32(p) for p in v2["proof"]]
            )
        )
    with reverts("ReadingAnchorDeviceNotActive", timestamp=v4["reading"]["ts_ms"]):
        suite.chain.call(
            anchor.functions.verifyReading(
                struct_of(v4), b32(v4["signature"]), batch_id, [b32(p) for p in v4["proof"]]
            )
        )


def test_issue12_readings_are_bound_to_their_anchoring_time(suite) -> None:  # type: ignore[no-untyped-def]
    """Issue 12.8: a key stolen after its device's revocation signed back-dated readings, which counted
    once anchored later; and a batch could hold readings dated after its anchoring."""
    cons = TestConsortium(suite.chain, suite.deployment)
    device = cons.enroll("GW-ANCHOR-TIME", "secp256k1", active_from_ms=0)  # active from its block's time
    did = device_id_hash("GW-ANCHOR-TIME")
    anchor = ReadingAnchorClient(suite.chain, suite.deployment)
    contract = anchor.contract
    skew = suite.chain.call(contract.functions.MAX_CLOCK_SKEW_MS())
    assert skew == 60_000

    def anchored(*subs: Submission) -> tuple[int, MerkleTree, int]:
        tree = MerkleTree.build(s.digest for s in subs)
        suite.chain.transact(contract.functions.anchorBatch(tree.root, len(subs)), suite.operator)
        batch_id = int(suite.chain.call(contract.functions.batchCount()))
        return batch_id, tree, suite.chain.call(contract.functions.batch(batch_id))[2] * 1000

    def verify(s: Submission, batch_id: int, tree: MerkleTree) -> bytes:
        struct = reading_struct(s.reading)
        return verify_reading_on_chain(anchor, struct, s.signature, batch_id, tree.proof(s.digest))

    now_ms = int(suite.chain.block()["timestamp"]) * 1000
    active_from = suite.chain.call(suite.contract("DeviceRegistry").functions.device(did))[3]
    past = device.sign({"temp_c": 4}, ts_ms=max(now_ms - 60_000, active_from))  # not before enrollment
    ahead = device.sign({"temp_c": 4}, ts_ms=now_ms + 30_000)  # a clock a little ahead: within the skew
    future = device.sign({"temp_c": 4}, ts_ms=now_ms + 3_600_000)
    batch_id, tree, anchored_ms = anchored(past, ahead, future)
    assert verify(past, batch_id, tree) == past.digest
    assert verify(ahead, batch_id, tree) == ahead.digest
    with reverts(
        "ReadingAnchorReadingAfterAnchoring",
        deviceId=did,
        timestamp=future.reading.ts_ms,
        anchoredAtMs=anchored_ms,
    ):
        verify(future, batch_id, tree)

    # the operator revokes the device now (its key was stolen): what was anchored before still counts
    # (half a second after the anchoring: blocks in the same second cannot be ordered, and are refused)
    registry = suite.contract("DeviceRegistry")
    suite.chain.transact(registry.functions.revoke(did, anchored_ms + 500), suite.operator)
    revoked_ms = suite.chain.call(registry.functions.device(did))[4]
    assert revoked_ms == anchored_ms + 500
    assert verify(past, batch_id, tree) == past.digest
    # the thief signs a reading dated before the revocation; anchored afterwards, it does not count
    backdated = device.sign({"temp_c": 4}, ts_ms=revoked_ms - 1)
    if int(suite.chain.block()["timestamp"]) * 1000 < revoked_ms and suite.chain.can_warp:
        suite.chain.warp(revoked_ms // 1000 + 1)
    late_id, late_tree, late_ms = anchored(backdated)
    with reverts(
        "ReadingAnchorAnchoredAfterRevocation", deviceId=did, anchoredAtMs=late_ms, revokedAtMs=revoked_ms
    ):
        verify(backdated, late_id, late_tree)
    # checkAnchoredSignature applies the same rules (certifyLot uses it); checkDeviceSignature does not
    check = contract.functions.checkAnchoredSignature
    with reverts("ReadingAnchorAnchoredAfterRevocation"):
        suite.chain.call(check(did, backdated.reading.ts_ms, late_id, backdated.digest, backdated.signature))
    assert (
        suite.chain.call(check(did, past.reading.ts_ms, batch_id, past.digest, past.signature)) == anchored_ms
    )
    suite.chain.call(
        contract.functions.checkDeviceSignature(
            did, backdated.reading.ts_ms, backdated.digest, backdated.signature
        )
    )


def _flip_s(sig: bytes, n: int) -> bytes:
    s = int.from_bytes(sig[32:64], "big")
    return sig[:32] + (n - s).to_bytes(32, "big") + sig[64:]


def _bad_signatures(vector: dict[str, Any]) -> list[tuple[str, bytes]]:
    sig = b32(vector["signature"])
    flipped_r = bytes([sig[0] ^ 1]) + sig[1:]
    if vector["scheme"] == "p256":
        return [("flipped r", flipped_r), ("high-S", _flip_s(sig, P256_N)), ("zero", bytes(64))]
    v = sig[64]
    high_s = _flip_s(sig, K1_N)[:64] + bytes([55 - v])  # same point, other parity: malleable twin
    return [
        ("flipped r", flipped_r),
        ("high-S", high_s),
        ("v=0", sig[:64] + b"\x00"),
        ("v=29", sig[:64] + b"\x1d"),
    ]


@pytest.mark.parametrize("index", [0, 1])
def test_bad_signatures_are_refused(harness_suite, index: int) -> None:  # type: ignore[no-untyped-def]
    suite = harness_suite  # the vector devices: recorded without attestation (test-only registry)
    enroll_vectors(suite)
    batch_id = anchor_vector_batch(suite)
    anchor = suite.contract("ReadingAnchor")
    v = V["readings"][index]
    proof = [b32(p) for p in v["proof"]]
    for label, sig in _bad_signatures(v):
        with reverts(
            "ReadingAnchorBadSignature", deviceId=b32(v["struct"]["deviceId"]), digest=b32(v["digest"])
        ):
            suite.chain.call(anchor.functions.verifyReading(struct_of(v), sig, batch_id, proof))
        with reverts("ReadingAnchorBadSignature"):
            suite.chain.call(
                anchor.functions.checkDeviceSignature(
                    b32(v["struct"]["deviceId"]), v["struct"]["timestamp"], b32(v["digest"]), sig
                )
            )
        assert label


@pytest.mark.parametrize(("index", "length"), [(0, 65), (0, 63), (1, 64), (1, 66)])
def test_signature_length_per_scheme(harness_suite, index: int, length: int) -> None:  # type: ignore[no-untyped-def]
    suite = harness_suite  # the vector devices: recorded without attestation (test-only registry)
    enroll_vectors(suite)
    batch_id = anchor_vector_batch(suite)
    anchor = suite.contract("ReadingAnchor")
    v = V["readings"][index]
    sig = (b32(v["signature"]) + bytes(2))[:length]
    with reverts("ReadingAnchorInvalidSignatureLength", deviceId=b32(v["struct"]["deviceId"]), length=length):
        suite.chain.call(
            anchor.functions.verifyReading(struct_of(v), sig, batch_id, [b32(p) for p in v["proof"]])
        )
