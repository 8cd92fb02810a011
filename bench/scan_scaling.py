"""How ``sovra scan`` scales with worker processes, from one to every core.

Two inputs of the same size, generated from news prose (the seeds in ``../shared/seeds``)
with 2% of the labelled ``dev`` corpus mixed in (``scan_eval.mixed_text``): a directory
of ``--files`` files, each a different rotation of the corpus, and one large file made
of the same text. Each job count runs the installed ``sovra`` command in a fresh
process, output to a file, and the best of ``--repeat`` wall-clock times is kept. Other
jobs may share the machine: a run during which other processes used more than a tenth
of a core (Linux: from ``/proc/stat``) is set aside and tried again, and the count of
such runs is printed with the load average before and after.

``speedup`` of ``--jobs N`` is the time of ``--jobs 1`` over its own. ``startup_s`` is
the same command on an empty file: the interpreter, the command's imports (the
scanner's included) and its exit, paid once whatever the job count; ``startup_share``
is that part of each run, and ``scan_speedup`` the speed-up of the rest.
``serial_fraction`` is the Karp-Flatt metric, the share of the one-job run that did not
get faster with N jobs, ``(N * t_N / t_1 - 1) / (N - 1)``: the startup, building the
scanner's tables before the workers start, and whatever waits. The output of every job
count is compared: it must be the same, byte for byte.

The baseline is the machine's own ceiling: N processes each scanning the same
``--ceiling-mb`` of the input's text at once, in memory and with the scanner's tables
built (``sovra.classify.scan`` over chunks of the size the command scans, the scan
alone timed, no start and no files), against one process alone. ``ceiling_speedup``
is N times the time alone over the slowest of the N: the most N processes can get out
of these cores (shared caches, memory bandwidth, clock boost, siblings of one core).
``of_ceiling`` is ``scan_speedup`` over it: 1.0 is all the parallel part could get.

Job counts are 1 to the number of cores; with ``--quick``, 1, 2, 4, ... and the number
of cores, so that a large machine also finishes within a minute. ``--quick`` scans 24
million characters per input (the full run 128): on smaller inputs the fixed start of
each run hides how the scan itself scales. sovra's modules are byte-compiled first, as an
installed sovra's are.

Usage: ``python bench/scan_scaling.py [--quick] [--files N] [--mb X] [--repeat N]
[--ceiling-mb X]``. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import compileall
import hashlib
import json
import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import sovra
from scan_corpus import documents
from scan_eval import SPLIT_SEEDS, mixed_text
from scan_templates import TEMPLATES
from sovra._cli.scan import CHUNK_CHARS
from sovra.classify import scan

SOVRA = Path(sys.executable).parent / "sovra"
SHARE = 0.02


def make_inputs(root: Path, files: int, chars: int) -> tuple[Path, Path, int]:
    """Write the directory and the single file; returns them and their size in bytes."""
    docs = documents("dev", SPLIT_SEEDS["dev"], 60, TEMPLATES)
    step = max(1, len(docs) // files)
    directory = root / "corpus"
    directory.mkdir()
    single = root / "single.txt"
    total = 0
    with single.open("wb") as whole:
        for i in range(files):
            rotated = docs[i * step :] + docs[: i * step]
            data = mixed_text(rotated, size=chars // files, share=SHARE).encode()
            (directory / f"part{i:03d}.txt").write_bytes(data)
            whole.write(data)
            total += len(data)
    return directory, single, total


def busy_seconds() -> float | None:
    """CPU seconds every process on the machine has used since boot (Linux), else None."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def watched(measured: Callable[[], float]) -> tuple[float, float]:
    """The seconds *measured* returns, and the CPU seconds other processes than this one
    and its children used while it ran (0 where that cannot be known), as a share of a
    core: a run that shared the machine."""
    busy = busy_seconds()
    ours = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    seconds = measured()
    wall = time.perf_counter() - started
    after = busy_seconds()
    if busy is None or after is None:
        return seconds, 0.0
    mine = resource.getrusage(resource.RUSAGE_CHILDREN)
    used = mine.ru_utime - ours.ru_utime + mine.ru_stime - ours.ru_stime
    return seconds, max(0.0, after - busy - used) / wall


