"""``supet serve``: run the ledger service (HTTP API, MQTT ingest, anchoring)."""

from __future__ import annotations

import logging
from typing import Annotated

import typer


def serve(
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.", min=1, max=65535)] = 8000,
    log_level: Annotated[str, typer.Option("--log-level", help="debug, info, warning, error.")] = "info",
) -> None:
    """Run the ledger service. Configure it with SUPET_* environment variables or a .env file.

    Main settings: SUPET_CHAIN (embedded or a JSON-RPC URL), SUPET_DEPLOYMENT (the file `supet deploy`
    wrote), SUPET_DATABASE_URL (sqlite:///... or postgresql://...), SUPET_MQTT_URL (mqtt://host:1883),
    SUPET_ANCHOR_KEY (the anchoring signer), SUPET_BATCH_MAX_READINGS / SUPET_BATCH_MAX_SECONDS,
    SUPET_ENVIRONMENT (development or production: production refuses placeholder secrets).
    """
    import uvicorn

    from ledger_service.api import create_app
    from ledger_service.config import Settings

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings()  # validated now: a bad setting stops here with a clear error
    uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level, workers=1)
