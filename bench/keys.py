"""Key custody throughput beside its physical floor, measured in the same run.

    .venv/bin/python bench/keys.py [--quick]

Seal and open: ``sovra.keys.envelope.seal_into`` / ``open_into`` (segmented format 2, a
fresh data key per record) against one ``AESGCM(key).encrypt_into`` / ``decrypt_into``
call over the same input and output buffers, for 1 KiB .. 1 GiB. Each figure is the best
of several interleaved repetitions, so a neighbour's load hurts both sides alike. Ratios
are sovra / floor (1.0 = no overhead).

Peak memory: a child process seals a 1 GiB stream from a synthetic source into a file,
another opens that file into a discarding sink; ``ru_maxrss`` of each child is reported.

Unwrap: an in-process custodian releasing data keys against a logged allow (receipt and
decision checks included), receipts from a real ``TransparencyLog``. The log signs one
promise per batch of entries and the custodian checks each promise's signature once, so
the figure depends on how decisions share batches; four are printed side by side:

- ``unwrap_local_per_s``: one key per decision, the decisions appended one per call by 40
  threads to a durable SQLite log, so they share batches exactly as the log's group commit
  forms them on this machine (``unwrap_local_group_commit_mean_batch``);
- ``unwrap_local_shared_batch_per_s``: one key per decision, decisions logged 128 per batch;
- ``unwrap_local_own_batch_per_s``: one key per decision, each decision alone in its batch:
  one Ed25519 check per key, the worst case;
- ``unwrap_local_100_per_decision_per_s``: 100 keys per decision, as the gateway sends all
  of one request's keys under its decision.

Then the custodian as its own service in a child process on loopback, reached with
``RemoteCustodian``, 50 keys per request, each request's decision in its own batch
(``unwrap_remote_per_s``, ``unwrap_remote_p99_ms`` per request), and one key per request
with decisions logged 128 per batch and alone.

Each in-process one-key figure is the best of three passes, every pass with decisions of
its own, so no pass finds batch promises another one verified.

Batched calls (``batch_*``), 1,000 items per call, best of a few calls: ``wrap_many`` for
1,000 subjects without a key yet (their subject keys made in one transaction) and for
1,000 known ones, beside ``wrap`` one at a time for new subjects (a transaction each);
``unwrap_batches`` with 1,000 requests of one key each, every request under its own logged
allow (decisions logged 128 per batch, so one Ed25519 check per 128 requests), beside
``unwrap`` one request at a time; and the CPU time of one release's allow check (receipt
path, entry, freshness, coverage) with its batch promise already verified. The same two
batched calls against the custodian service: one HTTP request per call.

Witnessed release (``witnessed_*``, ``witness_round_trip_*``, ``gateway_access_*``): a
custodian that requires 2 of 3 witnesses' cosignatures, unwrap per second and p99 beside
the same custodian without, the per-batch witness round trip, and the gateway's access
throughput with witnessed release on and off; measured by ``bench/witnessed_release.py``
(its docstring says how).

Key transport (``hpke_*``, ``--only hpke`` runs these alone): the CPU time of one data key
sealed to a custodian's transport key (``transport.seal_key``: what a client does per
record, and a custodian per key released to a client) and of one opened
(``transport.open_key``), and of one fresh recipient key pair (``new_recipient``, per
access request), for each HPKE suite: X25519 alone beside the hybrid post-quantum KEMs
(ML-KEM-768 + X25519, ML-KEM-1024 + P-384). The suites run interleaved, round after
round, and each figure is the best round's CPU time per operation (``time.process_time``,
so a neighbour's load inflates it less than wall time), given as operations per second.

Tink: Google Tink's streaming AEAD (AES256_GCM_HKDF_1MB) on 64 MiB, if the ``tink``
package is installed; ``tink_ratio`` is sovra's seal throughput over Tink's.

The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sovra.keys import LocalCustodian, envelope, transport
from sovra.ledger import MemoryLogStorage, NoteSigner, SQLiteLogStorage, TransparencyLog
from sovra.model import LogEntry, RecordHeader, ReleaseAuthorization, WrappedKey
from witnessed_release import (  # beside this file: the script's folder is on sys.path
    WITNESSED_SUMMARY,
    bench_witnessed_release,
)

KiB, MiB, GiB = 1024, 1024 * 1024, 1024 * 1024 * 1024
SIZES = [("1KiB", KiB), ("64KiB", 64 * KiB), ("1MiB", MiB), ("64MiB", 64 * MiB), ("1GiB", GiB)]
HEADER = RecordHeader(
    record_id="r-bench",
    subject="ab" * 32,
    jurisdiction="PL",
    region="eu-central",
    kek_version=1,
)
AAD = HEADER.to_bytes()


def best_time(fn: Callable[[], object], budget_s: float, min_reps: int) -> float:
    """The fastest of repeated runs of *fn* (seconds), within about *budget_s*."""
    times: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(times) < min_reps or time.perf_counter() < deadline:
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
        if len(times) >= 10_000:
            break
    return min(times)


def paired(
    ours: Callable[[], object],
    floor: Callable[[], object],
    budget_s: float,
    min_reps: int,
    rounds: int = 3,
) -> tuple[float, float]:
    """Best times of *ours* and *floor*, interleaved in rounds so load hits both alike."""
    best_ours, best_floor = float("inf"), float("inf")
    for _ in range(rounds):
        best_floor = min(best_floor, best_time(floor, budget_s / 6, max(1, min_reps // 3)))
        best_ours = min(best_ours, best_time(ours, budget_s / 6, max(1, min_reps // 3)))
    return best_ours, best_floor


def bench_seal_open(quick: bool) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name, size in SIZES:
        results[name] = bench_one_size(name, size, quick)
    return results


def bench_one_size(name: str, size: int, quick: bool) -> dict[str, Any]:
    plaintext = bytearray(os.urandom(min(size, 64 * MiB)))
    while len(plaintext) < size:
        plaintext += plaintext[: size - len(plaintext)]
    src = memoryview(plaintext)
    # Output buffers are allocated once and reused, as encrypt_into is meant to be used;
    # the best-of timing drops the first run's page faults on both sides.
    sealed = bytearray(envelope.sealed_size(size))
    floor_ct = bytearray(size + 16)
    opened = bytearray(size)
    nonce = os.urandom(12)
    big = size >= GiB
    budget = 0.6 if quick else 2.0
    reps = 3 if big else 6
    floor_key = os.urandom(32)

    def floor_seal() -> None:
        # A fresh key per record on both sides: the key schedule is part of the cost.
        AESGCM(os.urandom(32)).encrypt_into(nonce, src, AAD, floor_ct)

    def our_seal() -> None:
        envelope.seal_into(HEADER, src, sealed)

    # A 1 GiB run takes ~0.3 s, so one neighbour's burst can spoil it: more rounds.
    rounds = 8 if big and not quick else 3
    t_seal, t_floor_seal = paired(our_seal, floor_seal, budget, reps, rounds)

    AESGCM(floor_key).encrypt_into(nonce, src, AAD, floor_ct)
    _, data_key = envelope.seal_into(HEADER, src, sealed)

    def floor_open() -> None:
        AESGCM(floor_key).decrypt_into(nonce, floor_ct, AAD, opened)

    def our_open() -> None:
        envelope.open_into(HEADER, sealed, data_key, opened)

    t_open, t_floor_open = paired(our_open, floor_open, budget, reps, rounds)
    if opened != plaintext:
        raise SystemExit(f"{name}: opened bytes differ from the plaintext")
    row = {
        "bytes": size,
        "seal_gbps": size / t_seal / 1e9,
        "seal_floor_gbps": size / t_floor_seal / 1e9,
        "seal_ratio": t_floor_seal / t_seal,
        "open_gbps": size / t_open / 1e9,
        "open_floor_gbps": size / t_floor_open / 1e9,
        "open_ratio": t_floor_open / t_open,
    }
    print(
        f"{name:>6}: seal {row['seal_gbps']:6.2f} GB/s vs encrypt_into "
        f"{row['seal_floor_gbps']:6.2f} ({row['seal_ratio']:.2f}x)   open "
        f"{row['open_gbps']:6.2f} GB/s vs decrypt_into {row['open_floor_gbps']:6.2f} "
        f"({row['open_ratio']:.2f}x)",
        flush=True,
    )
    return row


# -- peak memory of a 1 GiB stream, in child processes ------------------------------------


class _Pattern:
    """A synthetic source of *size* bytes that repeats one random 1 MiB block."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.block = memoryview(os.urandom(MiB))

    def readinto(self, buffer: memoryview, /) -> int:
        n = min(len(buffer), self.left)
        done = 0
        while done < n:
            k = min(n - done, len(self.block))
            buffer[done : done + k] = self.block[:k]
            done += k
        self.left -= n
        return n


