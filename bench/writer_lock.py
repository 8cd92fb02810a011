"""Writers of one SQLite file from two processes: SQLite's busy handler against the kernel
queue of :class:`sovra._writer_lock.WriterLock`, in the same run.

    .venv/bin/python bench/writer_lock.py [--quick] [--seconds S]

Two processes share one SQLite file in WAL mode, as two ``sovra serve`` workers share the
metadata and log database. Each runs two threads back to back: one commits a row with
``synchronous=FULL`` (an fsync, as a log append does) and one without (as a token's nonce
is spent), each pausing a little between transactions. Every transaction starts with
``BEGIN IMMEDIATE``; the time from asking for the write lock to holding it is the wait.
First each writer relies on SQLite's busy handler alone (``timeout``), then each takes a
:class:`WriterLock` first. Printed: transactions per second and the waits' p50, p99 and
mean per kind; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from sovra._writer_lock import WriterLock

PROCESSES = 2
KINDS = {"synced": (True, 0.002), "unsynced": (False, 0.003)}
"""Kind of transaction: (fsync at commit, pause after it in seconds)."""


def writer(path: str, queued: bool, seconds: float, out: Any) -> None:
    """One process: a synced and an unsynced writer thread, each until *seconds* pass."""
    db = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
    db.execute("PRAGMA synchronous=NORMAL")
    lock = WriterLock(path) if queued else None
    mutex = threading.Lock()
    waits: dict[str, list[float]] = {kind: [] for kind in KINDS}
    end = time.monotonic() + seconds

    def transaction(kind: str, synced: bool) -> None:
        asked = time.perf_counter()
        with mutex, lock.held() if lock is not None else contextlib.nullcontext():
            if synced:
                db.execute("PRAGMA synchronous=FULL")
            db.execute("BEGIN IMMEDIATE")
            waits[kind].append(time.perf_counter() - asked)
            db.execute("INSERT INTO t VALUES (?)", (os.urandom(200),))
            db.execute("COMMIT")
            if synced:
                db.execute("PRAGMA synchronous=NORMAL")

    def loop(kind: str) -> None:
        synced, pause = KINDS[kind]
        while time.monotonic() < end:
            transaction(kind, synced)
            time.sleep(pause)

    threads = [threading.Thread(target=loop, args=(kind,)) for kind in KINDS]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.put(waits)


def run(folder: Path, queued: bool, seconds: float) -> dict[str, Any]:
    path = str(folder / f"{'queued' if queued else 'busy'}.db")
    with sqlite3.connect(path, isolation_level=None) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE t (x BLOB)")
    out: Any = mp.get_context("fork").Queue()
    procs = [
        mp.get_context("fork").Process(target=writer, args=(path, queued, seconds, out))
        for _ in range(PROCESSES)
    ]
    for p in procs:
        p.start()
    waits: dict[str, list[float]] = {kind: [] for kind in KINDS}
    for _ in procs:
        for kind, values in out.get(timeout=seconds + 120).items():
            waits[kind] += values
    for p in procs:
        p.join()
    figures: dict[str, Any] = {}
    for kind, values in waits.items():
        values.sort()
        n = len(values)
        figures[kind] = {
            "per_s": round(n / seconds, 1),
            "wait_p50_ms": round(1000 * values[n // 2], 2),
            "wait_p99_ms": round(1000 * values[min(n - 1, int(0.99 * n))], 2),
            "wait_mean_ms": round(1000 * statistics.fmean(values), 2),
        }
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 s per side")
    parser.add_argument("--seconds", type=float, default=None)
    args = parser.parse_args()
    seconds = args.seconds or (3.0 if args.quick else 15.0)
    with tempfile.TemporaryDirectory(prefix="sovra-bench-writers-") as tmp:
        sides = {
            "busy_handler": run(Path(tmp), False, seconds),
            "writer_lock": run(Path(tmp), True, seconds),
        }
    print(f"two processes writing one SQLite file (WAL), {seconds:g} s per side")
    print(f"{'':14} {'kind':9} {'tx/s':>8} {'wait p50':>9} {'p99':>8} {'mean':>8}  (ms)")
    for side, figures in sides.items():
        for kind, f in figures.items():
            print(
                f"{side:14} {kind:9} {f['per_s']:>8} {f['wait_p50_ms']:>9} "
                f"{f['wait_p99_ms']:>8} {f['wait_mean_ms']:>8}"
            )
    sys.stdout.flush()
    print(
        json.dumps(
            {
                "bench": "writer_lock",
                "quick": args.quick,
                "seconds": seconds,
                **sides,
                "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
            }
        )
    )


if __name__ == "__main__":
    main()
