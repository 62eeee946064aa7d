"""Deploy the contract suite and describe it in a deployment file.

Order matters and is fixed: ``ReadingAnchor`` is the deployer's next contract, so a
fresh chain deployed by anvil's first development account puts it at
``0x5FbDB2315678afecb367f032d93F642f64180aa3``, the ``verifyingContract`` of the
Reading v1 vectors; ``DeviceRegistry`` follows at the next nonce (its address is
computed ahead and given to the anchor's constructor, then checked).
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils import to_checksum_address
from web3.contract import Contract

from contracts.artifacts import SUITE, load_artifact
from contracts.chain import Chain
from contracts.errors import DeploymentError


def create_address(sender: str, nonce: int) -> str:
    """The address of the contract ``sender`` creates with ``nonce`` (CREATE)."""
    import rlp
    from eth_utils import keccak

    raw = bytes.fromhex(to_checksum_address(sender)[2:])
    return to_checksum_address(keccak(rlp.encode([raw, nonce]))[12:])


@dataclass(frozen=True, kw_only=True)
class Deployment:
    """Where the suite lives on one chain."""

    chain_id: int
    contracts: dict[str, str]
    block: int
    deployer: str
    artifact_hashes: dict[str, str]
    deployed_at: str
    rpc: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def address(self, name: str) -> str:
        try:
            return self.contracts[name]
        except KeyError as e:
            raise DeploymentError(
                f"the deployment has no {name} (it has {', '.join(sorted(self.contracts))}); "
                "redeploy with a current `supet deploy`"
            ) from e

    def contract(self, chain: Chain, name: str) -> Contract:
        """The web3 contract ``name`` of this deployment on ``chain``."""
        return chain.contract(name, self.address(name))

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    def save(self, path: Path) -> None:
        """Write the file atomically (a crash leaves the old file or the new one, never half)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(self.to_json())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> Deployment:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(**data)
        except FileNotFoundError as e:
            raise DeploymentError(
                f"no deployment file at {path}: deploy first with `supet deploy --out {path}`"
            ) from e
        except (ValueError, TypeError) as e:
            raise DeploymentError(f"{path} is not a supET deployment file: {e}") from e

    def check(self, chain: Chain) -> None:
        """Refuse a chain this deployment is not on (other chain id, no code at an address)."""
        if chain.chain_id != self.chain_id:
            raise DeploymentError(
                f"the deployment is for chain {self.chain_id} but the node serves chain "
                f"{chain.chain_id}: use the deployment file of that chain"
            )
        for name, address in self.contracts.items():
            checksummed = to_checksum_address(address)
            code = chain.request(partial(chain.w3.eth.get_code, checksummed), context=f"code of {name}")
            if not code:
                raise DeploymentError(
                    f"no code for {name} at {address} on chain {chain.chain_id}: the chain was "
                    "reset or the file is from another network; redeploy"
                )


def _hand_over_device_registry(
    chain: Chain, deployer: LocalAccount, core: Deployment, *, certifier: str, admin: str
) -> None:
    """Let the QualityCertifier pin evidence in the DeviceRegistry, then give the registry's admin and
    operator roles to ``admin`` (the deployer renounces them when it is not ``admin``)."""
    from contracts.lots import grant_evidence_role

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
    chain: Chain, deployer: LocalAccount, *, admin: str | None = None, stablecoin: bool | str = True
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
    """
    admin_address = to_checksum_address(admin or deployer.address)
    start_block = chain.block_number()
    nonce = chain.w3.eth.get_transaction_count(deployer.address, "pending")
    registry_address = create_address(deployer.address, nonce + 1)
    anchor = chain.deploy("ReadingAnchor", deployer, admin_address, registry_address)
    # The deployer administers the DeviceRegistry until it has let the QualityCertifier pin evidence
    # (below, after every contract); then it hands the registry to ``admin``.
    registry = chain.deploy("DeviceRegistry", deployer, deployer.address)
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
    from contracts.lots import deploy_supply_chain
    from contracts.participants import deploy_participant_registry

    gate = deploy_participant_registry(chain, deployer, deployment=core, admin=admin_address)
    addresses["ParticipantRegistry"] = gate
    addresses.update(
        deploy_supply_chain(chain, deployer, deployment=core, gate_address=gate, grant_evidence=False)
    )
    # Finance, after every contract above (their addresses must not move).
    from contracts.orders import deploy_purchase_orders

    addresses["PurchaseOrders"] = deploy_purchase_orders(
        chain, deployer, deployment=core, gate_address=gate, admin=admin_address
    )
    from contracts.credit import deploy_credit_registry
    from contracts.receivables import deploy_finance_settlement

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
        artifact_hashes={name: load_artifact(name).file_hash for name in SUITE if name in addresses},
    )
