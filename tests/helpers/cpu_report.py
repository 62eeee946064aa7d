"""The suite's CPU by test file, for finding what makes it long on a loaded machine.

Wall durations (``--durations``) measure the machine's load as much as a test. With
``SUPET_TEST_CPU=FILE`` set, each pytest process (each xdist worker) appends to FILE one line per test
file: the file, then the CPU seconds (user + system) its tests' setup, call and teardown took in the
process itself, and in the child processes the process waited for meanwhile (servers, CLI runs, solc).
CPU of processes that outlive a test (the session's anvil, PostgreSQL's backends) is not counted.

    SUPET_TEST_CPU=/tmp/cpu.txt make test
    sort -t' ' -k2 -rn /tmp/cpu.txt | head
"""

from __future__ import annotations

import os
import resource
from collections import defaultdict
from collections.abc import Generator

import pytest

_by_file: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])


def _cpu() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, kids.ru_utime + kids.ru_stime


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(
    item: pytest.Item, nextitem: pytest.Item | None
) -> Generator[None, object, object]:
    own, kids = _cpu()
    try:
        return (yield)
    finally:
        own2, kids2 = _cpu()
        entry = _by_file[item.nodeid.split("::", 1)[0]]
        entry[0] += own2 - own
        entry[1] += kids2 - kids


def pytest_sessionfinish(session: pytest.Session) -> None:
    path = os.environ.get("SUPET_TEST_CPU")
    if not path or not _by_file:
        return
    with open(path, "a", encoding="utf-8") as out:
        for name, (own, kids) in sorted(_by_file.items()):
            out.write(f"{name} {own + kids:.1f} own={own:.1f} children={kids:.1f}\n")
