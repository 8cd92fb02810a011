"""CPU of the HTTP edge alone, per signed request: the application around the flows.

    .venv/bin/python bench/http_edge_cost.py [--quick] [--requests N] [--no-access-log]

A throwaway deployment (in-process custodians) is opened and its application built with
:func:`sovra.server.create_app`, with ``Gateway.ingest`` and ``Gateway.access`` replaced by
functions that return an answer made once beforehand (a real receipt, a real access
result): what is left of a request is the edge. Each request is a signed
``POST /v1/records`` or ``POST /v1/access`` as the Python client sends it (its headers, a
fresh token each), handed to the application as an ASGI call on uvloop, in this process:
the middlewares, the body's bounded parse and its model, the token check (signature,
claims, the replay store's transaction), the hand-off to a worker thread, the answer's
encoding, the access line (on, as ``sovra serve`` has it, written to /dev/null) and the
request metrics. uvicorn's own work (HTTP parsing, the socket) is not in it.

The figure is the process's CPU time (every thread's, ``time.process_time``) per request,
the best of three rounds: on a shared machine CPU is steadier than a rate, and the best
round the one least disturbed. To compare two versions, run this with each one's
``PYTHONPATH``, in turns. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvloop

from sovra.auth import make_token
from sovra.deployment import Deployment
from sovra.keys import load_ed25519
from sovra.server import create_app
from sovra.server.workers import configure_logging

NOTE = "Klient prosi o kontakt: tel. +48 601 234 567, e-mail anna.kowalska@example.pl."
HEADERS = [
    (b"host", b"127.0.0.1:8000"),
    (b"accept", b"*/*"),
    (b"accept-encoding", b"gzip, deflate"),
    (b"connection", b"keep-alive"),
    (b"user-agent", b"python-httpx/0.29.0"),
    (b"content-type", b"application/json"),
]


def _scope(path: str, body: bytes, token: str) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [
            *HEADERS,
            (b"content-length", str(len(body)).encode()),
            (b"authorization", f"Sovra {token}".encode()),
        ],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


async def _call(app: Any, scope: dict[str, Any], body: bytes) -> int:
    given = False

    async def receive() -> dict[str, Any]:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.sleep(3600)  # no disconnect while the answer is written
        return {"type": "http.disconnect"}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return int(sent[0]["status"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds")
    parser.add_argument("--requests", type=int, default=None, help="per round and route")
    parser.add_argument("--no-access-log", action="store_true", help="as --log-level warning")
    args = parser.parse_args()
    count = args.requests or (500 if args.quick else 3000)
    if not args.no_access_log:
        stderr, sys.stderr = sys.stderr, open(os.devnull, "w")  # noqa: SIM115
        try:
            configure_logging("info")  # its handler writes the access lines to /dev/null
        finally:
            sys.stderr = stderr
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "deployment"
        Deployment.init(root, jurisdictions=["PL"], custodians="in-process")
        dep = Deployment.open(root)
        try:
            figures = uvloop.run(_measure(dep, root, count))
        finally:
            dep.close()
            logging.getLogger("sovra.access").handlers.clear()
    print(f"edge CPU per request, flows replaced ({count} a round, best of 3):")
    for route, us in figures.items():
        print(f"  POST {route:12} {us:8.1f} us")
    print(json.dumps({"bench": "http_edge_cost", "requests": count, "cpu_us": figures}))
    return 0


async def _measure(dep: Deployment, root: Path, count: int) -> dict[str, float]:
    svc = dep.store.get_principal("svc-pl")
    key = load_ed25519(root / "principals" / "svc-pl.key")
    gw = dep.gateway
    receipt = gw.ingest(svc, subject_id="s-0", jurisdiction="PL", content=NOTE)
    result = gw.access(svc, purpose="customer-support", record_ids=[receipt.record_id])
    gw.ingest = lambda *_, **__: receipt  # type: ignore[method-assign]
    gw.access = lambda *_, **__: result  # type: ignore[method-assign]
    app = create_app(dep)
    bodies = {
        "/v1/records": {"subject_id": "s-1", "jurisdiction": "PL", "content": NOTE},
        "/v1/access": {"purpose": "customer-support", "record_ids": [receipt.record_id]},
    }
    figures: dict[str, float] = {}
    for path, fields in bodies.items():
        body = json.dumps(fields).encode()  # as the client encodes it

        def signed(n: int, path: str = path, body: bytes = body) -> list[dict[str, Any]]:
            now = int(time.time())
            return [
                _scope(path, body, make_token(key, "svc-pl", "POST", path, body, now_s=now))
                for _ in range(n)
            ]

        await _rounds(app, signed, body, 50)  # warm-up: threads, caches
        figures[path] = min([await _rounds(app, signed, body, count) for _ in range(3)])
    return figures


async def _rounds(
    app: Any, signed: Callable[[int], list[dict[str, Any]]], body: bytes, count: int
) -> float:
    scopes = signed(count)  # tokens made before the clock starts: the client's work
    start = time.process_time()
    for scope in scopes:
        status = await _call(app, scope, body)
        if status >= 300:
            raise SystemExit(f"{scope['path']} answered {status}")
    return round((time.process_time() - start) / count * 1e6, 1)


if __name__ == "__main__":
    sys.exit(main())
