"""The verifier's errors: one :class:`VerificationError` subclass per check of :data:`CHECKS`.

Every error has a stable ``code`` (``verify.*``) and names the check it belongs to (``check``);
those that compare carry the ``expected`` and ``computed`` values.
"""

from __future__ import annotations

from typing import ClassVar, Final

from auditor._internal import hex0x
from contracts.registry import device_id_hash
from supet_base.errors import SupetError

__all__ = [
    "CHECKS",
    "MAX_CLOCK_SKEW_MS",
    "AnchorTxMismatch",
    "AnchoringTimeInvalid",
    "BundleFormatError",
    "DeploymentMismatch",
    "DeviceNotActive",
    "DeviceNotEnrolled",
    "DigestMismatch",
    "InclusionError",
    "InsufficientConfirmations",
    "RootMismatch",
    "SignatureInvalid",
    "UnknownBatch",
    "VerificationError",
]

#: The checks of a bundle, in the order they run (the ``check`` of each error names one).
CHECKS: Final = (
    "deployment",
    "digest",
    "batch",
    "root",
    "inclusion",
    "device active",
    "signature",
    "anchor tx",
)


class VerificationError(SupetError):
    """A proof bundle did not verify. ``code`` is stable; ``check`` names the failed check."""

    code = "verify.error"
    #: The entry of :data:`CHECKS` this error belongs to ("" when none does).
    check: ClassVar[str] = ""


class BundleFormatError(VerificationError):
    """The bundle is not a well-formed Reading v1 proof bundle. ``field`` names the offending field."""

    code = "verify.bundle_format"
    check = "bundle"

    def __init__(self, message: str, *, field: str = "") -> None:
        where = field or "bundle"
        super().__init__(f"{where}: {message}")
        self.field = field


class DeploymentMismatch(VerificationError):
    """The bundle (or the chain) is not the auditor's deployment: other chain id or anchor contract.

    ``expected`` is what the auditor's deployment file says, ``claimed`` what the bundle
    (or the node) says.
    """

    code = "verify.deployment_mismatch"
    check = "deployment"

    def __init__(self, message: str, *, what: str, expected: object, claimed: object) -> None:
        super().__init__(message)
        self.what = what
        self.expected = expected
        self.claimed = claimed


class DigestMismatch(VerificationError):
    """The digest recomputed from the reading is not the bundle's ``digest``.

    ``expected`` is the bundle's digest, ``computed`` the one recomputed from ``reading``
    under the deployment's EIP-712 domain.
    """

    code = "verify.digest_mismatch"
    check = "digest"

    def __init__(
        self, *, expected: bytes, computed: bytes, by: str = "recomputed locally", of: str = "the bundle"
    ) -> None:
        super().__init__(
            f"{of}'s digest is {hex0x(expected)} but the reading's EIP-712 digest ({by}) is "
            f"{hex0x(computed)}: the reading or the digest was altered, or was made for another "
            "chain id or anchor contract"
        )
        self.expected = expected
        self.computed = computed


class UnknownBatch(VerificationError):
    """No batch with the bundle's ``batch_id`` is anchored on the deployment's anchor contract."""

    code = "verify.unknown_batch"
    check = "batch"

    def __init__(self, *, batch_id: int, batch_count: int | None, anchor: str) -> None:
        have = f"it has {batch_count} batch(es)" if batch_count is not None else "its batch count is unknown"
        super().__init__(
            f"batch {batch_id} is not anchored on ReadingAnchor {anchor} ({have}): the bundle names "
            "a batch that does not exist on this chain, or the anchoring is not mined yet"
        )
        self.batch_id = batch_id
        self.batch_count = batch_count


class RootMismatch(VerificationError):
    """The root anchored for ``batch_id`` is not the bundle's ``root``.

    ``expected`` is the on-chain root, ``computed`` the bundle's.
    """

    code = "verify.root_mismatch"
    check = "root"

    def __init__(self, *, batch_id: int, expected: bytes, computed: bytes) -> None:
        super().__init__(
            f"batch {batch_id} is anchored with root {hex0x(expected)} but the bundle says "
            f"{hex0x(computed)}: the bundle names the wrong batch or carries a forged root"
        )
        self.batch_id = batch_id
        self.expected = expected
        self.computed = computed


class InclusionError(VerificationError):
    """The inclusion proof does not lead from the reading's leaf to the anchored root.

    ``expected`` is the anchored root, ``computed`` the root the proof leads to.
    """

    code = "verify.not_included"
    check = "inclusion"

    def __init__(self, *, batch_id: int, digest: bytes, expected: bytes, computed: bytes) -> None:
        super().__init__(
            f"the proof does not include digest {hex0x(digest)} in batch {batch_id}: expected root "
            f"{hex0x(expected)}, computed {hex0x(computed)}; the proof or the reading was altered, or "
            "the reading belongs to another batch"
        )
        self.batch_id = batch_id
        self.digest = digest
        self.expected = expected
        self.computed = computed