def run(target: Path, jobs: int, output: Path) -> float:
    """Wall-clock seconds of one ``sovra scan target --jobs jobs``."""
    with output.open("wb") as sink:
        started = time.perf_counter()
        done = subprocess.run(
            [str(SOVRA), "scan", str(target), "--jobs", str(jobs)],
            stdout=sink,
            stderr=subprocess.PIPE,
            check=False,
        )
        seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"sovra scan {target} --jobs {jobs} failed: {done.stderr.decode()}")
    return seconds


def best(measured: Callable[[], float], repeat: int) -> tuple[float, int]:
    """The best of *repeat* runs that had the machine to themselves, and how many runs
    were set aside because other processes took more than a tenth of a core meanwhile
    (after ``4 * repeat`` tries, the best of all)."""
    clean: list[float] = []
    every: list[float] = []
    while len(clean) < repeat and len(every) < 4 * repeat:
        seconds, others = watched(measured)
        every.append(seconds)
        if others <= 0.1:
            clean.append(seconds)
    return min(clean or every), len(every) - len(clean)


def _scan_chunks(text: str) -> float:
    """Seconds to scan *text* a chunk at a time, as a worker of the command does."""
    started = time.perf_counter()
    for at in range(0, len(text), CHUNK_CHARS):
        chunk = text[at : at + CHUNK_CHARS]
        scan(chunk, max_chars=len(chunk) + 1, max_numbers=len(chunk) + 1)
    return time.perf_counter() - started


def _ceiling_worker(text: str, ready: Any, seconds: Any) -> None:
    _scan_chunks(text[:CHUNK_CHARS])  # the scanner's tables, not timed
    ready.wait()
    seconds.put(_scan_chunks(text))


