"""Party authentication: sign-in (EIP-4361) for a token, signed requests, roles read from the chain."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from fastapi.testclient import TestClient
from reads import signed_request
from reads import token as login
from sqlalchemy import func
from sqlmodel import Session, select
from support import TestConsortium

from contracts.chain import dev_accounts
from contracts.registry import ENROLLER_ROLE
from ledger_service.api import create_app
from ledger_service.auth import (
    SIWE_STATEMENT,
    AuthenticationFailed,
    Authenticator,
    canonical_request,
    parse_address,
    siwe_message,
)
from ledger_service.auth.tokens import revocations_of
from ledger_service.config import Settings
from ledger_service.service import LedgerService
from ledger_service.store.models import RevokedTokenRow, UsedNonceRow

DOMAIN = "127.0.0.1:8000"


def sign_text(account: LocalAccount, text: str) -> str:
    return account.sign_message(encode_defunct(text=text)).signature.to_0x_hex()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def signed_headers(
    account: LocalAccount,
    method: str,
    path: str,
    body: bytes = b"",
    *,
    ts_ms: int | None = None,
    nonce: str | None = None,
    signer: LocalAccount | None = None,
    chain_id: int = 31337,
) -> dict[str, str]:
    """:func:`reads.signed_request` for this module's service (``DOMAIN``, the embedded chain's id)."""
    return signed_request(
        account,
        public_url=f"http://{DOMAIN}",
        chain_id=chain_id,
        method=method,
        path=path,
        body=body,
        timestamp_ms=ts_ms,
        nonce=nonce,
        signer=signer,
    )


def used_nonces(ledger: LedgerService) -> int:
    with Session(ledger.engine) as s:
        return int(s.exec(select(func.count()).select_from(UsedNonceRow)).one())


def authenticator(client: TestClient) -> Authenticator:
    client.post("/v1/auth/challenge", json={"address": dev_accounts(1)[0].address})  # builds the state
    auth: Authenticator = client.app.state.auth.authenticator  # type: ignore[attr-defined]
    return auth


def error(r: Any) -> tuple[int, str]:
    return r.status_code, r.json()["error"]["code"]


# ---------------------------------------------------------------------------- pure functions


def test_siwe_message_has_the_eip4361_form() -> None:
    issued = dt.datetime(2026, 11, 29, 12, 0, 0, tzinfo=dt.UTC)
    msg = siwe_message(
        domain="ledger.example:8443",
        uri="https://ledger.example:8443",
        address="0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
        chain_id=31337,
        nonce="a1" * 32,
        issued_at=issued,
        expires_at=issued + dt.timedelta(minutes=5),
    )
    assert msg.splitlines() == [
        "ledger.example:8443 wants you to sign in with your Ethereum account:",
        "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
        "",
        SIWE_STATEMENT,
        "",
        "URI: https://ledger.example:8443",
        "Version: 1",
        "Chain ID: 31337",
        f"Nonce: {'a1' * 32}",
        "Issued At: 2026-11-29T12:00:00Z",
        "Expiration Time: 2026-11-29T12:05:00Z",
    ]


def test_canonical_request_lines() -> None:
    text = canonical_request(
        domain="d:1",
        chain_id=5,
        address="0xA",
        method="post",
        path="/v1/x?y=1",
        body=b"{}",
        timestamp_ms=7,
        nonce="n" * 16,
    )
    assert text.split("\n") == [
        "supET signed request v1",
        "d:1",
        "5",
        "0xA",
        "POST",
        "/v1/x?y=1",
        hashlib.sha256(b"{}").hexdigest(),
        "7",
        "n" * 16,
    ]


def test_parse_address_checks_the_checksum() -> None:
    good = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
    assert parse_address(good.lower()) == good
    with pytest.raises(AuthenticationFailed, match="invalid EIP-55 checksum") as info:
        parse_address(good.replace("C51", "c51"))
    assert info.value.code == "auth.bad_address"
    with pytest.raises(AuthenticationFailed, match="not an Ethereum address"):
        parse_address("0x1234")


# ---------------------------------------------------------------------------- sign-in


def test_sign_in_token_and_me(client: TestClient, ledger: LedgerService, consortium: TestConsortium) -> None:
    factory = consortium.factory
    r = client.post("/v1/auth/challenge", json={"address": factory.address.lower()})
    assert r.status_code == 200
    ch = r.json()
    assert ch["address"] == factory.address and ch["domain"] == DOMAIN and ch["chain_id"] == 31337
    assert (
        f"Nonce: {ch['nonce']}" in ch["message"] and f"Expiration Time: {ch['expires_at']}" in ch["message"]
    )
    assert used_nonces(ledger) == 0  # issuing stores nothing

    r = client.post(
        "/v1/auth/token", json={"message": ch["message"], "signature": sign_text(factory, ch["message"])}
    )
    assert r.status_code == 200, r.text
    out = r.json()
    assert (
        out["token_type"] == "Bearer"
        and out["address"] == factory.address
        and 890 <= out["expires_in"] <= 900
    )
    claims = jwt.decode(out["access_token"], options={"verify_signature": False})
    assert claims["sub"] == factory.address and claims["chain_id"] == 31337 and claims["jti"]
    assert claims["exp"] - claims["iat"] == 900
    assert "role" not in str(claims)  # roles come from the chain, never from the token
    assert used_nonces(ledger) == 1

    me = client.get("/v1/auth/me", headers=bearer(out["access_token"]))
    assert me.status_code == 200, me.text
    assert me.json()["address"] == factory.address and me.json()["method"] == "token"
    assert me.json()["roles"] == {"enroller": True, "operator": False}
    operator = client.get("/v1/auth/me", headers=bearer(login(client, consortium.operator))).json()
    assert operator["roles"] == {"enroller": False, "operator": True}


def test_sign_in_refusals(client: TestClient, ledger: LedgerService, consortium: TestConsortium) -> None:
    factory, stranger = consortium.factory, dev_accounts(5)[4]
    auth = authenticator(client)

    def challenge() -> str:
        message: str = client.post("/v1/auth/challenge", json={"address": factory.address}).json()["message"]
        return message

    def redeem(message: str, signature: str) -> Any:
        return client.post("/v1/auth/token", json={"message": message, "signature": signature})

    msg = challenge()
    before = used_nonces(ledger)
    # signed by another key; an altered message (longer expiry, other statement, other chain, other domain)
    assert error(redeem(msg, sign_text(stranger, msg))) == (401, "auth.bad_signature")
    longer = msg.replace(msg.splitlines()[-1][17:], "2099-01-01T00:00:00Z")
    assert error(redeem(longer, sign_text(factory, longer))) == (401, "auth.bad_message")
    other = msg.replace(SIWE_STATEMENT, "Give me everything.")
    assert error(redeem(other, sign_text(factory, other))) == (401, "auth.bad_message")
    chain = msg.replace("Chain ID: 31337", "Chain ID: 1")
    r = redeem(chain, sign_text(factory, chain))
    assert error(r) == (401, "auth.bad_message") and "chain 1" in r.json()["error"]["message"]
    phish = msg.replace(DOMAIN, "evil.example", 1)
    assert error(redeem(phish, sign_text(factory, phish))) == (401, "auth.bad_message")
    assert error(redeem("hello", sign_text(factory, "hello"))) == (401, "auth.bad_message")
    assert used_nonces(ledger) == before  # a refused sign-in spends nothing...
    assert redeem(msg, sign_text(factory, msg)).status_code == 200  # ...so the genuine one still works
    assert error(redeem(msg, sign_text(factory, msg))) == (401, "auth.replayed")
    assert used_nonces(ledger) == before + 1

    # expired sign-in message: five minutes pass before it is redeemed
    late = challenge()
    real_clock = auth.clock
    auth.clock = lambda: real_clock() + dt.timedelta(minutes=5, seconds=1)
    assert error(redeem(late, sign_text(factory, late))) == (401, "auth.expired")
    auth.clock = real_clock

    # tokens: none, forged, garbage, expired, for another deployment
    token = login(client, factory)
    r = client.get("/v1/auth/me")  # the access policy refuses an anonymous caller (issue 14)
    assert error(r) == (401, "access.anonymous") and r.headers["www-authenticate"].startswith("Bearer")
    claims = jwt.decode(token, options={"verify_signature": False})
    forged = jwt.encode(claims, "x" * 32, algorithm="HS256")
    assert error(client.get("/v1/auth/me", headers=bearer(forged))) == (401, "auth.bad_signature")
    assert error(client.get("/v1/auth/me", headers=bearer("not.a.token"))) == (401, "auth.bad_token")
    none_alg = jwt.encode(claims, "", algorithm="none")
    assert error(client.get("/v1/auth/me", headers=bearer(none_alg))) == (401, "auth.bad_token")
    auth.clock = lambda: real_clock() + dt.timedelta(minutes=15)
    assert error(client.get("/v1/auth/me", headers=bearer(token))) == (401, "auth.expired")
    auth.clock = real_clock
    assert client.get("/v1/auth/me", headers=bearer(token)).status_code == 200

    bad = client.post("/v1/auth/challenge", json={"address": factory.address.replace("0x7", "0xz")})
    assert error(bad) == (422, "request.invalid")


def test_replay_refused_after_restart(db_url: str, ledger: LedgerService, consortium: TestConsortium) -> None:
    factory = consortium.factory
    with TestClient(create_app(service=ledger)) as first:
        message = first.post("/v1/auth/challenge", json={"address": factory.address}).json()["message"]
        body = {"message": message, "signature": sign_text(factory, message)}
        assert first.post("/v1/auth/token", json=body).status_code == 200
        signed = signed_headers(factory, "GET", "/v1/auth/me")
        assert first.get("/v1/auth/me", headers=signed).status_code == 200
    ledger.stop()

    # a new service process on the same database (and chain)
    again = LedgerService.build(ledger.settings, chain=ledger.chain, deployment=ledger.deployment)
    try:
        with TestClient(create_app(service=again)) as second:
            assert error(second.post("/v1/auth/token", json=body)) == (401, "auth.replayed")
            assert error(second.get("/v1/auth/me", headers=signed)) == (401, "auth.replayed")
            assert second.get("/v1/auth/me", headers=bearer(login(second, factory))).status_code == 200
    finally:
        again.stop()


# ---------------------------------------------------------------------------- signed requests


def test_signed_requests(client: TestClient, ledger: LedgerService, consortium: TestConsortium) -> None:
    factory, stranger = consortium.factory, dev_accounts(5)[4]
    r = client.get("/v1/auth/me", headers=signed_headers(factory, "GET", "/v1/auth/me"))
    assert r.status_code == 200, r.text
    assert r.json()["method"] == "signed_request" and r.json()["address"] == factory.address
    path = "/v1/devices/challenge?x=1"
    ok = client.post(path, headers=signed_headers(factory, "POST", path))
    assert ok.status_code == 200, ok.text  # an enroller's write

    body = b'{"certificate": "A", "ca_certificate": "B", "challenge_nonce": "0x00", "pop_signature": "0x00"}'
    tampered = body.replace(b'"A"', b'"C"')
    now = int(time.time() * 1000)
    before = used_nonces(ledger)
    post = "/v1/devices"
    cases: list[tuple[str, dict[str, str], bytes, str]] = [
        (
            "skewed +61 s",
            signed_headers(factory, "POST", post, body, ts_ms=now + 61_000),
            body,
            "auth.expired",
        ),
        (
            "skewed -61 s",
            signed_headers(factory, "POST", post, body, ts_ms=now - 61_000),
            body,
            "auth.expired",
        ),
        ("tampered body", signed_headers(factory, "POST", post, body), tampered, "auth.bad_signature"),
        ("other path", signed_headers(factory, "POST", post + "/x", body), body, "auth.bad_signature"),
        ("other chain", signed_headers(factory, "POST", post, body, chain_id=1), body, "auth.bad_signature"),
        (
            "other key",
            signed_headers(factory, "POST", post, body, signer=stranger),
            body,
            "auth.bad_signature",
        ),
        ("short nonce", signed_headers(factory, "POST", post, body, nonce="abc"), body, "auth.bad_message"),
    ]
    for name, headers, sent, code in cases:
        r = client.post(post, content=sent, headers={**headers, "Content-Type": "application/json"})
        assert error(r) == (401, code), name
    partial = signed_headers(factory, "GET", "/v1/auth/me")
    del partial["X-Supet-Nonce"]
    r = client.get("/v1/auth/me", headers=partial)
    assert error(r) == (401, "auth.missing") and "X-Supet-Nonce" in r.json()["error"]["message"]
    both = {**signed_headers(factory, "GET", "/v1/auth/me"), **bearer(login(client, factory))}
    assert error(client.get("/v1/auth/me", headers=both)) == (401, "auth.ambiguous")
    assert used_nonces(ledger) == before + 1  # only the sign-in above; no refused request spent a nonce

    once = signed_headers(factory, "GET", "/v1/auth/me")
    assert client.get("/v1/auth/me", headers=once).status_code == 200
    assert error(client.get("/v1/auth/me", headers=once)) == (401, "auth.replayed")
    # the same nonce from another party is its own nonce
    theirs = signed_headers(stranger, "GET", "/v1/auth/me", nonce=once["X-Supet-Nonce"])
    assert client.get("/v1/auth/me", headers=theirs).status_code == 200


# ---------------------------------------------------------------------------- roles


def test_roles_are_read_from_the_chain_at_each_request(
    client: TestClient, ledger: LedgerService, consortium: TestConsortium
) -> None:
    chain, registry = ledger.chain, consortium.registry.contract
    operator, factory, newcomer = consortium.operator, consortium.factory, dev_accounts(6)[5]
    token = login(client, newcomer)

    r = client.post("/v1/devices/challenge", headers=bearer(token))
    assert error(r) == (403, "auth.role_required")
    message = r.json()["error"]["message"]
    # the refusal names the commands that admit the party (contracts.revert.REVERT_HINTS), for this party
    assert "enroller" in message and "grantRole" not in message
    assert "supet consortium apply --policy FILE" in message and "supet party apply ROLE" in message
    assert f"supet party status {newcomer.address}" in message
    block = chain.block_number()
    assert error(client.post("/v1/devices", headers=bearer(token), json={})) == (403, "auth.role_required")
    assert chain.block_number() == block

    consortium.registry.grant_enroller(operator, newcomer.address)
    assert client.post("/v1/devices/challenge", headers=bearer(token)).status_code == 200  # at once
    chain.transact(registry.functions.revokeRole(ENROLLER_ROLE, newcomer.address), operator)
    assert error(client.post("/v1/devices/challenge", headers=bearer(token))) == (403, "auth.role_required")

    # with an admission gate set, the gate decides (the role alone no longer admits)
    gate_address = chain.deploy("StaticAdmissionGate", operator, operator.address).contract_address
    assert gate_address is not None
    gate = chain.contract("StaticAdmissionGate", gate_address)
    chain.transact(registry.functions.setAdmissionGate(gate_address), operator)
    factory_token = login(client, factory)
    assert error(client.post("/v1/devices/challenge", headers=bearer(factory_token))) == (
        403,
        "auth.role_required",
    )
    from ledger_service.auth import ENROLL_ACTION

    chain.transact(gate.functions.setAdmitted(newcomer.address, ENROLL_ACTION, True), operator)
    assert client.post("/v1/devices/challenge", headers=bearer(token)).status_code == 200
    assert client.get("/v1/auth/me", headers=bearer(token)).json()["roles"]["enroller"] is True


def test_spent_nonces_are_pruned_once_their_credential_expired(
    ledger: LedgerService, consortium: TestConsortium
) -> None:
    auth = Authenticator(
        settings=ledger.settings,
        engine=ledger.engine,
        chain_id=ledger.chain.chain_id,
        registry_address=ledger.deployment.address("DeviceRegistry"),
    )
    now_ms = int(time.time() * 1000)
    with Session(ledger.engine) as s:
        s.add(UsedNonceRow(nonce="req:old", party=consortium.factory.address, expires_ms=now_ms - 1))
        s.add(UsedNonceRow(nonce="req:live", party=consortium.factory.address, expires_ms=now_ms + 60_000))
        s.commit()
    challenge = auth.issue_login(consortium.factory.address)
    issued = auth.redeem_login(challenge.message, sign_text(consortium.factory, challenge.message))
    assert auth.verify_token(issued.token).address == consortium.factory.address
    with Session(ledger.engine) as s:
        assert sorted(row.nonce for row in s.exec(select(UsedNonceRow))) == [
            "req:live",
            f"siwe:{challenge.nonce}",
        ]


# ---------------------------------------------------------------------------- issue 11: findings 4 and 10


def _minted(ledger: LedgerService, party: str, key: bytes) -> str:
    """A token for ``party`` signed with the token key derived from the secret ``key``, as an attacker
    who knows (or guesses) the secret would make it: every claim as the service itself would write it."""
    token_key = hmac.new(key, b"supet.auth.token.v1", hashlib.sha256).digest()
    now = int(time.time())
    registry = ledger.deployment.address("DeviceRegistry")
    claims = {
        "iss": DOMAIN,
        "aud": f"supet-ledger:eip155:{ledger.chain.chain_id}:{registry}",
        "sub": party,
        "chain_id": ledger.chain.chain_id,
        "jti": secrets.token_hex(16),
        "iat": now,
        "exp": now + 600,
    }
    return jwt.encode(claims, token_key, algorithm="HS256")


def _portal(client: TestClient, token: str, browser: str | None = None) -> Any:
    """GET /portal as a browser holding ``token`` in its session cookie (and the CSRF cookie ``browser``)."""
    client.cookies.clear()
    cookie = f"supet_session={token}" + (f"; supet_csrf={browser}" if browser else "")
    return client.get("/portal", headers={"Cookie": cookie})


def test_a_token_minted_with_the_public_dev_secret_is_refused_by_a_default_installation(
    client: TestClient, ledger: LedgerService, consortium: TestConsortium
) -> None:
    """Finding 4: with the default settings, a token HMAC'd under `dev` is no session, on the API or the
    portal (before the fix the default secret was `dev`, and this token read the factory's data)."""
    factory = consortium.factory
    forged = _minted(ledger, factory.address, b"dev")
    assert error(client.get("/v1/auth/me", headers=bearer(forged))) == (401, "auth.bad_signature")
    assert factory.address not in _portal(client, forged).text
    # the service's own token, for contrast, is a session on both
    genuine = login(client, factory)
    assert client.get("/v1/auth/me", headers=bearer(genuine)).status_code == 200
    assert f'id="who">{factory.address}<' in _portal(client, genuine).text
    # and it is signed with the installation's secret, generated in the data directory
    secret_file = ledger.settings.data_path / "token-secret"
    assert ledger.settings.token_secret is not None
    assert secret_file.read_text().strip() == ledger.settings.token_secret.get_secret_value()
    assert _minted(ledger, factory.address, ledger.settings.token_secret_bytes()) != forged


def test_installations_refuse_each_others_tokens_and_a_restart_keeps_its_secret(
    tmp_path: Path, consortium: TestConsortium, ledger: LedgerService
) -> None:
    chain, deployment, factory = ledger.chain, ledger.deployment, consortium.factory

    def install(name: str) -> LedgerService:
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            database_url=f"sqlite:///{tmp_path / name / 'ledger.db'}",
            verify_workers=0,
            anchoring=False,
            registry_refresh_seconds=0,
        )
        return LedgerService.build(settings, chain=chain, deployment=deployment)

    a, b = install("a"), install("b")
    with TestClient(create_app(service=a)) as on_a, TestClient(create_app(service=b)) as on_b:
        token = login(on_a, factory)
        assert on_a.get("/v1/auth/me", headers=bearer(token)).status_code == 200
        assert error(on_b.get("/v1/auth/me", headers=bearer(token))) == (401, "auth.bad_signature")
    a.stop()
    b.stop()
    restarted = install("a")  # the same installation, started again: fresh settings, same data directory
    try:
        with TestClient(create_app(service=restarted)) as again:
            assert again.get("/v1/auth/me", headers=bearer(token)).status_code == 200
    finally:
        restarted.stop()


