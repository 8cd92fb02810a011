"""Fixtures for the ``sovra`` command: real deployments on disk and a real gateway on loopback.

The gateway runs uvicorn in a thread on a free port, over a deployment opened with the
wall clock: the command signs its request tokens with ``time.time()``, as a user's would.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from sovra.cli import app
from sovra.deployment import Deployment
from sovra.server import create_app
from sovra.server.background import running

SOVRA = Path(sys.executable).parent / "sovra"
"""The console script installed beside the interpreter that runs the tests."""

ORIGIN = "sovra.test/cli"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Ran:
    """How one run of the command ended."""

    code: int
    out: str
    err: str

    @property
    def message(self) -> str:
        """Standard error with every run of whitespace made one space (Rich may wrap)."""
        return " ".join(self.err.split())

    def json(self) -> Any:
        """Standard output parsed as JSON."""
        return json.loads(self.out)


def _no_traceback(text: str) -> None:
    assert "Traceback" not in text, text
    assert 'File "' not in text, text


def _run_in_process(*args: str | Path, stdin: bytes | None = None) -> Ran:
    argv = [str(a) for a in args]
    result = CliRunner().invoke(app, argv, input=stdin)
    # typer.Exit and usage errors end as SystemExit; anything else is a crash the user
    # would see as a traceback.
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"sovra {argv} crashed") from result.exception
    _no_traceback(result.output)
    return Ran(result.exit_code, result.stdout, result.stderr)


def _run_script(*args: str | Path, env: dict[str, str] | None = None) -> Ran:
    proc = subprocess.run(
        [str(SOVRA), *map(str, args)],
        capture_output=True,
        text=True,
        # A guard against a hang, not a measure of speed: a loaded machine may take minutes.
        timeout=300,
        env={**os.environ, **(env or {})},
        check=False,
    )
    _no_traceback(proc.stdout + proc.stderr)
    return Ran(proc.returncode, proc.stdout, proc.stderr)


Sovra = Callable[..., Ran]


@pytest.fixture
def sovra() -> Sovra:
    """Run the command in-process (Typer's runner); fails the test on a traceback."""
    return _run_in_process


@pytest.fixture
def sovra_script() -> Sovra:
    """Run the installed console script as a child process; fails on a traceback."""
    return _run_script


@pytest.fixture
def free_port() -> int:
    """A loopback port nothing listens on (it was bound, then released)."""
    return _free_port()


@pytest.fixture
def dead_url(free_port: int) -> str:
    """A loopback URL where nothing listens."""
    return f"http://127.0.0.1:{free_port}"


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One initialised deployment, copied where a test needs its own."""
    root = tmp_path_factory.mktemp("template") / "deployment"
    Deployment.init(root, origin=ORIGIN, custodians="in-process")
    return root


@dataclass
class Live:
    """A gateway serving over HTTP, and the deployment behind it."""

    url: str
    root: Path
    dep: Deployment

    def args(self, *more: str | Path) -> list[str | Path]:
        """*more* followed by the options that point the command at this gateway."""
        return [*more, "--url", self.url, "--deployment", self.root]


@pytest.fixture(scope="module")
def live(template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """A real uvicorn server over a copy of the template, for every test of a module."""
    root = tmp_path_factory.mktemp("live") / "deployment"
    shutil.copytree(template, root)
    dep = Deployment.open(root)  # the wall clock, as the command's tokens use
    try:
        with running(create_app(dep)) as url:
            yield Live(url, root, dep)
    finally:
        dep.close()


REGIONS = ("eu-central-pl", "ap-southeast-vn", "eu-central-de", "us-east", "cn-north")
"""The storage regions of a deployment ``sovra init`` makes with its default jurisdictions."""


def s3_options(bucket: Any, regions: tuple[str, ...] = REGIONS) -> list[str]:
    """``--blobs`` for each of *regions*, each under a prefix of its own in the test's
    place on the throwaway S3 server (a ``tests.conftest.S3Bucket``), and its endpoint
    and credentials' variables."""
    args = []
    for region in regions:
        args += ["--blobs", f"{region}={bucket.url}{region}"]
    return [
        *args,
        "--s3-endpoint", bucket.endpoint,
        "--s3-access-key-env", "SOVRA_TEST_S3_ACCESS_KEY",
        "--s3-secret-key-env", "SOVRA_TEST_S3_SECRET_KEY",
    ]  # fmt: skip
