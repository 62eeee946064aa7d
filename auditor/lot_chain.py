"""A lot's events on chain, read from the chain alone: opening or split, transformations, custody,
certification.

:func:`lot_chain_steps` reads the LotRegistry's and the QualityCertifier's events of one lot from the
deployment's contracts, trusting no ledger: ``supet audit lot`` judges them as they are, and the
ledger service merges them with its stored readings into the lot's timeline.

Which lot: lot ids are scoped to their issuer on chain (``LotRegistry.lotKey``), so a lot is named by
its id and, when several parties use that id, its issuer (:func:`resolve_lot` raises
:class:`contracts.lots.AmbiguousLot` otherwise).

Order: by (block, log index). Each step has a total sort key (:data:`SortKey`) shared with the
service's reading steps, so both merge by time (a chain step's time is its block's, in ms).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from eth_utils import to_checksum_address
from hexbytes import HexBytes

from auditor._internal import hex0x
from contracts.certifier import QualityCertifierClient, RejectReason
from contracts.chain import Chain
from contracts.deployment import Deployment
from contracts.errors import ContractsError
from contracts.lots import AmbiguousLot, Lot, LotRegistryClient, format_gtin, lot_key

__all__ = [
    "CHAIN_KINDS",
    "ChainStep",
    "SortKey",
    "chain_steps_of_key",
    "lot_chain_steps",
    "resolve_lot",
    "transformation_text",
]

#: The kinds of chain steps, in the order of the brief; readings are ``reading``.
CHAIN_KINDS = (
    "opened",
    "split",
    "transfer_proposed",
    "transfer_accepted",
    "transfer_rejected",
    "transfer_cancelled",
    "transformed",
    "certified",
    "rejected",
)

#: A step's total sort key: (time_ms, source, block, log_index, device_id, seq); source 0 chain, 1 reading.
SortKey = tuple[int, int, int, int, str, int]


def resolve_lot(chain: Chain, deployment: Deployment, lot_id: str, issuer: str | None = None) -> bytes | None:
    """The on-chain key of lot ``lot_id`` (of ``issuer`` when given), or None when no such lot is on chain.

    :class:`contracts.lots.AmbiguousLot` (``lot.ambiguous``) when no issuer is given and several
    parties have a lot with this id.
    """
    lots = LotRegistryClient.from_deployment(chain, deployment)
    if issuer is not None:
        return lots.key(lot_id, issuer=issuer) if lots.exists(lot_id, issuer=issuer) else None
    try:
        named = lots.named(lot_id)
        return lots.key(lot_id) if named else None
    except AmbiguousLot as e:
        raise AmbiguousLot(
            f"{len(e.issuers)} parties have a lot {lot_id!r} on chain ({', '.join(e.issuers)}): pass the "
            "one you mean as `issuer` (the supplier who opened it, or the custodian who split it off)",
            issuers=e.issuers,
        ) from e


# ---------------------------------------------------------------- chain steps


@dataclass(frozen=True, kw_only=True)
class ChainStep:
    """One event of the lot on chain."""

    kind: str
    time_ms: int
    actor: str
    details: dict[str, Any]
    tx_hash: str
    block_number: int
    log_index: int
    contract: str

    @property
    def sort_key(self) -> SortKey:
        return (self.time_ms, 0, self.block_number, self.log_index, "", 0)

    def to_json_obj(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "time_ms": self.time_ms,
            "actor": self.actor,
            "details": self.details,
            "reference": {
                "type": "transaction",
                "tx_hash": self.tx_hash,
                "block_number": self.block_number,
                "log_index": self.log_index,
                "contract": self.contract,
            },
        }


def _actor_of(kind: str, args: dict[str, Any]) -> str:
    if kind in ("transfer_accepted", "transfer_rejected"):
        return str(args["to"])
    if kind in ("transfer_proposed", "transfer_cancelled"):
        return str(args["from"])
    return str(args.get("supplier") or args.get("custodian") or args.get("by") or "")


def _unpad(raw: bytes) -> str:
    return bytes(raw).rstrip(b"\0").decode("ascii", errors="replace")


def lot_chain_steps(
    chain: Chain, deployment: Deployment, lot_id: str, *, issuer: str | None = None
) -> list[ChainStep]:
    """The lot's events on chain, by (block, log index), read from the deployment's contracts alone
    (none when no such lot is on chain; the lot resolved as :func:`resolve_lot` does).

    A lot split off a parent has no ``LotOpened``: its ``opened`` step is the parent's ``LotSplit``
    that created it. A transformation is a ``transformed`` step on each of its input lots (at its
    ``LotConsumed``) and output lots (at its ``LotProduced``), each carrying the whole transformation
    (:func:`_transformation_details`). Certification verdicts carry the spec version they were
    judged against and that spec as the certifier holds it.
    """
    key = lot_key(lot_id, issuer) if issuer is not None else resolve_lot(chain, deployment, lot_id)
    if key is None:
        return []
    return chain_steps_of_key(chain, deployment, lot_id, key)


def chain_steps_of_key(chain: Chain, deployment: Deployment, lot_id: str, key: bytes) -> list[ChainStep]:
    """The events of the lot with on-chain ``key`` (named ``lot_id`` in the steps), by (block, log index)."""
    lots = LotRegistryClient.from_deployment(chain, deployment)
    certifier = QualityCertifierClient.from_deployment(chain, deployment)
    start = deployment.block
    raw: list[tuple[str, str, Any]] = []  # (kind, contract name, log)

    def logs(kind: str, name: str, event: Any, filters: dict[str, Any]) -> None:
        found = chain.request(
            lambda: event().get_logs(from_block=start, to_block="latest", argument_filters=filters),
            context=f"{event.event_name} logs of lot {lot_id}",
        )
        raw.extend((kind, name, log) for log in found)

    reg = lots.contract.events
    logs("opened", "LotRegistry", reg.LotOpened, {"lotId": key})
    logs("opened", "LotRegistry", reg.LotSplit, {"childId": key})
    logs("split", "LotRegistry", reg.LotSplit, {"parentId": key})
    logs("transfer_proposed", "LotRegistry", reg.TransferProposed, {"lotId": key})
    logs("transfer_accepted", "LotRegistry", reg.TransferAccepted, {"lotId": key})
    logs("transfer_rejected", "LotRegistry", reg.TransferRejected, {"lotId": key})
    logs("transfer_cancelled", "LotRegistry", reg.TransferCancelled, {"lotId": key})
    logs("transformed", "LotRegistry", reg.LotConsumed, {"lotId": key})
    logs("transformed", "LotRegistry", reg.LotProduced, {"lotId": key})
    qc = certifier.contract.events
    logs("certified", "QualityCertifier", qc.LotCertified, {"lotId": key})
    logs("rejected", "QualityCertifier", qc.LotRejected, {"lotId": key})

    times: dict[int, int] = {}

    def block_time_ms(number: int) -> int:
        if number not in times:
            block = chain.request(lambda: chain.w3.eth.get_block(number), context=f"block {number}")
            times[number] = int(block["timestamp"]) * 1000
        return times[number]

    specs: dict[tuple[int, int], dict[str, Any]] = {}

    def spec_of(gtin: int, version: int) -> dict[str, Any]:
        if (gtin, version) not in specs:
            s = certifier.spec(gtin, version)
            specs[(gtin, version)] = {
                "version": version,
                "min_samples": s.min_samples,
                "set_by": s.set_by,
                "set_at": s.set_at,
                "metrics": [
                    {"name": m.name, "min": str(m.min), "max": str(m.max), "required": m.required}
                    for m in s.metrics
                ],
            }
        return specs[(gtin, version)]

    records: dict[bytes, Lot] = {}

    def record(k: bytes) -> Lot:
        if k not in records:
            records[k] = lots.lot(k)
        return records[k]

    def lot_text(k: bytes) -> str:
        return record(k).lot_id

    def transformation(tid: int) -> dict[str, Any]:
        found = chain.request(
            lambda: reg.LotTransformed().get_logs(
                from_block=start, to_block="latest", argument_filters={"transformationId": tid}
            ),
            context=f"LotTransformed log of transformation {tid}",
        )
        if len(found) != 1:
            raise ContractsError(
                f"transformation {tid} has {len(found)} LotTransformed logs on chain, not one: is the node "
                "serving the deployment's LotRegistry from its deployment block on?"
            )
        return _transformation_details(found[0], record)

    steps = []
    for kind, name, log in raw:
        args = dict(log["args"])
        if kind == "transformed":
            details = {
                **transformation(int(args["transformationId"])),
                **_role_details(log["event"], args),
            }
        else:
            details = _details(kind, log["event"], args, spec_of=spec_of, lot_text=lot_text)
        steps.append(
            ChainStep(
                kind=kind,
                time_ms=block_time_ms(int(log["blockNumber"])),
                actor=str(details["by"]) if kind == "transformed" else _actor_of(kind, args),
                details=details,
                tx_hash=HexBytes(log["transactionHash"]).to_0x_hex(),
                block_number=int(log["blockNumber"]),
                log_index=int(log["logIndex"]),
                contract=to_checksum_address(deployment.address(name)),
            )
        )
    steps.sort(key=lambda s: (s.block_number, s.log_index))
    return steps


def _transformation_details(log: Any, record: Callable[[bytes], Lot]) -> dict[str, Any]:
    """A transformation as its ``LotTransformed`` log gives it, each lot named (id, key, GTIN, unit):
    the same on every input and output lot's step, so each side shows the other."""
    args = log["args"]

    def lot(k: bytes, quantity: int) -> dict[str, Any]:
        r = record(bytes(k))
        return {
            "lot_id": r.lot_id,
            "lot_key": hex0x(k),
            "gtin": r.gtin_text,
            "quantity": str(quantity),
            "unit": r.unit,
        }

    return {
        "transformation_id": int(args["transformationId"]),
        "by": to_checksum_address(args["by"]),
        "inputs": [lot(k, q) for k, q in zip(args["inputs"], args["consumed"], strict=True)],
        "outputs": [lot(k, record(bytes(k)).quantity) for k in args["outputs"]],
        "transformed_log_index": int(log["logIndex"]),
    }


