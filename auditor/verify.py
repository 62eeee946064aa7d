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

from collections.abc import Sequence
from dataclasses import dataclass

from eth_utils import to_checksum_address
from web3.types import BlockIdentifier

from auditor.bundle import ProofBundle, deployment_domain
from auditor.chain_reads import ChainReader, HeadReads, RunReads, read_chain
from auditor.checks import (
    BATCH_ANCHORED_TOPIC,
    check_anchor_tx,
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
    DeploymentMismatch,
    DeviceNotActive,
    DeviceNotEnrolled,
    DigestMismatch,
    InclusionError,
    SignatureInvalid,
    UnknownBatch,
    VerificationError,
)
from contracts.chain import Chain
from contracts.deployment import Deployment
from contracts.errors import ContractRevert
from contracts.registry import (
    AnchoredBatch,
    DeviceRecord,
    ReadingAnchorClient,
    reading_tuple,
    verify_reading_on_chain,
)
from device_attestation.keys import Scheme
from device_attestation.merkle import leaf_hash, process_proof
from device_attestation.reading import reading_struct

__all__ = [
    "BATCH_ANCHORED_TOPIC",
    "BundleVerifier",
    "Verdict",
    "VerifiedReading",
    "verify_bundle",
    "verify_bundle_on_chain",
]


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


#: What :meth:`BundleVerifier.verify_many` gives for one bundle: what it establishes, or why not.
Verdict = VerifiedReading | VerificationError


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
        anchor_fns = self._anchor.contract.functions
        registry_address = str(read_chain(chain, lambda: chain.call(anchor_fns.registry())))
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
        self._reader = ChainReader(chain, self._anchor, registry_address)

    # ------------------------------------------------------------------ chain reads

    def _head(self) -> int:
        return self._reader.head()

    def read_batch(self, batch_id: int, *, block: BlockIdentifier = "latest") -> AnchoredBatch:
        """The anchored batch ``batch_id``; :class:`UnknownBatch` when there is none."""
        return self._reader.read_batch(batch_id, block=block)

    def read_device(self, device_id: str, *, block: BlockIdentifier = "latest") -> DeviceRecord:
        """The registry's record of ``device_id`` (scheme NONE when not enrolled)."""
        return self._reader.read_device(device_id, block=block)

    # ------------------------------------------------------------------ verdicts

    def verify(self, bundle: ProofBundle, *, min_confirmations: int = 0) -> VerifiedReading:
        """Verify ``bundle`` with local code and the chain's state; see :func:`verify_bundle`."""
        _check_min_confirmations(min_confirmations)
        check_claims(bundle, self.domain)
        digest = check_digest(bundle, self.domain)
        # every contract read below is of this one block: a consistent view
        return self._verify_against(bundle, digest, HeadReads(self._reader, self._head()), min_confirmations)

    def verify_many(
        self, bundles: Sequence[ProofBundle], *, min_confirmations: int = 0, batching: bool | None = None
    ) -> list[Verdict]:
        """Verify ``bundles`` as one run: the verdict of each, in order, as :meth:`verify` gives it.

        The same checks in the same order as :meth:`verify` one bundle at a time, so each verdict
        (what the bundle establishes, or the :class:`VerificationError` it fails with, its class,
        code and message) is the one :meth:`verify` would give. The chain's state is read at one
        head for the whole run, and each batch, device, anchoring receipt and block once
        (:class:`auditor.chain_reads.RunReads`), in JSON-RPC batch requests where the node takes
        them (``batching``: None decides by the provider; False reads one call at a time). Nothing
        read is kept after the run. :class:`contracts.errors.ChainError` when the chain cannot be
        reached: no verdict at all.
        """
        _check_min_confirmations(min_confirmations)
        out: list[Verdict | bytes] = []
        for bundle in bundles:
            try:
                check_claims(bundle, self.domain)
                out.append(check_digest(bundle, self.domain))
            except VerificationError as e:
                out.append(e)
        reads = RunReads(self._reader, self._head(), batching=batching)
        reads.prefetch(b for b, d in zip(bundles, out, strict=True) if isinstance(d, bytes))
        for i, (bundle, digest) in enumerate(zip(bundles, out, strict=True)):
            if isinstance(digest, bytes):
                try:
                    out[i] = self._verify_against(bundle, digest, reads, min_confirmations)
                except VerificationError as e:
                    out[i] = e
        return [v for v in out if not isinstance(v, bytes)]

    def _verify_against(
        self, bundle: ProofBundle, digest: bytes, reads: HeadReads, min_confirmations: int
    ) -> VerifiedReading:
        """The checks after the digest's, against the chain state ``reads`` gives."""
        batch = reads.batch(bundle.batch_id)
        check_root(bundle, batch)
        check_inclusion(bundle, digest, batch.root)
        device = reads.device(bundle.reading.device_id)
        check_device(bundle, device, batch.anchored_at)
        scheme = check_signature(bundle, digest, device)
        block = self._check_anchor_tx(bundle, batch.root, reads, min_confirmations)
        return VerifiedReading(
            digest=digest,
            device_id=bundle.reading.device_id,
            seq=bundle.reading.seq,
            batch_id=bundle.batch_id,
            root=batch.root,
            anchor_block=block,
            anchored_at=batch.anchored_at,
            scheme=scheme,
            confirmations=reads.head - block,
        )

    def _check_anchor_tx(
        self, bundle: ProofBundle, root: bytes, reads: HeadReads, min_confirmations: int
    ) -> int:
        return check_anchor_tx(
            bundle,
            root=root,
            anchor=self.domain.verifying_contract,
            chain_id=self.chain.chain_id,
            receipt=reads.receipt(bundle.anchor_tx),
            block_hash=reads.block_hash,
            head=reads.head,
            min_confirmations=min_confirmations,
        )

    def verify_on_chain(self, bundle: ProofBundle, *, min_confirmations: int = 0) -> bytes:
        """Verify ``bundle`` with the contract's code; see :func:`verify_bundle_on_chain`."""
        _check_min_confirmations(min_confirmations)
        check_claims(bundle, self.domain)
        head = self._head()
        struct = reading_struct(bundle.reading)
        on_chain_digest = bytes(
            self._reader.read(
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
            digest = self._reader.read(
                lambda: verify_reading_on_chain(
                    self._anchor, struct, bundle.signature, bundle.batch_id, list(bundle.proof), block=head
                )
            )
        except ContractRevert as e:
            raise self._explain_revert(e, bundle, on_chain_digest, batch, head) from e
        device = self.read_device(bundle.reading.device_id, block=head)
        check_scheme_claim(bundle, device)
        self._check_anchor_tx(bundle, batch.root, HeadReads(self._reader, head), min_confirmations)
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


def _check_min_confirmations(min_confirmations: int) -> None:
    if min_confirmations < 0:
        raise ValueError(f"min_confirmations must be >= 0, got {min_confirmations}")


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
