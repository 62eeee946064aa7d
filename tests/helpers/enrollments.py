"""Enrollments for tests that call the DeviceRegistry contract directly (issue 12, finding 2).

* :func:`attested_secp256k1` builds a real ``enrollSecp256k1`` call: a fresh device key, the
  test CA's EIP-712 birth attestation and the device's proof of possession for the owner, at this
  registry. The registry must trust :func:`fixture_ca` (:func:`trust_test_ca`).
* :func:`enroll_without_attestation` records a device in the TEST-ONLY ``DeviceRegistryHarness``
  (``contracts/src/testing/``), deployed in place of the registry with
  ``deploy_suite(device_registry=HARNESS)``: for the Reading v1 vector devices, which have public
  keys only (no proof of possession possible) and readings dated 2025-11 (before any enrollment).
  The ``harness_suite`` fixture (import ``harness_suite_fixture`` and ``harness_anvil_fixture``
  into the test module) gives such a suite on both
  chains; on anvil it is its own node, so the ReadingAnchor is at the vectors' address
  (dev account 0's first contract) whatever the session's node holds.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

import pytest
from embedded_pool import deployed_embedded
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address
from support import require

from contracts.anvil import AnvilNode, find_anvil
from contracts.chain import Chain, TxResult, dev_accounts
from contracts.deploy import deploy_suite
from contracts.deployment import Deployment
from contracts.registry import OnChainScheme

#: The test-only registry artifact (``contracts/src/testing/DeviceRegistryHarness.sol``).
HARNESS = "DeviceRegistryHarness"
_ZERO_ADDRESS = "0x" + "00" * 20


@dataclass(frozen=True)
class FixtureCA:
    """A P-256 manufacturer CA for tests: its key, certificate, public point and on-chain id."""

    key: Any
    cert: Any
    x: int
    y: int
    key_hash: bytes


@cache
def fixture_ca() -> FixtureCA:
    """One test CA per process (creating a CA costs a key generation)."""
    import datetime as dt

    from device_attestation.birth import ca_public_point
    from device_attestation.certificates import ca_key_hash
    from device_attestation.manufacturer_ca import create_manufacturer_ca

    key, cert = create_manufacturer_ca(
        common_name="Test Device CA",
        organization="supET tests",
        valid_days=365,
        not_before=dt.datetime.now(dt.UTC) - dt.timedelta(days=1),
    )
    x, y = ca_public_point(cert)
    return FixtureCA(key=key, cert=cert, x=x, y=y, key_hash=ca_key_hash(cert))


def trust_test_ca(chain: Chain, registry: Any, operator: LocalAccount) -> bytes:
    """``trustCA`` the test CA in ``registry`` (a web3 contract); its key hash."""
    ca = fixture_ca()
    chain.transact(
        registry.functions.trustCA(ca.x.to_bytes(32, "big"), ca.y.to_bytes(32, "big"), "Test CA"), operator
    )
    return ca.key_hash


def attested_secp256k1(
    chain: Chain, registry: Any, owner: str, serial: str, *, active_from_ms: int = 0
) -> Any:
    """A real ``enrollSecp256k1`` call of a fresh gateway ``serial`` for ``owner`` (not sent)."""
    from device_attestation.birth import birth_digest, sign_possession
    from device_attestation.keys import DeviceKey
    from device_attestation.signing import sign_digest

    ca = fixture_ca()
    key = DeviceKey.generate("secp256k1")
    fingerprint = keccak(f"certificate of {serial}".encode())
    birth = sign_digest(
        DeviceKey.from_cryptography(ca.key), birth_digest(serial, key.public_key, fingerprint)
    )
    possession = sign_possession(
        key, device_id=serial, owner=owner, chain_id=chain.chain_id, registry=registry.address
    )
    return registry.functions.enrollSecp256k1(
        keccak(serial.encode()),
        to_checksum_address(key.public_key.eth_address),
        fingerprint,
        ca.key_hash,
        active_from_ms,
        birth,
        possession,
    )


def enroll_without_attestation(
    chain: Chain,
    deployment: Deployment,
    party: LocalAccount,
    device_id: str,
    *,
    x: int = 0,
    y: int = 0,
    address: str | None = None,
    cert_fingerprint: bytes,
    ca_key_hash: bytes,
    active_from_ms: int,
) -> TxResult:
    """TEST ONLY: record ``device_id`` (P-256 ``x``/``y``, or secp256k1 ``address``) in the harness
    deployed as the DeviceRegistry, owned by ``party``, active from ``active_from_ms`` as given."""
    harness = chain.contract(HARNESS, deployment.address("DeviceRegistry"))
    scheme = OnChainScheme.SECP256K1 if address is not None else OnChainScheme.P256
    fn = harness.functions.enrollWithoutAttestationForTest(
        keccak(device_id.encode()),
        int(scheme),
        x.to_bytes(32, "big"),
        y.to_bytes(32, "big"),
        to_checksum_address(address or _ZERO_ADDRESS),
        cert_fingerprint,
        ca_key_hash,
        active_from_ms,
    )
    return chain.transact(fn, party)


# ---------------------------------------------------------------- a suite with the harness


@dataclass(frozen=True)
class HarnessSuite:
    """The suite with the ``DeviceRegistryHarness`` as its DeviceRegistry, deployed by account 0."""

    chain: Chain
    deployment: Deployment
    operator: LocalAccount
    accounts: list[LocalAccount]

    def contract(self, name: str) -> Any:
        return self.deployment.contract(self.chain, name)


@pytest.fixture(scope="module", name="harness_anvil")
def harness_anvil_fixture() -> Iterator[tuple[AnvilNode, Deployment]]:
    """An anvil of the test module's own with the harness suite deployed once (tests roll back)."""
    require(find_anvil() is not None, "anvil is not installed (run `npm ci`)")
    with AnvilNode(hardfork="osaka") as node:
        yield node, deploy_suite(Chain.connect(node.url), dev_accounts(1)[0], device_registry=HARNESS)


@pytest.fixture(name="harness_suite", params=["embedded", "anvil"])
def harness_suite_fixture(request: pytest.FixtureRequest) -> Iterator[HarnessSuite]:
    """The harness suite on the process's embedded chain (deployed once, tests/helpers/embedded_pool.py),
    and on the module's anvil; either rolled back after."""
    accounts = dev_accounts(10)
    if request.param == "embedded":
        with deployed_embedded(HARNESS) as (chain, deployment):
            yield HarnessSuite(chain=chain, deployment=deployment, operator=accounts[0], accounts=accounts)
        return
    node, deployment = request.getfixturevalue("harness_anvil")
    snapshot = node.snapshot()
    try:
        yield HarnessSuite(
            chain=Chain.connect(node.url), deployment=deployment, operator=accounts[0], accounts=accounts
        )
    finally:
        node.revert(snapshot)
