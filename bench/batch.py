"""The batch API over HTTP: records/s through ``POST /v1/records/batch``, and where time goes.

    .venv/bin/python bench/batch.py [--quick] [--records N] [--workers N] [--window N]

A deployment made by ``sovra init --custodians in-process``, served by ``sovra serve`` in
its own process group (``--workers``, default: sovra serve's own). One
``Client.ingest_many`` call over a generator of ``--records`` records (chunks of 1,000,
``--window`` requests in flight), every record its own subject, the same ~300-byte
Polish support note as ``bench/gateway.py``. Measured in the same run:

- ``http_batch_ingest_per_s``: records stored per second over HTTP, end to end;
- ``client_cpu_ms_per_1k`` and ``server_cpu_ms_per_1k``: the CPU the client process and
  the server's processes (from ``/proc``) spent per 1,000 records;
- ``in_process_batch_per_s``: ``Gateway.ingest_many`` in chunks of 1,000 on a deployment
  of its own, one thread: the flow's own cost, with no HTTP;
- ``route_us_per_line``: the route's own work per line (``_parse`` of a line and the
  JSON of its receipt), and ``client_us_per_line`` the client's (a record's JSON line and
  reading its result back), each timed alone in this process.

``--quick``: 10,000 records over HTTP and 5,000 in-process, under a minute. The last line
printed is one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson

from sovra.client import Client
from sovra.deployment import Deployment
from sovra.errors import SovraError
from sovra.gateway import IngestItem
from sovra.keys import load_ed25519

SOVRA = Path(sys.executable).parent / "sovra"
SRC = Path(__file__).resolve().parent.parent / "src"
RECORD = (
    "Zgłoszenie {i}: klientka prosi o zmianę adresu dostawy, tel. +48 601 234 567, "
    "PESEL 44051401359, e-mail klient{i}@example.pl. Uwagi: paczka ma być zostawiona u "
    "sąsiada pod numerem 5, jeśli nikogo nie będzie w domu; kontakt po godzinie 17:00."
)
PRINCIPAL = "svc-pl"
CHUNK = 1000


def progress(message: str) -> None:
    print(f"[batch] {message}", file=sys.stderr, flush=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _records(tag: str, n: int) -> Iterator[dict[str, Any]]:
    for i in range(n):
        yield {"subject_id": f"{tag}-{i}", "jurisdiction": "PL", "content": RECORD.format(i=i)}


def _group_cpu_s(pgid: int) -> float:
    """CPU seconds (user + system) of every live process in process group *pgid*."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(stat[2]) == pgid:
                total += (int(stat[11]) + int(stat[12])) / ticks
    return total


def make_deployment(root: Path) -> None:
    argv = [str(SOVRA), "init", str(root), "--custodians", "in-process", "--jurisdictions", "PL"]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"sovra init failed: {done.stderr}")


def http_batch(root: Path, n: int, workers: int | None, window: int) -> dict[str, float]:
    port = _free_port()
    argv = [str(SOVRA), "serve", str(root), "--port", str(port)]
    if workers is not None:
        argv += ["--workers", str(workers)]
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    log = root.parent / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"sovra serve exited: {log.read_text()[-2000:]}")
            try:
                httpx.get(f"{url}/v1/info", timeout=2)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise SystemExit("sovra serve did not answer within 120 s") from None
                time.sleep(0.05)
        key = load_ed25519(root / "principals" / f"{PRINCIPAL}.key")
        with Client(url, PRINCIPAL, key, timeout=300) as client:
            # Warm-up: the scanner's tables, connections, the first custodian calls.
            list(client.ingest_many(_records("warm", 2 * CHUNK), window=window))
            server_cpu = _group_cpu_s(proc.pid)
            client_cpu = time.process_time()
            start = time.perf_counter()
            stored = failed = 0
            for result in client.ingest_many(_records("hb", n), window=window):
                if isinstance(result, SovraError):
                    failed += 1
                else:
                    stored += 1
            elapsed = time.perf_counter() - start
            client_cpu = time.process_time() - client_cpu
            server_cpu = _group_cpu_s(proc.pid) - server_cpu
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    if failed:
        raise SystemExit(f"{failed} of {n} records failed over HTTP")
    progress(f"HTTP: {stored / elapsed:,.0f} records/s ({stored} in {elapsed:.1f} s)")
    return {
        "http_batch_ingest_per_s": stored / elapsed,
        "client_cpu_ms_per_1k": 1e6 * client_cpu / stored,
        "server_cpu_ms_per_1k": 1e6 * server_cpu / stored,
        "seconds": elapsed,
    }


