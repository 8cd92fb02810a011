"""Fixtures shared by the transparency-log tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sovra.ledger.storage import LogStorage, MemoryLogStorage, SQLiteLogStorage


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LogStorage]:
    """Each log storage backend in turn, closed after the test."""
    backend: LogStorage
    if request.param == "postgres":
        from sovra.ledger.postgres import PostgresLogStorage

        backend = PostgresLogStorage(request.getfixturevalue("pg_dsn"))
    elif request.param == "sqlite":
        backend = SQLiteLogStorage(tmp_path / "d.db")
    else:
        backend = MemoryLogStorage()
    yield backend
    backend.close()
