"""Gas of trustCA and enrollment per scheme (birth attestation + proof of possession checked on chain,
issue 12.2), of anchorBatch and of verifyReading per signature scheme, of revocation, of the
consortium's rules and member votes (a quorum lowered, and a role added to an action, by the
members where the contracts have it, issue 12.12; by the admin alone before), and of the finance
contracts' writes (orders, credit records, consent, receivables), on both chains.

    .venv/bin/python bench/bench_gas.py

The Reading v1 vectors' devices cannot be enrolled any more (nobody holds their keys, and the registry
wants the device's proof of possession), so fresh devices sign the vectors' readings again, in a batch
of 6 like the vectors' (proofs of 2-3 siblings). The embedded chain (py-evm) has no P-256 precompile,
so OpenZeppelin's P256 falls back to Solidity there; anvil with --hardfork osaka has the EIP-7951
precompile. verifyReading is a view: its gas is what eth_estimateGas reports for a call.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from eth_utils import keccak

from contracts.anvil import AnvilNode
from contracts.chain import Chain, dev_accounts
from contracts.deploy import deploy_suite
from contracts.registry import DeviceRegistryClient, reading_tuple
from device_attestation.birth import attest_birth, ca_public_point, sign_possession
from device_attestation.certificates import make_device_csr
from device_attestation.keys import DeviceKey
from device_attestation.manufacturer_ca import create_manufacturer_ca, issue_device_certificate
from device_attestation.merkle import MerkleTree
from device_attestation.reading import Domain, Reading, reading_digest, reading_struct
from device_attestation.signing import sign_digest

VECTORS = json.loads((Path(__file__).parent.parent / "tests/vectors/reading-v1-vectors.json").read_text())


def enroll_fresh_devices(
    chain: Chain, dep: Any, op: Any, factory: Any
) -> tuple[dict[str, int], dict[str, DeviceKey]]:
    """trustCA and one enrollment per scheme, with the CA's attestation and the device's proof."""
    registry = DeviceRegistryClient(chain, dep)
    ca_key, ca_cert = create_manufacturer_ca(common_name="Bench CA", organization="bench", valid_days=10)
    out = {"trustCA (P-256 key)": registry.trust_ca(op, *ca_public_point(ca_cert), "bench").gas_used}
    registry.grant_enroller(op, factory.address)
    keys: dict[str, DeviceKey] = {}
    for d in VECTORS["devices"]:
        key = DeviceKey.generate(d["scheme"])
        cert = issue_device_certificate(
            ca_key=ca_key, ca_cert=ca_cert, csr=make_device_csr(key, d["device_id"]), valid_days=10
        )
        birth = attest_birth(ca_key=ca_key, ca_cert=ca_cert, certificate=cert)
        proof = sign_possession(
            key,
            device_id=d["device_id"],
            owner=factory.address,
            chain_id=chain.chain_id,
            registry=registry.contract.address,
        )
        common: dict[str, Any] = {
            "device_id": d["device_id"],
            "cert_fingerprint": birth.cert_fingerprint,
            "ca_key_hash": birth.ca_key_hash,
            "active_from_ms": 0,
            "birth_signature": birth.signature,
            "possession_signature": proof,
        }
        pub = key.public_key
        if d["scheme"] == "p256":
            r = registry.enroll_p256(factory, x=pub.x, y=pub.y, **common)
        else:
            r = registry.enroll_secp256k1(factory, address=pub.eth_address, **common)
        out[f"enroll ({d['scheme']}, attestation + proof of possession)"] = r.gas_used
        keys[d["device_id"]] = key
    return out, keys


def measure(chain: Chain) -> dict[str, int]:
    accounts = dev_accounts(3)
    op, factory = accounts[0], accounts[1]
    dep = deploy_suite(chain, op)
    anchor = dep.contract(chain, "ReadingAnchor")
    out, keys = enroll_fresh_devices(chain, dep, op, factory)
    # the vectors' six readings, measured now (after activation), signed by the fresh devices
    domain = Domain(chain_id=chain.chain_id, verifying_contract=anchor.address)
    now_ms = int(chain.block("latest")["timestamp"]) * 1000
    readings = [
        Reading.model_validate({**v["reading"], "ts_ms": now_ms + i})
        for i, v in enumerate(VECTORS["readings"])
    ]
    digests = [reading_digest(r, domain) for r in readings]
    tree = MerkleTree.build(digests)
    first = chain.transact(anchor.functions.anchorBatch(tree.root, len(digests)), op)
    second = chain.transact(anchor.functions.anchorBatch(keccak(b"another root"), 10_000), op)
    out["anchorBatch (first batch)"] = first.gas_used
    out["anchorBatch (later batch)"] = second.gas_used
    seen: set[str] = set()
    for reading, digest in zip(readings, digests, strict=True):
        key = keys[reading.device_id]
        if key.scheme in seen:
            continue
        seen.add(key.scheme)
        proof = tree.proof(digest)
        fn = anchor.functions.verifyReading(
            reading_tuple(reading_struct(reading)), sign_digest(key, digest), 1, proof
        )
        out[f"verifyReading ({key.scheme}, proof of {len(proof)})"] = chain.estimate_gas(fn, op.address)
    # the finance writes first (a receivable's backing lot is certified from a reading of the secp256k1
    # device, which must still be active), listed after the revocations
    finance = measure_finance(chain, dep, keys, domain)
    out.update(measure_revocation(chain, dep, op, factory))
    out.update(measure_consortium(chain, dep, op))
    out.update(finance)
    return out


def measure_revocation(chain: Chain, dep: Any, op: Any, factory: Any) -> dict[str, int]:
    """The operator schedules a revocation, the owner moves it earlier (to now), and the operator rules
    on the other device with a reason."""
    registry = DeviceRegistryClient(chain, dep)
    first, second = (d["device_id"] for d in VECTORS["devices"])
    later = int(chain.block("latest")["timestamp"]) * 1000 + 3_600_000
    return {
        "revoke (operator, an hour ahead)": registry.revoke(op, first, later).gas_used,
        "revoke (owner, now: earlier)": registry.revoke(factory, first).gas_used,
        "revokeWithReason (operator, now)": registry.revoke_with_reason(op, second, 0, "bench").gas_used,
    }


def measure_consortium(chain: Chain, dep: Any, admin: Any) -> dict[str, int]:
    """Role rules, a member admitted by vote, and a role's quorum lowered: by the members' vote where
    the registry has it (``proposeRoleQuorum``), else by the admin alone (``setRoleRule``)."""
    from contracts.participant_ids import PARTY_ROLES, TOPICS
    from contracts.participants import ParticipantRegistryClient

    reg = ParticipantRegistryClient(chain, dep)
    bank, licence = PARTY_ROLES["bank"], TOPICS["business-licence"]
    m1, m2, m3 = dev_accounts(10)[7:10]
    ms = reg.membership
    out = {"bootstrapMembers (2)": ms.bootstrap(admin, [m1.address, m2.address]).gas_used}
    sent = ms.propose(m1, m3.address)
    out["proposeMember (a member: its vote)"] = sent.tx.gas_used
    out["approveMemberProposal (the majority: admits)"] = ms.approve(m2, sent.id).gas_used
    out["setRoleRule (define: 1 topic, quorum 2)"] = reg.set_role_rule(admin, bank, [licence], 2).gas_used
    out["setRoleRule (raise the quorum to 3)"] = reg.set_role_rule(admin, bank, [licence], 3).gas_used
    if not any(item.get("name") == "proposeRoleQuorum" for item in reg.contract.abi):
        out["setRoleRule (lower the quorum to 0: the admin alone)"] = reg.set_role_rule(
            admin, bank, [licence], 0
        ).gas_used
        return out
    votes = reg.quorum_votes
    lowering = votes.propose(m1, bank, 0)
    out["proposeRoleQuorum (a member: its vote)"] = lowering.tx.gas_used
    out["approveRoleQuorum (the majority: lowers to 0)"] = votes.approve(m2, lowering.id).gas_used
    assert reg.role_rule(bank).quorum == 0
    out.update(measure_action_roles(chain, reg, admin, m1, m2))
    return out


def measure_action_roles(chain: Chain, reg: Any, admin: Any, m1: Any, m2: Any) -> dict[str, int]:
    """An action's roles set by the admin (first time, then narrowed) and a role added to it: by the
    members' vote where the registry has it (``proposeActionRole``), else by the admin alone."""
    from contracts.participant_ids import PARTY_ROLES

    bank, supplier, auditor = PARTY_ROLES["bank"], PARTY_ROLES["supplier"], PARTY_ROLES["auditor"]
    action = keccak(b"supet.bench.action")
    reg.set_role_rule(admin, supplier, [], 1)
    reg.set_role_rule(admin, auditor, [], 0)
    out = {
        "setActionRoles (first time: 2 roles)": reg.set_action_roles(
            admin, action, [bank, supplier]
        ).gas_used,
        "setActionRoles (narrow to 1 role)": reg.set_action_roles(admin, action, [bank]).gas_used,
    }
    if not any(item.get("name") == "proposeActionRole" for item in reg.contract.abi):
        out["setActionRoles (add a role: the admin alone)"] = reg.set_action_roles(
            admin, action, [bank, auditor]
        ).gas_used
        return out
    votes = reg.action_role_votes
    adding = votes.propose(m1, action, auditor)
    out["proposeActionRole (a member: its vote)"] = adding.tx.gas_used
    out["approveActionRole (the majority: adds the role)"] = votes.approve(m2, adding.id).gas_used
    assert reg.action_roles(action) == [bank, auditor]
    return out


