"""Run ``supet serve`` under cProfile in every thread (the event loop's and the thread pool's).

    SUPET_PROFILE_OUT=/tmp/serve.prof .venv/bin/python bench/profile_server.py --port 8000

The benchmarks start it instead of ``supet serve`` when given ``--profile FILE``. On SIGTERM the
server stops as usual and the merged statistics of all threads are written to ``SUPET_PROFILE_OUT``
(read them with ``python -m pstats``). cProfile slows small calls several times over: use the
profile for where the time goes, the benchmarks' CPU figures (unprofiled) for how much there is.
"""

from __future__ import annotations

import cProfile
import os
import pstats
import signal
import sys
import threading
import time
from typing import Any

_profiles: list[cProfile.Profile] = []
_lock = threading.Lock()


def _start_in_thread(*_: Any) -> None:
    """The first profile event of a new thread: give the thread its own profiler."""
    prof = cProfile.Profile(time.thread_time)  # CPU time: a waiting thread costs nothing
    with _lock:
        _profiles.append(prof)
    prof.enable()  # replaces this hook for the rest of the thread


def main() -> int:
    from supet.cli import main as cli

    out = os.environ.get("SUPET_PROFILE_OUT", "serve.prof")
    # uvicorn raises the SIGTERM it caught again once it has stopped: end with SystemExit then, not die
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    threading.setprofile(_start_in_thread)
    main_prof = cProfile.Profile(time.thread_time)
    main_prof.enable()
    sys.argv = ["supet", "serve", *sys.argv[1:]]
    try:
        cli()
    except SystemExit:
        pass
    finally:
        main_prof.disable()
        stats = pstats.Stats(main_prof)
        with _lock:
            for prof in _profiles:
                stats.add(prof)
        stats.dump_stats(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
