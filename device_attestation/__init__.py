"""supET Ledger: device_attestation."""
