"""Errors of the contracts package: building, loading artifacts, talking to a chain."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from supet_base.errors import SupetError


class ContractsError(SupetError):
    """Base of every error about contracts, artifacts and chains."""

    code = "contracts.error"


class BuildError(ContractsError):
    """The contracts could not be compiled."""

    code = "contracts.build"


class ArtifactError(ContractsError):
    """An artifact is missing, unreadable or stale."""

    code = "contracts.artifact"


class DeploymentError(ContractsError):
    """A deployment file is missing or does not match the chain."""

    code = "contracts.deployment"


class ChainError(ContractsError):
    """The chain could not be reached or did not answer in time."""

    code = "chain.unavailable"


class NodeRefused(ChainError):
    """The node answered but refused the request (a nonce too low, a transaction already known...)."""

    code = "chain.refused"


class TransactionTimeout(ChainError):
    """A transaction was sent but no receipt arrived in time."""

    code = "chain.timeout"


class ContractRevert(ContractsError):
    """A call or transaction reverted.

    ``error_name`` names the contract's custom error (``"ReadingAnchorUnknownBatch"``),
    ``args`` holds its arguments by name. A bare revert or a panic has
    ``error_name`` ``"Error"`` / ``"Panic"`` or ``None`` when there is no data.
    ``hint`` says what to do about it (which command fixes the cause) when the error is one
    :data:`contracts.revert.REVERT_HINTS` knows; the message ends with it.
    """

    code = "chain.revert"

    def __init__(
        self,
        message: str,
        *,
        contract: str | None,
        error_name: str | None,
        args: Mapping[str, Any] | None = None,
        data: bytes = b"",
        hint: str | None = None,
    ) -> None:
        super().__init__(message)
        self.contract = contract
        self.error_name = error_name
        self.error_args: dict[str, Any] = dict(args or {})
        self.data = data
        self.hint = hint
