"""Settings refuse to start the service in an unsafe or incomplete configuration."""

from __future__ import annotations

import pytest

from ledger_service.config import Environment, Settings
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
    assert s.token_secret.get_secret_value() == GOOD_SECRET
    assert "59c69" not in repr(s)  # secrets never printed


def test_a_json_rpc_chain_needs_a_deployment_file() -> None:
    with pytest.raises(ConfigError, match="SUPET_DEPLOYMENT is required"):
        Settings(chain="http://127.0.0.1:8545")


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUPET_BATCH_MAX_READINGS", "250")
    monkeypatch.setenv("SUPET_DATABASE_URL", "postgresql://postgres@127.0.0.1/test")
    s = Settings()
    assert s.batch_max_readings == 250 and s.database_url.startswith("postgresql://")
