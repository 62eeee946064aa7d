"""A JSON response rendered with orjson (large batch answers are the hot path), exact for big integers."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from ledger_service.jsonio import dumps_exact


class FastJSONResponse(JSONResponse):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return dumps_exact(content)
