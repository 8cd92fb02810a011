"""Small sealed blobs: sovra's blob store beside plain SQLite and the old file per blob.

    .venv/bin/python bench/blobs.py [--quick] [--dir DIR]

Each blob is a real sealed record (``sovra.keys.envelope.seal`` of 360 bytes, about 400
bytes sealed), keys as the gateway makes them. Three stores, each in a fresh folder on the
same filesystem (``--dir``, default the system's temporary folder), all durable on return:

- ``sovra``: :class:`~sovra.store.FilesystemBlobStore` as a deployment opens it (small
  blobs in the region's ``small-blobs.sqlite``, WAL, ``synchronous=FULL``);
- ``sqlite``: the floor, plain SQLite of the same bytes with the same settings: one table
  ``(key TEXT PRIMARY KEY, data BLOB)``, ``executemany`` in one transaction per batch;
  reads by one ``SELECT ... IN`` per batch, or one ``SELECT`` per key;
- ``files``: the store before the small-blob file, one file per blob written with a
  temporary file, an fsync, a link and an fsync of its folder (``small_blob_bytes=0``).

Figures, blobs per second:

- ``put_many``: batches of 1,000 (``put_many`` / one transaction / 1,000 files);
- ``put_one``: one blob per call, as ``ingest`` without group commit stores its record;
- ``get_many``: batches of 1,000 keys in random order, from a store of every blob put;
- ``get_one``: one key per call.

Each figure is the median over its batches (or calls); the stores take turns batch by
batch, each round starting with another, so a neighbour's load hurts all alike. Ratios:
``*_vs_sqlite`` is sovra / floor (1.0 = no overhead), ``*_vs_files`` is sovra / the old
store (the speed-up). The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sovra.keys import envelope
from sovra.model import RecordHeader
from sovra.store import FilesystemBlobStore

BATCH = 1000
REGION = "eu-central-pl"
CONTENT_BYTES = 360


def sealed_blobs(n: int) -> list[tuple[str, bytes]]:
    """*n* (record id, sealed blob) pairs, each under a fresh data key."""
    out = []
    for _ in range(n):
        rid = "r-" + uuid.uuid4().hex
        header = RecordHeader(
            record_id=rid, subject="ab" * 32, jurisdiction="PL", region=REGION, kek_version=1
        )
        blob, _ = envelope.seal(header, os.urandom(CONTENT_BYTES))
        out.append((rid, blob))
    return out


class PlainSQLite:
    """The floor: the same bytes in a plain SQLite table, as durable as sovra's file."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("CREATE TABLE blobs (key TEXT PRIMARY KEY, data BLOB NOT NULL)")

    def put_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        self.db.execute("BEGIN")
        self.db.executemany("INSERT INTO blobs VALUES (?, ?)", items)
        self.db.execute("COMMIT")

    def put(self, key: str, data: bytes) -> None:
        self.db.execute("INSERT INTO blobs VALUES (?, ?)", (key, data))

    def get_many(self, keys: Sequence[str]) -> list[bytes]:
        rows = dict(
            self.db.execute(
                "SELECT key, data FROM blobs WHERE key IN (SELECT value FROM json_each(?))",
                (json.dumps(keys),),
            )
        )
        return [rows[k] for k in keys]

    def get(self, key: str) -> bytes:
        row = self.db.execute("SELECT data FROM blobs WHERE key = ?", (key,)).fetchone()
        return bytes(row[0])

    def close(self) -> None:
        self.db.close()


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def per_s(count: int, times: list[float]) -> float:
    return round(count / statistics.median(times), 1)


def bench(base: Path, quick: bool) -> dict[str, Any]:
    many_rounds = 7 if quick else 15
    files_many_rounds = 1 if quick else 3
    one_calls = 200 if quick else 1000
    stores: dict[str, Any] = {
        "sovra": FilesystemBlobStore(base / "sovra", REGION),
        "sqlite": PlainSQLite(base / "plain.sqlite"),
        "files": FilesystemBlobStore(base / "files", REGION, small_blob_bytes=0),
    }
    stored: dict[str, list[str]] = {name: [] for name in stores}
    times: dict[str, list[float]] = {}

    def note(figure: str, name: str, seconds: float) -> None:
        times.setdefault(f"{name}_{figure}", []).append(seconds)

    try:
        names = list(stores)
        for n in range(many_rounds):
            # Each round starts with another store, so none always follows the slow one.
            for name in names[n % 3 :] + names[: n % 3]:
                store = stores[name]
                if name == "files" and n >= files_many_rounds:
                    continue
                batch = sealed_blobs(BATCH)
                note("put_many", name, timed(lambda s=store, b=batch: s.put_many(b)))
                stored[name] += [k for k, _ in batch]
        # One call each in turn (the old store one call in five: its fsyncs are slow).
        for n, (key, data) in enumerate(sealed_blobs(one_calls * 3)):
            name = names[n % 3]
            if name == "files" and n % 15 != 2:
                continue
            note("put_one", name, timed(lambda s=stores[name], k=key, d=data: s.put(k, d)))
            stored[name].append(key)
        rng = random.Random(14)
        for n in range(many_rounds):
            for name in names[n % 3 :] + names[: n % 3]:
                store = stores[name]
                keys = rng.sample(stored[name], BATCH)
                note("get_many", name, timed(lambda s=store, k=keys: s.get_many(k)))
        samples = {name: rng.sample(stored[name], one_calls) for name in names}
        for n in range(one_calls):
            for name in names:
                key = samples[name][n]
                note("get_one", name, timed(lambda s=stores[name], k=key: s.get(k)))
    finally:
        for store in stores.values():
            store.close()
    figures: dict[str, Any] = {}
    for figure in ("put_many", "put_one", "get_many", "get_one"):
        count = BATCH if figure.endswith("_many") else 1
        for name in stores:
            figures[f"{name}_{figure}_per_s"] = per_s(count, times[f"{name}_{figure}"])
        ours = figures[f"sovra_{figure}_per_s"]
        figures[f"{figure}_vs_sqlite"] = round(ours / figures[f"sqlite_{figure}_per_s"], 3)
        figures[f"{figure}_vs_files"] = round(ours / figures[f"files_{figure}_per_s"], 1)
    blob_bytes = [len(b) for _, b in sealed_blobs(10)]
    figures["blob_bytes"] = round(statistics.mean(blob_bytes))
    figures["batch"] = BATCH
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs (under a minute)")
    parser.add_argument("--dir", type=Path, default=None, help="where the stores are made")
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sovra-bench-blobs-", dir=args.dir) as tmp:
        figures = bench(Path(tmp), args.quick)
    figures.update(
        quick=args.quick,
        seconds=round(time.perf_counter() - started, 1),
        python=platform.python_version(),
        sqlite=sqlite3.sqlite_version,
        cpus=os.cpu_count(),
    )
    width = max(len(k) for k in figures)
    for key, value in figures.items():
        print(f"{key:<{width}}  {value}")
    print(json.dumps(figures), flush=True)
    sys.exit(0)


if __name__ == "__main__":
    main()
