"""What a second gateway over the same PostgreSQL adds to the CPU of each ingest.

    scripts/with-postgres .venv/bin/python bench/replica_costs.py [--quick] [--profile DIR]

One process, one deployment on PostgreSQL (blobs in a folder, custodians in process, so
only what replicas share differs): single-record ingests through ``Gateway.ingest`` from
``--threads`` threads, into ONE gateway, then into TWO gateways over the same database
(half the threads each, as two replicas or two workers get half the clients), in the
order one, two, two, one. For each: the process's CPU per ingest (``resource``, every
thread), PostgreSQL's CPU per ingest (the cluster's processes, when
scripts/with-postgres started it here: ``SOVRA_TEST_PG_DATA``), records per log batch
(counted by the logs' ``on_batch`` hook) and checkpoints stored. With ``--profile DIR``,
py-spy samples the process during each measured phase and the script prints the share
of the samples under each part of the flow (catching up on the other gateway's log
entries, signing and storing checkpoints, the log's batch transaction, the metadata
rows, the custodian, the scanner).

``--quick``: 300 ingests a phase; the full run 1,500. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import collections
import functools
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psycopg

from sovra.deployment import Deployment
from store import backend_cpu, backend_pids

NOTE = (
    "Klient zgłosił problem z fakturą; tel. +48 601 234 567, prosi o kontakt po 16:00. "
    "Numer zamówienia 2026/12/0456, dostawa do Krakowa, ul. Długa 5."
)

# Frames that name a part of the flow, matched against py-spy's function names (the first
# match from the leaf up wins).
PARTS = (
    ("catch up on the other's entries", ("_catch_up", "_reach", "stored_size")),
    ("checkpoint: sign and store", ("_publish", "_publish_quietly", "add_checkpoint")),
    ("log batch transaction", ("append_batch",)),
    ("metadata rows", ("put_records", "set_record_log_indices", "put_record")),
    ("custodian: subject keys", ("wrap_many", "_wrap_all")),
    ("blobs", ("put_many",)),
    ("scanner", ("scan_many",)),
)


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class Batches:
    """Log batches integrated by the gateways of this process (each log's ``on_batch``
    hook, the one already set still told), and checkpoints stored in the database."""

    def __init__(self, gateways: Sequence[Deployment], dsn: str) -> None:
        self.count = 0
        self._dsn = dsn
        self._lock = threading.Lock()
        for dep in gateways:
            log = dep.gateway.log
            log.on_batch = functools.partial(self._told, log.on_batch)

    def _told(self, then: Callable[[int], None] | None, size: int) -> None:
        with self._lock:
            self.count += 1
        if then is not None:
            then(size)

    def checkpoints(self) -> int:
        with psycopg.connect(self._dsn) as conn:
            row = conn.execute("SELECT count(*) FROM log_checkpoints").fetchone()
        return int(row[0]) if row else 0


def phase(gateways: Sequence[Deployment], n: int, threads: int, tag: str) -> dict[str, float]:
    """*n* ingests from *threads* threads spread over *gateways*; CPU and wall time."""
    per = n // threads
    errors: list[BaseException] = []

    def work(k: int) -> None:
        dep = gateways[k % len(gateways)]
        svc = dep.store.get_principal("svc-pl")
        try:
            for i in range(per):
                dep.gateway.ingest(
                    svc, subject_id=f"{tag}-{k}-{i}@example.pl", jurisdiction="PL", content=NOTE
                )
        except BaseException as exc:  # reported after the phase
            errors.append(exc)

    pool = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    pids = {k: v for k, v in backend_pids("http://127.0.0.1:1").items() if k == "postgres"}
    p0 = backend_cpu(pids)
    c0, t0 = cpu_s(), time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    c1, t1 = cpu_s(), time.perf_counter()
    p1 = backend_cpu(pids)
    if errors:
        raise errors[0]
    done = per * threads
    return {
        "ingests": done,
        "cpu_ms_per_ingest": (c1 - c0) / done * 1000,
        "postgres_cpu_ms_per_ingest": sum(p1[k] - p0[k] for k in p1) / done * 1000,
        "per_s": done / (t1 - t0),
    }


def spy(out: Path) -> subprocess.Popen[bytes]:
    """py-spy sampling this process (every thread) into *out*, until it gets SIGINT."""
    spy_bin = str(Path(sys.executable).with_name("py-spy"))
    argv = [spy_bin, "record", "--pid", str(os.getpid()), "--rate", "200"]
    argv += ["--format", "raw", "--output", str(out), "--nonblocking"]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def parts_of(raw: Path) -> dict[str, float]:
    """Share of the samples of the gateway's threads under each part of :data:`PARTS`."""
    counts: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if "work (" not in stack:
            continue  # another thread: the checkpoint timer, the pools' workers...
        samples = int(n)
        total += samples
        frames = stack.split(";")
        part = "other"
        for frame in reversed(frames):
            name = frame.split(" (", 1)[0].strip().rsplit(".", 1)[-1]
            hit = next((p for p, names in PARTS if name in names), None)
            if hit is not None:
                part = hit
                break
        counts[part] += samples
    return {p: round(c / total, 3) for p, c in counts.most_common()} if total else {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--profile", type=Path, default=None)
    args = parser.parse_args()
    base = os.environ.get("SOVRA_TEST_PG_DSN")
    if not base:
        sys.exit("run under scripts/with-postgres (SOVRA_TEST_PG_DSN unset)")
    n = 300 if args.quick else 1500
    name = f"bench_replicas_{os.getpid()}"
    with psycopg.connect(base, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    dsn = base.rsplit("/", 1)[0] + f"/{name}"
    root = Path(tempfile.mkdtemp()) / "deployment"
    Deployment.init(root, origin="bench/replicas", custodians="in-process", database=dsn)
    one = Deployment.open(root)
    two = Deployment.open(root)
    results: dict[str, list[dict[str, Any]]] = {"one": [], "two": []}
    counted = Batches([one, two], dsn)
    try:
        phase([one, two], args.threads * 4, args.threads, "warm")
        for round_, setup in enumerate(("one", "two", "two", "one")):
            gws = [one] if setup == "one" else [one, two]
            before, stored = counted.count, counted.checkpoints()
            profiler = None
            if args.profile is not None:
                args.profile.mkdir(parents=True, exist_ok=True)
                raw = args.profile / f"{setup}-{round_}.txt"
                profiler = spy(raw)
                time.sleep(1.0)  # py-spy attaches
            got = phase(gws, n, args.threads, f"{setup}{round_}")
            if profiler is not None:
                profiler.send_signal(signal.SIGINT)  # py-spy writes its samples on ^C
                profiler.wait(timeout=60)
                got["parts"] = parts_of(raw)  # type: ignore[assignment]
            got["records_per_batch"] = got["ingests"] / max(1, counted.count - before)
            got["checkpoints"] = counted.checkpoints() - stored
            print(setup, json.dumps(got), file=sys.stderr, flush=True)
            results[setup].append(got)
    finally:
        one.close()
        two.close()
        with psycopg.connect(base, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE {name} WITH (FORCE)")

    def mean(setup: str, key: str) -> float:
        return round(sum(r[key] for r in results[setup]) / len(results[setup]), 3)

    summary = {
        "threads": args.threads,
        "ingests_per_phase": n,
        "one_cpu_ms_per_ingest": mean("one", "cpu_ms_per_ingest"),
        "two_cpu_ms_per_ingest": mean("two", "cpu_ms_per_ingest"),
        "one_postgres_cpu_ms_per_ingest": mean("one", "postgres_cpu_ms_per_ingest"),
        "two_postgres_cpu_ms_per_ingest": mean("two", "postgres_cpu_ms_per_ingest"),
        "one_records_per_batch": mean("one", "records_per_batch"),
        "two_records_per_batch": mean("two", "records_per_batch"),
        "one_per_s": mean("one", "per_s"),
        "two_per_s": mean("two", "per_s"),
        "load_average": os.getloadavg()[0],
        "phases": results,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
