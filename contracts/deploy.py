"""Deploy the contract suite and describe it in a deployment file.

Order matters and is fixed: ``ReadingAnchor`` is the deployer's next contract, so a
fresh chain deployed by anvil's first development account puts it at
``0x5FbDB2315678afecb367f032d93F642f64180aa3``, the ``verifyingContract`` of the
Reading v1 vectors; ``DeviceRegistry`` follows at the next nonce (its address is
computed ahead and given to the anchor's constructor, then checked), and the
``QualityCertifier``'s address is computed ahead for the registry's constructor
(then checked) in the same way.
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
from contracts.lots import deploy_supply_chain
from contracts.orders import deploy_purchase_orders
from contracts.participants import deploy_participant_registry
from contracts.receivables import deploy_finance_settlement


def create_address(sender: str, nonce: int) -> str:
    """The address of the contract ``sender`` creates with ``nonce`` (CREATE)."""
    import rlp
    from eth_utils import keccak

    raw = bytes.fromhex(to_checksum_address(sender)[2:])
    return to_checksum_address(keccak(rlp.encode([raw, nonce]))[12:])


#: The QualityCertifier's nonce after the ReadingAnchor's: the DeviceRegistry (+1), the
#: ParticipantRegistry (+2) and the LotRegistry (+3) come between. The DeviceRegistry is constructed
#: with it (its ``EVIDENCE_ROLE``), so :func:`deploy_suite` checks that it landed there.
_CERTIFIER_NONCE_OFFSET = 4


def _check_landed(name: str, actual: object, expected: str) -> None:
    if actual is None or to_checksum_address(str(actual)) != expected:
        raise DeploymentError(
            f"{name} landed at {actual}, not at {expected} as the contracts before it expect: another "
            "transaction from the deployer interleaved; redeploy with a deployer key used by nothing else"
        )


def _deploy_core(
    chain: Chain, deployer: LocalAccount, *, admin: str, device_registry: str
) -> tuple[Deployment, str]:
    """The ReadingAnchor (the deployer's next contract) and the DeviceRegistry after it, both
    administered by ``admin`` from the start; return the deployment record and the QualityCertifier's
    address computed ahead (the registry lets it pin evidence)."""
    start_block = chain.block_number()
    nonce = chain.w3.eth.get_transaction_count(deployer.address, "pending")
    registry_address = create_address(deployer.address, nonce + 1)
    certifier_address = create_address(deployer.address, nonce + _CERTIFIER_NONCE_OFFSET)
    anchor = chain.deploy("ReadingAnchor", deployer, admin, registry_address)
    registry = chain.deploy(device_registry, deployer, admin, certifier_address)
    _check_landed("DeviceRegistry", registry.contract_address, registry_address)
    core = Deployment(
        chain_id=chain.chain_id,
        contracts={"ReadingAnchor": str(anchor.contract_address), "DeviceRegistry": registry_address},
        block=start_block + 1,
        deployer=to_checksum_address(deployer.address),
        artifact_hashes={},
        deployed_at=datetime.now(UTC).isoformat(timespec="seconds"),
        rpc=chain.rpc,
    )
    return core, certifier_address


def _deploy_finance(
    chain: Chain,
    deployer: LocalAccount,
    core: Deployment,
    *,
    gate: str,
    admin: str,
    stablecoin: bool | str,
    supply: dict[str, str],
) -> dict[str, str]:
    """PurchaseOrders, CreditRegistry, then (unless ``stablecoin`` is False) the settlement token and
    Receivables, after every other contract (their addresses must not move)."""
    addresses = {
        "PurchaseOrders": deploy_purchase_orders(
            chain, deployer, deployment=core, gate_address=gate, admin=admin
        ),
        "CreditRegistry": deploy_credit_registry(
            chain, deployer, deployment=core, gate_address=gate, admin=admin
        ),
    }
    if stablecoin is not False:
        token = None if stablecoin is True else str(stablecoin)
        addresses.update(
            deploy_finance_settlement(
                chain,
                deployer,
                deployment=core,
                gate_address=gate,
                orders=addresses["PurchaseOrders"],
                lots=supply["LotRegistry"],
                certifier=supply["QualityCertifier"],
                credit_registry=addresses["CreditRegistry"],
                admin=admin,
                token=token,
            )
        )
    return addresses


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
    from the start. The deployer holds the CreditRegistry's ``ACCESS_LOG_ANCHOR_ROLE``. The
    DeviceRegistry is ``admin``'s from its constructor (a two-step admin, issue 12.12: never granted
    outright, so the deployer never holds it), which also gives the QualityCertifier, at the address
    computed ahead, its ``EVIDENCE_ROLE`` (its verdicts pin the evidence they use).

    ``stablecoin``: ``True`` (the default, for the embedded chain, tests and the demo) deploys the
    ``TestStablecoin`` (tCNY, owned and minted by ``admin``) and the Receivables settling in it; an
    address makes the Receivables settle in that existing ERC-20 instead (production); ``False``
    deploys neither the token nor the Receivables.

    ``device_registry``: the artifact deployed as the ``DeviceRegistry``; only tests pass another, the
    test-only ``DeviceRegistryHarness`` (``contracts/src/testing/``), which can record the Reading v1
    vector devices (public keys only) without an attestation. ``supet deploy`` never does.
    """
    admin_address = to_checksum_address(admin or deployer.address)
    core, certifier = _deploy_core(chain, deployer, admin=admin_address, device_registry=device_registry)
    addresses = dict(core.contracts)
    # Admission (the consortium's rules) and the supply chain, gated by it. The DeviceRegistry keeps
    # its enroller role until the operator, having set rules and issuers, points it at the gate.
    gate = deploy_participant_registry(chain, deployer, deployment=core, admin=admin_address)
    addresses["ParticipantRegistry"] = gate
    addresses.update(
        deploy_supply_chain(chain, deployer, deployment=core, gate_address=gate, grant_evidence=False)
    )
    _check_landed("QualityCertifier", addresses["QualityCertifier"], certifier)
    addresses.update(
        _deploy_finance(
            chain, deployer, core, gate=gate, admin=admin_address, stablecoin=stablecoin, supply=addresses
        )
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
