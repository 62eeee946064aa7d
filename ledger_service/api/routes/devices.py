"""Device enrollment by its owning party, and a device's public record: ``/v1/devices``.

The on-chain owner of a device is the account that sends the enrollment transaction,
so the service never enrolls with its own key on a party's behalf. Instead:

1. ``POST /v1/devices/challenge`` (enroller): a proof-of-possession challenge for the device.
2. ``POST /v1/devices`` (enroller): certificate, issuing CA certificate, the device's answer
   to the challenge, the CA's birth attestation of the device and the device's on-chain
   proof of possession for the party (issue 12, finding 2: the registry checks both, see
   :mod:`device_attestation.birth`). The service checks the certificate chain to a CA the
   registry trusts, the attestation against that CA and certificate, both proofs of
   possession (the challenge: single use, fresh, bound to the party that asked for it), and
   simulates the registry call from the party's address (device id and key not taken, party
   admitted, activation not back-dated). It answers with the verified transaction, ready
   for the party to sign.
3. ``POST /v1/devices/{device_id}/confirm`` (enroller): the party either sent the
   transaction itself (``tx_hash``) or hands the signed transaction to the service to
   relay (``signed_transaction``: needed on the embedded chain, which only this process
   can reach). The service relays only the exact transaction it prepared, signed by the
   party, then checks the mined enrollment and refreshes its registry mirror, so the
   device may submit readings at once.

``GET /v1/devices/{device_id}`` (public) shows the registry's and the ledger's view.

The routes parse and answer only; the checks, the challenge book and the relay are the service's
:class:`~ledger_service.enrollment.desk.EnrollmentDesk` (``LedgerService.enrollment``).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Path

from device_attestation.birth import REGISTRY_DOMAIN_NAME
from device_attestation.keys import Scheme
from ledger_service.api.deps import EnrollerParty, ServiceDep
from ledger_service.api.device_models import (
    ConfirmIn,
    ConfirmOut,
    DeviceOut,
    EnrollmentIn,
    EnrollmentPreparedOut,
    PopChallengeOut,
)
from ledger_service.api.models import ErrorEnvelope
from ledger_service.api.routes.auth import ROLE_ERRORS
from ledger_service.enrollment.desk import POP_MAX_AGE


def _hex(b: bytes) -> str:
    return "0x" + b.hex()


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


router = APIRouter(
    prefix="/v1/devices",
    tags=["devices"],
    responses={400: {"description": "The body is not valid JSON (or not UTF-8).", "model": ErrorEnvelope}},
)

DeviceIdPath = Annotated[str, Path(min_length=1, max_length=64, description="The device serial.")]
_ENROLL_ERRORS: dict[int | str, dict[str, Any]] = {
    **ROLE_ERRORS,
    409: {
        "description": "`enroll.device_exists`, `enroll.key_in_use`, `enroll.not_prepared`, "
        "`enroll.pending`.",
        "model": ErrorEnvelope,
    },
    422: {
        "description": "The certificate, the birth attestation or a proof of possession was refused: "
        "`certificate.*`, `birth.*` and `pop.*` codes of device_attestation, or `enroll.*`.",
        "model": ErrorEnvelope,
    },
    413: {
        "description": "`request.too_large`: the body exceeds the service's cap for small JSON bodies "
        "(`max_request_bytes`).",
        "model": ErrorEnvelope,
    },
}


@router.post(
    "/challenge",
    response_model=PopChallengeOut,
    summary="A proof-of-possession challenge for a device to enroll (enroller)",
    description=(
        "For a party the chain admits to enroll (ENROLLER_ROLE, or the admission gate). The device signs the "
        "challenge for its certificate; send the answer to `POST /v1/devices` within five minutes (to this "
        "instance or another on the same database). A challenge is single use and only valid for the party "
        "that asked for it."
    ),
    responses=ROLE_ERRORS,
)
def pop_challenge(party: EnrollerParty, service: ServiceDep) -> Any:
    desk = service.enrollment
    c = desk.issue_challenge(party.address)
    return {
        "nonce": _hex(c.nonce),
        "issued_at": _iso(c.issued_at),
        "issued_at_s": int(c.issued_at.timestamp()),
        "audience": c.audience,
        "expires_at": _iso(c.issued_at + POP_MAX_AGE),
        "possession": {
            "domain": {
                "name": REGISTRY_DOMAIN_NAME,
                "version": "1",
                "chainId": desk.chain.chain_id,
                "verifyingContract": desk.registry.contract.address,
            },
            "owner": party.address,
        },
        "digest": "challenge_digest(challenge, certificate_fingerprint(cert))",
    }


@router.post(
    "",
    response_model=EnrollmentPreparedOut,
    summary="Verify a device for enrollment; get the transaction to sign (enroller)",
    description=(
        "Checks the device certificate against the issuing CA certificate sent along (validity, profile, "
        "path validation), that this CA is trusted by the DeviceRegistry, the CA's birth attestation of "
        "this device and certificate, the device's proof of possession for the party at this registry "
        "(both checked again on chain), the answer to a fresh challenge this party asked for (spent by "
        "this call), and dry-runs the registry call from the party's address (device id and key not "
        "taken, party admitted, activation not before the block's time less 60 s). Nothing is written on "
        "chain; the prepared enrollment is kept by the service (any instance on its database confirms it). "
        "The answer is the verified `enrollP256`/`enrollSecp256k1` call (`to`, `data`) and a ready EIP-1559 "
        "`transaction`. The party signs it with its own key (the device's on-chain owner is the sender), "
        "sends it, and calls `POST /v1/devices/{device_id}/confirm` with the hash, or hands the signed "
        "transaction to that endpoint to relay (the embedded chain is reachable only through this service)."
    ),
    responses=_ENROLL_ERRORS,
)
def prepare_enrollment(body: EnrollmentIn, party: EnrollerParty, service: ServiceDep) -> Any:
    prepared, transaction = service.enrollment.prepare(
        party.address,
        certificate_pem=body.certificate,
        ca_certificate_pem=body.ca_certificate,
        challenge_nonce=body.challenge_nonce,
        pop_signature=body.pop_signature,
        birth_attestation=body.birth_attestation,
        possession_signature=body.possession_signature,
        active_from_ms=body.active_from_ms,
    )
    args = prepared.args
    key = {"x": _hex(args[1]), "y": _hex(args[2])} if prepared.scheme is Scheme.P256 else {"address": args[1]}
    return {
        "device_id": prepared.device_id,
        "device_id_hash": _hex(args[0]),
        "scheme": prepared.scheme.value,
        "owner": prepared.party,
        "key": key,
        "cert_fingerprint": _hex(prepared.cert_fingerprint),
        "ca_key_hash": _hex(prepared.ca_key_hash),
        "active_from_ms": prepared.active_from_ms,
        "to": transaction["to"],
        "data": prepared.data,
        "transaction": transaction,
        "expires_at": _iso(prepared.expires_at),
        "confirm": f"/v1/devices/{prepared.device_id}/confirm",
    }


@router.post(
    "/{device_id}/confirm",
    response_model=ConfirmOut,
    summary="Confirm (or relay) a prepared enrollment (enroller)",
    description=(
        "Send `tx_hash` when you sent the transaction yourself, or `signed_transaction` (the raw signed "
        "bytes of the `transaction` POST /v1/devices returned) for the service to relay: it relays only "
        "that exact transaction, signed by you, after a dry run passes. Then it waits for the receipt "
        "(up to 30 s), checks it enrolled this device from your address (with the verified certificate), "
        "and refreshes its registry mirror: the device may submit readings at once."
    ),
    responses=_ENROLL_ERRORS,
)
def confirm_enrollment(
    device_id: DeviceIdPath, body: ConfirmIn, party: EnrollerParty, service: ServiceDep
) -> Any:
    desk = service.enrollment
    tx_hash = body.tx_hash
    if body.signed_transaction is not None:
        tx_hash = desk.relay(party.address, device_id, body.signed_transaction)
    assert tx_hash is not None  # ConfirmIn holds exactly one
    outcome = desk.confirm(party.address, device_id, tx_hash)
    return {**desk.view(device_id), **outcome}


@router.get(
    "/{device_id}",
    response_model=DeviceOut,
    summary="A device: its registry record and its ledger record (public)",
    description=(
        "The DeviceRegistry's record (scheme, key, owner, activation, revocation, certificate fingerprint, "
        "issuing CA), read from the chain (or from the service's mirror while the chain is unreachable), and "
        "the ledger's: last sequence number, readings, gaps, missing numbers, equivocations."
    ),
    responses={404: {"model": ErrorEnvelope}, 503: {"model": ErrorEnvelope}},
)
def get_device(device_id: DeviceIdPath, service: ServiceDep) -> Any:
    return service.enrollment.view(device_id)
