"""Start and stop a local anvil node (tests, benchmarks, the demo on a real node).

anvil comes from the npm package ``@foundry-rs/anvil-linux-amd64`` pinned in
``package.json`` (``npm ci`` puts it at ``node_modules/.bin/anvil``); an ``anvil``
on PATH works too. With ``hardfork="osaka"`` the EIP-7951 P-256 precompile is on.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import requests

from contracts.build import node_modules_dir
from contracts.errors import ChainError


def find_anvil() -> Path | None:
    """The anvil binary: ``$SUPET_ANVIL``, the project's ``node_modules``, or PATH."""
    override = os.environ.get("SUPET_ANVIL")
    if override:
        return Path(override)
    local = node_modules_dir() / ".bin" / "anvil"
    if local.exists():
        return local
    on_path = shutil.which("anvil")
    return Path(on_path) if on_path else None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class AnvilNode:
    """One anvil process on 127.0.0.1. Use as a context manager, or call start/stop."""

    def __init__(
        self,
        *,
        port: int | None = None,
        hardfork: str = "osaka",
        state_file: Path | None = None,
        block_time: float | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.port = port or free_port()
        self.hardfork = hardfork
        self.state_file = state_file
        self.block_time = block_time
        self.extra_args = extra_args
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self, *, timeout: float = 20.0) -> AnvilNode:
        binary = find_anvil()
        if binary is None:
            raise ChainError(
                "anvil not found: run `npm ci` in the project directory "
                "(it installs @foundry-rs/anvil-linux-amd64), or put anvil on PATH"
            )
        args = [
            str(binary),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--hardfork",
            self.hardfork,
            "--silent",
        ]
        if self.state_file is not None:
            args += ["--state", str(self.state_file)]
        if self.block_time is not None:
            args += ["--block-time", str(self.block_time)]
        args += list(self.extra_args)
        self._proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr else ""
                raise ChainError(f"anvil exited with {self._proc.returncode}: {err.strip()}")
            try:
                r = requests.post(
                    self.url,
                    json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []},
                    timeout=1,
                )
                if r.ok and "result" in r.json():
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.05)
        self.stop()
        raise ChainError(f"anvil did not answer eth_chainId on {self.url} within {timeout:.0f}s")

    def stop(self, *, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        """Stop the node by its pid (SIGTERM lets ``--state`` be written; SIGKILL does not)."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)

    def rpc(self, method: str, params: list[Any]) -> Any:
        """A raw JSON-RPC call (``anvil_reorg``, ``evm_mine``...)."""
        r = requests.post(
            self.url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": params}, timeout=10
        )
        body = r.json()
        if "error" in body:
            raise ChainError(f"{method} failed: {body['error']}")
        return body.get("result")

    def snapshot(self) -> str:
        """Take a snapshot of the chain (``evm_snapshot``); :meth:`revert` rolls back to it."""
        return str(self.rpc("evm_snapshot", []))

    def revert(self, snapshot: str) -> None:
        """Roll the chain back to ``snapshot`` and set its clock to the wall clock again.

        anvil's ``evm_revert`` also rolls its clock back by the time spent since the snapshot, so
        without the reset a node shared by many tests falls minutes behind the devices' clocks, and
        readings taken "now" would lie after the anchoring of their own batch.
        """
        self.rpc("evm_revert", [snapshot])
        self.rpc("evm_setTime", [int(time.time())])

    def __enter__(self) -> AnvilNode:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
