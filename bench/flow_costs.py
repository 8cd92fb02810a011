"""CPU per record of the gateway's in-process flows, batched and group-committed.

    .venv/bin/python bench/flow_costs.py [--quick] [--threads N] [--seconds S]

A deployment made by ``sovra init --custodians in-process`` (as ``bench/gateway.py`` makes
it), the same ~300-byte Polish support note, every record its own subject. Measured, in
this order, as the CPU this process spent (``getrusage``: every thread, user and system)
per record (with its live children: the scan helper of a large batch), and the records
per second beside it:

- ``batch_ingest``: ``Gateway.ingest_many``, 1,000 records a call;
- ``batch_access``: ``Gateway.access_many``, 1,000 requests of one record id each, over
  the first 400 records (under the default pack's 500 subjects an hour);
- ``thread_ingest`` and ``thread_access``: ``--threads`` threads (16) calling
  ``Gateway.ingest`` and ``Gateway.access`` back to back for ``--seconds`` each, which the
  gateway gathers into batches (group commit); ``*_sys_us`` is the system part.

The machine may be shared: CPU per record is the figure to compare (run old and new in
the same minute); the rates are wall clock. ``--quick``: 2,000 batched records and 2 s per
threaded phase. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from gateway import (  # beside this file: the script's folder is on sys.path
    JURISDICTION,
    PRINCIPAL,
    PURPOSE,
    RECORD,
    make_deployment,
)
from sovra.deployment import Deployment
from sovra.errors import SovraError
from sovra.gateway import AccessRequest, IngestItem
from sovra.model import Principal

READ = 400
"""Distinct records read back: under the default pack's 500 subjects an hour."""


def _children_cpu() -> tuple[float, float]:
    """CPU seconds (all, system) of this process's live children: the scan helper."""
    ticks = os.sysconf("SC_CLK_TCK")
    me = str(os.getpid())
    total = system = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if stat[1] == me:
                total += (int(stat[11]) + int(stat[12])) / ticks
                system += int(stat[12]) / ticks
    return total, system


def _cpu() -> tuple[float, float]:
    """CPU seconds (all, system) of this process and its helpers."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    helpers, helpers_sys = _children_cpu()
    return usage.ru_utime + usage.ru_stime + helpers, usage.ru_stime + helpers_sys


def _items(start: int, n: int) -> list[IngestItem]:
    return [
        IngestItem(f"b-{start + i}", JURISDICTION, RECORD.format(i=start + i)) for i in range(n)
    ]


def _measured(run: Callable[[], int]) -> dict[str, float]:
    (cpu, sys_), wall = _cpu(), time.perf_counter()
    done = run()
    (cpu2, sys2), wall2 = _cpu(), time.perf_counter()
    return {
        "us": round((cpu2 - cpu) / done * 1e6, 1),
        "sys_us": round((sys2 - sys_) / done * 1e6, 1),
        "per_s": round(done / (wall2 - wall)),
    }


def _threads(n: int, seconds: float, call: Callable[[int, int], None]) -> int:
    counts = [0] * n
    until = time.monotonic() + seconds

    def drive(t: int) -> None:
        i = 0
        while time.monotonic() < until:
            try:
                call(t, i)
                counts[t] += 1
            except SovraError:
                pass
            i += 1

    threads = [threading.Thread(target=drive, args=(t,)) for t in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return sum(counts)


@contextlib.contextmanager
def warmed(prefix: str) -> Iterator[tuple[Deployment, Principal, list[str]]]:
    """A fresh deployment with in-process custodians, its first batches done (tables,
    caches, the scan helper started): the deployment, the service principal, and the
    ids of the :data:`READ` records it ingested."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        root = Path(tmp) / "dep"
        make_deployment(root, in_process=True)
        dep = Deployment.open(root)
        try:
            gw = dep.gateway
            svc = dep.store.get_principal(PRINCIPAL)
            warm = gw.ingest_many(svc, _items(0, READ))
            ids = [r.record_id for r in warm if not isinstance(r, SovraError)]
            gw.access_many(svc, [AccessRequest(PURPOSE, record_ids=[r]) for r in ids[:50]])
            time.sleep(1.5)  # the scan helper the first batch started: imports, tables
            yield dep, svc, ids
        finally:
            dep.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=None)
    args = parser.parse_args()
    chunks = 2 if args.quick else 10
    seconds = args.seconds or (2.0 if args.quick else 10.0)
    figures: dict[str, Any] = {"threads": args.threads}
    with warmed("sovra-flow-costs-") as (dep, svc, ids):
        gw = dep.gateway

        def batch_ingest() -> int:
            return sum(
                not isinstance(r, SovraError)
                for k in range(chunks)
                for r in gw.ingest_many(svc, _items(1000 * (k + 1), 1000))
            )

        requests = [AccessRequest(PURPOSE, record_ids=[ids[i % len(ids)]]) for i in range(1000)]

        def batch_access() -> int:
            return sum(
                not isinstance(r, SovraError)
                for _ in range(chunks)
                for r in gw.access_many(svc, requests)
            )

        def ingest(t: int, i: int) -> None:
            gw.ingest(svc, subject_id=f"t{t}-{i}", jurisdiction=JURISDICTION, content=RECORD)

        def access(t: int, i: int) -> None:
            rid = ids[(t * 25 + i) % len(ids)]
            gw.access(svc, purpose=PURPOSE, record_ids=[rid])

        phases: dict[str, Callable[[], int]] = {
            "batch_ingest": batch_ingest,
            "batch_access": batch_access,
            "thread_ingest": lambda: _threads(args.threads, seconds, ingest),
            "thread_access": lambda: _threads(args.threads, seconds, access),
        }
        for name, run in phases.items():
            got = _measured(run)
            for key, value in got.items():
                figures[f"{name}_{key}"] = value
            print(
                f"{name}: {got['us']} us CPU per record ({got['sys_us']} system), {got['per_s']}/s",
                file=sys.stderr,
            )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
