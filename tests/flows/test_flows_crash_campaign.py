"""A few rounds of the crash campaign (bench/crash.py): kill -9 a served gateway under HTTP
ingest and access, restart it, and find every promise kept.

The full campaign (200 kills) is a benchmark; this runs three, bounded in time, so the
suite catches a write path that stops being crash-safe.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "crash.py"


@pytest.mark.slow
def test_three_kills_under_load_lose_nothing_and_serve_nothing_unlogged() -> None:
    ran = subprocess.run(
        [sys.executable, str(BENCH), "--kills", "3", "--clients", "3", "--seed", "7"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert ran.stdout.strip(), ran.stderr
    result = json.loads(ran.stdout.strip().splitlines()[-1])
    assert result["failures"] == [], ran.stderr
    assert result["kills"] == 3
    assert result["receipts"] > 0, "the clients should have been promised records"
    assert result["receipted_records_read_back"] == result["receipts"]
    for must_be_zero in (
        "receipts_lost",
        "readable_without_entry",
        "reused_indices",
        "log_verify_failures",
        "check_failures",
    ):
        assert result[must_be_zero] == 0, must_be_zero
    assert ran.returncode == 0
