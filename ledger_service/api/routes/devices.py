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
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass
from typing import Annotated, Any, Final

from cryptography import x509
from eth_account import Account
from eth_account.typed_transactions import TypedTransaction
from eth_utils import ValidationError as EthValidationError
from eth_utils import to_checksum_address
from fastapi import APIRouter, Path, Request
from hexbytes import HexBytes
from pydantic import BaseModel, ConfigDict, Field, model_validator
from rlp.exceptions import RLPException
from sqlalchemy import func
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, select
from web3.contract.contract import ContractFunction
from web3.exceptions import Web3Exception
from web3.logs import DISCARD

from contracts.enrollment import ChallengeBook, registry_audience
from contracts.errors import ChainError, ContractRevert, TransactionTimeout
from contracts.registry import DeviceRegistryClient, OnChainScheme, device_id_hash
from device_attestation.birth import REGISTRY_DOMAIN_NAME, BirthAttestation, verify_possession
from device_attestation.certificates import (
    Challenge,
    VerifiedDevice,
    load_certificate,
    verify_device_certificate,
    verify_proof_of_possession,
)
from device_attestation.errors import CertificateError, UntrustedCA
from device_attestation.keys import Scheme
from ledger_service.api.deps import EnrollerParty
from ledger_service.api.models import ErrorEnvelope
from ledger_service.api.routes.auth import ROLE_ERRORS, EnvelopeRoute
from ledger_service.auth import ENROLLER, RoleRequired, utcnow
from ledger_service.errors import LedgerError, NotFound, StoreError
from ledger_service.service import LedgerService
from ledger_service.store.models import DeviceCacheRow, DeviceHeadRow, EquivocationRow

#: A device must answer a proof-of-possession challenge within this time.
POP_MAX_AGE: Final = dt.timedelta(minutes=5)
#: A prepared enrollment can be confirmed (relayed) within this time.
PREPARED_TTL: Final = dt.timedelta(minutes=15)
#: Open challenges one party may hold at once.
MAX_OPEN_CHALLENGES: Final = 256


class EnrollmentRefused(LedgerError):
    """An enrollment step was refused; ``http_status`` says how the API answers it."""

    code = "enroll.refused"

    def __init__(self, message: str, *, code: str, http_status: int = 422) -> None:
        super().__init__(message, code=code)
        self.http_status = http_status


def _refused(e: CertificateError) -> EnrollmentRefused:
    return EnrollmentRefused(e.message, code=e.code, http_status=422)


def _hex(b: bytes) -> str:
    return "0x" + b.hex()


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _bytes(value: str, what: str, *, length: int | None = None, code: str) -> bytes:
    try:
        raw = bytes.fromhex(value.removeprefix("0x"))
    except ValueError as e:
        raise EnrollmentRefused(f"{what} is not hex; send it 0x-hex encoded", code=code) from e
    if length is not None and len(raw) != length:
        raise EnrollmentRefused(f"{what} must be {length} bytes, got {len(raw)}", code=code)
    return raw


@dataclass(frozen=True, kw_only=True, slots=True)
class PreparedEnrollment:
    """An enrollment the service verified, waiting for the party's signed transaction."""

    party: str
    device_id: str
    scheme: Scheme
    fn_name: str
    args: tuple[Any, ...]
    data: str
    cert_fingerprint: bytes
    ca_key_hash: bytes
    active_from_ms: int
    expires_at: dt.datetime


