"""DeviceRegistry on both chains: CAs, enrollment, the admission gate, revocation (only earlier, the
owner's capped at now and after pinned evidence, the operator's ruling with a reason), every revert.

Each refused call is checked twice: the custom error and its arguments, and that the
registry's observable state (devices, trusted CAs, gate) and the block height are as
they were before it.
"""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from eth_abi import encode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak
from support import reverts
from web3.logs import DISCARD

from contracts.chain import TxResult

OPERATOR_ROLE = keccak(b"supet.role.operator")
ENROLLER_ROLE = keccak(b"supet.role.enroller")
ENROLL_ACTION = keccak(b"supet.device.enroll")
EVIDENCE_ROLE = keccak(b"supet.role.evidence")
DEFAULT_ADMIN_ROLE = bytes(32)
ZERO_ADDRESS = "0x" + "00" * 20

NONE, P256, SECP256K1 = 0, 1, 2
#: The P-256 field prime and curve constant b (a = -3).
P256_P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
P256_B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
#: Two P-256 points with a small coordinate, so that coordinate + p still fits in 256 bits:
#: (x + p, y) and (x, y + p) satisfy the curve equation mod p but are out of range.
SMALL_X_POINT = (5, 0x459243B9AA581806FE913BCE99817ADE11CA503C64D9A3C533415C083248FBCC)
SMALL_Y_POINT = (0x8D0177EBAB9C6E9E10DB6DD095DBAC0D6375E8A97B70F611875D877F0069D2C7, 1)

CA = keccak(b"test manufacturer CA")
OTHER_CA = keccak(b"another manufacturer CA")
FINGERPRINT = keccak(b"device certificate")
ACTIVE_FROM = 1_700_000_000_000
UINT64_MAX = 2**64 - 1


def did(serial: str) -> bytes:
    return keccak(serial.encode())


def word(n: int) -> bytes:
    return n.to_bytes(32, "big")


def p256_key() -> tuple[bytes, bytes]:
    """A real P-256 public key (x, y) as two 32-byte words."""
    numbers = ec.generate_private_key(ec.SECP256R1()).public_key().public_numbers()
    return word(numbers.x), word(numbers.y)


def k1_signer() -> str:
    """The address of a fresh secp256k1 key."""
    return Account.create().address


def key_hash_p256(x: bytes, y: bytes) -> bytes:
    return keccak(encode(["uint8", "bytes32", "bytes32"], [P256, x, y]))


def key_hash_k1(signer: str) -> bytes:
    return keccak(encode(["uint8", "address"], [SECP256K1, signer]))


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
            self.tx(self.c.functions.trustCA(CA, "Test CA"), self.operator)
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

    def enroll_p256(
        self,
        sender: LocalAccount,
        device_id: bytes,
        key: tuple[bytes, bytes],
        *,
        fingerprint: bytes = FINGERPRINT,
        ca: bytes = CA,
        active_from: int = ACTIVE_FROM,
    ) -> TxResult:
        fn = self.c.functions.enrollP256(device_id, key[0], key[1], fingerprint, ca, active_from)
        return self.tx(fn, sender)

    def enroll_k1(
        self,
        sender: LocalAccount,
        device_id: bytes,
        signer: str,
        *,
        fingerprint: bytes = FINGERPRINT,
        ca: bytes = CA,
        active_from: int = ACTIVE_FROM,
    ) -> TxResult:
        fn = self.c.functions.enrollSecp256k1(device_id, signer, fingerprint, ca, active_from)
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
    return key_hash_p256(*key) if scheme == P256 else key_hash_k1(key)


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
    result = r.tx(r.c.functions.trustCA(CA, "Test CA"), r.operator)
    (event,) = r.c.events.CATrusted().process_receipt(result.receipt)
    assert event["args"]["caKeyHash"] == CA
    assert event["args"]["label"] == "Test CA"
    assert r.call(r.c.functions.isTrustedCA(CA))
    assert not r.call(r.c.functions.isTrustedCA(OTHER_CA))
    assert not r.call(r.c.functions.isTrustedCA(bytes(32)))


