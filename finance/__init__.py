"""supET Ledger: finance."""
