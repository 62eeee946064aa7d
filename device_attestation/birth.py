"""What the DeviceRegistry checks on chain at enrollment (issue 12, finding 2): EIP-712 typed data.

* A **birth attestation**: the manufacturer CA's P-256 key signs
  ``DeviceBirth(bytes32 deviceId, uint8 scheme, bytes32 keyX, bytes32 keyY, address signer,
  bytes32 certFingerprint)`` under the domain ``{name: "supET Device Birth", version: "1"}``,
  which names no chain and no contract: the CA attests a device once, when it certifies it
  (``supet ca issue`` writes it beside the certificate, :func:`birth_path`), for every
  registry. P-256 devices give ``keyX``/``keyY`` (``signer`` zero), secp256k1 devices their
  Ethereum address as ``signer`` (``keyX``/``keyY`` zero): the key as the registry stores it.
* A **proof of possession**: the device's key signs ``DevicePossession(bytes32 deviceId,
  address owner)`` under the registry's domain ``{name: "supET DeviceRegistry", version: "1",
  chainId, verifyingContract}``: bound to the enrolling owner, the chain and the registry.

``deviceId`` is ``keccak256(utf8(serial))``. Signatures: P-256 64 bytes ``r || s`` (low s),
secp256k1 65 bytes ``r || s || v`` (what :func:`device_attestation.signing.sign_digest` makes).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec

from ._internal.hexutil import address_bytes, hex0x, parse_hex
from ._internal.keccak import keccak256
from .certificates import ca_key_hash, certificate_fingerprint, check_key_matches
from .errors import CertificateInvalid, KeyMismatch, ProofOfPossessionFailed, SignatureError
from .keys import DeviceKey, DevicePublicKey, Scheme
from .signing import sign_digest, verify_signature

__all__ = [
    "BIRTH_DOMAIN_SEPARATOR",
    "BIRTH_FILE_TYPE",
    "DEVICE_BIRTH_TYPEHASH",
    "DEVICE_POSSESSION_TYPEHASH",
    "REGISTRY_DOMAIN_NAME",
    "BirthAttestation",
    "attest_birth",
    "birth_digest",
    "birth_path",
    "ca_public_point",
    "possession_digest",
    "registry_domain_separator",
    "sign_possession",
    "verify_possession",
]

DEVICE_BIRTH_TYPEHASH: Final = keccak256(
    b"DeviceBirth(bytes32 deviceId,uint8 scheme,bytes32 keyX,bytes32 keyY,address signer,"
    b"bytes32 certFingerprint)"
)
DEVICE_POSSESSION_TYPEHASH: Final = keccak256(b"DevicePossession(bytes32 deviceId,address owner)")
BIRTH_DOMAIN_SEPARATOR: Final = keccak256(
    keccak256(b"EIP712Domain(string name,string version)")
    + keccak256(b"supET Device Birth")
    + keccak256(b"1")
)
REGISTRY_DOMAIN_NAME: Final = "supET DeviceRegistry"
_FULL_DOMAIN_TYPEHASH: Final = keccak256(
    b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)
#: The ``type`` of an attestation file.
BIRTH_FILE_TYPE: Final = "supET DeviceBirth v1"
#: ``DeviceRegistry.Scheme`` numbers.
_ON_CHAIN_SCHEME: Final = {Scheme.P256: 1, Scheme.SECP256K1: 2}


def _word(value: int) -> bytes:
    return value.to_bytes(32, "big")


def _device_id_hash(device_id: str) -> bytes:
    return keccak256(device_id.encode("utf-8"))


def _key_words(public_key: DevicePublicKey) -> bytes:
    """``keyX || keyY || signer`` as the registry stores the key."""
    if public_key.scheme is Scheme.P256:
        return _word(public_key.x) + _word(public_key.y) + bytes(32)
    return bytes(64) + bytes(12) + address_bytes(public_key.eth_address)


def birth_digest(device_id: str, public_key: DevicePublicKey, cert_fingerprint: bytes) -> bytes:
    """The 32-byte EIP-712 digest a CA signs to attest ``device_id``'s key and certificate."""
    if len(cert_fingerprint) != 32:
        raise CertificateInvalid(
            f"a certificate fingerprint is 32 bytes (SHA-256), got {len(cert_fingerprint)}; "
            "pass certificate_fingerprint(cert)",
            code="birth.fingerprint",
        )
    struct_hash = keccak256(
        DEVICE_BIRTH_TYPEHASH
        + _device_id_hash(device_id)
        + _word(_ON_CHAIN_SCHEME[public_key.scheme])
        + _key_words(public_key)
        + bytes(cert_fingerprint)
    )
    return keccak256(b"\x19\x01" + BIRTH_DOMAIN_SEPARATOR + struct_hash)


