"""Fixtures for the end-to-end flow tests: a real deployment on disk with a movable clock."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.flows.two_homes import two  # noqa: F401  (a fixture: subjects of two countries)

from sovra.deployment import Deployment
from sovra.model import Role


class Clock:
    """A wall clock the test can move forward."""

    def __init__(self, start: float = 1_790_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One initialised deployment, copied per test (key generation is the slow part)."""
    root = tmp_path_factory.mktemp("template") / "deployment"
    Deployment.init(root, origin="sovra.test/log", custodians="in-process")
    return root


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def root(template: Path, tmp_path: Path) -> Path:
    import shutil

    target = tmp_path / "deployment"
    shutil.copytree(template, target)
    return target


@pytest.fixture
def dep(root: Path, clock: Clock) -> Iterator[Deployment]:
    d = Deployment.open(root, clock=clock)
    yield d
    d.close()


@pytest.fixture
def principals(dep: Deployment) -> dict[str, object]:
    """The principals ``init`` registers, by id, plus a subject principal for Anna."""
    out: dict[str, object] = {p.id: p for p in dep.store.list_principals()}
    anna = dep.gateway.commitment("PL", "anna@example.pl")
    dep.register("subject-anna", "PL", Role.SUBJECT, subject=anna)
    out["subject-anna"] = dep.store.get_principal("subject-anna")
    return out
