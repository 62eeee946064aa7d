"""Typed settings of the ledger service, from the environment (``SUPET_*``) and ``.env``."""

from __future__ import annotations

import logging
import os
import secrets
import stat
import tempfile
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Final, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ledger_service.errors import ConfigError

log = logging.getLogger(__name__)

#: Values that must never be used as secrets outside development.
PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "secret", "dev", "development", "placeholder"})
#: Shortest token secret accepted (characters) outside a development service on the embedded chain.
MIN_SECRET_CHARS: Final = 32
#: Name of the generated token secret's file in the data directory.
TOKEN_SECRET_FILE: Final = "token-secret"
_MAKE_SECRET: Final = "python -c 'import secrets; print(secrets.token_hex(32))'"


def is_placeholder_secret(value: str) -> bool:
    """Whether ``value`` is a well-known placeholder or shorter than :data:`MIN_SECRET_CHARS`."""
    return value.strip().lower() in PLACEHOLDER_SECRETS or len(value) < MIN_SECRET_CHARS


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
    #: The MQTT client id, which names the instance's persistent session on the broker: each instance
    #: needs its own, kept across restarts (e.g. `supet-ledger-1`, `supet-ledger-2`). Two clients with
    #: one id take the session from each other (the log says so: `mqtt.connection_flapping`; a broker
    #: that sends "session taken over" stops the instance it was taken from, which turns unready).
    mqtt_client_id: Annotated[str, Field(min_length=1, max_length=64)] = "supet-ledger"
    #: The MQTT 5 shared subscription's group: each instance subscribes to
    #: `$share/<group>/devices/+/readings` and the broker hands each reading to one of them. Empty:
    #: a plain subscription to `devices/+/readings` (each instance would get every reading).
    mqtt_share_group: Annotated[str, Field(max_length=64, pattern=r"^[^/+#\x00-\x1f\x7f]*$")] = "supet-ledger"
    #: How long the broker keeps an instance's session (and queues its share of readings) while it is
    #: away, in seconds. A dead instance's share waits for its return until then, then is dropped.
    mqtt_session_expiry_seconds: Annotated[int, Field(ge=0, le=4_294_967_295)] = 7 * 24 * 3600
    #: Largest MQTT message taken (bytes): one submission, or `{"readings": [...]}` of one device
    #: (at most `SUPET_MAX_BATCH_SUBMISSIONS` readings; 64 KiB holds about 200). A larger one is
    #: answered `request.too_large`. The broker may have 2,000 messages in flight to an instance.
    mqtt_max_payload_bytes: Annotated[int, Field(ge=1024, le=16 * 1024 * 1024)] = 64 * 1024
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
    #: The analytics oracle's private key, to sign credit-line statements for consented banks (issue 15,
    #: ``POST /v1/bank/receivables/parts/{id}/line``). Unset: the service signs none (503).
    oracle_key: SecretStr | None = None
    #: Secret (32+ characters) of party tokens and the portal's CSRF key (HMAC). Unset: a random one
    #: is generated on first start in `token-secret` of the data directory (mode 0600) and reused
    #: after restarts. Set it, the same on each, when several instances share one database.
    #: Required in production; a placeholder is refused unless the chain is the embedded one.
    token_secret: SecretStr | None = None
    #: The service's own files (the generated `token-secret`). Unset: the directory of the SQLite
    #: database, or `supet-data` in the working directory with PostgreSQL.
    data_dir: Path | None = None
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
    #: Largest request body of POST /v1/readings (bytes).
    max_body_bytes: Annotated[int, Field(ge=1024)] = 16 * 1024 * 1024
    #: Largest request body of every other route (bytes): refused with 413 while it streams in.
    max_request_bytes: Annotated[int, Field(ge=1024)] = 64 * 1024
    #: A request's whole body must arrive within this time, or it is answered 408 (seconds).
    request_body_timeout_seconds: Annotated[float, Field(gt=0, le=3_600)] = 30.0
    #: Request body bytes held at once by all requests; a body beyond it is answered 503 (retry).
    max_buffered_body_bytes: Annotated[int, Field(ge=1024)] = 256 * 1024 * 1024
    #: Connections and requests served at once by `supet serve`; beyond it new requests get 503.
    max_connections: Annotated[int, Field(ge=1, le=100_000)] = 1_000
    #: Threads checking signatures, in the service's process (the P-256 verification releases the
    #: GIL, so they use every core); 0: each batch is checked in the thread that submits it.
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
    #: How often the service re-rates its factories from newly anchored data (issue 15), in seconds;
    #: 0: never (`supet credit rerate` runs one pass). Needs `SUPET_RERATING_ORACLE_KEY`.
    rerating_interval_seconds: Annotated[float, Field(ge=0, le=30 * 86_400)] = 0.0
    #: The analytics oracle's private key: re-rated records are published with it (the factories'
    #: bound oracle).
    rerating_oracle_key: SecretStr | None = None
    #: A record expiring within this many seconds is renewed by the re-rating even when nothing moved.
    rerating_renew_before_seconds: Annotated[int, Field(ge=0, le=365 * 86_400)] = 7 * 86_400
    #: The suppliers' openings of their orders' terms (the JSON list `supet analytics` takes), read at
    #: each pass: the chain holds only their commitments. Unset: profiles of factories with orders are
    #: not refreshed.
    rerating_order_terms: Path | None = None
    #: How often the recall worker (issue 15) brings the store's lot mirror up to date and flags, with the
    #: anchoring key, every lot downstream of a recall notice that is not flagged yet, whoever recorded the
    #: notice (seconds; 0: never). It runs where anchoring runs (`SUPET_ANCHORING`).
    recall_interval_seconds: Annotated[float, Field(ge=0, le=86_400)] = 15.0
    #: How often the live check of the lines' operating windows (issue 16.3) counts the readings stored
    #: since its last pass inside and outside each line's current window set (seconds; 0: never; `GET
    #: /v1/factories/{address}/lines/{line}/window-breaches` then shows what the last pass counted).
    window_check_interval_seconds: Annotated[float, Field(ge=0, le=86_400)] = 10.0
    #: Lots the recall worker flags per transaction (`LotRegistry.MAX_FLAG_BATCH` at most).
    recall_flag_batch: Annotated[int, Field(ge=1, le=128)] = 128
    #: How often chain, database and broker are probed for /metrics (0: only when /readyz asks).
    health_interval_seconds: Annotated[float, Field(ge=0, le=3_600)] = 5.0
    #: Log lines as ``json`` (one object per line, for log shippers) or ``text`` (for people).
    log_format: Literal["json", "text"] = "text"
    #: Log level of the service's loggers: debug, info, warning, error.
    log_level: Literal["debug", "info", "warning", "error", "DEBUG", "INFO", "WARNING", "ERROR"] = "info"

    @model_validator(mode="after")
    def _refuse_placeholders(self) -> Settings:
        secret = self.token_secret.get_secret_value() if self.token_secret is not None else None
        production = self.environment is Environment.PRODUCTION
        if secret is not None and is_placeholder_secret(secret) and (production or self.chain != "embedded"):
            # a token signed with a public or guessable key is a session anyone can mint, on a
            # chain whose roles and data are real
            where = "in production" if production else f"with a real chain ({self.chain})"
            raise ConfigError(
                f"SUPET_TOKEN_SECRET is a placeholder or shorter than {MIN_SECRET_CHARS} characters, "
                f"refused {where}: anyone could sign a token for any party with it. Set a random "
                f"secret (e.g. `{_MAKE_SECRET}`)"
                + ("" if production else ", or unset it and the service generates one in its data directory")
            )
        if production:
            if secret is None:
                raise ConfigError(
                    "SUPET_TOKEN_SECRET is required in production: set a random secret (e.g. "
                    f"`{_MAKE_SECRET}`), the same on every instance that shares the database"
                )
            if self.anchor_key is None:
                raise ConfigError("SUPET_ANCHOR_KEY is required in production (the anchoring signer's key)")
            if self.chain == "embedded":
                raise ConfigError("the embedded chain is for development: set SUPET_CHAIN to a JSON-RPC URL")
        if self.rerating_interval_seconds > 0 and self.rerating_oracle_key is None:
            raise ConfigError(
                "SUPET_RERATING_INTERVAL_SECONDS is set but SUPET_RERATING_ORACLE_KEY is not: re-rated "
                "records are published with the analytics oracle's key; set it, or set the interval to 0"
            )
        if self.chain != "embedded" and self.deployment is None:
            raise ConfigError(
                "SUPET_DEPLOYMENT is required with a JSON-RPC chain: the file `supet deploy` wrote"
            )
        if secret is not None and is_placeholder_secret(secret):
            log.warning(
                "SUPET_TOKEN_SECRET is a placeholder: anyone can sign a token for any party. Accepted "
                "only because the chain is the embedded (development) one; unset it to get a random "
                "secret generated in the data directory"
            )
        return self

    @property
    def data_path(self) -> Path:
        """The data directory: ``data_dir``, else the SQLite database's directory, else ``supet-data``."""
        if self.data_dir is not None:
            return self.data_dir
        if self.database_url.startswith("sqlite") and "///" in self.database_url:
            path = self.database_url.split("///", 1)[1].split("?", 1)[0]
            if path and path != ":memory:":
                return Path(path).parent
        return Path("supet-data")

    def token_secret_bytes(self) -> bytes:
        """The token secret, as loaded (see :func:`with_token_secret`); :class:`ConfigError` if none."""
        if self.token_secret is None:
            raise ConfigError(
                "no token secret loaded: build the service with LedgerService.build (it reads or creates "
                f"{self.data_path / TOKEN_SECRET_FILE}) or set SUPET_TOKEN_SECRET"
            )
        return self.token_secret.get_secret_value().encode("utf-8")


