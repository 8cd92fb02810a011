"""What keeping custodians out of the gateway's process costs: start-up and per record.

    .venv/bin/python bench/custody.py [--quick] [--records N]

For each custodian mode ``sovra init`` offers (``in-process``: every key file opened in the
gateway's process; ``separate``: each custodian its own process, reached over loopback
HTTP, under its own system user when run as root), a fresh five-jurisdiction deployment is
opened (timed: for ``separate`` this starts the five custodian processes), then records are
ingested and read one at a time through the gateway called directly. The last line printed
is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

from sovra.deployment import Deployment

TEXT = "Zgłoszenie {i}: klientka prosi o kontakt, tel. +48 601 234 567, e-mail k{i}@example.pl."


def measure(mode: str, records: int) -> dict[str, float]:
    base = Path(tempfile.mkdtemp(prefix="sovra-bench-custody-"))
    base.chmod(0o711)  # the custodians' users walk in to their own folders
    try:
        root = base / "dep"
        Deployment.init(root, custodians="separate" if mode == "separate" else "in-process")
        start = time.perf_counter()
        dep = Deployment.open(root)
        opened = time.perf_counter() - start
        try:
            svc = dep.store.get_principal("svc-pl")
            start = time.perf_counter()
            ids = [
                dep.gateway.ingest(
                    svc, subject_id=f"s{i}", jurisdiction="PL", content=TEXT.format(i=i)
                ).record_id
                for i in range(records)
            ]
            ingest = time.perf_counter() - start
            start = time.perf_counter()
            for rid in ids:
                dep.gateway.access(svc, purpose="customer-support", record_ids=[rid])
            access = time.perf_counter() - start
        finally:
            dep.close()
    finally:
        shutil.rmtree(base)
    return {
        "open_s": round(opened, 3),
        "ingest_per_s": round(records / ingest, 1),
        "access_per_s": round(records / access, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="50 records instead of 500")
    parser.add_argument("--records", type=int, default=None)
    args = parser.parse_args()
    records = args.records or (50 if args.quick else 500)
    result: dict[str, object] = {
        "bench": "custody",
        "records": records,
        "root": os.geteuid() == 0,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
    }
    for mode in ("in-process", "separate"):
        figures = measure(mode, records)
        print(f"{mode:>10}: {figures}")
        result[mode] = figures
    print(json.dumps(result))


if __name__ == "__main__":
    main()
