"""Device enrollment through the API: challenge, verify and prepare, sign, confirm; then readings flow."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
from eth_account.signers.local import LocalAccount
from fastapi.testclient import TestClient
from reads import bearer as login
from reads import signed_request
from sqlalchemy import func
from sqlmodel import Session, select
from support import TestConsortium

from contracts.chain import dev_accounts
from contracts.enrollment import answer_challenge
from contracts.registry import DeviceRegistryClient, OnChainScheme, device_id_hash
from device_attestation.birth import BirthAttestation, attest_birth, sign_possession
from device_attestation.certificates import Challenge, make_device_csr
from device_attestation.keys import DeviceKey
from device_attestation.manufacturer_ca import create_manufacturer_ca, issue_device_certificate
from device_attestation.sdk import DeviceSigner
from ledger_service.service import LedgerService
from ledger_service.store.models import DeviceCacheRow, ReadingRow, UsedNonceRow

DOMAIN = "127.0.0.1:8000"
FACTORY = dev_accounts(2)[1].address  # TestConsortium's factory
#: The CA's birth attestation of each certificate `certify` issued (as `supet ca issue` writes it beside
#: the certificate), by certificate fingerprint.
BIRTHS: dict[bytes, BirthAttestation] = {}


@pytest.fixture
def device_registry() -> str:
    """Enrollment is the subject here: the real DeviceRegistry (attestation, possession, activation)."""
    return "real"


def signed(account: LocalAccount, method: str, path: str, body: bytes = b"") -> dict[str, str]:
    """A JSON request signed by ``account`` for this module's service (``DOMAIN``, the embedded chain)."""
    headers = signed_request(
        account, public_url=f"http://{DOMAIN}", chain_id=31337, method=method, path=path, body=body
    )
    return {**headers, "Content-Type": "application/json"}


def pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def certify(
    consortium: TestConsortium,
    device_id: str,
    scheme: str = "p256",
    *,
    key: DeviceKey | None = None,
    ca: tuple[Any, x509.Certificate] | None = None,
    not_before: dt.datetime | None = None,
    valid_days: int = 10,
) -> tuple[DeviceKey, x509.Certificate]:
    key = key or DeviceKey.generate(scheme)
    ca_key, ca_cert = ca or (consortium.ca_key, consortium.ca_cert)
    cert = issue_device_certificate(
        ca_key=ca_key,
        ca_cert=ca_cert,
        csr=make_device_csr(key, device_id),
        valid_days=valid_days,
        not_before=not_before or dt.datetime.now(dt.UTC) - dt.timedelta(hours=1),
    )
    BIRTHS[cert.fingerprint(hashes.SHA256())] = attest_birth(ca_key=ca_key, ca_cert=ca_cert, certificate=cert)
    return key, cert


def challenge_of(r: Any) -> Challenge:
    assert r.status_code == 200, r.text
    body = r.json()
    return Challenge(
        nonce=bytes.fromhex(body["nonce"][2:]),
        issued_at=dt.datetime.fromtimestamp(body["issued_at_s"], dt.UTC),
        audience=body["audience"],
    )


def possession(key: DeviceKey, device_id: str, owner: str, challenge: Challenge) -> str:
    """The device's on-chain proof of possession for ``owner`` at the challenge's registry."""
    _, chain_id, registry = challenge.audience.split(":")
    proof = sign_possession(key, device_id=device_id, owner=owner, chain_id=int(chain_id), registry=registry)
    return "0x" + proof.hex()


def enrollment_body(
    challenge: Challenge,
    key: DeviceKey,
    cert: x509.Certificate,
    ca_cert: x509.Certificate,
    *,
    owner: str = FACTORY,
    **extra: Any,
) -> dict[str, Any]:
    """A complete request: the challenge's answer, the CA's birth attestation of ``cert`` and the
    device's proof of possession for ``owner`` (the consortium's factory unless said)."""
    device_id = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    return {
        "certificate": pem(cert),
        "ca_certificate": pem(ca_cert),
        "challenge_nonce": "0x" + challenge.nonce.hex(),
        "pop_signature": "0x" + answer_challenge(key, challenge, cert).hex(),
        "birth_attestation": BIRTHS[cert.fingerprint(hashes.SHA256())].to_json(),
        "possession_signature": possession(key, str(device_id), owner, challenge),
        **extra,
    }


