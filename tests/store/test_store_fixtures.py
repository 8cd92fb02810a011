"""The shared ``pg_dsn`` fixture: skips locally, fails in CI, isolates and cleans up."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[2]
ONE_PG_TEST = "tests/store/test_store_metadata.py::test_record_round_trip_is_exact[postgres]"


def run_pytest(env: dict[str, str], test: str = ONE_PG_TEST) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", test],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def env_without(*names: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in names}
    env.update(extra)
    return env


def test_without_a_dsn_postgres_tests_skip_locally() -> None:
    result = run_pytest(env_without("CI", "SOVRA_TEST_PG_DSN"))
    assert result.returncode == 0, result.stdout
    assert "1 skipped" in result.stdout
    assert "scripts/with-postgres" in result.stdout


def test_without_a_dsn_postgres_tests_fail_in_ci() -> None:
    result = run_pytest(env_without("SOVRA_TEST_PG_DSN", CI="true"))
    assert result.returncode == 1, result.stdout
    assert "CI must run the PostgreSQL tests" in result.stdout


def _test_schemas(dsn: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'test\\_%'"
        ).fetchall()
    return {r[0] for r in rows}


def test_each_test_gets_its_own_schema_dropped_afterwards(pg_dsn: str) -> None:
    base = os.environ["SOVRA_TEST_PG_DSN"]
    with psycopg.connect(pg_dsn) as conn:
        row = conn.execute("SHOW search_path").fetchone()
    assert row is not None
    mine = row[0]
    assert mine.startswith(f"test_{os.getpid()}_")
    assert mine in _test_schemas(base)
    child = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", ONE_PG_TEST],
        cwd=ROOT,
        env=env_without("CI"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    out, _ = child.communicate(timeout=120)
    assert child.returncode == 0, out
    assert "1 passed" in out  # its PostgreSQL test ran, in a schema of its own
    # That schema is gone (other workers' schemas may come and go meanwhile); ours stays.
    left = _test_schemas(base)
    assert not {s for s in left if s.startswith(f"test_{child.pid}_")}, left
    assert mine in left


def test_tables_land_in_the_test_schema_not_public(pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn) as conn:
        conn.execute("CREATE TABLE visible_only_here (x int)")
    with psycopg.connect(os.environ["SOVRA_TEST_PG_DSN"]) as conn:
        found = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE tablename = 'visible_only_here' "
            "AND schemaname = 'public'"
        ).fetchone()
    assert found == (0,)
