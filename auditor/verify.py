"""The auditor's verifier: check a Reading v1 proof bundle with the chain alone.

A proof bundle (``reading-v1.md`` section 6) claims that a signed reading was
anchored in batch ``batch_id`` of one deployment. :func:`verify_bundle` checks
every claim with local code and the chain's state; it trusts the auditor's
deployment file, never the bundle's own ``chain_id`` and ``anchor_contract``,
and never the ledger service. :func:`verify_bundle_on_chain` checks the same
bundle with the contract's own ``ReadingAnchor.verifyReading`` instead of local
cryptography, so the two verdicts can be compared.

The checks, in order (:data:`CHECKS`), each with its typed error::

    deployment     DeploymentMismatch   bundle's chain / anchor contract vs the deployment file
    digest         DigestMismatch       EIP-712 digest recomputed from `reading` vs `digest`
    batch          UnknownBatch         `batch_id` anchored on the anchor contract
    root           RootMismatch         the anchored root vs the bundle's `root`
    inclusion      InclusionError       `proof` leads from the digest's leaf to the root
    device active  DeviceNotEnrolled, DeviceNotActive, AnchoringTimeInvalid
                                        the registry knows the device; active at `ts_ms`;
                                        `ts_ms` no later than the anchoring (+ skew) and,
                                        if revoked, the batch anchored before the revocation
    signature      SignatureInvalid     by the registered key, in the registered scheme
    anchor tx      AnchorTxMismatch, InsufficientConfirmations
                                        `anchor_tx` emitted BatchAnchored(batch_id, root), is
                                        canonical, and has enough blocks on top

Device and signature checks run in the contract's order (enrolled, active,
signature), so the local and on-chain verdicts name the same failure even when a
bundle has several faults. Every error derives from :class:`VerificationError`;
a chain that cannot be reached raises :class:`contracts.errors.ChainError`
instead (no verdict was reached).

The bundle format is :mod:`auditor.bundle`, the errors :mod:`auditor.errors`, the chain-free checks
:mod:`auditor.checks`; the one place bundles are assembled is :func:`auditor.bundle.build_bundle`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, TypeVar

import requests
from eth_utils import keccak, to_checksum_address
from web3.exceptions import BadFunctionCallOutput, BlockNotFound
from web3.types import BlockIdentifier

from auditor._internal import hex0x
from auditor.bundle import ProofBundle, deployment_domain
from auditor.checks import (
    check_claims,
    check_device,
    check_digest,
    check_inclusion,
    check_root,
    check_scheme_claim,
    check_signature,
    registered_scheme,
)
from auditor.errors import (
    AnchoringTimeInvalid,
    AnchorTxMismatch,
    DeploymentMismatch,
    DeviceNotActive,
    DeviceNotEnrolled,
    DigestMismatch,
    InclusionError,
    InsufficientConfirmations,
    SignatureInvalid,
    UnknownBatch,
    VerificationError,
)
from contracts.chain import Chain
from contracts.deployment import Deployment
from contracts.errors import ChainError, ContractRevert
from contracts.registry import (
    AnchoredBatch,
    DeviceRecord,
    ReadingAnchorClient,
    device_id_hash,
    reading_tuple,
    verify_reading_on_chain,
)
from device_attestation.keys import Scheme
from device_attestation.merkle import leaf_hash, process_proof
from device_attestation.reading import reading_struct

__all__ = [
    "BATCH_ANCHORED_TOPIC",
    "BundleVerifier",
    "VerifiedReading",
    "verify_bundle",
    "verify_bundle_on_chain",
]

#: The topic of ``BatchAnchored(uint256 indexed batchId, bytes32 indexed root, uint64 count,
#: address indexed by)``.
BATCH_ANCHORED_TOPIC: Final = keccak(b"BatchAnchored(uint256,bytes32,uint64,address)")

_T = TypeVar("_T")


@dataclass(frozen=True, kw_only=True)
class VerifiedReading:
    """What a verified bundle establishes.

    ``confirmations`` counts the blocks on top of ``anchor_block`` (0 when the
    anchoring is in the latest block), as :meth:`contracts.chain.Chain.wait` does.
    ``anchored_at`` is the anchoring block's time (Unix seconds), as the contract keeps it.
    """

    digest: bytes
    device_id: str
    seq: int
    batch_id: int
    root: bytes
    anchor_block: int
    anchored_at: int
    scheme: Scheme
    confirmations: int


class BundleVerifier:
    """Verifies bundles against one trusted deployment on one chain.

    Construction reads the anchor's registry address once (and checks it against the
    deployment file); reuse one verifier to check many bundles. Raises
    :class:`DeploymentMismatch` when the chain is not the deployment's chain, the
    anchor has no code, or the deployment's DeviceRegistry is not the anchor's.
    """

    def __init__(self, *, chain: Chain, deployment: Deployment) -> None:
        if chain.chain_id != deployment.chain_id:
            raise DeploymentMismatch(
                f"the node at {chain.rpc} serves chain {chain.chain_id} but the deployment file is "
                f"for chain {deployment.chain_id}: connect to the deployment's chain",
                what="chain_id",
                expected=deployment.chain_id,
                claimed=chain.chain_id,
            )
        self.chain = chain
        self.deployment = deployment
        self.domain = deployment_domain(deployment)
        self._anchor = ReadingAnchorClient(chain, deployment)
        registry_address = str(self._read(lambda: chain.call(self._anchor.contract.functions.registry())))
        listed = deployment.contracts.get("DeviceRegistry")
        if listed is not None and to_checksum_address(listed) != registry_address:
            raise DeploymentMismatch(
                f"the deployment file lists DeviceRegistry {listed} but ReadingAnchor "
                f"{self.domain.verifying_contract} consults {registry_address}: the file is "
                "inconsistent; fetch the deployment file again",
                what="DeviceRegistry",
                expected=listed,
                claimed=registry_address,
            )
        self.registry_address = registry_address
        self._registry = chain.contract("DeviceRegistry", registry_address)

    # ------------------------------------------------------------------ chain reads

    def _read(self, thunk: Callable[[], _T]) -> _T:
        try:
            return thunk()
        except BadFunctionCallOutput as e:
            raise DeploymentMismatch(
                f"a contract of the deployment answered nothing on chain {self.chain.chain_id} "
                f"({e}): there is no code at its address; the chain was reset or the deployment "
                "file is from another network",
                what="code",
                expected="contract code",
                claimed="none",
            ) from e
        except (requests.ConnectionError, requests.Timeout, ConnectionError, TimeoutError) as e:
            raise ChainError(f"the chain at {self.chain.rpc} is unreachable ({e})") from e

    def _head(self) -> int:
        return self._read(self.chain.block_number)

    def read_batch(self, batch_id: int, *, block: BlockIdentifier = "latest") -> AnchoredBatch:
        """The anchored batch ``batch_id``; :class:`UnknownBatch` when there is none."""
        try:
            return self._read(lambda: self._anchor.batch(batch_id, block=block))
        except ContractRevert as e:
            if e.error_name != "ReadingAnchorUnknownBatch":
                raise
            count: int | None
            try:
                count = int(self.chain.call(self._anchor.contract.functions.batchCount(), block=block))
            except ContractRevert:
                count = None
            raise UnknownBatch(
                batch_id=batch_id, batch_count=count, anchor=self.domain.verifying_contract
            ) from e

    def read_device(self, device_id: str, *, block: BlockIdentifier = "latest") -> DeviceRecord:
        """The registry's record of ``device_id`` (scheme NONE when not enrolled)."""
        did = device_id_hash(device_id)
        d = self._read(lambda: self.chain.call(self._registry.functions.device(did), block=block))
        return DeviceRecord.from_call(did, d)

    # ------------------------------------------------------------------ anchor tx

    def _check_anchor_tx(self, bundle: ProofBundle, root: bytes, head: int, min_confirmations: int) -> int:
        tx = bundle.anchor_tx
        receipt = self._read(lambda: self.chain.receipt(hex0x(tx)))
        if receipt is None:
            raise AnchorTxMismatch(
                f"has no receipt on chain {self.chain.chain_id}: it does not exist, is not mined yet, "
                "or was dropped by a reorganisation",
                anchor_tx=tx,
            )
        if receipt["status"] != 1:
            raise AnchorTxMismatch("failed (status 0): it anchored nothing", anchor_tx=tx)
        anchor = self.domain.verifying_contract.lower()
        wanted = (BATCH_ANCHORED_TOPIC, bundle.batch_id.to_bytes(32, "big"), root)
        found = any(
            str(log["address"]).lower() == anchor
            and not log.get("removed", False)
            and tuple(bytes(t) for t in log["topics"][:3]) == wanted
            for log in receipt["logs"]
        )
        if not found:
            raise AnchorTxMismatch(
                f"emitted no BatchAnchored(batchId={bundle.batch_id}, root={hex0x(root)}) from "
                f"ReadingAnchor {self.domain.verifying_contract}: it is another transaction",
                anchor_tx=tx,
            )
        number = int(receipt["blockNumber"])
        receipt_hash = bytes(receipt["blockHash"])
        try:
            # Chain has no public block read; its _rpc serialises the embedded chain's I/O and
            # maps transport errors, as the ledger service's own raw reads do.
            block = self._read(lambda: self.chain.block(number))
        except BlockNotFound:
            block = None
        if block is None or bytes(block["hash"]) != receipt_hash:
            raise AnchorTxMismatch(
                f"was mined in block {number} ({hex0x(receipt_hash)}) which is no longer on the "
                "canonical chain: wait for the service to anchor the batch again",
                anchor_tx=tx,
            )
        if number > head:
            raise AnchorTxMismatch(
                f"is in block {number}, after block {head} the batch was read at: the chain "
                "reorganised during verification; verify again",
                anchor_tx=tx,
            )
        confirmations = head - number
        if confirmations < min_confirmations:
            raise InsufficientConfirmations(
                anchor_tx=tx, block=number, confirmations=confirmations, required=min_confirmations
            )
        return number

    # ------------------------------------------------------------------ verdicts

    def verify(self, bundle: ProofBundle, *, min_confirmations: int = 0) -> VerifiedReading:
        """Verify ``bundle`` with local code and the chain's state; see :func:`verify_bundle`."""
        if min_confirmations < 0:
            raise ValueError(f"min_confirmations must be >= 0, got {min_confirmations}")
        check_claims(bundle, self.domain)
        digest = check_digest(bundle, self.domain)
        head = self._head()  # every read below is of this one block: a consistent view
        batch = self.read_batch(bundle.batch_id, block=head)
        check_root(bundle, batch)
        check_inclusion(bundle, digest, batch.root)
        device = self.read_device(bundle.reading.device_id, block=head)
        check_device(bundle, device, batch.anchored_at)
        scheme = check_signature(bundle, digest, device)
        block = self._check_anchor_tx(bundle, batch.root, head, min_confirmations)
        return VerifiedReading(
            digest=digest,
            device_id=bundle.reading.device_id,
            seq=bundle.reading.seq,
            batch_id=bundle.batch_id,
            root=batch.root,
            anchor_block=block,
            anchored_at=batch.anchored_at,
            scheme=scheme,
            confirmations=head - block,
        )

    def verify_on_chain(self, bundle: ProofBundle, *, min_confirmations: int = 0) -> bytes:
        """Verify ``bundle`` with the contract's code; see :func:`verify_bundle_on_chain`."""
        if min_confirmations < 0:
            raise ValueError(f"min_confirmations must be >= 0, got {min_confirmations}")
        check_claims(bundle, self.domain)
        head = self._head()
        struct = reading_struct(bundle.reading)
        on_chain_digest = bytes(
            self._read(
                lambda: self.chain.call(
                    self._anchor.contract.functions.digest(reading_tuple(struct)), block=head
                )
            )
        )
        if on_chain_digest != bundle.digest:
            raise DigestMismatch(
                expected=bundle.digest, computed=on_chain_digest, by="ReadingAnchor.digest on chain"
            )
        batch = self.read_batch(bundle.batch_id, block=head)
        check_root(bundle, batch)
        try:
            digest = self._read(
                lambda: verify_reading_on_chain(
                    self._anchor, struct, bundle.signature, bundle.batch_id, list(bundle.proof), block=head
                )
            )
        except ContractRevert as e:
            raise self._explain_revert(e, bundle, on_chain_digest, batch, head) from e
        device = self.read_device(bundle.reading.device_id, block=head)
        check_scheme_claim(bundle, device)
        self._check_anchor_tx(bundle, batch.root, head, min_confirmations)
        return digest

    def _explain_revert(
        self, e: ContractRevert, bundle: ProofBundle, digest: bytes, batch: AnchoredBatch, head: int
    ) -> VerificationError:
        device_id = bundle.reading.device_id
        name = e.error_name
        if name == "ReadingAnchorNotIncluded":
            computed = process_proof(leaf_hash(digest), bundle.proof)
            return InclusionError(
                batch_id=bundle.batch_id, digest=digest, expected=batch.root, computed=computed
            )
        if name == "ReadingAnchorUnknownBatch":
            return UnknownBatch(
                batch_id=bundle.batch_id, batch_count=None, anchor=self.domain.verifying_contract
            )
        if name == "ReadingAnchorUnknownDevice":
            return DeviceNotEnrolled(device_id=device_id)
        if name == "ReadingAnchorDeviceNotActive":
            record = self.read_device(device_id, block=head)
            return DeviceNotActive(
                device_id=device_id,
                ts_ms=bundle.reading.ts_ms,
                active_from=record.active_from_ms,
                revoked_at=record.revoked_at_ms,
            )
        if name in ("ReadingAnchorReadingAfterAnchoring", "ReadingAnchorAnchoredAfterRevocation"):
            record = self.read_device(device_id, block=head)
            return AnchoringTimeInvalid(
                device_id=device_id,
                ts_ms=bundle.reading.ts_ms,
                anchored_at_ms=batch.anchored_at * 1000,
                revoked_at=record.revoked_at_ms,
            )
        if name in ("ReadingAnchorBadSignature", "ReadingAnchorInvalidSignatureLength"):
            record = self.read_device(device_id, block=head)
            reason = "signature.bad" if name == "ReadingAnchorBadSignature" else "signature.length"
            return SignatureInvalid(
                f"ReadingAnchor.verifyReading refused it ({e.message})",
                device_id=device_id,
                scheme=registered_scheme(record).value,
                reason=reason,
            )
        return VerificationError(
            f"ReadingAnchor.verifyReading refused the reading with an unexpected error: {e.message}",
            code="verify.contract_revert",
        )


