"""Where the CPU of one batched record goes: each stage of the gateway's batch flows timed.

    .venv/bin/python bench/batch_stages.py [--quick] [--batches N]

A deployment made by ``sovra init --custodians in-process`` (as ``bench/gateway.py``
makes it), the same ~300-byte Polish support note, every record its own subject. Each
stage of ``Gateway.ingest_many`` and ``Gateway.access_many`` is wrapped for the run in a
timer of the calling thread's CPU (``time.thread_time``); a stage's figure is its own
time, without the stages timed inside it. The scan helper's part is its process's CPU
(from ``/proc``) over the run. Three runs:

- ``ingest_many`` and ``access_many`` of 1,000 (``--batches`` calls each): the CPU of one
  record of a large batch;
- ``ingest_many`` and ``access_many`` of one record (200 calls each): the fixed cost of a
  batch, which 16 threads' batches of 8 to 16 share out.

The machine may be shared: the CPU figures hold better than wall time, but caches and
context switches still raise them under load, so compare runs made in the same minutes.
Prints Markdown tables, then one JSON object as the last line.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from flow_costs import _children_cpu, _items, warmed  # beside this file
from gateway import PURPOSE
from sovra import gateway as gateway_module
from sovra.classify import pool
from sovra.deployment import Deployment
from sovra.gateway import AccessRequest, Gateway
from sovra.ledger import TransparencyLog
from sovra.model import LogEntry

INGEST_STAGES: list[tuple[object, str, str]] = [
    (pool, "scan_many", "scan, this process's part (the head of the batch)"),
    (Gateway, "_stage", "`_stage`: checks, commitment, rule, decision, header"),
    (gateway_module, "prepare", "minimise: `prepare` (values to protect)"),
    (Gateway, "_protect_all", "custodian `protect_and_wrap_many` (subject keys; tokens; keys)"),
    (gateway_module, "finish", "minimise: `finish` (the text with its tokens)"),
    (gateway_module, "seal", "seal (AES-256-GCM, fresh data key)"),
    (Gateway, "_wrap_all", "data keys wrapped after sealing (records of two homes)"),
    (Gateway, "_ingest_record", "the row and entry objects (blob's SHA-256)"),
    (LogEntry, "to_bytes", "log entries' canonical JSON"),
    ("store", "put_records", "metadata rows, pending (one transaction)"),
    (Gateway, "_put_blobs", "small blobs (one write per region)"),
    (TransparencyLog, "append_each", "log append (entries, tree, checkpoint; SQLite: indices)"),
    ("store", "set_record_log_indices", "metadata rows, log indices (PostgreSQL: own transaction)"),
    (Gateway, "_ingest_batch", "the rest (batch glue, settle, lists)"),
]
ACCESS_STAGES: list[tuple[object, str, str]] = [
    (Gateway, "_check_access", "request checks, selection"),
    (Gateway, "_load_named", "rows read (one query)"),
    (Gateway, "_decision", "policy decision (pack memo, bulk guard)"),
    (Gateway, "_decision_entry", "decision entries"),
    (LogEntry, "to_bytes", "log entries' canonical JSON"),
    (TransparencyLog, "append_each", "log appends (decisions, then releases)"),
    (Gateway, "_unwrap_all", "custodian unwrap (the logged allow checked)"),
    (Gateway, "_release_items", "key-release entries"),
    (Gateway, "_open_all", "blobs read and opened (AES-256-GCM)"),
    (Gateway, "_access_batch", "the rest (batch glue, settle, lists)"),
]
HELPER = "scan, the helper process's part (the tail)"


class StageTimer:
    """Per-stage CPU of the calling thread, each stage without the stages inside it."""

    def __init__(self) -> None:
        self.own: dict[str, float] = {}
        self._stack: list[list[float]] = []  # [start, time of the stages inside]

    def wrap(self, label: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            frame = [time.thread_time(), 0.0]
            self._stack.append(frame)
            try:
                return fn(*args, **kwargs)
            finally:
                spent = time.thread_time() - frame[0]
                self._stack.pop()
                self.own[label] = self.own.get(label, 0.0) + spent - frame[1]
                if self._stack:
                    self._stack[-1][1] += spent

        return timed

    @contextmanager
    def patched(self, stages: Sequence[tuple[object, str, str]], store: object) -> Iterator[None]:
        undo = []
        for owner, name, label in stages:
            target = type(store) if owner == "store" else owner
            original = getattr(target, name)
            undo.append((target, name, original))
            setattr(target, name, self.wrap(label, original))
        try:
            yield
        finally:
            for target, name, original in reversed(undo):
                setattr(target, name, original)


def _measure(
    dep: Deployment,
    stages: Sequence[tuple[object, str, str]],
    run: Callable[[], int],
) -> tuple[dict[str, float], int]:
    timer = StageTimer()
    helper_before = _children_cpu()[0]
    with timer.patched(stages, dep.store):
        records = run()
    helper = _children_cpu()[0] - helper_before
    per_record = {label: timer.own.get(label, 0.0) / records * 1e6 for _, _, label in stages}
    if helper > 0:
        per_record[HELPER] = helper / records * 1e6
    return per_record, records


def _table(title: str, per_record: dict[str, float], unit: str) -> str:
    mine = sum(v for k, v in per_record.items() if k != HELPER)
    total = sum(per_record.values())
    lines = [f"{title}", "", f"| stage | {unit} | share |", "|---|---:|---:|"]
    for label, us in sorted(per_record.items(), key=lambda kv: -kv[1]):
        lines.append(f"| {label} | {us:,.0f} | {us / total:.0%} |")
    both = f"{mine:,.0f} / {total:,.0f}" if HELPER in per_record else f"{mine:,.0f}"
    lines.append(
        f"| **this process{' / with the helper' if HELPER in per_record else ''}** | **{both}** | |"
    )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--batches", type=int, default=None, help="calls of 1,000 each")
    args = parser.parse_args()
    batches = args.batches or (2 if args.quick else 5)
    singles = 100 if args.quick else 200
    figures: dict[str, Any] = {}
    with warmed("sovra-batch-stages-") as (dep, svc, ids):
        gw = dep.gateway
        start = 1000

        def ingest(size: int, calls: int) -> Callable[[], int]:
            def run() -> int:
                nonlocal start
                done = 0
                for _ in range(calls):
                    done += len(gw.ingest_many(svc, _items(start, size)))
                    start += size
                return done

            return run

        def access(size: int, calls: int) -> Callable[[], int]:
            def run() -> int:
                done = 0
                for k in range(calls):
                    requests = [
                        AccessRequest(PURPOSE, record_ids=[ids[(k * size + j) % len(ids)]])
                        for j in range(size)
                    ]
                    done += len(gw.access_many(svc, requests))
                return done

            return run

        runs = [
            ("ingest_many of 1,000", "us a record", INGEST_STAGES, ingest(1000, batches)),
            ("access_many of 1,000", "us a request", ACCESS_STAGES, access(1000, batches)),
            ("ingest_many of one", "us a batch", INGEST_STAGES, ingest(1, singles)),
            ("access_many of one", "us a batch", ACCESS_STAGES, access(1, singles)),
        ]
        load = [round(x, 2) for x in os.getloadavg()]
        for title, unit, stages, run in runs:
            per_record, records = _measure(dep, stages, run)
            print(_table(f"{title} ({records} records)", per_record, unit) + "\n")
            figures[title] = {k: round(v, 1) for k, v in per_record.items()}
        figures["load_average"] = [load, [round(x, 2) for x in os.getloadavg()]]
    json.dump(figures, sys.stdout)
    print()


if __name__ == "__main__":
    main()
