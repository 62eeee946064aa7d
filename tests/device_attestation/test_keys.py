"""Device keys: generation, PEM files, public keys and addresses."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from eth_keys import keys as eth_keys

from device_attestation import (
    DeviceKey,
    DevicePublicKey,
    KeyFileError,
    Scheme,
    UnknownScheme,
    WrongKeyType,
    parse_scheme,
)


@pytest.mark.parametrize("scheme", list(Scheme))
def test_generate_and_pem_round_trip(scheme: Scheme) -> None:
    key = DeviceKey.generate(scheme)
    assert key.scheme is scheme
    assert key.public_key.scheme is scheme
    pem = key.to_pem()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    assert DeviceKey.from_pem(pem) == key
    assert DeviceKey.from_pem(pem.decode()) == key
    encrypted = key.to_pem("s3cret")
    assert encrypted.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert DeviceKey.from_pem(encrypted, password="s3cret") == key
    assert DeviceKey.from_pem(encrypted, password=b"s3cret") == key


def test_generate_accepts_scheme_strings_and_refuses_others() -> None:
    assert DeviceKey.generate("secp256k1").scheme is Scheme.SECP256K1
    with pytest.raises(UnknownScheme, match="use one of: p256, secp256k1"):
        DeviceKey.generate("ed25519")


def test_keys_are_not_printed() -> None:
    key = DeviceKey.generate(Scheme.P256)
    secret = key.private_key.private_numbers().private_value
    assert str(secret) not in repr(key)
    assert f"{secret:x}" not in repr(key)
    assert "DevicePublicKey(scheme='p256', x=0x" in repr(key)


@pytest.mark.parametrize("scheme", list(Scheme))
def test_save_and_load(tmp_path: Path, scheme: Scheme) -> None:
    key = DeviceKey.generate(scheme)
    path = tmp_path / "device.pem"
    key.save(path, password="pw")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert DeviceKey.load(path, password="pw") == key
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


def test_save_refuses_to_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "device.pem"
    first = DeviceKey.generate(Scheme.P256)
    first.save(path)
    second = DeviceKey.generate(Scheme.P256)
    with pytest.raises(KeyFileError, match="already exists; delete it first") as caught:
        second.save(path)
    assert caught.value.code == "key.file_exists"
    assert DeviceKey.load(path) == first
    os.chmod(path, 0o644)
    second.save(path, overwrite=True)
    assert DeviceKey.load(path) == second
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_save_into_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="cannot write key file"):
        DeviceKey.generate(Scheme.P256).save(tmp_path / "nope" / "device.pem")


@pytest.mark.parametrize(
    ("data", "password", "code", "fragment"),
    [
        (b"garbage", None, "key.file", "no PEM private key block"),
        (
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            None,
            "key.file",
            "damaged",
        ),
        ("encrypted", None, "key.password_required", "encrypted; pass its password"),
        ("encrypted", "wrong", "key.file", "password is wrong"),
        ("plain", "pw", "key.password_unexpected", "not encrypted; load it without"),
    ],
)
def test_bad_key_files(data: bytes | str, password: str | None, code: str, fragment: str) -> None:
    key = DeviceKey.generate(Scheme.P256)
    if data == "encrypted":
        data = key.to_pem("right")
    elif data == "plain":
        data = key.to_pem()
    with pytest.raises(KeyFileError, match=fragment) as caught:
        DeviceKey.from_pem(data, password=password)
    assert caught.value.code == code


def test_load_missing_file(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="cannot read key file"):
        DeviceKey.load(tmp_path / "absent.pem")


def test_empty_password_is_refused() -> None:
    with pytest.raises(KeyFileError, match="empty password"):
        DeviceKey.generate(Scheme.P256).to_pem("")


def _pem(private_key: object) -> bytes:
    return private_key.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@pytest.mark.parametrize(
    ("private_key", "fragment"),
    [
        (ec.generate_private_key(ec.SECP384R1()), "curve secp384r1"),
        (ec.generate_private_key(ec.SECP521R1()), "curve secp521r1"),
        (ed25519.Ed25519PrivateKey.generate(), "not an elliptic-curve private key"),
        (rsa.generate_private_key(public_exponent=65537, key_size=2048), "not an elliptic-curve"),
    ],
    ids=["p384", "p521", "ed25519", "rsa"],
)
def test_other_key_types_are_refused(private_key: object, fragment: str) -> None:
    with pytest.raises(WrongKeyType, match=fragment):
        DeviceKey.from_pem(_pem(private_key))
    with pytest.raises(WrongKeyType, match=fragment):
        DeviceKey.from_cryptography(private_key)


def test_sec1_pem_is_read() -> None:
    private = ec.generate_private_key(ec.SECP256K1())
    sec1 = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    assert sec1.startswith(b"-----BEGIN EC PRIVATE KEY-----")
    key = DeviceKey.from_pem(
        b"-----BEGIN EC PARAMETERS-----\nBgUrgQQACg==\n-----END EC PARAMETERS-----\n" + sec1
    )
    assert key.scheme is Scheme.SECP256K1
    assert key.public_key == DevicePublicKey.from_cryptography(private.public_key())


# --- public keys -------------------------------------------------------------------


def test_eth_address_matches_eth_keys() -> None:
    key = DeviceKey.generate(Scheme.SECP256K1)
    secret = key.private_key.private_numbers().private_value.to_bytes(32, "big")
    assert key.public_key.eth_address == eth_keys.PrivateKey(secret).public_key.to_checksum_address()


def test_p256_has_no_address() -> None:
    with pytest.raises(WrongKeyType, match="has no Ethereum address") as caught:
        _ = DeviceKey.generate(Scheme.P256).public_key.eth_address
    assert caught.value.code == "key.no_address"


@pytest.mark.parametrize("scheme", list(Scheme))
def test_public_key_conversions(scheme: Scheme) -> None:
    public = DeviceKey.generate(scheme).public_key
    assert DevicePublicKey.from_cryptography(public.to_cryptography()) == public
    assert DevicePublicKey.from_uncompressed(scheme, public.uncompressed) == public
    assert public.uncompressed == public.to_cryptography().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def test_vector_p256_key_is_on_the_curve(vectors: dict[str, Any]) -> None:
    device = vectors["devices"][0]
    public = DevicePublicKey(
        scheme=Scheme.P256, x=int(device["public_key_x"], 16), y=int(device["public_key_y"], 16)
    )
    assert public.scheme is Scheme.P256
    # the same point is not on secp256k1
    with pytest.raises(WrongKeyType, match="not a point on the secp256k1 curve") as caught:
        DevicePublicKey(scheme="secp256k1", x=public.x, y=public.y)  # type: ignore[arg-type]
    assert caught.value.code == "key.not_on_curve"


@pytest.mark.parametrize(
    ("point", "fragment"),
    [
        (b"\x04" + bytes(63), "65-byte uncompressed point"),
        (b"\x02" + bytes(64), "65-byte uncompressed point"),
        (b"\x04" + bytes(64), "not a point on the p256 curve"),
    ],
)
def test_bad_uncompressed_points(point: bytes, fragment: str) -> None:
    with pytest.raises(WrongKeyType, match=fragment):
        DevicePublicKey.from_uncompressed(Scheme.P256, point)


def test_public_key_of_another_kind() -> None:
    with pytest.raises(WrongKeyType, match="curve secp384r1"):
        DevicePublicKey.from_cryptography(ec.generate_private_key(ec.SECP384R1()).public_key())
    with pytest.raises(WrongKeyType, match="not an elliptic-curve key"):
        DevicePublicKey.from_cryptography(ed25519.Ed25519PrivateKey.generate().public_key())


def test_parse_scheme() -> None:
    assert parse_scheme("p256") is Scheme.P256
    with pytest.raises(UnknownScheme, match="unknown signature scheme 'P256'") as caught:
        parse_scheme("P256")
    assert caught.value.code == "signature.unknown_scheme"