def _revert_refusal(e: ContractRevert, party: str, device_id: str) -> LedgerError:
    """The registry's refusal, as the API answers it."""
    name = e.error_name
    if name == "DeviceRegistryNotAdmitted":
        return RoleRequired(
            e.hint or f"the DeviceRegistry does not admit {party} to enroll devices: {ENROLLER.advice}",
            role=ENROLLER.name,
            party=party,
        )
    if name == "DeviceRegistryDeviceExists":
        return EnrollmentRefused(
            f"device {device_id!r} is already enrolled on chain; a serial is enrolled once (revoke "
            "the old record only if it is the same device, and enroll replacements under a new serial)",
            code="enroll.device_exists",
            http_status=409,
        )
    if name == "DeviceRegistryKeyInUse":
        return EnrollmentRefused(
            f"the certificate's key is already enrolled for device {e.error_args.get('deviceId')}; "
            "every device needs its own key: have the device generate a new one and be re-certified",
            code="enroll.key_in_use",
            http_status=409,
        )
    if name == "DeviceRegistryActiveFromInPast":
        return EnrollmentRefused(
            f"active_from_ms {e.error_args.get('activeFromMs')} is before the enrollment block's time less "
            f"60 s ({e.error_args.get('earliestMs')}): readings cannot count from before the enrollment; "
            "omit active_from_ms (the block's time) or give a time from now on",
            code="enroll.active_from",
        )
    if name == "DeviceRegistryInvalidBirthAttestation":
        return EnrollmentRefused(
            "the DeviceRegistry refuses the birth attestation: it is not the trusted CA's signature of "
            "this device, key and certificate; send the attestation the CA issued with the certificate",
            code="birth.signature",
        )
    if name == "DeviceRegistryInvalidPossessionProof":
        return EnrollmentRefused(
            f"the DeviceRegistry refuses the proof of possession: it is not the device key's signature "
            f"for {party} at this registry; have the device sign possession_digest for your address",
            code="pop.on_chain",
        )
    if name == "DeviceRegistryUntrustedCA":
        return EnrollmentRefused(
            f"the issuing CA {e.error_args.get('caKeyHash')} is not trusted on chain: the consortium "
            "operator must register it (`supet ca register`)",
            code="certificate.untrusted_ca",
        )
    return EnrollmentRefused(f"the DeviceRegistry refuses the enrollment: {e.message}", code="enroll.refused")


def _registry_json(
    source: str,
    scheme: OnChainScheme,
    owner: str,
    signer: str,
    key_x: bytes,
    key_y: bytes,
    active_from_ms: int,
    revoked_at_ms: int,
    cert_fingerprint: bytes,
    ca_key_hash: bytes,
) -> dict[str, Any]:
    p256 = scheme == OnChainScheme.P256
    return {
        "source": source,
        "scheme": "p256" if p256 else "secp256k1",
        "owner": owner,
        "signer": None if p256 else signer,
        "key": {"x": _hex(key_x), "y": _hex(key_y)} if p256 else {"address": signer},
        "active_from_ms": active_from_ms,
        "revoked_at_ms": revoked_at_ms or None,
        "cert_fingerprint": _hex(cert_fingerprint),
        "ca_key_hash": _hex(ca_key_hash),
    }


