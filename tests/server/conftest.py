"""Fixtures for the server's tests: a deployment on disk, and ``sovra serve`` run as a user
runs it (the console script in a subprocess, on a free loopback port)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest
from tests import serving
from tests.initial_log import logged_by_init
from tests.serving import free_port

from sovra.deployment import Deployment
from sovra.model import LogEntry

Serve = Callable[[Path], AbstractContextManager[str]]


@pytest.fixture(scope="session")
def server_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One initialised deployment (key generation is the slow part), copied per test."""
    root = tmp_path_factory.mktemp("server") / "deployment"
    Deployment.init(root, origin="sovra.test/server", custodians="in-process")
    return root


@pytest.fixture
def root(server_template: Path, tmp_path: Path) -> Path:
    """A deployment of this test's own."""
    copy = tmp_path / "deployment"
    shutil.copytree(server_template, copy)
    return copy


@contextmanager
def _serving(root: Path) -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = serving.serve(root, port, workers=None)
    try:
        serving.wait_for(url, proc)
        yield url
    finally:
        serving.stop(proc)


@pytest.fixture
def serve() -> Serve:
    """``with serve(root) as url:`` runs ``sovra serve root`` until the block ends."""
    return _serving


def shell_block(doc: Path, marker: str) -> str:
    """The first fenced bash block after *marker* in *doc*."""
    text = doc.read_text(encoding="utf-8")
    found = re.search(re.escape(marker) + r".*?\n```bash\n(.*?)\n```", text, re.DOTALL)
    assert found, f"{doc} has no bash block after {marker!r}"
    return found.group(1)


@pytest.fixture
def tools() -> None:
    """bash, curl and openssl, for the documents' shell examples (CI must have them)."""
    missing = [t for t in ("bash", "curl", "openssl") if shutil.which(t) is None]
    if missing:
        reason = f"{', '.join(missing)} not installed (scripts/bootstrap installs curl)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run the documented curl example")
        pytest.skip(reason)


def run_shell(script: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """*script* run by bash in *cwd*, with *env* over this process's environment."""
    return subprocess.run(
        ["bash", "-c", script],
        env={**os.environ, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def logged(root: Path) -> list[LogEntry]:
    """Every entry of the deployment's transparency log after those of ``sovra init``,
    oldest first."""
    dep = Deployment.open(root)
    try:
        log = dep.gateway.log
        return [LogEntry.from_bytes(e) for e in log.entries(logged_by_init(dep), log.size)]
    finally:
        dep.close()
