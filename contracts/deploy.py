"""Deploy the contract suite and describe it in a deployment file.

Order matters and is fixed: ``ReadingAnchor`` is the deployer's next contract, so a
fresh chain deployed by anvil's first development account puts it at
``0x5FbDB2315678afecb367f032d93F642f64180aa3``, the ``verifyingContract`` of the
Reading v1 vectors; ``DeviceRegistry`` follows at the next nonce (its address is
computed ahead and given to the anchor's constructor, then checked).
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address

from contracts.artifacts import SUITE, load_artifact
from contracts.chain import Chain
from contracts.credit import deploy_credit_registry
from contracts.deployment import Deployment
from contracts.errors import DeploymentError
from contracts.lots import deploy_supply_chain, grant_evidence_role
from contracts.orders import deploy_purchase_orders
from contracts.participants import deploy_participant_registry
from contracts.receivables import deploy_finance_settlement


def create_address(sender: str, nonce: int) -> str:
    """The address of the contract ``sender`` creates with ``nonce`` (CREATE)."""
    import rlp
    from eth_utils import keccak

    raw = bytes.fromhex(to_checksum_address(sender)[2:])
    return to_checksum_address(keccak(rlp.encode([raw, nonce]))[12:])


def _hand_over_device_registry(
    chain: Chain, deployer: LocalAccount, core: Deployment, *, certifier: str, admin: str
) -> None:
    """Let the QualityCertifier pin evidence in the DeviceRegistry, then give the registry's admin and
    operator roles to ``admin`` (the deployer renounces them when it is not ``admin``)."""
    grant_evidence_role(chain, deployer, deployment=core, certifier=certifier)
    if admin == to_checksum_address(deployer.address):
        return
    registry = core.contract(chain, "DeviceRegistry")
    fns = registry.functions
    operator_role = bytes(chain.call(fns.OPERATOR_ROLE()))
    admin_role = bytes(32)
    for role in (operator_role, admin_role):
        chain.transact(fns.grantRole(role, admin), deployer)
    for role in (operator_role, admin_role):
        chain.transact(fns.renounceRole(role, deployer.address), deployer)


def deploy_suite(
    chain: Chain,
    deployer: LocalAccount,
    *,
    admin: str | None = None,
    stablecoin: bool | str = True,
    device_registry: str = "DeviceRegistry",
) -> Deployment:
    """Deploy every contract of the suite; ``admin`` (default the deployer) gets the admin roles.

    The finance contracts (PurchaseOrders, CreditRegistry, then the settlement token and Receivables)
    come after every earlier one, so adding them moved no address; they ask the ParticipantRegistry
    from the start. The deployer holds the CreditRegistry's ``ACCESS_LOG_ANCHOR_ROLE``; the
    QualityCertifier holds the DeviceRegistry's ``EVIDENCE_ROLE`` (its verdicts pin the evidence they use).

    ``stablecoin``: ``True`` (the default, for the embedded chain, tests and the demo) deploys the
    ``TestStablecoin`` (tCNY, owned and minted by ``admin``) and the Receivables settling in it; an
    address makes the Receivables settle in that existing ERC-20 instead (production); ``False``
    deploys neither the token nor the Receivables.

    ``device_registry``: the artifact deployed as the ``DeviceRegistry``; only tests pass another, the
    test-only ``DeviceRegistryHarness`` (``contracts/src/testing/``), which can record the Reading v1
    vector devices (public keys only) without an attestation. ``supet deploy`` never does.
    """
    admin_address = to_checksum_address(admin or deployer.address)
    start_block = chain.block_number()
    nonce = chain.w3.eth.get_transaction_count(deployer.address, "pending")
    registry_address = create_address(deployer.address, nonce + 1)
    anchor = chain.deploy("ReadingAnchor", deployer, admin_address, registry_address)
    # The deployer administers the DeviceRegistry until it has let the QualityCertifier pin evidence
    # (below, after every contract); then it hands the registry to ``admin``.
    registry = chain.deploy(device_registry, deployer, deployer.address)
    if registry.contract_address != registry_address:
        raise DeploymentError(
            f"DeviceRegistry landed at {registry.contract_address}, not at {registry_address} "
            "as the anchor expects: another transaction from the deployer interleaved; redeploy "
            "with a deployer key used by nothing else"
        )
    addresses: dict[str, str] = {
        "ReadingAnchor": str(anchor.contract_address),
        "DeviceRegistry": registry_address,
    }
    core = Deployment(
        chain_id=chain.chain_id,
        contracts=dict(addresses),
        block=start_block + 1,
        deployer=to_checksum_address(deployer.address),
        artifact_hashes={},
        deployed_at=datetime.now(UTC).isoformat(timespec="seconds"),
        rpc=chain.rpc,
    )
    # Admission (the consortium's rules) and the supply chain, gated by it. The DeviceRegistry keeps
    # its enroller role until the operator, having set rules and issuers, points it at the gate.

    gate = deploy_participant_registry(chain, deployer, deployment=core, admin=admin_address)
    addresses["ParticipantRegistry"] = gate
    addresses.update(
        deploy_supply_chain(chain, deployer, deployment=core, gate_address=gate, grant_evidence=False)
    )
    # Finance, after every contract above (their addresses must not move).

    addresses["PurchaseOrders"] = deploy_purchase_orders(
        chain, deployer, deployment=core, gate_address=gate, admin=admin_address
    )

    addresses["CreditRegistry"] = deploy_credit_registry(
        chain, deployer, deployment=core, gate_address=gate, admin=admin_address
    )
    if stablecoin is not False:
        token = None if stablecoin is True else str(stablecoin)
        addresses.update(
            deploy_finance_settlement(
                chain, deployer, deployment=core, gate_address=gate, admin=admin_address, token=token
            )
        )
    _hand_over_device_registry(
        chain, deployer, core, certifier=addresses["QualityCertifier"], admin=admin_address
    )
    return dataclasses.replace(
        core,
        contracts=addresses,
        artifact_hashes={
            name: load_artifact(device_registry if name == "DeviceRegistry" else name).file_hash
            for name in SUITE
            if name in addresses
        },
    )
