"""The HTTP API (FastAPI)."""

from ledger_service.api.app import create_app

__all__ = ["create_app"]
