"""The one base error every supET Ledger error derives from."""

from __future__ import annotations


class SupetError(Exception):
    """Base class of every error raised by supET Ledger code.

    Catch this to handle any failure the project reports on purpose; anything
    else escaping is a bug.
    """

    #: A short, stable, machine-readable code (e.g. ``"signature.high_s"``).
    code: str = "supet.error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""