def certified_delivery(
    chain: Chain,
    dep: Any,
    gate: Any,
    parties: tuple[Any, Any, Any],
    device: tuple[str, Any, Domain],
    *,
    seq: int = 1_000,
) -> tuple[dict[str, str], bytes]:
    """Issue 15: a lot the supplier delivered to the buyer (accepted), certified from one anchored reading
    (sequence number ``seq``: another call on the same chain passes another, so its batch root is new)
    of a device the buyer (the product's spec owner) names; a LotRegistry and a QualityCertifier behind
    the test gate. Their addresses and the lot's key."""
    from contracts.certifier import SPEC_ACTION, QualityCertifierClient, SpecMetric, batch_readings
    from contracts.lots import OPEN_ACTION, TRANSFER_ACTION, LotRegistryClient, deploy_supply_chain, lot_key
    from device_attestation.sdk import DeviceSigner

    op, buyer, supplier = parties
    admin = dev_accounts(1)[0]  # the suite's deployer: the DeviceRegistry's and the anchor's admin
    device_id, key, domain = device
    for party, action in ((buyer, SPEC_ACTION), (buyer, TRANSFER_ACTION), (supplier, OPEN_ACTION)):
        chain.transact(gate.functions.setAdmitted(party.address, action, True), op)
    supply = deploy_supply_chain(chain, admin, deployment=dep, gate_address=gate.address)
    lots = LotRegistryClient(chain, supply["LotRegistry"])
    certifier = QualityCertifierClient(chain, supply["QualityCertifier"])
    gtin = "04006381333931"
    certifier.set_spec_owner(admin, gtin, buyer.address)
    certifier.set_spec(buyer, gtin, [SpecMetric(name="temp_c", min=0, max=10**8)], min_samples=1)
    certifier.set_named_device(buyer, gtin, device_id)
    lots.open_lot(
        supplier, lot_id="LOT-B", gtin=gtin, quantity=500, unit="pcs", produced_from_ms=0, produced_to_ms=1
    )
    lot = lot_key("LOT-B", supplier.address)
    lots.propose_transfer(supplier, lot, buyer.address)
    lots.accept_transfer(buyer, lot)
    signer = DeviceSigner(device_id=device_id, key=key, domain=domain, start_seq=seq)
    sub = signer.sign({"temp_c": 4.5}, ts_ms=int(chain.block("latest")["timestamp"]) * 1000, lot_id="LOT-B")
    tree = MerkleTree.build([sub.digest])
    anchor = dep.contract(chain, "ReadingAnchor")
    chain.transact(anchor.functions.anchorBatch(tree.root, 1), admin)
    batch = int(chain.call(anchor.functions.batchCount()))
    certifier.certify_lot(op, lot, [batch_readings(batch, tree, [sub])])
    assert certifier.certificate(lot).certified
    return supply, lot


