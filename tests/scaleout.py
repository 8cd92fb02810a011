"""A scale-out deployment for tests (shared state in PostgreSQL, every region in an S3
bucket) and the checks that such a deployment lost nothing: the log dense and verified,
every receipt's entry in it, every acknowledged record stored, logged and in its bucket."""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import psycopg
from tests.cli.conftest import REGIONS
from tests.conftest import S3Bucket

from sovra import check
from sovra.auth import make_token
from sovra.deployment import Deployment
from sovra.ledger import audit, verify_checkpoint, verify_entry_inclusion
from sovra.model import LogReceipt
from sovra.targets import S3Settings, parse_blobs

SERVICES = {"PL": "svc-pl", "VN": "svc-vn"}
"""The jurisdictions the load uses (two regions), and the service that ingests each."""


def init_scaled(root: Path, pg_dsn: str, bucket: S3Bucket, **init: Any) -> Path:
    """What ``sovra init --database URL --blobs REGION=s3://...`` makes: every region's
    blobs under ``<bucket>/<region>``, the credentials read from the environment variables
    ``scripts/with-seaweedfs`` sets (a server started with other values in them uses
    other credentials)."""
    settings = S3Settings(
        endpoint=bucket.endpoint,
        access_key_env="SOVRA_TEST_S3_ACCESS_KEY",
        secret_key_env="SOVRA_TEST_S3_SECRET_KEY",
    )
    regions = parse_blobs([f"{r}={bucket.url}{r}" for r in REGIONS], settings)
    Deployment.init(root, custodians="in-process", database=pg_dsn, regions=regions, **init)
    return root


def new_record(jurisdiction: str) -> dict[str, str]:
    """An ingest body with a subject of its own and content no rule changes."""
    return {
        "subject_id": f"{secrets.token_hex(6)}@example.{jurisdiction.lower()}",
        "jurisdiction": jurisdiction,
        "content": f"note {secrets.token_hex(8)}",
    }


def check_log(dep: Deployment, receipts: Iterable[dict[str, Any]]) -> int:
    """The log is dense, every checkpoint published is reproduced by its entries, and each
    of *receipts* is the log's and its entry is in the newest checkpoint; the log's size."""
    log = dep.gateway.log
    size = log.size
    # Dense: exactly the indices 0..size-1, each once (the primary key), none skipped.
    with psycopg.connect(dep.config.database) as conn:
        row = conn.execute("SELECT count(*), min(idx), max(idx) FROM log_entries").fetchone()
    assert row == (size, 0, size - 1)
    audit(log.iter_entries(0, size), log.checkpoints(), log.verifier_key).check()
    newest = verify_checkpoint(log.checkpoint(), log.verifier_key)
    assert newest.size == size
    receipts = list(receipts)
    indices = [r["index"] for r in receipts]
    assert len(set(indices)) == len(indices), "one log index in two receipts"
    for raw in receipts:
        receipt = LogReceipt.from_dict(raw)
        entry = log.entry(receipt.index)
        receipt.verify(log.public_key, entry)
        proof = log.inclusion_proof(receipt.index, size)
        verify_entry_inclusion(entry, receipt.index, proof, newest)
    return size


def check_log_and_records(
    root: Path,
    bucket: S3Bucket,
    ingested: Mapping[str, dict[str, Any]],
    receipts: Iterable[dict[str, Any]],
    *,
    orphans: bool = False,
) -> int:
    """Everything acknowledged is there, and the log holds together; the log's size.

    *ingested* maps each acknowledged record's id to its ingest answer (with ``content``
    added: what was sent); *receipts* are the log receipts of every other acknowledged
    call. Opening the deployment runs its start-up reconciliation, as a restarted replica
    does. With *orphans*, blobs no row names are allowed (a write whose answer was lost
    with the server: the record was refused, and ``sovra check --repair`` removes them).
    """
    dep = Deployment.open(root)
    try:
        log = dep.gateway.log
        size = check_log(dep, [a["receipt"] for a in ingested.values()] + list(receipts))
        # Every acknowledged record: its row, visible at its receipt's index, in its region.
        stored = dep.store.get_records(list(ingested))
        assert sorted(stored) == sorted(ingested)
        for rid, meta in stored.items():
            assert meta.log_index == ingested[rid]["log_index"], rid
            assert meta.header.region == ingested[rid]["region"], rid
        # Every row's blob is in its bucket with the hash its entry logged.
        report = check.check(dep.store, log, dep.gateway.blobs, now_ms=int(time.time() * 1000))
        problems = [f for f in report.problems if not (orphans and f.kind == "orphan-blob")]
        assert problems == [], [f.to_dict() for f in problems]
        regions = {a["region"] for a in ingested.values()}
        keys = list(bucket.objects())
        for region in regions:
            assert any(k.startswith(f"{bucket.prefix}{region}/segments/") for k in keys), region
        assert not (root / dep.config.blobs).exists() or not any(
            p.is_file() for p in (root / dep.config.blobs).rglob("*")
        ), "a blob on the local disk"
        return size
    finally:
        dep.close()


def post_signed(http: Any, dep: Deployment, principal: str, path: str, body: Any) -> Any:
    """POST *body* as JSON to *path* of a test client *http* of *dep*'s gateway, signed now
    by *principal*'s key."""
    raw = json.dumps(body).encode()
    token = make_token(
        dep.principal_key(principal), principal, "POST", path, raw, now_s=int(time.time())
    )
    headers = {"authorization": f"Sovra {token}", "content-type": "application/json"}
    return http.post(path, content=raw, headers=headers)
