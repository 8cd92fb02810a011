"""docs/deploy.md, run as written: every ``sh`` block, in order, in one bash, against the
throwaway PostgreSQL and SeaweedFS (scripts/with-postgres, scripts/with-seaweedfs).

The walk-through sets up two regions in two buckets, the custodians as services of their
own with their subject keys in databases of their own, and two ``sovra serve`` replicas;
then it stores through one replica, reads through the other, verifies the log through
both, runs ``sovra check`` and lists where the records lie. The test checks what those
commands printed, and that no S3 secret was written into the deployment.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from tests.conftest import _absent

from sovra.deployment import default_principals

DOC = Path(__file__).resolve().parents[1] / "docs" / "deploy.md"
_BLOCK = re.compile(r"^```sh\n(.*?)^```$", re.S | re.M)
_ROLES = ("sovra_gateway", "sovra_custodian_pl", "sovra_custodian_us")
_DATABASES = ("sovra", "sovra_custodian_pl", "sovra_custodian_us")

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.s3]


def shell_blocks(markdown: str) -> list[str]:
    """The ``sh`` code blocks of *markdown*, in order (other blocks are examples)."""
    return _BLOCK.findall(markdown)


def test_the_doc_has_its_steps_in_sh_blocks() -> None:
    blocks = shell_blocks(DOC.read_text())
    script = "\n".join(blocks)
    for step in (
        "sovra init",
        "sovra custodian serve",
        "sovra serve",
        "sovra log verify",
        "sovra check",
        "sovra put",
        "sovra get",
    ):
        assert step in script, step
    assert not re.search(r"^```(bash|shell|console)$", DOC.read_text(), re.M), (
        "shell steps go in sh blocks, which this test runs"
    )


def _free_address() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def _drop(admin: str) -> None:
    with psycopg.connect(admin, autocommit=True) as conn:
        for name in _DATABASES:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        for role in _ROLES:
            conn.execute(f'DROP ROLE IF EXISTS "{role}"')


def _stop_group(pgid: int) -> None:
    """TERM the services the script left in the background, then KILL what lingers."""

    def members() -> list[int]:
        found = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(stat[2]) == pgid:
                    found.append(int(entry))
        return found

    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 30
        while members() and time.monotonic() < deadline:
            time.sleep(0.2)
        if not members():
            return


def test_the_walk_through_runs_as_written(walkable: Path) -> None:
    dsn = os.environ.get("SOVRA_TEST_PG_DSN")
    if not dsn:
        _absent("PostgreSQL", "scripts/with-postgres", "SOVRA_TEST_PG_DSN")
    endpoint = os.environ.get("SOVRA_TEST_S3_ENDPOINT")
    if not endpoint:
        _absent("S3", "scripts/with-seaweedfs", "SOVRA_TEST_S3_ENDPOINT")
    missing = [tool for tool in ("psql", "curl", "jq") if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"docs/deploy.md uses {', '.join(missing)}: install it")
    access, secret = os.environ["SOVRA_TEST_S3_ACCESS_KEY"], os.environ["SOVRA_TEST_S3_SECRET_KEY"]
    server = dsn.split("://", 1)[1].split("@", 1)[1].split("/", 1)[0]
    admin = dsn.rsplit("/", 1)[0] + "/postgres"
    tag = secrets.token_hex(4)
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "DB": server,
        "PGADMIN": admin,
        "EU_S3": endpoint,
        "US_S3": endpoint,
        "EU_BUCKET": f"deploy-eu-{tag}",
        "US_BUCKET": f"deploy-us-{tag}",
        "DIR": str(walkable / "sovra"),
        "A": _free_address(),
        "B": _free_address(),
        "PL_CUSTODIAN": _free_address(),
        "US_CUSTODIAN": _free_address(),
        "SOVRA_S3_EU_ACCESS_KEY": access,
        "SOVRA_S3_EU_SECRET_KEY": secret,
        "SOVRA_S3_US_ACCESS_KEY": access,
        "SOVRA_S3_US_SECRET_KEY": secret,
    }
    script = "set -euo pipefail\n" + "\n".join(shell_blocks(DOC.read_text()))
    work = walkable / "operator"
    work.mkdir()
    _drop(admin)
    # Output to a file, not a pipe: the services the script leaves running keep a pipe open.
    log = walkable / "walk-through.log"
    with log.open("w") as sink:
        proc = subprocess.Popen(
            ["bash", "-c", script],
            cwd=work,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            proc.wait(timeout=600)
        finally:
            _stop_group(proc.pid)
            _drop(admin)
    out = log.read_text()
    assert proc.returncode == 0, out[-4000:]
    assert re.search(r"r-\w+ in eu-central-pl at log index \d+", out), out[-3000:]
    assert re.search(r"r-\w+ in us-east at log index \d+", out), out[-3000:]
    # Read back through the other replica; the PESEL tokenized as PL's rules say.
    assert "Anna Kowalska, tel. +48 601 234 567, PESEL [TOKEN:pl_pesel:" in out
    # Both replicas serve the same log: sovra init's principal entries, then two ingests, a
    # decision and a release.
    entries = len(default_principals(["PL", "US"])) + 4
    verified = rf"verified {entries} entries and \d+ checkpoints,"
    assert len(re.findall(verified, out)) == 2, out[-3000:]
    # The log published into the EU bucket and replayed from a copy of it.
    assert re.search(r"verified \d+ entries and 1 checkpoints of example\.com/sovra", out), out[
        -3000:
    ]
    assert "clean" in out
    # Residency: one record in each region's bucket, and every check passed (exit 0).
    assert f"PL eu-central-pl 1 in s3://deploy-eu-{tag}/records" in out, out[-3000:]
    assert f"US us-east 1 in s3://deploy-us-{tag}/records" in out, out[-3000:]
    # The S3 secret stayed in the environment: no file of the deployment holds it.
    for path in (walkable / "sovra").rglob("*"):
        if path.is_file() and not path.is_symlink():
            assert secret.encode() not in path.read_bytes(), path
