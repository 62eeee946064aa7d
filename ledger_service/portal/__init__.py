"""The web portal (issue 7): server-rendered pages for auditors, factories and banks, at ``/portal``.

Mounted by :func:`ledger_service.api.create_app`; see ``docs/portal.md``.
"""

from __future__ import annotations

from ledger_service.portal.routes import router

__all__ = ["router"]
