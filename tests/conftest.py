"""Fixtures shared by every test package."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
import pytest


@pytest.fixture
def pg_dsn() -> Iterator[str]:
    """A DSN for the throwaway PostgreSQL cluster, scoped to a fresh empty schema.

    The schema is first on the connection's ``search_path``, so tables a test creates land
    in it and it sees no other test's rows; it is dropped afterwards. Outside
    ``scripts/with-postgres`` the test skips, except under CI, where it fails: a backend
    test that quietly skips in CI proves nothing.
    """
    base = os.environ.get("SOVRA_TEST_PG_DSN")
    if not base:
        reason = (
            "PostgreSQL not available: run the suite through scripts/with-postgres "
            "(SOVRA_TEST_PG_DSN unset)"
        )
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run the PostgreSQL tests")
        pytest.skip(reason)
    schema = f"test_{secrets.token_hex(8)}"
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    parts = urlsplit(base)
    query = [*parse_qsl(parts.query), ("options", f"-csearch_path={schema}")]
    try:
        yield urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def walkable() -> Iterator[Path]:
    """A folder other users may enter, not list (0711); pytest's own are root's alone.

    Where sovra runs as root, each custodian's and the gateway's system user must walk down
    to its part of a deployment: tests of that put the deployment here.
    """
    base = Path(tempfile.mkdtemp(prefix="sovra-walkable-"))
    base.chmod(0o711)
    try:
        yield base
    finally:
        shutil.rmtree(base)
