"""The deployment record: where the contract suite lives on one chain (the file ``supet deploy`` writes).

Every contract client reads addresses and the chain id from a :class:`Deployment`; deploying the suite
(``contracts.deploy.deploy_suite``) stands above the clients and produces one.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from eth_utils import to_checksum_address
from web3.contract import Contract

from contracts.chain import Chain
from contracts.errors import DeploymentError


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
