"""DeviceRegistry on both chains: CAs, enrollment, the admission gate, revocation (only earlier, the
owner's capped at now and after pinned evidence, the operator's ruling with a reason), every revert.

Enrollments carry the CA's birth attestation and the device's proof of possession (issue 12.2):
the helpers sign them with real keys unless a test forges them; the attacks themselves are at the
end ("issue 12.2").

Each refused call is checked twice: the custom error and its arguments, and that the
registry's observable state (devices, trusted CAs, gate) and the block height are as
they were before it.
"""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from eth_abi import encode
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from support import reverts
from web3.logs import DISCARD

from contracts.chain import Chain, TxResult
from device_attestation.keys import DeviceKey
from device_attestation.signing import sign_digest

OPERATOR_ROLE = keccak(b"supet.role.operator")
ENROLLER_ROLE = keccak(b"supet.role.enroller")
ENROLL_ACTION = keccak(b"supet.device.enroll")
EVIDENCE_ROLE = keccak(b"supet.role.evidence")
DEFAULT_ADMIN_ROLE = bytes(32)
ZERO_ADDRESS = "0x" + "00" * 20

NONE, P256, SECP256K1 = 0, 1, 2
#: The P-256 group order.
P256_N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
#: The P-256 field prime and curve constant b (a = -3).
P256_P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
P256_B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
#: Two P-256 points with a small coordinate, so that coordinate + p still fits in 256 bits:
#: (x + p, y) and (x, y + p) satisfy the curve equation mod p but are out of range.
SMALL_X_POINT = (5, 0x459243B9AA581806FE913BCE99817ADE11CA503C64D9A3C533415C083248FBCC)
SMALL_Y_POINT = (0x8D0177EBAB9C6E9E10DB6DD095DBAC0D6375E8A97B70F611875D877F0069D2C7, 1)

#: Two manufacturer CA keys (fixed, so their ids are module constants); only CA_KEY is trusted by default.
CA_KEY = ec.derive_private_key(0xCA11AB1E, ec.SECP256R1())
OTHER_CA_KEY = ec.derive_private_key(0x0CA22222, ec.SECP256R1())
#: The DER prefix of a P-256 SubjectPublicKeyInfo with an uncompressed point.
P256_SPKI_PREFIX = bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d03010703420004")
FINGERPRINT = keccak(b"device certificate")
#: Activation of the test devices: 2100-01-01, after any test's enrollment block (the registry refuses
#: activations before the enrollment block); tests that revoke as the owner move the chain past it first
#: (:meth:`Registry.live`), since an owner's revocation time is at most now.
ACTIVE_FROM = 4_102_444_800_000
UINT64_MAX = 2**64 - 1


def ca_point(key: ec.EllipticCurvePrivateKey) -> tuple[bytes, bytes]:
    n = key.public_key().public_numbers()
    return n.x.to_bytes(32, "big"), n.y.to_bytes(32, "big")


def ca_hash(key: ec.EllipticCurvePrivateKey) -> bytes:
    """The CA's id: keccak-256 of its SubjectPublicKeyInfo DER."""
    return keccak(P256_SPKI_PREFIX + b"".join(ca_point(key)))


CA = ca_hash(CA_KEY)
OTHER_CA = ca_hash(OTHER_CA_KEY)


def did(serial: str) -> bytes:
    return keccak(serial.encode())


def word(n: int) -> bytes:
    return n.to_bytes(32, "big")


def p256_key() -> DeviceKey:
    """A fresh P-256 device key."""
    return DeviceKey.generate("p256")


def k1_signer() -> DeviceKey:
    """A fresh secp256k1 device key (its address is what the registry stores)."""
    return DeviceKey.generate("secp256k1")


#: A device key as the tests pass it: a key pair (signs its proofs) or bare public words (no proof).
KeyArg = DeviceKey | tuple[bytes, bytes] | str


def words(key: KeyArg) -> tuple[bytes, bytes]:
    if isinstance(key, DeviceKey):
        return word(key.public_key.x), word(key.public_key.y)
    assert isinstance(key, tuple)
    return key


def address_of(key: KeyArg) -> str:
    if isinstance(key, DeviceKey):
        return key.public_key.eth_address
    assert isinstance(key, str)
    return key


def key_hash_p256(x: bytes, y: bytes) -> bytes:
    return keccak(encode(["uint8", "bytes32", "bytes32"], [P256, x, y]))


def key_hash_k1(signer: str) -> bytes:
    return keccak(encode(["uint8", "address"], [SECP256K1, signer]))


def warp(chain: Chain, timestamp: int) -> None:
    """Move the chain's clock forward to ``timestamp`` (s): anvil, or the embedded chain's tester."""
    if chain.is_embedded:
        chain.w3.provider.ethereum_tester.time_travel(timestamp)  # type: ignore[attr-defined]
    else:  # the next block's time, then a block at it: calls and estimates run at it from then on
        chain.warp(timestamp)
        chain.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]


def birth_signature(
    ca_key: ec.EllipticCurvePrivateKey,
    device_id: bytes,
    scheme: int,
    key: tuple[bytes, bytes] | None,
    signer: str | None,
    fingerprint: bytes,
) -> bytes:
    """The CA's EIP-712 DeviceBirth signature, built here from the spec (not from the Python library)."""
    typehash = keccak(
        b"DeviceBirth(bytes32 deviceId,uint8 scheme,bytes32 keyX,bytes32 keyY,address signer,"
        b"bytes32 certFingerprint)"
    )
    x, y = key if key is not None else (bytes(32), bytes(32))
    struct = keccak(
        encode(
            ["bytes32", "bytes32", "uint8", "bytes32", "bytes32", "address", "bytes32"],
            [typehash, device_id, scheme, x, y, signer or ZERO_ADDRESS, fingerprint],
        )
    )
    domain = keccak(
        encode(
            ["bytes32", "bytes32", "bytes32"],
            [
                keccak(b"EIP712Domain(string name,string version)"),
                keccak(b"supET Device Birth"),
                keccak(b"1"),
            ],
        )
    )
    return sign_digest(DeviceKey.from_cryptography(ca_key), keccak(b"\x19\x01" + domain + struct))


