"""``sovra serve`` as real processes on loopback ports, for tests of several gateways (workers,
replicas) over one deployment: start one, wait until it answers, stop it, sign as one of the
deployment's principals."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import httpx

from sovra.client import Client

SOVRA = Path(sys.executable).with_name("sovra")
"""The console script installed beside the interpreter that runs the tests."""


def free_port() -> int:
    """A loopback port nothing listens on (it was bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(
    root: Path,
    port: int,
    workers: int = 1,
    *,
    output: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen[str]:
    """``sovra serve ROOT`` on *port*; its output piped, or appended to *output* (a server
    that logs much under load would fill a pipe nobody reads and stop); *env* over this
    process's environment."""
    sink: int | IO[str] = subprocess.PIPE
    if output is not None:
        sink = output.open("a")
    try:
        return subprocess.Popen(
            [SOVRA, "serve", root, "--port", str(port), "--workers", str(workers)],
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT if output is not None else subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
    finally:
        if output is not None:
            assert not isinstance(sink, int)
            sink.close()


def wait_for(url: str, proc: subprocess.Popen[str], seconds: float = 120) -> None:
    """Return once the gateway at *url* answers ``/v1/info``; fail if *proc* ends first."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            if httpx.get(f"{url}/v1/info", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"{url} does not answer after {seconds} s")


def stop(proc: subprocess.Popen[str], output: Path | None = None) -> str:
    """TERM the server, wait, and check it stopped cleanly; its standard error (or output)."""
    proc.terminate()
    _, err = proc.communicate(timeout=60)
    if output is not None:
        err = output.read_text()
    assert proc.returncode in (0, -signal.SIGTERM), err
    assert "Traceback" not in err, err
    return err


def key(root: Path, principal: str) -> Any:
    """The Ed25519 key ``sovra init`` made for *principal*."""
    from sovra.keys import load_ed25519

    return load_ed25519(root / "principals" / f"{principal}.key")


def client(root: Path, url: str, principal: str, **kwargs: Any) -> Client:
    """A client of the gateway at *url* signing as *principal*."""
    return Client(url, principal, key(root, principal), **kwargs)
