"""Typed settings of the ledger service, from the environment (``SUPET_*``) and ``.env``."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ledger_service.errors import ConfigError

#: Values that must never be used as secrets outside development.
PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "secret", "dev", "development", "placeholder"})


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class Settings(BaseSettings):
    """Everything the service needs to run. Environment variables are ``SUPET_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="SUPET_", env_file=".env", extra="ignore", frozen=True)

    #: ``development`` or ``production``: production refuses placeholder secrets and the embedded chain.
    environment: Environment = Environment.DEVELOPMENT
    #: ``embedded`` (in-process chain, deployed at start) or a JSON-RPC URL.
    chain: str = "embedded"
    #: Deployment file (required with a JSON-RPC chain; written for the embedded one).
    deployment: Path | None = None
    #: SQLAlchemy URL: ``sqlite:///path.db`` (default) or ``postgresql+psycopg://...``.
    database_url: str = "sqlite:///supet-data/ledger.db"
    #: MQTT broker, e.g. ``mqtt://127.0.0.1:1883``; none to disable MQTT ingest.
    mqtt_url: str | None = None
    #: The MQTT client id (its persistent session): one per service instance on a broker.
    mqtt_client_id: Annotated[str, Field(min_length=1, max_length=64)] = "supet-ledger"
    #: Close a batch at this many readings...
    batch_max_readings: Annotated[int, Field(ge=1, le=100_000)] = 10_000
    #: ...or when its oldest reading has waited this long.
    batch_max_seconds: Annotated[float, Field(gt=0, le=86_400)] = 5.0
    #: Blocks on top of the anchoring transaction before a batch counts as anchored.
    confirmations: Annotated[int, Field(ge=0, le=1_000)] = 0
    #: Seconds to wait for an anchoring receipt before retrying.
    anchor_timeout_seconds: Annotated[float, Field(gt=0)] = 60.0
    #: The anchoring signer's private key (holds ANCHOR_ROLE). Development: a public test key.
    anchor_key: SecretStr | None = None
    #: Secret for session tokens (HMAC).
    token_secret: SecretStr = SecretStr("dev")
    #: The service's public base URL: its host[:port] is the domain of sign-in messages and signed
    #: requests (EIP-4361), so a signature made for another service is refused here.
    public_url: str = "http://127.0.0.1:8000"
    #: A sign-in message (POST /v1/auth/challenge) must be signed and redeemed within this time.
    login_ttl_seconds: Annotated[int, Field(ge=30, le=3_600)] = 300
    #: Lifetime of a party token (POST /v1/auth/token).
    token_ttl_seconds: Annotated[int, Field(ge=60, le=86_400)] = 900
    #: A signed request's X-Supet-Timestamp may differ from the service's clock by this much.
    signed_request_window_seconds: Annotated[int, Field(ge=5, le=600)] = 60
    #: Longest time a role answer read from the chain is reused (and never past its block).
    role_cache_seconds: Annotated[float, Field(ge=0, le=30)] = 5.0
    #: Readings timestamped further in the future than this are refused.
    max_future_skew_ms: Annotated[int, Field(ge=0)] = 60_000
    #: Late (store-and-forward) readings are accepted up to this age.
    late_window_ms: Annotated[int, Field(ge=0)] = 7 * 24 * 3_600_000
    #: Submissions per HTTP request.
    max_batch_submissions: Annotated[int, Field(ge=1, le=100_000)] = 10_000
    #: Largest request body accepted (bytes).
    max_body_bytes: Annotated[int, Field(ge=1024)] = 16 * 1024 * 1024
    #: Worker processes checking signatures (0: check in the request's process).
    verify_workers: Annotated[int, Field(ge=0, le=64)] = 2
    #: An unknown device triggers a registry refresh at most this often (seconds).
    registry_refresh_seconds: Annotated[float, Field(ge=0)] = 0.5
    #: How often the registry mirror polls the chain for enrollments and revocations (0: never).
    registry_poll_seconds: Annotated[float, Field(ge=0)] = 2.0
    #: Start the anchoring worker inside the service.
    anchoring: bool = True
    #: After a restore, how long ordinary batches wait while lost batches (on chain, unknown to the
    #: store) are re-formed from the devices' resubmissions, so that they can be adopted (seconds).
    recovery_hold_seconds: Annotated[float, Field(ge=0, le=86_400)] = 600.0
    #: How often chain, database and broker are probed for /metrics (0: only when /readyz asks).
    health_interval_seconds: Annotated[float, Field(ge=0, le=3_600)] = 5.0
    #: Log lines as ``json`` (one object per line, for log shippers) or ``text`` (for people).
    log_format: Literal["json", "text"] = "text"
    #: Log level of the service's loggers: debug, info, warning, error.
    log_level: Literal["debug", "info", "warning", "error", "DEBUG", "INFO", "WARNING", "ERROR"] = "info"

    @model_validator(mode="after")
    def _refuse_placeholders(self) -> Settings:
        if self.environment is Environment.PRODUCTION:
            if (
                self.token_secret.get_secret_value().lower() in PLACEHOLDER_SECRETS
                or len(self.token_secret.get_secret_value()) < 32
            ):
                raise ConfigError(
                    "SUPET_TOKEN_SECRET is a placeholder or shorter than 32 characters: set a random "
                    "secret (e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`) in production"
                )
            if self.anchor_key is None:
                raise ConfigError("SUPET_ANCHOR_KEY is required in production (the anchoring signer's key)")
            if self.chain == "embedded":
                raise ConfigError("the embedded chain is for development: set SUPET_CHAIN to a JSON-RPC URL")
        if self.chain != "embedded" and self.deployment is None:
            raise ConfigError(
                "SUPET_DEPLOYMENT is required with a JSON-RPC chain: the file `supet deploy` wrote"
            )
        return self


def settings_markdown() -> str:
    """The table of every setting (``SUPET_<NAME>``, default, meaning) for docs/deployment.md.

    Generated from :class:`Settings` and the ``#:`` comments above its fields, so the guide cannot
    drift from the code (a test compares them). Print it with ``python -m ledger_service.config``.
    """
    import inspect
    import re

    comments: dict[str, str] = {}
    pending: list[str] = []
    for line in inspect.getsource(Settings).splitlines():
        stripped = line.strip()
        if stripped.startswith("#:"):
            pending.append(stripped[2:].strip())
            continue
        m = re.match(r"^    (\w+)\s*:", line)
        if m and m.group(1) in Settings.model_fields:
            comments[m.group(1)] = " ".join(pending)
        if stripped:
            pending = []
    rows = ["| Setting | Default | Meaning |", "|---|---|---|"]
    for name, info in Settings.model_fields.items():
        default = info.default
        if isinstance(default, SecretStr):
            shown = "(placeholder)" if default.get_secret_value() else "(empty)"
        elif isinstance(default, Environment):
            shown = default.value
        elif default is None:
            shown = "(none)"
        elif isinstance(default, bool):
            shown = str(default).lower()
        else:
            shown = str(default)
        meaning = comments.get(name, "").replace("``", "`").replace("|", "\\|")
        rows.append(f"| `SUPET_{name.upper()}` | `{shown}` | {meaning} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(settings_markdown(), end="")
