"""CPU per call between the gateway and a custodian process, on both sides of the call.

    PYTHONPATH=src .venv/bin/python bench/custodian_calls.py [--quick] [--transport T ...]

A custodian is started as ``sovra serve`` starts it (:class:`sovra.custody.CustodianProcesses`:
its own process, on a socket handed over, its secret on its standard input), and the
three calls a gateway makes on its hot paths are timed at batch sizes 1, 16 and 1,000:

- ``protect_many``: one value tokenized per record, each record of a new subject (the
  custodian makes and stores her key, as on a first ingest);
- ``wrap_many``: one data key per record, of those (now known) subjects;
- ``unwrap_batches``: one release request per record, each under its own logged allow
  (decisions appended 128 to a log batch, as a loaded gateway's group commit does);
- ``protect_and_wrap_many``: what an ingest batch now asks instead of the first two, in
  one call: one value tokenized and one data key wrapped per record, each record of a
  new subject (compare with ``protect_many`` + ``wrap_many``).

For each call: the gateway's CPU (this process, ``time.process_time``) and the custodian's
CPU (every thread of the child, from ``/proc/<pid>/task/*/schedstat``), per call. The
``in-process`` row is the same work on a :class:`~sovra.keys.LocalCustodian` in this
process: what the custodian's checks and cryptography cost with no transport at all.
Transports are run interleaved, round after round, and the best round kept, so that
machine noise hits them alike. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sovra.custody import CustodianProcesses
from sovra.keys import LocalCustodian
from sovra.keys.remote import RemoteCustodian
from sovra.ledger import MemoryLogStorage, NoteSigner, TransparencyLog
from sovra.model import LogEntry, RecordHeader, ReleaseAuthorization, WrappedKey

ORIGIN = "bench/custodian"
REQUESTER = "svc-pl"
SIZES = (1, 16, 1000)
LOG_BATCH = 128


def custodian_cpu_s(pid: int) -> float:
    """CPU seconds of every thread of process *pid* so far (nanosecond counters)."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0])
        except FileNotFoundError:
            continue  # a thread that ended in between
    return total / 1e9


def headers(count: int) -> list[RecordHeader]:
    """*count* records, each of a subject of her own."""
    return [
        RecordHeader(f"r-{uuid.uuid4().hex}", os.urandom(32).hex(), "PL", "eu", 1)
        for _ in range(count)
    ]


def allows(log: TransparencyLog, hs: Sequence[RecordHeader]) -> list[ReleaseAuthorization]:
    now_ms = int(time.time() * 1000)
    entries = [
        LogEntry(
            kind="decision",
            time_ms=now_ms,
            principal=REQUESTER,
            fields={
                "effect": "allow",
                "purpose": "customer-support",
                "records": [h.record_id],
                "subjects": [h.subject],
            },
        ).to_bytes()
        for h in hs
    ]
    out = []
    for i in range(0, len(entries), LOG_BATCH):
        chunk = entries[i : i + LOG_BATCH]
        receipts = log.append_many([(e, ()) for e in chunk])
        out += [ReleaseAuthorization(e, r) for e, r in zip(chunk, receipts, strict=True)]
    return out


class Side:
    """One way of reaching a custodian, with a way to read its CPU."""

    def __init__(self, name: str, custodian: Any, pid: int | None) -> None:
        self.name = name
        self.custodian = custodian
        self.pid = pid

    def cpu(self) -> float:
        return 0.0 if self.pid is None else custodian_cpu_s(self.pid)


