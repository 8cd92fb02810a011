"""Gateway throughput under concurrent load, beside its floors measured in the same run.

    .venv/bin/python bench/gateway.py [--quick] [--duration S] [--clients N]
        [--processes P] [--workers N]

HTTP: a deployment made by ``sovra init`` (as root, each custodian its own system user, as
users run it) served by ``sovra serve``, and the floor (bench/_floor_app.py: a bare FastAPI
+ uvicorn app started the same way with the same worker count, whose routes parse the same
JSON, seal with AES-256-GCM under a fresh key and insert into SQLite (WAL), or read a row
and open it) are driven by the same load generator: ``--processes`` client processes with
``--clients`` threads in all, each thread its own :class:`sovra.client.Client` signing
every request, on this machine. Each side gets a warm-up, then ingest for ``--duration``
seconds, then access (each thread reads back the first records it stored) for as long:
requests/s, p50/p99 latency, errors, the CPU the server's processes used per request, and
the growth of their resident memory (VmRSS of the server, its workers and custodians)
from after the warm-up to the end.

In-process: 16 threads calling ``Gateway.ingest`` and then ``Gateway.access`` on one
deployment with in-process custodians. Batch: ``Gateway.ingest_many`` in chunks of 1,000
in-process, and ``Client.ingest_many`` over HTTP against ``sovra serve`` (null where the
method does not exist).

Each record is a ~300-byte Polish support note (a phone number, a PESEL the policy
tokenizes, an e-mail), every record its own subject (a new subject key each). Both
deployments are at defaults, the bulk guard included: the default pack lets one requester
read 500 distinct subjects an hour, whatever ``[bulk]`` in sovra.toml says (the pack's caps
bound the configured ones), so each caller reads back the first of its records only, 400
subjects in all (:data:`READ_SUBJECTS`), over and over.

Full run: 120 s per phase; ``--quick``: under a minute overall. A progress line per phase
goes to stderr; the last line printed is one JSON object with every figure and each
target of issue 14 as a boolean.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import inspect
import json
import multiprocessing as mp
import os
import platform
import pwd
import queue
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from sovra.client import Client
from sovra.deployment import Deployment
from sovra.errors import SovraError
from sovra.gateway import Gateway, IngestItem
from sovra.keys import load_ed25519
from sovra.model import Principal

SOVRA = Path(sys.executable).parent / "sovra"
FLOOR_APP = Path(__file__).resolve().parent / "_floor_app.py"
RECORD = (
    "Zgłoszenie {i}: klientka prosi o zmianę adresu dostawy, tel. +48 601 234 567, "
    "PESEL 44051401359, e-mail klient{i}@example.pl. Uwagi: paczka ma być zostawiona u "
    "sąsiada pod numerem 5, jeśli nikogo nie będzie w domu; kontakt po godzinie 17:00."
)
JURISDICTION = "PL"
PRINCIPAL = "svc-pl"
PURPOSE = "customer-support"
READ_SUBJECTS = 400
"""Distinct subjects read per requester in all: under the default pack's 500 an hour."""
BATCH = 1000
IN_PROCESS_THREADS = 16
PHASES = ("ingest", "access")
TARGETS = {
    "http_ratio_vs_floor": 0.5,
    "http_p99_ms": 50.0,
    "rss_growth_mib": 20.0,
    "in_process_per_s": 5000.0,
    "batch_ingest_per_s": 20000.0,
    "http_batch_ingest_per_s": 10000.0,
}


