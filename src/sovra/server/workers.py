"""Several worker processes serving one port: how ``sovra serve --workers N`` uses every core.

The parent binds the listening socket once, then forks *N* workers; each opens the
deployment itself (its own database connections, its own in-memory log tree) and serves
the inherited socket, so the kernel spreads connections over them. What must be one
across workers lives in the store: the log's indices come from the database's write
transaction (its write lock is the one sequencer), and each worker's log catches up on
the leaves the others appended.

The parent serves nothing. It restarts a worker that dies (a worker opens the deployment
without start-up recovery: a restart must never quarantine another worker's pending
rows), and on SIGTERM or SIGINT stops every worker gracefully and waits for them. A
worker whose parent is gone stops too (``PR_SET_PDEATHSIG``), so no worker outlives a
killed parent.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import os
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn

from sovra.errors import ConfigError
from sovra.server.ops import AccessLines

__all__ = [
    "LOG_LEVELS",
    "bind",
    "configure_logging",
    "serve_workers",
    "settle_heap",
    "shared_metrics",
    "uvicorn_config",
]

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
"""``sovra serve --log-level``: at ``info`` and below, one JSON access line per request."""

_logger = logging.getLogger("sovra.server")
_PR_SET_PDEATHSIG = 1
_QUICK_DEATH_S = 2.0
"""A worker that dies sooner than this after it started counts as failing to start."""
_MAX_QUICK_DEATHS = 5


def uvicorn_config(app: Any, **kwargs: Any) -> uvicorn.Config:
    """uvicorn's settings for sovra: the fast HTTP parser and loop when installed, and
    not uvicorn's own access log (sovra writes its own, :mod:`sovra.server.ops`)."""
    http = "httptools" if _importable("httptools") else "h11"
    loop = "uvloop" if _importable("uvloop") else "asyncio"
    kwargs.setdefault("log_level", "warning")
    return uvicorn.Config(
        app, http=http, loop=loop, access_log=False, server_header=False, **kwargs
    )


