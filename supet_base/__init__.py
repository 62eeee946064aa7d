"""supET Ledger's ground: what every other package may stand on.

* :mod:`supet_base.errors`: :class:`~supet_base.errors.SupetError`, the one root of every error the
  project raises on purpose (each carries a stable ``code``);
* :mod:`supet_base.parties`: the acting party's Ethereum key, from a file or the environment;
* ``__version__``: the code version results are committed with.

It imports no other package of the project (``docs/architecture.md``; ``tests/test_architecture.py``).
"""

__version__ = "0.1.0"