def test_sign_out_ends_that_session_only(
    db_url: str, client: TestClient, ledger: LedgerService, consortium: TestConsortium
) -> None:
    """Finding 10: after POST /v1/auth/logout the token is refused (401 auth.revoked) on the API, also by
    another instance on the same database; another session of the same party still works."""
    factory = consortium.factory
    first, second = login(client, factory), login(client, factory)
    r = client.post("/v1/auth/logout", headers=bearer(first))
    assert r.status_code == 204 and r.content == b""
    r = client.get("/v1/auth/me", headers=bearer(first))
    assert error(r) == (401, "auth.revoked") and "sign in again" in r.json()["error"]["message"]
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert client.get("/v1/auth/me", headers=bearer(second)).status_code == 200
    assert error(client.post("/v1/auth/logout", headers=bearer(first))) == (401, "auth.revoked")
    # a signed request is single-use already: no session to end
    signed = signed_headers(factory, "POST", "/v1/auth/logout")
    assert error(client.post("/v1/auth/logout", headers=signed)) == (400, "auth.not_a_session")
    # recorded with the token's own expiry (rows can be purged after it)
    claims = jwt.decode(first, options={"verify_signature": False})
    with Session(ledger.engine) as s:
        rows = list(s.exec(select(RevokedTokenRow)))
    assert [(row.jti, row.party, row.expires_ms) for row in rows] == [
        (claims["jti"], factory.address, claims["exp"] * 1000)
    ]
    # another instance (a restart) on the same database refuses it too
    ledger.stop()
    again = LedgerService.build(ledger.settings, chain=ledger.chain, deployment=ledger.deployment)
    try:
        with TestClient(create_app(service=again)) as other:
            assert error(other.get("/v1/auth/me", headers=bearer(first))) == (401, "auth.revoked")
            assert other.get("/v1/auth/me", headers=bearer(second)).status_code == 200
    finally:
        again.stop()