def transformation_text(details: dict[str, Any]) -> str:
    """A ``transformed`` step's transformation in a line: ``300 kg of A, 50 kg of B -> 10 pcs C``."""
    ins = ", ".join(f"{i['quantity']} {i['unit']} of {i['lot_id']}" for i in details["inputs"])
    outs = ", ".join(f"{o['quantity']} {o['unit']} {o['lot_id']}" for o in details["outputs"])
    text = f"{ins} -> {outs}"
    if details.get("role") == "input":
        text += f" (this lot: {details['consumed']} consumed, {details['remaining']} remain)"
    return text


def _role_details(event: str, args: dict[str, Any]) -> dict[str, Any]:
    """This lot's part in a transformation: an input (what was consumed, what remains) or an output."""
    if event == "LotConsumed":
        return {"role": "input", "consumed": str(args["quantity"]), "remaining": str(args["remaining"])}
    return {"role": "output"}


def _details(
    kind: str,
    event: str,
    args: dict[str, Any],
    *,
    spec_of: Callable[[int, int], dict[str, Any]],
    lot_text: Callable[[bytes], str],
) -> dict[str, Any]:
    if event == "LotOpened":
        return {
            "lot_id": args["lotIdText"],
            "gtin": format_gtin(args["gtin"]),
            "supplier": args["supplier"],
            "quantity": str(args["quantity"]),
            "unit": _unpad(args["unit"]),
            "produced_from_ms": args["producedFromMs"],
            "produced_to_ms": args["producedToMs"],
        }
    if event == "LotSplit" and kind == "opened":
        parent = bytes(args["parentId"])
        return {
            "lot_id": args["childLotIdText"],
            "split_from": lot_text(parent),
            "split_from_key": hex0x(parent),
            "quantity": str(args["quantity"]),
            "custodian": args["custodian"],
        }
    if event == "LotSplit":
        return {
            "child_lot_id": args["childLotIdText"],
            "child_key": hex0x(args["childId"]),
            "quantity": str(args["quantity"]),
            "remaining": str(args["parentRemaining"]),
        }
    if kind.startswith("transfer_"):
        return {"from": args["from"], "to": args["to"]}
    if event == "LotCertified":
        return {
            "gtin": format_gtin(args["gtin"]),
            "spec_version": args["specVersion"],
            "samples": args["samples"],
            "spec": spec_of(args["gtin"], args["specVersion"]),
        }
    # LotRejected
    return {
        "gtin": format_gtin(args["gtin"]),
        "spec_version": args["specVersion"],
        "samples": args["samples"],
        "reason": RejectReason(args["reason"]).name.lower(),
        "metric": _unpad(args["metric"]),
        "value": str(args["value"]),
        "bound": str(args["bound"]),
        "evidence": hex0x(args["evidence"]),
        "spec": spec_of(args["gtin"], args["specVersion"]),
    }
