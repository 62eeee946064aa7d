"""Request and response models of the device routes, ``/v1/devices`` (:mod:`.routes.devices`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "ConfirmIn",
    "ConfirmOut",
    "DeviceOut",
    "EnrollmentIn",
    "EnrollmentPreparedOut",
    "LedgerViewOut",
    "PopChallengeOut",
    "RegistryViewOut",
]


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
