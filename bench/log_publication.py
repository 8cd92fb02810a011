"""What publishing a checkpoint after every batch costs the writer and the auditor.

    .venv/bin/python bench/log_publication.py [--quick]

- appends: single-entry batches (the gateway's path under light load) on SQLite with
  ``sync="full"``, with ``publish_after_batch`` off and on, in alternating rounds; the
  median rate and the CPU time per append of each. The checkpoint after a batch is
  signed and written without an fsync of its own (the batch was synced already).
- group commit: single appends from 16 threads with publication on, where concurrent
  calls share batches, and how many checkpoints that published per entry.
- audit: a tiled log replayed (tiles served from memory) against one checkpoint, and
  against a checkpoint after every 1 and every 16 entries; what each checkpoint adds.

The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sovra.ledger import NoteSigner, SQLiteLogStorage, TransparencyLog
from sovra_verify._merkle import MerkleTree, leaf_hash
from sovra_verify.checkpoint import Checkpoint
from sovra_verify.note import sign_note
from sovra_verify.tiles import TILE_WIDTH, audit_tiles, encode_entry_bundle, parse_tile_path

ORIGIN = "bench.sovra.example/log"


def entry(i: int) -> bytes:
    return b'{"kind":"decision","effect":"allow","record":"rec-%08d","v":1}' % i


def _log(path: Path, *, after: bool) -> TransparencyLog:
    signer = NoteSigner(ORIGIN, Ed25519PrivateKey.generate())
    return TransparencyLog(
        SQLiteLogStorage(path, sync="full"), signer, ORIGIN, publish_after_batch=after
    )


def appends(root: Path, count: int, *, after: bool, round_: int) -> tuple[float, float]:
    """(appends per second, CPU microseconds per append) for one round."""
    log = _log(root / f"append-{after}-{round_}.db", after=after)
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        for i in range(count):
            log.append(entry(i))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    finally:
        log.close()
    return count / wall, cpu / count * 1e6


def group_commit(root: Path, count: int, threads: int) -> tuple[float, float]:
    """(appends per second, checkpoints per entry) from *threads* threads."""
    log = _log(root / "group.db", after=True)
    share = count // threads

    def worker(first: int) -> None:
        for i in range(first, first + share):
            log.append(entry(i))

    pool = [threading.Thread(target=worker, args=(t * share,)) for t in range(threads)]
    start = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    seconds = time.perf_counter() - start
    published = len(log.checkpoints())
    log.close()
    return share * threads / seconds, published / (share * threads)


class _Tiles:
    """A read-only tiled log of *size* entries, built with the log's tree, not the audit's."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.tree = MerkleTree()
        self.tree.extend(leaf_hash(entry(i)) for i in range(size))

    def fetch(self, path: str) -> bytes:
        level, index, width = parse_tile_path(path)
        start = index * TILE_WIDTH
        if level is None:
            return encode_entry_bundle([entry(i) for i in range(start, start + width)])
        return b"".join(self.tree.level_hashes(8 * level, start, start + width))


def audit(size: int, every: int | None) -> tuple[float, int]:
    """(seconds, checkpoints) to audit *size* entries with a checkpoint every *every*."""
    signer = NoteSigner(ORIGIN, Ed25519PrivateKey.generate())
    tiles = _Tiles(size)
    sizes = [size] if every is None else list(range(every, size + 1, every))
    notes = [
        sign_note(Checkpoint(ORIGIN, s, tiles.tree.root(s)).to_text(), [signer]) for s in sizes
    ]
    start = time.perf_counter()
    audit_tiles(tiles.fetch, notes, signer.vkey).check()
    return time.perf_counter() - start, len(notes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small run, under a minute")
    args = parser.parse_args(argv)
    count = 300 if args.quick else 2_000
    rounds = 3 if args.quick else 5
    size = 10_000 if args.quick else 100_000
    print(f"log publication bench on {platform.machine()}, {os.cpu_count()} cores", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        runs: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
        for r in range(rounds):
            for after in (False, True):
                runs[after].append(appends(Path(tmp), count, after=after, round_=r))
        rate = {a: statistics.median(x[0] for x in v) for a, v in runs.items()}
        cpu = {a: statistics.median(x[1] for x in v) for a, v in runs.items()}
        print(
            f"single appends, sync=full: {rate[False]:,.0f}/s without publication, "
            f"{rate[True]:,.0f}/s with a checkpoint after each "
            f"(CPU {cpu[False]:.0f} -> {cpu[True]:.0f} us per append)",
            flush=True,
        )
        group_rate, per_entry = group_commit(Path(tmp), 16 * (count // 2), 16)
        print(
            f"group commit, 16 threads: {group_rate:,.0f} appends/s, "
            f"{per_entry:.3f} checkpoints per entry",
            flush=True,
        )
    one_s, _ = audit(size, None)
    each_s, each_n = audit(size, 1)
    sixteen_s, sixteen_n = audit(size, 16)
    per_checkpoint_ms = (each_s - one_s) / (each_n - 1) * 1000
    print(
        f"audit of {size:,} entries: {one_s:.2f} s against 1 checkpoint, {sixteen_s:.2f} s "
        f"against {sixteen_n:,}, {each_s:.2f} s against {each_n:,} "
        f"({per_checkpoint_ms:.3f} ms per checkpoint)",
        flush=True,
    )
    result = {
        "appends": count,
        "rounds": rounds,
        "append_per_s_unpublished": round(rate[False]),
        "append_per_s_published": round(rate[True]),
        "append_cpu_us_unpublished": round(cpu[False], 1),
        "append_cpu_us_published": round(cpu[True], 1),
        "group_commit_per_s_published": round(group_rate),
        "group_commit_checkpoints_per_entry": round(per_entry, 4),
        "audit_entries": size,
        "audit_s_one_checkpoint": round(one_s, 3),
        "audit_s_checkpoint_every_16": round(sixteen_s, 3),
        "audit_s_checkpoint_every_entry": round(each_s, 3),
        "audit_ms_per_checkpoint": round(per_checkpoint_ms, 4),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
    }
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
