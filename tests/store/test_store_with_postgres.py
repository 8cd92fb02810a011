"""scripts/with-postgres: the cluster exists while the command runs, and never after."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "with-postgres"
BASH = shutil.which("bash") or "/bin/bash"
# Enough for the script's own tools; deliberately without the PostgreSQL server binaries.
PATH_WITHOUT_INITDB = "/usr/bin:/bin:/usr/sbin:/sbin"


def run_script(
    *cmd: str, env: dict[str, str], user: str | None = None
) -> subprocess.CompletedProcess[str]:
    argv = [BASH, str(SCRIPT), *cmd]
    if user is not None:
        argv = ["runuser", "-u", user, "--", *argv]
    return subprocess.run(
        argv,
        check=False,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "SOVRA_TEST_PG_DSN")}
    env.update(extra)
    return env


def refuses_connections(dsn: str) -> bool:
    try:
        psycopg.connect(dsn, connect_timeout=2).close()
    except psycopg.OperationalError:
        return True
    return False


@pytest.fixture
def scratch() -> Iterator[Path]:
    # Not tmp_path: as root the script hands its folder to the postgres account, which
    # must be able to reach it, and pytest's base folder is private to root.
    path = Path(tempfile.mkdtemp(prefix="sovra-script-test-"))
    path.chmod(0o1777)
    yield path
    shutil.rmtree(path)


needs_initdb = pytest.mark.skipif(
    shutil.which("initdb") is None and not os.environ.get("CI"),
    reason="initdb not on PATH: the script cannot start a cluster here",
)


def test_no_command_is_a_usage_error() -> None:
    result = run_script(env=base_env())
    assert result.returncode == 2
    assert "usage" in result.stderr


def test_without_initdb_runs_the_command_without_a_dsn() -> None:
    result = run_script(
        "sh",
        "-c",
        'test -z "${SOVRA_TEST_PG_DSN:-}" || exit 9; exit 5',
        env=base_env(PATH=PATH_WITHOUT_INITDB, SOVRA_TEST_PG_DSN="postgresql://stale"),
    )
    assert result.returncode == 5, result.stderr
    assert "initdb is not on PATH" in result.stderr


def test_without_initdb_in_ci_fails_and_does_not_run_the_command(scratch: Path) -> None:
    marker = scratch / "ran"
    result = run_script("touch", str(marker), env=base_env(PATH=PATH_WITHOUT_INITDB, CI="true"))
    assert result.returncode == 1
    assert "CI is set" in result.stderr
    assert not marker.exists()


PROBE = """
import os, sys, psycopg
dsn = os.environ["SOVRA_TEST_PG_DSN"]
with psycopg.connect(dsn) as conn:
    db, fsync = conn.execute("SELECT current_database(), current_setting('fsync')").fetchone()
open(sys.argv[1], "w").write(f"{dsn}\\n{db}\\n{fsync}\\n")
sys.exit(3)
"""


@needs_initdb
def test_runs_command_against_a_cluster_then_deletes_it(scratch: Path) -> None:
    out = scratch / "probe.txt"
    result = run_script(sys.executable, "-c", PROBE, str(out), env=base_env(TMPDIR=str(scratch)))
    assert result.returncode == 3, result.stderr
    dsn, db, fsync = out.read_text().split()
    assert dsn.startswith("postgresql://postgres@127.0.0.1:")
    assert dsn.endswith("/sovra_test")
    assert (db, fsync) == ("sovra_test", "off")
    assert [p.name for p in scratch.iterdir()] == ["probe.txt"]
    assert refuses_connections(dsn)


# As from a terminal: a suite started in the background inherits SIGINT ignored, and a
# shell started with it ignored can neither trap nor receive it; this restores it first.
_INTERRUPTIBLE = [
    sys.executable,
    "-c",
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.argv[1], sys.argv[1:])",
]


@needs_initdb
def test_interrupt_still_deletes_the_cluster(scratch: Path) -> None:
    out = scratch / "dsn.txt"
    proc = subprocess.Popen(
        [
            *_INTERRUPTIBLE,
            BASH,
            str(SCRIPT),
            "sh",
            "-c",
            f'echo "$SOVRA_TEST_PG_DSN" > {out}; exec sleep 60',
        ],
        env=base_env(TMPDIR=str(scratch)),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not (out.exists() and out.read_text().strip()):
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "the cluster never started"
            time.sleep(0.1)
        dsn = out.read_text().strip()
        # What Ctrl-C does: SIGINT to the whole foreground process group.
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=60) == 130
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()
    assert [p.name for p in scratch.iterdir()] == ["dsn.txt"]
    assert refuses_connections(dsn)


@needs_initdb
@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run the script as another user")
def test_as_a_normal_user_runs_postgres_directly(scratch: Path) -> None:
    # The postgres account cannot run this venv's Python, so psql does the probing.
    psql = Path(shutil.which("initdb") or "initdb").resolve().parent / "psql"
    out = scratch / "probe.txt"
    query = "SELECT current_database(), current_setting('fsync')"
    result = run_script(
        "sh",
        "-c",
        f'"{psql}" "$SOVRA_TEST_PG_DSN" -tAF" " -c "{query}" > {out}; exit 3',
        env=base_env(TMPDIR=str(scratch)),
        user="postgres",
    )
    assert result.returncode == 3, result.stderr
    assert out.read_text().split() == ["sovra_test", "off"]
    assert [p.name for p in scratch.iterdir()] == ["probe.txt"]


@needs_initdb
def test_a_taken_port_is_retried_with_another(scratch: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # The script picks ports with python3; this one offers the taken port first.
        stub_dir = scratch / "bin"
        stub_dir.mkdir()
        stub = stub_dir / "python3"
        stub.write_text(
            "#!/bin/sh\n"
            f'if [ ! -e "{scratch}/offered" ]; then\n'
            f'  touch "{scratch}/offered"; echo {port}; exit 0\n'
            "fi\n"
            f'exec "{sys.executable}" "$@"\n'
        )
        stub.chmod(0o755)
        result = run_script(
            "sh",
            "-c",
            'echo "$SOVRA_TEST_PG_DSN"',
            env=base_env(TMPDIR=str(scratch), PATH=f"{stub_dir}:{os.environ['PATH']}"),
        )
    assert result.returncode == 0, result.stderr
    assert f"port {port} was taken (attempt 1)" in result.stderr
    assert result.stdout.startswith("postgresql://postgres@127.0.0.1:")
    assert f":{port}/" not in result.stdout
