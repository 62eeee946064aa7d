"""``supet deploy --dev``: a development consortium that admits the deployer, refused outside development;
and the hint a not-admitted party gets (``contracts.revert.REVERT_HINTS``) names real commands."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest
import typer

from contracts.anvil import AnvilNode
from contracts.chain import Chain, dev_accounts
from contracts.deploy import deploy_suite
from contracts.participant_ids import action_id
from contracts.participants import ParticipantRegistryClient
from contracts.revert import REVERT_HINTS
from supet.cli import contracts_cmd

DEPLOYER, OUTSIDER = ("0x" + bytes(a.key).hex() for a in dev_accounts(2))
ENROLL = action_id("supet.device.enroll")


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        ((), {"SUPET_ENVIRONMENT": "production"}, "refused with SUPET_ENVIRONMENT=production"),
        (("--admin", dev_accounts(3)[2].address), {}, "--dev and --admin do not go together"),
    ],
)
def test_dev_refused_before_anything_is_sent(
    args: tuple[str, ...],
    env: dict[str, str],
    expected: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    cli: Callable[..., tuple[int, str]],
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    out_file = tmp_path / "deployment.json"
    # an address nobody listens on: the refusal comes before the chain is asked
    code, out = cli(
        "deploy", "--rpc", "http://127.0.0.1:9", "--dev", "--out", str(out_file), *args, key=DEPLOYER
    )
    assert code == 1 and expected in out and "nothing was deployed" in out, out
    assert "deploy.dev_refused" in out
    assert not out_file.exists()


def test_dev_refused_on_a_chain_that_is_not_a_dev_chain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Callable[..., tuple[int, str]]
) -> None:
    monkeypatch.setattr(contracts_cmd, "DEV_CHAIN_IDS", frozenset({1337}))  # the embedded chain is 31337
    out_file = tmp_path / "deployment.json"
    code, out = cli("deploy", "--rpc", "embedded", "--dev", "--out", str(out_file))
    assert code == 1 and "not a development chain" in out and "--force-dev" in out, out
    assert not out_file.exists()


@pytest.mark.slow
def test_dev_consortium_admits_the_deployer_only() -> None:
    """The function behind --dev, on the embedded chain: before it nobody may enroll, then the deployer."""
    chain = Chain.embedded()
    deployer = dev_accounts(1)[0]
    deployment = deploy_suite(chain, deployer)
    participants = ParticipantRegistryClient(chain, deployment)
    assert not participants.is_admitted(deployer.address, ENROLL)
    contracts_cmd._dev_consortium(chain, deployment, deployer)
    assert participants.is_admitted(deployer.address, ENROLL)
    assert not participants.is_admitted(dev_accounts(2)[1].address, ENROLL)
    registry = deployment.contract(chain, "DeviceRegistry")
    gate = chain.call(registry.functions.admissionGate())
    assert gate == deployment.address("ParticipantRegistry")


@pytest.mark.anvil
def test_deploy_dev_lets_the_deployer_enroll_and_tells_others_how_to_be_admitted(
    anvil_node: AnvilNode, tmp_path: Path, cli: Callable[..., tuple[int, str]]
) -> None:
    snapshot = anvil_node.snapshot()
    run = partial(cli, key=DEPLOYER)  # as the deployer unless a call names another key
    try:
        dep = tmp_path / "deployment.json"
        common = ("--rpc", anvil_node.url, "--deployment", str(dep))
        code, out = run("deploy", "--rpc", anvil_node.url, "--dev", "--out", str(dep))
        assert code == 0 and "admitted as supplier" in out, out
        assert run("ca", "create", "--out-dir", str(tmp_path / "ca"))[0] == 0
        assert run("ca", "register", "--cert", str(tmp_path / "ca/ca.cert.pem"), *common)[0] == 0
        for n in (1, 2):
            key, csr, cert = (str(tmp_path / f"dev{n}.{ext}") for ext in ("key", "csr", "pem"))
            assert run("device", "keygen", "--out", key)[0] == 0
            assert run("device", "csr", "--key", key, "--device-id", f"SN-{n}", "--out", csr)[0] == 0
            ca = ("--ca-key", str(tmp_path / "ca/ca.key.pem"), "--ca-cert", str(tmp_path / "ca/ca.cert.pem"))
            assert run("ca", "issue", *ca, "--csr", csr, "--out", cert)[0] == 0
        enroll = ("device", "enroll", "--ca-cert", str(tmp_path / "ca/ca.cert.pem"), *common)
        dev1 = ("--cert", str(tmp_path / "dev1.pem"), "--device-key", str(tmp_path / "dev1.key"))
        dev2 = ("--cert", str(tmp_path / "dev2.pem"), "--device-key", str(tmp_path / "dev2.key"))
        code, out = run(*enroll, *dev1)
        assert code == 0 and "enrolled SN-1" in out, out
        # another party is not admitted: the error says which commands admit it
        code, out = run(*enroll, *dev2, key=OUTSIDER)
        assert code == 1 and "DeviceRegistryNotAdmitted" in out, out
        assert "supet consortium apply --policy FILE" in out and "supet party apply ROLE" in out, out
        assert f"supet party status {dev_accounts(2)[1].address}" in out, out
        assert "supet deploy --dev" in out, out
    finally:
        anvil_node.revert(snapshot)


def _command_tree() -> object:
    from supet.cli import app

    return typer.main.get_command(app)


def test_every_command_a_hint_names_exists() -> None:
    root = _command_tree()
    named = 0
    for error, hint in REVERT_HINTS.items():
        for quoted in re.findall(r"`(supet [^`]+)`", hint):
            words = quoted.split()[1:]
            command = root
            for word in words:
                if word.startswith("-") or not re.fullmatch(r"[a-z][a-z0-9-]*", word):
                    break
                subcommands = getattr(command, "commands", None)
                if subcommands is None:
                    break  # a positional argument of a leaf command
                assert word in subcommands, f"{error}'s hint names `{quoted}`: no command {word!r}"
                command = subcommands[word]
            flags = [w for w in words if w.startswith("--")]
            known = {opt for param in getattr(command, "params", []) for opt in param.opts}
            assert set(flags) <= known, f"{error}'s hint names `{quoted}`: unknown {set(flags) - known}"
            named += 1
    assert named >= 6