def possession_signature(key: DeviceKey, device_id: bytes, owner: str, chain_id: int, registry: str) -> bytes:
    """The device's EIP-712 DevicePossession signature for ``owner`` at ``registry`` on ``chain_id``."""
    domain = keccak(
        encode(
            ["bytes32", "bytes32", "bytes32", "uint256", "address"],
            [
                keccak(b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
                keccak(b"supET DeviceRegistry"),
                keccak(b"1"),
                chain_id,
                registry,
            ],
        )
    )
    struct = keccak(
        encode(
            ["bytes32", "bytes32", "address"],
            [keccak(b"DevicePossession(bytes32 deviceId,address owner)"), device_id, owner],
        )
    )
    return sign_digest(key, keccak(b"\x19\x01" + domain + struct))


def on_curve(x: int, y: int) -> bool:
    return (y * y - (x * x * x - 3 * x + P256_B)) % P256_P == 0


class Registry:
    """The suite's DeviceRegistry with a trusted CA and two parties holding ENROLLER_ROLE.

    accounts: 0 operator (admin + operator), 1 and 2 enrollers, 5 outsider (no role).
    """

    def __init__(self, suite: Any, *, trust: bool = True) -> None:
        self.suite = suite
        self.chain = suite.chain
        self.c = suite.contract("DeviceRegistry")
        self.operator = suite.operator
        self.enroller = suite.accounts[1]
        self.enroller2 = suite.accounts[2]
        self.outsider = suite.accounts[5]
        if trust:
            self.tx(self.c.functions.trustCA(*ca_point(CA_KEY), "Test CA"), self.operator)
        for account in (self.enroller, self.enroller2):
            self.tx(self.c.functions.grantRole(ENROLLER_ROLE, account.address), self.operator)

    def tx(self, fn: Any, sender: LocalAccount) -> TxResult:
        return self.chain.transact(fn, sender)

    def call(self, fn: Any) -> Any:
        return self.chain.call(fn)

    def device(self, device_id: bytes) -> tuple[Any, ...]:
        return tuple(self.call(self.c.functions.device(device_id)))

    def active(self, device_id: bytes, ts_ms: int) -> bool:
        return bool(self.call(self.c.functions.isActiveAt(device_id, ts_ms)))

    def live(self) -> None:
        """Move the chain's clock an hour past ACTIVE_FROM (after the test's enrollments)."""
        warp(self.chain, ACTIVE_FROM // 1000 + 3600)

    def proofs(
        self,
        sender: LocalAccount,
        device_id: bytes,
        scheme: int,
        key: KeyArg,
        fingerprint: bytes,
        *,
        birth_by: ec.EllipticCurvePrivateKey = CA_KEY,
        birth: bytes | None = None,
        possession: bytes | None = None,
    ) -> tuple[bytes, bytes]:
        """The birth attestation (by ``birth_by``) and the proof of possession for ``sender``, unless
        given; a key without its private half gets an empty proof."""
        if birth is None:
            p256 = scheme == P256
            birth = birth_signature(
                birth_by,
                device_id,
                scheme,
                words(key) if p256 else None,
                None if p256 else address_of(key),
                fingerprint,
            )
        if possession is None:
            possession = (
                possession_signature(key, device_id, sender.address, self.chain.chain_id, self.c.address)
                if isinstance(key, DeviceKey)
                else b""
            )
        return birth, possession

    def enroll_p256(
        self,
        sender: LocalAccount,
        device_id: bytes,
        key: KeyArg,
        *,
        fingerprint: bytes = FINGERPRINT,
        ca: bytes = CA,
        active_from: int = ACTIVE_FROM,
        **proofs: Any,
    ) -> TxResult:
        x, y = words(key)
        birth, possession = self.proofs(sender, device_id, P256, key, fingerprint, **proofs)
        fn = self.c.functions.enrollP256(device_id, x, y, fingerprint, ca, active_from, birth, possession)
        return self.tx(fn, sender)

    def enroll_k1(
        self,
        sender: LocalAccount,
        device_id: bytes,
        signer: KeyArg,
        *,
        fingerprint: bytes = FINGERPRINT,
        ca: bytes = CA,
        active_from: int = ACTIVE_FROM,
        **proofs: Any,
    ) -> TxResult:
        birth, possession = self.proofs(sender, device_id, SECP256K1, signer, fingerprint, **proofs)
        fn = self.c.functions.enrollSecp256k1(
            device_id, address_of(signer), fingerprint, ca, active_from, birth, possession
        )
        return self.tx(fn, sender)

    def enroll(self, scheme: int, sender: LocalAccount, device_id: bytes, key: Any, **kw: Any) -> TxResult:
        if scheme == P256:
            return self.enroll_p256(sender, device_id, key, **kw)
        return self.enroll_k1(sender, device_id, key, **kw)

    def state(self, device_ids: list[bytes], cas: tuple[bytes, ...] = (CA, OTHER_CA)) -> Any:
        """Everything a refused call could have touched, plus the block height."""
        return (
            [self.device(d) for d in device_ids],
            [self.call(self.c.functions.isTrustedCA(ca)) for ca in cas],
            self.call(self.c.functions.admissionGate()),
            self.chain.block_number(),
        )


def new_key(scheme: int) -> Any:
    return p256_key() if scheme == P256 else k1_signer()


def key_hash(scheme: int, key: Any) -> bytes:
    return key_hash_p256(*words(key)) if scheme == P256 else key_hash_k1(address_of(key))


SCHEMES = pytest.mark.parametrize("scheme", [P256, SECP256K1], ids=["p256", "secp256k1"])


# ---------------------------------------------------------------- CAs


def test_roles_after_deployment(suite) -> None:  # type: ignore[no-untyped-def]
    c = suite.contract("DeviceRegistry")
    chain = suite.chain
    assert chain.call(c.functions.OPERATOR_ROLE()) == OPERATOR_ROLE
    assert chain.call(c.functions.ENROLLER_ROLE()) == ENROLLER_ROLE
    assert chain.call(c.functions.ENROLL_ACTION()) == ENROLL_ACTION
    op = suite.operator.address
    assert chain.call(c.functions.hasRole(DEFAULT_ADMIN_ROLE, op))
    assert chain.call(c.functions.hasRole(OPERATOR_ROLE, op))
    assert not chain.call(c.functions.hasRole(ENROLLER_ROLE, op))
    assert chain.call(c.functions.admissionGate()) == ZERO_ADDRESS
    assert chain.call(c.functions.device(did("nothing")))[0] == NONE


def test_trust_ca(suite) -> None:  # type: ignore[no-untyped-def]
    r = Registry(suite, trust=False)
    assert not r.call(r.c.functions.isTrustedCA(CA))
    x, y = ca_point(CA_KEY)
    assert r.call(r.c.functions.caKey(CA)) == (False, bytes(32), bytes(32))
    result = r.tx(r.c.functions.trustCA(x, y, "Test CA"), r.operator)
    (event,) = r.c.events.CATrusted().process_receipt(result.receipt)
    assert dict(event["args"]) == {"caKeyHash": CA, "keyX": x, "keyY": y, "label": "Test CA"}
    assert r.call(r.c.functions.isTrustedCA(CA))
    assert r.call(r.c.functions.caKey(CA)) == (True, x, y)
    assert r.call(r.c.functions.caKeyHashOf(x, y)) == CA
    assert not r.call(r.c.functions.isTrustedCA(OTHER_CA))
    assert not r.call(r.c.functions.isTrustedCA(bytes(32)))


def test_ca_ids_are_the_x509_tooling_key_hashes(suite) -> None:  # type: ignore[no-untyped-def]
    # the id the chain computes from the key is ca_key_hash(certificate): ids stay what they were
    from device_attestation.certificates import ca_key_hash
    from device_attestation.manufacturer_ca import create_manufacturer_ca

    r = Registry(suite, trust=False)
    key, cert = create_manufacturer_ca(common_name="Id CA", organization="Ids", valid_days=1)
    result = r.tx(r.c.functions.trustCA(*ca_point(key), "Id CA"), r.operator)
    (event,) = r.c.events.CATrusted().process_receipt(result.receipt)
    assert event["args"]["caKeyHash"] == ca_key_hash(cert)
    assert r.call(r.c.functions.isTrustedCA(ca_key_hash(cert)))


def test_trust_ca_refusals(suite) -> None:  # type: ignore[no-untyped-def]
    r = Registry(suite)
    before = r.state([], (CA, OTHER_CA, bytes(32)))
    # an outsider, and an enroller (a role, but not the operator's)
    for account in (r.outsider, r.enroller):
        with reverts("AccessControlUnauthorizedAccount", account=account.address, neededRole=OPERATOR_ROLE):
            r.tx(r.c.functions.trustCA(*ca_point(OTHER_CA_KEY), "x"), account)
    # not a P-256 key: the origin, an off-curve point, out-of-range coordinates
    for _label, x, y in _invalid_p256_keys():
        with reverts("DeviceRegistryInvalidCAKey", keyX=word(x), keyY=word(y)):
            r.tx(r.c.functions.trustCA(word(x), word(y), "bad"), r.operator)
    with reverts("DeviceRegistryCAAlreadyTrusted", caKeyHash=CA):
        r.tx(r.c.functions.trustCA(*ca_point(CA_KEY), "Test CA again"), r.operator)
    assert r.state([], (CA, OTHER_CA, bytes(32))) == before


def test_distrust_ca(suite) -> None:  # type: ignore[no-untyped-def]
    r = Registry(suite)
    p_id, k_id = did("SN-P-1"), did("SN-K-1")
    r.enroll_p256(r.enroller, p_id, p256_key())
    r.enroll_k1(r.enroller, k_id, k1_signer())
    enrolled = [r.device(p_id), r.device(k_id)]

    before = r.state([p_id, k_id])
    with reverts("DeviceRegistryUntrustedCA", caKeyHash=OTHER_CA):
        r.tx(r.c.functions.distrustCA(OTHER_CA), r.operator)
    with reverts("DeviceRegistryUntrustedCA", caKeyHash=bytes(32)):
        r.tx(r.c.functions.distrustCA(bytes(32)), r.operator)
    for account in (r.outsider, r.enroller):
        with reverts("AccessControlUnauthorizedAccount", account=account.address, neededRole=OPERATOR_ROLE):
            r.tx(r.c.functions.distrustCA(CA), account)
    assert r.state([p_id, k_id]) == before

    result = r.tx(r.c.functions.distrustCA(CA), r.operator)
    (event,) = r.c.events.CADistrusted().process_receipt(result.receipt)
    assert event["args"]["caKeyHash"] == CA
    assert not r.call(r.c.functions.isTrustedCA(CA))

    # enrolled devices stay enrolled and active
    assert [r.device(p_id), r.device(k_id)] == enrolled
    assert r.active(p_id, ACTIVE_FROM) and r.active(k_id, ACTIVE_FROM)

    # new enrollments under it are refused, for both schemes
    before = r.state([p_id, k_id, did("SN-P-2"), did("SN-K-2")])
    with reverts("DeviceRegistryUntrustedCA", caKeyHash=CA):
        r.enroll_p256(r.enroller, did("SN-P-2"), p256_key())
    with reverts("DeviceRegistryUntrustedCA", caKeyHash=CA):
        r.enroll_k1(r.enroller, did("SN-K-2"), k1_signer())
    # distrusting twice is refused as untrusted
    with reverts("DeviceRegistryUntrustedCA", caKeyHash=CA):
        r.tx(r.c.functions.distrustCA(CA), r.operator)
    assert r.state([p_id, k_id, did("SN-P-2"), did("SN-K-2")]) == before

    # trusting it again is allowed (not "already trusted") and enrollment works again
    r.tx(r.c.functions.trustCA(*ca_point(CA_KEY), "Test CA, again"), r.operator)
    r.enroll_k1(r.enroller, did("SN-K-2"), k1_signer())
    assert r.device(did("SN-K-2"))[0] == SECP256K1


# ---------------------------------------------------------------- enrollment: happy paths


def test_enroll_p256(suite) -> None:  # type: ignore[no-untyped-def]
    r = Registry(suite)
    device_id = did("SN-P256-0001")
    key = p256_key()
    x, y = words(key)
    fingerprint = keccak(b"cert of SN-P256-0001")
    result = r.enroll_p256(r.enroller, device_id, key, fingerprint=fingerprint, active_from=ACTIVE_FROM + 7)
    assert r.device(device_id) == (
        P256,
        r.enroller.address,
        ZERO_ADDRESS,
        ACTIVE_FROM + 7,
        0,
        x,
        y,
        fingerprint,
        CA,
    )
    (event,) = r.c.events.DeviceEnrolled().process_receipt(result.receipt)
    assert dict(event["args"]) == {
        "deviceId": device_id,
        "owner": r.enroller.address,
        "scheme": P256,
        "keyX": x,
        "keyY": y,
        "signer": ZERO_ADDRESS,
        "certFingerprint": fingerprint,
        "caKeyHash": CA,
        "activeFromMs": ACTIVE_FROM + 7,
    }
    assert event["address"] == r.c.address
    assert r.active(device_id, ACTIVE_FROM + 7)


def test_enroll_secp256k1(suite) -> None:  # type: ignore[no-untyped-def]
    r = Registry(suite)
    device_id = did("SN-GW-0001")
    key = k1_signer()
    signer = key.public_key.eth_address
    result = r.enroll_k1(r.enroller2, device_id, key, active_from=0)
    # an activation of zero is the enrollment block's time
    block_ms = int(r.chain.w3.eth.get_block(result.block_number)["timestamp"]) * 1000
    assert r.device(device_id) == (
        SECP256K1,
        r.enroller2.address,
        signer,
        block_ms,
        0,
        bytes(32),
        bytes(32),
        FINGERPRINT,
        CA,
    )
    (event,) = r.c.events.DeviceEnrolled().process_receipt(result.receipt)
    assert dict(event["args"]) == {
        "deviceId": device_id,
        "owner": r.enroller2.address,
        "scheme": SECP256K1,
        "keyX": bytes(32),
        "keyY": bytes(32),
        "signer": signer,
        "certFingerprint": FINGERPRINT,
        "caKeyHash": CA,
        "activeFromMs": block_ms,
    }
    assert r.active(device_id, block_ms) and not r.active(device_id, block_ms - 1)


def test_p256_points_with_a_small_coordinate_are_accepted(suite) -> None:  # type: ignore[no-untyped-def]
    # the reduced forms of the out-of-range keys refused below are valid keys: they pass the key check
    # and the CA's attestation, and stop only at the proof of possession (nobody holds their private key)
    r = Registry(suite)
    for i, (x, y) in enumerate((SMALL_X_POINT, SMALL_Y_POINT)):
        assert on_curve(x, y)
        ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()  # cryptography agrees
        device_id = did(f"SN-SMALL-{i}")
        with reverts("DeviceRegistryInvalidPossessionProof", deviceId=device_id, owner=r.enroller.address):
            r.enroll_p256(r.enroller, device_id, (word(x), word(y)))


# ---------------------------------------------------------------- enrollment: refusals


@SCHEMES
def test_enroll_requires_the_enroller_role(suite, scheme: int) -> None:  # type: ignore[no-untyped-def]
    r = Registry(suite)
    device_id = did("SN-1")
    before = r.state([device_id])
    # the operator (admin + operator) is no enroller either
    for account in (r.outsider, r.operator):
        with reverts("DeviceRegistryNotAdmitted", party=account.address):
            r.enroll(scheme, account, device_id, new_key(scheme))
    assert r.state([device_id]) == before
    # a role once held and revoked no longer admits
    r.tx(r.c.functions.revokeRole(ENROLLER_ROLE, r.enroller2.address), r.operator)
    before = r.state([device_id])
    with reverts("DeviceRegistryNotAdmitted", party=r.enroller2.address):
        r.enroll(scheme, r.enroller2, device_id, new_key(scheme))
    assert r.state([device_id]) == before
    assert r.device(device_id)[0] == NONE


@SCHEMES
def test_enroll_refuses_zero_fingerprint_and_untrusted_ca(suite, scheme: int) -> None:  # type: ignore[no-untyped-def]
    r = Registry(suite)
    device_id = did("SN-1")
    key = new_key(scheme)
    before = r.state([device_id])
    with reverts("DeviceRegistryZeroFingerprint"):
        r.enroll(scheme, r.enroller, device_id, key, fingerprint=bytes(32))
    for ca in (OTHER_CA, bytes(32)):
        with reverts("DeviceRegistryUntrustedCA", caKeyHash=ca):
            r.enroll(scheme, r.enroller, device_id, key, ca=ca)
    assert r.state([device_id]) == before
    # the same key and id enroll once the arguments are right (nothing was half-recorded)
    r.enroll(scheme, r.enroller, device_id, key)
    assert r.device(device_id)[0] == scheme


@SCHEMES
def test_enroll_refuses_an_existing_device_id(suite, scheme: int) -> None:  # type: ignore[no-untyped-def]
    r = Registry(suite)
    device_id = did("SN-1")
    r.enroll(scheme, r.enroller, device_id, new_key(scheme))
    other = SECP256K1 if scheme == P256 else P256
    before = r.state([device_id])
    # same id with a fresh key: by the owner, by another enroller, and under the other scheme
    for sender, s in ((r.enroller, scheme), (r.enroller2, scheme), (r.enroller, other)):
        with reverts("DeviceRegistryDeviceExists", deviceId=device_id):
            r.enroll(s, sender, device_id, new_key(s))
    assert r.state([device_id]) == before


@SCHEMES
def test_enroll_refuses_a_key_in_use(suite, scheme: int) -> None:  # type: ignore[no-untyped-def]
    r = Registry(suite)
    first, second = did("SN-1"), did("SN-2")
    key = new_key(scheme)
    r.enroll(scheme, r.enroller, first, key)
    before = r.state([first, second])
    for sender in (r.enroller, r.enroller2):
        with reverts("DeviceRegistryKeyInUse", keyHash=key_hash(scheme, key), deviceId=first):
            r.enroll(scheme, sender, second, key)
    assert r.state([first, second]) == before
    # revocation does not free the key
    r.live()
    r.tx(r.c.functions.revoke(first, ACTIVE_FROM + 1), r.enroller)
    before = r.state([first, second])
    with reverts("DeviceRegistryKeyInUse", keyHash=key_hash(scheme, key), deviceId=first):
        r.enroll(scheme, r.enroller, second, key)
    assert r.state([first, second]) == before


def test_key_hashes_are_per_scheme(suite) -> None:  # type: ignore[no-untyped-def]
    # the hash the contract reports is keccak256(abi.encode(scheme, key)) for both schemes
    r = Registry(suite)
    key, signer = p256_key(), k1_signer()
    r.enroll_p256(r.enroller, did("A"), key)
    r.enroll_k1(r.enroller, did("B"), signer)
    with reverts("DeviceRegistryKeyInUse", keyHash=key_hash_p256(*words(key)), deviceId=did("A")):
        r.enroll_p256(r.enroller, did("C"), key)
    with reverts("DeviceRegistryKeyInUse", keyHash=key_hash_k1(address_of(signer)), deviceId=did("B")):
        r.enroll_k1(r.enroller, did("C"), signer)
    assert key_hash_p256(*words(key)) != key_hash_k1(address_of(signer))


def _invalid_p256_keys() -> list[tuple[str, int, int]]:
    x, y = (int.from_bytes(v, "big") for v in words(p256_key()))
    (sx, sy), (tx, ty) = SMALL_X_POINT, SMALL_Y_POINT
    assert sx + P256_P < 2**256 and ty + P256_P < 2**256
    assert on_curve(sx + P256_P, sy) and on_curve(tx, ty + P256_P)  # congruent, but out of range
    return [
        ("off curve", x, y ^ 1),
        ("origin", 0, 0),
        ("x + p", sx + P256_P, sy),
        ("y + p", tx, ty + P256_P),
        ("x = p", P256_P, y),
        ("y = p", x, P256_P),
        ("all ones", 2**256 - 1, 2**256 - 1),
    ]


def test_enroll_p256_refuses_invalid_keys(suite) -> None:  # type: ignore[no-untyped-def]
    r = Registry(suite)
    device_id = did("SN-1")
    before = r.state([device_id])
    for label, x, y in _invalid_p256_keys():
        try:
            with reverts("DeviceRegistryInvalidKey", scheme=P256):
                r.enroll_p256(r.enroller, device_id, (word(x), word(y)))
        except BaseException as e:  # pytest's Failed is no Exception
            e.add_note(f"invalid key case: {label}")
            raise
    # admission is checked first: an outsider learns nothing about the key
    with reverts("DeviceRegistryNotAdmitted", party=r.outsider.address):
        r.enroll_p256(r.outsider, device_id, (bytes(32), bytes(32)))
    assert r.state([device_id]) == before


def test_enroll_secp256k1_refuses_zero_signer(suite) -> None:  # type: ignore[no-untyped-def]
    r = Registry(suite)
    device_id = did("SN-1")
    before = r.state([device_id])
    with reverts("DeviceRegistryInvalidKey", scheme=SECP256K1):
        r.enroll_k1(r.enroller, device_id, ZERO_ADDRESS)
    with reverts("DeviceRegistryNotAdmitted", party=r.outsider.address):
        r.enroll_k1(r.outsider, device_id, ZERO_ADDRESS)
    assert r.state([device_id]) == before


@SCHEMES
def test_enroll_refuses_zero_device_id(suite, scheme: int) -> None:  # type: ignore[no-untyped-def]
    # bytes32(0) is the registry's "no holder" marker for keys: a device under id 0 would leave
    # its key free for any other id, so id 0 itself is refused (after admission)
    r = Registry(suite)
    key = new_key(scheme)
    before = r.state([bytes(32), did("SN-2")])
    with reverts("DeviceRegistryZeroDeviceId"):
        r.enroll(scheme, r.enroller, bytes(32), key)
    with reverts("DeviceRegistryNotAdmitted", party=r.outsider.address):
        r.enroll(scheme, r.outsider, bytes(32), key)
    assert r.state([bytes(32), did("SN-2")]) == before
    assert not r.active(bytes(32), ACTIVE_FROM)
    # the key stays free for a real id, and is then held by exactly that one device
    r.enroll(scheme, r.enroller, did("SN-2"), key)
    with reverts("DeviceRegistryKeyInUse", keyHash=key_hash(scheme, key), deviceId=did("SN-2")):
        r.enroll(scheme, r.enroller, did("SN-3"), key)


# ---------------------------------------------------------------- admission gate


def test_admission_gate(suite) -> None:  # type: ignore[no-untyped-def]
    r = Registry(suite)
    chain = r.chain
    admitted, other = suite.accounts[3], suite.accounts[4]
    # only the admin sets the gate: not an outsider, an enroller, nor a mere operator
    r.tx(r.c.functions.grantRole(OPERATOR_ROLE, other.address), r.operator)
    deployed = chain.deploy("StaticAdmissionGate", r.operator, r.operator.address)
    gate_address = deployed.contract_address
    gate = chain.contract("StaticAdmissionGate", gate_address)
    before = r.state([])
    for account in (r.outsider, r.enroller, other):
        with reverts(
            "AccessControlUnauthorizedAccount", account=account.address, neededRole=DEFAULT_ADMIN_ROLE
        ):
            r.tx(r.c.functions.setAdmissionGate(gate_address), account)
    assert r.state([]) == before

    result = r.tx(r.c.functions.setAdmissionGate(gate_address), r.operator)
    (event,) = r.c.events.AdmissionGateSet().process_receipt(result.receipt)
    assert event["args"]["gate"] == gate_address
    assert r.call(r.c.functions.admissionGate()) == gate_address

    # the gate, not the role, decides: an enroller the gate does not admit is refused
    ids = [did(f"SN-{i}") for i in range(6)]
    before = r.state(ids)
    with reverts("DeviceRegistryNotAdmitted", party=r.enroller.address):
        r.enroll_p256(r.enroller, ids[0], p256_key())
    with reverts("DeviceRegistryNotAdmitted", party=r.enroller.address):
        r.enroll_k1(r.enroller, ids[0], k1_signer())
    assert r.state(ids) == before
    # admitted for another action only: refused
    anchor_action = keccak(b"supet.reading.anchor")
    r.tx(gate.functions.setAdmitted(other.address, anchor_action, True), r.operator)
    before = r.state(ids)
    with reverts("DeviceRegistryNotAdmitted", party=other.address):
        r.enroll_k1(other, ids[0], k1_signer())
    assert r.state(ids) == before

    # admitted for the enroll action: enrolls without the role
    assert not r.call(r.c.functions.hasRole(ENROLLER_ROLE, admitted.address))
    r.tx(gate.functions.setAdmitted(admitted.address, ENROLL_ACTION, True), r.operator)
    r.enroll_p256(admitted, ids[1], p256_key())
    r.enroll_k1(admitted, ids[2], k1_signer())
    assert r.device(ids[1])[:2] == (P256, admitted.address)
    assert r.device(ids[2])[:2] == (SECP256K1, admitted.address)

    # admission withdrawn: refused again
    r.tx(gate.functions.setAdmitted(admitted.address, ENROLL_ACTION, False), r.operator)
    before = r.state(ids)
    with reverts("DeviceRegistryNotAdmitted", party=admitted.address):
        r.enroll_p256(admitted, ids[3], p256_key())
    assert r.state(ids) == before

    # gate reset to zero: roles decide again
    r.tx(gate.functions.setAdmitted(admitted.address, ENROLL_ACTION, True), r.operator)
    result = r.tx(r.c.functions.setAdmissionGate(ZERO_ADDRESS), r.operator)
    (event,) = r.c.events.AdmissionGateSet().process_receipt(result.receipt)
    assert event["args"]["gate"] == ZERO_ADDRESS
    assert r.call(r.c.functions.admissionGate()) == ZERO_ADDRESS
    before = r.state(ids)
    with reverts("DeviceRegistryNotAdmitted", party=admitted.address):
        r.enroll_p256(admitted, ids[3], p256_key())
    assert r.state(ids) == before
    r.enroll_p256(r.enroller, ids[4], p256_key())
    assert r.device(ids[4])[:2] == (P256, r.enroller.address)
    # devices enrolled through the gate stay
    assert r.device(ids[1])[:2] == (P256, admitted.address)


# ---------------------------------------------------------------- revocation


def now_ms(r: Registry) -> int:
    """The latest block's time in ms (a call runs at it or a little later)."""
    return int(r.chain.w3.eth.get_block("latest")["timestamp"]) * 1000


def revoked_at(r: Registry, device_id: bytes) -> int:
    return int(r.device(device_id)[4])


def test_revoke_refusals(suite) -> None:  # type: ignore[no-untyped-def]
    r = Registry(suite)
    device_id, unknown = did("SN-1"), did("SN-UNKNOWN")
    r.enroll_p256(r.enroller, device_id, p256_key())
    r.live()
    before = r.state([device_id, unknown])
    with reverts("DeviceRegistryUnknownDevice", deviceId=unknown):
        r.tx(r.c.functions.revoke(unknown, ACTIVE_FROM), r.operator)
    # neither owner nor operator: an outsider, another enroller
    for account in (r.outsider, r.enroller2):
        with reverts("DeviceRegistryNotOwnerOrOperator", caller=account.address, deviceId=device_id):
            r.tx(r.c.functions.revoke(device_id, ACTIVE_FROM), account)
    for sender in (r.enroller, r.operator):
        with reverts(
            "DeviceRegistryRevocationBeforeActivation",
            deviceId=device_id,
            activeFromMs=ACTIVE_FROM,
            revokedAtMs=ACTIVE_FROM - 1,
        ):
            r.tx(r.c.functions.revoke(device_id, ACTIVE_FROM - 1), sender)
    assert r.state([device_id, unknown]) == before

    r.tx(r.c.functions.revoke(device_id, ACTIVE_FROM + 10), r.enroller)
    before = r.state([device_id, unknown])
    # a revocation only moves earlier: the same time, a later one, or "now" (later) is refused
    for sender in (r.enroller, r.operator):
        for at in (ACTIVE_FROM + 10, ACTIVE_FROM + 20):
            with reverts(
                "DeviceRegistryRevocationNotEarlier",
                deviceId=device_id,
                currentMs=ACTIVE_FROM + 10,
                requestedMs=at,
            ):
                r.tx(r.c.functions.revoke(device_id, at), sender)
        with reverts("DeviceRegistryRevocationNotEarlier", deviceId=device_id, currentMs=ACTIVE_FROM + 10):
            r.tx(r.c.functions.revoke(device_id, 0), sender)
    # the caller check comes first: an outsider learns nothing about the revocation
    with reverts("DeviceRegistryNotOwnerOrOperator", caller=r.outsider.address, deviceId=device_id):
        r.tx(r.c.functions.revoke(device_id, ACTIVE_FROM + 20), r.outsider)
    assert r.state([device_id, unknown]) == before


def test_revoke_by_owner_and_by_operator(suite) -> None:  # type: ignore[no-untyped-def]
    r = Registry(suite)
    by_owner, by_operator, at_activation = did("SN-1"), did("SN-2"), did("SN-3")
    r.enroll_p256(r.enroller, by_owner, p256_key())
    r.enroll_k1(r.enroller, by_operator, k1_signer())
    r.enroll_k1(r.enroller, at_activation, k1_signer())
    r.live()
    # the owner may revoke even after losing the enroller role
    r.tx(r.c.functions.revokeRole(ENROLLER_ROLE, r.enroller.address), r.operator)

    # revoking exactly at activation is allowed (the device is then never active)
    cases = (
        (by_owner, r.enroller, ACTIVE_FROM + 1000),
        (by_operator, r.operator, ACTIVE_FROM + 2000),
        (at_activation, r.enroller, ACTIVE_FROM),
    )
    for device_id, sender, at in cases:
        enrolled = r.device(device_id)
        result = r.tx(r.c.functions.revoke(device_id, at), sender)
        (event,) = r.c.events.DeviceRevoked().process_receipt(result.receipt)
        assert dict(event["args"]) == {"deviceId": device_id, "by": sender.address, "revokedAtMs": at}
        assert r.device(device_id) == (*enrolled[:4], at, *enrolled[5:])
    assert not r.active(at_activation, ACTIVE_FROM)  # never active


def test_revocation_moves_earlier_by_owner_or_operator(suite) -> None:  # type: ignore[no-untyped-def]
    r = Registry(suite)
    device_id = did("SN-1")
    r.enroll_k1(r.enroller, device_id, k1_signer())
    r.live()
    steps = [
        (r.enroller, ACTIVE_FROM + 5000),
        (r.operator, ACTIVE_FROM + 3000),
        (r.enroller, ACTIVE_FROM + 1),
    ]
    for sender, at in steps:
        result = r.tx(r.c.functions.revoke(device_id, at), sender)
        (event,) = r.c.events.DeviceRevoked().process_receipt(result.receipt)
        assert dict(event["args"]) == {"deviceId": device_id, "by": sender.address, "revokedAtMs": at}
        assert revoked_at(r, device_id) == at
        assert r.active(device_id, at - 1) and not r.active(device_id, at)


def test_issue12_owner_cannot_make_a_device_unrevokable(suite) -> None:  # type: ignore[no-untyped-def]
    """Issue 12.1: ``revoke(id, 2^64-1)`` by the owner kept the device active for ever and made the
    operator's revocation revert with ``DeviceRegistryAlreadyRevoked``."""
    r = Registry(suite)
    device_id = did("SN-1")
    r.enroll_k1(r.enroller, device_id, k1_signer())
    r.live()
    before = r.state([device_id])
    for at in (UINT64_MAX, now_ms(r) + 3_600_000):
        with reverts("DeviceRegistryRevocationInFuture", deviceId=device_id, requestedMs=at) as info:
            r.tx(r.c.functions.revoke(device_id, at), r.enroller)
        reported = info.value.error_args["nowMs"]
        assert reported % 1000 == 0 and now_ms(r) <= reported <= now_ms(r) + 60_000
    assert r.state([device_id]) == before
    # the owner's "now" is allowed; the operator can still move it earlier afterwards
    r.tx(r.c.functions.revoke(device_id, 0), r.enroller)
    owner_time = revoked_at(r, device_id)
    r.tx(r.c.functions.revoke(device_id, ACTIVE_FROM + 1), r.operator)
    assert revoked_at(r, device_id) == ACTIVE_FROM + 1 < owner_time
    assert not r.active(device_id, ACTIVE_FROM + 1)


def test_operator_may_schedule_and_the_owner_may_then_move_it_earlier(suite) -> None:  # type: ignore[no-untyped-def]
    r = Registry(suite)
    device_id = did("SN-1")
    r.enroll_k1(r.enroller, device_id, k1_signer())
    r.live()
    later = UINT64_MAX - 1
    r.tx(r.c.functions.revoke(device_id, later), r.operator)  # a scheduled end (e.g. a certificate's expiry)
    assert revoked_at(r, device_id) == later and r.active(device_id, later - 1)
    # a front-running owner cannot push it out: only earlier times are accepted
    with reverts("DeviceRegistryRevocationInFuture", deviceId=device_id, requestedMs=UINT64_MAX):
        r.tx(r.c.functions.revoke(device_id, UINT64_MAX), r.enroller)
    with reverts(
        "DeviceRegistryRevocationNotEarlier", deviceId=device_id, currentMs=later, requestedMs=later
    ):
        r.tx(r.c.functions.revoke(device_id, later), r.operator)
    r.tx(r.c.functions.revoke(device_id, 0), r.enroller)
    assert revoked_at(r, device_id) <= now_ms(r)


def test_revoke_now_uses_block_time_in_ms(suite) -> None:  # type: ignore[no-untyped-def]
    r = Registry(suite)
    device_id = did("SN-1")
    r.enroll_k1(r.enroller, device_id, k1_signer(), active_from=now_ms(r) - 30_000)
    result = r.tx(r.c.functions.revoke(device_id, 0), r.operator)
    block = r.chain.w3.eth.get_block(result.block_number)
    at = block["timestamp"] * 1000
    assert r.device(device_id)[4] == at
    (event,) = r.c.events.DeviceRevoked().process_receipt(result.receipt)
    assert dict(event["args"]) == {"deviceId": device_id, "by": r.operator.address, "revokedAtMs": at}
    assert r.active(device_id, at - 1)
    assert not r.active(device_id, at)


def test_revoke_now_before_activation_is_refused(suite) -> None:  # type: ignore[no-untyped-def]
    r = Registry(suite)
    device_id = did("SN-1")
    future = UINT64_MAX - 1
    r.enroll_k1(r.enroller, device_id, k1_signer(), active_from=future)
    before = r.state([device_id])
    with reverts("DeviceRegistryRevocationBeforeActivation", deviceId=device_id, activeFromMs=future) as info:
        r.tx(r.c.functions.revoke(device_id, 0), r.enroller)
    # "now" is the block time of the call, in ms
    reported = info.value.error_args["revokedAtMs"]
    assert reported % 1000 == 0
    assert now_ms(r) <= reported <= now_ms(r) + 60_000
    assert r.state([device_id]) == before


# ---------------------------------------------------------------- pinned evidence


def pinner(r: Registry) -> LocalAccount:
    """Account 8, granted EVIDENCE_ROLE (as the suite's QualityCertifier is)."""
    account = r.suite.accounts[8]
    r.tx(r.c.functions.grantRole(EVIDENCE_ROLE, account.address), r.operator)
    return account


def pinned(r: Registry, device_id: bytes) -> tuple[bool, int]:
    p, latest = r.call(r.c.functions.pinnedEvidence(device_id))
    return bool(p), int(latest)


def test_the_suite_certifier_holds_the_evidence_role(suite) -> None:  # type: ignore[no-untyped-def]
    r = Registry(suite)
    certifier = suite.deployment.address("QualityCertifier")
    assert r.call(r.c.functions.hasRole(EVIDENCE_ROLE, certifier))
    assert not r.call(r.c.functions.hasRole(EVIDENCE_ROLE, r.operator.address))


def test_pin_evidence_refusals_and_pins_only_rise(suite) -> None:  # type: ignore[no-untyped-def]
    r = Registry(suite)
    a, b, unknown = did("SN-A"), did("SN-B"), did("SN-UNKNOWN")
    r.enroll_k1(r.enroller, a, k1_signer())
    r.enroll_k1(r.enroller, b, k1_signer())
    p = pinner(r)
    assert pinned(r, a) == (False, 0)
    for account in (r.operator, r.enroller):  # neither the operator nor the owner may pin
        with reverts("AccessControlUnauthorizedAccount", account=account.address, neededRole=EVIDENCE_ROLE):
            r.tx(r.c.functions.pinEvidence([a], [ACTIVE_FROM + 5]), account)
    with reverts("DeviceRegistryPinLengthMismatch", deviceIds=2, times=1):
        r.tx(r.c.functions.pinEvidence([a, b], [ACTIVE_FROM + 5]), p)
    with reverts("DeviceRegistryUnknownDevice", deviceId=unknown):
        r.tx(r.c.functions.pinEvidence([a, unknown], [ACTIVE_FROM + 5, ACTIVE_FROM + 5]), p)
    assert pinned(r, a) == (False, 0)

    result = r.tx(r.c.functions.pinEvidence([a, b], [ACTIVE_FROM + 50, ACTIVE_FROM + 7]), p)
    events = r.c.events.EvidencePinned().process_receipt(result.receipt)
    assert [dict(e["args"]) for e in events] == [
        {"deviceId": a, "latestMs": ACTIVE_FROM + 50, "by": p.address},
        {"deviceId": b, "latestMs": ACTIVE_FROM + 7, "by": p.address},
    ]
    # lower or equal times leave a pin as it is (no event); a later one raises it
    result = r.tx(r.c.functions.pinEvidence([a, a], [ACTIVE_FROM + 10, ACTIVE_FROM + 50]), p)
    assert not r.c.events.EvidencePinned().process_receipt(result.receipt)
    assert pinned(r, a) == (True, ACTIVE_FROM + 50)
    r.tx(r.c.functions.pinEvidence([b], [ACTIVE_FROM + 9]), p)
    assert pinned(r, b) == (True, ACTIVE_FROM + 9)


def test_issue11_owner_cannot_revoke_before_pinned_evidence(suite) -> None:  # type: ignore[no-untyped-def]
    """Issue 11.5: the owner back-dated a revocation to just before its own failing reading."""
    r = Registry(suite)
    device_id = did("SN-1")
    r.enroll_k1(r.enroller, device_id, k1_signer())
    r.live()
    evidence = ACTIVE_FROM + 60_000
    r.tx(r.c.functions.pinEvidence([device_id], [evidence]), pinner(r))
    before = r.state([device_id])
    for sender in (r.enroller, r.operator):  # a plain revoke, even the operator's, keeps the evidence
        for at in (evidence, evidence - 1, ACTIVE_FROM):
            with reverts(
                "DeviceRegistryEvidencePinned", deviceId=device_id, pinnedMs=evidence, requestedMs=at
            ):
                r.tx(r.c.functions.revoke(device_id, at), sender)
    assert r.state([device_id]) == before
    assert r.active(device_id, evidence)
    # just after the evidence is fine, and the evidence keeps verifying
    r.tx(r.c.functions.revoke(device_id, evidence + 1), r.enroller)
    assert r.active(device_id, evidence) and not r.active(device_id, evidence + 1)


def test_operator_rules_before_pinned_evidence_with_a_reason(suite) -> None:  # type: ignore[no-untyped-def]
    r = Registry(suite)
    device_id, unknown = did("SN-1"), did("SN-UNKNOWN")
    r.enroll_k1(r.enroller, device_id, k1_signer())
    evidence = ACTIVE_FROM + 60_000
    r.tx(r.c.functions.pinEvidence([device_id], [evidence]), pinner(r))
    rule = r.c.functions.revokeWithReason
    before = r.state([device_id, unknown])
    operator_role = r.call(r.c.functions.OPERATOR_ROLE())
    for account in (r.enroller, r.outsider):  # the owner cannot rule
        with reverts("AccessControlUnauthorizedAccount", account=account.address, neededRole=operator_role):
            r.tx(rule(device_id, ACTIVE_FROM + 1, "key leaked"), account)
    with reverts("DeviceRegistryInvalidReason", length=0):
        r.tx(rule(device_id, ACTIVE_FROM + 1, ""), r.operator)
    with reverts("DeviceRegistryInvalidReason", length=1025):
        r.tx(rule(device_id, ACTIVE_FROM + 1, "x" * 1025), r.operator)
    with reverts("DeviceRegistryUnknownDevice", deviceId=unknown):
        r.tx(rule(unknown, ACTIVE_FROM + 1, "key leaked"), r.operator)
    with reverts(
        "DeviceRegistryRevocationBeforeActivation",
        deviceId=device_id,
        activeFromMs=ACTIVE_FROM,
        revokedAtMs=ACTIVE_FROM - 1,
    ):
        r.tx(rule(device_id, ACTIVE_FROM - 1, "key leaked"), r.operator)
    assert r.state([device_id, unknown]) == before

    reason = "incident INC-42: key extracted from the gateway; readings since 10:00 are not the device's"
    result = r.tx(rule(device_id, ACTIVE_FROM + 1, reason), r.operator)
    (revoked,) = r.c.events.DeviceRevoked().process_receipt(result.receipt, errors=DISCARD)
    assert dict(revoked["args"]) == {
        "deviceId": device_id,
        "by": r.operator.address,
        "revokedAtMs": ACTIVE_FROM + 1,
    }
    (ruled,) = r.c.events.DeviceRevocationRuled().process_receipt(result.receipt, errors=DISCARD)
    assert dict(ruled["args"]) == {
        "deviceId": device_id,
        "by": r.operator.address,
        "revokedAtMs": ACTIVE_FROM + 1,
        "pinned": True,
        "pinnedMs": evidence,
        "reason": reason,
    }
    assert not r.active(device_id, evidence)  # the ruling is what makes pinned evidence stop verifying
    # a ruling too only moves earlier
    with reverts(
        "DeviceRegistryRevocationNotEarlier",
        deviceId=device_id,
        currentMs=ACTIVE_FROM + 1,
        requestedMs=ACTIVE_FROM + 1,
    ):
        r.tx(rule(device_id, ACTIVE_FROM + 1, reason), r.operator)
    r.tx(rule(device_id, ACTIVE_FROM, "x" * 1024), r.operator)  # the longest reason is fine
    assert revoked_at(r, device_id) == ACTIVE_FROM


# ---------------------------------------------------------------- isActiveAt


#: (label, time, active) for a device active from ACTIVE_FROM and revoked at REVOKED_AT.
REVOKED_AT = ACTIVE_FROM + 60_000
ACTIVE_TABLE = [
    ("zero", 0, False),
    ("before activeFrom", ACTIVE_FROM - 1, False),
    ("at activeFrom", ACTIVE_FROM, True),
    ("between", ACTIVE_FROM + 1, True),
    ("just before revokedAt", REVOKED_AT - 1, True),
    ("at revokedAt", REVOKED_AT, False),
    ("after revokedAt", REVOKED_AT + 1, False),
    ("far future", UINT64_MAX, False),
]


def test_is_active_at(suite) -> None:  # type: ignore[no-untyped-def]
    r = Registry(suite)
    device_id, unrevoked, unknown = did("SN-1"), did("SN-2"), did("SN-UNKNOWN")
    r.enroll_p256(r.enroller, device_id, p256_key())
    r.enroll_k1(r.enroller, unrevoked, k1_signer())
    r.live()
    # before revocation, the device is active from activeFrom on, forever
    assert [r.active(device_id, t) for _, t, _ in ACTIVE_TABLE] == [
        t >= ACTIVE_FROM for _, t, _ in ACTIVE_TABLE
    ]
    r.tx(r.c.functions.revoke(device_id, REVOKED_AT), r.enroller)
    wrong = [
        (label, t, expected) for label, t, expected in ACTIVE_TABLE if r.active(device_id, t) != expected
    ]
    assert not wrong, f"isActiveAt disagrees with the table at {wrong}"
    # an unknown device is never active; an unrevoked one stays active
    assert not any(r.active(unknown, t) for _, t, _ in ACTIVE_TABLE)
    assert r.active(unrevoked, UINT64_MAX) and not r.active(unrevoked, ACTIVE_FROM - 1)


def test_deploy_with_a_separate_admin_hands_the_registry_over(chain) -> None:  # type: ignore[no-untyped-def]
    """The registry is the admin's from its constructor (a two-step admin): the deployer never holds a role
    of it, and the certifier pins evidence from the start."""
    from contracts.chain import dev_accounts
    from contracts.deploy import deploy_suite

    deployer, admin = dev_accounts(2)
    deployment = deploy_suite(chain, deployer, admin=admin.address)
    fns = deployment.contract(chain, "DeviceRegistry").functions
    assert chain.call(fns.hasRole(EVIDENCE_ROLE, deployment.address("QualityCertifier")))
    for role in (DEFAULT_ADMIN_ROLE, OPERATOR_ROLE):
        assert chain.call(fns.hasRole(role, admin.address))
        assert not chain.call(fns.hasRole(role, deployer.address))
    assert chain.call(fns.defaultAdmin()) == admin.address
    pending, schedule = chain.call(fns.pendingDefaultAdmin())
    assert (int(pending, 16), schedule) == (0, 0)  # nothing left to accept


# ---------------------------------------------------------------- issue 12.2: enrollment checked on chain


@SCHEMES
def test_issue12_2_an_enroller_cannot_take_another_factorys_serial(suite, scheme: int) -> None:  # type: ignore[no-untyped-def]
    """Issue 12.2: an admitted enroller enrolled a software key under another factory's serial, naming a
    trusted CA, with ``activeFromMs = 0``: the real owner was locked out and back-dated readings passed."""
    r = Registry(suite)
    victim_serial = did("FACTORY-A-SN-0001")
    attacker = r.enroller2
    software_key = new_key(scheme)
    self_made_ca = ec.generate_private_key(ec.SECP256R1())
    before = r.state([victim_serial])
    # the attacker's own CA signs the attestation, naming the trusted CA: refused
    with reverts("DeviceRegistryInvalidBirthAttestation", deviceId=victim_serial, caKeyHash=CA):
        r.enroll(scheme, attacker, victim_serial, software_key, active_from=0, birth_by=self_made_ca)
    # no attestation at all, or one of the wrong length
    for forged in (b"", bytes(64), b"\x01" * 65):
        with reverts("DeviceRegistryInvalidBirthAttestation", deviceId=victim_serial, caKeyHash=CA):
            r.enroll(scheme, attacker, victim_serial, software_key, active_from=0, birth=forged)
    # naming its self-made CA instead: not trusted
    with reverts("DeviceRegistryUntrustedCA", caKeyHash=ca_hash(self_made_ca)):
        r.enroll(
            scheme, attacker, victim_serial, software_key, ca=ca_hash(self_made_ca), birth_by=self_made_ca
        )
    # the genuine attestation (it is public: it travels with the certificate) for another key
    device_key = new_key(scheme)
    genuine, _ = r.proofs(r.enroller, victim_serial, scheme, device_key, FINGERPRINT)
    with reverts("DeviceRegistryInvalidBirthAttestation", deviceId=victim_serial, caKeyHash=CA):
        r.enroll(scheme, attacker, victim_serial, software_key, birth=genuine)
    # the genuine key and attestation, front-running the owner with the owner's own proof of possession
    owners_proof = possession_signature(
        device_key, victim_serial, r.enroller.address, r.chain.chain_id, r.c.address
    )
    with reverts("DeviceRegistryInvalidPossessionProof", deviceId=victim_serial, owner=attacker.address):
        r.enroll(scheme, attacker, victim_serial, device_key, birth=genuine, possession=owners_proof)
    assert r.state([victim_serial]) == before
    # the real owner enrolls with the CA's attestation and its device's proof
    r.enroll(scheme, r.enroller, victim_serial, device_key, birth=genuine, possession=owners_proof)
    assert r.device(victim_serial)[:2] == (scheme, r.enroller.address)


@SCHEMES
def test_issue12_2_back_dated_activation_is_refused(suite, scheme: int) -> None:  # type: ignore[no-untyped-def]
    r = Registry(suite)
    device_id = did("SN-1")
    key = new_key(scheme)
    before = r.state([device_id])
    for back_dated in (1, 1_700_000_000_000, now_ms(r) - 3_600_000):
        with reverts("DeviceRegistryActiveFromInPast", deviceId=device_id, activeFromMs=back_dated) as info:
            r.enroll(scheme, r.enroller, device_id, key, active_from=back_dated)
        # the earliest allowed is the enrollment block's time less the 60 s skew
        earliest = info.value.error_args["earliestMs"]
        assert earliest % 1000 == 0 and now_ms(r) - 60_000 <= earliest <= now_ms(r) - 60_000 + 60_000
    assert r.state([device_id]) == before
    assert r.call(r.c.functions.MAX_ACTIVATION_SKEW_MS()) == 60_000
    # within the skew is fine (the enrolling tool's clock may lag the chain's)
    r.enroll(scheme, r.enroller, device_id, key, active_from=now_ms(r) - 30_000)
    assert r.device(device_id)[0] == scheme


@SCHEMES
def test_issue12_2_a_proof_of_possession_binds_owner_chain_and_registry(suite, scheme: int) -> None:  # type: ignore[no-untyped-def]
    r = Registry(suite)
    device_id = did("SN-1")
    key = new_key(scheme)
    owner, chain_id, registry = r.enroller.address, r.chain.chain_id, r.c.address
    other_registry = suite.deployment.address("ReadingAnchor")
    replays = {
        "another owner": possession_signature(key, device_id, r.enroller2.address, chain_id, registry),
        "another chain": possession_signature(key, device_id, owner, chain_id + 1, registry),
        "another registry": possession_signature(key, device_id, owner, chain_id, other_registry),
        "another device id": possession_signature(key, did("SN-2"), owner, chain_id, registry),
        "another key": possession_signature(new_key(scheme), device_id, owner, chain_id, registry),
        "empty": b"",
    }
    before = r.state([device_id])
    for label, proof in replays.items():
        try:
            with reverts("DeviceRegistryInvalidPossessionProof", deviceId=device_id, owner=owner):
                r.enroll(scheme, r.enroller, device_id, key, possession=proof)
        except BaseException as e:  # pytest's Failed is no Exception
            e.add_note(f"replayed proof: {label}")
            raise
    assert r.state([device_id]) == before
    r.enroll(scheme, r.enroller, device_id, key)
    assert r.device(device_id)[:2] == (scheme, owner)


@SCHEMES
def test_issue12_2_forged_or_altered_attestations_are_refused(suite, scheme: int) -> None:  # type: ignore[no-untyped-def]
    r = Registry(suite)
    r.tx(r.c.functions.trustCA(*ca_point(OTHER_CA_KEY), "Other CA"), r.operator)
    device_id = did("SN-1")
    key = new_key(scheme)
    genuine, _ = r.proofs(r.enroller, device_id, scheme, key, FINGERPRINT)
    rr, s = genuine[:32], int.from_bytes(genuine[32:], "big")
    high_s = rr + (P256_N - s).to_bytes(32, "big")  # the same signature, malleated
    cases: list[tuple[str, dict[str, Any], bytes]] = [
        ("another trusted CA signed it", {"birth_by": OTHER_CA_KEY}, CA),
        ("it names the other trusted CA", {"birth": genuine, "ca": OTHER_CA}, OTHER_CA),
        ("another certificate", {"birth": genuine, "fingerprint": keccak(b"another certificate")}, CA),
        ("another serial", {"birth": r.proofs(r.enroller, did("SN-2"), scheme, key, FINGERPRINT)[0]}, CA),
        ("high s", {"birth": high_s}, CA),
        ("a flipped bit", {"birth": genuine[:-1] + bytes([genuine[-1] ^ 1])}, CA),
    ]
    before = r.state([device_id])
    for label, kw, ca in cases:
        try:
            with reverts("DeviceRegistryInvalidBirthAttestation", deviceId=device_id, caKeyHash=ca):
                r.enroll(scheme, r.enroller, device_id, key, **kw)
        except BaseException as e:  # pytest's Failed is no Exception
            e.add_note(f"forged attestation: {label}")
            raise
    assert r.state([device_id]) == before
    r.enroll(scheme, r.enroller, device_id, key, birth=genuine)


def test_issue12_2_digests_agree_with_eip712_and_the_python_library(suite) -> None:  # type: ignore[no-untyped-def]
    """The contract's digests, the Python library's and eth-account's EIP-712 encoder agree."""
    from eth_account.messages import encode_typed_data

    from device_attestation import birth as lib

    r = Registry(suite)
    key = p256_key()
    serial, owner = "SN-DIGEST", r.enroller.address
    x, y = words(key)
    on_chain = r.call(r.c.functions.birthDigest(did(serial), P256, x, y, ZERO_ADDRESS, FINGERPRINT))
    assert on_chain == lib.birth_digest(serial, key.public_key, FINGERPRINT)
    k1 = k1_signer()
    on_chain_k1 = r.call(
        r.c.functions.birthDigest(did(serial), SECP256K1, bytes(32), bytes(32), address_of(k1), FINGERPRINT)
    )
    assert on_chain_k1 == lib.birth_digest(serial, k1.public_key, FINGERPRINT)
    possession = r.call(r.c.functions.possessionDigest(did(serial), owner))
    assert possession == lib.possession_digest(serial, owner, chain_id=r.chain.chain_id, registry=r.c.address)
    typed = encode_typed_data(
        full_message={
            "types": {
                "EIP712Domain": [
                    {"name": "name", "type": "string"},
                    {"name": "version", "type": "string"},
                    {"name": "chainId", "type": "uint256"},
                    {"name": "verifyingContract", "type": "address"},
                ],
                "DevicePossession": [
                    {"name": "deviceId", "type": "bytes32"},
                    {"name": "owner", "type": "address"},
                ],
            },
            "primaryType": "DevicePossession",
            "domain": {
                "name": "supET DeviceRegistry",
                "version": "1",
                "chainId": r.chain.chain_id,
                "verifyingContract": r.c.address,
            },
            "message": {"deviceId": did(serial), "owner": owner},
        }
    )
    assert keccak(b"\x19" + typed.version + typed.header + typed.body) == possession
    birth_typed = encode_typed_data(
        full_message={
            "types": {
                "EIP712Domain": [{"name": "name", "type": "string"}, {"name": "version", "type": "string"}],
                "DeviceBirth": [
                    {"name": "deviceId", "type": "bytes32"},
                    {"name": "scheme", "type": "uint8"},
                    {"name": "keyX", "type": "bytes32"},
                    {"name": "keyY", "type": "bytes32"},
                    {"name": "signer", "type": "address"},
                    {"name": "certFingerprint", "type": "bytes32"},
                ],
            },
            "primaryType": "DeviceBirth",
            "domain": {"name": "supET Device Birth", "version": "1"},
            "message": {
                "deviceId": did(serial),
                "scheme": P256,
                "keyX": x,
                "keyY": y,
                "signer": ZERO_ADDRESS,
                "certFingerprint": FINGERPRINT,
            },
        }
    )
    assert keccak(b"\x19" + birth_typed.version + birth_typed.header + birth_typed.body) == on_chain
    assert r.call(r.c.functions.domainSeparator()) == lib.registry_domain_separator(
        r.chain.chain_id, r.c.address
    )
    assert r.call(r.c.functions.BIRTH_DOMAIN_SEPARATOR()) == lib.BIRTH_DOMAIN_SEPARATOR
