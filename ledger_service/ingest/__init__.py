"""Ingest: one pipeline for HTTP and MQTT. Check, then store durably, then acknowledge."""
