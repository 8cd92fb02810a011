"""What publishing the log as static tlog-tiles files costs: per batch, and a backfill.

    .venv/bin/python bench/tile_publication.py [--quick]
    scripts/with-seaweedfs .venv/bin/python bench/tile_publication.py --quick   # + a bucket

- per batch: a log on SQLite (``sync="full"``, a checkpoint after each batch) grows by
  batches of 1, 16 and 256 entries; after each batch one publication round copies what
  the new checkpoint covers into the store (the round the server runs in the background).
  Reported: CPU milliseconds and wall milliseconds per round, files written per round,
  and the CPU of the batch itself beside it (what the round adds to a batch's cost);
- backfill: ``sovra log publish-tiles`` over a log that has published nothing yet: tiles
  and entry bundles written per second (wall) and CPU microseconds per file;
- a tile filling: one round per entry, so a level-0 tile and its bundle leave 255 partial
  widths each before the round that fills them, which then removes them (510 files).
  Reported: that round's CPU and wall milliseconds, the partial files it removed, and the
  mean CPU per round over the tile's 256 rounds (what the removal adds, spread out).

Each store: a folder (fsync on, as the server runs it) and, under scripts/with-seaweedfs,
a SeaweedFS bucket (16 writes at once). CPU is this process's (time.process_time), the
figure that holds on a shared machine; wall-clock figures depend on the load.

The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sovra.ledger import NoteSigner, SQLiteLogStorage, TransparencyLog
from sovra.ledger.tiles_publish import TilePublisher
from sovra.ledger.tiles_store import FolderTileStore, S3TileStore, TileStore
from sovra.store.s3 import parse_s3_url

ORIGIN = "bench.sovra.example/tiles"
SIGNER = NoteSigner(ORIGIN, Ed25519PrivateKey.generate())


def entry(i: int) -> bytes:
    return b'{"kind":"decision","effect":"allow","record":"rec-%08d","v":1}' % i


def _log(path: Path) -> TransparencyLog:
    return TransparencyLog(
        SQLiteLogStorage(path, sync="full"), SIGNER, ORIGIN, publish_after_batch=True
    )


def _stores(tmp: Path, name: str) -> dict[str, TileStore]:
    stores: dict[str, TileStore] = {"folder": FolderTileStore(tmp / f"tiles-{name}")}
    endpoint = os.environ.get("SOVRA_TEST_S3_ENDPOINT")
    if endpoint:
        import boto3

        access = os.environ["SOVRA_TEST_S3_ACCESS_KEY"]
        secret = os.environ["SOVRA_TEST_S3_SECRET_KEY"]
        bucket = f"bench-tiles-{secrets.token_hex(4)}"
        boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=access,
            aws_secret_access_key=secret,
            region_name="us-east-1",
        ).create_bucket(Bucket=bucket)
        stores["s3"] = S3TileStore(
            parse_s3_url(f"s3://{bucket}/{name}"),
            endpoint=endpoint,
            access_key=access,
            secret_key=secret,
        )
    return stores


def _publishers(tmp: Path, name: str) -> Iterator[tuple[str, TransparencyLog, TilePublisher]]:
    """A new log and its publisher into each store, closed after the caller's turn."""
    for kind, store in _stores(tmp, name).items():
        log = _log(tmp / f"{name}-{kind}.db")
        try:
            yield kind, log, TilePublisher(log, store)
        finally:
            log.close()
            store.close()


def per_batch(tmp: Path, batch: int, rounds: int) -> dict[str, dict[str, float]]:
    """For each store: medians of CPU ms and wall ms per publication round, files per
    round, and the CPU ms of the batch append itself."""
    out: dict[str, dict[str, float]] = {}
    for kind, log, publisher in _publishers(tmp, f"batch{batch}"):
        cpu, wall, files, append_cpu = [], [], [], []
        for r in range(rounds):
            c0 = time.process_time()
            log.append_many([(entry(r * batch + i), ()) for i in range(batch)])
            c1, w1 = time.process_time(), time.perf_counter()
            done = publisher.publish()
            cpu.append((time.process_time() - c1) * 1000)
            wall.append((time.perf_counter() - w1) * 1000)
            append_cpu.append((c1 - c0) * 1000)
            files.append(done.files)
        out[kind] = {
            "cpu_ms_per_round": round(statistics.median(cpu), 3),
            "wall_ms_per_round": round(statistics.median(wall), 3),
            "files_per_round": statistics.mean(files),
            "append_cpu_ms_per_batch": round(statistics.median(append_cpu), 3),
        }
    return out


