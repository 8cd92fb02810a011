"""The pure helpers of bench/store.py: the database URL it derives, the region tables it
writes into sovra.toml, and how it merges rounds and draws its headline figures.
No servers and no timings: the figures below are made up."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

from sovra.config import Config, render_default_config

_BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(_BENCH))  # store.py imports the load generator of gateway.py
_SPEC = importlib.util.spec_from_file_location("store_bench", _BENCH / "store.py")
assert _SPEC is not None and _SPEC.loader is not None
bench = importlib.util.module_from_spec(_SPEC)
sys.modules["store_bench"] = bench
_SPEC.loader.exec_module(bench)


def test_with_database_keeps_user_host_and_options() -> None:
    dsn = "postgresql://postgres@127.0.0.1:5433/sovra_test?sslmode=disable"
    assert (
        bench.with_database(dsn, "sovra_bench_1")
        == "postgresql://postgres@127.0.0.1:5433/sovra_bench_1?sslmode=disable"
    )
    with pytest.raises(ValueError, match="not a postgresql"):
        bench.with_database("sqlite:///x.db", "y")


def test_region_tables_put_each_region_in_its_bucket_without_a_secret(tmp_path: Path) -> None:
    buckets = {"eu-central-pl": "bench-pl-1", "ap-southeast-vn": "bench-vn-1"}
    tables = bench.region_tables(buckets, "http://127.0.0.1:8333")
    path = tmp_path / "sovra.toml"
    path.write_text(render_default_config("bench", ["PL", "VN"]) + tables)
    config = Config.load(path)
    for region, bucket in buckets.items():
        got = config.region(region)
        assert got.is_s3 and got.blobs == f"s3://{bucket}/records"
        assert got.endpoint == "http://127.0.0.1:8333"
        assert (got.access_key_env, got.secret_key_env) == (bench.ACCESS_ENV, bench.SECRET_ENV)
    assert "secret_key =" not in tables and "access_key =" not in tables


def _phase(per_s: float, p99: float | None, errors: int = 0) -> dict[str, Any]:
    return {
        "per_s": per_s,
        "p50_ms": None if p99 is None else p99 / 2,
        "p99_ms": p99,
        "errors": errors,
        "first_errors": [f"e{per_s}"] * errors,
        "server_cpu_ms_per_request": {"server": per_s / 100},
        "client_cpu_ms_per_request": 1.0,
    }


def _run(ingest: float, access: float, *, errors: int = 0, **extra: Any) -> dict[str, Any]:
    return {
        "ingest": _phase(ingest, 10.0, errors),
        "access": _phase(access, None),
        "backend_cpu_ms_per_request": {"postgres": ingest / 1000},
        **extra,
    }


def test_mean_phases_averages_rounds_and_sums_errors() -> None:
    batching = {"records_per_segment": 2.0}
    merged = bench.mean_phases(
        [_run(100, 300, errors=1, batching=batching), _run(200, 100, errors=2)]
    )
    assert merged["ingest"]["per_s"] == 150
    assert merged["ingest"]["rounds"] == [100, 200]
    assert merged["ingest"]["errors"] == 3
    assert merged["ingest"]["server_cpu_ms_per_request"] == {"server": 1.5}
    assert merged["access"]["p99_ms"] is None  # no latency known is not a latency of 0
    assert merged["backend_cpu_ms_per_request"] == {"postgres": 0.15}
    assert merged["batching"] == batching  # from the rounds that measured it


@pytest.mark.parametrize(
    ("two", "not_slower"),
    [((120.0, 200.0), True), ((100.0, 200.0), True), ((99.0, 300.0), False)],
)
def test_summary_ratios_and_the_two_replica_verdict(
    two: tuple[float, float], not_slower: bool
) -> None:
    setups = {
        "floor": bench.mean_phases([_run(400, 500)]),
        "sqlite": bench.mean_phases([_run(300, 350)]),
        "pg_s3": bench.mean_phases([_run(100, 200)]),
        "two_replicas": bench.mean_phases([_run(*two, errors=1)]),
    }
    got = bench.summary(setups)
    assert got["ratio_vs_floor"] == 0.25
    assert got["access_ratio_vs_floor"] == 0.4
    assert got["two_replicas_ingest_per_s"] == two[0]
    assert got["two_vs_one_replica"]["ingest"] == round(two[0] / 100, 3)
    assert got["two_replicas_not_slower"] is not_slower
    assert got["errors"] == {"floor": 0, "sqlite": 0, "pg_s3": 0, "two_replicas": 1}
    for key in ("pg_s3_ingest_per_s", "pg_s3_access_per_s", "floor_ingest_per_s"):
        assert key in got
    # pg_s3 ingest: server 1.0 + backend 0.1 + client 1.0 ms, at 100/s.
    assert got["cpu_ms_per_request"]["pg_s3"]["ingest"] == 2.1
    assert got["cores_busy"]["pg_s3"]["ingest"] == 0.21


@pytest.mark.parametrize(
    ("workers", "replicas", "each", "expected"),
    [(2, 1, False, 2), (2, 2, False, 1), (4, 2, False, 2), (1, 2, False, 1), (2, 2, True, 2)],
)
def test_replicas_share_the_workers_unless_each_gets_all(
    workers: int, replicas: int, each: bool, expected: int
) -> None:
    # Like with like: one replica of W workers against two of W/2 (never below one).
    assert bench.replica_workers(workers, replicas, each=each) == expected
