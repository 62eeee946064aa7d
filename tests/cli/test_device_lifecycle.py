"""The device lifecycle through the `supet` command line, against a real node (anvil)."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from support import require

from contracts.anvil import AnvilNode
from contracts.chain import Chain, dev_accounts
from contracts.deployment import Deployment
from contracts.registry import DeviceRegistryClient, OnChainScheme

OPERATOR, FACTORY, OTHER = (a.key.to_0x_hex() for a in dev_accounts(3))


@pytest.fixture
def node(anvil_node: AnvilNode) -> AnvilNode:
    snapshot = anvil_node.snapshot()
    yield anvil_node  # type: ignore[misc]
    anvil_node.revert(snapshot)


@pytest.mark.anvil
@pytest.mark.parametrize("scheme", ["p256", "secp256k1"])
def test_device_lifecycle(
    node: AnvilNode,
    tmp_path: Path,
    scheme: str,
    cli: Callable[..., tuple[int, str]],
) -> None:
    dep = tmp_path / "deployment.json"
    common = ("--rpc", node.url, "--deployment", str(dep))
    code, out = cli("deploy", "--rpc", node.url, "--out", str(dep), "--dev-account", "0")
    assert code == 0, out
    assert "ReadingAnchor" in out and dep.exists()

    code, out = cli("ca", "create", "--out-dir", str(tmp_path / "ca"), "--cn", "Acme Sensors CA")
    assert code == 0, out
    code, out = cli("device", "keygen", "--scheme", scheme, "--out", str(tmp_path / "dev.key"))
    assert code == 0, out
    assert (tmp_path / "dev.key").stat().st_mode & 0o777 == 0o600
    code, out = cli(
        "device",
        "csr",
        "--key",
        str(tmp_path / "dev.key"),
        "--device-id",
        "SN-CLI-1",
        "--out",
        str(tmp_path / "dev.csr"),
    )
    assert code == 0, out
    code, out = cli(
        "ca",
        "issue",
        "--ca-key",
        str(tmp_path / "ca/ca.key.pem"),
        "--ca-cert",
        str(tmp_path / "ca/ca.cert.pem"),
        "--csr",
        str(tmp_path / "dev.csr"),
        "--out",
        str(tmp_path / "dev.cert.pem"),
    )
    assert code == 0, out

    enroll = (
        "device",
        "enroll",
        "--cert",
        str(tmp_path / "dev.cert.pem"),
        "--ca-cert",
        str(tmp_path / "ca/ca.cert.pem"),
        "--device-key",
        str(tmp_path / "dev.key"),
        *common,
    )
    # before the operator trusts the CA, enrollment is refused and nothing is written
    code, out = cli(*enroll, key=FACTORY)
    assert code == 1 and "not trusted on chain" in out and "supet ca register" in out

    code, out = cli("ca", "register", "--cert", str(tmp_path / "ca/ca.cert.pem"), *common, key=OPERATOR)
    assert code == 0, out
    # the factory is not yet admitted (no enroller role): the registry's custom error is named
    code, out = cli(*enroll, key=FACTORY)
    assert code == 1 and "DeviceRegistryNotAdmitted" in out

    chain = Chain.connect(node.url)
    deployment = Deployment.load(dep)
    registry = DeviceRegistryClient(chain, deployment)
    registry.grant_enroller(dev_accounts(1)[0], dev_accounts(2)[1].address)
    # issue 12.2: no back-dated activation (the CA's birth attestation, found beside the certificate,
    # and the device's proof of possession are checked on chain too)
    code, out = cli(*enroll, "--active-from", "1000", key=FACTORY)
    assert code == 1 and "DeviceRegistryActiveFromInPast" in out
    code, out = cli(*enroll, "--active-from", "0", key=FACTORY)  # 0: the enrollment block's time
    assert code == 0, out
    record = registry.device("SN-CLI-1")
    assert record.scheme is (OnChainScheme.P256 if scheme == "p256" else OnChainScheme.SECP256K1)
    active = record.active_from_ms
    assert record.owner == dev_accounts(2)[1].address and active == chain.block("latest")["timestamp"] * 1000
    node.rpc("evm_increaseTime", [10])  # ten seconds of the device's life, for the revocations below
    node.rpc("evm_mine", [])

    code, out = cli(*enroll, key=FACTORY)  # twice: the registry refuses
    assert code == 1 and "DeviceRegistryDeviceExists" in out

    code, out = cli("device", "show", "--device-id", "SN-CLI-1", *common)
    assert code == 0 and "active now: True" in out

    code, out = cli("device", "revoke", "--device-id", "SN-CLI-1", *common, key=OTHER)
    assert code == 1 and "DeviceRegistryNotOwnerOrOperator" in out
    # issue 12.1: an owner cannot revoke in the future (it would make the device unrevokable)
    revoke = ("device", "revoke", "--device-id", "SN-CLI-1", *common)
    code, out = cli(*revoke, "--at", str(2**64 - 1), key=FACTORY)
    assert code == 1 and "DeviceRegistryRevocationInFuture" in out
    code, out = cli(*revoke, "--at", str(active + 5000), key=FACTORY)
    assert code == 0, out
    assert registry.device("SN-CLI-1").revoked_at_ms == active + 5000
    code, out = cli(*revoke, "--at", str(active + 6000), key=OPERATOR)  # only earlier
    assert code == 1 and "DeviceRegistryRevocationNotEarlier" in out
    # the operator's ruling, with its reason (before evidence a verdict used, when there is some)
    ruling = str(active + 4000)
    code, out = cli(*revoke, "--at", ruling, "--reason", "INC-1: key leaked", key=FACTORY)
    assert code == 1 and "AccessControlUnauthorizedAccount" in out
    code, out = cli(*revoke, "--at", ruling, "--reason", "INC-1: key leaked", key=OPERATOR)
    assert code == 0 and "ruling: INC-1: key leaked" in out, out
    assert registry.device("SN-CLI-1").revoked_at_ms == active + 4000
    code, out = cli("device", "show", "--device-id", "SN-CLI-1", *common)
    assert code == 0 and "evidence pinned by verdicts up to -" in out


@pytest.mark.anvil
def test_openssl_made_certificates_enroll(
    node: AnvilNode, tmp_path: Path, cli: Callable[..., tuple[int, str]]
) -> None:
    """A CA, a secp256k1 device key and its certificate made by OpenSSL work with our commands."""
    require(shutil.which("openssl") is not None, "openssl is not installed")

    def sh(*args: str) -> None:
        subprocess.run(args, cwd=tmp_path, check=True, capture_output=True)

    (tmp_path / "ext.cnf").write_text(
        "[v3_ca]\nbasicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n"
        "subjectKeyIdentifier=hash\n"
        "[v3_dev]\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
        "extendedKeyUsage=clientAuth\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
    )
    sh("openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key")
    sh(
        "openssl",
        "req",
        "-new",
        "-x509",
        "-key",
        "ca.key",
        "-subj",
        "/O=OpenSSL Maker/CN=OpenSSL CA",
        "-days",
        "30",
        "-config",
        "ext.cnf",
        "-extensions",
        "v3_ca",
        "-out",
        "ca.pem",
    )
    sh("openssl", "ecparam", "-name", "secp256k1", "-genkey", "-noout", "-out", "dev.key")
    sh("openssl", "req", "-new", "-key", "dev.key", "-subj", "/CN=GW-OPENSSL-1", "-out", "dev.csr")
    sh(
        "openssl",
        "x509",
        "-req",
        "-in",
        "dev.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "30",
        "-extfile",
        "ext.cnf",
        "-extensions",
        "v3_dev",
        "-out",
        "dev.pem",
    )

    dep = tmp_path / "deployment.json"
    common = ("--rpc", node.url, "--deployment", str(dep))
    assert cli("deploy", "--rpc", node.url, "--out", str(dep), "--dev-account", "0")[0] == 0
    assert cli("ca", "register", "--cert", str(tmp_path / "ca.pem"), *common, key=OPERATOR)[0] == 0
    registry = DeviceRegistryClient(Chain.connect(node.url), Deployment.load(dep))
    registry.grant_enroller(dev_accounts(1)[0], dev_accounts(2)[1].address)
    enroll = ("device", "enroll", "--cert", str(tmp_path / "dev.pem"), "--ca-cert", str(tmp_path / "ca.pem"))
    enroll += ("--device-key", str(tmp_path / "dev.key"), *common)
    # issue 12.2: the registry wants the CA's birth attestation; OpenSSL made the certificate, so the CA
    # attests it with `supet ca attest` (written beside it, where `supet device enroll` looks)
    code, out = cli(*enroll, key=FACTORY)
    assert code == 1 and "supet ca attest" in out
    code, out = cli(
        "ca",
        "attest",
        "--ca-key",
        str(tmp_path / "ca.key"),
        "--ca-cert",
        str(tmp_path / "ca.pem"),
        "--cert",
        str(tmp_path / "dev.pem"),
    )
    assert code == 0 and "GW-OPENSSL-1" in out, out
    assert (tmp_path / "dev.birth.json").exists()
    code, out = cli(
        "device",
        "enroll",
        "--cert",
        str(tmp_path / "dev.pem"),
        "--ca-cert",
        str(tmp_path / "ca.pem"),
        "--device-key",
        str(tmp_path / "dev.key"),
        *common,
        key=FACTORY,
    )
    assert code == 0, out
    assert registry.device("GW-OPENSSL-1").scheme is OnChainScheme.SECP256K1
    code, out = cli(*enroll, key=FACTORY)  # once only
    assert code == 1 and "DeviceRegistryDeviceExists" in out


def test_missing_party_key_is_a_clear_error(tmp_path: Path, cli: Callable[..., tuple[int, str]]) -> None:
    code, out = cli(
        "device",
        "revoke",
        "--device-id",
        "X",
        "--rpc",
        "http://127.0.0.1:1",
        "--deployment",
        str(tmp_path / "none.json"),
    )
    assert code == 1 and "no deployment file" in out and "supet deploy" in out
