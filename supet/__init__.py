"""supET Ledger's roof: the ``supet`` command line and the demo. Nothing imports this package."""

from supet_base import __version__

__all__ = ["__version__"]
