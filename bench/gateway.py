"""Gateway throughput beside its physical floor, measured in the same run.

    .venv/bin/python bench/gateway.py [--quick] [--records N]

Ingest and access are timed in-process (the gateway called directly) and over HTTP on
loopback (the Python client against uvicorn). The floor for one ingest is what any system
storing a sealed record must do at least: one plain SQLite insert (WAL, same pragmas as
sovra) plus one AES-256-GCM seal of the same record under a fresh key; for one access, one
SQLite read plus one AES-GCM open. Ratios are sovra / floor (1.0 = no overhead; lower is
slower). The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sovra.client import Client
from sovra.deployment import Deployment
from sovra.server import create_app
from sovra.server.background import running

RECORD = (
    "Zgłoszenie {i}: klientka prosi o zmianę adresu dostawy, tel. +48 601 234 567, "
    "PESEL 44051401359, e-mail klient{i}@example.pl. Uwagi: paczka ma być zostawiona u "
    "sąsiada pod numerem 5, jeśli nikogo nie będzie w domu; kontakt po godzinie 17:00."
)


def _rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def floor_ingest(root: Path, texts: list[str]) -> float:
    db = sqlite3.connect(root / "floor.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE r (id TEXT PRIMARY KEY, nonce BLOB, ct BLOB)")
    start = time.perf_counter()
    for i, text in enumerate(texts):
        key = AESGCM.generate_key(bit_length=256)
        nonce = os.urandom(12)
        ct = AESGCM(key).encrypt(nonce, text.encode(), b"header")
        with db:
            db.execute("INSERT INTO r VALUES (?, ?, ?)", (f"r-{i}", nonce, ct))
    elapsed = time.perf_counter() - start
    db.close()
    return _rate(len(texts), elapsed)


def floor_access(root: Path, n: int) -> float:
    db = sqlite3.connect(root / "floor.db", isolation_level=None)
    key = AESGCM.generate_key(bit_length=256)
    nonce = os.urandom(12)
    sample = AESGCM(key).encrypt(nonce, RECORD.encode(), b"header")
    start = time.perf_counter()
    for i in range(n):
        row = db.execute("SELECT nonce, ct FROM r WHERE id = ?", (f"r-{i}",)).fetchone()
        assert row is not None
        AESGCM(key).decrypt(nonce, sample, b"header")  # same size as the stored record
    elapsed = time.perf_counter() - start
    db.close()
    return _rate(n, elapsed)


def _open(root: Path) -> Deployment:
    Deployment.init(
        root, jurisdictions=["PL", "VN"], origin="bench.sovra/log", custodians="in-process"
    )
    config = root / "sovra.toml"
    # The benchmark reads every subject once: lift the bulk window so it measures speed.
    text = config.read_text().replace(
        "window_subject_limit = 500", "window_subject_limit = 100000000"
    )
    config.write_text(text)
    return Deployment.open(root)


def bench_in_process(dep: Deployment, texts: list[str]) -> tuple[float, float, list[str]]:
    gw = dep.gateway
    svc = dep.store.get_principal("svc-pl")
    start = time.perf_counter()
    ids = [
        gw.ingest(svc, subject_id=f"subject-{i}", jurisdiction="PL", content=t).record_id
        for i, t in enumerate(texts)
    ]
    ingest = _rate(len(texts), time.perf_counter() - start)
    start = time.perf_counter()
    for rid in ids:
        gw.access(svc, purpose="customer-support", record_ids=[rid])
    access = _rate(len(ids), time.perf_counter() - start)
    return ingest, access, ids


def bench_http(dep: Deployment, texts: list[str]) -> tuple[float, float]:
    with (
        running(create_app(dep)) as url,
        Client(url, "svc-pl", dep.principal_key("svc-pl")) as c,
    ):
        start = time.perf_counter()
        ids = [c.ingest(f"http-{i}", "PL", t)["record_id"] for i, t in enumerate(texts)]
        ingest = _rate(len(texts), time.perf_counter() - start)
        start = time.perf_counter()
        for rid in ids:
            c.access("customer-support", record_ids=[rid])
        access = _rate(len(ids), time.perf_counter() - start)
    return ingest, access


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small run, under a minute")
    parser.add_argument("--records", type=int, default=None, help="records per phase")
    args = parser.parse_args()
    n = args.records or (400 if args.quick else 4000)
    n_http = max(50, n // 4)
    texts = [RECORD.format(i=i) for i in range(n)]
    with tempfile.TemporaryDirectory(prefix="sovra-bench-") as tmp:
        root = Path(tmp)
        floor_in = floor_ingest(root, texts)
        floor_out = floor_access(root, n)
        dep = _open(root / "deployment")
        try:
            ingest, access, _ = bench_in_process(dep, texts)
            http_ingest, http_access = bench_http(dep, texts[:n_http])
        finally:
            dep.close()
    figures = {
        "records": n,
        "http_records": n_http,
        "ingest_per_s": round(ingest, 1),
        "access_per_s": round(access, 1),
        "http_ingest_per_s": round(http_ingest, 1),
        "http_access_per_s": round(http_access, 1),
        "floor_ingest_per_s": round(floor_in, 1),
        "floor_access_per_s": round(floor_out, 1),
        "ingest_ratio_vs_floor": round(ingest / floor_in, 4),
        "access_ratio_vs_floor": round(access / floor_out, 4),
        "http_ingest_ratio_vs_floor": round(http_ingest / floor_in, 4),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
    }
    width = max(len(k) for k in figures)
    print(f"sovra gateway benchmark ({n} records in-process, {n_http} over HTTP)")
    print(f"{'':{width}}  {'sovra':>12}  {'floor':>12}  {'ratio':>8}")
    for name, ours, floor in (
        ("ingest (in-process)", ingest, floor_in),
        ("access (in-process)", access, floor_out),
        ("ingest (HTTP loopback)", http_ingest, floor_in),
        ("access (HTTP loopback)", http_access, floor_out),
    ):
        print(f"{name:{width}}  {ours:>10.0f}/s  {floor:>10.0f}/s  {ours / floor:>8.4f}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