def measure_finance(chain: Chain, dep: Any, keys: dict[str, DeviceKey], domain: Domain) -> dict[str, int]:
    """The finance contracts' writes, against a test gate that admits the parties."""
    from contracts.credit import CONSENT_ACTION, PUBLISH_ACTION, QUERY_ACTION, deploy_credit_registry
    from contracts.order_terms import OrderTerms
    from contracts.orders import PLACE_ACTION, SUPPLY_ACTION, deploy_purchase_orders, order_id
    from contracts.receivables import (
        CREATE_ACTION,
        FINANCE_ACTION,
        HOLD_ACTION,
        ReceivablesClient,
        StablecoinClient,
        deploy_finance_settlement,
    )

    op, buyer, supplier, bank = dev_accounts(6)[2:6]
    gate_address = chain.deploy("StaticAdmissionGate", op, op.address).contract_address
    assert gate_address is not None
    gate = chain.contract("StaticAdmissionGate", gate_address)
    for party, action in [
        (buyer, PLACE_ACTION),
        (supplier, SUPPLY_ACTION),
        (op, PUBLISH_ACTION),
        (supplier, CONSENT_ACTION),
        (bank, QUERY_ACTION),
        (buyer, CREATE_ACTION),
        (supplier, HOLD_ACTION),
        (bank, FINANCE_ACTION),
    ]:
        chain.transact(gate.functions.setAdmitted(party.address, action, True), op)
    out: dict[str, int] = {}
    orders = chain.contract(
        "PurchaseOrders", deploy_purchase_orders(chain, op, deployment=dep, gate_address=gate_address)
    )
    # issue 14: the order carries a salted commitment to its quantity and unit price, not the figures;
    # the supplier accepts with the commitment (the first order also pays the supplier's and the buyer's
    # first list slots)
    for n, label in ((1, "placeOrder (first)"), (2, "placeOrder")):
        terms = OrderTerms.fresh(
            order_id(buyer.address, keccak(b"PO-%d" % n)), quantity=500, unit_price=1_250
        )
        out[label] = chain.transact(
            orders.functions.placeOrder(
                keccak(b"PO-%d" % n), supplier.address, 4006381333931, terms.commitment(), 20_600
            ),
            buyer,
        ).gas_used
        out["acceptOrder" if n == 2 else "acceptOrder (first)"] = chain.transact(
            orders.functions.acceptOrder(terms.order_id, terms.commitment()), supplier
        ).gas_used
    out["verifyTerms (a view, estimated)"] = orders.functions.verifyTerms(
        terms.order_id, terms.quantity, terms.unit_price, terms.salt
    ).estimate_gas()
    credit = chain.contract(
        "CreditRegistry", deploy_credit_registry(chain, op, deployment=dep, gate_address=gate_address)
    )
    until = int(chain.block()["timestamp"]) + 90 * 86_400
    out.update(measure_credit(chain, credit.address, op, supplier, bank, until))
    out["anchorAccessLog"] = chain.transact(
        credit.functions.anchorAccessLog(keccak(b"log"), 100, 1, 2), op
    ).gas_used
    device_id, key = next((d, k) for d, k in keys.items() if k.scheme == "secp256k1")
    supply, lot = certified_delivery(chain, dep, gate, (op, buyer, supplier), (device_id, key, domain))
    addrs = deploy_finance_settlement(
        chain,
        op,
        deployment=dep,
        gate_address=gate_address,
        orders=orders.address,
        lots=supply["LotRegistry"],
        certifier=supply["QualityCertifier"],
        credit_registry=credit.address,
    )
    rec, coin = (
        ReceivablesClient(chain, addrs["Receivables"]),
        StablecoinClient(chain, addrs["TestStablecoin"]),
    )
    # issue 15: the accepted order and the certified lot delivered to the buyer back the receivable
    rid, r = rec.confirm(
        buyer,
        supplier=supplier.address,
        face_value=10**6,
        due_date=until,
        reference=keccak(b"INV"),
        order_id=terms.order_id,
        lots=[lot],
    )
    out["Receivables.confirm (1 backing lot)"] = r.gas_used
    kids, r = rec.split(supplier, rec.receivable(rid).root_part, [250_000] * 4, [supplier.address] * 4)
    out["Receivables.split (4 children)"] = r.gas_used
    out["Receivables.offer"] = rec.offer(supplier, kids[0], bank=bank.address, min_price=240_000).gas_used
    coin.mint(op, bank.address, 10**6)
    coin.approve(bank, rec.address, 10**6)
    # issue 15: within the supplier's credit line, the statement signed by its oracle (op published it)
    line = rec.credit_line(bank.address, kids[0], deadline=until - 1).sign(op, rec.line_domain())
    out["Receivables.finance (backing and credit-line checks)"] = rec.finance(
        bank, kids[0], 240_000, line
    ).gas_used
    coin.mint(op, buyer.address, 10**6)
    coin.approve(buyer, rec.address, 10**6)
    out["Receivables.repay (4 leaves)"] = rec.repay(buyer, rid).gas_used
    return out