def one_round(
    side: Side, log: TransparencyLog, size: int, calls: int
) -> dict[str, tuple[float, float]]:
    """Per-call (gateway CPU, custodian CPU) seconds of each operation, *calls* calls of
    *size* records each; the inputs are made before the clocks start."""
    c = side.custodian
    batches = [headers(size) for _ in range(calls)]
    protect_in = [
        [(h, [("tokenize", "email", f"{h.record_id}@example.pl")]) for h in b] for b in batches
    ]
    wrap_in = [[(os.urandom(32), h) for h in b] for b in batches]
    out: dict[str, tuple[float, float]] = {}

    def timed(name: str, fn: Callable[[Any], Any], inputs: Sequence[Any]) -> list[Any]:
        results = []
        g0, s0 = time.process_time(), side.cpu()
        for arg in inputs:
            results.append(fn(arg))
        g1, s1 = time.process_time(), side.cpu()
        out[name] = ((g1 - g0) / len(inputs), (s1 - s0) / len(inputs))
        return results

    timed("protect_many", c.protect_many, protect_in)
    wrapped: list[list[WrappedKey]] = timed("wrap_many", c.wrap_many, wrap_in)
    unwrap_in = []
    for b, ws in zip(batches, wrapped, strict=True):
        auths = allows(log, b)
        unwrap_in.append([([(w, h)], a, REQUESTER) for w, h, a in zip(ws, b, auths, strict=True)])
    results = timed("unwrap_batches", c.unwrap_batches, unwrap_in)
    for batch in results:
        if not all(isinstance(r, list) for r in batch):
            raise SystemExit(f"{side.name}: a release was refused: {batch[0]!r}")
    both_in = [
        [(os.urandom(32), h, [("tokenize", "email", f"{h.record_id}@example.pl")]) for h in b]
        for b in (headers(size) for _ in range(calls))
    ]
    timed("protect_and_wrap_many", c.protect_and_wrap_many, both_in)
    return out


def start_process(base: Path, log_key: Ed25519PrivateKey, transport: Any) -> CustodianProcesses:
    root = base / "dep"
    folder = root / "custodians" / "PL"
    folder.mkdir(parents=True)
    LocalCustodian.create(folder / "PL.key", "PL", log_key.public_key()).close()
    return CustodianProcesses(root, ["PL"], log_key.public_key(), transport=transport)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls and rounds")
    parser.add_argument(
        "--transport",
        action="append",
        choices=["in-process", "http", "unix"],
        help="what to measure (repeatable) [default: all]",
    )
    args = parser.parse_args()
    wanted = args.transport or ["in-process", "http", "unix"]
    rounds = 2 if args.quick else 5
    calls = {1: 100, 16: 30, 1000: 2} if args.quick else {1: 400, 16: 100, 1000: 4}
    log_key = Ed25519PrivateKey.generate()
    log = TransparencyLog(MemoryLogStorage(), NoteSigner(ORIGIN, log_key), ORIGIN)
    best: dict[str, dict[str, dict[str, list[float]]]] = {}
    with tempfile.TemporaryDirectory(prefix="sovra-bench-calls-") as tmp:
        base = Path(tmp)
        sides: list[Side] = []
        processes = []
        if "in-process" in wanted:
            local = LocalCustodian.create(base / "PL.key", "PL", log_key.public_key())
            sides.append(Side("in-process", local, None))
        for name in ("http", "unix"):
            if name not in wanted:
                continue
            procs = start_process(base / name, log_key, name)
            processes.append(procs)
            endpoint = procs.endpoints["PL"]
            remote = RemoteCustodian(endpoint.url, "PL", endpoint.token)
            pid = procs._children["PL"].pid
            sides.append(Side(name, remote, pid))
        try:
            for side in sides:  # warm up: connections, caches, imports
                one_round(side, log, 16, 3)
            for _ in range(rounds):
                for size in SIZES:
                    for side in sides:
                        figures = one_round(side, log, size, calls[size])
                        slot = best.setdefault(side.name, {}).setdefault(str(size), {})
                        for op, (gw, cu) in figures.items():
                            old = slot.get(op)
                            if old is None or gw + cu < old[0] + old[1]:
                                slot[op] = [gw, cu]
        finally:
            for side in sides:
                side.custodian.close()
            for procs in processes:
                procs.close()
    result: dict[str, Any] = {
        "bench": "custodian_calls",
        "quick": args.quick,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "unit": "CPU microseconds per call: [gateway, custodian]",
    }
    for name, by_size in best.items():
        result[name] = {
            size: {op: [round(v * 1e6, 1) for v in pair] for op, pair in ops.items()}
            for size, ops in by_size.items()
        }
        for size, ops in by_size.items():
            line = "  ".join(
                f"{op} {pair[0] * 1e6:9.1f} + {pair[1] * 1e6:9.1f}" for op, pair in ops.items()
            )
            print(f"{name:>10} x{size:<5} {line}  (us gateway + custodian per call)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
