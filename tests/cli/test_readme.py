"""The README's command sections are true: the quick start runs as written, and the command reference
names only commands and flags that exist.

The quick start (the ``sh`` block after ``<!-- readme-test: quickstart -->``) runs top to bottom under
``set -euo pipefail`` on its own anvil and ledger, on free ports given through the ``RPC`` and
``LEDGER`` variables the block itself reads: the README's text is what runs. The reference (after
``<!-- readme-test: commands -->``) is checked against the command tree of ``supet`` (cheap, no chain).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import typer
from support import require
from typer.testing import CliRunner

from contracts.anvil import free_port

ROOT = Path(__file__).resolve().parents[2]
#: The quick start takes about a minute on a busy 2-core machine; more means something hangs.
QUICKSTART_TIMEOUT_S = 240
README = ROOT / "README.md"

#: What the quick start must take a newcomer through (issue 13, item 7), in this order.
QUICKSTART_STEPS = (
    "supet deploy ",
    "supet ca create ",
    "supet ca register ",
    "supet device keygen ",
    "supet device csr ",
    "supet ca issue ",
    "supet device enroll ",
    "supet serve ",
    "supet reading submit ",
    "supet reading proof ",
    "supet verify ",
)


def readme_block(marker: str, text: str | None = None) -> str:
    """The fenced ``sh`` block right after ``<!-- readme-test: MARKER -->`` in the README."""
    text = README.read_text(encoding="utf-8") if text is None else text
    found = re.search(
        rf"<!-- readme-test: {re.escape(marker)} -->\s*\n```sh\n(.*?)\n```", text, flags=re.DOTALL
    )
    assert found, f"README.md has no ```sh block after <!-- readme-test: {marker} -->"
    return found.group(1) + "\n"


def test_quickstart_takes_every_step_in_order() -> None:
    block = readme_block("quickstart")
    lines = [line for line in block.splitlines() if line.lstrip().startswith(("supet ", "SUPET_", "DIGEST="))]
    positions = []
    for step in QUICKSTART_STEPS:
        at = [i for i, line in enumerate(lines) if step in line]
        assert at, f"the quick start never runs `{step.strip()}`"
        positions.append(at[0])
    assert positions == sorted(positions), "the quick start's steps are out of order"
    assert "--dev" in next(line for line in lines if "supet deploy " in line)


# ---------------------------------------------------------------- the quick start, run as written


def _scrubbed_env(**extra: str) -> dict[str, str]:
    """This process's environment without any SUPET_* setting (the README sets what it needs)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPET_")}
    env.update(extra)
    return env


