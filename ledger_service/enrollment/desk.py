"""The enrollment desk: challenges, verified enrollments and their confirmation, for one service.

The on-chain owner of a device is the account that sends the enrollment transaction, so the
service never enrolls with its own key on a party's behalf. The desk issues proof-of-possession
challenges (:meth:`EnrollmentDesk.issue_challenge`), checks everything an enrollment needs and
prepares the transaction for the party to sign (:meth:`~EnrollmentDesk.prepare`), relays exactly
that transaction signed by the party (:meth:`~EnrollmentDesk.relay`), and checks the mined
enrollment (:meth:`~EnrollmentDesk.confirm`). It is built once, by
:meth:`ledger_service.service.LedgerService.build`, and the API's ``/v1/devices`` routes use it.

Its state is in the database, shared by every instance on it and kept over a restart (issue 17):
the open challenges (:class:`~ledger_service.enrollment.challenges.StoredChallengeBook`: bound to
the party that asked, single use over every instance, at most :data:`MAX_OPEN_CHALLENGES` open per
party counted in the database) and the prepared enrollments
(:class:`~ledger_service.enrollment.prepared.PreparedEnrollments`: the verified call and
certificate). A challenge issued by one instance is answered on another; an enrollment prepared on
one is relayed and confirmed on another, against the certificate verified when it was prepared.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Final

from cryptography import x509
from eth_utils import ValidationError as EthValidationError
from eth_utils import to_checksum_address
from hexbytes import HexBytes
from sqlalchemy import Engine
from web3.contract.contract import ContractFunction
from web3.exceptions import Web3Exception
from web3.logs import DISCARD

from contracts.chain import Chain
from contracts.deployment import Deployment
from contracts.enrollment import registry_audience
from contracts.errors import ContractRevert, TransactionTimeout
from contracts.registry import DeviceRegistryClient, device_id_hash
from device_attestation.certificates import Challenge, verify_proof_of_possession
from device_attestation.errors import CertificateError
from ledger_service.auth import utcnow
from ledger_service.enrollment.calls import check_signed_transaction, enroll_call
from ledger_service.enrollment.challenges import StoredChallengeBook
from ledger_service.enrollment.checks import (
    check_active_from,
    check_attestation,
    hex_bytes,
    verify_certificate,
)
from ledger_service.enrollment.device_view import device_view
from ledger_service.enrollment.errors import (
    EnrollmentConflict,
    EnrollmentForbidden,
    EnrollmentRefused,
    refused,
    revert_refusal,
)
from ledger_service.enrollment.prepared import PreparedEnrollment, PreparedEnrollments
from ledger_service.registry_cache import RegistryCache

__all__ = ["MAX_OPEN_CHALLENGES", "POP_MAX_AGE", "PREPARED_TTL", "EnrollmentDesk"]

#: A device must answer a proof-of-possession challenge within this time.
POP_MAX_AGE: Final = dt.timedelta(minutes=5)
#: A prepared enrollment can be confirmed (relayed) within this time.
PREPARED_TTL: Final = dt.timedelta(minutes=15)
#: Open challenges one party may hold at once (over every instance on the database).
MAX_OPEN_CHALLENGES: Final = 256


class EnrollmentDesk:
    """Challenges, verified enrollments and their confirmation, for one service.

    Open challenges and prepared enrollments live in the database (``enrollment_challenges``,
    ``prepared_enrollments``): any instance on it redeems, relays and confirms what another
    issued or prepared, also after a restart. ``clock`` may be replaced (tests).
    """

    def __init__(
        self,
        *,
        chain: Chain,
        deployment: Deployment,
        engine: Engine,
        mirror: RegistryCache,
        chain_timeout: float,
    ) -> None:
        self.chain = chain
        self.engine = engine
        #: The service's registry mirror, refreshed once an enrollment is confirmed.
        self.mirror = mirror
        self.registry = DeviceRegistryClient(chain, deployment)
        self.audience = registry_audience(self.registry)
        # the book keeps challenges a minute past POP_MAX_AGE, so a late answer is told "stale"
        self.book = StoredChallengeBook(
            engine,
            self.audience,
            max_age=POP_MAX_AGE + dt.timedelta(minutes=1),
            max_open=MAX_OPEN_CHALLENGES,
        )
        self.prepared = PreparedEnrollments(engine, self.registry.contract)
        self.clock = utcnow
        self.confirm_timeout = min(chain_timeout, 30.0)

    # -------------------------------------------------------------- 1. challenge

    def issue_challenge(self, party: str) -> Challenge:
        """A fresh challenge for ``party``, stored before it is answered (at most
        :data:`MAX_OPEN_CHALLENGES` open at once, over every instance: ``enroll.too_many_challenges``)."""
        return self.book.issue(self.clock(), party=party)

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
        run of the registry call from the party), then the challenge is spent (in the database,
        once over every instance) and its answer checked, and the prepared enrollment is stored for
        any instance to relay and confirm. Nothing is written on chain. ``active_from_ms`` None: the
        enrollment block's time (0 on chain).
        """
        now = self.clock()
        checked = verify_certificate(self.registry, certificate_pem, ca_certificate_pem, now)
        attested = check_attestation(
            checked,
            party,
            birth_attestation,
            possession_signature,
            chain_id=self.chain.chain_id,
            registry_address=self.registry.contract.address,
        )
        verified = checked.verified
        active_from = check_active_from(verified, active_from_ms)
        fn_name, args = enroll_call(verified, attested, active_from)
        fn = self._fn(fn_name, args)
        gas = self._dry_run(fn, party, verified.device_id)
        self._spend_challenge(party, challenge_nonce, pop_signature, checked.cert, now)
        prepared = PreparedEnrollment(
            party=party,
            device_id=verified.device_id,
            scheme=verified.scheme,
            fn_name=fn_name,
            args=args,
            data=self.registry.contract.encode_abi(fn_name, args=list(args)),
            cert_fingerprint=verified.fingerprint,
            ca_key_hash=verified.ca_key_hash,
            active_from_ms=active_from,
            expires_at=now + PREPARED_TTL,
        )
        transaction = self._transaction(fn, fn_name, party, gas)
        self.prepared.save(prepared, now)
        return prepared, transaction

    def _spend_challenge(
        self, party: str, challenge_nonce: str, pop_signature: str, cert: x509.Certificate, now: dt.datetime
    ) -> None:
        """Spend the challenge ``party`` asked for and check the device's answer to it (``pop.*``)."""
        nonce = hex_bytes(challenge_nonce, "challenge_nonce", length=32, code="pop.bad_challenge")
        challenge = self.book.redeem(nonce, now, party=party)  # pop.unknown_challenge: unknown, used, other's
        try:
            verify_proof_of_possession(
                cert=cert,
                challenge=challenge,
                signature=hex_bytes(pop_signature, "pop_signature", code="pop.failed"),
                now=now,
                expected_audience=self.audience,
                max_age=POP_MAX_AGE,
            )
        except CertificateError as e:  # StaleChallenge and ProofOfPossessionFailed included
            raise refused(e) from e

    def _transaction(self, fn: ContractFunction, fn_name: str, party: str, gas: int) -> dict[str, Any]:
        """The EIP-1559 transaction of ``fn`` from ``party`` for it to sign: its next nonce, gas, fees."""
        chain = self.chain
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
        return transaction

    # -------------------------------------------------------------- 3. relay / confirm

    def relay(self, party: str, device_id: str, signed_transaction: str) -> str:
        """Send the party's signed copy of the prepared transaction; its hash.

        Only the exact transaction prepared for this party and device is relayed, and only
        if a dry run from the party passes now, so nothing reverting is ever mined.
        """
        prepared = self._prepared_for(party, device_id)
        raw = hex_bytes(signed_transaction, "signed_transaction", code="enroll.bad_transaction")
        check_signed_transaction(
            raw,
            party=party,
            registry_address=self.registry.contract.address,
            data=prepared.data,
            chain_id=self.chain.chain_id,
        )
        self._dry_run(self._fn(prepared.fn_name, prepared.args), party, device_id)
        chain = self.chain
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
        hex_bytes(tx_hash, "tx_hash", length=32, code="enroll.bad_transaction")
        chain = self.chain
        try:
            result = chain.wait(tx_hash, timeout=self.confirm_timeout, context="enrollment")
        except TransactionTimeout as e:
            raise EnrollmentConflict(
                f"{tx_hash} is not mined yet (waited {self.confirm_timeout:.0f} s); call confirm again later",
                code="enroll.pending",
            ) from e
        except ContractRevert as e:
            raise revert_refusal(e, party, device_id) from e
        tx = chain.request(lambda: chain.w3.eth.get_transaction(HexBytes(tx_hash)), context="enrollment")
        if to_checksum_address(tx["from"]) != party:
            raise EnrollmentForbidden(
                f"{tx_hash} was sent by {to_checksum_address(tx['from'])}, not by you ({party})",
                code="enroll.not_yours",
            )
        enrolled = self._enrolled_event(result.receipt, device_id, tx_hash)
        prepared = self.prepared.get(party, device_id)  # prepared here or on another instance
        if prepared is not None and bytes(enrolled["args"]["certFingerprint"]) != prepared.cert_fingerprint:
            raise EnrollmentRefused(
                f"{tx_hash} enrolled {device_id!r} with another certificate than the one verified here",
                code="enroll.mismatch",
            )
        self.mirror.refresh()
        if prepared is not None:
            self.prepared.discard(party, device_id)
        return {
            "tx_hash": result.tx_hash,
            "block_number": result.block_number,
            "verified_here": prepared is not None,
        }

    def _enrolled_event(self, receipt: Any, device_id: str, tx_hash: str) -> Any:
        """The registry's ``DeviceEnrolled`` event of ``device_id`` in ``receipt``; refused
        (``enroll.not_in_transaction``) when there is none."""
        did = device_id_hash(device_id)
        address = self.registry.contract.address
        events = self.registry.contract.events.DeviceEnrolled().process_receipt(receipt, errors=DISCARD)
        found = [ev for ev in events if bytes(ev["args"]["deviceId"]) == did and ev["address"] == address]
        if not found:
            raise EnrollmentRefused(
                f"{tx_hash} did not enroll device {device_id!r} in the DeviceRegistry {address}",
                code="enroll.not_in_transaction",
            )
        return found[0]

    # -------------------------------------------------------------- views

    def view(self, device_id: str) -> dict[str, Any]:
        """The registry's record (from the chain, or the mirror when the chain is down) and the ledger's."""
        return device_view(self.registry, self.engine, device_id)

    # -------------------------------------------------------------- internals

    def _fn(self, fn_name: str, args: tuple[Any, ...]) -> ContractFunction:
        fn: ContractFunction = self.registry.contract.functions[fn_name](*args)
        return fn

    def _dry_run(self, fn: ContractFunction, party: str, device_id: str) -> int:
        try:
            return self.chain.estimate_gas(fn, sender=party)
        except ContractRevert as e:
            raise revert_refusal(e, party, device_id) from e

    def _prepared_for(self, party: str, device_id: str) -> PreparedEnrollment:
        prepared = self.prepared.get(party, device_id)
        if prepared is None or prepared.expires_at < self.clock():
            raise EnrollmentConflict(
                f"no enrollment of {device_id!r} by {party} is prepared (or it lapsed after "
                f"{int(PREPARED_TTL.total_seconds() // 60)} minutes): POST /v1/devices first",
                code="enroll.not_prepared",
            )
        return prepared
