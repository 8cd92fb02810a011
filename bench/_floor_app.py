"""The HTTP floor of bench/gateway.py: the least any service storing sealed records does.

    .venv/bin/python bench/_floor_app.py DATABASE --port P [--workers N]

A bare FastAPI app on uvicorn, started as ``sovra serve`` starts (the same socket, uvicorn
settings and pre-forked workers, :mod:`sovra.server.workers`, same worker count), with
sovra's two record routes and their bodies (:mod:`sovra.server.bodies`, so the JSON parse
is the same): ``POST /v1/records`` seals the content with AES-256-GCM under a fresh key and
inserts it into SQLite (WAL, ``synchronous=NORMAL``, as sovra's metadata store);
``POST /v1/access`` reads the first named row and opens it. The data key sits in the row:
no custodian, no policy, no log, no token check (the load generator still signs and sends
the token, so the client's cost is the same on both sides). DATABASE must hold the table
:data:`SCHEMA` (bench/gateway.py makes it before starting the workers).
"""

from __future__ import annotations

import argparse
import os
import secrets
import sqlite3
import sys
import threading
from pathlib import Path
from typing import Any

import uvicorn
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from fastapi import FastAPI, HTTPException

from sovra.server.bodies import AccessBody, IngestBody
from sovra.server.workers import bind, serve_workers, uvicorn_config

SCHEMA = (
    "CREATE TABLE records (record_id TEXT PRIMARY KEY, subject_id TEXT NOT NULL, "
    "jurisdiction TEXT NOT NULL, data_key BLOB NOT NULL, nonce BLOB NOT NULL, "
    "sealed BLOB NOT NULL)"
)
DATABASE_ENV = "SOVRA_FLOOR_DB"

app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
_local = threading.local()


def _db() -> sqlite3.Connection:
    """This thread's connection (sync routes run on uvicorn's thread pool)."""
    conn: sqlite3.Connection | None = getattr(_local, "conn", None)
    if conn is None:
        conn = sqlite3.connect(os.environ[DATABASE_ENV], isolation_level=None, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        _local.conn = conn
    return conn


@app.post("/v1/records", status_code=201)
def ingest(body: IngestBody) -> dict[str, Any]:
    record_id = secrets.token_hex(16)
    key = AESGCM.generate_key(bit_length=256)
    nonce = os.urandom(12)
    sealed = AESGCM(key).encrypt(nonce, body.content.encode(), record_id.encode())
    with _db() as db:
        db.execute(
            "INSERT INTO records VALUES (?, ?, ?, ?, ?, ?)",
            (record_id, body.subject_id, body.jurisdiction, key, nonce, sealed),
        )
    return {"record_id": record_id}


@app.post("/v1/access")
def access(body: AccessBody) -> dict[str, Any]:
    if not body.record_ids:
        raise HTTPException(400, "name a record")
    record_id = body.record_ids[0]
    row = (
        _db()
        .execute("SELECT data_key, nonce, sealed FROM records WHERE record_id = ?", (record_id,))
        .fetchone()
    )
    if row is None:
        raise HTTPException(404, f"no record {record_id}")
    key, nonce, sealed = row
    text = AESGCM(key).decrypt(nonce, sealed, record_id.encode()).decode()
    return {"records": {record_id: text}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("database", type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    os.environ[DATABASE_ENV] = str(args.database.resolve())
    # Started as `sovra serve` starts: one socket bound here, uvicorn with sovra's settings,
    # pre-forked workers over it (connections are opened per thread, after the fork).
    sock = bind(args.host, args.port)
    if args.workers == 1:
        uvicorn.Server(uvicorn_config(app)).run(sockets=[sock])
        return
    sys.exit(serve_workers(sock, args.workers, lambda: (app, lambda: None)))


if __name__ == "__main__":
    main()