def in_process_batch(root: Path, n: int) -> float:
    dep = Deployment.open(root)
    try:
        gw = dep.gateway
        svc = dep.store.get_principal(PRINCIPAL)

        def items(tag: str, count: int) -> list[IngestItem]:
            return [IngestItem(f"{tag}-{i}", "PL", RECORD.format(i=i)) for i in range(count)]

        gw.ingest_many(svc, items("warm", CHUNK))
        time.sleep(1.5)  # the scan helper that batch started: its imports and tables
        start = time.perf_counter()
        done = 0
        for first in range(0, n, CHUNK):
            batch = items(f"ip{first}", min(CHUNK, n - first))
            done += sum(not isinstance(r, SovraError) for r in gw.ingest_many(svc, batch))
        rate = done / (time.perf_counter() - start)
    finally:
        dep.close()
    progress(f"in-process: {rate:,.0f} records/s")
    return rate


def per_line_costs(root: Path) -> dict[str, float]:
    """The route's and the client's own work per line, each timed alone."""
    from sovra.client import _batch_line, _record_line
    from sovra.server.batch import _encode, _parse
    from sovra.server.bodies import IngestBody

    records = list(_records("cost", 2000))
    lines = [_record_line(r) for r in records]
    receipt = {
        "record_id": "r-" + "0" * 32,
        "region": "eu-central-pl",
        "log_index": 123456,
        "receipt": {
            "origin": "sovra.example/log",
            "index": 123456,
            "leaf_hash": "0" * 64,
            "time_ms": 1_790_000_000_000,
            "signature": "0" * 128,
            "batch": {"start": 123000, "size": 1000, "path": ["0" * 64] * 10},
        },
        "findings": {"phone": 1, "pesel": 1, "email": 1},
        "actions": {"pesel": "tokenize"},
    }
    limit = Deployment.open(root).config.max_record_bytes + (64 << 10)
    start = time.perf_counter()
    for line in lines:
        assert isinstance(line, bytes)
        _parse(line, limit, IngestBody)
    parse_us = 1e6 * (time.perf_counter() - start) / len(lines)
    start = time.perf_counter()
    answers = [_encode({"line": i, "status": 201, "result": receipt}) for i in range(len(lines))]
    encode_us = 1e6 * (time.perf_counter() - start) / len(lines)
    start = time.perf_counter()
    for r in records:
        _record_line(r)
    client_encode_us = 1e6 * (time.perf_counter() - start) / len(lines)
    start = time.perf_counter()
    for i, answer in enumerate(answers):
        _batch_line(orjson.loads(answer), i, len(answers))
    client_read_us = 1e6 * (time.perf_counter() - start) / len(lines)
    return {
        "route_parse_us_per_line": parse_us,
        "route_encode_us_per_line": encode_us,
        "client_encode_us_per_line": client_encode_us,
        "client_read_us_per_line": client_read_us,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="under a minute")
    parser.add_argument("--records", type=int, default=None, help="records over HTTP")
    parser.add_argument("--workers", type=int, default=None, help="sovra serve --workers")
    parser.add_argument("--window", type=int, default=2, help="batch requests in flight")
    args = parser.parse_args()
    n = args.records or (10_000 if args.quick else 200_000)
    in_process_n = 5_000 if args.quick else 50_000
    with tempfile.TemporaryDirectory(prefix="sovra-bench-batch-") as tmp:
        Path(tmp).chmod(0o711)
        served, local = Path(tmp) / "served" / "deployment", Path(tmp) / "local" / "deployment"
        make_deployment(served)
        make_deployment(local)
        progress(f"HTTP: {n} records, window {args.window}")
        http = http_batch(served, n, args.workers, args.window)
        progress(f"in-process: {in_process_n} records")
        rate = in_process_batch(local, in_process_n)
        costs = per_line_costs(local)
    figures: dict[str, Any] = {
        "bench": "batch",
        "records": n,
        "window": args.window,
        "workers": args.workers,
        **{k: round(v, 1) for k, v in http.items()},
        "in_process_batch_per_s": round(rate, 1),
        **{k: round(v, 2) for k, v in costs.items()},
        "http_batch_ge_10000_per_s": http["http_batch_ingest_per_s"] >= 10_000,
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
