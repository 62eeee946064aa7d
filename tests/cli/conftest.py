"""Fixtures of the command-line tests: ``supet`` run in this process, as a party."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from supet.cli import main


@pytest.fixture
def cli(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[..., tuple[int, str]]:
    """``cli(*args, key=None)`` runs ``supet ARGS`` in this process as the party whose key is ``key``
    (``SUPET_PARTY_KEY``; ``None``: unset). It returns the exit code and the output (stdout, then
    stderr) with white space folded to single spaces: rich wraps long lines, so a message is matched
    whatever the terminal's width."""

    def run(*args: str, key: str | None = None) -> tuple[int, str]:
        if key is None:
            monkeypatch.delenv("SUPET_PARTY_KEY", raising=False)
        else:
            monkeypatch.setenv("SUPET_PARTY_KEY", key)
        code = 0
        try:
            main(list(args))
        except SystemExit as e:
            code = int(e.code or 0)
        out = capsys.readouterr()
        return code, " ".join((out.out + out.err).split())

    return run