class EnrollmentDesk:
    """Challenges, verified enrollments and their confirmation, for one app.

    Open challenges and prepared enrollments live in memory (a restart drops them; ask
    again). ``clock`` may be replaced (tests).
    """

    def __init__(self, service: LedgerService) -> None:
        self.service = service
        self.registry = DeviceRegistryClient(service.chain, service.deployment)
        self.audience = registry_audience(self.registry)
        # the book keeps challenges a minute past POP_MAX_AGE, so a late answer is told "stale"
        self.book = ChallengeBook(self.audience, max_age=POP_MAX_AGE + dt.timedelta(minutes=1))
        self.clock = utcnow
        self.confirm_timeout = min(service.settings.anchor_timeout_seconds, 30.0)
        self._issued_to: dict[bytes, tuple[str, dt.datetime]] = {}
        self._prepared: dict[tuple[str, str], PreparedEnrollment] = {}
        self._lock = threading.Lock()

    # -------------------------------------------------------------- 1. challenge

    def issue_challenge(self, party: str) -> Challenge:
        now = self.clock()
        with self._lock:
            horizon = now - self.book.max_age
            for nonce in [n for n, (_, at) in self._issued_to.items() if at < horizon]:
                del self._issued_to[nonce]
            if sum(1 for p, _ in self._issued_to.values() if p == party) >= MAX_OPEN_CHALLENGES:
                raise EnrollmentRefused(
                    f"{party} holds {MAX_OPEN_CHALLENGES} open challenges; use them or wait "
                    f"{int(self.book.max_age.total_seconds())} s for them to lapse",
                    code="enroll.too_many_challenges",
                    http_status=429,
                )
            challenge = self.book.issue(now)
            self._issued_to[challenge.nonce] = (party, challenge.issued_at)
        return challenge

    # -------------------------------------------------------------- 2. verify and prepare

    def prepare(
        self,
        party: str,
        *,
        certificate_pem: str,
        ca_certificate_pem: str,
        challenge_nonce: str,
        pop_signature: str,
        birth_attestation: dict[str, Any],
        possession_signature: str,
        active_from_ms: int | None,
    ) -> tuple[PreparedEnrollment, dict[str, Any]]:
        """Check everything an enrollment needs; the prepared enrollment and its transaction.

        Checks without side effects come first (certificate chain, CA trusted on chain, the CA's
        birth attestation, the device's proof of possession for ``party`` at this registry, a dry
        run of the registry call from the party), then the challenge is spent and its answer
        checked. Nothing is written on chain or in the database. ``active_from_ms`` None: the
        enrollment block's time (0 on chain).
        """
        now = self.clock()
        try:
            cert = load_certificate(certificate_pem.encode("utf-8"))
            ca = load_certificate(ca_certificate_pem.encode("utf-8"))
            verified = verify_device_certificate(cert, trusted_cas=[ca], at=now)
        except CertificateError as e:
            raise _refused(e) from e
        if not self.registry.is_trusted_ca(verified.ca_key_hash):
            raise _refused(
                UntrustedCA(
                    f"the CA {_hex(verified.ca_key_hash)} that issued {verified.device_id}'s certificate is "
                    "not trusted on chain: the consortium operator must register it (`supet ca register`)"
                )
            )
        possession = self._check_attestation(
            verified, cert, ca, party, birth_attestation, possession_signature
        )
        not_before_ms = int(verified.not_valid_before.timestamp() * 1000)
        active_from = 0 if active_from_ms is None else active_from_ms  # 0: the block's time
        if active_from_ms is not None and active_from < not_before_ms:
            raise EnrollmentRefused(
                f"active_from_ms {active_from} is before the certificate's notBefore ({not_before_ms}): "
                "readings cannot count from before the key was certified",
                code="enroll.active_from",
            )
        device_id = verified.device_id
        pub = verified.public_key
        did = device_id_hash(device_id)
        if verified.scheme is Scheme.P256:
            fn_name = "enrollP256"
            args: tuple[Any, ...] = (
                did,
                pub.x.to_bytes(32, "big"),
                pub.y.to_bytes(32, "big"),
                verified.fingerprint,
                verified.ca_key_hash,
                active_from,
                possession.birth,
                possession.proof,
            )
        else:
            fn_name = "enrollSecp256k1"
            args = (
                did,
                to_checksum_address(pub.eth_address),
                verified.fingerprint,
                verified.ca_key_hash,
                active_from,
                possession.birth,
                possession.proof,
            )
        fn = self._fn(fn_name, args)
        gas = self._dry_run(fn, party, device_id)

        nonce = _bytes(challenge_nonce, "challenge_nonce", length=32, code="pop.bad_challenge")
        with self._lock:
            holder = self._issued_to.get(nonce)
            if holder is not None and holder[0] == party:
                del self._issued_to[nonce]
        if holder is None or holder[0] != party:
            raise EnrollmentRefused(
                "unknown, expired or already used challenge (or one issued to another party): ask "
                "POST /v1/devices/challenge for a new one and have the device sign it",
                code="pop.unknown_challenge",
            )
        try:
            challenge = self.book.redeem(nonce, now)
            verify_proof_of_possession(
                cert=cert,
                challenge=challenge,
                signature=_bytes(pop_signature, "pop_signature", code="pop.failed"),
                now=now,
                expected_audience=self.audience,
                max_age=POP_MAX_AGE,
            )
        except CertificateError as e:  # StaleChallenge and ProofOfPossessionFailed included
            raise _refused(e) from e

        prepared = PreparedEnrollment(
            party=party,
            device_id=device_id,
            scheme=verified.scheme,
            fn_name=fn_name,
            args=args,
            data=self.registry.contract.encode_abi(fn_name, args=list(args)),
            cert_fingerprint=verified.fingerprint,
            ca_key_hash=verified.ca_key_hash,
            active_from_ms=active_from,
            expires_at=now + PREPARED_TTL,
        )
        chain = self.service.chain
        tx_nonce = chain.request(
            lambda: chain.w3.eth.get_transaction_count(to_checksum_address(party), "pending"),
            context="eth_getTransactionCount",
        )
        tx = chain.request(
            lambda: fn.build_transaction(
                {"from": party, "chainId": chain.chain_id, "nonce": tx_nonce, "gas": int(gas * 1.2) + 10_000}
            ),
            context=f"{fn_name} transaction",
        )
        transaction = {k: v for k, v in dict(tx).items() if k != "from"}
        transaction["type"] = 2
        with self._lock:
            for key in [k for k, p in self._prepared.items() if p.expires_at < now]:
                del self._prepared[key]
            self._prepared[(party, device_id)] = prepared
        return prepared, transaction

    # -------------------------------------------------------------- 3. relay / confirm

    def relay(self, party: str, device_id: str, signed_transaction: str) -> str:
        """Send the party's signed copy of the prepared transaction; its hash.

        Only the exact transaction prepared for this party and device is relayed, and only
        if a dry run from the party passes now, so nothing reverting is ever mined.
        """
        prepared = self._prepared_for(party, device_id)
        raw = _bytes(signed_transaction, "signed_transaction", code="enroll.bad_transaction")
        if not raw or raw[0] != 2:
            raise EnrollmentRefused(
                "signed_transaction must be an EIP-1559 (type 2) transaction: sign the `transaction` "
                "object POST /v1/devices returned (e.g. Account.sign_transaction) and send its raw bytes",
                code="enroll.bad_transaction",
            )
        try:
            fields = TypedTransaction.from_bytes(HexBytes(raw)).as_dict()
            sender = Account.recover_transaction(raw)
        except (RLPException, EthValidationError, ValueError, TypeError) as e:
            raise EnrollmentRefused(
                f"signed_transaction cannot be decoded ({type(e).__name__}: {e}); send the raw signed bytes",
                code="enroll.bad_transaction",
            ) from e
        to = fields.get("to")
        problems = []
        if sender != party:
            problems.append(f"it is signed by {sender}, not by you ({party})")
        if not to or to_checksum_address(bytes(to)) != self.registry.contract.address:
            problems.append(f"it is not addressed to the DeviceRegistry {self.registry.contract.address}")
        if HexBytes(fields.get("data", b"")) != HexBytes(prepared.data):
            problems.append("its data is not the prepared enrollment call")
        if fields.get("chainId") != self.service.chain.chain_id:
            problems.append(f"it is for chain {fields.get('chainId')}, not {self.service.chain.chain_id}")
        if fields.get("value", 0) != 0:
            problems.append("it sends value")
        if problems:
            raise EnrollmentRefused(
                "the signed transaction is not the prepared enrollment: "
                + "; ".join(problems)
                + ". Sign the `transaction` POST /v1/devices returned, unchanged",
                code="enroll.bad_transaction",
            )
        self._dry_run(self._fn(prepared.fn_name, prepared.args), party, device_id)
        chain = self.service.chain
        try:
            tx_hash = chain.request(
                lambda: chain.w3.eth.send_raw_transaction(raw), context="enrollment relay"
            )
        except (Web3Exception, EthValidationError, ValueError) as e:
            raise EnrollmentRefused(
                f"the node refused the transaction ({e}); check its nonce and fees against "
                "the party's account, sign again and confirm again",
                code="enroll.bad_transaction",
            ) from e
        finally:
            chain.reset_nonce(party)  # the party's nonce moved outside Chain's bookkeeping
        return HexBytes(tx_hash).to_0x_hex()

    def confirm(self, party: str, device_id: str, tx_hash: str) -> dict[str, Any]:
        """Check the mined enrollment of ``device_id`` by ``party`` in ``tx_hash``; refresh the mirror."""
        _bytes(tx_hash, "tx_hash", length=32, code="enroll.bad_transaction")
        chain = self.service.chain
        try:
            result = chain.wait(tx_hash, timeout=self.confirm_timeout, context="enrollment")
        except TransactionTimeout as e:
            raise EnrollmentRefused(
                f"{tx_hash} is not mined yet (waited {self.confirm_timeout:.0f} s); call confirm again later",
                code="enroll.pending",
                http_status=409,
            ) from e
        except ContractRevert as e:
            raise _revert_refusal(e, party, device_id) from e
        tx = chain.request(lambda: chain.w3.eth.get_transaction(HexBytes(tx_hash)), context="enrollment")
        if to_checksum_address(tx["from"]) != party:
            raise EnrollmentRefused(
                f"{tx_hash} was sent by {to_checksum_address(tx['from'])}, not by you ({party})",
                code="enroll.not_yours",
                http_status=403,
            )
        did = device_id_hash(device_id)
        events = self.registry.contract.events.DeviceEnrolled().process_receipt(
            result.receipt, errors=DISCARD
        )
        found = [
            ev
            for ev in events
            if bytes(ev["args"]["deviceId"]) == did and ev["address"] == self.registry.contract.address
        ]
        if not found:
            raise EnrollmentRefused(
                f"{tx_hash} did not enroll device {device_id!r} in the DeviceRegistry "
                f"{self.registry.contract.address}",
                code="enroll.not_in_transaction",
            )
        with self._lock:
            prepared = self._prepared.get((party, device_id))
        if prepared is not None and bytes(found[0]["args"]["certFingerprint"]) != prepared.cert_fingerprint:
            raise EnrollmentRefused(
                f"{tx_hash} enrolled {device_id!r} with another certificate than the one verified here",
                code="enroll.mismatch",
            )
        self.service.registry.refresh()
        with self._lock:
            self._prepared.pop((party, device_id), None)
        return {
            "tx_hash": result.tx_hash,
            "block_number": result.block_number,
            "verified_here": prepared is not None,
        }

    # -------------------------------------------------------------- views

    def view(self, device_id: str) -> dict[str, Any]:
        """The registry's record (from the chain, or the mirror when the chain is down) and the ledger's."""
        did = device_id_hash(device_id)
        registry: dict[str, Any] | None = None
        try:
            rec = self.registry.device(did)
            if rec.enrolled:
                registry = _registry_json(
                    "chain", rec.scheme, rec.owner, rec.signer, rec.key_x, rec.key_y,
                    rec.active_from_ms, rec.revoked_at_ms, rec.cert_fingerprint, rec.ca_key_hash,
                )  # fmt: skip
            chain_down = False
        except ChainError:
            chain_down = True
        try:
            with Session(self.service.engine) as s:
                head = s.get(DeviceHeadRow, device_id)
                count = select(func.count()).select_from(EquivocationRow)
                equivocations = int(s.exec(count.where(EquivocationRow.device_id == device_id)).one())
                row = s.get(DeviceCacheRow, did) if chain_down else None
        except SQLAlchemyError as e:
            raise StoreError(f"cannot read device {device_id!r}: {type(e).__name__}; retry later") from e
        if row is not None:
            registry = _registry_json(
                "mirror", OnChainScheme(row.scheme), row.owner, row.signer, row.key_x, row.key_y,
                row.active_from_ms, row.revoked_at_ms, row.cert_fingerprint, row.ca_key_hash,
            )  # fmt: skip
        if registry is None and head is None and not equivocations:
            raise NotFound(
                f"device {device_id!r} is not enrolled and has no readings", code="device.not_found"
            )
        return {
            "device_id": device_id,
            "device_id_hash": _hex(did),
            "registry": registry,
            "ledger": {
                "last_seq": head.last_seq if head else None,
                "readings": head.readings if head else 0,
                "gaps": head.gaps if head else 0,
                "missing": head.missing if head else 0,
                "equivocations": equivocations,
            },
        }

    # -------------------------------------------------------------- internals

    def _check_attestation(
        self,
        verified: VerifiedDevice,
        cert: x509.Certificate,
        ca: x509.Certificate,
        party: str,
        birth_attestation: dict[str, Any],
        possession_signature: str,
    ) -> _Attested:
        """The CA's birth attestation of ``cert`` and the device's proof of possession for
        ``party`` at this registry, as the registry will check them (refused here first: no gas,
        a message that says what to fix)."""
        try:
            birth = BirthAttestation.from_json(birth_attestation)
            birth.check_certificate(cert)
            birth.verify(ca)
            proof = _bytes(possession_signature, "possession_signature", code="pop.on_chain")
            verify_possession(
                verified.public_key,
                proof,
                device_id=verified.device_id,
                owner=party,
                chain_id=self.service.chain.chain_id,
                registry=self.registry.contract.address,
            )
        except CertificateError as e:  # birth.* and pop.on_chain included
            raise _refused(e) from e
        return _Attested(birth=birth.signature, proof=proof)

    def _fn(self, fn_name: str, args: tuple[Any, ...]) -> ContractFunction:
        fn: ContractFunction = self.registry.contract.functions[fn_name](*args)
        return fn

    def _dry_run(self, fn: ContractFunction, party: str, device_id: str) -> int:
        try:
            return self.service.chain.estimate_gas(fn, sender=party)
        except ContractRevert as e:
            raise _revert_refusal(e, party, device_id) from e

    def _prepared_for(self, party: str, device_id: str) -> PreparedEnrollment:
        with self._lock:
            prepared = self._prepared.get((party, device_id))
        if prepared is None or prepared.expires_at < self.clock():
            raise EnrollmentRefused(
                f"no enrollment of {device_id!r} by {party} is prepared (or it lapsed after "
                f"{int(PREPARED_TTL.total_seconds() // 60)} minutes): POST /v1/devices first",
                code="enroll.not_prepared",
                http_status=409,
            )
        return prepared


