"""What synchronous witnessing (C2SP tlog-witness, one round trip per batch) costs the log.

    .venv/bin/python bench/witnessing.py [--quick]

- round trip: one add-checkpoint exchange with ``sovra witness serve`` on loopback (the
  witness verifies the log's signature and a consistency proof, fsyncs its state and
  cosigns), and with the aics witness (the independent implementation the tests use)
  where it is installed; median and p99 wall time, and the log side's CPU per round.
- rounds: a whole round of the log (``Witnessing``) to 1, 2 and 3 witnesses in
  parallel, a 2-of-3 policy for three; median and p99 per batch.
- appends: 16 threads appending single entries to a SQLite log (``sync="full"``,
  publication after each batch) with witnessing off and on (2 of 3 witnesses), in
  alternating rounds; entries per second, CPU per entry, and how many entries each
  witnessing round covered (rounds are group-committed like the batches).

The sovra witnesses are ``sovra witness serve`` processes on loopback ports (the aics
one runs in this process, so its figure includes its own work). The last line printed
is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sovra.ledger import NoteSigner, SQLiteLogStorage, TransparencyLog
from sovra.ledger.cosigning import CheckpointCosignatures, cosignature_store
from sovra.ledger.tlog_witness import WitnessClient
from sovra.ledger.witnessing import Witnessing
from sovra_verify.policy import WitnessPolicy

TAGS = ("rt", "rt-aics", "r1", "r2", "r3", "on-0", "on-1", "on-2", "off-0", "off-1", "off-2")
SIGNERS = {
    tag: NoteSigner(f"{tag}.bench.sovra.example/log", Ed25519PrivateKey.generate()) for tag in TAGS
}
"""One log per measurement: a witness holds each log's size, and every measurement
starts a new log at size 0."""


def _log(root: Path, tag: str, *, after: bool = False) -> TransparencyLog:
    signer = SIGNERS[tag]
    storage = SQLiteLogStorage(root / f"{tag}.db", sync="full")
    return TransparencyLog(storage, signer, signer.name, publish_after_batch=after)


def entry(i: int) -> bytes:
    return b'{"kind":"decision","effect":"allow","record":"rec-%08d","v":1}' % i


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def _ms(values: list[float]) -> dict[str, float]:
    return {
        "median_ms": round(statistics.median(values) * 1000, 3),
        "p99_ms": round(_p99(values) * 1000, 3),
    }


SOVRA = Path(sys.executable).with_name("sovra")


class _Served:
    """``sovra witness serve`` in a process of its own: its vkey and its URL."""

    def __init__(self, root: Path, n: int, stack: ExitStack) -> None:
        directory = root / f"witness-{n}"
        made = subprocess.run(
            [
                str(SOVRA),
                "witness",
                "init",
                str(directory),
                "--name",
                f"w{n}.bench.example",
                *(a for signer in SIGNERS.values() for a in ("--log", signer.vkey)),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        self.vkey = made.stdout.strip()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        sink = (root / f"witness-{n}.log").open("w")
        proc = subprocess.Popen(
            [str(SOVRA), "witness", "serve", str(directory), "--port", str(port)],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
        stack.callback(sink.close)
        stack.callback(proc.wait, 30)
        stack.callback(proc.terminate)
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{self.url}/{'0' * 64}/checkpoint", timeout=1)
                break
            except httpx.HTTPError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(
                        f"sovra witness serve did not start: {proc.returncode}"
                    ) from None
                time.sleep(0.1)


def round_trip(root: Path, url: str, vkey: str, count: int, tag: str) -> dict[str, float]:
    """add-checkpoint exchanges with one witness at *url*, each for a log grown by one."""
    log = _log(root, tag)
    client = WitnessClient(url, vkey, consistency=log.consistency_proof)
    walls: list[float] = []
    cpu = 0.0
    try:
        held = 0
        for i in range(count):
            log.append(entry(i))
            note = log.checkpoint()
            proof = log.consistency_proof(held, log.size) if held else []
            c0, w0 = time.process_time(), time.perf_counter()
            client.add_checkpoint(note, held, proof)
            walls.append(time.perf_counter() - w0)
            cpu += time.process_time() - c0
            held = log.size
    finally:
        client.close()
        log.close()
    return {**_ms(walls), "cpu_us_per_round": round(cpu / count * 1e6, 1)}


def _aics(root: Path, stack: ExitStack) -> tuple[str, str] | None:
    try:
        import aics_tlog.note as aics_note
        import aics_witness
    except ImportError:
        return None
    store = aics_witness.WitnessStore(root / "aics.db", create=True)
    signer = SIGNERS["rt-aics"]
    log = aics_witness.LogConfig(signer.name, (aics_note.parse_vkey(signer.vkey),))
    witness = aics_witness.Witness("aics.bench.example", Ed25519PrivateKey.generate(), store, [log])
    server = aics_witness.make_server(witness)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    stack.callback(server.server_close)
    stack.callback(server.shutdown)
    return server.url, witness.vkey_text


def _policy(witnesses: list[_Served], k: int) -> WitnessPolicy:
    lines = [f"witness W{n} {w.vkey} {w.url}" for n, w in enumerate(witnesses)]
    members = " ".join(f"W{n}" for n in range(len(witnesses)))
    return WitnessPolicy.parse("\n".join(lines) + f"\ngroup q {k} {members}\nquorum q\n")


def _witnessed_log(
    root: Path, tag: str, witnesses: list[_Served] | None, k: int
) -> tuple[TransparencyLog, Witnessing | None]:
    log = _log(root, tag, after=True)
    if not witnesses:
        return log, None
    policy = _policy(witnesses, k)
    cosignatures = CheckpointCosignatures(log, cosignature_store(log._storage), policy=policy)
    witnessing = Witnessing.from_policy(log, cosignatures, policy, timeout_s=5)
    log.after_append = witnessing.cover
    return log, witnessing


def rounds(root: Path, witnesses: list[_Served], k: int, count: int, tag: str) -> dict[str, float]:
    """Whole witnessing rounds: one single-entry batch each, *k* of the witnesses needed;
    the wall time of each, and the CPU of this process per round (the append, its
    checkpoint and the round, every thread of the process)."""
    log, witnessing = _witnessed_log(root, tag, witnesses, k)
    assert witnessing is not None
    walls: list[float] = []
    cpu = 0.0
    try:
        for i in range(count):
            w0, c0 = time.perf_counter(), time.process_time()
            log.append(entry(i))  # the batch, its checkpoint, and the round
            walls.append(time.perf_counter() - w0)
            cpu += time.process_time() - c0
    finally:
        witnessing.close()
        log.close()
    return {**_ms(walls), "cpu_us_per_round": round(cpu / count * 1e6, 1)}


def appends(root: Path, witnesses: list[_Served] | None, total: int, tag: str) -> dict[str, float]:
    """16 threads appending *total* single entries; entries per second and CPU each."""
    log, witnessing = _witnessed_log(root, tag, witnesses, 2)
    per = total // 16

    def work(t: int) -> None:
        for i in range(per):
            log.append(entry(t * per + i))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(16)]
    w0, c0 = time.perf_counter(), time.process_time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    out = {"per_s": round(per * 16 / wall, 1), "cpu_us_per_entry": round(cpu / (per * 16) * 1e6, 1)}
    if witnessing is not None:
        out["entries_per_round"] = round(per * 16 / max(1, witnessing.rounds), 1)
        assert witnessing.covered == per * 16
        witnessing.close()
    log.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    args = parser.parse_args()
    trips = 40 if args.quick else 300
    total = 800 if args.quick else 4000
    result: dict[str, object] = {
        "bench": "witnessing",
        "quick": args.quick,
        "python": platform.python_version(),
        "cores": os.cpu_count(),
    }
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        root = Path(tmp)
        witnesses = [_Served(root, n, stack) for n in range(3)]
        result["round_trip_sovra"] = round_trip(
            root, witnesses[0].url, witnesses[0].vkey, trips, "rt"
        )
        aics = _aics(root, stack)
        if aics is not None:
            result["round_trip_aics"] = round_trip(root, aics[0], aics[1], trips, "rt-aics")
        # Each log below is new (its own key and origin): witnesses start at size 0 for it.
        for n, k in ((1, 1), (2, 2), (3, 2)):
            result[f"round_{k}_of_{n}"] = rounds(root, witnesses[:n], k, trips, f"r{n}")
        off, on = [], []
        for r in range(2 if args.quick else 3):
            off.append(appends(root, None, total, f"off-{r}"))
            on.append(appends(root, witnesses, total, f"on-{r}"))
        result["appends_16_threads_off"] = _median_of(off)
        result["appends_16_threads_on_2_of_3"] = _median_of(on)
        result["on_over_off"] = round(
            result["appends_16_threads_on_2_of_3"]["per_s"]  # type: ignore[index]
            / result["appends_16_threads_off"]["per_s"],  # type: ignore[index]
            3,
        )
    print(json.dumps(result), flush=True)
    sys.exit(0)


def _median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: round(statistics.median(r[key] for r in runs), 1) for key in runs[0]}


if __name__ == "__main__":
    main()
