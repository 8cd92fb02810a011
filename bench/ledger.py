"""Transparency-log throughput beside its physical floor, measured in the same run.

    .venv/bin/python bench/ledger.py [--quick] [--entries N] [--batch B]

Three figures, each printed next to a floor measured in this process on the same data:

- append: entries of ~300 bytes appended in batches (one transaction, one tree update and
  one Ed25519 batch promise per batch) to SQLite in ``sync="checkpoint"`` mode, with a
  signed checkpoint (and its fsync) after every 10 batches. Floor: hashlib SHA-256 of
  the same leaves, the least any Merkle log must do per entry.
- proofs: inclusion proofs for random indices in the tree just built. Floor: SHA-256 of
  the leaves again (a proof costs no hashing in a log that stores its nodes) and the
  Ed25519 signing rate (what a log that signed each answer would be held to).
- audit: a 1,000,000-entry log replayed from tlog-tiles (entry bundles and hash tiles
  served from memory): every leaf hashed, every tile recomputed, every checkpoint root
  rebuilt, consecutive consistency verified. Floor: hashing the 1,000,000 leaves alone.
- group commit (for information): single ``append`` calls from 16 threads on a
  ``sync="full"`` log, the gateway's path, where concurrent calls share batches.

Ratios are sovra / floor as rates (1.0 = as fast as the floor; lower is slower). The
last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import random
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sovra.ledger import NoteSigner, SQLiteLogStorage, TransparencyLog
from sovra_verify._merkle import MerkleTree
from sovra_verify.checkpoint import Checkpoint
from sovra_verify.note import sign_note
from sovra_verify.tiles import (
    TILE_WIDTH,
    audit_tiles,
    encode_entry_bundle,
    parse_tile_path,
    tile_level_count,
)

ORIGIN = "bench.sovra.example/log"
ENTRY = (
    '{"kind":"decision","time_ms":1764000000000,"principal":"svc-crm-%08d",'
    '"effect":"allow","reason":"purpose customer-support permitted by pl-residents",'
    '"record":"rec-%08d","subject":"c0ffee%058d","policies":["pl-support"],"v":1}'
)


def entry(i: int) -> bytes:
    """A ~300-byte entry, distinct per index."""
    return (ENTRY % (i, i, i)).encode()


def _rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def floor_sha256(entries: list[bytes]) -> float:
    sha = hashlib.sha256
    start = time.perf_counter()
    for e in entries:
        sha(b"\x00" + e).digest()
    return _rate(len(entries), time.perf_counter() - start)


def floor_ed25519(n: int) -> float:
    key = Ed25519PrivateKey.generate()
    message = b"sovra-promise/v2\n" + bytes(100)
    start = time.perf_counter()
    for _ in range(n):
        key.sign(message)
    return _rate(n, time.perf_counter() - start)


def bench_append(root: Path, entries: list[bytes], batch: int) -> tuple[float, TransparencyLog]:
    log = TransparencyLog(
        SQLiteLogStorage(root / "log.db", sync="checkpoint"),
        NoteSigner(ORIGIN, Ed25519PrivateKey.generate()),
        ORIGIN,
    )
    items = [(e, (hashlib.sha256(e).hexdigest()[:32],)) for e in entries]
    start = time.perf_counter()
    for n, first in enumerate(range(0, len(items), batch)):
        log.append_many(items[first : first + batch])
        if n % 10 == 9:
            log.checkpoint()
    log.checkpoint()
    return _rate(len(items), time.perf_counter() - start), log


def bench_group_commit(root: Path, entries: list[bytes], threads: int) -> float:
    """The gateway's path: single appends from many threads, every batch fsynced."""
    log = TransparencyLog(
        SQLiteLogStorage(root / "group.db", sync="full"),
        NoteSigner(ORIGIN, Ed25519PrivateKey.generate()),
        ORIGIN,
    )
    share = len(entries) // threads

    def worker(part: list[bytes]) -> None:
        for e in part:
            log.append(e, (hashlib.sha256(e).hexdigest()[:32],))

    pool = [
        threading.Thread(target=worker, args=(entries[t * share : (t + 1) * share],))
        for t in range(threads)
    ]
    start = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    rate = _rate(share * threads, time.perf_counter() - start)
    log.close()
    return rate


def bench_proofs(log: TransparencyLog, count: int) -> float:
    size = log.size
    rng = random.Random(7)
    indices = [rng.randrange(size) for _ in range(count)]
    start = time.perf_counter()
    for i in indices:
        log.inclusion_proof(i, size)
    return _rate(count, time.perf_counter() - start)