class DeviceNotEnrolled(VerificationError):
    """The device registry has no device with the reading's ``device_id``."""

    code = "verify.device_not_enrolled"
    check = "device active"

    def __init__(self, *, device_id: str) -> None:
        super().__init__(
            f"device {device_id!r} (id hash {hex0x(device_id_hash(device_id))}) is not enrolled in the "
            "device registry: its readings cannot be attributed to any key"
        )
        self.device_id = device_id


class DeviceNotActive(VerificationError):
    """The device was not active at the reading's ``ts_ms`` (before ``active_from``, or revoked).

    The rule is the registry's: ``active_from <= ts_ms`` and (``revoked_at == 0`` or
    ``ts_ms < revoked_at``). ``revoked_at`` is 0 when the device is not revoked.
    """

    code = "verify.device_not_active"
    check = "device active"

    def __init__(self, *, device_id: str, ts_ms: int, active_from: int, revoked_at: int) -> None:
        if ts_ms < active_from:
            why = f"its readings count from {active_from} (active from), {active_from - ts_ms} ms later"
        else:
            why = f"it was revoked at {revoked_at}; readings measured at or after that time do not count"
        super().__init__(f"device {device_id!r} was not active at ts_ms {ts_ms}: {why}")
        self.device_id = device_id
        self.ts_ms = ts_ms
        self.active_from = active_from
        self.revoked_at = revoked_at


#: How far a reading's time may lie after its batch's anchoring (``ReadingAnchor.MAX_CLOCK_SKEW_MS``).
MAX_CLOCK_SKEW_MS = 60_000


class AnchoringTimeInvalid(VerificationError):
    """The reading is not bound to its anchoring time (``ReadingAnchor``'s rule, issue 12.8): its
    ``ts_ms`` lies after the batch's anchoring (``anchored_at_ms``) plus :data:`MAX_CLOCK_SKEW_MS`,
    or the device is revoked (``revoked_at``) and the batch was anchored at or after the revocation.
    """

    code = "verify.anchoring_time"
    check = "device active"

    def __init__(self, *, device_id: str, ts_ms: int, anchored_at_ms: int, revoked_at: int) -> None:
        if ts_ms > anchored_at_ms + MAX_CLOCK_SKEW_MS:
            why = (
                f"its time lies {ts_ms - anchored_at_ms} ms after its batch was anchored ({anchored_at_ms}): "
                "a batch cannot hold a reading taken after it"
            )
        else:
            why = (
                f"its batch was anchored at {anchored_at_ms}, at or after the device's revocation at "
                f"{revoked_at}: readings anchored after a revocation do not count, whatever time they claim"
            )
        super().__init__(f"reading of device {device_id!r} at ts_ms {ts_ms} does not count: {why}")
        self.device_id = device_id
        self.ts_ms = ts_ms
        self.anchored_at_ms = anchored_at_ms
        self.revoked_at = revoked_at


class SignatureInvalid(VerificationError):
    """The signature is not the registered device key's over the digest.

    ``reason`` keeps the underlying cause's code (``"signature.high_s"``,
    ``"signature.length"``, ``"signature.bad"``, ``"signature.scheme_mismatch"``...).
    """

    code = "verify.signature_invalid"
    check = "signature"

    def __init__(self, message: str, *, device_id: str, scheme: str, reason: str) -> None:
        super().__init__(f"signature of device {device_id!r} ({scheme}) is invalid: {message}")
        self.device_id = device_id
        self.scheme = scheme
        self.reason = reason


class AnchorTxMismatch(VerificationError):
    """``anchor_tx`` is not a canonical, successful transaction that anchored this batch and root."""

    code = "verify.anchor_tx_mismatch"
    check = "anchor tx"

    def __init__(self, message: str, *, anchor_tx: bytes) -> None:
        super().__init__(f"anchor tx {hex0x(anchor_tx)} {message}")
        self.anchor_tx = anchor_tx


class InsufficientConfirmations(VerificationError):
    """The anchoring is valid but has fewer blocks on top than required. Retry later."""

    code = "verify.insufficient_confirmations"
    check = "anchor tx"

    def __init__(self, *, anchor_tx: bytes, block: int, confirmations: int, required: int) -> None:
        super().__init__(
            f"anchor tx {hex0x(anchor_tx)} in block {block} has {confirmations} block(s) on top; "
            f"{required} required: wait for more blocks and verify again"
        )
        self.anchor_tx = anchor_tx
        self.block = block
        self.confirmations = confirmations
        self.required = required
