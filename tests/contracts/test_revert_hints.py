"""A revert's message ends with what to do about it (``contracts.revert.REVERT_HINTS``)."""

from __future__ import annotations

from eth_abi import encode
from eth_utils import function_signature_to_4byte_selector

from contracts.participant_ids import action_id, party_role
from contracts.revert import REVERT_HINTS, _error_table, decode_revert

PARTY = "0x" + "11" * 20
PARTY_CHECKSUMMED = "0x1111111111111111111111111111111111111111"


def _data(signature: str, types: list[str], values: list[object]) -> bytes:
    return function_signature_to_4byte_selector(signature) + encode(types, values)


def test_device_registry_not_admitted_names_the_commands_that_admit() -> None:
    err = decode_revert(
        _data("DeviceRegistryNotAdmitted(address)", ["address"], [PARTY]), context="enrollP256"
    )
    assert err.error_name == "DeviceRegistryNotAdmitted"
    assert err.hint is not None and err.message.endswith(err.hint)
    assert str(err).startswith(f"DeviceRegistryNotAdmitted(party={PARTY_CHECKSUMMED}) in enrollP256: ")
    assert "supet.device.enroll" in err.hint
    assert "`supet consortium apply --policy FILE`" in err.hint
    assert "`supet party apply ROLE`" in err.hint
    assert f"`supet party status {PARTY_CHECKSUMMED}`" in err.hint
    assert "`supet deploy --dev`" in err.hint


def test_gated_contract_names_the_action_by_name() -> None:
    data = _data(
        "LotRegistryNotAdmitted(address,bytes32)",
        ["address", "bytes32"],
        [PARTY, bytes(action_id("supet.lot.open"))],
    )
    err = decode_revert(data)
    assert err.hint is not None
    assert f"{PARTY_CHECKSUMMED} is not admitted for supet.lot.open" in err.hint


def test_untrusted_ca_says_who_registers_it() -> None:
    err = decode_revert(_data("DeviceRegistryUntrustedCA(bytes32)", ["bytes32"], [b"\xab" * 32]))
    assert err.hint is not None and f"0x{'ab' * 32}" in err.hint and "`supet ca register" in err.hint


def test_a_change_only_the_members_may_make_names_the_vote_commands() -> None:
    """Issue 12, finding 12: the admin alone neither widens an action nor lowers a quorum; the revert
    says which commands put it to the members, with the action and role by name."""
    widen = decode_revert(
        _data(
            "ParticipantRegistryActionRoleByVoteOnly(bytes32,bytes32)",
            ["bytes32", "bytes32"],
            [bytes(action_id("supet.lot.open")), bytes(party_role("supplier"))],
        )
    )
    assert widen.hint is not None
    assert "`supet consortium propose-action-role supet.lot.open supplier`" in widen.hint
    assert "`supet consortium approve-action-role supet.lot.open supplier`" in widen.hint
    lower = decode_revert(
        _data(
            "ParticipantRegistryQuorumLowerByVoteOnly(bytes32,uint32,uint32)",
            ["bytes32", "uint32", "uint32"],
            [bytes(party_role("bank")), 2, 1],
        )
    )
    assert lower.hint is not None and "from 2 to 1" in lower.hint
    assert "`supet consortium propose-quorum bank 1`" in lower.hint


def test_an_error_without_advice_keeps_its_plain_message() -> None:
    err = decode_revert(_data("DeviceRegistryDeviceExists(bytes32)", ["bytes32"], [b"\x01" * 32]))
    assert err.hint is None
    assert str(err) == f"DeviceRegistryDeviceExists(deviceId=0x{'01' * 31}01)"
    assert decode_revert(b"").hint is None


def test_every_hint_is_for_an_error_some_contract_declares() -> None:
    declared = {spec.name for spec in _error_table().values()}
    assert set(REVERT_HINTS) <= declared, set(REVERT_HINTS) - declared
