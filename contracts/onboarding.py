"""Bring a consortium to life on a fresh deployment: policy, funded party accounts, admissions.

The demo, the simulator's feed and end-to-end tests all need the same steps a real consortium
takes, in order: the admin applies a policy (:func:`contracts.consortium.apply_policy`), each
party gets its claims from the trusted issuers, applies for its role, and the members approve
it up to the role's quorum. :class:`Onboarding` does exactly that with named accounts derived
from a seed (``keccak("supet.demo.<seed>.<name>")``), funded by the admin, so a run is
reproducible and never touches anybody's real keys.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address

from contracts.chain import Chain, dev_accounts
from contracts.consortium import apply_policy
from contracts.consortium_policy import ConsortiumPolicy
from contracts.deployment import Deployment
from contracts.errors import ContractsError
from contracts.participant_ids import claim_topic, party_role
from contracts.participants import ParticipantRegistryClient

__all__ = ["EXAMPLE_POLICY", "Onboarding", "OnboardingError"]

#: The example policy shipped with the project (anvil's dev accounts as members and issuers).
EXAMPLE_POLICY: Final = Path(__file__).resolve().parent.parent / "docs" / "consortium-policy.example.json"

#: Which of anvil's development accounts the example policy names, by job.
_MEMBERS: Final = (3, 4)
_ISSUERS: Final = {"business-licence": 6, "iso-9001": 7, "banking-licence": 9}


class OnboardingError(ContractsError):
    """A party could not be onboarded (unknown role, no issuer for a topic...)."""

    code = "contracts.onboarding"


@dataclass
class Onboarding:
    """The consortium of a deployment, run by its admin with the example policy's members and issuers."""

    chain: Chain
    deployment: Deployment
    admin: LocalAccount
    seed: str = "demo"
    policy_path: Path = EXAMPLE_POLICY
    claim_days: int = 365
    accounts: dict[str, LocalAccount] = field(default_factory=dict)

    def __post_init__(self) -> None:
        dev = dev_accounts(10)
        self.members = [dev[i] for i in _MEMBERS]
        self.issuers = {topic: dev[i] for topic, i in _ISSUERS.items()}
        self.registry = ParticipantRegistryClient(self.chain, self.deployment)
        self.policy = ConsortiumPolicy.load(self.policy_path)

    def apply_policy(self) -> int:
        """Apply the policy (idempotent); the number of transactions sent."""
        return len(apply_policy(self.chain, self.deployment, self.admin, self.policy))

    def account(self, name: str, *, fund_wei: int = 10**20) -> LocalAccount:
        """The named party account of this seed, funded by the admin on first use."""
        if name in self.accounts:
            return self.accounts[name]
        acct: LocalAccount = Account.from_key(keccak(f"supet.demo.{self.seed}.{name}".encode()))
        balance = self.chain.request(lambda: self.chain.w3.eth.get_balance(acct.address), context="balance")
        if balance < fund_wei // 2:
            self.chain.transfer_value(self.admin, acct.address, fund_wei)
        self.accounts[name] = acct
        return acct

    def admit(self, party: LocalAccount, role: str) -> None:
        """Claims from the trusted issuers, the application, and the quorum of approvals."""
        rule = self.policy.roles.get(role)
        if rule is None:
            raise OnboardingError(f"the policy has no role {role!r}", code="contracts.onboarding.role")
        role_id = party_role(role)
        if self.registry.is_admitted_as(party.address, role_id):
            return
        expires = int(time.time()) + self.claim_days * 86_400
        for topic in rule.topics:
            issuer = self.issuers.get(topic)
            if issuer is None:
                raise OnboardingError(f"no issuer for topic {topic!r}", code="contracts.onboarding.issuer")
            signed = self.registry.sign_claim(
                issuer,
                subject=party.address,
                topic=claim_topic(topic),
                data_hash=keccak(json.dumps({"subject": party.address, "topic": topic}).encode()),
                expires_at=expires,
            )
            self.registry.add_claim(party, signed)
        self.registry.apply(party, role_id)
        for member in self.members[: rule.quorum]:
            self.registry.approve(member, party.address, role_id)
        if not self.registry.is_admitted_as(party.address, role_id):
            status = self.registry.why_not_admitted(party.address, role_id)
            raise OnboardingError(
                f"{to_checksum_address(party.address)} is still not admitted as {role}: {status.explain()}",
                code="contracts.onboarding.not_admitted",
            )