def state(ledger: LedgerService) -> tuple[int, tuple[int, ...]]:
    """What a refusal must leave unchanged: the chain's head and the ledger's rows."""
    with Session(ledger.engine) as s:
        counts = tuple(
            int(s.exec(select(func.count()).select_from(table)).one())
            for table in (UsedNonceRow, DeviceCacheRow, ReadingRow)
        )
    return ledger.chain.block_number(), counts


def error(r: Any) -> tuple[int, str]:
    return r.status_code, r.json()["error"]["code"]


# ---------------------------------------------------------------------------- happy paths


def test_enroll_p256_and_secp256k1_then_submit(
    client: TestClient, ledger: LedgerService, consortium: TestConsortium
) -> None:
    factory = consortium.factory
    registry = DeviceRegistryClient(ledger.chain, ledger.deployment)
    assert error(client.get("/v1/devices/SN-API-P256")) == (401, "access.anonymous")  # not public
    path = "/v1/devices/SN-API-P256"
    assert error(client.get(path, headers=signed(factory, "GET", path))) == (404, "device.not_found")

    # P-256 device, with a token; the service relays the party's signed transaction
    auth = login(client, factory)
    key, cert = certify(consortium, "SN-API-P256", "p256")
    challenge = challenge_of(client.post("/v1/devices/challenge", headers=auth))
    assert challenge.audience == f"eip155:31337:{registry.contract.address}"
    before = state(ledger)
    r = client.post(
        "/v1/devices", headers=auth, json=enrollment_body(challenge, key, cert, consortium.ca_cert)
    )
    assert r.status_code == 200, r.text
    prep = r.json()
    assert (
        prep["device_id"] == "SN-API-P256" and prep["scheme"] == "p256" and prep["owner"] == factory.address
    )
    assert prep["device_id_hash"] == "0x" + device_id_hash("SN-API-P256").hex()
    assert prep["key"] == {"x": hex0x(key.public_key.x), "y": hex0x(key.public_key.y)}
    assert prep["to"] == registry.contract.address == prep["transaction"]["to"]
    assert prep["transaction"]["data"] == prep["data"] and prep["transaction"]["chainId"] == 31337
    assert state(ledger) == before and not registry.device("SN-API-P256").enrolled  # nothing written yet

    raw = factory.sign_transaction(prep["transaction"]).raw_transaction.to_0x_hex()
    r = client.post("/v1/devices/SN-API-P256/confirm", headers=auth, json={"signed_transaction": raw})
    assert r.status_code == 200, r.text
    done = r.json()
    assert done["verified_here"] is True and done["registry"]["owner"] == factory.address
    assert done["registry"]["cert_fingerprint"] == prep["cert_fingerprint"]
    record = registry.device("SN-API-P256")
    assert record.owner == factory.address and record.scheme is OnChainScheme.P256
    assert ledger.registry.lookup_hash(device_id_hash("SN-API-P256")) is not None  # mirror refreshed

    # secp256k1 gateway, with signed requests; the party sends the transaction itself
    gw_key, gw_cert = certify(consortium, "GW-API-K1", "secp256k1")
    path = "/v1/devices/challenge"
    challenge = challenge_of(client.post(path, headers=signed(factory, "POST", path)))
    body = enrollment_body(
        challenge, gw_key, gw_cert, consortium.ca_cert, active_from_ms=int(time.time() * 1000)
    )
    content = _json(body)
    r = client.post("/v1/devices", content=content, headers=signed(factory, "POST", "/v1/devices", content))
    assert r.status_code == 200, r.text
    prep = r.json()
    assert prep["key"] == {"address": gw_key.public_key.eth_address} and prep["scheme"] == "secp256k1"
    signed_tx = factory.sign_transaction(prep["transaction"])
    tx_hash = ledger.chain.w3.eth.send_raw_transaction(signed_tx.raw_transaction).to_0x_hex()
    ledger.chain.reset_nonce(factory.address)
    content = _json({"tx_hash": tx_hash})
    path = "/v1/devices/GW-API-K1/confirm"
    r = client.post(path, content=content, headers=signed(factory, "POST", path, content))
    assert r.status_code == 200, r.text
    assert r.json()["tx_hash"] == tx_hash and r.json()["registry"]["scheme"] == "secp256k1"

    # both devices submit readings at once
    for device_id, device_key in (("SN-API-P256", key), ("GW-API-K1", gw_key)):
        signer = DeviceSigner(device_id=device_id, key=device_key, domain=consortium.domain)
        active_from = registry.device(device_id).active_from_ms  # the block's time (the default), or given
        reading = signer.sign({"temp_c": 21.5}, ts_ms=max(int(time.time() * 1000), active_from))
        r = client.post("/v1/readings", json=reading.to_json_obj())
        assert r.status_code == 201, r.text
        path = f"/v1/devices/{device_id}"
        view = client.get(path, headers=signed(factory, "GET", path)).json()  # its owner reads it
        assert view["ledger"] == {"last_seq": 1, "readings": 1, "gaps": 0, "missing": 0, "equivocations": 0}
        assert view["registry"]["source"] == "chain" and view["registry"]["revoked_at_ms"] is None