def test_portal_sign_out_revokes_the_cookie_token(
    db_url: str, client: TestClient, ledger: LedgerService, consortium: TestConsortium
) -> None:
    """Finding 10: the portal's session cookie is the API token; its sign-out ends it on the server, so a
    copy of the cookie is refused by the API and the portal afterwards; another session still works."""
    factory = consortium.factory
    session, other = login(client, factory), login(client, factory)
    page = _portal(client, session)
    assert f'id="who">{factory.address}<' in page.text
    browser = page.cookies["supet_csrf"]
    page = _portal(client, session, browser)
    csrf = re.search(r'name="csrf" value="([0-9a-f]{64})"', page.text)
    assert csrf is not None
    client.cookies.clear()
    r = client.post(
        "/portal/logout",
        data={"csrf": csrf.group(1)},
        headers={"Cookie": f"supet_session={session}; supet_csrf={browser}"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/portal/login?signed_out=1"
    assert error(client.get("/v1/auth/me", headers=bearer(session))) == (401, "auth.revoked")
    assert factory.address not in _portal(client, session, browser).text
    assert client.get("/v1/auth/me", headers=bearer(other)).status_code == 200
    assert f'id="who">{factory.address}<' in _portal(client, other).text


def test_revoked_tokens_are_purged_once_expired(ledger: LedgerService, consortium: TestConsortium) -> None:
    auth = Authenticator(
        settings=ledger.settings,
        engine=ledger.engine,
        chain_id=ledger.chain.chain_id,
        registry_address=ledger.deployment.address("DeviceRegistry"),
    )
    now_ms = int(time.time() * 1000)
    with Session(ledger.engine) as s:
        s.add(
            RevokedTokenRow(jti="old", party=consortium.factory.address, expires_ms=now_ms - 1, revoked_ms=1)
        )
        s.commit()
    challenge = auth.issue_login(consortium.factory.address)
    issued = auth.redeem_login(challenge.message, sign_text(consortium.factory, challenge.message))
    auth.revoke(auth.verify_token(issued.token))
    with pytest.raises(AuthenticationFailed) as info:
        auth.verify_token(issued.token)
    assert info.value.code == "auth.revoked"
    with Session(ledger.engine) as s:
        assert [row.jti for row in s.exec(select(RevokedTokenRow))] == [issued.token_id]


def test_a_token_known_not_signed_out_is_refused_at_once_after_a_sign_out(
    client: TestClient, ledger: LedgerService, consortium: TestConsortium
) -> None:
    """Where the service is the database's only writer (a SQLite file it holds), a token found not signed
    out is remembered so (no read per request); a sign-out by any authenticator on the database forgets
    it at once. Elsewhere (PostgreSQL) each check reads the store."""
    app_auth = authenticator(client)
    sole = ledger.instance_lock is not None
    assert (app_auth.sole_writer is not None and app_auth.sole_writer()) is sole
    other = Authenticator(
        settings=ledger.settings,
        engine=ledger.engine,
        chain_id=ledger.chain.chain_id,
        registry_address=ledger.deployment.address("DeviceRegistry"),
    )
    tok = login(client, consortium.factory)
    party = app_auth.verify_token(tok)
    assert (app_auth.known_token(tok) is not None) is sole
    assert other.known_token(tok) is None  # not the only writer: never answered from memory
    other.revoke(other.verify_token(tok))
    assert app_auth.known_token(tok) is None
    with pytest.raises(AuthenticationFailed) as info:
        app_auth.verify_token(tok)
    assert info.value.code == "auth.revoked" and party.address == consortium.factory.address
    assert error(client.get("/v1/auth/me", headers=bearer(tok))) == (401, "auth.revoked")


def test_a_check_that_raced_a_sign_out_is_not_remembered(ledger: LedgerService) -> None:
    """A revocation check that read the store before a sign-out committed must not be remembered after it
    (its answer may be stale): the generation it began at no longer holds."""
    revocations = revocations_of(ledger.engine)
    began = revocations.generation
    revocations.signed_out("raced")  # a sign-out commits while the check is on its way
    revocations.found_clear("raced", began)
    assert not revocations.known_clear("raced")
    revocations.found_clear("raced", revocations.generation)
    assert revocations.known_clear("raced")
    revocations.signed_out("raced")
    assert not revocations.known_clear("raced")


def test_a_sign_out_written_by_another_instance_is_honoured_where_the_service_is_not_the_only_writer(
    ledger: LedgerService, consortium: TestConsortium
) -> None:
    """Without the only-writer assurance (PostgreSQL: several instances), a row another instance wrote in
    revoked_tokens refuses the token at the next check, however often it was accepted before."""
    auth = Authenticator(
        settings=ledger.settings,
        engine=ledger.engine,
        chain_id=ledger.chain.chain_id,
        registry_address=ledger.deployment.address("DeviceRegistry"),
        sole_writer=lambda: False,
    )
    challenge = auth.issue_login(consortium.factory.address)
    issued = auth.redeem_login(challenge.message, sign_text(consortium.factory, challenge.message))
    for _ in range(3):
        party = auth.verify_token(issued.token)
    with Session(ledger.engine) as s:
        s.add(
            RevokedTokenRow(
                jti=party.credential_id,
                party=party.address,
                expires_ms=int(party.expires_at.timestamp() * 1000),
                revoked_ms=int(time.time() * 1000),
            )
        )
        s.commit()
    with pytest.raises(AuthenticationFailed) as info:
        auth.verify_token(issued.token)
    assert info.value.code == "auth.revoked"