@dataclass(frozen=True, slots=True)
class _Attested:
    """The signatures an enrollment carries to the chain: the CA's birth attestation, the device's proof."""

    birth: bytes
    proof: bytes


_DESK_LOCK = threading.Lock()


def enrollment_desk(request: Request) -> EnrollmentDesk:
    """This app's :class:`EnrollmentDesk`, built on first use."""
    state = request.app.state
    desk: EnrollmentDesk | None = getattr(state, "enrollment", None)
    if desk is None:
        with _DESK_LOCK:
            desk = getattr(state, "enrollment", None)
            if desk is None:
                desk = EnrollmentDesk(state.service)
                state.enrollment = desk
    return desk


# ---------------------------------------------------------------------------- API models


class PopChallengeOut(BaseModel):
    nonce: str = Field(description="32 random bytes, 0x-hex. Single use, for the party that asked.")
    issued_at: str = Field(description="RFC 3339 UTC, whole seconds.")
    issued_at_s: int = Field(description="The same, in Unix seconds (what the digest encodes).")
    audience: str = Field(description="`eip155:<chain id>:<DeviceRegistry address>`.")
    expires_at: str = Field(description="Send the device's answer to POST /v1/devices before this.")
    possession: dict[str, Any] = Field(
        description="What the device signs for the on-chain proof of possession (`possession_signature`): "
        "EIP-712 `DevicePossession(bytes32 deviceId,address owner)` with deviceId = keccak256(serial) and "
        "owner = your address, under this domain (device_attestation.birth.sign_possession)."
    )
    digest: str = Field(
        description="What the device signs: challenge_digest(challenge, sha256(certificate DER)), i.e. "
        "keccak256(keccak256('supET device PoP v1') ‖ keccak256(audience) ‖ nonce ‖ uint256(issued_at_s) "
        "‖ fingerprint), with its reading key (p256: 64-byte r‖s low-S; secp256k1: 65-byte r‖s‖v)."
    )


class EnrollmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    certificate: str = Field(max_length=16_384, description="The device certificate, PEM.")
    ca_certificate: str = Field(
        max_length=16_384,
        description="The manufacturer CA certificate that issued it, PEM (trusted on chain).",
    )
    challenge_nonce: str = Field(description="The nonce of the challenge from POST /v1/devices/challenge.")
    pop_signature: str = Field(pattern=r"^0x[0-9a-fA-F]+$", description="The device's answer, 0x-hex.")
    birth_attestation: dict[str, Any] = Field(
        description="The CA's birth attestation of the device: the `<cert>.birth.json` object `supet ca "
        "issue` (or `supet ca attest`, for a certificate issued elsewhere) wrote. The registry checks it "
        "on chain."
    )
    possession_signature: str = Field(
        pattern=r"^0x[0-9a-fA-F]+$",
        max_length=256,
        description="The device key's EIP-712 signature of `DevicePossession(deviceId, owner)` for your "
        "address, under the registry's domain (`possession` of POST /v1/devices/challenge): p256 64 bytes "
        "r‖s low-S, secp256k1 65 bytes r‖s‖v. The registry checks it on chain.",
    )
    active_from_ms: int | None = Field(
        default=None,
        ge=0,
        lt=2**64,
        description="Readings measured at or after this time (Unix ms) count; default the enrollment "
        "block's time. Not before the certificate's notBefore, nor before the block's time less 60 s.",
    )