def hex0x(value: int) -> str:
    return "0x" + value.to_bytes(32, "big").hex()


def _json(obj: Any) -> bytes:
    import json

    return json.dumps(obj).encode()


# ---------------------------------------------------------------------------- refusals


def test_enrollment_refusals_change_nothing(
    client: TestClient, ledger: LedgerService, consortium: TestConsortium
) -> None:
    factory, rival = consortium.factory, dev_accounts(4)[3]
    consortium.registry.grant_enroller(consortium.operator, rival.address)
    taken = consortium.enroll("SN-TAKEN", "p256")
    auth, rival_auth = login(client, factory), login(client, rival)
    desk = _desk(client)

    def attempt(body: dict[str, Any], *, headers: dict[str, str] = auth) -> Any:
        return client.post("/v1/devices", headers=headers, json=body)

    def fresh(headers: dict[str, str] = auth) -> Challenge:
        return challenge_of(client.post("/v1/devices/challenge", headers=headers))

    rogue_ca = create_manufacturer_ca(common_name="Rogue CA", organization="Rogue", valid_days=30)
    key, cert = certify(consortium, "SN-REFUSED")
    other_key = DeviceKey.generate("p256")
    _, expired = certify(
        consortium, "SN-OLD", not_before=dt.datetime.now(dt.UTC) - dt.timedelta(days=3), valid_days=1
    )
    rogue_key, rogue_cert = certify(consortium, "SN-ROGUE", ca=rogue_ca)
    _, same_key_cert = certify(consortium, "SN-SAME-KEY", key=taken.key)
    taken_id_key, taken_id_cert = certify(consortium, "SN-TAKEN")  # a new device under a taken serial
    ledger.registry.refresh()  # the mirror holds SN-TAKEN now, not when a refresh happens to run
    before = state(ledger)

    c = fresh()
    body = enrollment_body(c, rogue_key, rogue_cert, rogue_ca[1])
    assert error(attempt(body)) == (422, "certificate.untrusted_ca")
    assert error(attempt(enrollment_body(fresh(), key, expired, consortium.ca_cert))) == (
        422,
        "certificate.expired",
    )
    wrong_issuer = enrollment_body(fresh(), key, cert, rogue_ca[1])  # CA certificate that did not issue it
    assert error(attempt(wrong_issuer)) == (422, "certificate.untrusted_ca")
    garbage = {**enrollment_body(fresh(), key, cert, consortium.ca_cert), "certificate": "not a certificate"}
    assert error(attempt(garbage)) == (422, "certificate.parse")

    c = fresh()
    pop_by_other = {**enrollment_body(c, key, cert, consortium.ca_cert)}
    pop_by_other["pop_signature"] = "0x" + answer_challenge(other_key, c, cert).hex()
    assert error(attempt(pop_by_other)) == (422, "pop.failed")
    assert error(attempt(enrollment_body(c, key, cert, consortium.ca_cert))) == (422, "pop.unknown_challenge")

    c = fresh()
    assert attempt(enrollment_body(c, key, cert, consortium.ca_cert)).status_code == 200  # verified, unsent
    assert error(attempt(enrollment_body(c, key, cert, consortium.ca_cert))) == (422, "pop.unknown_challenge")

    c = fresh()
    real = desk.clock
    desk.clock = lambda: real() + dt.timedelta(minutes=5, seconds=30)
    try:
        r = attempt(enrollment_body(c, key, cert, consortium.ca_cert))
    finally:
        desk.clock = real
    assert error(r) == (422, "pop.stale") and "request a new challenge" in r.json()["error"]["message"]

    theirs = fresh(rival_auth)  # a challenge issued to another party
    assert error(attempt(enrollment_body(theirs, key, cert, consortium.ca_cert))) == (
        422,
        "pop.unknown_challenge",
    )
    assert (
        attempt(
            enrollment_body(theirs, key, cert, consortium.ca_cert, owner=rival.address), headers=rival_auth
        ).status_code
        == 200
    )

    r = attempt(enrollment_body(fresh(), taken_id_key, taken_id_cert, consortium.ca_cert))
    assert error(r) == (409, "enroll.device_exists") and "SN-TAKEN" in r.json()["error"]["message"]
    assert error(attempt(enrollment_body(fresh(), taken.key, same_key_cert, consortium.ca_cert))) == (
        409,
        "enroll.key_in_use",
    )
    early = enrollment_body(fresh(), key, cert, consortium.ca_cert, active_from_ms=0)
    assert error(attempt(early)) == (422, "enroll.active_from")

    # issue 12.2: the chain takes no enrollment on the enroller's word
    back_dated = int(time.time() * 1000) - 10 * 60_000  # after notBefore, before the chain's now - 60 s
    r = attempt(enrollment_body(fresh(), key, cert, consortium.ca_cert, active_from_ms=back_dated))
    assert error(r) == (422, "enroll.active_from") and "before the enrollment" in r.json()["error"]["message"]
    body = enrollment_body(fresh(), key, cert, consortium.ca_cert)
    assert error(attempt({k: v for k, v in body.items() if k != "birth_attestation"})) == (
        422,
        "request.invalid",
    )
    assert error(attempt({k: v for k, v in body.items() if k != "possession_signature"})) == (
        422,
        "request.invalid",
    )
    assert error(attempt({**body, "birth_attestation": {"type": "x"}})) == (422, "birth.parse")
    other_birth = BIRTHS[same_key_cert.fingerprint(hashes.SHA256())].to_json()  # another certificate's
    assert error(attempt({**body, "birth_attestation": other_birth})) == (422, "birth.certificate")
    forged = dict(body["birth_attestation"])
    sig = bytes.fromhex(forged["signature"][2:])
    forged["signature"] = "0x" + (bytes([sig[0] ^ 1]) + sig[1:]).hex()
    assert error(attempt({**body, "birth_attestation": forged})) == (422, "birth.signature")
    for_rival = possession(key, "SN-REFUSED", rival.address, c)  # a proof for another owner
    r = attempt({**body, "possession_signature": for_rival})
    assert error(r) == (422, "pop.on_chain") and factory.address in r.json()["error"]["message"]
    elsewhere = Challenge(nonce=c.nonce, issued_at=c.issued_at, audience=f"eip155:31337:{rival.address}")
    other_registry = possession(key, "SN-REFUSED", factory.address, elsewhere)  # for another registry
    assert error(attempt({**body, "possession_signature": other_registry})) == (422, "pop.on_chain")
    by_other_key = possession(other_key, "SN-REFUSED", factory.address, c)
    assert error(attempt({**body, "possession_signature": by_other_key})) == (422, "pop.on_chain")

    # unauthenticated, and without the role
    assert error(client.post("/v1/devices", json={})) == (401, "auth.missing")
    assert error(client.post("/v1/devices/challenge")) == (401, "auth.missing")
    nobody = login(client, dev_accounts(6)[5])
    assert error(attempt(enrollment_body(c, key, cert, consortium.ca_cert), headers=nobody)) == (
        403,
        "auth.role_required",
    )
    assert state(ledger) == (before[0], (before[1][0] + 1, *before[1][1:]))  # only `nobody`'s sign-in
    assert not ledger.registry.lookup_hash(device_id_hash("SN-REFUSED"))
    for device_id in ("SN-REFUSED", "SN-ROGUE", "SN-OLD", "SN-SAME-KEY"):
        assert not consortium.registry.device(device_id).enrolled


