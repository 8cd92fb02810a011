"""Small sealed blobs in an S3 bucket: one object per record against one segment per batch.

    scripts/with-seaweedfs .venv/bin/python bench/s3_blobs.py [--quick]

Needs SOVRA_TEST_S3_ENDPOINT, SOVRA_TEST_S3_ACCESS_KEY and SOVRA_TEST_S3_SECRET_KEY
(``scripts/with-seaweedfs`` starts a throwaway SeaweedFS and sets them). Every blob is
about 400 bytes, as a sealed record of 360 bytes is. In a fresh bucket, all sequential:

- ``object_per_record``: the floor of the naive layout, one boto3 ``put_object`` per
  record (what one object per small record costs);
- ``segment_per_batch``: :meth:`S3BlobStore.put_many` of batches of 1,000 records, one
  segment object per batch;
- ``segment_per_record``: :meth:`S3BlobStore.put` of one record per call (each its own
  segment: ingest without group commit);
- ``get_many``: :meth:`S3BlobStore.get_many` of 1,000 keys of one batch (ranged GETs);
- ``get_one``: :meth:`S3BlobStore.get` of one key (one ranged GET).

Figures are records per second (wall clock, median of the rounds) and the client's CPU
per record in microseconds (``time.process_time``). The layouts take turns round by
round. The last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import boto3
from botocore.config import Config as BotoConfig

from sovra.store.s3 import S3BlobStore, S3Location

BATCH = 1000
BLOB_BYTES = 400


def timed(n: int, run: Callable[[], object]) -> tuple[float, float]:
    """Records per second and CPU microseconds per record of one run over *n* records."""
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return n / wall, cpu / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    args = parser.parse_args()
    endpoint = os.environ.get("SOVRA_TEST_S3_ENDPOINT")
    if not endpoint:
        sys.exit("SOVRA_TEST_S3_ENDPOINT is not set: run under scripts/with-seaweedfs")
    access, secret = os.environ["SOVRA_TEST_S3_ACCESS_KEY"], os.environ["SOVRA_TEST_S3_SECRET_KEY"]
    rounds, singles = (2, 100) if args.quick else (5, 400)
    client = boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=access,
        aws_secret_access_key=secret,
        region_name="us-east-1",
        config=BotoConfig(s3={"addressing_style": "path"}),
    )
    bucket = f"bench-{secrets.token_hex(6)}"
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key="warm-up", Body=b"x")  # the bucket's first volume
    store = S3BlobStore(
        "eu-central-pl",
        S3Location(bucket, "store/"),
        endpoint=endpoint,
        access_key=access,
        secret_key=secret,
    )
    figures: dict[str, list[tuple[float, float]]] = {}

    def add(name: str, got: tuple[float, float]) -> None:
        figures.setdefault(name, []).append(got)

    for r in range(rounds):
        batch = [
            (f"r-{r}-{i}-{secrets.token_hex(8)}", os.urandom(BLOB_BYTES)) for i in range(BATCH)
        ]
        naive = batch[:singles]
        one_by_one = [(f"s-{k}", d) for k, d in batch[:singles]]
        turns: list[tuple[str, int, Callable[[], object]]] = [
            (
                "object_per_record",
                len(naive),
                lambda naive=naive: [
                    client.put_object(Bucket=bucket, Key=f"naive/{k}", Body=d) for k, d in naive
                ],
            ),
            ("segment_per_batch", BATCH, lambda batch=batch: store.put_many(batch)),
            (
                "segment_per_record",
                len(one_by_one),
                lambda one=one_by_one: [store.put(k, d) for k, d in one],
            ),
        ]
        turns = turns[r % 3 :] + turns[: r % 3]
        for name, n, run in turns:
            add(name, timed(n, run))
        keys = [k for k, _ in batch]
        add("get_many", timed(BATCH, lambda keys=keys: store.get_many(keys)))
        add("get_one", timed(singles, lambda keys=keys: [store.get(k) for k in keys[:singles]]))
    store.close()
    result: dict[str, Any] = {"rounds": rounds, "batch": BATCH, "blob_bytes": BLOB_BYTES}
    for name, got in figures.items():
        result[f"{name}_per_s"] = round(statistics.median(g[0] for g in got), 1)
        result[f"{name}_cpu_us"] = round(statistics.median(g[1] for g in got), 1)
    result["batch_vs_object_per_record"] = round(
        result["segment_per_batch_per_s"] / result["object_per_record_per_s"], 1
    )
    for name in figures:
        print(f"{name:>20}: {result[f'{name}_per_s']:>10} /s, {result[f'{name}_cpu_us']} us CPU")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