def test_trust_ca_refusals(suite) -> None:  # type: ignore[no-untyped-def]
    r = Registry(suite)
    before = r.state([], (CA, OTHER_CA, bytes(32)))
    # an outsider, and an enroller (a role, but not the operator's)
    for account in (r.outsider, r.enroller):
        with reverts("AccessControlUnauthorizedAccount", account=account.address, neededRole=OPERATOR_ROLE):
            r.tx(r.c.functions.trustCA(OTHER_CA, "x"), account)
    with reverts("DeviceRegistryZeroCAKeyHash"):
        r.tx(r.c.functions.trustCA(bytes(32), "zero"), r.operator)
    with reverts("DeviceRegistryCAAlreadyTrusted", caKeyHash=CA):
        r.tx(r.c.functions.trustCA(CA, "Test CA again"), r.operator)
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
    r.tx(r.c.functions.trustCA(CA, "Test CA, again"), r.operator)
    r.enroll_k1(r.enroller, did("SN-K-2"), k1_signer())
    assert r.device(did("SN-K-2"))[0] == SECP256K1


# ---------------------------------------------------------------- enrollment: happy paths


def test_enroll_p256(suite) -> None:  # type: ignore[no-untyped-def]
    r = Registry(suite)
    device_id = did("SN-P256-0001")
    x, y = p256_key()
    fingerprint = keccak(b"cert of SN-P256-0001")
    result = r.enroll_p256(
        r.enroller, device_id, (x, y), fingerprint=fingerprint, active_from=ACTIVE_FROM + 7
    )
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
    signer = k1_signer()
    result = r.enroll_k1(r.enroller2, device_id, signer, active_from=0)
    assert r.device(device_id) == (
        SECP256K1,
        r.enroller2.address,
        signer,
        0,
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
        "activeFromMs": 0,
    }
    assert r.active(device_id, 0)


def test_p256_points_with_a_small_coordinate_are_accepted(suite) -> None:  # type: ignore[no-untyped-def]
    # the reduced forms of the out-of-range keys refused below are valid keys
    r = Registry(suite)
    for i, (x, y) in enumerate((SMALL_X_POINT, SMALL_Y_POINT)):
        assert on_curve(x, y)
        ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()  # cryptography agrees
        r.enroll_p256(r.enroller, did(f"SN-SMALL-{i}"), (word(x), word(y)))
        assert r.device(did(f"SN-SMALL-{i}"))[5:7] == (word(x), word(y))


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
    with reverts("DeviceRegistryKeyInUse", keyHash=key_hash_p256(*key), deviceId=did("A")):
        r.enroll_p256(r.enroller, did("C"), key)
    with reverts("DeviceRegistryKeyInUse", keyHash=key_hash_k1(signer), deviceId=did("B")):
        r.enroll_k1(r.enroller, did("C"), signer)
    assert key_hash_p256(*key) != key_hash_k1(signer)


def _invalid_p256_keys() -> list[tuple[str, int, int]]:
    x, y = (int.from_bytes(v, "big") for v in p256_key())
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
    r.enroll_k1(r.enroller, device_id, k1_signer(), active_from=0)
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
    """The deployer administers the registry only until the certifier may pin evidence."""
    from contracts.chain import dev_accounts
    from contracts.deploy import deploy_suite

    deployer, admin = dev_accounts(2)
    deployment = deploy_suite(chain, deployer, admin=admin.address)
    fns = deployment.contract(chain, "DeviceRegistry").functions
    assert chain.call(fns.hasRole(EVIDENCE_ROLE, deployment.address("QualityCertifier")))
    for role in (DEFAULT_ADMIN_ROLE, OPERATOR_ROLE):
        assert chain.call(fns.hasRole(role, admin.address))
        assert not chain.call(fns.hasRole(role, deployer.address))
