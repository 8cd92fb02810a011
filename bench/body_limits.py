"""What an oversized HTTP body costs the gateway before it is refused.

    .venv/bin/python bench/body_limits.py [--quick]

A real gateway (uvicorn on a loopback port, in this process) is sent a request that
declares a 200 MB body (20 MB with ``--quick``) and then streams it, as a client that
ignores the refusal would. Reported: the seconds until the 413 arrives, how many bytes
the client had managed to send by then, and the growth of this process's peak resident
memory (``ru_maxrss``) over the request: what the body cost the server. The body is made
before the baseline is taken, so it is not counted.

The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import resource
import socket
import tempfile
import time
from pathlib import Path

from sovra.deployment import Deployment
from sovra.server import create_app
from sovra.server.background import running


def _send(url: str, size: int, body: bytes) -> tuple[int, float, int]:
    host, port = url.removeprefix("http://").split(":")
    head = (
        f"POST /v1/records HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
        f"content-length: {size}\r\n\r\n"
    ).encode()
    started = time.perf_counter()
    sent = 0
    with socket.create_connection((host, int(port)), timeout=120) as sock:
        sock.sendall(head)
        view = memoryview(body)
        try:
            while sent < size:
                sent += sock.send(view[sent : sent + (1 << 20)])
        except (BrokenPipeError, ConnectionResetError):
            pass
        sock.settimeout(120)
        answer = sock.recv(4096)
    took = time.perf_counter() - started
    return int(answer.split(b" ")[1]), took, sent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    size = (20 if args.quick else 200) * 1_000_000
    body = b"{" + b" " * (size - 1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "deployment"
        Deployment.init(root, origin="sovra.bench/limits")
        dep = Deployment.open(root)
        try:
            with running(create_app(dep)) as url:
                before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                status, took, sent = _send(url, size, body)
                after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        finally:
            dep.close()
    print(
        json.dumps(
            {
                "declared_bytes": size,
                "status": status,
                "seconds_to_answer": round(took, 3),
                "bytes_sent_before_refusal": sent,
                "peak_rss_growth_mb": round((after - before) / 1024, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