class _Discard:
    def __init__(self) -> None:
        self.count = 0

    def write(self, data: memoryview, /) -> int:
        self.count += len(data)
        return len(data)


def child(mode: str, path: str, key_hex: str) -> None:
    start = time.perf_counter()
    if mode == "seal":
        with open(path, "wb", buffering=0) as sink:
            _, key = envelope.seal_stream(HEADER, _Pattern(GiB), sink)
        Path(path + ".key").write_text(key.hex())
        moved = GiB
    else:
        with open(path, "rb", buffering=0) as source:
            moved = envelope.open_stream(HEADER, source, _Discard(), bytes.fromhex(key_hex))
    elapsed = time.perf_counter() - start
    # VmHWM is this process's own peak; ru_maxrss would carry the parent's across exec.
    status = Path("/proc/self/status").read_text()
    hwm = [line for line in status.splitlines() if line.startswith("VmHWM:")]
    rss_kib = int(hwm[0].split()[1]) if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"mode": mode, "bytes": moved, "seconds": elapsed, "rss_kib": rss_kib}))


def bench_peak_rss() -> dict[str, Any]:
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="sovra-bench-keys-") as tmp:
        path = str(Path(tmp) / "big.sovra")
        key_hex = ""
        for mode in ("seal", "open"):
            proc = subprocess.run(
                [sys.executable, __file__, "--child", mode, path, key_hex],
                check=True,
                capture_output=True,
                text=True,
            )
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            if mode == "seal":
                key_hex = Path(path + ".key").read_text()
            out[mode] = {
                "peak_rss_mib": row["rss_kib"] / 1024,
                "stream_gbps_with_file_io": row["bytes"] / row["seconds"] / 1e9,
            }
            print(
                f"1 GiB stream {mode}: peak RSS {out[mode]['peak_rss_mib']:.1f} MiB, "
                f"{out[mode]['stream_gbps_with_file_io']:.2f} GB/s including file I/O",
                flush=True,
            )
    out["peak_rss_1gib_mib"] = max(out["seal"]["peak_rss_mib"], out["open"]["peak_rss_mib"])
    return out


