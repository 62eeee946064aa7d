"""The cyclic garbage collector's settings for a process whose job is the service (``supet serve``).

CPython's collector runs a full collection whenever the objects that survived two younger ones have
grown by a quarter; each full collection walks every tracked object of the process. A started
service holds about 250,000 of them (modules, the app and its routes, the ORM's mappings, the
registry mirror), and ingest makes tens of thousands of young containers per batch (decoded
submissions, results, receipts), so full collections came every one or two batches and walked the
service's start-up objects each time: about 170 ms each, 12 us of the MQTT bridge's 22 us per
reading and 18 us of the service's 154 (issue 17.3).

:func:`settle_collector`, called once after start-up, moves every object alive then out of the
collector's sight (``gc.freeze``: they are never collected, which start-up objects are not anyway)
and collects the youngest generation every :data:`YOUNG_THRESHOLD` net allocations instead of 700
(a young collection walks only the young). Reference cycles made afterwards are still collected.

Process-wide: not for a process that builds many services one after another (tests), where frozen
garbage of earlier services would never be freed.
"""

from __future__ import annotations

import gc

__all__ = ["YOUNG_THRESHOLD", "settle_collector"]

#: Net allocations of tracked objects between collections of the youngest generation (CPython's
#: default: 700). The two older generations keep their default thresholds (10 and 10).
YOUNG_THRESHOLD = 10_000


def settle_collector() -> None:
    """Collect once, freeze what is alive (start-up objects) and collect young objects less often."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
