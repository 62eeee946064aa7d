"""Where a served proof bundle's CPU time goes: each stage of ``GET /v1/readings/{digest}/proof``.

    .venv/bin/python bench/bench_http_stages.py [--readings 2000] [--n 2000]

In one process, without HTTP: a service on anvil (SQLite) with ``--readings`` anchored readings of one
device, its owner signed in. Timed, as CPU microseconds per call (``time.process_time`` over ``--n``
calls on random readings, this process alone, so the figures hold on a shared machine):

- the stages the access guard and the route run: the token's check (its revocation is a query), the
  reading and its batch (one query), the device's owner (the registry mirror), the whole access
  decision, the bundle (parsing the stored reading, its digest, the path checked to the root), the
  JSON encoding;
- the whole app (ASGI, no socket): ``GET /healthz`` and ``GET /v1/readings/{digest}/proof``, each
  through every middleware, the router, the dependencies and the thread-pool hops.

What HTTP adds (uvicorn's parsing and the sockets) is the difference to bench_proofs.py's CPU per request.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "helpers"))

from reads import token
from support import TestConsortium

from contracts.anvil import AnvilNode
from contracts.chain import Chain, dev_accounts
from contracts.deploy import deploy_suite
from ledger_service.access.facts import _owner_of
from ledger_service.access.guard import enforce
from ledger_service.access.policy import Caller, CallerKind, Data
from ledger_service.api import create_app
from ledger_service.auth.deps import AuthState
from ledger_service.config import Settings
from ledger_service.jsonio import dumps_exact
from ledger_service.proofs import parse_digest, proof_bundle, reading_status

PROFILE: str | None = None


def per_call(label: str, n: int, fn: Callable[[int], Any]) -> float:
    fn(0)
    t = time.process_time()
    for i in range(n):
        fn(i)
    us = (time.process_time() - t) / n * 1e6
    print(f"  {label:<58} {us:8,.0f} us", flush=True)
    return us


async def asgi_get(app: Any, path: str, headers: list[tuple[bytes, bytes]]) -> int:
    status = 0
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    raw, _, query = path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": raw,
        "raw_path": raw.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"bench"), *headers],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    await app(scope, receive, send)
    return status


def per_asgi_call(label: str, n: int, app: Any, paths: list[str], headers: list[tuple[bytes, bytes]]) -> None:
    async def go() -> tuple[float, float]:
        assert await asgi_get(app, paths[0], headers) == 200
        t = time.process_time()
        main = time.thread_time()
        for i in range(n):
            status = await asgi_get(app, paths[i % len(paths)], headers)
            if status != 200:
                raise RuntimeError(f"{paths[i % len(paths)]}: {status}")
        return (time.process_time() - t) / n * 1e6, (time.thread_time() - main) / n * 1e6

    if PROFILE:
        import cProfile

        with cProfile.Profile(time.thread_time) as prof:
            asyncio.run(go())
        prof.dump_stats(PROFILE + "." + label.rsplit(" ", 1)[-1].replace("/", "_"))
    process, main = asyncio.run(go())
    print(f"  {label:<58} {process:8,.0f} us (event loop's thread: {main:,.0f} us)", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--readings", type=int, default=2000)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument(
        "--profile", metavar="PREFIX", help="also cProfile the whole-app loops (event loop thread)"
    )
    args = ap.parse_args()
    global PROFILE
    PROFILE = args.profile
    with AnvilNode() as node, tempfile.TemporaryDirectory() as tmp:
        chain = Chain.connect(node.url)
        dep = deploy_suite(chain, dev_accounts(1)[0])
        dep_file = Path(tmp) / "deployment.json"
        dep.save(dep_file)
        consortium = TestConsortium(chain, dep)
        signer = consortium.enroll("SN-STAGES-0001")
        now = int(time.time() * 1000) - 50_000
        bodies = [
            orjson.dumps(signer.sign({"temp_c": 21.0, "good_units": k}, ts_ms=now + k // 10).to_json_obj())
            for k in range(args.readings)
        ]
        settings = Settings(
            chain=node.url,
            deployment=dep_file,
            database_url=f"sqlite:///{tmp}/stages.db",
            data_dir=Path(tmp),
            batch_max_readings=args.readings,
            batch_max_seconds=600,
        )
        app = create_app(settings)
        with TestClient(app) as client:
            tok = token(client, consortium.factory)
            r = client.post("/v1/readings", content=b'{"readings":[' + b",".join(bodies) + b"]}")
            r.raise_for_status()
            digests = [item["receipt"]["digest"] for item in r.json()["results"]]
            auth = {"Authorization": f"Bearer {tok}"}
            deadline = time.monotonic() + 300
            while client.get(f"/v1/readings/{digests[-1]}/proof", headers=auth).status_code != 200:
                if time.monotonic() > deadline:
                    raise RuntimeError("not anchored in 300 s")
                time.sleep(0.5)
            random.shuffle(digests)
            service = app.state.service
            state: AuthState = app.state.auth
            raw = [parse_digest(d) for d in digests]
            device = signer.device_id
            party = Caller(CallerKind.PARTY, party=consortium.factory.address)
            n = args.n
            print(f"{len(digests):,} anchored readings; CPU per call, {n:,} calls each:", flush=True)
            per_call(
                "token check (cached signature + revocation query)",
                n,
                lambda i: state.authenticator.verify_token(tok),
            )
            per_call(
                "reading + batch (one ORM query)", n, lambda i: reading_status(service, raw[i % len(raw)])
            )
            per_call("device owner (registry mirror)", n, lambda i: _owner_of(service, device))
            per_call(
                "access decision (enforce: reading, owner, policy)",
                n,
                lambda i: enforce(
                    service, state.roles, Data.READING, party, {"digest": digests[i % len(digests)]}
                ),
            )
            sts = [reading_status(service, d) for d in raw[:200]]
            per_call(
                "proof bundle from the read row (parse, digest, path check)",
                n,
                lambda i: proof_bundle(service, raw[i % 200], status=sts[i % 200]),
            )
            bundles = [proof_bundle(service, d, status=s) for d, s in zip(raw[:200], sts, strict=True)]
            per_call("JSON encoding (orjson)", n, lambda i: dumps_exact(bundles[i % 200]))
            per_asgi_call("whole app (ASGI): GET /healthz", n, app, ["/healthz"], [])
            per_asgi_call(
                "whole app (ASGI): GET /v1/readings/{digest}/proof",
                n,
                app,
                [f"/v1/readings/{d}/proof" for d in digests],
                [(b"authorization", f"Bearer {tok}".encode())],
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
