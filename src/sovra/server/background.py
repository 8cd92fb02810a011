"""Work the server does beside its requests, in background threads.

:func:`running` serves an ASGI application on a loopback port, for embedding the gateway
(or a custodian service) in a process that does other work, and for end-to-end tests and
benchmarks that need a real HTTP server::

    with running(create_app(deployment)) as url:
        Client(url, ...).ingest(...)

:func:`publishing` publishes the log's checkpoint on a schedule while the server runs
(``[log] publish_every_s``), so the newest checkpoint never lags the log by more than
that, even where nothing publishes after each batch or a publication failed.
"""

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from sovra.errors import ConfigError, SovraError

__all__ = ["following", "publishing", "running"]

_logger = logging.getLogger("sovra.server")


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


@contextmanager
def publishing(publish: Callable[[], object], every_s: float) -> Iterator[None]:
    """Call *publish* every *every_s* seconds in a daemon thread until the block ends.

    A :class:`~sovra.errors.SovraError` from *publish* is logged and the schedule goes
    on: the next round publishes what this one could not.

    Raises:
        ConfigError: *every_s* is not a positive number of seconds.
    """
    with _every(publish, every_s, "sovra-publish", "scheduled checkpoint publication"):
        yield


@contextmanager
def following(follow: Callable[[], object], every_s: float = 0.5) -> Iterator[None]:
    """Call *follow* every *every_s* seconds in a daemon thread until the block ends: a
    worker takes up what another worker changed (the active policy pack), within a second.

    Raises:
        ConfigError: *every_s* is not a positive number of seconds.
    """
    with _every(follow, every_s, "sovra-follow", "following the other workers"):
        yield


@contextmanager
def _every(work: Callable[[], object], every_s: float, name: str, what: str) -> Iterator[None]:
    if not every_s > 0:
        raise ConfigError(f"a publication interval must be positive, got {every_s!r}")
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(every_s):
            try:
                work()
            except SovraError as exc:
                failure = exc.diagnostics()
            else:
                continue
            _logger.error("%s failed: %s", what, failure)

    thread = threading.Thread(target=loop, name=name, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
