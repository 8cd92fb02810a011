"""A capacity model of a sovra deployment, and a simulation checked against real runs.

    .venv/bin/python bench/scale_sim.py [--quick] [--duration S] [--svg PATH] [--no-measure]

Two parts, both driven by the measured cost of each component:

- **The capacity model** (pure functions: :func:`loads`, :func:`limits`,
  :func:`first_limit`, :func:`max_throughput`, :func:`units_needed`, :func:`storage`,
  :func:`proof_bytes`).
  For a workload (ingests and accesses per second, records per ingest request, record
  size, jurisdictions, regions) and a deployment (replicas and their cores, logs, custodian
  replicas, metadata shards, guard journals, whether a batch's small records share one
  object), each component's load is divided by its capacity; the component with the
  highest utilisation is the first limit, and the workload can grow by ``1 / that`` before
  it is reached. The costs are :data:`COSTS`, each with the benchmark command and the
  section of docs/benchmarks.md it comes from; docs/scale.md shows the same table and
  what it says up to 100 jurisdictions, 10^10 records and 10^5 requests/s.
- **The simulation** (:func:`simulate`): a discrete-event model of this machine running
  ``sovra serve --workers W`` under N closed-loop HTTP clients: C cores shared between
  sessions as Linux's autogroups share them (the server, the load generator and the
  other work found on the machine, :func:`probe_others`), one interpreter lock per
  process (each worker, each client process), each
  worker's group commit (up to two ingest and four access batches at once, each batch a
  fixed cost plus a cost per item), and one write lock across workers for the log's
  appends (SQLite admits one writer). Its costs are calibrated at the start of the run
  on this machine (:func:`calibrate`: single requests in-process and over HTTP, batches
  of 64, lone log appends), then it predicts requests/s and latency at 1 and 2 workers,
  and the real gateway is run at 1 and 2 workers (``bench/gateway.py``'s load generator,
  in-process custodians, SQLite and the blob folder) for the measured figures; the ratio
  measured / predicted is printed for each.

``--store OUT...`` fits the replicas model (:class:`SplitModel`: batch size and CPU per
ingest against the clients per worker process) to the one-replica setups of bench/store.py
runs and prints its predictions for their two-replica setups, measured beside predicted.

``--svg PATH`` also writes the plot of docs/scale.md (the limit of each component against
the number of replicas). The last line printed is one JSON object: the calibration, the
predictions, the measurements and their ratios, the capacity model's figures at scale.
``--quick`` runs in under a minute.
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import os
import random
import statistics
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

# -- measured costs ----------------------------------------------------------------------


@dataclass(frozen=True)
class Cost:
    """One measured figure and where it comes from."""

    value: float
    unit: str
    source: str


COSTS: dict[str, Cost] = {
    # replicas: the gateway's CPU per request, its workers only (the custodians' apart)
    "replica_cpu_per_ingest_s": Cost(
        3.45e-3, "s CPU", "bench/gateway.py full run, section Gateway (3.45 of 4.39 ms)"
    ),
    "replica_cpu_per_access_s": Cost(
        5.57e-3, "s CPU", "bench/gateway.py full run, section Gateway (5.57 of 6.69 ms)"
    ),
    "replica_cpu_per_batched_record_s": Cost(
        0.517e-3, "s CPU", "bench/batch.py --quick, summary table (517 ms per 1,000 records)"
    ),
    "client_cpu_per_request_s": Cost(
        1.16e-3, "s CPU", "bench/gateway.py full run, section Gateway (1.16 / 1.62 ms)"
    ),
    # the scanner (part of a replica's CPU; shown on its own)
    "scan_call_s": Cost(7.4e-6, "s CPU", "bench/scan_calls.py, section Scanner: one call"),
    "scan_mb_per_s": Cost(
        22.4, "MB/s/core", "bench/scan_eval.py --quick, section Numbering plans (10% PII)"
    ),
    "scan_record_s": Cost(
        82.6e-6, "s CPU", "bench/scan_calls.py, section Scanner: one call (243-byte record)"
    ),
    # the policy decision
    "decisions_per_s": Cost(30_106, "/s/core", "bench/policy.py --quick, summary table"),
    "read_decision_in_flow_s": Cost(
        257.8e-6, "s CPU", "bench/request_costs.py --quick, access table (policy decision)"
    ),
    # the sequencer: a log batch costs a fixed part and a part per entry
    "log_batch_fixed_s": Cost(
        536e-6,
        "s",
        "bench/request_costs.py --quick: lone append 566 us less 30 us per entry in a batch",
    ),
    "log_entries_per_s_at_1000": Cost(
        67_482, "/s", "bench/ledger.py --quick, summary table (batches of 1,000)"
    ),
    "log_signatures_per_s": Cost(27_912, "/s", "bench/ledger.py --quick: Ed25519 floor"),
    "log_audit_s_per_million": Cost(3.00, "s", "bench/ledger.py --quick: audit of 1,000,000"),
    # the metadata store (SQLite; PostgreSQL: bench/store.py)
    "metadata_row_in_batch_s": Cost(
        38e-6, "s", "bench/gateway.py, section Group commit: rows 19 to 38 ms per 1,000"
    ),
    "metadata_write_txn_s": Cost(
        402.3e-6, "s", "bench/request_costs.py --quick, ingest table (metadata insert)"
    ),
    "guard_session_s": Cost(
        303e-6, "s", "section Workers and the HTTP edge: a guard decision with its journal"
    ),
    # the object store
    "object_puts_per_s": Cost(
        355, "/s", "issue 15: SeaweedFS, sequential boto3 puts (bench/store.py to measure)"
    ),
    "folder_small_blobs_per_s": Cost(118_356, "/s", "bench/blobs.py --quick, put_many"),
    # custodians, as services (one HTTP call per 1,000 keys)
    "custodian_wraps_per_s": Cost(
        11_099, "/s", "bench/keys.py --quick 2026-12-07: wrap_many new subjects, service"
    ),
    "custodian_unwraps_per_s": Cost(
        3_755, "/s", "bench/keys.py --quick 2026-12-07: unwrap_batches, service"
    ),
    "custodian_cpu_per_ingest_s": Cost(
        0.94e-3, "s CPU", "bench/gateway.py full run, section Gateway (custodians' share)"
    ),
    "custodian_cpu_per_access_s": Cost(
        1.12e-3, "s CPU", "bench/gateway.py full run, section Gateway (custodians' share)"
    ),
}
"""The figures the capacity model uses; docs/scale.md shows them with the same sources."""


def cost(name: str, costs: dict[str, Cost] | None = None) -> float:
    return (costs or COSTS)[name].value


# -- the capacity model ------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    """What the deployment is asked to do, per second."""

    ingest_per_s: float = 0.0
    """Records ingested per second."""
    access_per_s: float = 0.0
    """Access requests per second, one record each."""
    records_per_ingest: int = 1
    """Records per ingest request: 1 for ``POST /v1/records``, up to 1,000 for a batch."""
    group: int = 8
    """Requests a replica's group commit gathers into one batch (8 on average at 16
    clients: bench/gateway.py, section Group commit)."""
    record_bytes: int = 300
    jurisdictions: int = 1
    largest_share: float = 1.0
    """Share of the load in the busiest jurisdiction."""
    regions: int = 1


@dataclass(frozen=True)
class Layout:
    """How the deployment is laid out."""

    replicas: int = 1
    cores: int = 2
    """Cores per replica."""
    per_jurisdiction_logs: bool = False
    """One log per jurisdiction instead of one per deployment."""
    log_batch: int = 1000
    """Most entries a sequencer integrates in one batch."""
    custodian_replicas: int = 1
    """Replicas of each jurisdiction's custodian service."""
    metadata_shards: int = 1
    """Metadata databases, partitioned by jurisdiction (1: one for all)."""
    guard_journals: int = 1
    """Bulk-guard journals, partitioned by requester's jurisdiction."""
    object_streams: int = 1
    """Concurrent put streams per region's bucket."""
    segments: bool = True
    """A batch's small records in one object per region (False: an object per record)."""


