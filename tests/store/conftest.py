"""Fixtures of the storage conformance suite: one parametrized backend per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from store_backends import Backend


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Every metadata backend: a SQLite file, and a fresh PostgreSQL schema (skipped with
    its reason when SOVRA_TEST_PG_DSN is unset, failing under CI)."""
    if request.param == "sqlite":
        b = Backend("sqlite", str(tmp_path / "meta.db"))
    else:
        b = Backend("postgres", request.getfixturevalue("pg_dsn"))
    yield b
    for s in b.opened:
        s.close()