# -- unwrap against a logged allow ----------------------------------------------------------

ORIGIN = "bench/log"
REQUESTER = "svc-pl"
GROUP_COMMIT_THREADS = 40
"""Concurrent appenders, as many as uvicorn's worker threads (anyio's default of 40)."""
SHARED_BATCH = 128
PER_DECISION = 100
PASSES = 3


def new_log(log_key: Ed25519PrivateKey, storage: Any = None) -> TransparencyLog:
    return TransparencyLog(storage or MemoryLogStorage(), NoteSigner(ORIGIN, log_key), ORIGIN)


def decision_entry(records: list[RecordHeader], now_ms: int) -> bytes:
    return LogEntry(
        kind="decision",
        time_ms=now_ms,
        principal=REQUESTER,
        fields={
            "effect": "allow",
            "purpose": "customer-support",
            "records": [h.record_id for h in records],
            "subjects": sorted({h.subject for h in records}),
        },
    ).to_bytes()


def logged_one_by_one(log: TransparencyLog, entries: list[bytes]) -> list[ReleaseAuthorization]:
    """Each decision appended alone: its own batch, its own signature (the worst case)."""
    return [ReleaseAuthorization(e, log.append(e)) for e in entries]


def logged_in_batches(
    log: TransparencyLog, entries: list[bytes], size: int
) -> list[ReleaseAuthorization]:
    """Decisions appended *size* at a time with ``append_many``: one promise per batch."""
    out = []
    for i in range(0, len(entries), size):
        chunk = entries[i : i + size]
        receipts = log.append_many([(e, ()) for e in chunk])
        out += [ReleaseAuthorization(e, r) for e, r in zip(chunk, receipts, strict=True)]
    return out


def logged_concurrently(
    log: TransparencyLog, entries: list[bytes], threads: int
) -> list[ReleaseAuthorization]:
    """Decisions appended one per call from *threads* threads; the log's group commit
    batches whatever is queued while it writes, as it does under a loaded gateway."""
    out: list[ReleaseAuthorization | None] = [None] * len(entries)

    def work(first: int) -> None:
        for i in range(first, len(entries), threads):
            out[i] = ReleaseAuthorization(entries[i], log.append(entries[i]))

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    done = [a for a in out if a is not None]
    if len(done) != len(entries):
        raise SystemExit("a concurrent append failed")
    return done


def release_one_by_one(
    custodian: LocalCustodian,
    keys: list[tuple[WrappedKey, RecordHeader]],
    auths: list[ReleaseAuthorization],
) -> tuple[float, float]:
    """Release each key under its own decision, in log order; (keys/s, p99 ms)."""
    order = sorted(range(len(auths)), key=lambda i: auths[i].receipt.index)
    latencies = []
    start = time.perf_counter()
    for i in order:
        wrapped, header = keys[i]
        t0 = time.perf_counter()
        custodian.unwrap(wrapped, header, auths[i], REQUESTER)
        latencies.append(time.perf_counter() - t0)
    seconds = time.perf_counter() - start
    return len(order) / seconds, p99(latencies) * 1000


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[int(0.99 * (len(ordered) - 1))]


def mean_batch(auths: list[ReleaseAuthorization]) -> float:
    """The batch size an average decision was logged in (weighted by decisions)."""
    return sum(a.receipt.batch_size for a in auths) / len(auths)


