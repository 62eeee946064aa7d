"""``supet party sign-in-message``: the signature it prints is the party's personal_sign of the portal's
sign-in message, whatever the file's line ends; a missing key is a typed error (exit 1, as
every supet command's), no signature printed."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

KEY = "0x" + "11" * 32
MESSAGE = "127.0.0.1 wants you to sign in with your Ethereum account:\n0xabc\n\nstatement"


@pytest.mark.parametrize("text", [MESSAGE, MESSAGE.replace("\n", "\r\n"), MESSAGE + "\n"])
def test_signature_recovers_to_the_key_s_address(
    cli: Callable[..., tuple[int, str]], tmp_path: Path, text: str
) -> None:
    msg = tmp_path / "message.txt"
    msg.write_bytes(text.encode())
    code, out = cli("party", "sign-in-message", str(msg), key=KEY)
    assert code == 0, out
    assert (
        Account.recover_message(encode_defunct(text=MESSAGE), signature=out) == Account.from_key(KEY).address
    )


def test_a_missing_key_is_refused(cli: Callable[..., tuple[int, str]], tmp_path: Path) -> None:
    msg = tmp_path / "message.txt"
    msg.write_text(MESSAGE)
    code, out = cli("party", "sign-in-message", str(msg))
    assert code == 1 and "no party key" in out
    assert re.search(r"0x[0-9a-f]{130}", out) is None
