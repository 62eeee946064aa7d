"""The storage half of the analytics: their inputs read from the store and the chain, their results
published, stored and recomputed.

``analytics/`` computes on columns and knows no storage; this package feeds it:

- :mod:`ledger_service.analytics_store.source`: anchored readings from the store (each checked
  against its digest and its batch's anchored root), orders and deliveries from the chain;
- :mod:`ledger_service.analytics_store.publish`: profiles and yield models computed from those,
  committed, stored (``AnalyticsResultRow``), listed, loaded and recomputed.
"""
