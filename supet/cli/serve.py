"""``supet serve``: run the ledger service (HTTP API, MQTT ingest, anchoring)."""

from __future__ import annotations

from typing import Annotated

import typer


def serve(
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.", min=1, max=65535)] = 8000,
    log_level: Annotated[
        str | None,
        typer.Option("--log-level", help="debug, info, warning, error (default: $SUPET_LOG_LEVEL)."),
    ] = None,
) -> None:
    """Run the ledger service. Configure it with SUPET_* environment variables or a .env file.

    Main settings: SUPET_CHAIN (embedded or a JSON-RPC URL), SUPET_DEPLOYMENT (the file `supet deploy`
    wrote), SUPET_DATABASE_URL (sqlite:///... or postgresql://...), SUPET_MQTT_URL (mqtt://host:1883),
    SUPET_ANCHOR_KEY (the anchoring signer), SUPET_BATCH_MAX_READINGS / SUPET_BATCH_MAX_SECONDS,
    SUPET_ENVIRONMENT (development or production: production refuses placeholder secrets).
    """
    from ledger_service.api.server import run
    from ledger_service.config import Settings
    from ledger_service.logs import configure_logging
    from ledger_service.store.instance_lock import lock_for

    settings = Settings()  # validated now: a bad setting stops here with a clear error
    # a second instance on a SQLite file is refused here, in one line and exit 1, before uvicorn starts
    # (the service takes the lock again when it starts: this check only makes the refusal readable)
    lock = lock_for(settings.database_url)
    if lock is not None:
        lock.release()
    level = (log_level or settings.log_level).lower()
    configure_logging(settings.log_format, level)  # SUPET_LOG_FORMAT=json: one JSON object per line
    run(settings, host=host, port=port, log_level=level)
