"""``BatchAnchored`` events of the ReadingAnchor contract, read a bounded number of blocks at a time."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from contracts.chain import Chain

__all__ = ["LOG_CHUNK", "batch_anchored_logs"]

#: Blocks per eth_getLogs request: nodes cap the range (Besu: ``--rpc-max-logs-range``, 5,000 by default).
LOG_CHUNK = 2_000


def batch_anchored_logs(
    chain: Chain,
    contract: Any,
    *,
    from_block: int,
    to_block: int,
    filters: dict[str, Any] | None = None,
    newest_first: bool = False,
    stop: Callable[[list[Any]], bool] | None = None,
) -> list[Any]:
    """``BatchAnchored`` events in ``[from_block, to_block]``, read :data:`LOG_CHUNK` blocks at a time.

    ``newest_first`` walks the range backwards; ``stop(events so far)`` ends the walk early."""
    spans: list[tuple[int, int]] = []
    lo = max(0, from_block)
    while lo <= to_block:
        spans.append((lo, min(to_block, lo + LOG_CHUNK - 1)))
        lo += LOG_CHUNK
    if newest_first:
        spans.reverse()
    out: list[Any] = []
    for lo, hi in spans:
        out.extend(
            chain.request(
                _logs_request(contract, lo, hi, filters or {}), context=f"BatchAnchored logs {lo}-{hi}"
            )
        )
        if stop is not None and stop(out):
            break
    return out


def _logs_request(contract: Any, lo: int, hi: int, filters: dict[str, Any]) -> Callable[[], Any]:
    return lambda: contract.events.BatchAnchored().get_logs(
        from_block=lo, to_block=hi, argument_filters=filters
    )
