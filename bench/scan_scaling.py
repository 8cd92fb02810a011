"""How ``sovra scan DIR`` scales with worker processes, from one to every core.

The directory is generated: files of news prose (the seeds in ``../shared/seeds``) with
2% of the labelled ``dev`` corpus mixed in (``scan_eval.mixed_text``), each file a
different rotation of the corpus. Each job count runs the installed ``sovra`` command
in a fresh process, output to a file, and the best of ``--repeat`` wall-clock times is
kept (other jobs may share the machine). The speed-up of ``--jobs N`` is the time of
``--jobs 1`` over its own; ``startup_s`` is the same command on an empty directory (the
interpreter, the command's imports and its exit: serial whatever the job count), and
``scan_speedup`` the speed-up of what remains, the scanning itself.

Usage: ``python bench/scan_scaling.py [--quick] [--files N] [--mb-per-file X]``.
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from scan_corpus import documents
from scan_eval import SPLIT_SEEDS, mixed_text
from scan_templates import TEMPLATES

SOVRA = Path(sys.executable).parent / "sovra"
SHARE = 0.02


def make_directory(root: Path, files: int, chars_per_file: int) -> int:
    """Write the files; returns their total size in bytes."""
    docs = documents("dev", SPLIT_SEEDS["dev"], 60, TEMPLATES)
    step = max(1, len(docs) // files)
    total = 0
    for i in range(files):
        rotated = docs[i * step :] + docs[: i * step]
        data = mixed_text(rotated, size=chars_per_file, share=SHARE).encode()
        (root / f"part{i:03d}.txt").write_bytes(data)
        total += len(data)
    return total


def wall(target: Path, jobs: int, repeat: int, output: Path) -> float:
    """Best wall-clock seconds of ``sovra scan target --jobs jobs`` over *repeat* runs."""
    best = float("inf")
    for _ in range(repeat):
        with output.open("wb") as sink:
            started = time.perf_counter()
            subprocess.run(
                [str(SOVRA), "scan", str(target), "--jobs", str(jobs)],
                stdout=sink,
                stderr=subprocess.DEVNULL,
                check=False,
            )
            best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="16 files of 0.75 MB, < 1 min")
    parser.add_argument("--files", type=int, default=16)
    parser.add_argument("--mb-per-file", type=float, help="characters per file, in millions")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--max-jobs", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    per_file = args.mb_per_file or (0.75 if args.quick else 2.0)
    with tempfile.TemporaryDirectory(prefix="sovra-scan-scaling-") as tmp:
        root = Path(tmp) / "corpus"
        root.mkdir()
        (Path(tmp) / "empty").mkdir()
        size = make_directory(root, args.files, round(per_file * 1e6))
        output = Path(tmp) / "findings.jsonl"
        print(f"{args.files} files, {size / 1e6:.1f} MB, {args.repeat} runs per job count")
        startup = wall(Path(tmp) / "empty", 1, args.repeat, output)
        print(f"startup on an empty directory: {startup:.2f} s")
        seconds: dict[int, float] = {}
        for jobs in range(1, args.max_jobs + 1):
            seconds[jobs] = wall(root, jobs, args.repeat, output)
            print(
                f"--jobs {jobs}: {seconds[jobs]:.2f} s, {size / seconds[jobs] / 1e6:.1f} MB/s, "
                f"speed-up {seconds[1] / seconds[jobs]:.2f}x, without the startup "
                f"{(seconds[1] - startup) / (seconds[jobs] - startup):.2f}x"
            )
        findings = sum(1 for _ in output.open("rb"))
    print(f"{findings} findings")
    result = {
        "files": args.files,
        "mb": round(size / 1e6, 1),
        "findings": findings,
        "startup_s": round(startup, 3),
        "seconds": {str(j): round(s, 3) for j, s in seconds.items()},
        "mb_per_s": {str(j): round(size / s / 1e6, 2) for j, s in seconds.items()},
        "speedup": {str(j): round(seconds[1] / s, 3) for j, s in seconds.items()},
        "scan_speedup": {
            str(j): round((seconds[1] - startup) / (s - startup), 3) for j, s in seconds.items()
        },
        "cpus": os.cpu_count(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
