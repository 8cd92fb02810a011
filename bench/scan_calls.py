"""What one ``scan()`` call costs on a short text: the scanner's cost per call.

    .venv/bin/python bench/scan_calls.py [--quick]

CPU time per call (``time.thread_time``, so time the process waits for a core on a shared
machine is not counted), the best of several passes over many texts, on: the gateway's
benchmark record (about 300 bytes with a phone number, a PESEL and an e-mail address),
prose of the same length without a digit, ``"ok"`` (the fixed cost of a call), and the
test documents of ``bench/scan_eval.py`` (seven languages, about 200 bytes each). To
compare two versions of the scanner, run it with ``PYTHONPATH`` pointing at each source
in turn, alternately. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time

from scan_corpus import documents
from scan_templates import TEMPLATES
from sovra.classify import scan

RECORD = (
    "Zgłoszenie {i}: klientka prosi o zmianę adresu dostawy, tel. +48 601 234 567, "
    "PESEL 44051401359, e-mail klient{i}@example.pl. Uwagi: paczka ma być zostawiona u "
    "sąsiada pod numerem 5, jeśli nikogo nie będzie w domu; kontakt po godzinie 17:00."
)
PROSE = (
    "Klientka prosi o zmianę adresu dostawy. Uwagi: paczka ma być zostawiona u sąsiada, "
    "jeśli nikogo nie będzie w domu; kontakt wieczorem, najlepiej po pracy. Dziękujemy za "
    "cierpliwość i zapraszamy ponownie do naszego sklepu internetowego."
)


def per_call(texts: list[str], passes: int) -> float:
    """Best CPU microseconds per call over *passes* passes through *texts*."""
    for text in texts[:20]:
        scan(text)
    best = float("inf")
    for _ in range(passes):
        start = time.thread_time()
        for text in texts:
            scan(text)
        best = min(best, (time.thread_time() - start) / len(texts))
    return best * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small run, under a minute")
    args = parser.parse_args()
    n, passes = (500, 5) if args.quick else (2000, 9)
    corpus = [d.text for d in documents("test", 7, 30, TEMPLATES)]
    figures = {
        "record_us": per_call([RECORD.format(i=i) for i in range(n)], passes),
        "prose_us": per_call([PROSE + " " * (i % 5) for i in range(n)], passes),
        "ok_us": per_call(["ok"] * n, passes),
        "corpus_document_us": per_call(corpus * max(1, n // len(corpus)), passes),
    }
    sizes = {
        "record": len(RECORD.format(i=0).encode()),
        "prose": len(PROSE.encode()),
        "corpus_document_mean": sum(len(t.encode()) for t in corpus) // len(corpus),
    }
    print("CPU per scan() call (best of passes)")
    for name, us in figures.items():
        print(f"  {name:<22} {us:8.1f} us")
    print(json.dumps({**{k: round(v, 1) for k, v in figures.items()}, "bytes": sizes}))


if __name__ == "__main__":
    main()
