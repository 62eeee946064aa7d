"""Governance of the contracts on both chains (issue 12.12): no constructor takes a zero admin,
registry, gate or token, every role is named ``supet.role.<name>``, and the admin of every contract
(ReadingAnchor, DeviceRegistry, LotRegistry, QualityCertifier, ParticipantRegistry, PurchaseOrders,
CreditRegistry, Receivables) is handed over in two steps with a delay (OpenZeppelin
AccessControlDefaultAdminRules), never granted, revoked or renounced outright; the deployment gives
the DeviceRegistry to its admin from the constructor. The consortium's members are their own
governance: test_consortium_membership.py."""

from __future__ import annotations

from typing import Any

import pytest
from eth_utils import keccak
from support import reverts

from contracts import deploy
from contracts.chain import Chain, dev_accounts
from contracts.errors import DeploymentError

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
    backing = [suite.deployment.address(n) for n in ("PurchaseOrders", "LotRegistry", "QualityCertifier")]
    credit = suite.deployment.address("CreditRegistry")
    invalid_admin = "AccessControlInvalidDefaultAdmin"
    cases: list[tuple[str, tuple[Any, ...], str, dict[str, Any]]] = [
        ("DeviceRegistry", (ZERO, ZERO), invalid_admin, {"defaultAdmin": ZERO}),
        ("DeviceRegistry", (ZERO, op.address), invalid_admin, {"defaultAdmin": ZERO}),
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
        ("Receivables", (ZERO, gate, token, *backing, credit), invalid_admin, {"defaultAdmin": ZERO}),
        ("Receivables", (op.address, ZERO, token, *backing, credit), "ReceivablesZeroGate", {}),
        ("Receivables", (op.address, gate, ZERO, *backing, credit), "ReceivablesZeroToken", {}),
        ("Receivables", (op.address, gate, token, *backing, ZERO), "ReceivablesZeroCreditRegistry", {}),
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
    "DeviceRegistry",
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
    # the admin role is never granted, revoked or renounced outright
    with reverts("AccessControlEnforcedDefaultAdminRules"):
        chain.transact(fns.grantRole(DEFAULT_ADMIN_ROLE, successor.address), op)
    with reverts("AccessControlEnforcedDefaultAdminRules"):
        chain.transact(fns.revokeRole(DEFAULT_ADMIN_ROLE, op.address), op)
    with reverts("AccessControlEnforcedDefaultAdminDelay", schedule=0):
        chain.transact(fns.renounceRole(DEFAULT_ADMIN_ROLE, op.address), op)
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


def test_issue12_the_device_registry_is_its_admins_from_the_constructor(suite: Any) -> None:
    """It used plain AccessControl, and the deployment granted the admin role, then renounced it: a
    one-step handover. Now the constructor names the admin (a two-step one) and the certifier."""
    chain: Chain = suite.chain
    op, admin = suite.operator, suite.accounts[8]
    certifier = suite.deployment.address("QualityCertifier")
    fns = suite.contract("DeviceRegistry").functions
    evidence, operator = chain.call(fns.EVIDENCE_ROLE()), chain.call(fns.OPERATOR_ROLE())
    assert chain.call(fns.hasRole(evidence, certifier))  # the address the deployment computed ahead
    assert chain.call(fns.defaultAdmin()) == op.address and chain.call(fns.hasRole(operator, op.address))
    with_pinner = chain.deploy("DeviceRegistry", op, admin.address, certifier).contract_address
    without = chain.deploy("DeviceRegistry", op, admin.address, ZERO).contract_address
    for address, pins in ((with_pinner, True), (without, False)):
        f = chain.contract("DeviceRegistry", str(address)).functions
        assert chain.call(f.defaultAdmin()) == admin.address
        assert chain.call(f.hasRole(operator, admin.address))
        assert not chain.call(f.hasRole(DEFAULT_ADMIN_ROLE, op.address))  # the deployer holds nothing
        assert not chain.call(f.hasRole(operator, op.address))
        assert chain.call(f.hasRole(evidence, certifier)) is pins
        assert not chain.call(f.hasRole(evidence, ZERO))


def test_issue12_deployment_refuses_a_certifier_off_its_computed_address(
    chain: Chain, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The DeviceRegistry gives EVIDENCE_ROLE to the address the QualityCertifier will have: when it
    lands elsewhere (here: the offset made wrong, as an interleaved transaction would), nothing may
    use that deployment."""
    monkeypatch.setattr(deploy, "_CERTIFIER_NONCE_OFFSET", deploy._CERTIFIER_NONCE_OFFSET + 1)
    with pytest.raises(DeploymentError, match=r"QualityCertifier landed at .* interleaved"):
        deploy.deploy_suite(chain, dev_accounts(3)[2])