def zipf_shares(n: int, s: float = 1.0) -> list[float]:
    """Shares of *n* jurisdictions whose loads follow Zipf's law, busiest first."""
    total = sum(1.0 / k**s for k in range(1, n + 1))
    return [1.0 / k**s / total for k in range(1, n + 1)]


def zipf_share(n: int, s: float = 1.0) -> float:
    """Share of the busiest of *n* jurisdictions whose loads follow Zipf's law (an
    assumption of the model, not a measurement)."""
    if n < 1:
        raise ValueError("at least one jurisdiction")
    return 1.0 / sum(1.0 / k**s for k in range(1, n + 1))


def _share(parts: int, w: Workload) -> float:
    """Share of the load on the busiest of *parts* partitions: by jurisdiction first (the
    busiest jurisdiction alone in one), then each jurisdiction's part split evenly (by
    subject or requester)."""
    if parts <= 1:
        return 1.0
    if parts < w.jurisdictions:
        return max(w.largest_share, 1.0 / parts)
    return w.largest_share / (parts // w.jurisdictions)


def log_entries_per_s(layout: Layout, c: dict[str, Cost] | None = None) -> float:
    """Entries per second one sequencer integrates at its largest batch: B / (F + B e)."""
    fixed = cost("log_batch_fixed_s", c)
    per_entry = max(0.0, 1.0 / cost("log_entries_per_s_at_1000", c) - fixed / 1000)
    b = layout.log_batch
    return b / (fixed + b * per_entry)


def loads(w: Workload, c: dict[str, Cost] | None = None) -> dict[str, float]:
    """What each component must do per second under *w*, before any partitioning, in
    busy seconds per second of one unit (a core of a replica, a sequencer, a serial
    metadata writer, a put stream, a custodian process, a guard journal).

    - replicas: ``ingests x c_ingest + accesses x c_access`` (c per batched record when
      ingests come in batches);
    - sequencer: ``(ingests + 2 x accesses) / E(B)``, E(B) = B / (F + B e) entries/s;
    - metadata: ``(requests + batches) x t_txn + ingests x t_row`` (a write transaction
      per request for its token's nonce, and per batch);
    - objects: ``batches / P`` with segments, ``ingests / P`` without;
    - custodians: ``ingests x c_wrap + accesses x c_unwrap``;
    - guard journal: ``access batches x t_session``.
    """
    ingest_requests = w.ingest_per_s / w.records_per_ingest
    batched = w.records_per_ingest > 1
    requests = ingest_requests + w.access_per_s
    # Batches a replica forms: a batch request is its own (in chunks of 500), single
    # requests are gathered by group commit.
    ingest_batches = (
        ingest_requests * math.ceil(w.records_per_ingest / 500)
        if batched
        else w.ingest_per_s / w.group
    )
    access_batches = w.access_per_s / w.group
    if batched:
        replica = w.ingest_per_s * cost("replica_cpu_per_batched_record_s", c)
        custodian = w.ingest_per_s / cost("custodian_wraps_per_s", c)
    else:
        replica = w.ingest_per_s * cost("replica_cpu_per_ingest_s", c)
        custodian = w.ingest_per_s * cost("custodian_cpu_per_ingest_s", c)
    replica += w.access_per_s * cost("replica_cpu_per_access_s", c)
    custodian += w.access_per_s * cost("custodian_cpu_per_access_s", c)
    return {
        "replicas (CPU)": replica,
        "sequencer": (w.ingest_per_s + 2 * w.access_per_s) / log_entries_per_s(Layout(), c),
        "metadata store": (requests + ingest_batches) * cost("metadata_write_txn_s", c)
        + w.ingest_per_s * cost("metadata_row_in_batch_s", c),
        "object store": ingest_batches / cost("object_puts_per_s", c),
        "object store, an object per record": w.ingest_per_s / cost("object_puts_per_s", c),
        "custodians": custodian,
        "guard journal": access_batches * cost("guard_session_s", c),
    }


def limits(w: Workload, layout: Layout, c: dict[str, Cost] | None = None) -> dict[str, float]:
    """Utilisation of each component (load / capacity) under workload *w*: the load of
    :func:`loads` on the busiest unit of *layout*. A utilisation of 1 is the
    component's limit; the workload can grow by ``1 / max``."""
    load = loads(w, c)
    log_share = _share(w.jurisdictions if layout.per_jurisdiction_logs else 1, w)
    # the busiest region takes the busiest jurisdiction's share
    region_share = max(w.largest_share, 1.0 / w.regions)
    objects = "object store" if layout.segments else "object store, an object per record"
    return {
        "replicas (CPU)": load["replicas (CPU)"] / (layout.replicas * layout.cores),
        "sequencer": load["sequencer"]
        * log_share
        * log_entries_per_s(Layout(), c)
        / log_entries_per_s(layout, c),
        "metadata store": load["metadata store"] * _share(layout.metadata_shards, w),
        "object store": load[objects] * region_share / layout.object_streams,
        "custodians": load["custodians"] * w.largest_share / layout.custodian_replicas,
        "guard journal": load["guard journal"] * _share(layout.guard_journals, w),
    }


def units_needed(
    w: Workload, c: dict[str, Cost] | None = None, headroom: float = 0.7, cores: int = 2
) -> dict[str, int]:
    """Units of each role to serve *w* with every unit at most *headroom* busy, the
    partitioned roles split by jurisdiction first (Zipf shares) and then evenly within
    one: replicas of *cores* cores, logs, serial metadata writers, put streams,
    custodian processes, guard journals."""
    load = loads(w, c)
    shares = zipf_shares(w.jurisdictions) if w.jurisdictions > 1 else [1.0]

    def split(total: float) -> int:
        return sum(max(1, math.ceil(total * s / headroom)) for s in shares)

    return {
        "replicas": math.ceil(load["replicas (CPU)"] / (cores * headroom)),
        "logs": split(load["sequencer"]),
        "metadata writers": split(load["metadata store"]),
        "object put streams": max(1, math.ceil(load["object store"] / headroom)),
        "custodian processes": split(load["custodians"]),
        "guard journals": split(load["guard journal"]),
    }


def first_limit(w: Workload, layout: Layout, c: dict[str, Cost] | None = None) -> str:
    """The component that reaches its limit first as the workload grows."""
    used = limits(w, layout, c)
    return max(used, key=lambda k: used[k])


def max_throughput(w: Workload, layout: Layout, c: dict[str, Cost] | None = None) -> float:
    """Requests per second (ingest requests + accesses) at the first limit, for *w*'s mix."""
    used = max(limits(w, layout, c).values())
    requests = w.ingest_per_s / w.records_per_ingest + w.access_per_s
    return requests / used if used > 0 else math.inf


def component_limits(
    w: Workload, layout: Layout, c: dict[str, Cost] | None = None
) -> dict[str, float]:
    """Requests per second at which each component alone would reach its limit."""
    requests = w.ingest_per_s / w.records_per_ingest + w.access_per_s
    return {k: (requests / u if u > 0 else math.inf) for k, u in limits(w, layout, c).items()}


HASH = 32


def proof_bytes(size: int) -> dict[str, int]:
    """Bytes of an inclusion proof and of a consistency proof (at most, from a tree of
    half the size) in an RFC 9162 log of *size* entries, and of its tiles."""
    if size < 2:
        raise ValueError("a proof needs at least two entries")
    depth = math.ceil(math.log2(size))
    tiles = 0
    level = size
    while level > 1:  # every level's hashes, 256 to a tile
        tiles += level * HASH
        level = math.ceil(level / 256)
    return {
        "inclusion_hashes": depth,
        "inclusion_bytes": depth * HASH,
        "consistency_bytes_at_most": 2 * depth * HASH,
        "tile_bytes": tiles,
    }


def storage(records: float, per_record: dict[str, float]) -> dict[str, float]:
    """Bytes held for *records* records, by part, from the bytes one record adds."""
    out = {k: records * v for k, v in per_record.items()}
    out["total"] = sum(out.values())
    return out


# -- the simulation ----------------------------------------------------------------------


class _Sim:
    """Events in time order: callbacks at a time."""

    def __init__(self) -> None:
        self.now = 0.0
        self._queue: list[tuple[float, int, Callable[[], None]]] = []
        self._n = 0

    def after(self, delay: float, call: Callable[[], None]) -> None:
        self._n += 1
        heapq.heappush(self._queue, (self.now + delay, self._n, call))

    def run(self, until: float) -> None:
        while self._queue and self._queue[0][0] <= until:
            self.now, _, call = heapq.heappop(self._queue)
            call()


class _Pool:
    """*k* identical servers taken first come, first served."""

    def __init__(self, k: int) -> None:
        self.free = k
        self.waiting: deque[Callable[[], None]] = deque()

    def take(self, then: Callable[[], None]) -> None:
        if self.free:
            self.free -= 1
            then()
        else:
            self.waiting.append(then)

    def give(self) -> None:
        if self.waiting:
            self.waiting.popleft()()
        else:
            self.free += 1


class _Cores:
    """The machine's cores, shared as Linux shares them with autogroups: the cores are
    split evenly between the sessions that have runnable threads (a session wanting less
    than its part gives the rest to the others), then evenly between a session's threads,
    at most one core each (processor sharing). *others* is the number of other sessions
    that keep the cores busy; the server and the load generator are a session each."""

    def __init__(self, sim: _Sim, cores: int, others: float) -> None:
        self.sim, self.cores, self.others = sim, cores, others
        self.jobs: dict[int, list[Any]] = {}  # id -> [work left, session, then]
        self._last = 0.0
        self._ids = 0
        self._version = 0

    def rates(self) -> dict[str, float]:
        """Each session's rate per running burst, by water-filling."""
        counts: dict[str, int] = {}
        for job in self.jobs.values():
            counts[job[1]] = counts.get(job[1], 0) + 1
        left, groups, out = float(self.cores), len(counts) + self.others, {}
        for name, n in sorted(counts.items(), key=lambda kv: kv[1]):
            share = left / groups
            got = min(float(n), share)
            out[name] = got / n
            left -= got
            groups -= 1
        return out

    def _advance(self) -> None:
        rates = self.rates()
        spent = self.sim.now - self._last
        for job in self.jobs.values():
            job[0] -= spent * rates[job[1]]
        self._last = self.sim.now

    def _schedule(self) -> None:
        self._version += 1
        if not self.jobs:
            return
        version = self._version
        rates = self.rates()
        left = min(job[0] / rates[job[1]] for job in self.jobs.values())
        self.sim.after(max(0.0, left), lambda: self._finish(version))

    def _finish(self, version: int) -> None:
        if version != self._version:
            return
        self._advance()
        finished = [k for k, job in self.jobs.items() if job[0] <= 1e-12]
        thens = [self.jobs.pop(k)[2] for k in finished]
        self._schedule()
        for then in thens:
            then()

    def run(self, work: float, session: str, then: Callable[[], None]) -> None:
        self._advance()
        self._ids += 1
        self.jobs[self._ids] = [work, session, then]
        self._schedule()


@dataclass(frozen=True)
class Flow:
    """What one request of a kind costs, in seconds. CPU runs on the shared cores and
    holds its process's interpreter lock; waits hold neither."""

    client_cpu: float
    edge_cpu: float
    """The server's CPU outside the flow (HTTP, token, body, answer)."""
    batch_cpu: float
    """A batch's fixed CPU besides its log appends."""
    item_cpu: float
    """Each item's CPU besides its log entries."""
    batch_wait: float
    """A batch's waits (fsyncs) besides its log appends."""
    appends: int
    """Log appends per batch (ingest 1, access 2: the decisions, then the releases)."""
    slots: int
    """Batches of this kind a worker runs at once."""


@dataclass(frozen=True)
class LogCost:
    batch_cpu: float
    entry_cpu: float
    wait: float


@dataclass(frozen=True)
class Machine:
    """This machine as the simulation sees it."""

    cores: int
    workers: int
    clients: int
    client_processes: int
    log: LogCost
    max_batch: int = 500
    others: float = 0.0
    """Other sessions keeping the cores busy (0 on a quiet machine: :func:`probe_others`)."""


@dataclass
class SimResult:
    per_s: float
    p50_ms: float
    p99_ms: float
    mean_batch: float
    latencies: list[float] = field(default_factory=list, repr=False)


def simulate(
    flow: Flow, machine: Machine, seconds: float = 20.0, warmup: float = 2.0, seed: int = 1
) -> SimResult:
    """Closed-loop clients against ``sovra serve --workers W`` on this machine."""
    sim = _Sim()
    rng = random.Random(seed)
    cores = _Cores(sim, machine.cores, machine.others)
    sequencer = _Pool(1)  # the database's write lock, across workers
    gils = [_Pool(1) for _ in range(machine.workers)]
    client_gils = [_Pool(1) for _ in range(machine.client_processes)]
    queues: list[deque[Callable[[], None]]] = [deque() for _ in range(machine.workers)]
    running = [0] * machine.workers
    latencies: list[float] = []
    batches: list[int] = []
    log = machine.log

    def cpu(
        seconds: float, locks: list[_Pool], then: Callable[[], None], session: str = "server"
    ) -> None:
        held: list[_Pool] = []

        def step() -> None:
            if len(held) < len(locks):
                lock = locks[len(held)]
                held.append(lock)
                lock.take(step)
                return
            cores.run(seconds, session, done)

        def done() -> None:
            for lock in reversed(held):
                lock.give()
            then()

        step()

    def wait(seconds: float, then: Callable[[], None]) -> None:
        # fsync latency varies far more than CPU: exponential with the measured mean
        sim.after(rng.expovariate(1.0 / seconds) if seconds > 0 else 0.0, then)

    def start_batches(w: int) -> None:
        while running[w] < flow.slots and queues[w]:
            take = min(len(queues[w]), machine.max_batch)
            members = [queues[w].popleft() for _ in range(take)]
            running[w] += 1
            run_batch(w, members)

    def run_batch(w: int, members: list[Callable[[], None]]) -> None:
        b = len(members)
        if sim.now > warmup:
            batches.append(b)
        locks = [gils[w]]

        def appends(left: int) -> None:
            if left == 0:
                finish()
                return
            sequencer.take(
                lambda: cpu(
                    log.batch_cpu + b * log.entry_cpu,
                    locks,
                    lambda: wait(log.wait, lambda: (sequencer.give(), appends(left - 1))),
                )
            )

        def finish() -> None:
            running[w] -= 1
            start_batches(w)
            for m in members:
                m()

        cpu(
            flow.batch_cpu + b * flow.item_cpu,
            locks,
            lambda: wait(flow.batch_wait, lambda: appends(flow.appends)),
        )

    def request(client: int) -> None:
        began = sim.now
        w = rng.randrange(machine.workers)
        mine = [client_gils[client % machine.client_processes]]

        def answered() -> None:
            cpu(flow.client_cpu / 2, mine, done, "clients")

        def done() -> None:
            if began > warmup:
                latencies.append(sim.now - began)
            request(client)

        def at_worker() -> None:
            cpu(
                flow.edge_cpu,
                [gils[w]],
                lambda: (queues[w].append(answered), start_batches(w)),
            )

        cpu(flow.client_cpu / 2, mine, at_worker, "clients")

    for client in range(machine.clients):
        sim.after(rng.random() * 1e-3, lambda c=client: request(c))
    sim.run(warmup + seconds)
    latencies.sort()
    if not latencies:
        return SimResult(0.0, math.inf, math.inf, 0.0)
    return SimResult(
        per_s=len(latencies) / seconds,
        p50_ms=1000 * latencies[len(latencies) // 2],
        p99_ms=1000 * latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))],
        mean_batch=statistics.fmean(batches) if batches else 0.0,
        latencies=latencies,
    )