def backfill(tmp: Path, size: int) -> dict[str, dict[str, float]]:
    """For each store: files per second and CPU microseconds per file of one backfill."""
    log = _log(tmp / "backfill.db")
    out: dict[str, dict[str, float]] = {}
    try:
        for first in range(0, size, 10_000):
            log.append_many([(entry(i), ()) for i in range(first, min(size, first + 10_000))])
        for kind, store in _stores(tmp, "backfill").items():
            publisher = TilePublisher(log, store)
            c0, w0 = time.process_time(), time.perf_counter()
            done = publisher.publish()
            cpu, wall = time.process_time() - c0, time.perf_counter() - w0
            store.close()
            out[kind] = {
                "entries": done.size,
                "files": done.files,
                "bytes": done.bytes,
                "files_per_s": round(done.files / wall, 1),
                "cpu_us_per_file": round(cpu / done.files * 1e6, 1),
                "seconds": round(wall, 3),
            }
    finally:
        log.close()
    return out


def filling(tmp: Path, tiles: int) -> dict[str, dict[str, float]]:
    """For each store: medians over *tiles* tiles filled one entry per round of the CPU
    and wall ms of the round that fills one, the files it removed, and the mean CPU ms
    per round over the tile's rounds."""
    out: dict[str, dict[str, float]] = {}
    for kind, log, publisher in _publishers(tmp, "filling"):
        fill_cpu, fill_wall, removed, mean_cpu = [], [], [], []
        for tile in range(tiles):
            total = 0.0
            for i in range(256):
                log.append_many([(entry(tile * 256 + i), ())])
                c0, w0 = time.process_time(), time.perf_counter()
                done = publisher.publish()
                cpu = time.process_time() - c0
                total += cpu
            fill_cpu.append(cpu * 1000)
            fill_wall.append((time.perf_counter() - w0) * 1000)
            removed.append(getattr(done, "removed", 0))  # 0 before partial tiles were removed
            mean_cpu.append(total / 256 * 1000)
        out[kind] = {
            "fill_cpu_ms": round(statistics.median(fill_cpu), 3),
            "fill_wall_ms": round(statistics.median(fill_wall), 3),
            "partials_removed": statistics.median(removed),
            "mean_cpu_ms_per_round": round(statistics.median(mean_cpu), 3),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small run, under a minute")
    args = parser.parse_args(argv)
    rounds = 30 if args.quick else 200
    size = 65_536 if args.quick else 1_048_576
    print(
        f"tile publication bench on {platform.machine()}, {os.cpu_count()} cores, load "
        f"{os.getloadavg()[0]:.1f}; S3: {os.environ.get('SOVRA_TEST_S3_ENDPOINT') or 'none'}",
        flush=True,
    )
    result: dict[str, Any] = {"rounds": rounds, "backfill_entries": size, "per_batch": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for batch in (1, 16, 256):
            got = per_batch(Path(tmp), batch, rounds)
            result["per_batch"][str(batch)] = got
            for kind, figures in got.items():
                print(
                    f"batch of {batch:>3}, {kind:>6}: {figures['cpu_ms_per_round']:.2f} ms CPU "
                    f"and {figures['wall_ms_per_round']:.2f} ms wall per round, "
                    f"{figures['files_per_round']:.1f} files (the batch itself: "
                    f"{figures['append_cpu_ms_per_batch']:.2f} ms CPU)",
                    flush=True,
                )
        result["backfill"] = backfill(Path(tmp), size)
        for kind, figures in result["backfill"].items():
            print(
                f"backfill of {size:,} entries, {kind:>6}: {figures['files']:,} files in "
                f"{figures['seconds']:.2f} s, {figures['files_per_s']:,.0f} files/s, "
                f"{figures['cpu_us_per_file']:.0f} us CPU per file",
                flush=True,
            )
        result["filling"] = filling(Path(tmp), 2 if args.quick else 5)
        for kind, figures in result["filling"].items():
            print(
                f"a tile filled one entry per round, {kind:>6}: the filling round "
                f"{figures['fill_cpu_ms']:.2f} ms CPU, {figures['fill_wall_ms']:.1f} ms wall, "
                f"{figures['partials_removed']:.0f} partial files removed; "
                f"{figures['mean_cpu_ms_per_round']:.2f} ms CPU per round over the tile",
                flush=True,
            )
    result["load_1min"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