def progress(message: str) -> None:
    print(f"[gateway bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else 0.0


def _percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _r(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


# -- servers and their processes ---------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def _tree(root: int) -> list[int]:
    """*root* and every process below it."""
    tree = _children()
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += tree.get(pid, [])
    return found


@dataclass(frozen=True)
class Usage:
    """Resident memory (MiB), CPU seconds and users of a process tree, by role."""

    rss_mib: dict[str, float]
    cpu_s: dict[str, float]
    users: dict[str, str]

    @property
    def rss_total_mib(self) -> float:
        return sum(self.rss_mib.values())


def _role(pid: int) -> str:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return "gone"
    if "custodian serve" in cmd:
        return "custodians"
    return "server"


def usage(root: int) -> Usage:
    rss: dict[str, float] = {}
    cpu: dict[str, float] = {}
    users: dict[str, str] = {}
    ticks = os.sysconf("SC_CLK_TCK")
    for pid in _tree(root):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        role = _role(pid)
        rss[role] = rss.get(role, 0.0) + int(fields.get("VmRSS", "0 kB").split()[0]) / 1024
        # utime and stime are fields 14 and 15 of stat, 12 and 13 after the name.
        cpu[role] = cpu.get(role, 0.0) + (int(stat[11]) + int(stat[12])) / ticks
        uid = int(fields["Uid"].split()[0])
        with contextlib.suppress(KeyError):
            users.setdefault(role, pwd.getpwuid(uid).pw_name)
            if users[role] != pwd.getpwuid(uid).pw_name:
                users[role] += f",{pwd.getpwuid(uid).pw_name}"
    return Usage(rss, cpu, users)


class Server:
    """A server command in its own process group, stopped as a whole."""

    def __init__(self, name: str, argv: list[str], logs: Path, env: dict[str, str]) -> None:
        self.name = name
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = logs / f"{name}.log"
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                [*argv, "--port", str(self.port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        wait_until_up(name, self.url, self.proc, self.tail)

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def wait_until_up(
    name: str, url: str, proc: subprocess.Popen[bytes], tail: Callable[[], str]
) -> None:
    """Return once *url* answers; exit if *proc* ends first or it takes over 120 s."""
    deadline = time.monotonic() + 120
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"{name} exited with {proc.returncode}: {tail()}")
        try:
            httpx.get(f"{url}/v1/info", timeout=2)
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise SystemExit(f"{name} did not answer within 120 s") from None
            time.sleep(0.05)
        else:
            return


# -- the load generator --------------------------------------------------------------------

_MERGE = threading.Lock()


@dataclass
class PhaseResult:
    """What one load process measured in one phase."""

    ok: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    first_errors: list[str] = field(default_factory=list)
    last_done: float = 0.0
    cpu_s: float = 0.0

    def failed(self, what: str) -> None:
        kind = what.split(":", 1)[0]
        self.errors[kind] = self.errors.get(kind, 0) + 1
        if len(self.first_errors) < 3:
            self.first_errors.append(what[:300])


def _one(client: Client, phase: str, tag: str, mine: list[str], reads: int, n: int) -> None:
    """The *n*-th request of one HTTP client."""
    if phase == "ingest":
        body = client.ingest(f"{tag}-{n}", JURISDICTION, RECORD.format(i=n))
        mine.append(str(body["record_id"]))
        return
    if not mine:
        raise SovraError("this client stored nothing to read back")
    rid = mine[n % min(len(mine), reads)]
    if rid not in client.access(PURPOSE, record_ids=[rid])["records"]:
        raise SovraError(f"record {rid} missing from the answer")


def _one_in_process(
    gw: Gateway, svc: Principal, phase: str, tag: str, mine: list[str], reads: int, n: int
) -> None:
    """The *n*-th call of one in-process caller."""
    if phase == "ingest":
        receipt = gw.ingest(
            svc, subject_id=f"{tag}-{n}", jurisdiction=JURISDICTION, content=RECORD.format(i=n)
        )
        mine.append(receipt.record_id)
        return
    if not mine:
        raise SovraError("this caller stored nothing to read back")
    rid = mine[n % min(len(mine), reads)]
    if rid not in gw.access(svc, purpose=PURPOSE, record_ids=[rid]).records:
        raise SovraError(f"record {rid} missing from the answer")


def _drive(call: Callable[[int], None], n: int, until: float, out: PhaseResult) -> None:
    """One caller: calls back to back until *until* (monotonic), numbered from *n*."""
    local = PhaseResult()
    while time.monotonic() < until:
        start = time.perf_counter()
        try:
            call(n)
        except (SovraError, KeyError, TypeError) as exc:
            local.failed(f"{type(exc).__name__}: {exc}")
        else:
            local.ok += 1
            local.latencies_ms.append((time.perf_counter() - start) * 1000)
        n += 1
    local.last_done = time.monotonic()
    with _MERGE:
        out.ok += local.ok
        out.latencies_ms += local.latencies_ms
        for k, v in local.errors.items():
            out.errors[k] = out.errors.get(k, 0) + v
        out.first_errors += local.first_errors[: 3 - len(out.first_errors)]
        out.last_done = max(out.last_done, local.last_done)


def _drive_all(
    calls: Sequence[Callable[[int], None]],
    phase: str,
    mine: Sequence[list[str]],
    until: float,
    out: PhaseResult,
) -> None:
    """Every caller in its own thread (ingest numbers go on from what each stored)."""
    threads = [
        threading.Thread(target=_drive, args=(c, len(m) if phase == "ingest" else 0, until, out))
        for c, m in zip(calls, mine, strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _load_process(
    index: int,
    url: str,
    key_path: Path,
    threads: int,
    reads: int,
    warmup_s: float,
    ready: Any,
    go: Any,
    deadline: Any,
    results: Any,
) -> None:
    """One client process: per phase, warm up, wait for the start, drive, report."""
    key = load_ed25519(key_path)
    clients = [Client(url, PRINCIPAL, key, timeout=60) for _ in range(threads)]
    mine: list[list[str]] = [[] for _ in range(threads)]

    def calls(phase: str) -> list[Callable[[int], None]]:
        return [
            functools.partial(_one, c, phase, f"p{index}t{t}", mine[t], reads)
            for t, c in enumerate(clients)
        ]

    try:
        run_phases(calls, mine, warmup_s, ready, go, deadline, results)
    finally:
        for c in clients:
            c.close()


def run_phases(
    calls: Callable[[str], Sequence[Callable[[int], None]]],
    mine: Sequence[list[str]],
    warmup_s: float,
    ready: Any,
    go: Any,
    deadline: Any,
    results: Any,
) -> None:
    """Per phase in one load process: warm up, wait for the start, drive, report."""
    for phase in PHASES:
        phase_calls = calls(phase)
        warm = PhaseResult()
        _drive_all(phase_calls, phase, mine, time.monotonic() + warmup_s, warm)
        ready.wait()
        go.wait()
        out = PhaseResult()
        cpu = time.process_time()
        _drive_all(phase_calls, phase, mine, deadline.value, out)
        out.cpu_s = time.process_time() - cpu
        for k, v in warm.errors.items():
            out.errors[f"warm-up {k}"] = v
        results.put((phase, out))


def drive(
    server: Server,
    key_path: Path,
    processes: int,
    threads: int,
    warmup_s: float,
    duration: float,
    load: Callable[..., None] = _load_process,
) -> dict[str, Any]:
    """Run both phases against *server*; figures per phase and the server's memory.

    The load processes take turns over ``server.urls`` where it has them (replicas);
    *load* is the body of each (its arguments those of :func:`_load_process`).
    """
    reads = max(1, READ_SUBJECTS // (processes * threads))
    urls = getattr(server, "urls", None) or [server.url]
    ctx = mp.get_context("fork")
    ready, go = ctx.Barrier(processes + 1), ctx.Barrier(processes + 1)
    deadline = ctx.Value("d", 0.0)
    results = ctx.Queue()
    procs = [
        ctx.Process(
            target=load,
            args=(
                *(i, urls[i % len(urls)], key_path, threads, reads, warmup_s),
                *(ready, go, deadline, results),
            ),
            daemon=True,
        )
        for i in range(processes)
    ]
    for p in procs:
        p.start()
    figures: dict[str, Any] = {}
    wait = warmup_s + duration + 120
    sample_s = max(1.0, duration / 12)
    samples: list[tuple[float, float]] = []
    t0 = time.monotonic()
    try:
        for phase in PHASES:
            ready.wait(timeout=wait)
            before = usage(server.proc.pid)
            if phase == PHASES[0]:
                first = before
            start = time.monotonic()
            deadline.value = start + duration
            go.wait(timeout=wait)
            got = _collect(results, len(procs), wait, server.proc.pid, sample_s, samples, t0)
            after = usage(server.proc.pid)
            figures[phase] = _phase_figures(phase, [r for _, r in got], start, before, after)
            figures["users"] = after.users
            f = figures[phase]
            progress(
                f"{server.name} {phase}: {f['per_s']:.0f}/s, p50 {f['p50_ms']} ms, "
                f"p99 {f['p99_ms']} ms, {f['errors']} errors, RSS {after.rss_total_mib:.0f} MiB"
            )
    except (threading.BrokenBarrierError, queue.Empty):
        raise SystemExit(f"a load process died under {server.name}: {server.tail()}") from None
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    figures["rss_samples_mib"] = samples
    figures["rss_start_mib"] = first.rss_total_mib
    figures["rss_growth_mib"] = after.rss_total_mib - first.rss_total_mib
    figures["rss_growth_by_role_mib"] = {
        k: round(v - first.rss_mib.get(k, 0.0), 1) for k, v in after.rss_mib.items()
    }
    return figures


def _collect(
    results: Any,
    count: int,
    wait: float,
    pid: int,
    every_s: float,
    samples: list[tuple[float, float]],
    t0: float,
) -> list[tuple[str, PhaseResult]]:
    """*count* results from the load processes; the server's RSS every *every_s* meanwhile
    (whether it levels off tells a cache filling from a leak)."""
    got: list[tuple[str, PhaseResult]] = []
    deadline = time.monotonic() + wait
    while len(got) < count:
        try:
            got.append(results.get(timeout=every_s))
        except queue.Empty:
            if time.monotonic() > deadline:
                raise
        if not got:
            now = time.monotonic()
            samples.append((round(now - t0, 1), round(usage(pid).rss_total_mib, 1)))
    return got


def _phase_figures(
    phase: str, got: list[PhaseResult], start: float, before: Usage, after: Usage
) -> dict[str, Any]:
    ok = sum(r.ok for r in got)
    latencies = [x for r in got for x in r.latencies_ms]
    errors: dict[str, int] = {}
    for r in got:
        for k, v in r.errors.items():
            errors[k] = errors.get(k, 0) + v
    elapsed = max(r.last_done for r in got) - start
    cpu = {k: after.cpu_s.get(k, 0.0) - before.cpu_s.get(k, 0.0) for k in after.cpu_s}
    return {
        "phase": phase,
        "requests": ok,
        "seconds": round(elapsed, 2),
        "per_s": _rate(ok, elapsed),
        "p50_ms": _r(_percentile(latencies, 0.50), 2),
        "p99_ms": _r(_percentile(latencies, 0.99), 2),
        "errors": sum(v for k, v in errors.items() if not k.startswith("warm-up")),
        "error_kinds": errors,
        "first_errors": [e for r in got for e in r.first_errors][:5],
        "server_cpu_ms_per_request": {k: round(1000 * v / max(ok, 1), 3) for k, v in cpu.items()},
        "rss_growth_mib": round(after.rss_total_mib - before.rss_total_mib, 1),
        "client_cpu_ms_per_request": round(1000 * sum(r.cpu_s for r in got) / max(ok, 1), 3),
    }


# -- the two HTTP sides ----------------------------------------------------------------------


def serve_supports_workers() -> bool:
    from sovra import cli

    return "workers" in inspect.signature(cli.serve).parameters


def make_deployment(root: Path, *, in_process: bool) -> None:
    """A deployment as ``sovra init`` makes it."""
    argv = [str(SOVRA), "init", str(root), "--jurisdictions", "PL,VN"]
    if in_process:
        argv += ["--custodians", "in-process"]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"sovra init failed: {done.stderr}")


def run_http(
    work: Path, dep_root: Path, args: argparse.Namespace, env: dict[str, str]
) -> dict[str, Any]:
    key_path = dep_root / "principals" / f"{PRINCIPAL}.key"
    threads = args.clients // args.processes
    workers = ["--workers", str(args.workers)] if args.serve_workers else []

    floor_db = work / "floor.db"
    with sqlite3.connect(floor_db) as db:
        db.execute("PRAGMA journal_mode=WAL")
        from _floor_app import SCHEMA

        db.execute(SCHEMA)
    floor_argv = [sys.executable, str(FLOOR_APP), str(floor_db), "--workers", str(args.workers)]
    progress(f"floor: starting ({args.workers} worker(s))")
    floor = Server("floor", floor_argv, work, env)
    try:
        floor_figures = drive(floor, key_path, args.processes, threads, args.warmup, args.duration)
    finally:
        floor.stop()

    progress(f"sovra serve: starting ({args.workers} worker(s))")
    sovra = Server("sovra", [str(SOVRA), "serve", str(dep_root), *workers], work, env)
    try:
        sovra_figures = drive(sovra, key_path, args.processes, threads, args.warmup, args.duration)
        batch = http_batch(sovra.url, key_path, args.batch_duration)
    finally:
        sovra.stop()
    return {"floor": floor_figures, "sovra": sovra_figures, "http_batch_ingest_per_s": batch}


def http_batch(url: str, key_path: Path, duration: float) -> float | None:
    """``Client.ingest_many`` for *duration* seconds, 1,000 records a request, as many
    requests in flight as the client keeps by default; None where it does not exist."""
    if not hasattr(Client, "ingest_many"):
        progress("HTTP batch: Client.ingest_many does not exist yet (null)")
        return None
    until = time.monotonic() + duration

    def records() -> Iterator[dict[str, str]]:
        n = 0
        while n == 0 or time.monotonic() < until:
            yield {
                "subject_id": f"hb-{n}",
                "jurisdiction": JURISDICTION,
                "content": RECORD.format(i=n),
            }
            n += 1

    stored = failed = 0
    with Client(url, PRINCIPAL, load_ed25519(key_path), timeout=300) as client:
        start = time.perf_counter()
        for result in client.ingest_many(records(), chunk=BATCH):
            if isinstance(result, Exception):
                failed += 1
            else:
                stored += 1
        elapsed = time.perf_counter() - start
    rate = _rate(stored, elapsed)
    progress(f"HTTP batch: {rate:.0f} records/s ({stored} stored, {failed} refused)")
    return rate


# -- in-process --------------------------------------------------------------------------------


def run_in_process(root: Path, duration: float, batch_duration: float) -> dict[str, Any]:
    """16 callers on a deployment made with in-process custodians, then the batch."""
    dep = Deployment.open(root)
    try:
        gw = dep.gateway
        svc = dep.store.get_principal(PRINCIPAL)
        for i in range(20):  # first use: scanner tables, connections, subject-key paths
            rid = gw.ingest(svc, subject_id=f"w-{i}", jurisdiction="PL", content=RECORD).record_id
            gw.access(svc, purpose=PURPOSE, record_ids=[rid])
        # A large batch starts the scan helper, ready by the batch phase after the threads.
        gw.ingest_many(svc, [IngestItem(f"wb-{i}", JURISDICTION, RECORD) for i in range(BATCH)])
        mine: list[list[str]] = [[] for _ in range(IN_PROCESS_THREADS)]
        reads = READ_SUBJECTS // IN_PROCESS_THREADS
        counts: dict[str, Any] = {"custodians": "in-process"}
        for phase in PHASES:
            calls = [
                functools.partial(_one_in_process, gw, svc, phase, f"ip{t}", mine[t], reads)
                for t in range(IN_PROCESS_THREADS)
            ]
            out = PhaseResult()
            start = time.monotonic()
            _drive_all(calls, phase, mine, start + duration, out)
            rate = _rate(out.ok, out.last_done - start)
            counts[f"{phase}_per_s"] = rate
            counts[f"{phase}_errors"] = sum(out.errors.values())
            counts[f"{phase}_p99_ms"] = _r(_percentile(out.latencies_ms, 0.99), 2)
            counts[f"{phase}_first_errors"] = out.first_errors
            progress(
                f"in-process {phase}, {IN_PROCESS_THREADS} threads: {rate:.0f}/s, "
                f"p99 {counts[f'{phase}_p99_ms']} ms, {counts[f'{phase}_errors']} errors"
            )
        counts["batch_ingest_per_s"] = batch_in_process(dep, batch_duration)
    finally:
        dep.close()
    return counts


def batch_in_process(dep: Deployment, duration: float) -> float | None:
    """``Gateway.ingest_many`` in chunks of 1,000 for *duration* seconds; None without it."""
    gw = dep.gateway
    svc = dep.store.get_principal(PRINCIPAL)
    done = n = 0
    start = time.perf_counter()
    while n == 0 or time.perf_counter() - start < duration:
        items = [
            IngestItem(
                subject_id=f"b-{n + i}", jurisdiction=JURISDICTION, content=RECORD.format(i=n + i)
            )
            for i in range(BATCH)
        ]
        done += sum(not isinstance(r, SovraError) for r in gw.ingest_many(svc, items))
        n += BATCH
    rate = _rate(done, time.perf_counter() - start)
    progress(f"in-process batch: {rate:.0f} records/s ({done} of {n} stored)")
    return rate


# -- report ------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def custodian_mode(users: dict[str, str], configured: str) -> str:
    if configured == "in-process":
        return "in-process"
    gateway, custodians = users.get("server", "?"), users.get("custodians", "")
    if not custodians:
        return "separate (no custodian process seen)"
    if set(custodians.split(",")) - {gateway}:
        return f"separate processes, own system users ({custodians}; gateway {gateway})"
    return f"separate processes, same user as the gateway ({gateway})"


def report(
    args: argparse.Namespace, http: dict[str, Any], local: dict[str, Any], mode: str
) -> dict[str, Any]:
    s, f = http["sovra"], http["floor"]
    ratio = {p: s[p]["per_s"] / f[p]["per_s"] if f[p]["per_s"] else 0.0 for p in PHASES}
    errors = s["ingest"]["errors"] + s["access"]["errors"]
    batch, http_batch = local["batch_ingest_per_s"], http["http_batch_ingest_per_s"]

    def at_least(value: float | None, target: float) -> bool | None:
        return None if value is None else value >= target

    targets = {
        "http_ingest_ratio_ge_0.5": ratio["ingest"] >= TARGETS["http_ratio_vs_floor"],
        "http_access_ratio_ge_0.5": ratio["access"] >= TARGETS["http_ratio_vs_floor"],
        "http_p99_lt_50ms": all(
            (s[p]["p99_ms"] or float("inf")) < TARGETS["http_p99_ms"] for p in PHASES
        ),
        "http_zero_errors": errors == 0,
        "rss_growth_lt_20mib": s["rss_growth_mib"] < TARGETS["rss_growth_mib"],
        "ingest_ge_5000_per_s": local["ingest_per_s"] >= TARGETS["in_process_per_s"],
        "access_ge_5000_per_s": local["access_per_s"] >= TARGETS["in_process_per_s"],
        "batch_ge_20000_per_s": at_least(batch, TARGETS["batch_ingest_per_s"]),
        "http_batch_ge_10000_per_s": at_least(http_batch, TARGETS["http_batch_ingest_per_s"]),
    }
    return {
        "bench": "gateway",
        "quick": args.quick,
        "http_ingest_per_s": _r(s["ingest"]["per_s"]),
        "http_access_per_s": _r(s["access"]["per_s"]),
        "http_floor_ingest_per_s": _r(f["ingest"]["per_s"]),
        "http_floor_access_per_s": _r(f["access"]["per_s"]),
        "http_ingest_ratio_vs_floor": _r(ratio["ingest"], 4),
        "http_access_ratio_vs_floor": _r(ratio["access"], 4),
        "http_ingest_p50_ms": s["ingest"]["p50_ms"],
        "http_access_p50_ms": s["access"]["p50_ms"],
        "http_ingest_p99_ms": s["ingest"]["p99_ms"],
        "http_access_p99_ms": s["access"]["p99_ms"],
        "http_floor_ingest_p99_ms": f["ingest"]["p99_ms"],
        "http_floor_access_p99_ms": f["access"]["p99_ms"],
        "http_errors": errors,
        "http_floor_errors": f["ingest"]["errors"] + f["access"]["errors"],
        "ingest_per_s": _r(local["ingest_per_s"]),
        "access_per_s": _r(local["access_per_s"]),
        "in_process_errors": local["ingest_errors"] + local["access_errors"],
        "batch_ingest_per_s": _r(batch),
        "http_batch_ingest_per_s": _r(http_batch),
        "rss_growth_mib": _r(s["rss_growth_mib"]),
        "rss_start_mib": _r(s["rss_start_mib"]),
        "rss_growth_by_role_mib": s["rss_growth_by_role_mib"],
        "rss_growth_per_phase_mib": {p: s[p]["rss_growth_mib"] for p in PHASES},
        "rss_samples_mib": s["rss_samples_mib"],
        "floor_rss_growth_mib": _r(f["rss_growth_mib"]),
        "server_cpu_ms_per_request": {
            f"{side}_{p}": http[side][p]["server_cpu_ms_per_request"]
            for side in ("sovra", "floor")
            for p in PHASES
        },
        "client_cpu_ms_per_request": {
            f"{side}_{p}": http[side][p]["client_cpu_ms_per_request"]
            for side in ("sovra", "floor")
            for p in PHASES
        },
        "first_errors": s["ingest"]["first_errors"] + s["access"]["first_errors"],
        "clients": args.processes * (args.clients // args.processes),
        "client_processes": args.processes,
        "workers": args.workers,
        "duration_s": args.duration,
        "custodians": mode,
        "in_process_custodians": local["custodians"],
        "subjects": "one per record; each caller reads back its first records only",
        "subjects_read_per_requester": READ_SUBJECTS,
        "targets": targets,
        "machine": machine(),
    }


def print_table(figures: dict[str, Any], http: dict[str, Any]) -> None:
    s, f = http["sovra"], http["floor"]
    print(
        f"sovra gateway benchmark: {figures['clients']} clients ({figures['client_processes']} "
        f"processes), {figures['workers']} worker(s), {figures['duration_s']:g} s per phase"
    )
    print(f"custodians: {figures['custodians']}")
    print(
        "every record its own subject; everything at defaults, the bulk guard too (each "
        f"caller reads back its first records: {figures['subjects_read_per_requester']} "
        "subjects in all)"
    )
    head = f"{'':24}  {'sovra':>10}  {'floor':>10}  {'ratio':>6}  {'p50 ms':>13}  {'p99 ms':>13}"
    print(head)
    for p in PHASES:
        a, b = s[p], f[p]
        print(
            f"{p + ', HTTP':24}  {a['per_s']:>8.0f}/s  {b['per_s']:>8.0f}/s  "
            f"{a['per_s'] / b['per_s'] if b['per_s'] else 0:>6.3f}  "
            f"{a['p50_ms']!s:>6} /{b['p50_ms']!s:>6}  {a['p99_ms']!s:>6} /{b['p99_ms']!s:>6}"
        )
    for p in PHASES:
        cpu_s = sum(s[p]["server_cpu_ms_per_request"].values())
        cpu_f = sum(f[p]["server_cpu_ms_per_request"].values())
        print(
            f"{p + ', server CPU/request':24}  {cpu_s:>7.3f} ms  {cpu_f:>7.3f} ms  "
            f"{cpu_s / cpu_f if cpu_f else 0:>6.1f}x  (client {s[p]['client_cpu_ms_per_request']}"
            f" / {f[p]['client_cpu_ms_per_request']} ms)"
        )
    for name, key in (
        ("ingest, in-process x16", "ingest_per_s"),
        ("access, in-process x16", "access_per_s"),
        ("batch, in-process", "batch_ingest_per_s"),
        ("batch, HTTP", "http_batch_ingest_per_s"),
    ):
        value = figures[key]
        print(f"{name:24}  {'null' if value is None else f'{value:8.0f}/s':>10}")
    print(
        f"server RSS growth: {figures['rss_growth_mib']} MiB (from {figures['rss_start_mib']} "
        f"MiB; floor {figures['floor_rss_growth_mib']} MiB); errors {figures['http_errors']}"
    )
    print("targets: " + ", ".join(f"{k} {v}" for k, v in figures["targets"].items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="under a minute")
    parser.add_argument("--duration", type=float, default=None, help="s per HTTP phase")
    parser.add_argument("--clients", type=int, default=16, help="concurrent HTTP clients")
    parser.add_argument("--processes", type=int, default=4, help="client processes")
    parser.add_argument(
        "--workers", type=int, default=None, help="server workers (default: sovra serve's)"
    )
    args = parser.parse_args()
    if args.clients < args.processes or args.clients % args.processes:
        parser.error("--clients must be a multiple of --processes")
    args.serve_workers = serve_supports_workers()
    if args.workers is None:
        args.workers = (os.cpu_count() or 1) if args.serve_workers else 1
    elif args.workers != 1 and not args.serve_workers:
        parser.error("this sovra serve has no --workers: only 1 worker can be compared")
    args.duration = args.duration or (3.0 if args.quick else 120.0)
    args.warmup = 0.5 if args.quick else 5.0
    args.batch_duration = 1.5 if args.quick else 20.0
    in_process_s = 2.0 if args.quick else 30.0
    env = dict(os.environ)  # the servers import the same sovra as this script
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with tempfile.TemporaryDirectory(prefix="sovra-bench-gateway-") as tmp:
        work = Path(tmp)
        # Others may walk in, as /srv: so `sovra init` as root makes a user per custodian.
        work.chmod(0o711)
        dep_root = work / "deployment"
        progress("sovra init, twice (served; in-process custodians)")
        with ThreadPoolExecutor(2) as pool:  # before anything is measured
            made = [
                pool.submit(make_deployment, dep_root, in_process=False),
                pool.submit(make_deployment, work / "in-process", in_process=True),
            ]
            for f in made:
                f.result()
        http = run_http(work, dep_root, args, env)
        local = run_in_process(work / "in-process", in_process_s, args.batch_duration)
    mode = custodian_mode(http["sovra"]["users"], "separate")
    figures = report(args, http, local, mode)
    print_table(figures, http)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