def bench_unwrap(quick: bool) -> dict[str, Any]:
    log_key = Ed25519PrivateKey.generate()
    now_ms = int(time.time() * 1000)
    n = 4096 if quick else 20_480
    with tempfile.TemporaryDirectory(prefix="sovra-bench-custodian-") as tmp:
        custodian = LocalCustodian.create(Path(tmp) / "PL.key", "PL", log_key.public_key())
        headers = [
            RecordHeader(
                record_id=f"r-{uuid.uuid4().hex}",
                subject=HEADER.subject,
                jurisdiction="PL",
                region="eu-central",
                kek_version=custodian.current_kek_version,
            )
            for _ in range(n)
        ]
        keys = [os.urandom(32) for _ in headers]
        start = time.perf_counter()
        wrapped = [custodian.wrap(k, h) for k, h in zip(keys, headers, strict=True)]
        wrap_s = time.perf_counter() - start
        pairs = list(zip(wrapped, headers, strict=True))

        # One key per decision, three ways of logging the decisions. Each pass logs
        # decisions of its own, so no pass finds batch promises another one verified; each
        # figure is the best of PASSES passes.
        def singles() -> list[bytes]:
            return [decision_entry([h], now_ms) for h in headers]

        def grouped(n: int) -> list[ReleaseAuthorization]:
            # Concurrent single appends to SQLite with an fsync per commit, as a
            # deployment's log: batches as its group commit forms them on this machine.
            log = new_log(log_key, SQLiteLogStorage(Path(tmp) / f"log-{n}.db"))
            try:
                return logged_concurrently(log, singles(), GROUP_COMMIT_THREADS)
            finally:
                log.close()

        ways: dict[str, Callable[[int], list[ReleaseAuthorization]]] = {
            "grouped": grouped,
            "shared": lambda n: logged_in_batches(new_log(log_key), singles(), SHARED_BATCH),
            # Every decision alone in its batch: one Ed25519 check per key.
            "alone": lambda n: logged_one_by_one(new_log(log_key), singles()),
        }
        best: dict[str, tuple[float, float]] = {}
        batches: list[float] = []
        for n_pass in range(PASSES):
            for name, way in ways.items():
                auths = way(n_pass)
                if name == "grouped":
                    batches.append(mean_batch(auths))
                rate, tail = release_one_by_one(custodian, pairs, auths)
                if rate > best.get(name, (0.0, 0.0))[0]:
                    best[name] = (rate, tail)
        (grouped_rate, grouped_p99), (shared_rate, shared_p99), (alone_rate, alone_p99) = (
            best["grouped"],
            best["shared"],
            best["alone"],
        )

        # PER_DECISION keys per decision, as the gateway sends one request's keys.
        chunks = [pairs[i : i + PER_DECISION] for i in range(0, n, PER_DECISION)]
        entries = [decision_entry([h for _, h in chunk], now_ms) for chunk in chunks]
        auths = logged_one_by_one(new_log(log_key), entries)
        batch_latencies = []
        start = time.perf_counter()
        for chunk, auth in zip(chunks, auths, strict=True):
            t0 = time.perf_counter()
            custodian.unwrap_many(chunk, auth, REQUESTER)
            batch_latencies.append(time.perf_counter() - t0)
        batch_s = time.perf_counter() - start
        custodian.close()
    result = {
        "wrap_local_per_s": n / wrap_s,
        "unwrap_local_per_s": grouped_rate,
        "unwrap_local_p99_ms": grouped_p99,
        "unwrap_local_group_commit_threads": GROUP_COMMIT_THREADS,
        "unwrap_local_group_commit_mean_batch": sum(batches) / len(batches),
        "unwrap_local_shared_batch_per_s": shared_rate,
        "unwrap_local_shared_batch_p99_ms": shared_p99,
        "unwrap_local_shared_batch": SHARED_BATCH,
        "unwrap_local_own_batch_per_s": alone_rate,
        "unwrap_local_own_batch_p99_ms": alone_p99,
        "unwrap_local_100_per_decision_per_s": n / batch_s,
        "unwrap_local_100_per_decision_p99_ms": p99(batch_latencies) * 1000,
    }
    rows = [
        (
            f"one key per decision, decisions group-committed by {GROUP_COMMIT_THREADS} "
            f"threads (mean batch {result['unwrap_local_group_commit_mean_batch']:.1f})",
            grouped_rate,
            grouped_p99,
            "unwrap_local_per_s",
        ),
        (
            f"one key per decision, decisions logged {SHARED_BATCH} per batch",
            shared_rate,
            shared_p99,
            "unwrap_local_shared_batch_per_s",
        ),
        (
            "one key per decision, each decision alone in its batch (worst case)",
            alone_rate,
            alone_p99,
            "unwrap_local_own_batch_per_s",
        ),
        (
            f"{PER_DECISION} keys per decision",
            result["unwrap_local_100_per_decision_per_s"],
            result["unwrap_local_100_per_decision_p99_ms"],
            "unwrap_local_100_per_decision_per_s",
        ),
    ]
    print(
        f"custodian in-process: wrap {result['wrap_local_per_s']:,.0f}/s; unwrap with the "
        "receipt check (keys/s, p99 per call, best of "
        f"{PASSES} passes):",
        flush=True,
    )
    for label, rate, tail, name in rows:
        print(f"  {label:<78} {rate:>8,.0f}/s {tail:7.3f} ms  {name}", flush=True)
    return result