def cpu_bound(flow: Flow, machine: Machine, batch: float) -> float:
    """Requests/s at which the cores are busy all the time, at a given batch size: the
    ceiling any simulated or measured rate must stay under."""
    return machine.cores / (flow.client_cpu + server_cpu(flow, machine, batch))


def server_cpu(flow: Flow, machine: Machine, batch: float) -> float:
    """The server's CPU per request at a given batch size (what the measured runs report
    from /proc, to compare)."""
    batch = max(batch, 1.0)
    return (
        flow.edge_cpu
        + flow.item_cpu
        + flow.appends * machine.log.entry_cpu
        + (flow.batch_cpu + flow.appends * machine.log.batch_cpu) / batch
    )


# -- calibration on this machine ---------------------------------------------------------

BENCH = Path(__file__).resolve().parent


def _bench_path() -> None:
    """request_costs and gateway, this folder's benchmarks, are imported as modules."""
    if str(BENCH) not in sys.path:
        sys.path.insert(0, str(BENCH))


def _spin(seconds: float, out: Any) -> None:
    wall, cpu = time.perf_counter(), time.thread_time()
    while time.perf_counter() - wall < seconds:
        pass
    out.put((time.thread_time() - cpu) / (time.perf_counter() - wall))


def probe_others(cores: int, seconds: float = 0.3) -> float:
    """Other sessions keeping the cores busy now, from the cores that *cores* busy
    processes of this session get together (``got = cores / (1 + others)``); 0 on a quiet
    machine. Taken in the same minute as the run it is used for."""
    import multiprocessing as mp

    ctx = mp.get_context("fork")
    out = ctx.Queue()
    procs = [ctx.Process(target=_spin, args=(seconds, out)) for _ in range(cores)]
    for p in procs:
        p.start()
    shares = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join()
    got = min(float(cores), sum(shares))
    return max(0.0, cores / got - 1) if got < 0.98 * cores else 0.0


