"""`supet demo --rpc`: the whole story on a real node (anvil), and a full node's scan of what it left.

Its own module (the embedded run is tests/cli/test_demo.py) so that xdist's ``--dist loadfile`` runs the
two long stories on two workers at once.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from demo_checks import check_story, full_node_scan
from fresh_stack import on_fresh_thread
from support import require

from contracts.anvil import AnvilNode, find_anvil
from supet.demo import DemoOptions, run_demo


@pytest.fixture
def fresh_anvil() -> Iterator[AnvilNode]:
    """A fresh anvil whose clock starts 4 days back (its genesis; later blocks follow from there),
    before the 2-day story: devices count from their enrollment block (issue 12.2), so the story's
    past readings need a chain that enrolls them before the period, as the embedded demo's does."""
    require(find_anvil() is not None, "anvil is not installed (run `npm ci`)")
    genesis = int(time.time()) - 4 * 86_400
    node = AnvilNode(hardfork="osaka", extra_args=("--timestamp", str(genesis))).start()
    try:
        yield node
    finally:
        node.stop()


@pytest.mark.slow
@pytest.mark.scenario
@pytest.mark.anvil
def test_demo_story_on_anvil(tmp_path: Path, fresh_anvil: AnvilNode) -> None:
    r = on_fresh_thread(
        run_demo,
        DemoOptions(out_dir=tmp_path, days=2, rpc=fresh_anvil.url),
        step=lambda _: None,
        progress=lambda *_: None,
    )
    check_story(r, tmp_path)
    full_node_scan(r)
