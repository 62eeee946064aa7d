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
and sets :data:`THRESHOLDS`: the youngest generation collected every 20,000 net allocations instead
of 700 (a young collection walks only the young), an older one every 20 of those, a full one every 20
older ones (and then only when the survivors grew by a quarter, as always). Request and ingest garbage
is almost all freed by reference counting; reference cycles made afterwards are still collected, a
little later. Single submits from 200 devices saw pauses of up to 0.5 s before (7 full collections,
2 s in all, in a run of 10,000 submits), the bulk of their p99.

Process-wide: not for a process that builds many services one after another (tests), where frozen
garbage of earlier services would never be freed.
"""

from __future__ import annotations

import gc

__all__ = ["THRESHOLDS", "settle_collector"]

#: The collector's thresholds once settled: net allocations of tracked objects between collections of
#: the youngest generation (CPython's default: 700), young collections between collections of the
#: middle one, middle ones between full ones (CPython's defaults: 10 and 10).
THRESHOLDS = (20_000, 20, 20)


def settle_collector() -> None:
    """Collect once, freeze what is alive (start-up objects) and set :data:`THRESHOLDS`."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*THRESHOLDS)