def _timed(call: Callable[[], Any]) -> tuple[float, float, float]:
    """Wall, this thread's CPU and the process's CPU of one call, in seconds."""
    w, t, p = time.perf_counter(), time.thread_time(), time.process_time()
    call()
    return time.perf_counter() - w, time.thread_time() - t, time.process_time() - p


def _median(rows: list[tuple[float, ...]], i: int) -> float:
    return statistics.median(r[i] for r in rows)


def calibrate(rounds: int, batch: int = 64) -> dict[str, Any]:
    """Each component's cost on this machine: requests one at a time in-process and over
    HTTP (the client's CPU apart from the server's), batches of *batch* in-process, lone
    log appends, and the bytes one record adds to each store."""
    import uuid

    _bench_path()
    import request_costs as rc
    from sovra.client import Client
    from sovra.gateway import AccessRequest, IngestItem
    from sovra.model import LogEntry
    from sovra.server import create_app
    from sovra.server.background import running

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="sovra-scale-") as tmp:
        root = Path(tmp) / "deployment"
        dep = rc._open(root)
        try:
            rc._lift_bulk_limits(dep)
            gw, svc = dep.gateway, dep.store.get_principal("svc-pl")

            def ingest(tag: str) -> str:
                return gw.ingest(
                    svc, subject_id=tag, jurisdiction="PL", content=rc.RECORD.format(i=tag)
                ).record_id

            ids = [ingest(f"warm-{i}") for i in range(10)]
            for rid in ids:
                gw.access(svc, purpose=rc.PURPOSE, record_ids=[rid])
            one_i = [_timed(lambda i=i: ids.append(ingest(f"one-{i}"))) for i in range(rounds)]
            one_a = [
                _timed(lambda r=r: gw.access(svc, purpose=rc.PURPOSE, record_ids=[r]))
                for r in ids[-rounds:]
            ]
            many_i, many_a = [], []
            for r in range(3):
                items = [IngestItem(f"b{r}-{k}", "PL", rc.RECORD.format(i=k)) for k in range(batch)]
                many_i.append(_timed(lambda items=items: gw.ingest_many(svc, items)))
                reqs = [AccessRequest(rc.PURPOSE, record_ids=[x]) for x in ids[:batch]]
                many_a.append(_timed(lambda reqs=reqs: gw.access_many(svc, reqs)))
            lone = []
            for r in range(rounds):
                entry = LogEntry(
                    kind="ingest",
                    time_ms=int(time.time() * 1000),
                    principal="svc-pl",
                    fields={"record": f"lone-{r}", "n": uuid.uuid4().hex},
                ).to_bytes()
                lone.append(_timed(lambda e=entry: gw.log.append(e, [uuid.uuid4().hex])))
            many_log = []
            for r in range(4):
                items = [
                    (
                        LogEntry(
                            kind="ingest",
                            time_ms=int(time.time() * 1000),
                            principal="svc-pl",
                            fields={"record": f"many-{r}-{k}", "n": uuid.uuid4().hex},
                        ).to_bytes(),
                        [uuid.uuid4().hex],
                    )
                    for k in range(batch)
                ]
                many_log.append(_timed(lambda items=items: gw.log.append_many(items)))
            http_i, http_a = [], []
            with (
                running(create_app(dep)) as url,
                Client(url, "svc-pl", dep.principal_key("svc-pl")) as client,
            ):
                for i in range(5):
                    client.ingest(f"hw-{i}", "PL", rc.RECORD)
                for i in range(rounds):
                    http_i.append(_timed(lambda i=i: client.ingest(f"h-{i}", "PL", rc.RECORD)))
                for r in ids[-rounds:]:
                    http_a.append(_timed(lambda r=r: client.access(rc.PURPOSE, record_ids=[r])))
            out["bytes_per_record"] = _bytes_per_record(dep, root, svc)
        finally:
            dep.close()
    for name, one, many, http in (
        ("ingest", one_i, many_i, http_i),
        ("access", one_a, many_a, http_a),
    ):
        out[name] = {
            "one_wall_s": _median(one, 0),
            "one_cpu_s": _median(one, 2),
            "item_cpu_s": _median(many, 2) / batch,
            "http_wall_s": _median(http, 0),
            "http_client_cpu_s": _median(http, 1),
            "http_server_cpu_s": _median(http, 2) - _median(http, 1),
        }
    out["log"] = {
        "lone_wall_s": _median(lone, 0),
        "lone_cpu_s": _median(lone, 1),
        "entry_cpu_s": _median(many_log, 1) / batch,
        "entry_wall_s": _median(many_log, 0) / batch,
    }
    out["batch"] = batch
    out["rounds"] = rounds
    return out