def measure_credit(
    chain: Chain, address: str, op: Any, supplier: Any, bank: Any, until: int
) -> dict[str, int]:
    """Issue 14: a record is a salted commitment (no figure); envelopes are ECIES-sealed records of a
    realistic size (three reasons), one per standing consent, addressed by consent id (a consent is a
    salted id: the bank never reaches the chain)."""
    from contracts.credit import CreditRegistryClient, model_version
    from contracts.credit_bank import register_bank_key, seal_for_bank
    from contracts.credit_record import CreditOpening, new_salt

    credit = CreditRegistryClient(chain, address)
    out: dict[str, int] = {}

    def opening() -> CreditOpening:
        return CreditOpening(
            factory=supplier.address,
            oracle=op.address,
            grade=3,
            pd_ppm=12_500,
            limit=10**8,
            currency="CNY",
            reasons=(
                "On-time-in-full delivery of 62% is low (costs 38 points)",
                "First-pass yield of 91% is low (costs 17 points)",
                "Output trend of -1.2% of capacity a month is weak (costs 9 points)",
            ),
            valid_until=until,
            model_version=model_version("scorecard-2026.11"),
            analytics_commitment=keccak(b"result"),
            salt=new_salt(),
        )

    def publish(o: CreditOpening, consents: list[Any]) -> int:
        envelopes = [seal_for_bank(credit, o, c) for c in consents]
        return credit.publish_record(
            op,
            supplier.address,
            record_commitment=o.commitment(),
            valid_until=o.valid_until,
            model_version=o.model_version,
            analytics_commitment=o.analytics_commitment,
            envelopes=envelopes,
        ).gas_used

    out["publishRecord (first)"] = publish(opening(), [])
    out["publishRecord (superseding)"] = publish(opening(), [])
    out["registerEnvelopeKey"] = register_bank_key(credit, bank).gas_used
    grant = credit.grant_consent(supplier, bank.address, expires_at=until)
    out["grantConsent (first)"] = grant.gas_used
    c = grant.opening
    out["grantConsent (renew)"] = credit.grant_consent(
        supplier, bank.address, expires_at=until + 1, salt=c.salt
    ).gas_used
    o = opening()
    size = len(seal_for_bank(credit, o, c).ciphertext)
    out[f"publishRecord (superseding, 1 envelope of {size} B)"] = publish(o, [c])
    out["publishRecord (superseding, 3 envelopes under one consent)"] = publish(opening(), [c] * 3)
    late = [seal_for_bank(credit, o, c)]
    out["deliverEnvelopes (1 envelope)"] = credit.deliver_envelopes(op, supplier.address, 2, late).gas_used
    out["revokeConsent"] = credit.revoke_consent(supplier, c).gas_used
    return out


def main() -> int:
    results = {"embedded (py-evm, no P-256 precompile)": measure(Chain.embedded())}
    with AnvilNode(hardfork="osaka") as node:
        results["anvil --hardfork osaka (EIP-7951 precompile)"] = measure(Chain.connect(node.url))
    # fresh devices' digests land anywhere in the tree: a proof length seen on one chain may not be
    # on the other ("-")
    rows = list(dict.fromkeys(row for r in results.values() for row in r))
    names = list(results)
    width = max(len(r) for r in rows) + 2
    print(f"{'gas':<{width}}" + "".join(f"{n:>48}" for n in names))
    for row in rows:
        cells = (f"{results[n][row]:>48,}" if row in results[n] else f"{'-':>48}" for n in names)
        print(f"{row:<{width}}" + "".join(cells))
    return 0


if __name__ == "__main__":
    sys.exit(main())