def _stop_group(proc: subprocess.Popen[bytes]) -> None:
    """Stop what the block left running (its anvil and ledger share the shell's process group)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)


@pytest.mark.anvil
@pytest.mark.slow
@pytest.mark.scenario  # every step of the quick start, as a newcomer runs it: a minute or more
def test_quickstart_runs_as_written(tmp_path: Path) -> None:
    require(
        (ROOT / "node_modules" / ".bin" / "anvil").exists() or shutil.which("anvil") is not None,
        "anvil is not installed (run `npm ci`)",
    )
    require(shutil.which("curl") is not None, "curl is not installed (the quick start waits with it)")
    require((ROOT / ".venv" / "bin" / "supet").exists(), "no .venv (run `make demo` or `make test` once)")
    script = "set -euo pipefail\n" + readme_block("quickstart")
    env = _scrubbed_env(
        RPC=f"http://127.0.0.1:{free_port()}",
        LEDGER=f"http://127.0.0.1:{free_port()}",
        TMPDIR=str(tmp_path),  # the block's `mktemp -d` lands here
    )
    log = (
        tmp_path / "quickstart.log"
    )  # a file, not a pipe: the block's background jobs keep no reader waiting
    started = time.monotonic()
    with log.open("w", encoding="utf-8") as sink:
        proc = subprocess.Popen(
            ["bash", "-c", script],
            cwd=ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        timed_out = False
        try:
            proc.wait(timeout=QUICKSTART_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            _stop_group(proc)  # its anvil and ledger, if a failure left them running
            proc.wait(timeout=10)
    elapsed = time.monotonic() - started
    out = log.read_text(encoding="utf-8")
    assert not timed_out, (
        f"the README's quick start did not finish in {QUICKSTART_TIMEOUT_S} s:\n{out[-4000:]}"
    )
    assert proc.returncode == 0, f"the README's quick start failed (exit {proc.returncode}):\n{out[-6000:]}"
    assert "VALID: SN-1 seq 1" in out, out[-4000:]
    assert "agree: offline and on-chain verdicts are both valid" in out, out[-4000:]
    (bundle,) = tmp_path.glob("*/bundle.json")
    assert '"device_id": "SN-1"' in bundle.read_text(encoding="utf-8")
    print(f"README quick start: {elapsed:.1f} s")


# ---------------------------------------------------------------- the command reference


def _app() -> typer.Typer:
    from supet.cli import app

    return app


def _command_tree() -> Any:
    """The click command tree of ``supet`` (typer's own copy of click: duck-typed here)."""
    return typer.main.get_command(_app())


_WORD = re.compile(r"^[a-z][a-z0-9-]*(\|[a-z][a-z0-9-]*)*$")


def reference_commands(block: str) -> list[tuple[str, list[list[str]], list[str]]]:
    """Each ``supet ...`` command of the reference: (its text, the command paths it names, its flags).

    ``a|b`` in the path names alternatives (``supet lot split|transfer ...``: two paths); ``;`` separates
    two commands on one line; ``#`` starts a comment. The path is the leading lower-case words.
    """
    commands: list[tuple[str, list[list[str]], list[str]]] = []
    for raw in block.splitlines():
        line = raw.split(" #", 1)[0].strip()
        if raw.lstrip().startswith("#") or not line:
            continue
        for part in line.split(" ; "):
            words = part.split()
            assert words[0] == "supet", f"a reference line that is not a supet command: {raw!r}"
            paths: list[list[str]] = [[]]
            for word in words[1:]:
                if not _WORD.match(word):
                    break
                paths = [[*p, alt] for p in paths for alt in word.split("|")]
            flags = re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", part)
            commands.append((part, paths, flags))
    return commands


def _resolve(root: Any, path: list[str]) -> Any:
    command = root
    for name in path:
        assert hasattr(command, "commands"), f"`supet {' '.join(path)}`: {command.name} has no subcommands"
        sub = command.commands.get(name)
        assert sub is not None, (
            f"`supet {' '.join(path)}`: no command {name!r} (have {sorted(command.commands)})"
        )
        command = sub
    return command


def _unknown_flags(commands: list[Any], flags: list[str]) -> list[str]:
    """The flags that none of ``commands`` takes."""
    known = {opt for command in commands for param in command.params for opt in param.opts}
    return [flag for flag in flags if flag not in known]


def test_reference_parser_reads_alternatives_and_flags() -> None:
    parsed = reference_commands(
        "supet lot split|transfer LOT ...   # comment --not-a-flag\n"
        "supet spec set --gtin GTIN --metric temp_c=2..8 ; supet spec show --gtin GTIN\n"
        "# a comment line\n"
    )
    assert parsed == [
        ("supet lot split|transfer LOT ...", [["lot", "split"], ["lot", "transfer"]], []),
        ("supet spec set --gtin GTIN --metric temp_c=2..8", [["spec", "set"]], ["--gtin", "--metric"]),
        ("supet spec show --gtin GTIN", [["spec", "show"]], ["--gtin"]),
    ]
    root = _command_tree()
    with pytest.raises(AssertionError, match="no command 'nosuch'"):
        _resolve(root, ["device", "nosuch"])
    keygen = _resolve(root, ["device", "keygen"])
    assert _unknown_flags([keygen], ["--scheme", "--out", "--bogus"]) == ["--bogus"]


def test_reference_names_only_real_commands_and_flags() -> None:
    root = _command_tree()
    commands = reference_commands(readme_block("commands"))
    assert len(commands) > 20, "the reference block is missing or was not parsed"
    runner, app = CliRunner(), _app()
    for text, paths, flags in commands:
        resolved = [_resolve(root, path) for path in paths]
        for path in paths:
            result = runner.invoke(app, [*path, "--help"])
            assert result.exit_code == 0, f"`supet {' '.join(path)} --help` failed:\n{result.output}"
        unknown = _unknown_flags(resolved, flags)
        assert not unknown, f"README: `{text}` uses {unknown}, which no command it names takes"


def test_quickstart_uses_only_real_flags() -> None:
    root = _command_tree()
    block = readme_block("quickstart").replace("\\\n", " ")
    lines = [re.sub(r"^.*?(?=supet )", "", line) for line in block.splitlines() if "supet " in line]
    checked = 0
    for line in lines:
        line = line.split(" #", 1)[0].split(" &", 1)[0].rstrip(")")
        for text, paths, flags in reference_commands(line.replace('"', "")):
            unknown = _unknown_flags([_resolve(root, path) for path in paths], flags)
            assert not unknown, f"README quick start: `{text}` uses {unknown}"
            checked += 1
    assert checked == len(QUICKSTART_STEPS)