def registry_domain_separator(chain_id: int, registry: str) -> bytes:
    """The EIP-712 domain separator of the DeviceRegistry at ``registry`` on chain ``chain_id``."""
    return keccak256(
        _FULL_DOMAIN_TYPEHASH
        + keccak256(REGISTRY_DOMAIN_NAME.encode("utf-8"))
        + keccak256(b"1")
        + _word(chain_id)
        + bytes(12)
        + address_bytes(registry)
    )


def possession_digest(device_id: str, owner: str, *, chain_id: int, registry: str) -> bytes:
    """The 32-byte EIP-712 digest a device signs to prove it holds its key, for ``owner``."""
    struct_hash = keccak256(
        DEVICE_POSSESSION_TYPEHASH + _device_id_hash(device_id) + bytes(12) + address_bytes(owner)
    )
    return keccak256(b"\x19\x01" + registry_domain_separator(chain_id, registry) + struct_hash)


def sign_possession(key: DeviceKey, *, device_id: str, owner: str, chain_id: int, registry: str) -> bytes:
    """The device side: its proof of possession for ``owner`` at one registry."""
    return sign_digest(key, possession_digest(device_id, owner, chain_id=chain_id, registry=registry))


def verify_possession(
    public_key: DevicePublicKey,
    signature: bytes,
    *,
    device_id: str,
    owner: str,
    chain_id: int,
    registry: str,
) -> None:
    """Check a proof of possession as the registry will; ``None`` or :class:`ProofOfPossessionFailed`."""
    digest = possession_digest(device_id, owner, chain_id=chain_id, registry=registry)
    try:
        verify_signature(public_key.scheme, public_key, digest, signature)
    except SignatureError as e:
        raise ProofOfPossessionFailed(
            f"the proof of possession is not the device key's signature for owner {owner} at registry "
            f"{registry} on chain {chain_id} ({e.message}); the device must sign "
            "possession_digest(device_id, owner, chain_id=, registry=) with its own key",
            code="pop.on_chain",
        ) from e


def ca_public_point(ca_cert: x509.Certificate) -> tuple[int, int]:
    """The CA's P-256 public key (x, y), what ``DeviceRegistry.trustCA`` registers;
    :class:`CertificateInvalid` for another kind of key."""
    public = ca_cert.public_key()
    if not isinstance(public, ec.EllipticCurvePublicKey) or not isinstance(public.curve, ec.SECP256R1):
        raise CertificateInvalid(
            f"CA {ca_cert.subject.rfc4514_string()!r} has no P-256 key: the registry verifies birth "
            "attestations with P-256 CA keys only; use a P-256 manufacturer CA",
            code="birth.ca_key_type",
        )
    numbers = public.public_numbers()
    return numbers.x, numbers.y