def together(text: str, processes: int) -> float:
    """Seconds for *processes* processes, started at once, each to scan *text*: the
    slowest one's."""
    context = multiprocessing.get_context()
    ready = context.Barrier(processes)
    seconds = context.Queue()
    workers = [
        context.Process(target=_ceiling_worker, args=(text, ready, seconds))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    slowest = max(seconds.get(timeout=600) for _ in workers)  # a worker that died fails
    for worker in workers:
        worker.join()
    return slowest


def ceiling(text: str, counts: list[int], repeat: int) -> dict[str, object]:
    """The machine's ceiling for N processes scanning: see the module's docstring."""
    print(f"\nceiling: N processes scanning {len(text.encode()) / 1e6:.1f} MB each at once")
    print(f"{'N':>4} {'seconds':>8} {'speed-up':>8}")
    seconds: dict[int, float] = {}
    contended = 0
    for n in counts:
        seconds[n], set_aside = best(lambda n=n: together(text, n), repeat)
        contended += set_aside
        print(f"{n:4d} {seconds[n]:8.3f} {n * seconds[1] / seconds[n]:7.2f}x")
    if contended:
        print(f"{contended} runs set aside: other processes were busy")
    return {
        "mb": round(len(text.encode()) / 1e6, 1),
        "seconds": {str(n): round(s, 3) for n, s in seconds.items()},
        "ceiling_speedup": {str(n): round(n * seconds[1] / s, 3) for n, s in seconds.items()},
        "contended_runs": contended,
    }


def measure(
    name: str,
    target: Path,
    size: int,
    counts: list[int],
    repeat: int,
    startup: float,
    limit: dict[str, float],
    tmp: Path,
) -> dict[str, object]:
    """The command over *target* at each job count; *limit* is the ceiling's speed-ups."""
    print(f"\n{name}: {size / 1e6:.1f} MB")
    print(
        f"{'jobs':>4} {'seconds':>8} {'MB/s':>6} {'speed-up':>8} {'startup':>8} "
        f"{'rest':>6} {'serial':>7} {'of ceil.':>8}"
    )
    seconds: dict[int, float] = {}
    digests: dict[int, str] = {}
    findings = 0
    contended = 0
    for jobs in counts:
        output = tmp / f"{name}-{jobs}.jsonl"
        seconds[jobs], set_aside = best(lambda j=jobs, o=output: run(target, j, o), repeat)
        contended += set_aside
        data = output.read_bytes()
        digests[jobs] = hashlib.sha256(data).hexdigest()
        findings = data.count(b"\n")
        t1, tn = seconds[1], seconds[jobs]
        serial = "" if jobs == 1 else f"{(jobs * tn / t1 - 1) / (jobs - 1):7.0%}"
        rest = (t1 - startup) / (tn - startup)
        print(
            f"{jobs:4d} {tn:8.2f} {size / tn / 1e6:6.1f} {t1 / tn:7.2f}x "
            f"{startup / tn:8.0%} {rest:5.2f}x {serial:>7} {rest / limit[str(jobs)]:8.0%}"
        )
    scan_speedup = {j: (seconds[1] - startup) / (s - startup) for j, s in seconds.items()}
    identical = len(set(digests.values())) == 1
    if not identical:
        print(f"OUTPUT DIFFERS between job counts: {digests}")
    if contended:
        print(f"{contended} runs set aside: other processes were busy")
    return {
        "mb": round(size / 1e6, 1),
        "findings": findings,
        "seconds": {str(j): round(s, 3) for j, s in seconds.items()},
        "mb_per_s": {str(j): round(size / s / 1e6, 2) for j, s in seconds.items()},
        "speedup": {str(j): round(seconds[1] / s, 3) for j, s in seconds.items()},
        "startup_share": {str(j): round(startup / s, 3) for j, s in seconds.items()},
        "scan_speedup": {str(j): round(s, 3) for j, s in scan_speedup.items()},
        "of_ceiling": {str(j): round(s / limit[str(j)], 3) for j, s in scan_speedup.items()},
        "serial_fraction": {
            str(j): round((j * s / seconds[1] - 1) / (j - 1), 3)
            for j, s in seconds.items()
            if j > 1
        },
        "identical_output": identical,
        "contended_runs": contended,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="24 M characters per input, under a minute"
    )
    parser.add_argument("--files", type=int, default=16, help="files in the directory")
    parser.add_argument("--mb", type=float, help="characters per input, in millions")
    parser.add_argument("--repeat", type=int, default=3, help="runs per job count, best kept")
    parser.add_argument("--max-jobs", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--ceiling-mb", type=float, default=8.0, help="MB of the input each ceiling process scans"
    )
    args = parser.parse_args()
    chars = round((args.mb or (24.0 if args.quick else 128.0)) * 1e6)
    counts = list(range(1, args.max_jobs + 1))
    if args.quick:
        counts = sorted({*(2**i for i in range(args.max_jobs.bit_length())), args.max_jobs})
    # As an installed sovra starts: its modules byte-compiled once (pip compiles them at
    # install; an editable install run with PYTHONDONTWRITEBYTECODE set never would, and
    # would compile them again in every run).
    compileall.compile_dir(Path(sovra.__file__).parent, quiet=1)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="sovra-scan-scaling-") as name:
        tmp = Path(name)
        directory, single, size = make_inputs(tmp, args.files, chars)
        empty = tmp / "empty.txt"
        empty.write_bytes(b"")
        print(
            f"{os.cpu_count()} cores, load average {load_before:.2f}, "
            f"best of {args.repeat} runs per job count"
        )
        startup, _ = best(lambda: run(empty, 1, tmp / "empty.jsonl"), args.repeat)
        print(f"startup (scan of an empty file): {startup:.3f} s")
        text = single.read_bytes()[: round(args.ceiling_mb * 1e6)].decode(errors="ignore")
        limit = ceiling(text, counts, args.repeat)
        speedups: Any = limit["ceiling_speedup"]
        results = {
            "directory": measure(
                f"directory of {args.files} files",
                directory,
                size,
                counts,
                args.repeat,
                startup,
                speedups,
                tmp,
            ),
            "file": measure("one file", single, size, counts, args.repeat, startup, speedups, tmp),
        }
    load_after = os.getloadavg()[0]
    print(f"\nload average after: {load_after:.2f}")
    result = {
        "cpus": os.cpu_count(),
        "load_before": round(load_before, 2),
        "load_after": round(load_after, 2),
        "repeat": args.repeat,
        "files": args.files,
        "startup_s": round(startup, 3),
        "ceiling_speedup": speedups,
        "ceiling": limit,
        **results,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