# -- batched custodian calls ------------------------------------------------------------------

BATCH = 1000


def subject_headers(tag: str, count: int) -> list[RecordHeader]:
    """*count* records, each of a subject of her own (so a wrap may have to make her key)."""
    return [
        RecordHeader(f"r-{uuid.uuid4().hex}", (tag + f"{i:08x}").ljust(64, "0"), "PL", "eu", 1)
        for i in range(count)
    ]


def batch_requests(
    log_key: Ed25519PrivateKey, wrapped: list[WrappedKey], headers: list[RecordHeader]
) -> list[tuple[list[tuple[WrappedKey, RecordHeader]], ReleaseAuthorization, str]]:
    """One release request per record, each under its own allow, logged SHARED_BATCH per
    batch of the log (fresh decisions, so no promise was verified before)."""
    now_ms = int(time.time() * 1000)
    entries = [decision_entry([h], now_ms) for h in headers]
    auths = logged_in_batches(new_log(log_key), entries, SHARED_BATCH)
    return [([(w, h)], a, REQUESTER) for w, h, a in zip(wrapped, headers, auths, strict=True)]


def unwrap_each(custodian: LocalCustodian, requests: list[Any]) -> None:
    for items, auth, requester in requests:
        custodian.unwrap(items[0][0], items[0][1], auth, requester)


def released_all(results: list[Any]) -> int:
    if not all(isinstance(r, list) for r in results):
        raise SystemExit(f"a batched release was refused: {results[0]!r}")
    return sum(len(r) for r in results)


def bench_batches(quick: bool) -> dict[str, Any]:
    log_key = Ed25519PrivateKey.generate()
    reps = 2 if quick else 8
    best: dict[str, float] = {}

    def timed(name: str, fn: Callable[[Any], object], arg: Any) -> Any:
        start = time.perf_counter()
        out = fn(arg)
        best[name] = min(best.get(name, float("inf")), time.perf_counter() - start)
        return out

    with tempfile.TemporaryDirectory(prefix="sovra-bench-batches-") as tmp:
        custodian = LocalCustodian.create(Path(tmp) / "PL.key", "PL", log_key.public_key())
        for rep in range(reps):
            headers = subject_headers(f"{rep:02x}a", BATCH)
            items = [(os.urandom(32), h) for h in headers]
            wrapped = timed("wrap_many_new", custodian.wrap_many, items)
            timed("wrap_many_known", custodian.wrap_many, items)
            one = subject_headers(f"{rep:02x}b", 100 if quick else BATCH)
            start = time.perf_counter()
            for h in one:
                custodian.wrap(os.urandom(32), h)
            per_one = (time.perf_counter() - start) / len(one)
            best["wrap_one_new"] = min(best.get("wrap_one_new", float("inf")), per_one * BATCH)
            requests = batch_requests(log_key, wrapped, headers)
            released_all(timed("unwrap_batches", custodian.unwrap_batches, requests))
            requests = batch_requests(log_key, wrapped, headers)
            timed("unwrap_one_by_one", partial(unwrap_each, custodian), requests)
            # The allow check alone, in CPU time, its batch promises verified beforehand.
            requests = batch_requests(log_key, wrapped, headers)
            for _, auth, _ in requests[::SHARED_BATCH]:
                custodian._promises.verify(auth.receipt, auth.entry)
            now_ms = int(time.time() * 1000)
            cpu = time.thread_time()
            for items_, auth, requester in requests:
                custodian._verify_allow(items_[0][1].record_id, auth, requester, now_ms)
            check = (time.thread_time() - cpu) / len(requests)
            best["check"] = min(best.get("check", float("inf")), check)
        custodian.close()
    result = {
        "batch": BATCH,
        "batch_wrap_many_new_per_s": BATCH / best["wrap_many_new"],
        "batch_wrap_many_known_per_s": BATCH / best["wrap_many_known"],
        "batch_wrap_one_by_one_new_per_s": BATCH / best["wrap_one_new"],
        "batch_unwrap_batches_per_s": BATCH / best["unwrap_batches"],
        "batch_unwrap_one_by_one_per_s": BATCH / best["unwrap_one_by_one"],
        "batch_release_check_cpu_us": best["check"] * 1e6,
    }
    print(
        f"custodian in-process, batches of {BATCH} (best of {reps}): wrap_many "
        f"{result['batch_wrap_many_new_per_s']:,.0f} keys/s for new subjects (wrap one at "
        f"a time {result['batch_wrap_one_by_one_new_per_s']:,.0f}/s), "
        f"{result['batch_wrap_many_known_per_s']:,.0f} keys/s for known ones; "
        f"unwrap_batches {result['batch_unwrap_batches_per_s']:,.0f} keys/s, one request "
        f"per key, each under its own allow (unwrap one at a time "
        f"{result['batch_unwrap_one_by_one_per_s']:,.0f}/s); the allow check "
        f"{result['batch_release_check_cpu_us']:.1f} us CPU per release",
        flush=True,
    )
    return result