def birth_path(certificate_path: Path) -> Path:
    """Where the birth attestation of a certificate file lives: ``device.cert.pem`` ->
    ``device.cert.birth.json`` (beside it)."""
    stem = certificate_path.name
    for suffix in (".pem", ".der", ".crt"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    return certificate_path.with_name(stem + ".birth.json")


@dataclass(frozen=True, kw_only=True, slots=True)
class BirthAttestation:
    """A CA's EIP-712 birth attestation of one device (see the module docstring)."""

    device_id: str
    public_key: DevicePublicKey
    cert_fingerprint: bytes
    ca_key_hash: bytes
    signature: bytes

    @property
    def digest(self) -> bytes:
        return birth_digest(self.device_id, self.public_key, self.cert_fingerprint)

    def verify(self, ca_cert: x509.Certificate) -> None:
        """Check it is ``ca_cert``'s signature; ``None`` or :class:`CertificateInvalid`."""
        if ca_key_hash(ca_cert) != self.ca_key_hash:
            raise CertificateInvalid(
                f"the birth attestation of {self.device_id!r} names CA {hex0x(self.ca_key_hash)}, "
                f"not {ca_cert.subject.rfc4514_string()!r} ({hex0x(ca_key_hash(ca_cert))}); "
                "pass the attestation the device's own CA issued",
                code="birth.other_ca",
            )
        x, y = ca_public_point(ca_cert)
        ca_key = DevicePublicKey(scheme=Scheme.P256, x=x, y=y)
        try:
            verify_signature(Scheme.P256, ca_key, self.digest, self.signature)
        except SignatureError as e:
            raise CertificateInvalid(
                f"the birth attestation of {self.device_id!r} is not the CA's signature ({e.message}); "
                "have the CA issue it again (`supet ca attest`)",
                code="birth.signature",
            ) from e

    def check_certificate(self, certificate: x509.Certificate) -> None:
        """Check it attests ``certificate`` (its fingerprint and key); :class:`KeyMismatch` if not."""
        if certificate_fingerprint(certificate) != self.cert_fingerprint:
            raise KeyMismatch(
                f"the birth attestation of {self.device_id!r} is for certificate "
                f"{hex0x(self.cert_fingerprint)}, not this one; use the attestation issued with it",
                code="birth.certificate",
            )
        check_key_matches(certificate, self.public_key)

    def to_json(self) -> dict[str, Any]:
        pub = self.public_key
        key: dict[str, str] = (
            {"x": hex0x(_word(pub.x)), "y": hex0x(_word(pub.y))}
            if pub.scheme is Scheme.P256
            else {"x": hex0x(_word(pub.x)), "y": hex0x(_word(pub.y)), "address": pub.eth_address}
        )
        return {
            "type": BIRTH_FILE_TYPE,
            "device_id": self.device_id,
            "scheme": pub.scheme.value,
            "key": key,
            "cert_fingerprint": hex0x(self.cert_fingerprint),
            "ca_key_hash": hex0x(self.ca_key_hash),
            "signature": hex0x(self.signature),
        }

    @classmethod
    def from_json(cls, data: object) -> BirthAttestation:
        """From :meth:`to_json`'s form; :class:`CertificateInvalid` for anything else."""
        try:
            if not isinstance(data, dict) or data.get("type") != BIRTH_FILE_TYPE:
                raise ValueError(f"it is not a {BIRTH_FILE_TYPE!r} object")
            key = data["key"]
            public = DevicePublicKey(
                scheme=data["scheme"],
                x=int.from_bytes(parse_hex(key["x"], length=32), "big"),
                y=int.from_bytes(parse_hex(key["y"], length=32), "big"),
            )
            return cls(
                device_id=str(data["device_id"]),
                public_key=public,
                cert_fingerprint=parse_hex(data["cert_fingerprint"], length=32),
                ca_key_hash=parse_hex(data["ca_key_hash"], length=32),
                signature=parse_hex(data["signature"], length=64),
            )
        except (KeyError, TypeError, ValueError, SignatureError) as e:
            raise CertificateInvalid(
                f"cannot read the birth attestation ({type(e).__name__}: {e}); "
                "use the file `supet ca issue` or `supet ca attest` wrote",
                code="birth.parse",
            ) from e

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> BirthAttestation:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise CertificateInvalid(
                f"cannot read the birth attestation {path} ({e}); have the CA write it "
                "(`supet ca issue`, or `supet ca attest` for a certificate made elsewhere)",
                code="birth.parse",
            ) from e
        return cls.from_json(data)


def _common_name(certificate: x509.Certificate) -> str:
    from ._internal.x509util import _common_name as cn  # the certificates' CN rule, one place

    return cn(certificate.subject, "the device certificate")


def attest_birth(
    *, ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, certificate: x509.Certificate
) -> BirthAttestation:
    """The CA side: attest a device certificate ``ca_cert`` issued (made by us or by OpenSSL).

    Checks that ``ca_key`` is ``ca_cert``'s key (P-256) and that ``ca_cert`` signed ``certificate``;
    :class:`KeyMismatch` or :class:`CertificateInvalid` otherwise.
    """
    ca_point = ca_public_point(ca_cert)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey) or not isinstance(ca_key.curve, ec.SECP256R1):
        raise CertificateInvalid(
            "the registry verifies birth attestations with P-256 CA keys only; use a P-256 CA key",
            code="birth.ca_key_type",
        )
    numbers = ca_key.public_key().public_numbers()
    if (numbers.x, numbers.y) != ca_point:
        raise KeyMismatch(
            "ca_key is not the private key of ca_cert; pass the CA certificate that belongs to this key",
            code="certificate.ca_key_mismatch",
        )
    try:
        certificate.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm) as e:
        raise CertificateInvalid(
            f"the certificate was not issued by {ca_cert.subject.rfc4514_string()!r} "
            f"({e or type(e).__name__}); "
            "attest only certificates this CA signed",
            code="birth.not_issued_by_ca",
        ) from e
    public = DevicePublicKey.from_cryptography(certificate.public_key())
    device_id = _common_name(certificate)
    fingerprint = certificate_fingerprint(certificate)
    digest = birth_digest(device_id, public, fingerprint)
    return BirthAttestation(
        device_id=device_id,
        public_key=public,
        cert_fingerprint=fingerprint,
        ca_key_hash=ca_key_hash(ca_cert),
        signature=sign_digest(DeviceKey.from_cryptography(ca_key), digest),
    )
