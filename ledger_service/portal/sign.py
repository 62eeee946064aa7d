"""Sign a portal sign-in message with a party key: ``python -m ledger_service.portal.sign``.

For people without a browser wallet. The key comes as for every ``supet`` party command:
``--key-file`` (0x-hex, or an encrypted keystore with its password in
``$SUPET_PARTY_KEY_PASSWORD``) or ``$SUPET_PARTY_KEY``. The message is read from the file
named (or standard input), exactly as the portal shows it; the signature (EIP-191
``personal_sign``, 0x-hex) is printed, to paste into the portal's form.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from eth_account.messages import encode_defunct

from supet_base.errors import SupetError
from supet_base.parties import load_party_account

__all__ = ["main", "sign_message"]


def sign_message(message: str, key_file: Path | None = None) -> str:
    """The 0x-hex ``personal_sign`` signature of ``message`` (line ends normalised to ``\\n``)."""
    account = load_party_account(key_file)
    text = message.replace("\r\n", "\n").rstrip("\n")
    return str(account.sign_message(encode_defunct(text=text)).signature.to_0x_hex())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ledger_service.portal.sign", description=__doc__.split("\n")[0]
    )
    parser.add_argument("message", nargs="?", type=Path, help="file holding the message (default: stdin)")
    parser.add_argument(
        "--key-file", type=Path, default=None, help="the party key (default: $SUPET_PARTY_KEY)"
    )
    args = parser.parse_args(argv)
    text = args.message.read_text(encoding="utf-8") if args.message else sys.stdin.read()
    try:
        print(sign_message(text, args.key_file))
    except SupetError as e:
        print(f"error [{e.code}]: {e.message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