# -- unwrap against a custodian service in another process, on loopback -------------------------


def serve_custodian(directory: str, port: str) -> None:
    import uvicorn
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from sovra.server.custodian import create_custodian_app

    root = Path(directory)
    log_public = Ed25519PublicKey.from_public_bytes(bytes.fromhex((root / "log.pub").read_text()))
    custodian = LocalCustodian.create(root / "PL.key", "PL", log_public)
    app = create_custodian_app(custodian, token=b"b" * 32, rate_per_s=1e6, burst=1_000_000)
    uvicorn.run(app, host="127.0.0.1", port=int(port), log_level="warning")


def bench_remote_batches(remote: Any, log_key: Ed25519PrivateKey, quick: bool) -> dict[str, Any]:
    """wrap_many and unwrap_batches of BATCH items against the service, one request each."""
    wrap_s = unwrap_s = float("inf")
    for rep in range(2 if quick else 8):
        headers = subject_headers(f"{rep:02x}c", BATCH)
        items = [(os.urandom(32), h) for h in headers]
        start = time.perf_counter()
        wrapped = remote.wrap_many(items)
        wrap_s = min(wrap_s, time.perf_counter() - start)
        requests = batch_requests(log_key, wrapped, headers)
        start = time.perf_counter()
        released_all(remote.unwrap_batches(requests))
        unwrap_s = min(unwrap_s, time.perf_counter() - start)
    result = {
        "batch_remote_wrap_many_new_per_s": BATCH / wrap_s,
        "batch_remote_unwrap_batches_per_s": BATCH / unwrap_s,
    }
    print(
        f"custodian service, batches of {BATCH} in one request each: wrap_many "
        f"{result['batch_remote_wrap_many_new_per_s']:,.0f} keys/s (new subjects), "
        f"unwrap_batches {result['batch_remote_unwrap_batches_per_s']:,.0f} keys/s "
        "(one key per release request, each under its own allow)",
        flush=True,
    )
    return result