class _TiledLog:
    """A read-only tiled log of *size* synthetic entries, built without the audit's code."""

    def __init__(self, size: int, signer: NoteSigner) -> None:
        self.size = size
        tree = MerkleTree()
        tree.extend(hashlib.sha256(b"\x00" + entry(i)).digest() for i in range(size))
        self.tree = tree
        sizes = sorted({size // 4, size // 2, size - 1, size})
        self.checkpoints = [
            sign_note(Checkpoint(ORIGIN, s, tree.root(s)).to_text(), [signer]) for s in sizes
        ]

    def fetch(self, path: str) -> bytes:
        level, index, width = parse_tile_path(path)
        start = index * TILE_WIDTH
        if level is None:
            return encode_entry_bundle([entry(i) for i in range(start, start + width)])
        if start + width > tile_level_count(self.size, level):
            raise ValueError(path)
        return b"".join(self.tree.level_hashes(8 * level, start, start + width))


def bench_audit(size: int) -> tuple[float, float]:
    signer = NoteSigner(ORIGIN, Ed25519PrivateKey.generate())
    tiled = _TiledLog(size, signer)
    start = time.perf_counter()
    report = audit_tiles(tiled.fetch, tiled.checkpoints, signer.vkey)
    seconds = time.perf_counter() - start
    report.check()
    # The floor: the same entries, hashed once, no bundles to read and nothing to compare.
    leaves = [entry(i) for i in range(size)]
    return seconds, floor_sha256(leaves)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller append/proof runs")
    parser.add_argument("--entries", type=int, default=None, help="entries to append")
    parser.add_argument("--batch", type=int, default=1000, help="entries per batch")
    parser.add_argument("--audit-size", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    count = args.entries or (200_000 if args.quick else 1_000_000)
    proofs = 100_000 if args.quick else 500_000
    say: Callable[[str], None] = lambda s: print(s, flush=True)  # noqa: E731
    say(f"sovra ledger bench on {platform.machine()}, Python {platform.python_version()}")

    entries = [entry(i) for i in range(count)]
    sha_rate = floor_sha256(entries)
    sign_rate = floor_ed25519(20_000)
    say(f"floor: SHA-256 of the leaves {sha_rate:,.0f}/s, Ed25519 signing {sign_rate:,.0f}/s")

    with tempfile.TemporaryDirectory() as tmp:
        append_rate, log = bench_append(Path(tmp), entries, args.batch)
        say(
            f"append: {append_rate:,.0f} entries/s ({count:,} x ~{len(entries[0])} B, "
            f"batches of {args.batch}), {append_rate / sha_rate:.3f} of SHA-256, "
            f"{append_rate / sign_rate:.2f}x Ed25519 signing"
        )
        proof_rate = bench_proofs(log, proofs)
        say(
            f"proofs: {proof_rate:,.0f} inclusion proofs/s at size {log.size:,}, "
            f"{proof_rate / sha_rate:.3f} of SHA-256, {proof_rate / sign_rate:.2f}x Ed25519"
        )
        log.close()
        group_rate = bench_group_commit(Path(tmp), entries[:20_000], 16)
        say(
            f"group commit: {group_rate:,.0f} single appends/s from 16 threads, "
            f"sync=full (an fsync per batch), {group_rate / sign_rate:.2f}x Ed25519 signing"
        )

    audit_s, audit_floor = bench_audit(args.audit_size)
    floor_s = args.audit_size / audit_floor
    say(
        f"audit: {args.audit_size:,} entries from tiles in {audit_s:.2f} s "
        f"(floor: hashing the leaves {floor_s:.2f} s, ratio {floor_s / audit_s:.3f})"
    )
    result = {
        "entries": count,
        "batch": args.batch,
        "append_per_s": round(append_rate),
        "proofs_per_s": round(proof_rate),
        "audit_entries": args.audit_size,
        "audit_1m_s": round(audit_s * 1_000_000 / args.audit_size, 3),
        "floor_sha256_per_s": round(sha_rate),
        "floor_ed25519_sign_per_s": round(sign_rate),
        "append_vs_sha256": round(append_rate / sha_rate, 4),
        "append_vs_ed25519": round(append_rate / sign_rate, 3),
        "proofs_vs_sha256": round(proof_rate / sha_rate, 4),
        "proofs_vs_ed25519": round(proof_rate / sign_rate, 3),
        "audit_vs_sha256": round(floor_s / audit_s, 4),
        "group_commit_full_sync_per_s": round(group_rate),
    }
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
