"""What ``sovra scan`` costs per line of a JSONL or CSV file of short notes.

    .venv/bin/python bench/scan_lines.py [--quick]

Writes a JSONL file and a CSV file of the same short notes (about 150 characters each:
one in three with a phone number of its own, one in three with an e-mail address, the
rest prose), runs ``sovra scan FILE --jobs 1`` on each, and gives the command's CPU time
(user + system, from the kernel's accounting of the child) per line, less that of the
same command on an empty file of the same kind (the start). One job, so that CPU and not
the cores is compared. To compare two versions, run it with ``PYTHONPATH`` pointing at
each source in turn, alternately. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

SOVRA = [sys.executable, "-c", "from sovra.cli import main; main()"]
NOTES = (
    "Zgłoszenie {i}: klientka prosi o oddzwonienie pod numer +48 6{a:02d} {b:03d} {c:03d} "
    "w sprawie zmiany adresu dostawy.",
    "Ticket {i}: the customer asks for the invoice to be sent to jane.doe{i}@example.com "
    "instead of the old address.",
    "Notatka {i}: paczka ma być zostawiona u sąsiada, jeśli nikogo nie będzie w domu; "
    "kontakt wieczorem, najlepiej po pracy.",
)


def note(i: int) -> str:
    return NOTES[i % 3].format(i=i, a=i % 100, b=i * 7919 % 1000, c=i * 104_729 % 1000)


def cpu_of(path: Path) -> float:
    """CPU seconds of ``sovra scan path --jobs 1``, the child's user and system time."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([*SOVRA, "scan", str(path), "--jobs", "1"], check=True, capture_output=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 lines, not 100,000")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; the best is kept")
    args = parser.parse_args()
    lines = 20_000 if args.quick else 100_000
    notes = [note(i) for i in range(lines)]
    result: dict[str, object] = {"lines": lines, "load": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory() as tmp:
        for suffix in (".jsonl", ".csv"):
            if suffix == ".jsonl":
                rows = [
                    json.dumps({"id": i, "note": n}, ensure_ascii=False)
                    for i, n in enumerate(notes)
                ]
            else:
                rows = [f'{i},"{n}"' for i, n in enumerate(notes)]
            path = Path(tmp) / f"notes{suffix}"
            path.write_text("\n".join(rows) + "\n", encoding="utf-8")
            empty = Path(tmp) / f"empty{suffix}"
            empty.write_bytes(b"")
            start = min(cpu_of(empty) for _ in range(args.repeat))
            total = min(cpu_of(path) for _ in range(args.repeat))
            per_line = (total - start) / lines * 1e6
            name = suffix[1:]
            print(f"{name}: {per_line:.1f} us CPU a line ({total:.2f} s, start {start:.2f} s)")
            result[f"{name}_us_per_line"] = round(per_line, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