def verify_bundle(
    bundle: ProofBundle, *, chain: Chain, deployment: Deployment, min_confirmations: int = 0
) -> VerifiedReading:
    """Verify a proof bundle with local code and the chain's state; return what it establishes.

    Preconditions: ``deployment`` is the auditor's own, trusted deployment file (the
    bundle's ``chain_id`` and ``anchor_contract`` are claims checked against it, never
    trusted); ``chain`` serves the deployment's chain (checked: :class:`DeploymentMismatch`);
    ``min_confirmations >= 0`` (``ValueError``).

    Checks, in the order of :data:`CHECKS`: the bundle's deployment claims; the EIP-712
    digest recomputed from ``reading`` under the deployment's domain equals ``digest``;
    batch ``batch_id`` exists and its anchored root is ``root``; ``proof`` includes the
    digest under that root; the device is enrolled in the anchor's registry and active
    at ``ts_ms`` (``activeFrom <= ts < revokedAt``, or not revoked); the signature is the
    registered key's, in the registered scheme (the bundle's ``scheme`` must agree);
    ``anchor_tx`` succeeded, emitted ``BatchAnchored(batch_id, root)`` from the anchor,
    is in a canonical block and has at least ``min_confirmations`` blocks on top.
    Contract state is read at one block (the head when verification starts).

    Raises the :class:`VerificationError` subclass of the first failed check, or
    :class:`contracts.errors.ChainError` when the chain cannot be reached.
    """
    return BundleVerifier(chain=chain, deployment=deployment).verify(
        bundle, min_confirmations=min_confirmations
    )


def verify_bundle_on_chain(
    bundle: ProofBundle, *, chain: Chain, deployment: Deployment, min_confirmations: int = 0
) -> bytes:
    """Verify a proof bundle with ``ReadingAnchor.verifyReading``; return the digest.

    The reading itself (inclusion, device enrolled and active, signature) is judged by
    the contract's code, whose custom errors become the same :class:`VerificationError`
    subclasses :func:`verify_bundle` raises. The bundle's claims the contract does not
    see are checked as :func:`verify_bundle` checks them: deployment, ``digest`` (against
    the contract's ``digest()``), ``root`` (against ``batch()``), ``scheme`` (against the
    registry) and ``anchor_tx``. Same preconditions as :func:`verify_bundle`.
    """
    verifier = BundleVerifier(chain=chain, deployment=deployment)
    return verifier.verify_on_chain(bundle, min_confirmations=min_confirmations)
