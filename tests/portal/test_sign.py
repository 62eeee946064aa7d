"""``python -m ledger_service.portal.sign``: the signature it prints is the party's personal_sign of the
message, whatever the file's line ends; a missing key is a typed error (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct

from ledger_service.portal.sign import main, sign_message

KEY = "0x" + "11" * 32
MESSAGE = "127.0.0.1 wants you to sign in with your Ethereum account:\n0xabc\n\nstatement"


@pytest.mark.parametrize("text", [MESSAGE, MESSAGE.replace("\n", "\r\n"), MESSAGE + "\n"])
def test_signature_recovers_to_the_key_s_address(tmp_path: Path, text: str) -> None:
    key_file = tmp_path / "party.key"
    key_file.write_text(KEY)
    signature = sign_message(text, key_file)
    recovered = Account.recover_message(encode_defunct(text=MESSAGE), signature=signature)
    assert recovered == Account.from_key(KEY).address


def test_cli_prints_the_signature_and_refuses_a_missing_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    msg = tmp_path / "message.txt"
    msg.write_text(MESSAGE)
    monkeypatch.setenv("SUPET_PARTY_KEY", KEY)
    assert main([str(msg)]) == 0
    out = capsys.readouterr().out.strip()
    assert (
        Account.recover_message(encode_defunct(text=MESSAGE), signature=out) == Account.from_key(KEY).address
    )
    monkeypatch.delenv("SUPET_PARTY_KEY")
    assert main([str(msg)]) == 2
    assert "no party key" in capsys.readouterr().err
