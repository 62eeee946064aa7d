"""Private helpers of :mod:`device_attestation`; not a public API."""
