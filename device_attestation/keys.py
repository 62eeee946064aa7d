"""Device keys: P-256 (secure elements) and secp256k1 (Ethereum gateways).

:class:`DeviceKey` holds a private key and signs; :class:`DevicePublicKey` is
what a registry enrols and what verifiers check against. Key files are PEM:
PKCS#8 when we write them (optionally encrypted), and PKCS#8 or SEC1
(``-----BEGIN EC PRIVATE KEY-----``, what ``openssl ecparam -genkey`` writes)
when we read them.
"""

from __future__ import annotations

import enum
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import coincurve
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ._internal.hexutil import to_checksum_address
from ._internal.keccak import keccak256
from .errors import KeyFileError, UnknownScheme, WrongKeyType

__all__ = ["DeviceKey", "DevicePublicKey", "Scheme", "parse_scheme"]


class Scheme(enum.StrEnum):
    """A signature scheme of spec section 3."""

    P256 = "p256"
    SECP256K1 = "secp256k1"


_CURVES: Final[dict[Scheme, ec.EllipticCurve]] = {
    Scheme.P256: ec.SECP256R1(),
    Scheme.SECP256K1: ec.SECP256K1(),
}


def parse_scheme(value: str) -> Scheme:
    """The :class:`Scheme` named ``value``; raises :class:`UnknownScheme`."""
    try:
        return Scheme(value)
    except ValueError:
        raise UnknownScheme(
            f"unknown signature scheme {value!r}; use one of: " + ", ".join(s.value for s in Scheme)
        ) from None


def _scheme_of_curve(curve: ec.EllipticCurve, what: str) -> Scheme:
    if isinstance(curve, ec.SECP256R1):
        return Scheme.P256
    if isinstance(curve, ec.SECP256K1):
        return Scheme.SECP256K1
    raise WrongKeyType(
        f"{what} is on curve {curve.name}; device keys must be P-256 (secp256r1) "
        "or secp256k1. Generate a new key on one of those curves."
    )


@dataclass(frozen=True, kw_only=True, slots=True, repr=False)
class DevicePublicKey:
    """A device's public key: an affine point ``(x, y)`` on the scheme's curve.

    The point is checked to lie on the curve at construction
    (:class:`WrongKeyType` otherwise).
    """

    scheme: Scheme
    x: int
    y: int

    def __post_init__(self) -> None:
        scheme = parse_scheme(self.scheme)
        object.__setattr__(self, "scheme", scheme)
        try:
            ec.EllipticCurvePublicNumbers(self.x, self.y, _CURVES[scheme]).public_key()
        except (ValueError, TypeError) as e:
            raise WrongKeyType(
                f"({self.x:#x}, {self.y:#x}) is not a point on the {scheme} curve; "
                "check that the key was copied whole and belongs to this scheme",
                code="key.not_on_curve",
            ) from e

    def __repr__(self) -> str:
        return f"DevicePublicKey(scheme={self.scheme.value!r}, x={self.x:#066x}, y={self.y:#066x})"

    @classmethod
    def from_cryptography(cls, public_key: object) -> DevicePublicKey:
        """From a ``cryptography`` EC public key of either supported curve."""
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise WrongKeyType(
                f"a {type(public_key).__name__} is not an elliptic-curve key; "
                "device keys must be P-256 or secp256k1"
            )
        scheme = _scheme_of_curve(public_key.curve, "the public key")
        numbers = public_key.public_numbers()
        return cls(scheme=scheme, x=numbers.x, y=numbers.y)

    @classmethod
    def from_uncompressed(cls, scheme: Scheme | str, point: bytes) -> DevicePublicKey:
        """From the 65-byte SEC1 uncompressed point ``0x04 || x || y``."""
        if len(point) != 65 or point[0] != 4:
            raise WrongKeyType(
                f"expected a 65-byte uncompressed point starting with 0x04, got "
                f"{len(point)} bytes; export the key uncompressed",
                code="key.encoding",
            )
        return cls(
            scheme=parse_scheme(scheme),
            x=int.from_bytes(point[1:33], "big"),
            y=int.from_bytes(point[33:], "big"),
        )

    def to_cryptography(self) -> ec.EllipticCurvePublicKey:
        """The equivalent ``cryptography`` public key object."""
        return ec.EllipticCurvePublicNumbers(self.x, self.y, _CURVES[self.scheme]).public_key()

    @property
    def uncompressed(self) -> bytes:
        """SEC1 uncompressed encoding ``0x04 || x || y`` (65 bytes)."""
        return b"\x04" + self.x.to_bytes(32, "big") + self.y.to_bytes(32, "big")

    @property
    def eth_address(self) -> str:
        """The EIP-55 checksummed Ethereum address of a secp256k1 key."""
        if self.scheme is not Scheme.SECP256K1:
            raise WrongKeyType(
                f"a {self.scheme} key has no Ethereum address; only secp256k1 keys do",
                code="key.no_address",
            )
        return to_checksum_address(keccak256(self.uncompressed[1:])[12:])


def _password_bytes(password: str | bytes | None) -> bytes | None:
    if password is None or isinstance(password, bytes):
        return password
    return password.encode("utf-8")


_PEM_KEY_BLOCK = re.compile(
    rb"-----BEGIN ((?:ENCRYPTED |EC )?PRIVATE KEY)-----.*?-----END \1-----", re.DOTALL
)


