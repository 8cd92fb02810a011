"""Fixtures for hostile input: a real deployment served by uvicorn on a loopback port.

The deployment uses the wall clock, because the requests are signed with ``time.time()``
as a client's would be, and a short body deadline so the slow-body cases end soon.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from sovra.deployment import Deployment
from sovra.server import create_app
from sovra.server.background import running

BODY_TIMEOUT_S = 2


@pytest.fixture(scope="session")
def hostile_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile") / "deployment"
    Deployment.init(root, origin="sovra.test/hostile", custodians="in-process")
    toml = root / "sovra.toml"
    text = toml.read_text()
    # A short deadline keeps each slow-body case to seconds; any value shows the same thing.
    text = re.sub(r"(?m)^body_timeout_s = \d+", f"body_timeout_s = {BODY_TIMEOUT_S}", text)
    toml.write_text(text)
    return root


@pytest.fixture
def served(hostile_template: Path, tmp_path: Path) -> Iterator[tuple[Deployment, str]]:
    """A fresh copy of the deployment, open and served; yields it and its base URL."""
    import shutil

    root = tmp_path / "deployment"
    shutil.copytree(hostile_template, root)
    dep = Deployment.open(root)
    try:
        with running(create_app(dep)) as url:
            yield dep, url
    finally:
        dep.close()
