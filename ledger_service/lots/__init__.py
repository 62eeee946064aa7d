"""A lot's history, served from the store and the chain.

- :mod:`~ledger_service.lots.timeline`: the lot's timeline (chain steps and readings, paged by an
  opaque cursor), which lot an id names, and which devices may speak for it;
- :mod:`~ledger_service.lots.epcis`: the lot's EPCIS export (the adapter from the timeline, paged
  and cached);
- :mod:`~ledger_service.lots.epcis_document`: the GS1 EPCIS 2.0 document format (steps to events);
- :mod:`~ledger_service.lots.epcis_hash`: the GS1 event hash of an event and the documents'
  JSON-LD context;
- :mod:`~ledger_service.lots.certification`: the lot's certification package (its anchored
  readings with their proofs, as ``certifyLot`` takes them).
"""
