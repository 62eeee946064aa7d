"""``supet serve`` as a real process, for tests that kill, restart or run several instances.

- :class:`ServiceProcess`: one ``supet serve`` subprocess in a session of its own (killed with its
  children), started and waited for on ``/healthz``; ``kill`` sends SIGKILL by default;
- :func:`service_env`: the environment of a service on a test's anvil deployment and database, with
  small batches and no verify workers.

Importable as ``service_process`` (tests/helpers is on sys.path).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from faults import Deployed

from contracts.anvil import free_port

SUPET = Path(sys.executable).with_name("supet")


class ServiceProcess:
    """``supet serve`` in a subprocess of its own (own session: killed with its children)."""

    def __init__(self, *, env: dict[str, str], cwd: Path, log: Path) -> None:
        self.env = env
        self.cwd = cwd
        self.log = log
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 40.0) -> None:
        assert self.proc is None
        self.starts += 1
        with self.log.open("ab") as out:
            out.write(f"\n===== start {self.starts} =====\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                [str(SUPET), "serve", "--port", str(self.port), "--log-level", "warning"],
                env=self.env,
                cwd=self.cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"supet serve exited with {self.proc.returncode}: {self.tail()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"supet serve did not answer /healthz in {timeout:.0f}s: {self.tail()}")
            time.sleep(0.05)

    def kill(self, sig: int = signal.SIGKILL, timeout: float = 15.0) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)  # the process group is the service's own (start_new_session)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=timeout)

    def tail(self, n: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else ""


def service_env(deployed: Deployed, db_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUPET_")}
    env.update(
        SUPET_CHAIN=deployed.node.url,
        SUPET_DEPLOYMENT=str(deployed.deployment_file),
        SUPET_DATABASE_URL=db_url,
        SUPET_BATCH_MAX_READINGS="12",
        SUPET_BATCH_MAX_SECONDS="0.15",
        SUPET_VERIFY_WORKERS="0",
        SUPET_REGISTRY_REFRESH_SECONDS="0",
        SUPET_ANCHOR_TIMEOUT_SECONDS="10",
    )
    return env
