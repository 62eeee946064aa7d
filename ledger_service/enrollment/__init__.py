"""Device enrollment by its owning party (issue 12): proof-of-possession challenges, the checks of a
device's certificate, birth attestation and proofs of possession, the verified enrollment transaction
for the party to sign, its relay and confirmation, and a device's public record.

``desk.py`` holds :class:`~ledger_service.enrollment.desk.EnrollmentDesk`, the service the API's
``/v1/devices`` routes stand on (built once, in :meth:`ledger_service.service.LedgerService.build`);
``challenges.py`` and ``prepared.py`` its state in the database (open challenges, prepared enrollments:
shared by every instance on the database, kept over restarts), ``checks.py`` the off-chain checks,
``calls.py`` the registry call and the signed transaction's checks, ``device_view.py`` a device's record,
``errors.py`` the refusals."""
