"""Credit records with consent: consent-gated bank queries, their access log and its anchoring, and
credit publishing by the analytics oracle (issue 6, service side)."""