@dataclass(frozen=True, slots=True)
class DeviceKey:
    """A device's private key, P-256 or secp256k1. Immutable; never printed.

    Create one with :meth:`generate`, :meth:`from_pem`, :meth:`load` or
    :meth:`from_cryptography`. Two keys are equal when their public keys are.
    """

    _private: ec.EllipticCurvePrivateKey = field(repr=False, compare=False)
    scheme: Scheme = field(init=False)
    public_key: DevicePublicKey = field(init=False)
    _coincurve: coincurve.PrivateKey | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self._private, ec.EllipticCurvePrivateKey):
            raise WrongKeyType(
                f"a {type(self._private).__name__} is not an elliptic-curve private key; "
                "device keys must be P-256 or secp256k1"
            )
        scheme = _scheme_of_curve(self._private.curve, "the private key")
        object.__setattr__(self, "scheme", scheme)
        object.__setattr__(self, "public_key", DevicePublicKey.from_cryptography(self._private.public_key()))
        signer = None
        if scheme is Scheme.SECP256K1:
            secret = self._private.private_numbers().private_value.to_bytes(32, "big")
            signer = coincurve.PrivateKey(secret)
        object.__setattr__(self, "_coincurve", signer)

    # --- factories ----------------------------------------------------------------

    @classmethod
    def generate(cls, scheme: Scheme | str) -> DeviceKey:
        """A fresh random key for ``scheme``."""
        return cls(ec.generate_private_key(_CURVES[parse_scheme(scheme)]))

    @classmethod
    def from_cryptography(cls, private_key: object) -> DeviceKey:
        """Wrap a ``cryptography`` EC private key of either supported curve."""
        return cls(private_key)  # type: ignore[arg-type]

    @classmethod
    def from_pem(cls, data: bytes | str, password: str | bytes | None = None) -> DeviceKey:
        """Read a PEM private key (PKCS#8, encrypted PKCS#8 or SEC1).

        Raises :class:`KeyFileError` for garbage or a wrong/missing password and
        :class:`WrongKeyType` for a key that is not P-256 or secp256k1.
        """
        raw = data.encode("ascii", "replace") if isinstance(data, str) else bytes(data)
        # `openssl ecparam -genkey` puts an "EC PARAMETERS" block first; pick the key block.
        match = _PEM_KEY_BLOCK.search(raw)
        if match is None:
            raise KeyFileError(
                "no PEM private key block found (expected -----BEGIN PRIVATE KEY-----, "
                "ENCRYPTED PRIVATE KEY or EC PRIVATE KEY); check that this is a private key file"
            )
        block = match.group(0)
        try:
            key = serialization.load_pem_private_key(block, password=_password_bytes(password))
        except TypeError as e:
            if password is None:
                raise KeyFileError(
                    "the key file is encrypted; pass its password", code="key.password_required"
                ) from e
            raise KeyFileError(
                "the key file is not encrypted; load it without a password",
                code="key.password_unexpected",
            ) from e
        except ValueError as e:
            hint = (
                "the password is wrong or the file is damaged"
                if password is not None
                else "the file is damaged or not a supported key"
            )
            raise KeyFileError(f"cannot read the private key: {hint} ({e})") from e
        except UnsupportedAlgorithm as e:
            raise WrongKeyType(
                f"unsupported key algorithm ({e}); device keys must be P-256 or secp256k1"
            ) from e
        return cls(key)  # type: ignore[arg-type]

    @classmethod
    def load(cls, path: str | os.PathLike[str], password: str | bytes | None = None) -> DeviceKey:
        """Read a PEM key file written by :meth:`save` or by OpenSSL."""
        try:
            data = Path(path).read_bytes()
        except OSError as e:
            raise KeyFileError(f"cannot read key file {os.fspath(path)!r}: {e.strerror}") from e
        return cls.from_pem(data, password)

    # --- export -------------------------------------------------------------------

    def to_pem(self, password: str | bytes | None = None) -> bytes:
        """PKCS#8 PEM, encrypted with the best available scheme when a password is given."""
        secret = _password_bytes(password)
        if secret == b"":
            raise KeyFileError(
                "an empty password would not protect the key; pass None for no encryption or a real password",
                code="key.empty_password",
            )
        encryption: serialization.KeySerializationEncryption = (
            serialization.NoEncryption() if secret is None else serialization.BestAvailableEncryption(secret)
        )
        return self._private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )

    def save(
        self,
        path: str | os.PathLike[str],
        password: str | bytes | None = None,
        *,
        overwrite: bool = False,
    ) -> None:
        """Write the key as PEM to ``path`` with mode 0600, atomically.

        Refuses to replace an existing file unless ``overwrite`` is true: a
        lost device key cannot be recovered.
        """
        target = Path(path)
        if target.exists() and not overwrite:
            raise KeyFileError(
                f"{os.fspath(target)!r} already exists; delete it first or pass overwrite=True",
                code="key.file_exists",
            )
        pem = self.to_pem(password)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.fchmod(fd, 0o600)
                os.write(fd, pem)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, target)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise KeyFileError(f"cannot write key file {os.fspath(target)!r}: {e.strerror}") from e

    # --- internal access for signing and certificates ------------------------------

    @property
    def private_key(self) -> ec.EllipticCurvePrivateKey:
        """The underlying ``cryptography`` key (for CSRs and the like)."""
        return self._private