class EnrollmentPreparedOut(BaseModel):
    device_id: str
    device_id_hash: str
    scheme: str
    owner: str = Field(description="The party: the device's on-chain owner once the transaction is mined.")
    key: dict[str, str] = Field(description="P-256 `{x, y}` or secp256k1 `{address}`.")
    cert_fingerprint: str
    ca_key_hash: str
    active_from_ms: int = Field(description="0: the enrollment block's time (see confirm's answer).")
    to: str = Field(description="The DeviceRegistry.")
    data: str = Field(description="The verified enrollment call data.")
    transaction: dict[str, Any] = Field(
        description="An EIP-1559 transaction with this call, the party's next nonce, gas and current fees: "
        "sign it with the party's key as is (or adjust fees/nonce)."
    )
    expires_at: str = Field(description="Confirm (or relay) before this.")
    confirm: str = Field(description="Where to confirm.")


class ConfirmIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"tx_hash": "0x" + "ab" * 32}, {"signed_transaction": "0x02f8..."}],
        },
    )

    tx_hash: str | None = Field(
        default=None, pattern=r"^0x[0-9a-fA-F]{64}$", description="You sent the transaction yourself."
    )
    signed_transaction: str | None = Field(
        default=None,
        pattern=r"^0x[0-9a-fA-F]+$",
        max_length=8_192,
        description="Or: the raw signed transaction, for the service to relay (needed on the embedded "
        "chain).",
    )

    @model_validator(mode="after")
    def _one(self) -> ConfirmIn:
        if (self.tx_hash is None) == (self.signed_transaction is None):
            raise ValueError("send exactly one of tx_hash and signed_transaction")
        return self


