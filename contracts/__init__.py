"""supET Ledger contracts: Solidity sources, compiled artifacts, and the chain-access layer.

- :mod:`contracts.artifacts` loads the committed artifacts (no node needed).
- :mod:`contracts.build` compiles the sources (needs solc, or node with solc-js).
- :mod:`contracts.chain` talks to the embedded chain or any JSON-RPC node.
- :mod:`contracts.deploy` deploys the suite and writes a deployment file.
"""