def _bytes_per_record(dep: Any, root: Path, svc: Any) -> dict[str, float]:
    """Bytes 500 ingested records (a batch API's chunk) add to each store, per record."""
    import sqlite3

    import request_costs as rc
    from sovra.gateway import IngestItem

    def sizes() -> dict[str, int]:
        parts = {"metadata": 0, "log": 0, "blobs": 0, "subject_keys": 0}
        for db in root.rglob("*"):
            if db.suffix not in {".db", ".sqlite"} or db.name == "guard.db":
                continue
            with sqlite3.connect(db) as conn:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                tables = dict(conn.execute("SELECT name, tbl_name FROM sqlite_master"))
                for name, used in conn.execute(
                    "SELECT name, sum(pgsize - unused) FROM dbstat GROUP BY name"
                ):
                    table = tables.get(name, name)
                    if "blob" in db.name:
                        part = "blobs"
                    elif "subjects" in db.name:
                        part = "subject_keys"
                    elif table.startswith("log_"):
                        part = "log"
                    elif table in {"records", "record_findings"} or table.startswith("record"):
                        part = "metadata"
                    else:
                        continue
                    parts[part] += int(used)
            conn.close()
        return parts

    n = 500
    before = sizes()
    items = [IngestItem(f"size-{k}", "PL", rc.RECORD.format(i=k)) for k in range(n)]
    dep.gateway.ingest_many(svc, items)
    after = sizes()
    return {k: (after[k] - before[k]) / n for k in after}


