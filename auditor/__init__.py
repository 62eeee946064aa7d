"""The auditor: check what the ledger service claims with the chain alone, trusting no ledger.

A package of its own (as sigstore-python keeps its verifier), small enough to depend on without the
service: it imports ``contracts``, ``device_attestation`` and the base error, never
``ledger_service``. Its public surface, by module:

- :mod:`auditor.bundle`: the proof bundle's wire format (``ProofBundle``) and ``build_bundle``;
- :mod:`auditor.errors`: ``VerificationError`` and one subclass per check (``CHECKS``);
- :mod:`auditor.checks`: the chain-free checks (``verify_bundle_against``);
- :mod:`auditor.verify`: the verifier (``BundleVerifier``, its ``verify_many`` for a directory in one
  run, ``verify_bundle``, ``verify_bundle_on_chain``);
- :mod:`auditor.chain_reads`: the chain state a bundle is checked against, read per bundle or once per
  run in JSON-RPC batch requests (``RunReads``);
- :mod:`auditor.lot_chain`: a lot's events read from the chain alone (``lot_chain_steps``);
- :mod:`auditor.lot_audit`: judging a lot's whole history (``supet audit lot``).
"""
