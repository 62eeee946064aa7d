"""Worker processes that end with the service: a process-pool initializer.

The pipeline's CPU worker (:meth:`IngestPipeline.run_cpu
<ledger_service.ingest.pipeline.IngestPipeline.run_cpu>`: the anchoring worker's Merkle trees; the
signature checks ran in such workers before they moved to threads) is a spawned process blocked on its
task queue. When the service dies without shutting the pool down (SIGKILL, a segfault, the OOM killer),
nothing closes that queue (every worker holds its write end too), so the workers used to wait for ever,
about 290 MB each.
:func:`die_with_parent` makes each worker watch its parent and exit once it is gone.
"""

from __future__ import annotations

import os
import threading
import time

#: How often a worker checks that its parent is alive (seconds).
CHECK_INTERVAL = 0.5


def die_with_parent(parent_pid: int, interval: float = CHECK_INTERVAL) -> None:
    """Exit this process (status 0, at once) when ``parent_pid`` is no longer its parent.

    Use as ``ProcessPoolExecutor(initializer=die_with_parent, initargs=(os.getpid(),))``. Polling the
    parent pid is portable and works whichever thread spawned the worker (``PR_SET_PDEATHSIG`` would
    fire when that *thread* ends, and worker pools spawn from request threads).
    """

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(interval)
        os._exit(0)  # the parent is gone: nobody will ever read our results

    threading.Thread(target=watch, name="supet-parent-watch", daemon=True).start()
