"""Governance of the contracts on both chains (issue 12.12): no constructor takes a zero admin,
registry, gate or token, every role is named ``supet.role.<name>``, and the admin of ReadingAnchor,
LotRegistry, QualityCertifier, ParticipantRegistry, PurchaseOrders, CreditRegistry and Receivables
is handed over in two steps with a delay (OpenZeppelin AccessControlDefaultAdminRules), never granted
outright. The consortium's members are their own governance: test_consortium_membership.py."""

from __future__ import annotations

from typing import Any

import pytest
from eth_utils import keccak
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
    token = suite.deployment.address("TestStablecoin")
    invalid_admin = "AccessControlInvalidDefaultAdmin"
    cases: list[tuple[str, tuple[Any, ...], str, dict[str, Any]]] = [
        ("DeviceRegistry", (ZERO,), "DeviceRegistryZeroAdmin", {}),
        ("ParticipantRegistry", (ZERO,), invalid_admin, {"defaultAdmin": ZERO}),
        ("ReadingAnchor", (ZERO, registry), "AccessControlInvalidDefaultAdmin", {"defaultAdmin": ZERO}),
        ("ReadingAnchor", (op.address, ZERO), "ReadingAnchorZeroRegistry", {}),
        ("LotRegistry", (ZERO, gate), "AccessControlInvalidDefaultAdmin", {"defaultAdmin": ZERO}),
        ("LotRegistry", (op.address, ZERO), "LotRegistryZeroGate", {}),
        ("QualityCertifier", (ZERO, gate, anchor, lots), "AccessControlInvalidDefaultAdmin", {}),
        ("QualityCertifier", (op.address, gate, ZERO, lots), "QualityCertifierZeroAddress", {}),
        ("QualityCertifier", (op.address, gate, anchor, ZERO), "QualityCertifierZeroAddress", {}),
        ("PurchaseOrders", (ZERO, gate), invalid_admin, {"defaultAdmin": ZERO}),
        ("PurchaseOrders", (op.address, ZERO), "PurchaseOrdersZeroGate", {}),
        ("CreditRegistry", (ZERO, gate, op.address), invalid_admin, {"defaultAdmin": ZERO}),
        ("CreditRegistry", (op.address, ZERO, op.address), "CreditRegistryZeroGate", {}),
        ("Receivables", (ZERO, gate, token), invalid_admin, {"defaultAdmin": ZERO}),
        ("Receivables", (op.address, ZERO, token), "ReceivablesZeroGate", {}),
        ("Receivables", (op.address, gate, ZERO), "ReceivablesZeroToken", {}),
    ]
    for name, args, error, expected in cases:
        with reverts(error, **expected):
            chain.deploy(name, op, *args)


def test_issue12_every_role_is_named_like_the_others(suite: Any) -> None:
    """``ACCESS_LOG_ANCHOR_ROLE`` was ``keccak256("ACCESS_LOG_ANCHOR_ROLE")``, unlike every other role."""
    chain: Chain = suite.chain
    roles = {
        ("ReadingAnchor", "ANCHOR_ROLE"): "anchor",
        ("DeviceRegistry", "OPERATOR_ROLE"): "operator",
        ("ParticipantRegistry", "CONSORTIUM_ADMIN_ROLE"): "consortium-admin",
        ("ParticipantRegistry", "CONSORTIUM_MEMBER_ROLE"): "consortium-member",
        ("CreditRegistry", "ACCESS_LOG_ANCHOR_ROLE"): "access-log-anchor",
    }
    for (name, constant), role in roles.items():
        on_chain = chain.call(getattr(suite.contract(name).functions, constant)())
        assert on_chain == keccak(f"supet.role.{role}".encode()), (name, constant)


ADMIN_RULES = [
    "ReadingAnchor",
    "LotRegistry",
    "QualityCertifier",
    "PurchaseOrders",
    "CreditRegistry",
    "Receivables",
]


@pytest.mark.parametrize("name", ADMIN_RULES)
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