class RegistryViewOut(BaseModel):
    source: str = Field(
        description="`chain`, or `mirror` (the service's copy) when the chain is unreachable."
    )
    scheme: str
    owner: str
    signer: str | None
    key: dict[str, str]
    active_from_ms: int
    revoked_at_ms: int | None
    cert_fingerprint: str
    ca_key_hash: str


class LedgerViewOut(BaseModel):
    last_seq: int | None
    readings: int
    gaps: int = Field(description="Times the device skipped sequence numbers.")
    missing: int = Field(description="Sequence numbers below last_seq not (yet) in the ledger.")
    equivocations: int = Field(description="Conflicting readings kept as evidence.")


class DeviceOut(BaseModel):
    device_id: str
    device_id_hash: str
    registry: RegistryViewOut | None = Field(description="Null when the device is not enrolled.")
    ledger: LedgerViewOut


class ConfirmOut(DeviceOut):
    tx_hash: str
    block_number: int
    verified_here: bool = Field(
        description="The enrollment matches one this service verified (POST /v1/devices)."
    )


# ---------------------------------------------------------------------------- routes

router = APIRouter(
    prefix="/v1/devices",
    tags=["devices"],
    route_class=EnvelopeRoute,
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
        "challenge for its certificate; send the answer to `POST /v1/devices` within five minutes. A "
        "challenge is single use and only valid for the party that asked for it."
    ),
    responses=ROLE_ERRORS,
)
def pop_challenge(party: EnrollerParty, request: Request) -> Any:
    desk = enrollment_desk(request)
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
                "chainId": desk.service.chain.chain_id,
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
        "taken, party admitted, activation not before the block's time less 60 s). Nothing is written: "
        "the answer "
        "is the verified `enrollP256`/`enrollSecp256k1` call (`to`, `data`) and a ready EIP-1559 "
        "`transaction`. The party signs it with its own key (the device's on-chain owner is the sender), "
        "sends it, and calls `POST /v1/devices/{device_id}/confirm` with the hash, or hands the signed "
        "transaction to that endpoint to relay (the embedded chain is reachable only through this service)."
    ),
    responses=_ENROLL_ERRORS,
)
def prepare_enrollment(body: EnrollmentIn, party: EnrollerParty, request: Request) -> Any:
    prepared, transaction = enrollment_desk(request).prepare(
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
    device_id: DeviceIdPath, body: ConfirmIn, party: EnrollerParty, request: Request
) -> Any:
    desk = enrollment_desk(request)
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
def get_device(device_id: DeviceIdPath, request: Request) -> Any:
    return enrollment_desk(request).view(device_id)
