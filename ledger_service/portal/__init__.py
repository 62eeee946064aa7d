"""The web portal (issue 7): server-rendered pages for auditors, factories and banks, at ``/portal``.

Mounted by :func:`ledger_service.api.create_app` (``ledger_service.portal.routes.router``); see
``docs/portal.md``. ``supet party sign-in-message`` signs a sign-in message with a party key.
"""
