"""supET Ledger: ledger_service."""
