"""The acting party's Ethereum key, from a file or the environment."""

from __future__ import annotations

import json
import os
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from supet_base.errors import SupetError

#: Environment variable holding the acting party's private key (0x-hex).
KEY_ENV = "SUPET_PARTY_KEY"
#: Environment variable holding the password of an encrypted keystore file.
PASSWORD_ENV = "SUPET_PARTY_KEY_PASSWORD"


class PartyKeyError(SupetError):
    """The acting party's key is missing or unreadable."""

    code = "party.key"


def _from_hex(text: str, where: str) -> LocalAccount:
    try:
        return Account.from_key(text.strip())
    except (ValueError, TypeError) as e:
        raise PartyKeyError(
            f"{where} does not hold a valid secp256k1 private key (expected 32 bytes as 0x-hex)"
        ) from e


def load_party_account(key_file: Path | None = None, *, env: dict[str, str] | None = None) -> LocalAccount:
    """The acting party's account.

    ``key_file`` may hold a 0x-hex private key, or an encrypted Ethereum keystore
    (JSON, password in ``$SUPET_PARTY_KEY_PASSWORD``). Without a file the key is
    read from ``$SUPET_PARTY_KEY``.
    """
    environ = os.environ if env is None else env
    if key_file is None:
        value = environ.get(KEY_ENV)
        if not value:
            raise PartyKeyError(
                f"no party key: pass --key-file FILE or set {KEY_ENV} to the acting party's private key"
            )
        return _from_hex(value, f"${KEY_ENV}")
    try:
        text = key_file.read_text(encoding="utf-8")
    except OSError as e:
        raise PartyKeyError(f"cannot read the key file {key_file}: {e.strerror}") from e
    if text.lstrip().startswith("{"):
        password = environ.get(PASSWORD_ENV)
        if password is None:
            raise PartyKeyError(f"{key_file} is an encrypted keystore: set {PASSWORD_ENV}")
        try:
            key = Account.decrypt(json.loads(text), password)
        except ValueError as e:
            raise PartyKeyError(f"cannot decrypt {key_file}: wrong password or damaged keystore") from e
        return Account.from_key(key)
    return _from_hex(text, str(key_file))
