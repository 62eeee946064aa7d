"""supET Ledger: cross-cutting pieces (the command line, the base error)."""

__version__ = "0.1.0"