def bench_unwrap_remote(quick: bool) -> dict[str, Any]:
    import socket

    from sovra.errors import SovraError
    from sovra.keys.remote import RemoteCustodian

    log_key = Ed25519PrivateKey.generate()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory(prefix="sovra-bench-remote-") as tmp:
        (Path(tmp) / "log.pub").write_text(log_key.public_key().public_bytes_raw().hex())
        proc = subprocess.Popen(
            [sys.executable, __file__, "--serve-custodian", tmp, str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            remote = RemoteCustodian(f"http://127.0.0.1:{port}", "PL", b"b" * 32)
            deadline = time.monotonic() + 20
            while True:
                try:
                    remote.health()
                    break
                except SovraError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            n = 1000 if quick else 5000
            headers = [
                RecordHeader(f"r-{uuid.uuid4().hex}", HEADER.subject, "PL", "eu", 1)
                for _ in range(n)
            ]
            start = time.perf_counter()
            wrapped = [remote.wrap(os.urandom(32), h) for h in headers]
            wrap_s = time.perf_counter() - start
            pairs = list(zip(wrapped, headers, strict=True))
            batch = 50
            chunks = [pairs[i : i + batch] for i in range(0, n, batch)]
            now_ms = int(time.time() * 1000)
            # Each request's decision in its own log batch: the service checks one
            # signature per request, as it did before it kept verified promises.
            entries = [decision_entry([h for _, h in c], now_ms) for c in chunks]
            auths = logged_one_by_one(new_log(log_key), entries)
            latencies: list[float] = []
            released = 0
            rounds = 3 if quick else 10
            start = time.perf_counter()
            for _ in range(rounds):
                for chunk, auth in zip(chunks, auths, strict=True):
                    t0 = time.perf_counter()
                    released += len(remote.unwrap_many(chunk, auth, REQUESTER))
                    latencies.append(time.perf_counter() - t0)
            unwrap_s = time.perf_counter() - start

            # One key per request: decisions logged SHARED_BATCH per batch, then alone.
            single = pairs[: 500 if quick else 2000]
            singles = [decision_entry([h], now_ms) for _, h in single]
            single_rates = {}
            for name, auths_1 in (
                ("shared", logged_in_batches(new_log(log_key), singles, SHARED_BATCH)),
                ("own", logged_one_by_one(new_log(log_key), singles)),
            ):
                start = time.perf_counter()
                for (w, h), auth in zip(single, auths_1, strict=True):
                    remote.unwrap(w, h, auth, REQUESTER)
                single_rates[name] = len(single) / (time.perf_counter() - start)
            batch_rates = bench_remote_batches(remote, log_key, quick)
            remote.close()
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    result = {
        "wrap_remote_per_s": n / wrap_s,
        "unwrap_remote_per_s": released / unwrap_s,
        "unwrap_remote_batch": batch,
        "unwrap_remote_p99_ms": p99(latencies) * 1000,
        "unwrap_remote_requests": len(latencies),
        "unwrap_remote_single_shared_batch_per_s": single_rates["shared"],
        "unwrap_remote_single_own_batch_per_s": single_rates["own"],
        **batch_rates,
    }
    print(
        f"custodian service on loopback: wrap (one key per request) "
        f"{result['wrap_remote_per_s']:,.0f}/s; unwrap, {batch} keys per request, "
        f"{result['unwrap_remote_per_s']:,.0f} keys/s, p99 per request "
        f"{result['unwrap_remote_p99_ms']:.2f} ms over {len(latencies)} requests; one key "
        f"per request: {single_rates['shared']:,.0f}/s with decisions logged {SHARED_BATCH} "
        f"per batch, {single_rates['own']:,.0f}/s each in its own batch",
        flush=True,
    )
    return result


# -- key transport: HPKE suites ---------------------------------------------------------------

HPKE_HEADER = dataclasses.replace(HEADER, content_type=transport.CLIENT_SEALED_CONTENT_TYPE)


def cpu_per_op(fn: Callable[[], object], n: int) -> float:
    """CPU seconds per call of *fn* over *n* calls."""
    start = time.process_time()
    for _ in range(n):
        fn()
    return (time.process_time() - start) / n


def bench_hpke(quick: bool) -> dict[str, Any]:
    rounds, n = (3, 200) if quick else (7, 1000)
    data_key = os.urandom(32)
    ops: dict[str, dict[str, Callable[[], object]]] = {}
    for suite in transport.SUITES:
        private = transport.new_recipient(suite)
        sealed = transport.seal_key(private.public, data_key, "to-client", HPKE_HEADER)
        ops[suite] = {
            "wrap": partial(transport.seal_key, private.public, data_key, "to-client", HPKE_HEADER),
            "unwrap": partial(transport.open_key, private, sealed, "to-client", HPKE_HEADER),
            "keygen": partial(transport.new_recipient, suite),
        }
    best: dict[str, dict[str, float]] = {s: {} for s in ops}
    for _ in range(rounds):  # suites interleaved: each round runs every suite once
        for suite, table in ops.items():
            for name, fn in table.items():
                seconds = cpu_per_op(fn, n)
                best[suite][name] = min(best[suite].get(name, float("inf")), seconds)
    result: dict[str, Any] = {"hpke_ops_per_round": n, "hpke_rounds": rounds}
    for suite, table in best.items():
        key = suite.replace("-", "_")
        row = {f"{name}_per_s": 1 / seconds for name, seconds in table.items()}
        row |= {f"{name}_cpu_us": seconds * 1e6 for name, seconds in table.items()}
        row["envelope_bytes"] = transport.envelope_size(suite)
        row["public_key_bytes"] = transport.SUITES[suite].public_size
        result[key] = row
        print(
            f"hpke {suite}: wrap {row['wrap_per_s']:,.0f}/s ({row['wrap_cpu_us']:.0f} us CPU), "
            f"unwrap {row['unwrap_per_s']:,.0f}/s ({row['unwrap_cpu_us']:.0f} us), "
            f"key pair {row['keygen_per_s']:,.0f}/s; envelope {row['envelope_bytes']} B, "
            f"public key {row['public_key_bytes']} B",
            flush=True,
        )
    base = result["x25519"]
    for suite in transport.SUITES:
        if suite != "x25519":
            key = suite.replace("-", "_")
            result[key]["wrap_vs_x25519"] = result[key]["wrap_per_s"] / base["wrap_per_s"]
            result[key]["unwrap_vs_x25519"] = result[key]["unwrap_per_s"] / base["unwrap_per_s"]
    return result


def hpke_summary(hpke: dict[str, Any]) -> dict[str, Any]:
    return {
        f"hpke_{suite.replace('-', '_')}_{op}_per_s": hpke[suite.replace("-", "_")][f"{op}_per_s"]
        for suite in transport.SUITES
        for op in ("wrap", "unwrap")
    }


# -- Tink's streaming AEAD ------------------------------------------------------------------


def bench_tink(quick: bool, our_seal_gbps: float) -> dict[str, Any]:
    try:
        import tink
        from tink import streaming_aead
    except ImportError as exc:
        print(f"tink: not installed ({exc}); tink_ratio is null", flush=True)
        return {"tink_ratio": None, "tink_note": f"tink not importable: {exc}"}
    streaming_aead.register()
    template = streaming_aead.streaming_aead_key_templates.AES256_GCM_HKDF_1MB
    primitive = tink.new_keyset_handle(template).primitive(streaming_aead.StreamingAead)
    data = os.urandom(64 * MiB)

    class Sink(io.RawIOBase):
        def writable(self) -> bool:
            return True

        def write(self, b: Any) -> int:
            return len(b)

    def run() -> None:
        with primitive.new_encrypting_stream(Sink(), AAD) as stream:
            stream.write(data)

    seconds = best_time(run, 0.5 if quick else 2.0, 2)
    gbps = len(data) / seconds / 1e9
    print(f"tink streaming AEAD seal, 64 MiB: {gbps:.2f} GB/s", flush=True)
    return {"tink_seal_gbps_64mib": gbps, "tink_ratio": our_seal_gbps / gbps}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs (under a minute)")
    parser.add_argument("--child", nargs=3, metavar=("MODE", "PATH", "KEY"), help=argparse.SUPPRESS)
    parser.add_argument("--serve-custodian", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument(
        "--only", choices=["hpke"], help="run one part alone (hpke: key transport suites)"
    )
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    if args.serve_custodian:
        serve_custodian(*args.serve_custodian)
        return
    started = time.perf_counter()
    print(
        f"python {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f} at start",
        flush=True,
    )
    if args.only == "hpke":
        hpke = bench_hpke(args.quick)
        print(json.dumps({**hpke_summary(hpke), "quick": args.quick, "hpke": hpke}))
        return
    rss = bench_peak_rss()  # first, while this process is still small
    seal_open = bench_seal_open(args.quick)
    large = [row for row in seal_open.values() if row["bytes"] >= MiB]
    unwrap = bench_unwrap(args.quick)
    batches = bench_batches(args.quick)
    remote = bench_unwrap_remote(args.quick)
    tink = bench_tink(args.quick, seal_open["64MiB"]["seal_gbps"])
    witnessed = bench_witnessed_release(args.quick)
    hpke = bench_hpke(args.quick)
    summary = {
        "seal_ratio_min_1mib": min(r["seal_ratio"] for r in large),
        "open_ratio_min_1mib": min(r["open_ratio"] for r in large),
        "peak_rss_1gib_mib": rss["peak_rss_1gib_mib"],
        "unwrap_local_per_s": unwrap["unwrap_local_per_s"],
        "unwrap_local_group_commit_mean_batch": unwrap["unwrap_local_group_commit_mean_batch"],
        "unwrap_local_shared_batch_per_s": unwrap["unwrap_local_shared_batch_per_s"],
        "unwrap_local_own_batch_per_s": unwrap["unwrap_local_own_batch_per_s"],
        "unwrap_local_100_per_decision_per_s": unwrap["unwrap_local_100_per_decision_per_s"],
        "unwrap_remote_per_s": remote["unwrap_remote_per_s"],
        "unwrap_remote_p99_ms": remote["unwrap_remote_p99_ms"],
        "seal_ratio_64kib": seal_open["64KiB"]["seal_ratio"],
        "open_ratio_64kib": seal_open["64KiB"]["open_ratio"],
        "batch_wrap_many_new_per_s": batches["batch_wrap_many_new_per_s"],
        "batch_unwrap_batches_per_s": batches["batch_unwrap_batches_per_s"],
        "batch_release_check_cpu_us": batches["batch_release_check_cpu_us"],
        "batch_remote_wrap_many_new_per_s": remote["batch_remote_wrap_many_new_per_s"],
        "batch_remote_unwrap_batches_per_s": remote["batch_remote_unwrap_batches_per_s"],
        "tink_ratio": tink["tink_ratio"],
        **{k: witnessed[k] for k in WITNESSED_SUMMARY},
        **hpke_summary(hpke),
        "quick": args.quick,
        "load_average_end": os.getloadavg()[0],
        "seconds": time.perf_counter() - started,
        "seal_open": seal_open,
        "stream_1gib": rss,
        "custodian": unwrap,
        "custodian_batches": batches,
        "custodian_remote": remote,
        "tink": tink,
        "witnessed_release": witnessed,
        "hpke": hpke,
    }
    print(json.dumps(summary, sort_keys=False))


if __name__ == "__main__":
    main()
