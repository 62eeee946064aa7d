"""supET Ledger: analytics."""
