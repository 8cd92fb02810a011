"""Requests per second through the HTTP edge of a real ``sovra serve``, by route.

    .venv/bin/python bench/http_edge.py [--quick] [--workers N] [--duration S]
        [--processes P] [--threads T]

A throwaway deployment (``sovra init --custodians in-process``: no custodian process, so
the figure is the gateway's edge and flows) is served by ``sovra serve --workers N``.
Then, each phase for ``--duration`` seconds:

- ``GET /v1/log/checkpoint`` driven by ``wrk`` (16 connections; skipped if wrk is not
  installed): the cost of the edge itself, with no token and no body;
- signed ``POST /v1/records`` (ingest) and ``POST /v1/access`` (one record each) from
  ``--processes`` client processes of ``--threads`` threads, each thread a
  :class:`sovra.client.Client` signing every request (a fresh token, nonce and body hash
  each time), as users run it.

Beside each rate, the CPU time (user + system) the server's processes spent per request,
from /proc: on a shared machine a steadier figure than the rate. Reads stay within the
default pack's bulk budget: each thread reads back its own first records only. The last
line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from sovra.client import Client
from sovra.deployment import Deployment
from sovra.keys import load_ed25519

SOVRA = Path(sys.executable).with_name("sovra")
NOTE = "Klient prosi o kontakt: tel. +48 601 234 567, e-mail anna.kowalska@example.pl. " * 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"sovra serve ended with {proc.returncode}")
        try:
            if httpx.get(f"{url}/v1/info", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit("sovra serve did not answer")


def _client_process(
    url: str, root: str, phase: str, threads: int, seconds: float, seed: int, out: Any
) -> None:
    key = load_ed25519(Path(root) / "principals" / "svc-pl.key")
    counts = [0] * threads
    errors = [0] * threads
    stop = time.monotonic() + seconds

    def work(t: int) -> None:
        with Client(url, "svc-pl", key) as client:
            own = [client.ingest(f"edge-{seed}-{t}-{n}", "PL", NOTE)["record_id"] for n in range(2)]
            n = 0
            while time.monotonic() < stop:
                try:
                    if phase == "ingest":
                        client.ingest(f"edge-{seed}-{t}-{n % 50}", "PL", NOTE)
                    else:
                        client.access("customer-support", record_ids=[own[n % 2]])
                    counts[t] += 1
                except Exception:  # counted; the load goes on
                    errors[t] += 1
                n += 1

    pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for p in pool:
        p.start()
    for p in pool:
        p.join()
    out.put((sum(counts), sum(errors)))


def _signed(url: str, root: Path, phase: str, processes: int, threads: int, seconds: float):
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [
        ctx.Process(
            target=_client_process,
            args=(url, str(root), phase, threads, seconds, n, queue),
        )
        for n in range(processes)
    ]
    for p in procs:
        p.start()
    results = [queue.get(timeout=seconds + 120) for _ in procs]
    for p in procs:
        p.join()
    done = sum(r[0] for r in results)
    return round(done / seconds, 1), sum(r[1] for r in results), done


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system) used so far by *pid* and its descendants alive now."""
    total = 0.0
    pending = [pid]
    while pending:
        p = pending.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            for task in Path(f"/proc/{p}/task").iterdir():
                pending += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def _wrk(url: str, seconds: float) -> tuple[float, int] | None:
    if shutil.which("wrk") is None:
        return None
    ran = subprocess.run(
        ["wrk", "-t2", "-c16", f"-d{max(1, int(seconds))}s", f"{url}/v1/log/checkpoint"],
        capture_output=True,
        text=True,
        check=True,
    )
    rate = re.search(r"Requests/sec:\s+([\d.]+)", ran.stdout)
    total = re.search(r"(\d+) requests in", ran.stdout)
    return (float(rate.group(1)), int(total.group(1))) if rate and total else None


def _per_request(before: float, after: float, requests: int) -> float | None:
    """Server CPU microseconds per request (the setup requests of each phase included)."""
    return round((after - before) / requests * 1e6, 1) if requests else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="under a minute")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--duration", type=float, default=None, help="seconds per phase")
    parser.add_argument("--processes", type=int, default=2, help="client processes")
    parser.add_argument("--threads", type=int, default=8, help="threads per client process")
    args = parser.parse_args()
    seconds = args.duration or (8.0 if args.quick else 30.0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "deployment"
        Deployment.init(root, custodians="in-process")
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        proc = subprocess.Popen(
            [SOVRA, "serve", str(root), "--port", str(port), "--workers", str(args.workers)],
            stdout=subprocess.DEVNULL,
        )
        try:
            _wait(url, proc)
            cpu: dict[str, float | None] = {}
            before = _cpu_s(proc.pid)
            ran = _wrk(url, seconds)
            checkpoint = ran[0] if ran else None
            cpu["checkpoint"] = _per_request(before, _cpu_s(proc.pid), ran[1] if ran else 0)
            print(f"GET /v1/log/checkpoint (wrk, 16 connections): {checkpoint}/s", file=sys.stderr)
            before = _cpu_s(proc.pid)
            ingest, ingest_errors, done = _signed(
                url, root, "ingest", args.processes, args.threads, seconds
            )
            cpu["ingest"] = _per_request(before, _cpu_s(proc.pid), done)
            print(f"signed ingest: {ingest}/s, {ingest_errors} errors", file=sys.stderr)
            before = _cpu_s(proc.pid)
            access, access_errors, done = _signed(
                url, root, "access", args.processes, args.threads, seconds
            )
            cpu["access"] = _per_request(before, _cpu_s(proc.pid), done)
            print(f"signed access: {access}/s, {access_errors} errors", file=sys.stderr)
            print(f"server CPU us per request: {cpu}", file=sys.stderr)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=60)
    print(
        json.dumps(
            {
                "workers": args.workers,
                "clients": args.processes * args.threads,
                "seconds_per_phase": seconds,
                "checkpoint_per_s": checkpoint,
                "ingest_per_s": ingest,
                "ingest_errors": ingest_errors,
                "access_per_s": access,
                "access_errors": access_errors,
                "server_cpu_us_per_request": cpu,
            }
        )
    )


if __name__ == "__main__":
    main()
