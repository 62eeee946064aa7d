"""Structured logs: a refused reading and an anchored batch come out as parseable JSON lines with
their fields; request ids are echoed, generated, and attached to the lines of their request."""

from __future__ import annotations

import datetime as dt
import io
import logging
import re
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from support import TestConsortium, now_ms

from device_attestation.keys import DeviceKey
from device_attestation.sdk import DeviceSigner
from ledger_service.config import Settings
from ledger_service.logs import configure_logging
from ledger_service.metrics import ComponentHealth
from ledger_service.service import LedgerService


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """The service's logs as ``supet serve`` configures them with SUPET_LOG_FORMAT=json, into a buffer."""
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    buf = io.StringIO()
    configure_logging("json", "info", stream=buf)
    try:
        yield buf
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
        for h in saved:
            root.addHandler(h)
        root.setLevel(level)


def lines(buf: io.StringIO) -> list[dict[str, Any]]:
    out = [orjson.loads(line) for line in buf.getvalue().splitlines() if line.strip()]
    for obj in out:  # every line has the common fields
        assert {"ts", "level", "logger", "event", "msg"} <= set(obj), obj
        dt.datetime.fromisoformat(obj["ts"])
    return out


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_rejection_and_anchored_batch_are_json_lines(
    json_log: io.StringIO, client: TestClient, ledger: LedgerService, consortium: TestConsortium
) -> None:
    dev = consortium.enroll("SN-LOG-1", "p256")
    stranger = DeviceSigner(device_id="SN-NOBODY", key=DeviceKey.generate("p256"), domain=consortium.domain)
    refused = client.post(
        "/v1/readings",
        json=stranger.sign({"temp_c": 1.0}, ts_ms=now_ms() - 1000).to_json_obj(),
        headers={"X-Request-ID": "req-42"},
    )
    assert refused.status_code == 422 and refused.headers["x-request-id"] == "req-42", refused.text
    rejections = [e for e in lines(json_log) if e["event"] == "ingest.rejected"]
    assert len(rejections) == 1, lines(json_log)
    (rej,) = rejections
    assert rej["code"] == "device.unknown" and rej["device_id"] == "SN-NOBODY" and rej["seq"] == 1
    assert rej["source"] == "http" and rej["request_id"] == "req-42" and rej["level"] == "info"
    assert rej["logger"] == "ledger_service.ingest"

    subs = [dev.sign({"temp_c": 20.0 + i}, ts_ms=now_ms() - 1000) for i in range(2)]
    assert client.post("/v1/readings", json={"readings": [s.to_json_obj() for s in subs]}).status_code == 200
    ledger.anchoring.flush(timeout=30)
    anchored = [e for e in lines(json_log) if e["event"] == "batch.anchored"]
    assert len(anchored) == 1, lines(json_log)
    (ev,) = anchored
    batch = ledger.anchoring.stats()
    assert batch.anchored_batches == 1
    from sqlmodel import Session, select

    from ledger_service.store.models import BatchRow

    with Session(ledger.engine) as s:
        row = s.exec(select(BatchRow)).one()
    assert ev["batch"] == row.id and ev["chain_batch"] == row.chain_batch_id == 1
    assert ev["root"] == "0x" + row.root.hex() and ev["count"] == 2
    assert ev["tx"] == row.tx_hash and ev["block"] == row.block_number
    assert ev["logger"] == "ledger_service.anchoring" and ev["level"] == "info"
    assert "request_id" not in ev  # logged by the anchoring thread, outside any request
    access = logging.getLogger("uvicorn.access")  # uvicorn's access line becomes fields
    access.info('%s - "%s %s HTTP/%s" %d', "10.0.0.7:5000", "GET", "/readyz", "1.1", 200)
    (line,) = [e for e in lines(json_log) if e["event"] == "http.access"]
    assert (line["client"], line["method"], line["path"], line["status"]) == (
        "10.0.0.7:5000",
        "GET",
        "/readyz",
        200,
    )
    closed = [e for e in lines(json_log) if e["event"] == "batch.closed"]
    assert closed and closed[0]["batch"] == row.id and closed[0]["root"] == ev["root"]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_request_ids(client: TestClient) -> None:
    made = client.get("/healthz").headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", made)
    assert client.get("/healthz").headers["x-request-id"] != made
    assert (
        client.get("/healthz", headers={"X-Request-ID": "abc-1.2:3"}).headers["x-request-id"] == "abc-1.2:3"
    )
    # an id that could forge log lines or grow without bound is replaced, not echoed
    for bad in (b"a b", b"x" * 129, "id\u00e9".encode(), b'a"}{'):
        got = client.get("/healthz", headers={"X-Request-ID": bad})
        assert re.fullmatch(r"[0-9a-f]{32}", got.headers["x-request-id"]), bad
    assert client.get("/no/such/route").headers["x-request-id"]  # errors carry one too


def test_chain_and_database_transitions_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="ledger_service.metrics")
    health = ComponentHealth()
    health.record("chain", "ok")
    health.record("chain", "ok")  # no change: no line
    health.record("chain", "down", "eth_blockNumber: the chain at http://x is unreachable")
    health.record("database", "ok")
    health.record("database", "down", "OperationalError: gone")
    health.record("chain", "ok")
    events = [(r.levelname, getattr(r, "event", None), getattr(r, "detail", None)) for r in caplog.records]
    assert events == [
        ("ERROR", "chain.down", "eth_blockNumber: the chain at http://x is unreachable"),
        ("ERROR", "database.down", "OperationalError: gone"),
        ("INFO", "chain.ok", None),
    ]


def test_text_format_and_settings(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    try:
        configure_logging("text", "warning")
        logging.getLogger("ledger_service.x").info("quiet")
        logging.getLogger("ledger_service.x").warning("loud %d", 7, extra={"event": "x.y", "batch": 3})
        err = capsys.readouterr().err
        assert "quiet" not in err and "WARNING ledger_service.x: loud 7 [batch=3]" in err
        with pytest.raises(ValueError, match="json or text"):
            configure_logging("xml")
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
        for h in saved:
            root.addHandler(h)
        root.setLevel(level)
    assert Settings(_env_file=None, log_format="json").log_format == "json"  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        Settings(_env_file=None, log_format="xml")  # type: ignore[call-arg, arg-type]
    with pytest.raises(ValidationError):
        Settings(_env_file=None, log_level="loud")  # type: ignore[call-arg, arg-type]
