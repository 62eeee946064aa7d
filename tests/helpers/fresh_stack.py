"""Run a long in-process job on a fresh thread, at a shallow Python stack.

CPython 3.11 keeps each thread's frames in 16 KiB chunks that it maps and unmaps directly
(``_PyThreadState_BumpFramePointerSlow`` -> ``mmap``; the chunk is unmapped again when the frame at its
base returns). A hot loop whose calls cross a chunk boundary maps and unmaps a chunk on every call.
Under pytest the test body runs some 100 frames deep, and the whole demo story, run there, crossed a
boundary in a hot path: 1.35-1.75 million mmap/munmap pairs and 21-45 s of system CPU (strace -k shows
the 16 KiB maps coming from ``_PyThreadState_BumpFramePointerSlow``). The same story in a fresh thread
(or from the shell) costs about 2 s of system CPU. Where the boundary falls depends on the depth, so
this is a measured cure for the long jobs that showed it, not a guarantee for every depth.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


def on_fresh_thread(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``fn(*args, **kwargs)`` run on a new thread; its result returned, its exception raised here."""
    with ThreadPoolExecutor(1, thread_name_prefix="fresh-stack") as pool:
        return pool.submit(fn, *args, **kwargs).result()
