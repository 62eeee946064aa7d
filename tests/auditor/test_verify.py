"""The auditor's verifier: proof bundles checked offline and on chain, on both chains.

* the Reading v1 vectors and generated batches (1, 2, 7, 33 readings) verify, offline
  and through the contract (fresh chains from the ``harness_suite`` fixture);
* devices are recorded in the test-only ``DeviceRegistryHarness`` (``tests/helpers/enrollments.py``),
  deployed in place of the DeviceRegistry: the vector devices have public keys only (no proof of
  possession), and readings here are dated T0 (2025-11) like the vectors', before any real
  enrollment (issue 12.2); real enrollment is tested in ``tests/contracts/test_device_registry.py``;
* every failure path raises its typed error with a telling message, and the offline
  and on-chain verdicts agree on every bundle (a read-only "world" per chain kind,
  built once per module: its anvil is its own node, so the session node's
  deterministic addresses stay free for the ``suite`` tests);
* random tamperings (Hypothesis, embedded chain) are always refused by both;
* the bundle format, ``build_bundle`` and the ``supet verify`` command.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import typer
from enrollments import (  # the fixtures harness_anvil, harness_suite
    HARNESS,
    enroll_without_attestation,
    harness_anvil_fixture,  # noqa: F401
    harness_suite_fixture,  # noqa: F401
)
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from support import b32, load_vectors, require
from typer.testing import CliRunner

from auditor.bundle import BUNDLE_KEYS, ProofBundle, build_bundle, build_bundle_for
from auditor.checks import verify_bundle_against
from auditor.errors import (
    CHECKS,
    AnchoringTimeInvalid,
    AnchorTxMismatch,
    BundleFormatError,
    DeploymentMismatch,
    DeviceNotActive,
    DeviceNotEnrolled,
    DigestMismatch,
    InclusionError,
    InsufficientConfirmations,
    RootMismatch,
    SignatureInvalid,
    UnknownBatch,
    VerificationError,
)
from auditor.verify import BundleVerifier, VerifiedReading, verify_bundle, verify_bundle_on_chain
from contracts.anvil import AnvilNode, find_anvil
from contracts.chain import Chain, dev_accounts
from contracts.deploy import deploy_suite
from contracts.deployment import Deployment
from contracts.registry import DeviceRegistryClient, ReadingAnchorClient
from device_attestation.errors import MerkleError, ProofMismatch, SignatureError
from device_attestation.keys import DeviceKey, Scheme
from device_attestation.merkle import MerkleTree
from device_attestation.reading import Domain, Reading, reading_digest, to_fixed_point
from device_attestation.sdk import DeviceSigner, Submission
from device_attestation.signing import P256_N, SECP256K1_N
from supet.cli.verify import verify as verify_command

V = load_vectors()
CA = keccak(b"test manufacturer CA")
FINGERPRINT = keccak(b"device certificate")
T0 = 1_764_400_000_000


# ================================================================== helpers


def vector_domain() -> Domain:
    return Domain(chain_id=V["domain"]["chainId"], verifying_contract=V["domain"]["verifyingContract"])


def vector_bundle_obj(index: int, *, batch_id: int = 1, anchor_tx: str = "0x" + "ab" * 32) -> dict[str, Any]:
    """The bundle of vector ``index``, straight from the vectors file (not through build_bundle)."""
    r = V["readings"][index]
    return {
        "reading": r["reading"],
        "scheme": r["scheme"],
        "signature": r["signature"],
        "digest": r["digest"],
        "batch_id": batch_id,
        "root": V["batch_root"],
        "proof": r["proof"],
        "chain_id": V["domain"]["chainId"],
        "anchor_contract": V["domain"]["verifyingContract"],
        "anchor_tx": anchor_tx,
    }


def verdict(fn: Callable[[], object]) -> type[VerificationError] | None:
    """None when ``fn`` passes, else the class of the VerificationError it raised."""
    try:
        fn()
    except VerificationError as e:
        return type(e)
    return None


def offline_and_on_chain(
    bundle: ProofBundle, chain: Chain, deployment: Deployment, **kw: int
) -> tuple[type[VerificationError] | None, type[VerificationError] | None]:
    offline = verdict(lambda: verify_bundle(bundle, chain=chain, deployment=deployment, **kw))
    on_chain = verdict(lambda: verify_bundle_on_chain(bundle, chain=chain, deployment=deployment, **kw))
    return offline, on_chain


def mine(chain: Chain, node: AnvilNode | None, blocks: int) -> None:
    if node is not None:
        for _ in range(blocks):
            node.rpc("evm_mine", [])
    else:
        chain.w3.testing.mine(blocks)  # type: ignore[attr-defined]


def enroll_key(
    chain: Chain,
    deployment: Deployment,
    factory: LocalAccount,
    device_id: str,
    key: DeviceKey,
    active_from: int = 0,
) -> str:
    """Record ``device_id`` in the test-only registry harness, active from ``active_from`` as given
    (the readings here are dated T0, 2025-11, like the vectors': before any real enrollment)."""
    pub = key.public_key
    k: dict[str, Any] = (
        {"x": pub.x, "y": pub.y} if key.scheme is Scheme.P256 else {"address": pub.eth_address}
    )
    result = enroll_without_attestation(
        chain,
        deployment,
        factory,
        device_id,
        cert_fingerprint=keccak(device_id.encode()),
        ca_key_hash=CA,
        active_from_ms=active_from,
        **k,
    )
    return result.tx_hash


def enroll_vector_devices(chain: Chain, deployment: Deployment, factory: LocalAccount) -> None:
    """The vector devices (public keys only: no proof of possession), through the harness."""
    for d in V["devices"]:
        k: dict[str, Any] = (
            {"x": int(d["public_key_x"], 16), "y": int(d["public_key_y"], 16)}
            if d["scheme"] == "p256"
            else {"address": d["address"]}
        )
        enroll_without_attestation(
            chain,
            deployment,
            factory,
            d["device_id"],
            cert_fingerprint=FINGERPRINT,
            ca_key_hash=CA,
            active_from_ms=0,
            **k,
        )


def anchor(chain: Chain, deployment: Deployment, operator: LocalAccount, tree: MerkleTree) -> tuple[int, str]:
    client = ReadingAnchorClient(chain, deployment)
    result = client.anchor_batch(operator, tree.root, len(tree))
    return client.batch_count(), result.tx_hash


def anchor_submissions(
    chain: Chain, deployment: Deployment, operator: LocalAccount, subs: list[Submission]
) -> list[ProofBundle]:
    tree = MerkleTree.build([s.digest for s in subs])
    batch_id, tx = anchor(chain, deployment, operator, tree)
    return [
        build_bundle_for(s, tree=tree, batch_id=batch_id, deployment=deployment, anchor_tx=tx) for s in subs
    ]


def signers(deployment: Deployment, count: int, prefix: str) -> list[tuple[DeviceSigner, DeviceKey]]:
    domain = Domain(chain_id=deployment.chain_id, verifying_contract=deployment.address("ReadingAnchor"))
    out = []
    for i in range(count):
        key = DeviceKey.generate(Scheme.P256 if i % 2 == 0 else Scheme.SECP256K1)
        out.append((DeviceSigner(device_id=f"{prefix}-{i}", key=key, domain=domain), key))
    return out


def flip(data: bytes, index: int, mask: int = 1) -> bytes:
    return data[:index] + bytes([data[index] ^ mask]) + data[index + 1 :]


def with_reading(bundle: ProofBundle, *, fix_digest: bool = False, **changes: Any) -> ProofBundle:
    reading = Reading(**{**bundle.reading.to_json_obj(), **changes})
    if not fix_digest:
        return bundle.replace(reading=reading)
    domain = Domain(chain_id=bundle.chain_id, verifying_contract=bundle.anchor_contract)
    return bundle.replace(reading=reading, digest=reading_digest(reading, domain))


def high_s(sig: bytes, scheme: Scheme) -> bytes:
    n = P256_N if scheme is Scheme.P256 else SECP256K1_N
    s = int.from_bytes(sig[32:64], "big")
    out = sig[:32] + (n - s).to_bytes(32, "big")
    return out if scheme is Scheme.P256 else out + bytes([55 - sig[64]])  # other parity: the malleable twin


# ================================================================== vectors, generated batches (fresh chains)


def test_vector_bundles_verify_offline_and_on_chain(harness_suite) -> None:
    suite = harness_suite
    chain, dep = suite.chain, suite.deployment
    assert dep.address("ReadingAnchor") == V["domain"]["verifyingContract"]
    enroll_vector_devices(chain, dep, suite.accounts[1])
    tree = MerkleTree.build([b32(r["digest"]) for r in V["readings"]])
    assert tree.root == b32(V["batch_root"])
    batch_id, tx = anchor(chain, dep, suite.operator, tree)
    verifier = BundleVerifier(chain=chain, deployment=dep)
    for index, vector in enumerate(V["readings"]):
        bundle = ProofBundle.from_json_obj(vector_bundle_obj(index, batch_id=batch_id, anchor_tx=tx))
        result = verify_bundle(bundle, chain=chain, deployment=dep)
        assert result.digest == b32(vector["digest"])
        assert (result.device_id, result.seq, result.batch_id) == (
            vector["reading"]["device_id"],
            vector["reading"]["seq"],
            batch_id,
        )
        assert result.root == b32(V["batch_root"])
        assert result.scheme == vector["scheme"]
        receipt = chain.receipt(tx)
        assert receipt is not None and result.anchor_block == receipt["blockNumber"]
        assert result.anchored_at > 0 and result.confirmations == 0
        assert verify_bundle_on_chain(bundle, chain=chain, deployment=dep) == b32(vector["digest"])
        assert verifier.verify(bundle) == result
        # the one place bundles are assembled gives the very same bundle
        rebuilt = build_bundle(
            reading=bundle.reading,
            scheme=vector["scheme"],
            signature=b32(vector["signature"]),
            tree=tree,
            batch_id=batch_id,
            deployment=dep,
            anchor_tx=tx,
        )
        assert rebuilt == bundle
        assert rebuilt.to_json_obj() == vector_bundle_obj(index, batch_id=batch_id, anchor_tx=tx)


def test_generated_batches_verify(harness_suite) -> None:
    suite = harness_suite
    chain, dep, operator, factory = suite.chain, suite.deployment, suite.operator, suite.accounts[1]
    devices = signers(dep, 4, "SN-GEN")  # p256, secp256k1, p256, secp256k1
    for signer, key in devices:
        enroll_key(chain, dep, factory, signer.device_id, key)
    bundles: list[ProofBundle] = []
    for size in (1, 2, 7, 33):
        subs = [
            devices[i % 4][0].sign(
                {"temp_c": 20 + i / 10, "good_units": i}, ts_ms=T0 + i, lot_id=f"LOT-{size}"
            )
            for i in range(size)
        ]
        batch = anchor_submissions(chain, dep, operator, subs)
        assert [len(b.proof) for b in batch] == [
            len(MerkleTree.build([s.digest for s in subs]).proof(s.digest)) for s in subs
        ]
        bundles += batch
    assert len(bundles) == 43
    assert {b.scheme for b in bundles} == {Scheme.P256, Scheme.SECP256K1}
    verifier = BundleVerifier(chain=chain, deployment=dep)
    for bundle in bundles:
        result = verifier.verify(bundle)
        assert result.digest == bundle.digest and result.root == bundle.root
        assert verifier.verify_on_chain(bundle) == bundle.digest
        # the chain-free core gives the same digest from state read once
        assert (
            verify_bundle_against(
                bundle,
                domain=verifier.domain,
                batch=verifier.read_batch(bundle.batch_id),
                device=verifier.read_device(bundle.reading.device_id),
            )
            == bundle.digest
        )


def test_min_confirmations(harness_suite, request: pytest.FixtureRequest) -> None:
    suite = harness_suite
    chain, dep, operator = suite.chain, suite.deployment, suite.operator
    ((signer, key),) = signers(dep, 1, "SN-CONF")
    enroll_key(chain, dep, suite.accounts[1], signer.device_id, key)
    (bundle,) = anchor_submissions(chain, dep, operator, [signer.sign({"temp_c": 1}, ts_ms=T0)])
    node = request.getfixturevalue("harness_anvil")[0] if not chain.is_embedded else None
    assert verify_bundle(bundle, chain=chain, deployment=dep).confirmations == 0
    with pytest.raises(InsufficientConfirmations, match=r"has 0 block\(s\) on top; 3 required") as info:
        verify_bundle(bundle, chain=chain, deployment=dep, min_confirmations=3)
    assert (info.value.confirmations, info.value.required) == (0, 3)
    assert info.value.check == "anchor tx"
    with pytest.raises(InsufficientConfirmations):
        verify_bundle_on_chain(bundle, chain=chain, deployment=dep, min_confirmations=3)
    mine(chain, node, 2)
    with pytest.raises(InsufficientConfirmations, match=r"has 2 block\(s\) on top"):
        verify_bundle(bundle, chain=chain, deployment=dep, min_confirmations=3)
    mine(chain, node, 1)
    assert verify_bundle(bundle, chain=chain, deployment=dep, min_confirmations=3).confirmations == 3
    assert verify_bundle_on_chain(bundle, chain=chain, deployment=dep, min_confirmations=3) == bundle.digest
    with pytest.raises(ValueError, match="min_confirmations"):
        verify_bundle(bundle, chain=chain, deployment=dep, min_confirmations=-1)


def test_revocation_after_the_fact(harness_suite) -> None:
    """A bundle that verified stops verifying once its device is revoked from before its time."""
    suite = harness_suite
    chain, dep, operator, factory = suite.chain, suite.deployment, suite.operator, suite.accounts[1]
    ((signer, key),) = signers(dep, 1, "SN-REV")
    enroll_key(chain, dep, factory, signer.device_id, key)
    early, late = anchor_submissions(
        chain, dep, operator, [signer.sign({"x": 1}, ts_ms=T0), signer.sign({"x": 2}, ts_ms=T0 + 10)]
    )
    assert offline_and_on_chain(late, chain, dep) == (None, None)
    DeviceRegistryClient(chain, dep).revoke(factory, signer.device_id, T0 + 10)
    with pytest.raises(DeviceNotActive, match=f"revoked at {T0 + 10}") as info:
        verify_bundle(late, chain=chain, deployment=dep)
    assert (info.value.ts_ms, info.value.active_from, info.value.revoked_at) == (T0 + 10, 0, T0 + 10)
    assert offline_and_on_chain(late, chain, dep) == (DeviceNotActive, DeviceNotActive)
    # the early reading was measured before the revocation but anchored (now) after it: it no longer
    # counts either, since the device's key may have signed it later, back-dated (issue 12.8)
    with pytest.raises(AnchoringTimeInvalid, match="at or after the device's revocation") as bound:
        verify_bundle(early, chain=chain, deployment=dep)
    assert (bound.value.ts_ms, bound.value.revoked_at) == (T0, T0 + 10)
    assert bound.value.code == "verify.anchoring_time"
    assert offline_and_on_chain(early, chain, dep) == (AnchoringTimeInvalid, AnchoringTimeInvalid)


def test_verifier_refuses_a_deployment_that_is_not_the_chains(suite) -> None:
    chain, dep = suite.chain, suite.deployment
    with pytest.raises(DeploymentMismatch, match="serves chain 31337 but the deployment file is for chain 5"):
        BundleVerifier(chain=chain, deployment=dataclasses.replace(dep, chain_id=5))
    other_registry = {**dep.contracts, "DeviceRegistry": "0x" + "12" * 20}
    with pytest.raises(DeploymentMismatch, match="consults") as info:
        BundleVerifier(chain=chain, deployment=dataclasses.replace(dep, contracts=other_registry))
    assert info.value.what == "DeviceRegistry"
    no_code = {"ReadingAnchor": "0x" + "34" * 20}
    with pytest.raises(DeploymentMismatch, match="no code at its address"):
        BundleVerifier(chain=chain, deployment=dataclasses.replace(dep, contracts=no_code))


# ================================================================== the world: one setup per chain kind


@dataclass
class World:
    """A deployment with vector, generated and special batches; read-only once built."""

    kind: str
    chain: Chain
    deployment: Deployment
    node: AnvilNode | None
    vectors: list[ProofBundle]
    generated: list[ProofBundle]
    special: dict[str, ProofBundle]
    anchor_txs: dict[int, str]
    enroll_tx: str
    other_key: dict[Scheme, DeviceKey] = field(default_factory=dict)

    def base(self, scheme: str) -> ProofBundle:
        return next(b for b in self.generated if b.scheme == scheme)


def build_world(kind: str, chain: Chain, node: AnvilNode | None) -> World:
    accounts = dev_accounts(3)
    operator, factory = accounts[0], accounts[1]
    dep = deploy_suite(chain, operator, device_registry=HARNESS)
    enroll_vector_devices(chain, dep, factory)
    vtree = MerkleTree.build([b32(r["digest"]) for r in V["readings"]])
    vbatch, vtx = anchor(chain, dep, operator, vtree)
    vectors = [
        ProofBundle.from_json_obj(vector_bundle_obj(i, batch_id=vbatch, anchor_tx=vtx))
        for i in range(len(V["readings"]))
    ]
    devices = signers(dep, 4, "SN-WORLD")
    enroll_tx = ""
    for signer, key in devices:
        enroll_tx = enroll_key(chain, dep, factory, signer.device_id, key)
    subs = [
        devices[i % 4][0].sign({"temp_c": 21.5 + i, "good_units": 100 + i}, ts_ms=T0 + i) for i in range(7)
    ]
    generated = anchor_submissions(chain, dep, operator, subs)
    # the special devices: never enrolled, enrolled late, revoked
    (unenrolled, _), (late, late_key), (revoked, revoked_key) = signers(dep, 3, "SN-SPECIAL")
    enroll_key(chain, dep, factory, late.device_id, late_key, active_from=T0 + 10_000)
    enroll_key(chain, dep, factory, revoked.device_id, revoked_key)
    special_subs = {
        "unenrolled": unenrolled.sign({"x": 1}, ts_ms=T0),
        "before_active": late.sign({"x": 2}, ts_ms=T0 + 9_999),
        "after_active": late.sign({"x": 3}, ts_ms=T0 + 10_000),
        "before_revocation": revoked.sign({"x": 4}, ts_ms=T0 + 4_999),
        "after_revocation": revoked.sign({"x": 5}, ts_ms=T0 + 5_000),
    }
    special_bundles = anchor_submissions(chain, dep, operator, list(special_subs.values()))
    DeviceRegistryClient(chain, dep).revoke(factory, revoked.device_id, T0 + 5_000)
    client = ReadingAnchorClient(chain, dep)
    txs = {vbatch: vtx}
    for b in (*generated, *special_bundles):
        txs[b.batch_id] = "0x" + b.anchor_tx.hex()
    assert client.batch_count() == 3
    return World(
        kind=kind,
        chain=chain,
        deployment=dep,
        node=node,
        vectors=vectors,
        generated=generated,
        special=dict(zip(special_subs, special_bundles, strict=True)),
        anchor_txs=txs,
        enroll_tx=enroll_tx,
        other_key={Scheme.P256: devices[2][1], Scheme.SECP256K1: devices[3][1]},
    )


@pytest.fixture(scope="module", params=["embedded", "anvil"])
def world(request: pytest.FixtureRequest) -> Iterator[World]:
    if request.param == "embedded":
        yield build_world("embedded", Chain.embedded(), None)
        return
    require(find_anvil() is not None, "anvil is not installed (run `npm ci`)")
    with AnvilNode(hardfork="osaka") as node:  # its own node: the session node's nonces stay untouched
        yield build_world("anvil", Chain.connect(node.url), node)


@dataclass(frozen=True)
class Case:
    """A tampering of a valid world bundle, and what both verifiers must say about it."""

    name: str
    make: Callable[[World], ProofBundle]
    error: type[VerificationError]
    fragment: str


def _resign(world: World, base: str) -> ProofBundle:
    """The base bundle signed by another enrolled device of the same scheme: valid form, wrong key."""
    from device_attestation.signing import sign_digest

    b = world.base(base)
    return b.replace(signature=sign_digest(world.other_key[b.scheme], b.digest))


P, K = "p256", "secp256k1"


def tweak(base: str, **changes: Any) -> Callable[[World], ProofBundle]:
    """A maker: the world's ``base`` bundle with ``changes``."""
    return lambda w: w.base(base).replace(**changes)


def alter(base: str, name: str, fn: Callable[[Any], Any]) -> Callable[[World], ProofBundle]:
    """A maker: the world's ``base`` bundle with field ``name`` passed through ``fn``."""
    return lambda w: w.base(base).replace(**{name: fn(getattr(w.base(base), name))})


def reread(base: str, fix_digest: bool = False, **changes: Any) -> Callable[[World], ProofBundle]:
    """A maker: the world's ``base`` bundle with its reading changed (and its digest, if asked)."""
    return lambda w: with_reading(w.base(base), fix_digest=fix_digest, **changes)


METRICS = {"temp_c": 99, "good_units": 100}
CASES = [
    # the reading
    Case("metric value", reread(P, metrics=METRICS), DigestMismatch, "the bundle's digest is"),
    Case("metric value, digest fixed", reread(P, True, metrics=METRICS), InclusionError, "does not include"),
    Case("seq", reread(K, seq=77), DigestMismatch, "the reading or the digest was altered"),
    Case("seq, digest fixed", reread(K, True, seq=77), InclusionError, "expected root"),
    Case("ts_ms, digest fixed", reread(P, True, ts_ms=T0 - 1), InclusionError, "computed"),
    Case("lot_id, digest fixed", reread(P, True, lot_id="LOT-X"), InclusionError, "computed"),
    Case("digest field lies", alter(P, "digest", lambda d: flip(d, 5)), DigestMismatch, "recomputed locally"),
    # the batch and the root
    Case("unknown batch", tweak(P, batch_id=99), UnknownBatch, "batch 99 is not anchored"),
    Case("another existing batch", tweak(P, batch_id=1), RootMismatch, "batch 1 is anchored with root"),
    Case("another batch, its root", tweak(P, batch_id=1, root=b32(V["batch_root"])), InclusionError,
         "in batch 1"),
    Case("root differs from chain", alter(K, "root", lambda r: flip(r, 31)), RootMismatch, "forged root"),
    # the proof
    Case("proof sibling tampered", alter(P, "proof", lambda p: (flip(p[0], 0), *p[1:])), InclusionError,
         "the proof or the reading was altered"),
    Case("proof truncated", alter(P, "proof", lambda p: p[:-1]), InclusionError, "expected root"),
    Case("proof extended", alter(P, "proof", lambda p: (*p, bytes(32))), InclusionError, "expected root"),
    Case("proof empty", tweak(K, proof=()), InclusionError, "expected root"),
    # the signature
    Case("p256 flipped", alter(P, "signature", lambda s: flip(s, 31)), SignatureInvalid, "does not verify"),
    Case("p256 high-S", alter(P, "signature", lambda s: high_s(s, Scheme.P256)), SignatureInvalid, "high-S"),
    Case("p256 65 bytes", alter(P, "signature", lambda s: s + b"\x1b"), SignatureInvalid, "64 bytes"),
    Case("p256 63 bytes", alter(P, "signature", lambda s: s[:63]), SignatureInvalid, "got 63"),
    Case("p256 zero", tweak(P, signature=bytes(64)), SignatureInvalid, "outside [1, n-1]"),
    Case("p256 by another device", lambda w: _resign(w, P), SignatureInvalid, "does not verify"),
    Case("secp256k1 flipped", alter(K, "signature", lambda s: flip(s, 40)), SignatureInvalid, "secp256k1"),
    Case("secp256k1 high-S", alter(K, "signature", lambda s: high_s(s, Scheme.SECP256K1)), SignatureInvalid,
         "high-S"),
    Case("secp256k1 v=0", alter(K, "signature", lambda s: s[:64] + b"\x00"), SignatureInvalid, "v = 0"),
    Case("secp256k1 64 bytes", alter(K, "signature", lambda s: s[:64]), SignatureInvalid, "65 bytes"),
    Case("secp256k1 by another device", lambda w: _resign(w, K), SignatureInvalid, "another address"),
    Case("scheme claim lies", tweak(P, scheme=K), SignatureInvalid, "registered with p256"),
    # the device
    Case("device not enrolled", lambda w: w.special["unenrolled"], DeviceNotEnrolled, "is not enrolled"),
    Case("reading before activeFrom", lambda w: w.special["before_active"], DeviceNotActive,
         f"count from {T0 + 10_000}"),
    Case("reading after revocation", lambda w: w.special["after_revocation"], DeviceNotActive,
         f"revoked at {T0 + 5_000}"),
    # the deployment
    Case("another chain id", tweak(P, chain_id=1), DeploymentMismatch, "the bundle is for chain 1"),
    Case("another anchor contract", tweak(P, anchor_contract="0x" + "11" * 20), DeploymentMismatch,
         "belongs to another deployment"),
    # the anchoring transaction
    Case("anchor tx of another batch", lambda w: w.base(P).replace(anchor_tx=w.anchor_txs[1]),
         AnchorTxMismatch,
         "emitted no BatchAnchored(batchId=2"),
    Case("anchor tx of an enrollment", lambda w: w.base(P).replace(anchor_tx=w.enroll_tx), AnchorTxMismatch,
         "it is another transaction"),
    Case("anchor tx nonexistent", tweak(P, anchor_tx="0x" + "77" * 32), AnchorTxMismatch, "has no receipt"),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_failure_paths_and_agreement(world: World, case: Case) -> None:
    bundle = case.make(world)
    with pytest.raises(case.error) as offline:
        verify_bundle(bundle, chain=world.chain, deployment=world.deployment)
    assert case.fragment in offline.value.message, offline.value.message
    assert offline.value.code.startswith("verify.") and offline.value.check in CHECKS
    with pytest.raises(case.error) as on_chain:
        verify_bundle_on_chain(bundle, chain=world.chain, deployment=world.deployment)
    assert on_chain.value.code == offline.value.code


def test_valid_world_bundles_agree(world: World) -> None:
    valid = [
        *world.vectors,
        *world.generated,
        world.special["after_active"],
    ]
    for bundle in valid:
        assert offline_and_on_chain(bundle, world.chain, world.deployment) == (None, None)
    # measured before its device's revocation, but anchored after it (the world revokes in the past):
    # it does not count (issue 12.8), and both verifiers say so
    late = world.special["before_revocation"]
    assert offline_and_on_chain(late, world.chain, world.deployment) == (
        AnchoringTimeInvalid,
        AnchoringTimeInvalid,
    )


def test_errors_carry_expected_and_computed(world: World) -> None:
    chain, dep = world.chain, world.deployment
    base = world.base("p256")
    # inclusion: wraps device_attestation's ProofMismatch, keeping both roots
    truncated = base.replace(proof=base.proof[:-1])
    with pytest.raises(InclusionError) as inc:
        verify_bundle(truncated, chain=chain, deployment=dep)
    assert isinstance(inc.value.__cause__, ProofMismatch)
    assert inc.value.expected == base.root and inc.value.computed == inc.value.__cause__.computed
    assert inc.value.computed != base.root and inc.value.digest == base.digest
    with pytest.raises(InclusionError) as inc_chain:
        verify_bundle_on_chain(truncated, chain=chain, deployment=dep)
    assert (inc_chain.value.expected, inc_chain.value.computed) == (inc.value.expected, inc.value.computed)
    # root: expected is the chain's, computed the bundle's
    forged = base.replace(root=bytes(31) + b"\x01")
    with pytest.raises(RootMismatch) as root:
        verify_bundle(forged, chain=chain, deployment=dep)
    assert (root.value.expected, root.value.computed, root.value.batch_id) == (
        base.root,
        forged.root,
        base.batch_id,
    )
    # digest: expected is the bundle's, computed the recomputed one
    lying = base.replace(digest=bytes(32))
    with pytest.raises(DigestMismatch) as dig:
        verify_bundle(lying, chain=chain, deployment=dep)
    assert (dig.value.expected, dig.value.computed) == (bytes(32), base.digest)
    with pytest.raises(DigestMismatch, match=r"ReadingAnchor\.digest on chain") as dig_chain:
        verify_bundle_on_chain(lying, chain=chain, deployment=dep)
    assert dig_chain.value.computed == base.digest
    # signature: the cause and its code are kept
    with pytest.raises(SignatureInvalid) as sig:
        verify_bundle(
            base.replace(signature=high_s(base.signature, Scheme.P256)), chain=chain, deployment=dep
        )
    assert isinstance(sig.value.__cause__, SignatureError)
    assert (sig.value.reason, sig.value.scheme, sig.value.device_id) == (
        "signature.high_s",
        "p256",
        base.reading.device_id,
    )
    # device activity: the registry's times
    with pytest.raises(DeviceNotActive) as act:
        verify_bundle(world.special["before_active"], chain=chain, deployment=dep)
    assert (act.value.ts_ms, act.value.active_from, act.value.revoked_at) == (T0 + 9_999, T0 + 10_000, 0)
    with pytest.raises(DeviceNotActive) as act_chain:
        verify_bundle_on_chain(world.special["before_active"], chain=chain, deployment=dep)
    assert (act_chain.value.active_from, act_chain.value.revoked_at) == (T0 + 10_000, 0)
    # unknown batch: how many there are
    with pytest.raises(UnknownBatch, match=r"it has 3 batch\(es\)") as unk:
        verify_bundle(base.replace(batch_id=4), chain=chain, deployment=dep)
    assert unk.value.batch_count == 3
    # deployment: what was expected, what was claimed
    with pytest.raises(DeploymentMismatch) as dm:
        verify_bundle(base.replace(chain_id=10), chain=chain, deployment=dep)
    assert (dm.value.what, dm.value.expected, dm.value.claimed) == ("chain_id", 31337, 10)


def test_min_confirmations_on_the_world(world: World) -> None:
    bundle = world.special["after_active"]
    have = verify_bundle(bundle, chain=world.chain, deployment=world.deployment).confirmations
    with pytest.raises(InsufficientConfirmations, match=f"{have + 1} required"):
        verify_bundle(bundle, chain=world.chain, deployment=world.deployment, min_confirmations=have + 1)
    mine(world.chain, world.node, 1)
    assert verify_bundle(bundle, chain=world.chain, deployment=world.deployment, min_confirmations=have + 1)


def test_chain_free_core(world: World) -> None:
    verifier = BundleVerifier(chain=world.chain, deployment=world.deployment)
    base = world.base("secp256k1")
    batch = verifier.read_batch(base.batch_id)
    device = verifier.read_device(base.reading.device_id)
    assert verify_bundle_against(base, domain=verifier.domain, batch=batch, device=device) == base.digest
    with pytest.raises(InclusionError):
        verify_bundle_against(
            base.replace(proof=base.proof[1:]), domain=verifier.domain, batch=batch, device=device
        )
    with pytest.raises(ValueError, match="not the reading's device"):
        verify_bundle_against(
            base,
            domain=verifier.domain,
            batch=batch,
            device=verifier.read_device(world.base("p256").reading.device_id),
        )
    with pytest.raises(ValueError, match="batch 1 given"):
        verify_bundle_against(base, domain=verifier.domain, batch=verifier.read_batch(1), device=device)


# ================================================================== many bundles in one run


def mixed_directory(world: World) -> list[ProofBundle]:
    """Valid, tampered, wrong-batch, revoked-device and unknown-device bundles, some twice, shuffled
    so that bundles of one batch and one device are apart."""
    valid = [*world.vectors, *world.generated, world.special["after_active"]]
    special = list(world.special.values())  # unenrolled, before/after activation, before/after revocation
    tampered = [case.make(world) for case in CASES]
    bundles = [*valid, *special, *tampered, valid[0], tampered[0], special[0]]
    return bundles[::2] + bundles[1::2]


def one_verdict(verdict: object) -> tuple[object, ...]:
    """What a verdict says: the result, or the error's class, code, check and message."""
    if isinstance(verdict, VerificationError):
        return type(verdict), verdict.code, verdict.check, verdict.message
    return ("valid", verdict)


def one_by_one(world: World, bundles: list[ProofBundle], **kw: int) -> list[tuple[object, ...]]:
    verifier = BundleVerifier(chain=world.chain, deployment=world.deployment)
    out = []
    for bundle in bundles:
        try:
            out.append(one_verdict(verifier.verify(bundle, **kw)))
        except VerificationError as e:
            out.append(one_verdict(e))
    return out


@pytest.mark.parametrize("batching", [None, False], ids=["by-provider", "sequential"])
def test_verify_many_gives_the_one_by_one_verdicts(world: World, batching: bool | None) -> None:
    bundles = mixed_directory(world)
    expected = one_by_one(world, bundles)
    kinds = {v[0] for v in expected}
    assert {"valid", DigestMismatch, InclusionError, UnknownBatch, RootMismatch, SignatureInvalid,
            DeviceNotEnrolled, DeviceNotActive, AnchoringTimeInvalid, DeploymentMismatch,
            AnchorTxMismatch} <= kinds  # fmt: skip
    verifier = BundleVerifier(chain=world.chain, deployment=world.deployment)
    got = [one_verdict(v) for v in verifier.verify_many(bundles, batching=batching)]
    assert got == expected
    # and with a depth that only the older anchorings have
    depth = verifier.verify(world.special["after_active"]).confirmations + 1
    deep = one_by_one(world, bundles, min_confirmations=depth)
    assert {"valid", InsufficientConfirmations} <= {v[0] for v in deep}
    many = verifier.verify_many(bundles, min_confirmations=depth, batching=batching)
    assert [one_verdict(v) for v in many] == deep
    assert verifier.verify_many([]) == []
    with pytest.raises(ValueError, match="min_confirmations"):
        verifier.verify_many(bundles, min_confirmations=-1)


@pytest.mark.anvil
@pytest.mark.parametrize("world", ["anvil"], indirect=True)
def test_verify_many_reads_each_state_once_in_batch_requests(world: World) -> None:
    """On a node over HTTP the run's reads go in a few JSON-RPC batch requests, whatever the bundle count;
    a batch request one of whose calls fails (a missing receipt) falls back to single reads."""
    from auditor.chain_reads import RunReads

    verifier = BundleVerifier(chain=world.chain, deployment=world.deployment)
    valid = [*world.vectors, *world.generated] * 20
    reads = RunReads(verifier._reader, verifier._reader.head())
    assert reads.batching
    reads.prefetch(valid)
    assert reads.round_trips == 3  # batch count and devices; batches and receipts; blocks
    for bundle in valid:  # everything the checks read is there: no further request
        verifier._verify_against(bundle, bundle.digest, reads, 0)
    assert reads.round_trips == 3
    missing = world.base("p256").replace(anchor_tx=bytes.fromhex("77" * 32))
    fallback = RunReads(verifier._reader, verifier._reader.head())
    fallback.prefetch([*valid, missing])
    assert fallback.round_trips > 3 and fallback.receipt(missing.anchor_tx) is None
    # the embedded chain's provider takes no batch requests: sequential reads
    assert not RunReads(verifier._reader, 0, batching=False).batching


def test_verify_many_keeps_nothing_across_runs(harness_suite) -> None:
    """A device revoked between two runs: the second run sees the revocation."""
    suite = harness_suite
    chain, dep, factory = suite.chain, suite.deployment, suite.accounts[1]
    ((signer, key),) = signers(dep, 1, "SN-RUNS")
    enroll_key(chain, dep, factory, signer.device_id, key)
    bundles = anchor_submissions(
        chain, dep, suite.operator, [signer.sign({"x": i}, ts_ms=T0 + i) for i in range(4)]
    )
    verifier = BundleVerifier(chain=chain, deployment=dep)
    assert all(isinstance(v, VerifiedReading) for v in verifier.verify_many(bundles))
    DeviceRegistryClient(chain, dep).revoke(factory, signer.device_id, T0 + 2)
    after = verifier.verify_many(bundles)
    assert [type(v) for v in after] == [AnchoringTimeInvalid] * 2 + [DeviceNotActive] * 2
    assert [one_verdict(v) for v in after] == [one_verdict(verdict_of(verifier, b)) for b in bundles]


def verdict_of(verifier: BundleVerifier, bundle: ProofBundle) -> object:
    try:
        return verifier.verify(bundle)
    except VerificationError as e:
        return e


# ================================================================== property: random tamperings refused


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
@pytest.mark.parametrize("world", ["embedded"], indirect=True)
def test_random_tampering_is_refused_by_both(world: World, data: st.DataObject) -> None:
    base = data.draw(st.sampled_from(world.generated), label="base")
    target = data.draw(st.sampled_from(["signature", "proof", "root", "digest", "metric"]), label="target")
    if target == "metric":
        name = data.draw(st.sampled_from(sorted(base.reading.metrics)), label="metric")
        old = base.reading.metrics[name]
        new = data.draw(
            st.integers(-(10**12), 10**12) | st.floats(-1e12, 1e12, allow_nan=False, allow_infinity=False),
            label="value",
        )
        assume(to_fixed_point(new) != to_fixed_point(old))
        fix = data.draw(st.booleans(), label="fix digest")
        bundle = with_reading(base, fix_digest=fix, metrics={**base.reading.metrics, name: new})
    else:
        mask = data.draw(st.integers(1, 255), label="mask")
        if target == "proof":
            assume(base.proof)
            i = data.draw(st.integers(0, len(base.proof) - 1), label="sibling")
            j = data.draw(st.integers(0, 31), label="byte")
            proof = list(base.proof)
            proof[i] = flip(proof[i], j, mask)
            bundle = base.replace(proof=tuple(proof))
        else:
            value: bytes = getattr(base, target)
            j = data.draw(st.integers(0, len(value) - 1), label="byte")
            bundle = base.replace(**{target: flip(value, j, mask)})
    offline, on_chain = offline_and_on_chain(bundle, world.chain, world.deployment)
    assert offline is not None, f"offline accepted a tampered {target}"
    assert offline is on_chain, f"offline says {offline.__name__}, on chain says {on_chain}"


# ================================================================== the bundle format (no chain)


def test_bundle_round_trip_and_keys() -> None:
    obj = vector_bundle_obj(0)
    bundle = ProofBundle.from_json_obj(obj)
    assert list(bundle.to_json_obj()) == list(BUNDLE_KEYS)
    assert bundle.to_json_obj() == obj
    assert ProofBundle.from_json(bundle.to_json()) == bundle
    assert ProofBundle.from_json(json.dumps(obj).encode()) == bundle
    assert bundle.digest == b32(obj["digest"]) and bundle.proof == tuple(b32(p) for p in obj["proof"])
    assert bundle.scheme is Scheme.P256
    lower = ProofBundle.from_json_obj({**obj, "anchor_contract": obj["anchor_contract"].lower()})
    assert lower.anchor_contract == obj["anchor_contract"]  # normalised to EIP-55
    with pytest.raises(ValidationError, match="frozen"):
        bundle.batch_id = 2


FORMAT_CASES: list[tuple[str, Callable[[dict[str, Any]], object], str, str]] = [
    ("not an object", lambda o: [o], "", "is a JSON object"),
    ("missing digest", lambda o: {k: v for k, v in o.items() if k != "digest"}, "digest", "missing"),
    ("unknown key", lambda o: {**o, "verified": True}, "verified", "unknown field"),
    ("batch id zero", lambda o: {**o, "batch_id": 0}, "batch_id", "greater than or equal to 1"),
    ("batch id string", lambda o: {**o, "batch_id": "7"}, "batch_id", "integer"),
    ("chain id bool", lambda o: {**o, "chain_id": True}, "chain_id", "integer"),
    ("digest not hex", lambda o: {**o, "digest": "0xzz"}, "digest", "not valid hex"),
    ("digest no prefix", lambda o: {**o, "digest": o["digest"][2:]}, "digest", "0x-prefixed"),
    ("root 31 bytes", lambda o: {**o, "root": o["root"][:-2]}, "root", "expected 32 bytes, got 31"),
    ("proof element short", lambda o: {**o, "proof": [o["proof"][0][:-2]]}, "proof.0", "expected 32 bytes"),
    ("proof not a list", lambda o: {**o, "proof": o["proof"][0]}, "proof", "expected an array"),
    ("proof element a number", lambda o: {**o, "proof": [1]}, "proof.0", "got a number"),
    ("digest with spaces", lambda o: {**o, "digest": "0x" + " ".join([o["digest"][2:34], o["digest"][34:]])},
     "digest", "not valid hex"),
    ("signature a number", lambda o: {**o, "signature": 5}, "signature", "hex string"),
    ("unknown scheme", lambda o: {**o, "scheme": "ed25519"}, "scheme", "unknown signature scheme"),
    ("bad checksum", lambda o: {**o, "anchor_contract": "0x5FbDB2315678afecb367f032d93F642f64180AA3"},
     "anchor_contract", "checksum"),
    ("anchor tx short", lambda o: {**o, "anchor_tx": "0x1234"}, "anchor_tx", "expected 32 bytes"),
    ("reading metric name", lambda o: {**o, "reading": {**o["reading"], "metrics": {"Temp": 1}}},
     "reading.metrics.Temp", "metric name"),
    ("reading seq zero", lambda o: {**o, "reading": {**o["reading"], "seq": 0}}, "reading.seq",
     "greater than"),
    ("reading missing", lambda o: {k: v for k, v in o.items() if k != "reading"}, "reading", "missing"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("mutate", "field_name", "fragment"), [c[1:] for c in FORMAT_CASES], ids=[c[0] for c in FORMAT_CASES]
)
def test_bundle_format_errors_name_the_field(
    mutate: Callable[[dict[str, Any]], object], field_name: str, fragment: str
) -> None:
    with pytest.raises(BundleFormatError) as info:
        ProofBundle.from_json_obj(mutate(vector_bundle_obj(0)))
    assert info.value.field == field_name
    assert fragment in info.value.message
    assert info.value.code == "verify.bundle_format"
    assert info.value.message.startswith(f"{field_name or 'bundle'}: ")


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not UTF-8"),
        (b'{"batch_id": 1, "batch_id": 2}', "'batch_id' appears twice"),
        (b"[]", "is a JSON object"),
    ],
)
def test_bundle_from_json_errors(text: bytes, fragment: str) -> None:
    with pytest.raises(BundleFormatError, match=fragment):
        ProofBundle.from_json(text)


def test_keyword_construction_and_replace_validate() -> None:
    bundle = ProofBundle.from_json_obj(vector_bundle_obj(1))
    with pytest.raises(BundleFormatError, match=r"proof\.1: expected 32 bytes"):
        bundle.replace(proof=(bundle.proof[0], b"short"))
    with pytest.raises(BundleFormatError, match="batch_id"):
        bundle.replace(batch_id=-1)


def test_build_bundle_checks_its_inputs() -> None:
    dep = Deployment(
        chain_id=31337,
        contracts={"ReadingAnchor": V["domain"]["verifyingContract"]},
        block=1,
        deployer="0x" + "00" * 20,
        artifact_hashes={},
        deployed_at="",
    )
    tree = MerkleTree.build([b32(r["digest"]) for r in V["readings"]])
    v = V["readings"][2]
    reading = Reading.from_json_obj(v["reading"])
    sub = Submission(
        reading=reading, scheme=Scheme.P256, signature=b32(v["signature"]), digest=b32(v["digest"])
    )
    bundle = build_bundle_for(sub, tree=tree, batch_id=3, deployment=dep, anchor_tx=b"\x01" * 32)
    assert bundle.to_json_obj() == vector_bundle_obj(2, batch_id=3, anchor_tx="0x" + "01" * 32)
    # a submission made for another domain
    other = dataclasses.replace(
        sub,
        digest=reading_digest(reading, Domain(chain_id=1, verifying_contract=dep.contracts["ReadingAnchor"])),
    )
    with pytest.raises(DigestMismatch, match="the submission's digest is"):
        build_bundle_for(other, tree=tree, batch_id=3, deployment=dep, anchor_tx=b"\x01" * 32)
    # a reading that is not in the tree
    with pytest.raises(MerkleError, match="not in this batch"):
        build_bundle(
            reading=Reading(device_id="SN-X", seq=1, ts_ms=1, metrics={"x": 1}),
            scheme="p256",
            signature=bytes(64),
            tree=tree,
            batch_id=3,
            deployment=dep,
            anchor_tx=b"\x01" * 32,
        )


def test_error_codes_are_stable_and_distinct() -> None:
    classes: list[type[VerificationError]] = [
        BundleFormatError, DeploymentMismatch, DigestMismatch, UnknownBatch, RootMismatch, InclusionError,
        DeviceNotEnrolled, DeviceNotActive, SignatureInvalid, AnchorTxMismatch, InsufficientConfirmations,
    ]  # fmt: skip
    codes = [c.code for c in classes]
    assert len(set(codes)) == len(codes)
    assert all(issubclass(c, VerificationError) and c.code.startswith("verify.") for c in classes)
    assert {c.check for c in classes} - {"bundle"} == set(CHECKS)


# ================================================================== the command line


def cli_app() -> typer.Typer:
    app = typer.Typer()
    app.command()(verify_command)
    return app


@pytest.fixture
def cli_files(world: World, tmp_path: Path) -> tuple[World, Path, Path]:
    dep_file = tmp_path / "deployment.json"
    world.deployment.save(dep_file)
    bundle_file = tmp_path / "bundle.json"
    bundle_file.write_text(world.base("p256").to_json(indent=2))
    return world, dep_file, bundle_file


def run_cli(*args: str, stdin: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(cli_app(), list(args), input=stdin)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


@pytest.mark.anvil
@pytest.mark.parametrize("world", ["anvil"], indirect=True)
def test_cli_valid_and_tampered(cli_files: tuple[World, Path, Path]) -> None:
    world, dep_file, bundle_file = cli_files
    assert world.node is not None
    common = ("--rpc", world.node.url, "--deployment", str(dep_file))
    code, out = run_cli(str(bundle_file), *common)
    assert code == 0, out
    for check in CHECKS:
        assert f"✓ {check}" in out, out
    assert "VALID" in out and "INVALID" not in out

    code, out = run_cli(str(bundle_file), *common, "--on-chain")
    assert code == 0, out
    assert "on chain (ReadingAnchor.verifyReading): valid" in out and "agree" in out

    code, out = run_cli("-", *common, stdin=bundle_file.read_text())
    assert code == 0, out

    tampered = bundle_file.with_name("tampered.json")
    base = world.base("p256")
    tampered.write_text(base.replace(root=flip(base.root, 0)).to_json())
    code, out = run_cli(str(tampered), *common, "--on-chain")
    assert code == 1, out
    assert "✓ batch" in out and "✗ root" in out and "· inclusion" in out and "not checked" in out
    assert "INVALID (verify.root_mismatch)" in out
    assert "agree: offline and on-chain verdicts are both invalid (verify.root_mismatch)" in out

    code, out = run_cli(str(tampered), *common, "--min-confirmations", "1000")
    assert code == 1 and "verify.root_mismatch" in out

    code, out = run_cli(str(bundle_file), *common, "--min-confirmations", "100000")
    assert code == 1 and "verify.insufficient_confirmations" in out and "✗ anchor tx" in out


@pytest.mark.anvil
@pytest.mark.parametrize("world", ["anvil"], indirect=True)
def test_cli_input_errors(cli_files: tuple[World, Path, Path]) -> None:
    world, dep_file, bundle_file = cli_files
    assert world.node is not None
    common = ("--rpc", world.node.url, "--deployment", str(dep_file))
    code, out = run_cli(str(bundle_file.with_name("nope.json")), *common)
    assert code == 2 and "no such file" in out
    garbage = bundle_file.with_name("garbage.json")
    garbage.write_text('{"reading": 1}')
    code, out = run_cli(str(garbage), *common)
    assert code == 1 and "INVALID (verify.bundle_format)" in out
    code, out = run_cli(str(bundle_file), *common, "--min-confirmations", "-1")
    assert code == 2


@pytest.mark.anvil
@pytest.mark.parametrize("world", ["anvil"], indirect=True)
def test_cli_reports_a_disagreement(
    cli_files: tuple[World, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Should the two verifiers ever disagree, the command says so and fails."""
    world, dep_file, bundle_file = cli_files
    assert world.node is not None

    def lenient(self: BundleVerifier, bundle: ProofBundle, *, min_confirmations: int = 0) -> bytes:
        return bundle.digest

    monkeypatch.setattr(BundleVerifier, "verify_on_chain", lenient)
    base = world.base("p256")
    bundle_file.write_text(base.replace(proof=base.proof[:-1]).to_json())
    code, out = run_cli(
        str(bundle_file), "--rpc", world.node.url, "--deployment", str(dep_file), "--on-chain"
    )
    assert code == 1, out
    assert "DISAGREE: offline says invalid (verify.not_included), on chain says valid" in out
    assert "verify.disagreement" in out


@pytest.mark.anvil
@pytest.mark.parametrize("world", ["anvil"], indirect=True)
def test_cli_verifies_a_directory(cli_files: tuple[World, Path, Path], tmp_path: Path) -> None:
    """`supet verify DIR`: every *.json in one run, a line per file, a summary; exit 1 if any fails."""
    world, dep_file, _ = cli_files
    assert world.node is not None
    common = ("--rpc", world.node.url, "--deployment", str(dep_file))
    good = tmp_path / "good"
    good.mkdir()
    valid = [*world.vectors, *world.generated]
    for i, b in enumerate(valid):
        (good / f"{i:03}.json").write_text(b.to_json())
    (good / "notes.txt").write_text("not a bundle, not read")
    code, out = run_cli(str(good), *common, "--on-chain")
    assert code == 0, out
    assert out.count("✓ ") == len(valid) and f"VALID: all {len(valid)} bundle(s)" in out, out
    assert "DISAGREE" not in out

    mixed = tmp_path / "mixed"
    mixed.mkdir()
    bundles = mixed_directory(world)
    for i, b in enumerate(bundles):
        (mixed / f"{i:03}.json").write_text(b.to_json())
    (mixed / "zzz-garbage.json").write_text('{"reading": 1}')
    code, out = run_cli(str(mixed), *common)
    assert code == 1, out
    lines = [line for line in out.splitlines() if line[:1] in ("✓", "✗")]
    assert len(lines) == len(bundles) + 1
    expected = one_by_one(world, bundles)
    for line, want in zip(lines, expected, strict=False):
        assert line.startswith("✓") == (want[0] == "valid"), line
        if want[0] != "valid":
            assert f"INVALID ({want[1]})" in line, line
    assert "zzz-garbage.json: INVALID (verify.bundle_format)" in lines[-1]
    failed = sum(1 for v in expected if v[0] != "valid") + 1
    assert f"INVALID: {failed} of {len(bundles) + 1} bundle(s)" in out

    empty = tmp_path / "empty"
    empty.mkdir()
    code, out = run_cli(str(empty), *common)
    assert code == 2 and "holds no *.json" in " ".join(out.replace("│", " ").split()), out


def test_cli_help() -> None:
    code, out = run_cli("--help")
    assert code == 0
    for fragment in (
        "BUNDLE.json",
        "--rpc",
        "--deployment",
        "--min-confirmations",
        "--on-chain",
        "verifyReading",
    ):
        assert fragment in out
