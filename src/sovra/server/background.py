"""Run an ASGI application on a loopback port in a background thread.

For embedding the gateway (or a custodian service) in a process that does other work, and
for end-to-end tests and benchmarks that need a real HTTP server::

    with running(create_app(deployment)) as url:
        Client(url, ...).ingest(...)
"""

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from sovra.errors import ConfigError

__all__ = ["running"]


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def running(app: Any, *, host: str = "127.0.0.1", start_timeout_s: float = 10.0) -> Iterator[str]:
    """Serve *app* on a free port of *host* until the block ends; yields its base URL.

    Raises:
        ConfigError: the server did not start within *start_timeout_s*.
    """
    server = uvicorn.Server(
        uvicorn.Config(app, host=host, port=_free_port(host), log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout_s
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        if not server.started:
            raise ConfigError(f"the server did not start on {host} within {start_timeout_s} s")
        yield f"http://{host}:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(timeout=start_timeout_s)