def with_token_secret(settings: Settings) -> Settings:
    """``settings`` with its token secret: the one set, else the installation's (created on first use)."""
    if settings.token_secret is not None:
        return settings
    secret = load_or_create_token_secret(settings.data_path / TOKEN_SECRET_FILE)
    return settings.model_copy(update={"token_secret": SecretStr(secret)})


def load_or_create_token_secret(path: Path) -> str:
    """The secret in ``path``; on first use, a random one (32 bytes, hex) written there first.

    The file is written whole to a temporary file (mode 0600) and linked into place, so a reader
    never sees a partial secret, and when two processes start at once both use the one linked
    first. Refused (:class:`ConfigError`): a file other users may read, or one holding a
    placeholder or a short secret.
    """
    try:
        return _read_token_secret(path)
    except FileNotFoundError:
        pass
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{TOKEN_SECRET_FILE}.", dir=path.parent)  # mode 0600
        try:
            with os.fdopen(fd, "w", encoding="ascii") as f:
                f.write(secrets.token_hex(32) + "\n")
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass  # another process created it first: use that one
            else:
                log.warning(
                    "generated a new token secret in %s: keep it with the service's data (tokens and "
                    "portal sessions survive restarts with it); when several instances share the "
                    "database, set SUPET_TOKEN_SECRET instead, the same on each",
                    path,
                )
        finally:
            os.unlink(tmp)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError as e:
        raise ConfigError(
            f"cannot create the token secret {path} ({e.strerror or e}): make the data directory "
            "writable by the service (SUPET_DATA_DIR), or set SUPET_TOKEN_SECRET"
        ) from e
    return _read_token_secret(path)


def _read_token_secret(path: Path) -> str:
    """The secret in ``path`` (``FileNotFoundError`` if there is none); :class:`ConfigError` if unsafe."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise
    except OSError as e:
        raise ConfigError(
            f"cannot read the token secret {path} ({e.strerror or e}): check SUPET_DATA_DIR, or set "
            "SUPET_TOKEN_SECRET"
        ) from e
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(
            f"the token secret {path} is not a regular file: remove it, or set SUPET_TOKEN_SECRET"
        )
    if info.st_mode & 0o077:
        raise ConfigError(
            f"the token secret {path} may be read by other users (mode {stat.S_IMODE(info.st_mode):o}): "
            f"`chmod 600 {path}`, and delete it if someone else may have read it (a new one is generated; "
            "signed-in parties sign in again)"
        )
    try:
        secret = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(
            f"cannot read the token secret {path} ({e}): delete it to generate a new one"
        ) from e
    if is_placeholder_secret(secret):
        raise ConfigError(
            f"the token secret in {path} is a placeholder or shorter than {MIN_SECRET_CHARS} characters: "
            "delete the file to generate a random one, or set SUPET_TOKEN_SECRET"
        )
    return secret


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
