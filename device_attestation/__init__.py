"""supET Ledger device attestation: readings, device keys, signatures, batch proofs.

* :mod:`.reading` -- the Reading v1 model and its EIP-712 digest
* :mod:`.keys` -- P-256 and secp256k1 device keys and key files
* :mod:`.signing` -- sign and verify reading digests
* :mod:`.merkle` -- batch trees as ``@openzeppelin/merkle-tree`` builds them
* :mod:`.certificates` -- X.509 device identity and proof of possession
* :mod:`.sdk` -- a small device-side signer
* :mod:`.errors` -- every error raised here
"""

from __future__ import annotations

from .certificates import (
    POP_TAG,
    Challenge,
    VerifiedDevice,
    ca_key_hash,
    certificate_fingerprint,
    challenge_digest,
    check_key_matches,
    load_certificate,
    make_device_csr,
    new_challenge,
    prove_possession,
    verify_device_certificate,
    verify_proof_of_possession,
)
from .errors import (
    AttestationError,
    BadSignature,
    CertificateError,
    CertificateExpired,
    CertificateInvalid,
    HighSSignature,
    InvalidDomain,
    InvalidReading,
    KeyFileError,
    KeyMismatch,
    MerkleError,
    ProofMismatch,
    ProofOfPossessionFailed,
    SignatureError,
    SignatureLengthError,
    StaleChallenge,
    UnknownScheme,
    UntrustedCA,
    WrongKeyType,
)
from .keys import DeviceKey, DevicePublicKey, Scheme, parse_scheme
from .manufacturer_ca import create_manufacturer_ca, issue_device_certificate
from .merkle import MerkleTree, hash_pair, leaf_hash, process_proof, verify_inclusion
from .reading import (
    READING_TYPE,
    READING_TYPEHASH,
    Domain,
    Micro,
    Reading,
    ReadingStruct,
    domain_separator,
    hash_struct,
    reading_digest,
    reading_struct,
    to_fixed_point,
)
from .sdk import DeviceSigner, Submission
from .signing import PublicKeyOrAddress, check_reading, sign_digest, verify_signature

__all__ = [
    "POP_TAG",
    "READING_TYPE",
    "READING_TYPEHASH",
    "AttestationError",
    "BadSignature",
    "CertificateError",
    "CertificateExpired",
    "CertificateInvalid",
    "Challenge",
    "DeviceKey",
    "DevicePublicKey",
    "DeviceSigner",
    "Domain",
    "HighSSignature",
    "InvalidDomain",
    "InvalidReading",
    "KeyFileError",
    "KeyMismatch",
    "MerkleError",
    "MerkleTree",
    "Micro",
    "ProofMismatch",
    "ProofOfPossessionFailed",
    "PublicKeyOrAddress",
    "Reading",
    "ReadingStruct",
    "Scheme",
    "SignatureError",
    "SignatureLengthError",
    "StaleChallenge",
    "Submission",
    "UnknownScheme",
    "UntrustedCA",
    "VerifiedDevice",
    "WrongKeyType",
    "ca_key_hash",
    "certificate_fingerprint",
    "challenge_digest",
    "check_key_matches",
    "check_reading",
    "create_manufacturer_ca",
    "domain_separator",
    "hash_pair",
    "hash_struct",
    "issue_device_certificate",
    "leaf_hash",
    "load_certificate",
    "make_device_csr",
    "new_challenge",
    "parse_scheme",
    "process_proof",
    "prove_possession",
    "reading_digest",
    "reading_struct",
    "sign_digest",
    "to_fixed_point",
    "verify_device_certificate",
    "verify_inclusion",
    "verify_proof_of_possession",
    "verify_signature",
]