def flows_from(cal: dict[str, Any]) -> tuple[dict[str, Flow], LogCost]:
    """The simulation's costs from a calibration: a request one at a time is the fixed
    part of its batch plus one item; the item's part is what a batch of 64 costs each."""
    lg = cal["log"]
    entry = lg["entry_cpu_s"]
    log = LogCost(
        batch_cpu=max(0.0, lg["lone_cpu_s"] - entry),
        entry_cpu=entry,
        wait=max(0.0, lg["lone_wall_s"] - lg["lone_cpu_s"]),
    )
    flows = {}
    for name, appends, slots in (("ingest", 1, 2), ("access", 2, 4)):
        k = cal[name]
        item = max(0.0, k["item_cpu_s"] - appends * entry)
        fixed = max(0.0, k["one_cpu_s"] - k["item_cpu_s"] - appends * log.batch_cpu)
        flows[name] = Flow(
            client_cpu=k["http_client_cpu_s"],
            edge_cpu=max(0.0, k["http_server_cpu_s"] - k["one_cpu_s"]),
            batch_cpu=fixed,
            item_cpu=item,
            batch_wait=max(0.0, k["one_wall_s"] - k["one_cpu_s"] - appends * log.wait),
            appends=appends,
            slots=slots,
        )
    return flows, log


# -- measured runs of the real gateway ---------------------------------------------------


