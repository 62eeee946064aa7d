"""Governance of the supply-chain contracts on both chains (issue 12.12): no constructor takes a zero
admin or registry, and the ReadingAnchor's, LotRegistry's and QualityCertifier's admin is handed over
in two steps with a delay (OpenZeppelin AccessControlDefaultAdminRules), never granted outright."""

from __future__ import annotations

from typing import Any

import pytest
from support import reverts

from contracts.chain import Chain

ZERO = "0x" + "00" * 20
DEFAULT_ADMIN_ROLE = bytes(32)
THREE_DAYS = 3 * 86_400


def test_issue12_constructors_refuse_a_zero_admin_or_registry(suite: Any) -> None:
    chain: Chain = suite.chain
    op = suite.operator
    anchor = suite.deployment.address("ReadingAnchor")
    registry = suite.deployment.address("DeviceRegistry")
    lots = suite.deployment.address("LotRegistry")
    gate = suite.deployment.address("ParticipantRegistry")
    cases: list[tuple[str, tuple[Any, ...], str, dict[str, Any]]] = [
        ("DeviceRegistry", (ZERO,), "DeviceRegistryZeroAdmin", {}),
        ("ParticipantRegistry", (ZERO,), "ParticipantRegistryZeroAddress", {}),
        ("ReadingAnchor", (ZERO, registry), "AccessControlInvalidDefaultAdmin", {"defaultAdmin": ZERO}),
        ("ReadingAnchor", (op.address, ZERO), "ReadingAnchorZeroRegistry", {}),
        ("LotRegistry", (ZERO, gate), "AccessControlInvalidDefaultAdmin", {"defaultAdmin": ZERO}),
        ("LotRegistry", (op.address, ZERO), "LotRegistryZeroGate", {}),
        ("QualityCertifier", (ZERO, gate, anchor, lots), "AccessControlInvalidDefaultAdmin", {}),
        ("QualityCertifier", (op.address, gate, ZERO, lots), "QualityCertifierZeroAddress", {}),
        ("QualityCertifier", (op.address, gate, anchor, ZERO), "QualityCertifierZeroAddress", {}),
    ]
    for name, args, error, expected in cases:
        with reverts(error, **expected):
            chain.deploy(name, op, *args)


@pytest.mark.parametrize("name", ["ReadingAnchor", "LotRegistry", "QualityCertifier"])
def test_issue12_admin_handover_takes_two_steps_and_a_delay(suite: Any, name: str) -> None:
    chain: Chain = suite.chain
    op, successor, outsider = suite.operator, suite.accounts[8], suite.accounts[9]
    c = suite.contract(name)
    fns = c.functions
    assert chain.call(fns.ADMIN_TRANSFER_DELAY()) == THREE_DAYS
    assert chain.call(fns.defaultAdminDelay()) == THREE_DAYS
    assert chain.call(fns.defaultAdmin()) == op.address
    # the admin role is never granted (nor revoked) outright
    with reverts("AccessControlEnforcedDefaultAdminRules"):
        chain.transact(fns.grantRole(DEFAULT_ADMIN_ROLE, successor.address), op)
    with reverts("AccessControlUnauthorizedAccount", account=outsider.address):
        chain.transact(fns.beginDefaultAdminTransfer(outsider.address), outsider)
    chain.transact(fns.beginDefaultAdminTransfer(successor.address), op)
    pending, schedule = chain.call(fns.pendingDefaultAdmin())
    assert pending == successor.address
    assert schedule == int(chain.block()["timestamp"]) + THREE_DAYS
    # not before the delay, and only by the named successor
    with reverts("AccessControlEnforcedDefaultAdminDelay", schedule=schedule):
        chain.transact(fns.acceptDefaultAdminTransfer(), successor)
    with reverts("AccessControlInvalidDefaultAdmin", defaultAdmin=outsider.address):
        chain.transact(fns.acceptDefaultAdminTransfer(), outsider)
    assert chain.call(fns.defaultAdmin()) == op.address
    if not chain.can_warp:
        return  # the plain embedded chain cannot move its clock three days on
    chain.warp(schedule + 1)
    chain.transfer_value(op, op.address, 0)  # mine a block at that time (gas is estimated on the latest)
    chain.transact(fns.acceptDefaultAdminTransfer(), successor)
    assert chain.call(fns.defaultAdmin()) == successor.address
    assert not chain.call(fns.hasRole(DEFAULT_ADMIN_ROLE, op.address))
