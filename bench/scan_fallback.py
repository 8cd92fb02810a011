"""The scanner on its restated library steps and on the libraries themselves.

    .venv/bin/python bench/scan_fallback.py [--quick]

When the installed phonenumbers or python-stdnum is not the version recorded in
``sovra.classify._libraries.TESTED``, the scanner asks the library for every answer
instead of taking its steps from the library's data. This runs the labelled corpus
(``scan_corpus``, the test split) both ways, as one call per document (as the gateway
scans records) and as one call over all of them, reports the CPU time of each (the
best of several rounds, CPU time so that other jobs on the machine count less), and
checks that both ways find exactly the same spans. The fallback is simulated by changing
the recorded versions, as the tests do, never the libraries. The last line printed is
one JSON object. ``--restated-only`` times the first way alone, on any version of sovra.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time

import scan_corpus  # beside this file: the script's folder is on sys.path
import scan_templates
from sovra.classify import scan
from sovra.model import Finding


def _timed(texts: list[str], rounds: int) -> tuple[float, float, list[list[Finding]]]:
    """(best CPU seconds for one call per text, for one call over all, the findings)."""
    whole = " ".join(texts)
    found = [scan(t) for t in texts]  # warm-up, and the findings to compare
    per_text, once = [], []
    for _ in range(rounds):
        start = time.process_time()
        for t in texts:
            scan(t)
        per_text.append(time.process_time() - start)
        start = time.process_time()
        scan(whole)
        once.append(time.process_time() - start)
    return min(per_text), min(once), [*found, scan(whole)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer documents and rounds")
    parser.add_argument(
        "--restated-only",
        action="store_true",
        help="time the restated steps only (runs on versions before the fallback existed)",
    )
    args = parser.parse_args(argv)
    per_language, rounds = (40, 3) if args.quick else (150, 7)
    docs = scan_corpus.documents("test", 7, per_language, scan_templates.TEMPLATES)
    texts = [d.text for d in docs]
    size = sum(len(t.encode()) for t in texts)
    print(f"{len(texts)} documents, {size:,} bytes, {rounds} rounds", flush=True)

    restated = _timed(texts, rounds)
    if args.restated_only:
        print(
            f"restated: {restated[0] * 1000:.0f} ms CPU as one call per document, "
            f"{restated[1] * 1000:.0f} ms as one call",
            flush=True,
        )
        print(
            json.dumps(
                {
                    "documents": len(texts),
                    "restated_ms_per_document_calls": round(restated[0] * 1000, 1),
                    "restated_ms_one_call": round(restated[1] * 1000, 1),
                }
            )
        )
        return 0
    from sovra.classify import _libraries

    saved = dict(_libraries.TESTED)
    logging.getLogger("sovra.classify").setLevel(logging.ERROR)  # the expected warning
    try:
        for distribution in _libraries.TESTED:
            _libraries.TESTED[distribution] = "0"
        _libraries.check()
        library = _timed(texts, rounds)
    finally:
        _libraries.TESTED.update(saved)
        _libraries.check()
    same = restated[2] == library[2]
    spans = sum(len(f) for f in restated[2])
    for name, (per_text, once, _) in (("restated", restated), ("libraries", library)):
        print(
            f"{name}: {per_text * 1000:.0f} ms CPU as one call per document, "
            f"{once * 1000:.0f} ms as one call ({size / once / 1e6:.2f} MB/s)",
            flush=True,
        )
    print(f"findings identical both ways: {same} ({spans} findings)", flush=True)
    print(
        json.dumps(
            {
                "documents": len(texts),
                "bytes": size,
                "rounds": rounds,
                "restated_ms_per_document_calls": round(restated[0] * 1000, 1),
                "restated_ms_one_call": round(restated[1] * 1000, 1),
                "libraries_ms_per_document_calls": round(library[0] * 1000, 1),
                "libraries_ms_one_call": round(library[1] * 1000, 1),
                "libraries_vs_restated": round(library[1] / restated[1], 2),
                "findings": spans,
                "findings_identical": same,
                "tested": saved,
                "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                f"Python {platform.python_version()}",
            }
        ),
        flush=True,
    )
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
