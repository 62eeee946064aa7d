"""Birth attestations and on-chain proofs of possession (issue 12, finding 2), chain-free.

The digests are checked against eth-account's own EIP-712 encoder (an independent implementation);
the registry's side is tested on both chains in tests/contracts/test_device_registry.py.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from eth_account.messages import encode_typed_data
from eth_utils import keccak

from device_attestation.birth import (
    BirthAttestation,
    attest_birth,
    birth_digest,
    birth_path,
    ca_public_point,
    possession_digest,
    sign_possession,
    verify_possession,
)
from device_attestation.certificates import ca_key_hash, certificate_fingerprint, make_device_csr
from device_attestation.errors import CertificateInvalid, KeyMismatch, ProofOfPossessionFailed
from device_attestation.keys import DeviceKey, Scheme
from device_attestation.manufacturer_ca import create_manufacturer_ca, issue_device_certificate

REGISTRY = "0x" + "ab" * 20
OWNER = "0x" + "12" * 20


def _eip712(domain: dict[str, Any], types: dict[str, Any], primary: str, message: dict[str, Any]) -> bytes:
    domain_type = [{"name": "name", "type": "string"}, {"name": "version", "type": "string"}]
    if "chainId" in domain:
        domain_type += [
            {"name": "chainId", "type": "uint256"},
            {"name": "verifyingContract", "type": "address"},
        ]
    signable = encode_typed_data(
        full_message={
            "types": {"EIP712Domain": domain_type, **types},
            "domain": domain,
            "primaryType": primary,
            "message": message,
        }
    )
    return keccak(b"\x19" + signable.version + signable.header + signable.body)


@pytest.fixture(scope="module")
def ca() -> tuple[Any, Any]:
    return create_manufacturer_ca(common_name="Birth CA", organization="Birth Tests", valid_days=30)


def issue(ca: tuple[Any, Any], device_id: str, scheme: str = "p256") -> tuple[DeviceKey, Any]:
    key = DeviceKey.generate(scheme)
    cert = issue_device_certificate(
        ca_key=ca[0],
        ca_cert=ca[1],
        csr=make_device_csr(key, device_id),
        valid_days=10,
        not_before=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1),
    )
    return key, cert


@pytest.mark.parametrize("scheme", ["p256", "secp256k1"])
def test_digests_are_eip712_as_eth_account_computes_them(scheme: str) -> None:
    key = DeviceKey.generate(scheme)
    pub, fingerprint = key.public_key, keccak(b"certificate")
    p256 = pub.scheme is Scheme.P256
    birth_types = {
        "DeviceBirth": [
            {"name": "deviceId", "type": "bytes32"},
            {"name": "scheme", "type": "uint8"},
            {"name": "keyX", "type": "bytes32"},
            {"name": "keyY", "type": "bytes32"},
            {"name": "signer", "type": "address"},
            {"name": "certFingerprint", "type": "bytes32"},
        ]
    }
    expected = _eip712(
        {"name": "supET Device Birth", "version": "1"},
        birth_types,
        "DeviceBirth",
        {
            "deviceId": keccak(b"SN-1"),
            "scheme": 1 if p256 else 2,
            "keyX": pub.x.to_bytes(32, "big") if p256 else bytes(32),
            "keyY": pub.y.to_bytes(32, "big") if p256 else bytes(32),
            "signer": "0x" + "00" * 20 if p256 else pub.eth_address,
            "certFingerprint": fingerprint,
        },
    )
    assert birth_digest("SN-1", pub, fingerprint) == expected
    possession_types = {
        "DevicePossession": [{"name": "deviceId", "type": "bytes32"}, {"name": "owner", "type": "address"}]
    }
    domain = {"name": "supET DeviceRegistry", "version": "1", "chainId": 31337, "verifyingContract": REGISTRY}
    expected = _eip712(
        domain, possession_types, "DevicePossession", {"deviceId": keccak(b"SN-1"), "owner": OWNER}
    )
    assert possession_digest("SN-1", OWNER, chain_id=31337, registry=REGISTRY) == expected


@pytest.mark.parametrize("scheme", ["p256", "secp256k1"])
def test_attest_verify_and_round_trip(ca: tuple[Any, Any], scheme: str, tmp_path: Path) -> None:
    key, cert = issue(ca, f"SN-BIRTH-{scheme}", scheme)
    birth = attest_birth(ca_key=ca[0], ca_cert=ca[1], certificate=cert)
    assert birth.device_id == f"SN-BIRTH-{scheme}" and birth.public_key == key.public_key
    assert birth.cert_fingerprint == certificate_fingerprint(cert) and birth.ca_key_hash == ca_key_hash(ca[1])
    assert len(birth.signature) == 64  # the CA's P-256 signature, r || s
    birth.verify(ca[1])
    birth.check_certificate(cert)
    path = birth_path(tmp_path / "device.cert.pem")
    assert path.name == "device.cert.birth.json"
    birth.save(path)
    assert BirthAttestation.load(path) == birth
    assert BirthAttestation.from_json(birth.to_json()) == birth
    x, y = ca_public_point(ca[1])
    assert x > 0 and y > 0


def test_birth_refusals(ca: tuple[Any, Any]) -> None:
    other_ca = create_manufacturer_ca(common_name="Other CA", organization="Other", valid_days=30)
    _, cert = issue(ca, "SN-BIRTH-REF")
    _, other_cert = issue(ca, "SN-BIRTH-OTHER")
    birth = attest_birth(ca_key=ca[0], ca_cert=ca[1], certificate=cert)
    with pytest.raises(CertificateInvalid) as info:
        attest_birth(ca_key=other_ca[0], ca_cert=other_ca[1], certificate=cert)  # it did not issue it
    assert info.value.code == "birth.not_issued_by_ca"
    with pytest.raises(KeyMismatch):
        attest_birth(ca_key=other_ca[0], ca_cert=ca[1], certificate=cert)  # not the CA certificate's key
    with pytest.raises(CertificateInvalid) as info:
        birth.verify(other_ca[1])
    assert info.value.code == "birth.other_ca"
    forged = BirthAttestation(
        device_id=birth.device_id,
        public_key=birth.public_key,
        cert_fingerprint=birth.cert_fingerprint,
        ca_key_hash=birth.ca_key_hash,
        signature=bytes([birth.signature[0] ^ 1]) + birth.signature[1:],
    )
    with pytest.raises(CertificateInvalid) as info:
        forged.verify(ca[1])
    assert info.value.code == "birth.signature"
    with pytest.raises(KeyMismatch) as mismatch:
        birth.check_certificate(other_cert)
    assert mismatch.value.code == "birth.certificate"
    for garbage in ({"type": "x"}, {**birth.to_json(), "signature": "0x12"}, [], None):
        with pytest.raises(CertificateInvalid) as info:
            BirthAttestation.from_json(garbage)
        assert info.value.code == "birth.parse"


@pytest.mark.parametrize("scheme", ["p256", "secp256k1"])
def test_possession_is_bound_to_owner_chain_and_registry(scheme: str) -> None:
    key = DeviceKey.generate(scheme)
    proof = sign_possession(key, device_id="SN-POP", owner=OWNER, chain_id=31337, registry=REGISTRY)
    verify_possession(
        key.public_key, proof, device_id="SN-POP", owner=OWNER, chain_id=31337, registry=REGISTRY
    )
    others: list[dict[str, Any]] = [
        {"device_id": "SN-POP", "owner": "0x" + "34" * 20, "chain_id": 31337, "registry": REGISTRY},
        {"device_id": "SN-POP", "owner": OWNER, "chain_id": 1, "registry": REGISTRY},
        {"device_id": "SN-POP", "owner": OWNER, "chain_id": 31337, "registry": "0x" + "cd" * 20},
        {"device_id": "SN-OTHER", "owner": OWNER, "chain_id": 31337, "registry": REGISTRY},
    ]
    for other in others:
        with pytest.raises(ProofOfPossessionFailed) as info:
            verify_possession(key.public_key, proof, **other)
        assert info.value.code == "pop.on_chain"
    with pytest.raises(ProofOfPossessionFailed):
        verify_possession(
            DeviceKey.generate(scheme).public_key,
            proof,
            device_id="SN-POP",
            owner=OWNER,
            chain_id=31337,
            registry=REGISTRY,
        )