def configure_logging(level: str) -> None:
    """sovra's loggers at *level* on standard error: the access log (``sovra.access``,
    INFO) as bare JSON lines, anything else as ``LEVEL logger: message``.

    Raises:
        ConfigError: *level* is not one of :data:`LOG_LEVELS`.
    """
    if level not in LOG_LEVELS:
        raise ConfigError(f"--log-level is one of {', '.join(LOG_LEVELS)}, not {level!r}")
    numeric = getattr(logging, level.upper())
    sovra = logging.getLogger("sovra")
    sovra.setLevel(numeric)
    if not any(isinstance(h, _Handler) for h in sovra.handlers):
        handler = _Handler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        sovra.addHandler(handler)
    access = logging.getLogger("sovra.access")
    access.setLevel(numeric)
    if not any(isinstance(h, AccessLines) for h in access.handlers):
        access.addHandler(AccessLines(sys.stderr))
    access.propagate = False


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler :func:`configure_logging` installs (so a second call adds none)."""


@contextlib.contextmanager
def shared_metrics() -> Iterator[str]:
    """A private directory through which worker processes share their metrics
    (prometheus-client's multiprocess mode), named in ``PROMETHEUS_MULTIPROC_DIR`` for
    the block and removed after it.

    MUST be entered before anything imports prometheus_client: the library reads the
    variable once, when first imported.
    """
    previous = os.environ.get(_METRICS_DIR)
    with tempfile.TemporaryDirectory(prefix="sovra-metrics-") as path:
        os.environ[_METRICS_DIR] = path
        try:
            yield path
        finally:
            if previous is None:
                os.environ.pop(_METRICS_DIR, None)
            else:
                os.environ[_METRICS_DIR] = previous


_METRICS_DIR = "PROMETHEUS_MULTIPROC_DIR"


def settle_heap() -> None:
    """Before serving: take what start-up made out of the garbage collector's way.

    A worker starts with some 83,000 objects (the framework, the scanner's tables, the
    policy) that live as long as it does, and every full collection walked them all
    again: 26 to 42 ms of CPU in which the worker answered nobody. Frozen
    (:func:`gc.freeze`) they are never walked again; what requests allocate is
    collected as before.
    """
    gc.collect()
    gc.freeze()


def _importable(name: str) -> bool:
    try:
        __import__(name)
    except ImportError:
        return False
    return True


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on *host*:*port*, inheritable by forked workers.

    Raises:
        ConfigError: the address cannot be bound (in use, not this machine's).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.set_inheritable(True)
    return sock


def serve_workers(
    sock: socket.socket,
    workers: int,
    open_app: Callable[[], tuple[Any, Callable[[], None]]],
    *,
    in_worker: Callable[[], None] = lambda: None,
    log_level: str = "warning",
) -> int:
    """Serve *sock* from *workers* forked processes until SIGTERM or SIGINT; returns the
    exit status (0 after a requested stop, 1 when workers kept failing to start).

    Each worker calls *in_worker* first (to drop what it must not hold, such as the write
    ends of the custodians' input pipes), then *open_app* for its application and the
    function that closes what the application opened.

    The caller MUST NOT have threads running or databases open: a fork copies neither
    threads nor a connection's locks faithfully.
    """
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    parent = os.getpid()
    children: dict[int, float] = {}
    stopping: list[int] = []

    def start() -> None:
        pid = os.fork()
        if pid == 0:
            _run_worker(parent, sock, open_app, in_worker, log_level)  # never returns
        children[pid] = time.monotonic()

    def stop(signum: int, _frame: object) -> None:
        stopping.append(signum)
        for pid in list(children):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    quick_deaths = 0
    status = 0
    try:
        for _ in range(workers):
            start()
        while children:
            try:
                pid, wait_status = os.wait()
            except ChildProcessError:
                break
            started = children.pop(pid, None)
            if started is None:
                continue  # not a worker (a custodian is waited for by its owner)
            if stopping:
                continue
            code = os.waitstatus_to_exitcode(wait_status)
            quick_deaths = quick_deaths + 1 if time.monotonic() - started < _QUICK_DEATH_S else 0
            if quick_deaths >= _MAX_QUICK_DEATHS:
                _logger.error("workers keep dying at start (last status %s): stopping", code)
                status = 1
                stop(signal.SIGTERM, None)
                continue
            _logger.error("worker %d ended with status %s: starting another", pid, code)
            start()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        sock.close()
    return status


def _run_worker(
    parent: int,
    sock: socket.socket,
    open_app: Callable[[], tuple[Any, Callable[[], None]]],
    in_worker: Callable[[], None],
    log_level: str,
) -> None:
    """A worker's whole life: serve until told to stop, then leave without returning into
    the parent's code (``os._exit``), whatever happens."""
    code = 1
    try:
        # A stop before uvicorn serves ends the worker here; uvicorn stops gracefully on
        # SIGTERM/SIGINT and then raises the signal again to this handler: either way the
        # deployment is closed below.
        for s in (signal.SIGTERM, signal.SIGINT):
            signal.signal(s, _stop)
        _die_with(parent)
        in_worker()
        app, close = open_app()
        settle_heap()
        try:
            uvicorn.Server(uvicorn_config(app, log_level=log_level)).run(sockets=[sock])
        finally:
            close()
        code = 0
    except _Stopped:
        code = 0
    except BaseException:
        _logger.exception("worker %d failed", os.getpid())
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


class _Stopped(BaseException):
    """A worker was told to stop (not an error: BaseException, so nothing catches it)."""


def _stop(_signum: int, _frame: object) -> None:
    raise _Stopped


def _die_with(parent: int) -> None:
    """Have the kernel send SIGTERM to this process when its parent ends (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent ended before the line above
        os._exit(0)
