"""Where the server's time of one signed HTTP request goes, from a profile of the server.

    .venv/bin/python bench/http_profile.py [--quick] [--requests N]

A throwaway deployment (in-process custodians) is served by uvicorn in this process, with
sovra's settings (:func:`sovra.server.workers.uvicorn_config`), under ``cProfile``; one
client process sends ``--requests`` signed ingests, then as many signed accesses, one at
a time. So that one profiler sees all of it, the routes run on the event loop's thread
instead of the thread pool (one request at a time, the work is the same). The profile is
cut into the parts of the edge (token check and its pieces, the body's bounded parse and
model, the response's encoding, the access line), the flow itself (``Gateway.ingest`` /
``Gateway.access``), and the rest (uvicorn, the middlewares, the direct routes' plumbing).
Figures are microseconds of CPU per request (the server thread's, ``time.thread_time``:
a wait on an fsync costs nothing) under the profiler, which inflates Python-heavy code
(the framework) more than C (crypto, SQLite): read them as shares. The last line
printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import multiprocessing as mp
import pstats
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fastapi.dependencies.utils
import fastapi.routing
import uvicorn

import sovra.server.direct
from sovra.client import Client
from sovra.deployment import Deployment
from sovra.keys import load_ed25519

NOTE = "Klient prosi o kontakt: tel. +48 601 234 567, e-mail anna.kowalska@example.pl. " * 2

# (label, function name, file suffix, caller): cumulative time of each, per request; with
# a caller, only the calls from a function of that name (the flows verify signatures and
# parse JSON too). An empty suffix names a method of pyca/cryptography's Ed25519 key.
PARTS = [
    ("token check (whole)", "authenticate", "sovra/auth.py", ""),
    ("  Ed25519 verify", "verify", "", "_signed_by"),
    ("  replay store (nonce spent, principal re-read)", "spend_nonces", "sovra/store/_sql.py", ""),
    ("  principal lookup (first request only)", "get_principal", "sovra/store/_sql.py", ""),
    ("  claims parse", "_parse", "sovra/auth.py", "authenticate"),
    ("  principal and key load", "_load", "sovra/auth.py", "authenticate"),
    ("body: bounded parse (BodyLimits)", "parse_json", "sovra/model.py", "__call__"),
    ("body: model (direct route)", "model_validate", "pydantic/main.py", "__call__"),
    ("response: orjson encode", "render", "sovra/server/answers.py", ""),
    ("access log: the JSON line", "_line", "sovra/server/ops.py", ""),
    ("flow: Gateway.ingest", "ingest", "sovra/gateway.py", ""),
    ("flow: Gateway.access", "access", "sovra/gateway.py", ""),
]


async def _inline(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return func(*args, **kwargs)


def _client(url: str, root: str, requests: int, ready: Any) -> None:
    key = load_ed25519(Path(root) / "principals" / "svc-pl.key")
    with Client(url, "svc-pl", key) as client:
        ready.wait()
        ids = [client.ingest(f"p-{n}", "PL", NOTE)["record_id"] for n in range(requests)]
        for n in range(requests):
            client.access("customer-support", record_ids=[ids[n % 100]])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="under a minute")
    parser.add_argument("--requests", type=int, default=None, help="of each kind")
    args = parser.parse_args()
    requests = args.requests or (300 if args.quick else 2000)
    fastapi.routing.run_in_threadpool = _inline  # type: ignore[assignment]
    fastapi.dependencies.utils.run_in_threadpool = _inline  # type: ignore[assignment]
    sovra.server.direct.in_thread = _inline
    from sovra.server import create_app
    from sovra.server.workers import uvicorn_config

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "deployment"
        Deployment.init(root, custodians="in-process")
        dep = Deployment.open(root)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        server = uvicorn.Server(uvicorn_config(create_app(dep)))
        ctx = mp.get_context("spawn")
        ready = ctx.Event()
        client = ctx.Process(target=_client, args=(url, str(root), requests, ready))
        client.start()
        # CPU time of this thread, where everything of the server runs: a wait on an
        # fsync or a lock costs a core nothing and shows as nothing.
        profile = cProfile.Profile(time.thread_time)

        async def serve() -> None:
            # Enabled on the event loop's thread, where the routes now run too.
            waiter = threading.Thread(target=_wait_and_go, args=(server, ready, client))
            waiter.start()
            profile.enable()
            await server.serve(sockets=[sock])
            profile.disable()
            waiter.join()

        started = time.perf_counter()
        asyncio.run(serve())
        wall = time.perf_counter() - started
        dep.close()
    stats = pstats.Stats(profile)
    figures = _parts(stats, 2 * requests)
    whole = _whole(stats, 2 * requests)
    print(f"server time per request, profiled ({requests} ingests + {requests} accesses)")
    for label, value in figures.items():
        print(f"  {label:38} {value:9.1f} us")
    print(f"  {'whole request (both kinds, mean)':38} {whole:9.1f} us")
    summary = {"requests": requests, "us_per_request": figures, "whole_us": whole}
    print(json.dumps(summary | {"wall_s": round(wall, 1)}))
    return 0


def _wait_and_go(server: uvicorn.Server, ready: Any, client: Any) -> None:
    while not server.started:
        time.sleep(0.01)
    ready.set()
    client.join()
    server.should_exit = True


def _parts(stats: pstats.Stats, count: int) -> dict[str, float]:
    """Cumulative time of each part, per request; a part under the token check counts
    only its calls from ``authenticate`` (the flows verify signatures and parse JSON too)."""
    out: dict[str, float] = {}
    raw: dict[tuple[str, int, str], Any] = stats.stats  # type: ignore[attr-defined]
    for label, name, suffix, caller in PARTS:
        cum = 0.0
        for (path, _, func), (_, _, _, whole, callers) in raw.items():
            if suffix:
                if not (path.endswith(suffix) and func == name):
                    continue
            elif not (path == "~" and f"'{name}' of" in func and "Ed25519" in func):
                continue
            if caller:
                cum += sum(c[3] for (_, _, f), c in callers.items() if f == caller)
            else:
                cum += whole
        per = count // 2 if label.startswith("flow:") else count
        out[label] = round(cum / per * 1e6, 1)
    return out


def _whole(stats: pstats.Stats, count: int) -> float:
    raw: dict[tuple[str, int, str], Any] = stats.stats  # type: ignore[attr-defined]
    cum = sum(
        v[3] for (path, _, func), v in raw.items() if func == "run_asgi" and "uvicorn" in path
    )
    return round(cum / count * 1e6, 1)


if __name__ == "__main__":
    sys.exit(main())
