"""Fault: the anchoring key's nonce moved behind the worker's back.

The worker caches its signer's next nonce. Another sender with the same key (an operator's
manual anchoring, a second replica, the old process of an overlapping restart) makes that cache
too low; the node then answers ``nonce too low``. The worker must resynchronise and anchor, with
its usual backoff, not retry the same refused transaction forever.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from faults import (
    Fleet,
    all_anchored,
    assert_exactly_once,
    assert_service_proofs_verify,
    batches,
    deploy_on,
    describe_store,
    in_process_service,
    own_anvil,
    submit_all,
    wait_for,
)

from contracts.chain import dev_accounts


@pytest.mark.anvil
def test_anchoring_recovers_after_another_sender_used_the_key(tmp_path: Path) -> None:
    with own_anvil() as node:
        deployed = deploy_on(node, tmp_path)
        fleet = Fleet(deployed.consortium, 2, seed=808)
        service = in_process_service(deployed, f"sqlite:///{tmp_path}/ledger.db", anchoring=False)
        service.start()
        try:
            accepted = submit_all(service, fleet.sign(6))
            service.anchoring.flush(timeout=20)  # the worker now caches its next nonce
            # someone else sends with the anchoring key (anvil unlocks its development accounts)
            key, other = dev_accounts(2)
            node.rpc("eth_sendTransaction", [{"from": key.address, "to": other.address, "value": "0x1"}])
            accepted |= submit_all(service, fleet.sign(6))
            service.anchoring.start(interval=0.05)  # the real loop: errors are logged and retried
            wait_for(
                lambda: all_anchored(service.engine),
                timeout=5,
                what="the second batch anchored after the external send",
                detail=lambda: (describe_store(service.engine), service.anchoring.last_error),
            )
        finally:
            service.stop()
        assert max(b.attempts for b in batches(service.engine)) <= 2
        assert_exactly_once(service.engine, deployed.chain, deployed.deployment, expected=accepted)
        assert_service_proofs_verify(service, accepted)