def measure(
    workers: int, clients: int, processes: int, duration: float, warmup: float = 1.0
) -> dict[str, Any]:
    """``sovra serve --workers`` on a fresh deployment (SQLite, blob folder, in-process
    custodians) under bench/gateway.py's load generator: both phases' figures."""
    _bench_path()
    import gateway as gb

    with tempfile.TemporaryDirectory(prefix="sovra-scale-run-") as tmp:
        work = Path(tmp)
        root = work / "deployment"
        gb.make_deployment(root, in_process=True)
        key = root / "principals" / f"{gb.PRINCIPAL}.key"
        server = gb.Server(
            f"sovra-{workers}",
            [str(gb.SOVRA), "serve", str(root), "--workers", str(workers)],
            work,
            dict(os.environ),
        )
        try:
            figures = gb.drive(server, key, processes, clients // processes, warmup, duration)
        finally:
            server.stop()
    return {
        phase: {
            "per_s": figures[phase]["per_s"],
            "p50_ms": figures[phase]["p50_ms"],
            "p99_ms": figures[phase]["p99_ms"],
            "errors": figures[phase]["errors"],
            "server_cpu_ms": sum(figures[phase]["server_cpu_ms_per_request"].values()),
            "client_cpu_ms": figures[phase]["client_cpu_ms_per_request"],
        }
        for phase in ("ingest", "access")
    }


# -- replicas on one machine: batches and CPU per ingest (bench/store.py) -----------------


@dataclass(frozen=True)
class StoreRun:
    """One setup of a bench/store.py run on PostgreSQL + S3: how many ``sovra serve``
    processes served how many clients, and what it measured."""

    replicas: int
    workers: int
    """Worker processes per replica."""
    clients: int
    records_per_batch: float
    """Records per segment object: one per ingest batch of a worker."""
    cpu_ms_per_ingest: float
    """CPU per ingest of every process on its path (gateway, custodians, PostgreSQL,
    SeaweedFS, client)."""

    @property
    def processes(self) -> int:
        """Worker processes in all: each runs a group commit of its own."""
        return self.replicas * self.workers


def store_runs(figures: dict[str, Any]) -> list[StoreRun]:
    """The one- and two-replica setups of bench/store.py's JSON line *figures*."""
    per_replica = figures["workers_per_replica"]
    runs = []
    for setup, replicas in (("pg_s3", 1), ("two_replicas", 2)):
        workers = per_replica[setup] if isinstance(per_replica, dict) else per_replica
        runs.append(
            StoreRun(
                replicas,
                int(workers),
                int(figures["clients"]),
                float(figures["setups"][setup]["batching"]["records_per_segment"]),
                float(figures["cpu_ms_per_request"][setup]["ingest"]),
            )
        )
    return runs


@dataclass(frozen=True)
class SplitModel:
    """Ingest batches and their CPU when clients are split over worker processes.

    Each worker process batches only what reaches it (its group commit), so a batch holds
    ``k x (clients / processes) ** alpha`` records, whichever replicas the processes
    belong to; an ingest costs ``per_record_ms`` plus its share of a batch's fixed
    ``per_batch_ms`` (the custodian call, the log's and the metadata's transactions, the
    segment object, the checkpoint when one is published per batch). A replica adds
    nothing per request beyond its workers: the catching up on other writers' entries is
    there as soon as there are two workers, in one replica or two.
    """

    k: float
    alpha: float
    per_record_ms: float
    per_batch_ms: float

    def batch(self, clients: int, processes: int) -> float:
        """Records per batch of *clients* over *processes* worker processes (at least 1)."""
        return max(1.0, self.k * (clients / processes) ** self.alpha)

    def cpu_ms(self, clients: int, processes: int) -> float:
        """CPU per ingest of *clients* over *processes* worker processes."""
        return self.per_record_ms + self.per_batch_ms / self.batch(clients, processes)


def fit_split(runs: list[StoreRun]) -> SplitModel:
    """The :class:`SplitModel` fitted (least squares) to *runs*, which MUST span at least
    two numbers of clients per process.

    Raises:
        ValueError: the runs give one number of clients per process only.
    """
    xs = [math.log(r.clients / r.processes) for r in runs]
    if max(xs) - min(xs) < 1e-9:
        raise ValueError("fitting needs runs at two or more numbers of clients per process")
    alpha, log_k = _line(
        [(x, math.log(r.records_per_batch)) for x, r in zip(xs, runs, strict=True)]
    )
    per_batch, per_record = _line([(1 / r.records_per_batch, r.cpu_ms_per_ingest) for r in runs])
    return SplitModel(math.exp(log_k), alpha, per_record, per_batch)


def _line(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Slope and intercept of the least-squares line through *points*."""
    mx = statistics.fmean(x for x, _ in points)
    my = statistics.fmean(y for _, y in points)
    sxx = sum((x - mx) ** 2 for x, _ in points)
    slope = sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else 0.0
    return slope, my - slope * mx


def replicas_check(figures: list[dict[str, Any]]) -> dict[str, Any]:
    """Fit :class:`SplitModel` to the ONE-replica setups of bench/store.py runs and
    predict their TWO-replica setups: batch size and CPU per ingest, with the ratio
    measured / predicted of each (setups named replicas x workers per replica)."""
    runs = [r for f in figures for r in store_runs(f)]
    model = fit_split([r for r in runs if r.replicas == 1])
    rows = []
    for r in runs:
        batch, cpu = model.batch(r.clients, r.processes), model.cpu_ms(r.clients, r.processes)
        rows.append(
            {
                "setup": f"{r.replicas} x {r.workers}",
                "fitted_on": r.replicas == 1,
                "records_per_batch": {
                    "predicted": round(batch, 2),
                    "measured": r.records_per_batch,
                },
                "cpu_ms_per_ingest": {
                    "predicted": round(cpu, 2),
                    "measured": r.cpu_ms_per_ingest,
                    "measured_over_predicted": round(r.cpu_ms_per_ingest / cpu, 3),
                },
            }
        )
    return {
        "model": {
            "k": round(model.k, 3),
            "alpha": round(model.alpha, 3),
            "per_record_ms": round(model.per_record_ms, 3),
            "per_batch_ms": round(model.per_batch_ms, 3),
        },
        "runs": rows,
    }


# -- the figures at scale ----------------------------------------------------------------

SCALE_RECORDS = 10**10
SCALE_REQUESTS = 100_000
SCALE_JURISDICTIONS = 100


def scale_workload(batched: bool) -> Workload:
    """10^5 requests/s, half ingests and half accesses of one record, over 100
    jurisdictions and 20 regions; *batched*: the same records ingested in requests of
    1,000 (the batch API)."""
    return Workload(
        ingest_per_s=SCALE_REQUESTS / 2,
        access_per_s=SCALE_REQUESTS / 2,
        records_per_ingest=1000 if batched else 1,
        jurisdictions=SCALE_JURISDICTIONS,
        largest_share=zipf_share(SCALE_JURISDICTIONS),
        regions=20,
    )


def at_scale(per_record: dict[str, float]) -> dict[str, Any]:
    """The capacity model's figures for 100 jurisdictions, 10^10 records, 10^5 requests/s."""
    out: dict[str, Any] = {"zipf_largest_share": round(zipf_share(SCALE_JURISDICTIONS), 4)}
    for name, batched in (("single", False), ("batched_ingest", True)):
        w = scale_workload(batched)
        units = units_needed(w)
        many = Layout(replicas=units["replicas"])
        out[name] = {
            "loads": {k: round(v, 2) for k, v in loads(w).items()},
            "units_needed": units,
            "first_limit_one_replica": first_limit(w, Layout()),
            "requests_per_s_one_replica": round(max_throughput(w, Layout())),
            "limits_with_enough_replicas_per_s": {
                k: round(v)
                for k, v in sorted(component_limits(w, many).items(), key=lambda kv: kv[1])
            },
        }
    out["proofs_at_1e10"] = proof_bytes(SCALE_RECORDS)
    out["storage_at_1e10_bytes"] = {
        k: float(f"{v:.3g}") for k, v in storage(SCALE_RECORDS, per_record).items()
    }
    out["audit_hours_at_1e10"] = round(
        cost("log_audit_s_per_million") * SCALE_RECORDS / 1e6 / 3600, 1
    )
    return out


def limits_by_replicas(w: Workload, base: Layout, replicas: list[int]) -> dict[str, list[float]]:
    rows: dict[str, list[float]] = {}
    for n in replicas:
        for k, v in component_limits(w, replace(base, replicas=n)).items():
            rows.setdefault(k, []).append(v)
    return rows


def svg(rows: dict[str, list[float]], xs: list[int], title: str) -> str:
    """A log-log line chart: each component's limit (requests/s) against replicas."""
    width, height, left, right, top, bottom = 880, 420, 70, 290, 40, 50
    finite = [v for vs in rows.values() for v in vs if math.isfinite(v)]
    y0 = 10 ** math.floor(math.log10(min(finite)))
    y1 = 10 ** math.ceil(math.log10(max(finite)))
    x0, x1 = math.log10(xs[0]), math.log10(xs[-1])

    def px(x: float) -> float:
        return left + (math.log10(x) - x0) / (x1 - x0) * (width - left - right)

    def py(y: float) -> float:
        y = min(max(y, y0), y1)
        return top + (1 - (math.log10(y) - math.log10(y0)) / math.log10(y1 / y0)) * (
            height - top - bottom
        )

    colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
    shade = dict(zip(rows, colours * (1 + len(rows) // len(colours)), strict=False))
    for name in rows:  # a layout's variant in its component's colour, dashed
        for base in rows:
            if name != base and name.startswith(base.split(" ")[0]) and "," in name:
                shade[name] = shade[base]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="12">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{left}" y="22" font-size="14">{title}</text>',
    ]
    e = int(math.log10(y0))
    while 10**e <= y1:
        y = py(10**e)
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">1e{e}</text>'
        )
        e += 1
    for x in xs:
        parts.append(
            f'<line x1="{px(x):.1f}" x2="{px(x):.1f}" y1="{top}" y2="{height - bottom}" '
            f'stroke="#eee"/><text x="{px(x):.1f}" y="{height - bottom + 16}" '
            f'text-anchor="middle">{x}</text>'
        )
    parts.append(
        f'<text x="{(left + width - right) / 2}" y="{height - 12}" text-anchor="middle">'
        "replicas (2 cores each)</text>"
        f'<text x="16" y="{(top + height - bottom) / 2}" text-anchor="middle" '
        f'transform="rotate(-90 16 {(top + height - bottom) / 2})">requests/s at the limit</text>'
    )
    for i, (name, values) in enumerate(rows.items()):
        colour = shade[name]
        dash = ' stroke-dasharray="6 4"' if "," in name else ""
        points = " ".join(f"{px(x):.1f},{py(v):.1f}" for x, v in zip(xs, values, strict=True))
        parts.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="2"{dash} points="{points}"/>'
        )
        ly = top + 16 * i + 8
        parts.append(
            f'<line x1="{width - right + 10}" x2="{width - right + 30}" y1="{ly}" y2="{ly}" '
            f'stroke="{colour}" stroke-width="2"{dash}/>'
            f'<text x="{width - right + 36}" y="{ly + 4}">{name}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


# -- the run -----------------------------------------------------------------------------


def progress(message: str) -> None:
    print(f"[scale_sim] {message}", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="under a minute")
    parser.add_argument("--duration", type=float, default=None, help="s per measured phase")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--processes", type=int, default=4, help="client processes")
    parser.add_argument("--svg", type=Path, default=None, help="write the replicas plot here")
    parser.add_argument("--no-measure", action="store_true", help="predictions only")
    parser.add_argument(
        "--store",
        type=Path,
        nargs="+",
        default=None,
        help="bench/store.py outputs (their last line): fit the replicas model to the "
        "one-replica setups, predict the two-replica ones, and stop",
    )
    args = parser.parse_args()
    if args.store:
        lines = [p.read_text().strip().splitlines()[-1] for p in args.store]
        print(json.dumps(replicas_check([json.loads(line) for line in lines])))
        return
    duration = args.duration or (2.5 if args.quick else 20.0)
    rounds = 15 if args.quick else 200
    cores = os.cpu_count() or 1

    progress(f"calibrating on this machine ({rounds} requests per figure)")
    cal = calibrate(rounds)
    flows, log = flows_from(cal)
    figures: dict[str, Any] = {"cores": cores, "calibration": cal}
    lines = ["Calibration (seconds of CPU or wall clock per request, this machine):", ""]
    lines += [f"  {k}: {json.dumps(v)}" for k, v in cal.items() if isinstance(v, dict)]
    predicted: dict[str, Any] = {}
    measured: dict[str, Any] = {}
    ratios: dict[str, float] = {}
    sim_s = 5.0 if args.quick else 30.0
    for workers in (1, 2):
        # the other work on the cores, just before and just after the measured run
        probes = [probe_others(cores)]
        if not args.no_measure:
            progress(f"sovra serve --workers {workers}: {duration:.0f} s per phase")
            got = measure(
                workers, args.clients, args.processes, duration, 0.5 if args.quick else 2.0
            )
            probes.append(probe_others(cores))
        others = statistics.fmean(probes)
        progress(f"{workers} worker(s): {others:.1f} other sessions busy on the cores")
        machine = Machine(cores, workers, args.clients, args.processes, log, others=others)
        for phase, flow in flows.items():
            key = f"{phase}_w{workers}"
            r = simulate(flow, machine, seconds=sim_s)
            quiet = simulate(flow, replace(machine, others=0.0), seconds=sim_s)
            predicted[key] = {
                "per_s": round(r.per_s, 1),
                "p50_ms": round(r.p50_ms, 2),
                "p99_ms": round(r.p99_ms, 2),
                "mean_batch": round(r.mean_batch, 2),
                "server_cpu_ms": round(1000 * server_cpu(flow, machine, r.mean_batch), 3),
                "others": round(others, 2),
                "quiet_per_s": round(quiet.per_s, 1),
                "quiet_cpu_bound_per_s": round(
                    cpu_bound(flow, machine, max(quiet.mean_batch, 1)), 1
                ),
            }
            if not args.no_measure:
                measured[key] = got[phase]
                ratios[key] = round(got[phase]["per_s"] / r.per_s, 3)
    figures["predicted"] = predicted
    figures["measured"] = measured
    figures["measured_over_predicted"] = ratios
    lines += [
        "",
        f"Predicted and measured, {args.clients} HTTP clients in {args.processes} processes, "
        f"{cores} cores:",
        "",
        "| run | other sessions | predicted /s | measured /s | measured / predicted "
        "| p50 / p99 ms, predicted | measured | server CPU ms/request, predicted | measured "
        "| mean batch (model) | predicted on a quiet machine /s |",
        "|---|---:|---:|---:|---:|---|---|---:|---:|---:|---:|",
    ]
    nan = float("nan")
    for key, p in predicted.items():
        m = measured.get(key, {})
        lines.append(
            f"| {key} | {p['others']:.1f} | {p['per_s']:.0f} | {m.get('per_s', nan):.0f} | "
            f"{ratios.get(key, nan):.2f} | {p['p50_ms']:.0f} / {p['p99_ms']:.0f} | "
            f"{m.get('p50_ms', nan):.0f} / {m.get('p99_ms', nan):.0f} | "
            f"{p['server_cpu_ms']:.2f} | {m.get('server_cpu_ms', nan):.2f} | "
            f"{p['mean_batch']:.1f} | {p['quiet_per_s']:.0f} |"
        )
    scale = at_scale(cal["bytes_per_record"])
    figures["at_scale"] = scale
    lines += ["", "At scale (docs/scale.md):", json.dumps(scale, indent=1)]
    if args.svg:
        xs = [1, 2, 4, 8, 16, 32, 64, 128, 256]
        w = replace(scale_workload(False), ingest_per_s=1.0, access_per_s=1.0)
        rows = limits_by_replicas(w, Layout(), xs)
        rows["sequencer, a log per jurisdiction"] = limits_by_replicas(
            w, Layout(per_jurisdiction_logs=True), xs
        )["sequencer"]
        rows["metadata, a writer per jurisdiction"] = limits_by_replicas(
            w, Layout(metadata_shards=w.jurisdictions), xs
        )["metadata store"]
        args.svg.write_text(
            svg(
                rows,
                xs,
                "Where each component stops: half ingests, half accesses, 100 jurisdictions",
            )
        )
        progress(f"wrote {args.svg}")
    print("\n".join(lines))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
