"""The one map from errors to HTTP statuses (``ledger_service.api.errors``): every case the API and the
portal answer keeps its status, and no error class names its own."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import ledger_service
from contracts.errors import ChainError
from device_attestation.errors import CertificateError
from ledger_service.api.errors import http_status
from ledger_service.auth import AuthenticationFailed, NotASession, RoleRequired
from ledger_service.credit_desk.errors import (
    AccessLogError,
    AccessRefused,
    FinanceError,
    FinanceNotDeployed,
    PublishRefused,
    UnknownProfile,
)
from ledger_service.enrollment.errors import (
    EnrollmentConflict,
    EnrollmentForbidden,
    EnrollmentRefused,
    TooManyChallenges,
    refused,
)
from ledger_service.errors import LedgerError, NotFound, StoreError
from ledger_service.jsonio import BodyDecodeError
from ledger_service.tx_relay import RelayConflict, RelayForbidden, RelayRefused
from supet_base.errors import SupetError

CASES: list[tuple[BaseException, int]] = [
    (LedgerError("x"), 400),
    (NotFound("x"), 404),
    (StoreError("x"), 503),
    (ChainError("x"), 503),
    (AuthenticationFailed("x", code="auth.bad_token"), 401),
    (NotASession("x"), 400),
    (RoleRequired("x", role="ENROLLER_ROLE", party="0x0"), 403),
    (BodyDecodeError("x"), 400),
    (EnrollmentRefused("x", code="enroll.active_from"), 422),
    (refused(CertificateError("x", code="birth.signature")), 422),
    (EnrollmentConflict("x", code="enroll.device_exists"), 409),
    (EnrollmentConflict("x", code="enroll.pending"), 409),
    (EnrollmentForbidden("x", code="enroll.not_yours"), 403),
    (TooManyChallenges("x", code="enroll.too_many_challenges"), 429),
    (FinanceError("x", code="finance.bad_query"), 400),
    (AccessRefused("x", code="finance.no_consent"), 403),
    (FinanceNotDeployed("x"), 404),
    (AccessLogError("x", code="access_log.unknown_entry"), 409),
    (PublishRefused("x", code="finance.publish.not_a_profile"), 400),
    (UnknownProfile("x", code="finance.publish.unknown_profile"), 404),
    (RelayRefused("x", code="finance.relay_mismatch"), 400),
    (RelayConflict("x", code="finance.reverts"), 409),
    (RelayForbidden("x", code="finance.relay_signer"), 403),
]


@pytest.mark.parametrize(("error", "status"), CASES, ids=lambda v: getattr(v, "code", str(v)))
def test_each_error_has_its_status(error: BaseException, status: int) -> None:
    assert http_status(error) == status


def _subclasses(cls: type) -> set[type]:
    found = set(cls.__subclasses__())
    for sub in list(found):
        found |= _subclasses(sub)
    return found


def test_no_error_class_names_its_own_status() -> None:
    """The status lives in the map only: an ``http_status`` attribute would not be read any more."""
    for info in pkgutil.walk_packages(ledger_service.__path__, "ledger_service."):
        if ".migrations" not in info.name:  # alembic scripts run only under alembic
            importlib.import_module(info.name)
    offenders = [c.__qualname__ for c in _subclasses(SupetError) if hasattr(c, "http_status")]
    assert offenders == []
    assert len(_subclasses(LedgerError)) > 20  # the walk imported the service's errors
