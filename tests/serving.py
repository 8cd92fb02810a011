"""``sovra serve`` as real processes on loopback ports, for tests of several gateways (workers,
replicas) over one deployment: start one, wait until it answers, stop it, sign as one of the
deployment's principals."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from sovra.client import Client

SOVRA = Path(sys.executable).with_name("sovra")
"""The console script installed beside the interpreter that runs the tests."""


_OWN_OUTPUT: dict[int, Path] = {}
"""The output file :func:`serve` made for a server, by its process id."""


def _output_of(proc: subprocess.Popen[str]) -> str:
    own = _OWN_OUTPUT.get(proc.pid)
    return own.read_text() if own is not None else f"exit code {proc.returncode}"


def free_port() -> int:
    """A loopback port nothing listens on (it was bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(
    root: Path,
    port: int,
    workers: int | None = 1,
    *,
    output: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen[str]:
    """``sovra serve ROOT`` on *port*, its output appended to *output*, or else its
    standard error to a file of its own (which :func:`stop` reads and removes): a pipe
    nobody reads would fill with the access log's lines under load and stop the server;
    *env* over this process's environment; *workers* None leaves the command's default."""
    own = output is None
    if output is None:
        fd, name = tempfile.mkstemp(prefix="sovra-serve-", suffix=".log")
        os.close(fd)
        output = Path(name)
    with output.open("a") as sink:
        proc = subprocess.Popen(
            [SOVRA, "serve", root, "--port", str(port)]
            + ([] if workers is None else ["--workers", str(workers)]),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL if own else sink,
            stderr=sink if own else subprocess.STDOUT,
            text=True,
            env={**os.environ, **(env or {})},
        )
    if own:
        _OWN_OUTPUT[proc.pid] = output
    return proc


def wait_for(url: str, proc: subprocess.Popen[str], seconds: float = 120) -> None:
    """Return once the gateway at *url* answers ``/v1/info``; fail if *proc* ends first."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, _output_of(proc)
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
    proc.wait(timeout=60)
    own = _OWN_OUTPUT.pop(proc.pid, None)
    err = (output or own).read_text() if (output or own) is not None else ""
    if own is not None:
        own.unlink(missing_ok=True)
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