def test_relay_only_the_prepared_transaction(
    client: TestClient, ledger: LedgerService, consortium: TestConsortium
) -> None:
    factory, stranger = consortium.factory, dev_accounts(6)[5]
    auth = login(client, factory)
    key, cert = certify(consortium, "SN-RELAY")
    url = "/v1/devices/SN-RELAY/confirm"
    assert error(client.post(url, headers=auth, json={"signed_transaction": "0x02"})) == (
        409,
        "enroll.not_prepared",
    )

    c = challenge_of(client.post("/v1/devices/challenge", headers=auth))
    prep = client.post(
        "/v1/devices", headers=auth, json=enrollment_body(c, key, cert, consortium.ca_cert)
    ).json()
    tx = prep["transaction"]
    before = state(ledger)
    other_data = {**tx, "data": tx["data"][:-2] + ("01" if tx["data"][-2:] != "01" else "02")}  # altered
    cases = {
        "signed by another key": stranger.sign_transaction({**tx, "nonce": 0}).raw_transaction.to_0x_hex(),
        "other call data": factory.sign_transaction(other_data).raw_transaction.to_0x_hex(),
        "to another contract": factory.sign_transaction(
            {**tx, "to": factory.address}
        ).raw_transaction.to_0x_hex(),
        "legacy transaction": "0xf8",
        "not a transaction": "0x02c0",
    }
    for name, raw in cases.items():
        assert error(client.post(url, headers=auth, json={"signed_transaction": raw})) == (
            422,
            "enroll.bad_transaction",
        ), name
    wrong_nonce = factory.sign_transaction({**tx, "nonce": tx["nonce"] + 5}).raw_transaction.to_0x_hex()
    assert error(client.post(url, headers=auth, json={"signed_transaction": wrong_nonce})) == (
        422,
        "enroll.bad_transaction",
    )
    both = {"signed_transaction": "0x02", "tx_hash": "0x" + "00" * 32}
    assert error(client.post(url, headers=auth, json=both)) == (422, "request.invalid")
    assert state(ledger) == before and not consortium.registry.device("SN-RELAY").enrolled

    # the device gets enrolled meanwhile by other means: the relay is refused before anything is sent
    consortium.registry.enroll_p256(
        factory,
        device_id="SN-RELAY",
        x=key.public_key.x,
        y=key.public_key.y,
        cert_fingerprint=bytes.fromhex(prep["cert_fingerprint"][2:]),
        ca_key_hash=bytes.fromhex(prep["ca_key_hash"][2:]),
        active_from_ms=prep["active_from_ms"],
        birth_signature=BIRTHS[cert.fingerprint(hashes.SHA256())].signature,
        possession_signature=bytes.fromhex(possession(key, "SN-RELAY", factory.address, c)[2:]),
    )
    block = ledger.chain.block_number()
    raw = factory.sign_transaction({**tx, "nonce": tx["nonce"] + 1}).raw_transaction.to_0x_hex()
    assert error(client.post(url, headers=auth, json={"signed_transaction": raw})) == (
        409,
        "enroll.device_exists",
    )
    assert ledger.chain.block_number() == block


def _desk(client: TestClient) -> Any:
    from ledger_service.enrollment.desk import EnrollmentDesk

    desk: EnrollmentDesk = client.app.state.service.enrollment  # type: ignore[attr-defined]
    return desk
