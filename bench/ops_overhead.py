"""CPU per request added by the operations middleware (request id, metrics, access log).

    .venv/bin/python bench/ops_overhead.py [--quick]

One deployment (in-process custodians), one application; the same ASGI requests are
driven directly (no sockets, no client) through the application as built and through
the same application without the middleware, alternately in rounds, so both see the
same machine load. Routes: ``GET /healthz`` (the cheapest: the middleware's whole cost
stands out) and ``GET /v1/log/checkpoint`` (a real public route). Each figure is process
CPU time per request, the median of the rounds. The access log is measured both off
(the ``sovra.access`` logger above INFO) and on (INFO, to a discarded stream). Prints
one JSON object last.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sovra.deployment import Deployment
from sovra.server import create_app
from sovra.server.ops import Operations


async def _drive(app: Any, path: str, n: int) -> float:
    scope_base = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"bench")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 8750),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            assert message["status"] == 200, message

    started = time.process_time()
    for _ in range(n):
        await app(dict(scope_base), receive, send)
    return (time.process_time() - started) / n


def _without_operations(app: Any) -> Any:
    """The same application's inner stack, below the operations middleware."""
    stack = app.middleware_stack or app.build_middleware_stack()
    app.middleware_stack = stack
    layer = stack
    while layer is not None and not isinstance(layer, Operations):
        layer = getattr(layer, "app", None)
    assert isinstance(layer, Operations), "no operations middleware in the stack"
    return layer._app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds")
    args = parser.parse_args()
    rounds, per_round = (5, 2000) if args.quick else (15, 5000)
    access = logging.getLogger("sovra.access")
    access.propagate = False
    access.addHandler(logging.StreamHandler(io.StringIO()))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "deployment"
        Deployment.init(root, custodians="in-process")
        dep = Deployment.open(root)
        try:
            dep.gateway.log.checkpoint()
            app = create_app(dep)
            outer = app.middleware_stack or app.build_middleware_stack()
            app.middleware_stack = outer
            inner = _without_operations(app)
            loop = asyncio.new_event_loop()
            results: dict[str, Any] = {}
            for path in ("/healthz", "/v1/log/checkpoint"):
                samples: dict[str, list[float]] = {"without": [], "log_off": [], "log_on": []}
                loop.run_until_complete(_drive(outer, path, 200))  # warm
                for _ in range(rounds):
                    samples["without"].append(
                        loop.run_until_complete(_drive(inner, path, per_round))
                    )
                    access.setLevel(logging.WARNING)
                    samples["log_off"].append(
                        loop.run_until_complete(_drive(outer, path, per_round))
                    )
                    access.setLevel(logging.INFO)
                    samples["log_on"].append(
                        loop.run_until_complete(_drive(outer, path, per_round))
                    )
                med = {k: statistics.median(v) * 1e6 for k, v in samples.items()}
                results[path] = {
                    "cpu_us_without": round(med["without"], 1),
                    "cpu_us_metrics": round(med["log_off"], 1),
                    "cpu_us_metrics_and_access_log": round(med["log_on"], 1),
                    "added_us_metrics": round(med["log_off"] - med["without"], 1),
                    "added_us_access_log": round(med["log_on"] - med["log_off"], 1),
                }
                print(path, results[path], file=sys.stderr)
            loop.close()
        finally:
            dep.close()
    print(json.dumps({"rounds": rounds, "requests_per_round": per_round, "routes": results}))


if __name__ == "__main__":
    main()
