"""Settings refuse to start the service in an unsafe or incomplete configuration."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from ledger_service.config import (
    TOKEN_SECRET_FILE,
    Environment,
    Settings,
    load_or_create_token_secret,
    with_token_secret,
)
from ledger_service.errors import ConfigError

GOOD_SECRET = "7f3c9a1e5b2d4f6081a3c5e7092b4d6f8a1c3e5079b2d4f6"
ANCHOR_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"token_secret": "dev"}, "SUPET_TOKEN_SECRET is a placeholder"),
        ({"token_secret": "changeme"}, "SUPET_TOKEN_SECRET is a placeholder"),
        ({"token_secret": "short-but-not-a-placeholder"}, "shorter than 32"),
        ({"anchor_key": None}, "SUPET_ANCHOR_KEY is required"),
        ({"chain": "embedded", "deployment": None}, "embedded chain is for development"),
    ],
)
def test_production_refuses_unsafe_settings(overrides: dict[str, object], fragment: str) -> None:
    values: dict[str, object] = {
        "environment": Environment.PRODUCTION,
        "token_secret": GOOD_SECRET,
        "anchor_key": ANCHOR_KEY,
        "chain": "http://127.0.0.1:8545",
        "deployment": "deployment.json",
        **overrides,
    }
    with pytest.raises(ConfigError, match=fragment):
        Settings(**values)  # type: ignore[arg-type]


def test_production_accepts_complete_settings() -> None:
    s = Settings(
        environment=Environment.PRODUCTION,
        token_secret=GOOD_SECRET,
        anchor_key=ANCHOR_KEY,  # type: ignore[arg-type]
        chain="http://127.0.0.1:8545",
        deployment="deployment.json",
    )  # type: ignore[arg-type]
    assert s.token_secret is not None and s.token_secret.get_secret_value() == GOOD_SECRET
    assert "59c69" not in repr(s)  # secrets never printed


def test_a_json_rpc_chain_needs_a_deployment_file() -> None:
    with pytest.raises(ConfigError, match="SUPET_DEPLOYMENT is required"):
        Settings(chain="http://127.0.0.1:8545")


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUPET_BATCH_MAX_READINGS", "250")
    monkeypatch.setenv("SUPET_DATABASE_URL", "postgresql://postgres@127.0.0.1/test")
    s = Settings()
    assert s.batch_max_readings == 250 and s.database_url.startswith("postgresql://")


# ------------------------------------------------------------------ token secret (issue 11, finding 4)


def _settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[call-arg, arg-type]


@pytest.fixture(autouse=True)
def _no_secret_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SUPET_TOKEN_SECRET", raising=False)
    monkeypatch.delenv("SUPET_DATA_DIR", raising=False)


@pytest.mark.parametrize("secret", ["dev", "changeme", "Development", "short-but-not-a-placeholder"])
def test_a_placeholder_secret_is_refused_with_a_real_chain_in_development(secret: str) -> None:
    with pytest.raises(ConfigError) as info:
        _settings(chain="http://127.0.0.1:8545", deployment="deployment.json", token_secret=secret)
    message = info.value.message
    assert "SUPET_TOKEN_SECRET is a placeholder or shorter than 32" in message
    assert "secrets.token_hex(32)" in message and "unset it" in message  # what to do next


def test_a_placeholder_is_accepted_only_with_the_embedded_chain_in_development() -> None:
    assert _settings(token_secret="dev").token_secret is not None  # a throw-away chain, warned in the log
    with pytest.raises(ConfigError, match="SUPET_TOKEN_SECRET is required in production"):
        _settings(
            environment=Environment.PRODUCTION,
            anchor_key=ANCHOR_KEY,
            chain="http://127.0.0.1:8545",
            deployment="deployment.json",
        )


def test_the_default_is_no_secret_but_one_per_installation_in_its_data_directory(tmp_path: Path) -> None:
    first = _settings(database_url=f"sqlite:///{tmp_path / 'a' / 'ledger.db'}")
    assert first.token_secret is None and first.data_path == tmp_path / "a"
    loaded = with_token_secret(first)
    assert loaded.token_secret is not None
    secret = loaded.token_secret.get_secret_value()
    assert len(secret) == 64 and int(secret, 16) >= 0  # 32 random bytes, hex
    path = tmp_path / "a" / TOKEN_SECRET_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == [TOKEN_SECRET_FILE]  # no temporary file left
    # a restart reads the same secret back; another installation has its own
    again = with_token_secret(_settings(database_url=f"sqlite:///{tmp_path / 'a' / 'ledger.db'}"))
    assert again.token_secret is not None and again.token_secret.get_secret_value() == secret
    other = with_token_secret(_settings(data_dir=tmp_path / "b"))
    assert other.token_secret is not None and other.token_secret.get_secret_value() != secret
    # an explicit secret wins and writes nothing
    explicit = with_token_secret(_settings(data_dir=tmp_path / "c", token_secret="x" * 40))
    assert explicit.token_secret is not None and explicit.token_secret.get_secret_value() == "x" * 40
    assert not (tmp_path / "c").exists()
    # PostgreSQL: the data directory is `supet-data` unless set
    assert _settings(database_url="postgresql://u@h/db").data_path == Path("supet-data")


def test_installations_starting_at_once_share_the_first_secret_written(tmp_path: Path) -> None:
    path = tmp_path / "data" / TOKEN_SECRET_FILE
    barrier = threading.Barrier(8)
    seen: list[str] = []

    def start() -> None:
        barrier.wait()
        seen.append(load_or_create_token_secret(path))

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 8 and len(set(seen)) == 1 and path.read_text().strip() == seen[0]


def test_an_unsafe_secret_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / TOKEN_SECRET_FILE
    load_or_create_token_secret(path)
    os.chmod(path, 0o644)
    with pytest.raises(ConfigError, match=r"may be read by other users .*chmod 600"):
        load_or_create_token_secret(path)
    path.write_text("dev\n")
    os.chmod(path, 0o600)
    with pytest.raises(ConfigError, match="placeholder or shorter than 32 characters: delete the file"):
        load_or_create_token_secret(path)
    not_a_directory = tmp_path / "a-file"
    not_a_directory.write_text("x")
    with pytest.raises(ConfigError, match=r"cannot read the token secret .*set SUPET_TOKEN_SECRET"):
        load_or_create_token_secret(not_a_directory / TOKEN_SECRET_FILE)
