"""A ``supet serve`` process for the HTTP benchmarks, and the CPU time it and the client spend.

:func:`start_server` starts the real server (optionally under bench/profile_server.py's per-thread
cProfile); :class:`CpuMeter` reads the server's CPU time (all its threads and its live worker
processes: ``/proc/<pid>/stat`` utime + stime) and the benchmark process's own around a measured
run, so each figure comes with the CPU microseconds per request it cost on each side: on a shared
machine wall-clock rates move with the neighbours' load, CPU per request much less.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
_TICK = os.sysconf("SC_CLK_TCK")


def start_server(env: dict[str, str], port: int, *, profile: str | None = None) -> subprocess.Popen[bytes]:
    """``supet serve`` on ``port`` with ``env``, once it answers ``/readyz``; with ``profile``, under
    cProfile writing its statistics there when terminated."""
    args = ["--port", str(port), "--log-level", "warning"]
    if profile:
        cmd = [sys.executable, str(ROOT / "bench" / "profile_server.py"), *args]
        env = {**env, "SUPET_PROFILE_OUT": profile}
    else:
        # the supet beside this interpreter: the worktree's code when PYTHONPATH names it
        cmd = [str(Path(sys.executable).parent / "supet"), "serve", *args]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180  # a loaded machine: imports alone took over a minute
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"server died: {proc.stderr.read().decode() if proc.stderr else ''}")
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not become ready")


def postgres_backends(dbname: str) -> list[int]:
    """The PIDs of PostgreSQL's backend processes serving database ``dbname`` (their CPU is the
    database's share of a run)."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmd = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if cmd.startswith(b"postgres: ") and f" {dbname} ".encode() in cmd:
                out.append(int(entry))
    return out


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds (user + system) each live thread name of process ``pid`` has used so far (threads of
    one name summed; a thread that ended is not counted)."""
    out: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / _TICK
    return out


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system, all threads) process ``pid`` and its live children (the signature
    workers) have used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    total = (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime: fields 14 and 15 of stat
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        total += sum(process_cpu(int(child)) for child in task.read_text().split())
    return total


@dataclass
class CpuMeter:
    """CPU seconds of the server ``pid`` (with its worker processes, and the servers ``others``) and of
    this process between :meth:`start` and :meth:`stop`."""

    pid: int
    server: float = 0.0
    client: float = 0.0
    #: further server processes (instances on one database) counted with ``pid``
    others: list[int] = field(default_factory=list)
    #: CPU seconds of ``pid``'s threads by name between start and stop (the event loop's thread has the
    #: process's own name; the writer and the verifier name theirs)
    threads: dict[str, float] = field(default_factory=dict)

    def _servers(self) -> float:
        return sum(process_cpu(pid) for pid in (self.pid, *self.others))

    def start(self) -> None:
        self._server0 = self._servers()
        self._threads0 = thread_cpu(self.pid)
        t = os.times()
        self._client0 = t.user + t.system

    def stop(self) -> None:
        self.server = self._servers() - self._server0
        after = thread_cpu(self.pid)
        self.threads = {
            name: cpu - self._threads0.get(name, 0.0)
            for name, cpu in after.items()
            if cpu > self._threads0.get(name, 0.0)
        }
        t = os.times()
        self.client = t.user + t.system - self._client0

    def per_thread(self, requests: int) -> str:
        """The server's first process's CPU per request by thread name, largest first."""
        n = max(requests, 1)
        parts = sorted(self.threads.items(), key=lambda kv: -kv[1])
        return ", ".join(f"{name} {cpu / n * 1e6:,.0f} us" for name, cpu in parts if cpu / n * 1e6 >= 1)

    def per_request(self, requests: int) -> str:
        n = max(requests, 1)
        return f"CPU/request server {self.server / n * 1e6:,.0f} us, client {self.client / n * 1e6:,.0f} us"
