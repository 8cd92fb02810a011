"""Crash safety: SIGKILL an appending process mid-batch, many times, then check the log.

After every kill and restart: every entry the log promised (a receipt was handed out)
is present with the promised leaf hash, no index was handed out twice, the stored tree
reproduces every checkpoint ever published, and an audit of the whole log passes.
"""

from __future__ import annotations

import base64
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from sovra.ledger import NoteSigner, SQLiteLogStorage, TransparencyLog, audit, verify_checkpoint

ORIGIN = "crash.sovra.example/log"

APPENDER = r"""
import base64, os, random, sys, threading
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sovra.ledger import NoteSigner, SQLiteLogStorage, TransparencyLog

path, seed, run, sync = sys.argv[1], bytes.fromhex(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
origin = "crash.sovra.example/log"
log = TransparencyLog(
    SQLiteLogStorage(path, sync=sync),
    NoteSigner(origin, Ed25519PrivateKey.from_private_bytes(seed)),
    origin,
)
rng = random.Random(run)
lock = threading.Lock()

def emit(text):
    # os.write until done: a pipe may take part of a large write, and nothing may be lost.
    data = text.encode()
    with lock:
        while data:
            data = data[os.write(1, data):]

emit("ready\n")

def promised(receipts):
    emit("".join(f"r {r.index} {r.leaf_hash.hex()}\n" for r in receipts))

def single(k):
    for j in range(10**9):
        promised([log.append(f"run {run} thread {k} entry {j}".encode() * 3, [f"t{k}"])])

for k in range(2):
    threading.Thread(target=single, args=(k,), daemon=True).start()
n = 0
while True:
    size = rng.randint(1, 300)
    items = [
        (f"run {run} batch entry {n + i}".encode() * 5, [f"s{(n + i) % 7}"]) for i in range(size)
    ]
    n += size
    promised(log.append_many(items))
    if rng.random() < 0.3:
        emit("c " + base64.b64encode(log.checkpoint().encode()).decode() + "\n")
"""


def _run_and_kill(path: Path, seed: bytes, run: int, sync: str, rng: random.Random) -> list[str]:
    # Unbuffered: readline() below must not read past its line. communicate() reads the
    # pipe's descriptor directly, so bytes a buffered reader had already pulled in would
    # be skipped, and the line they began would come back as its tail alone (a bare hex
    # leaf hash): more likely the busier the machine, as more output waits in the pipe.
    child = subprocess.Popen(
        [sys.executable, "-c", APPENDER, str(path), seed.hex(), str(run), sync],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        bufsize=0,
    )
    assert child.stdout is not None
    first = child.stdout.readline()
    if first != b"ready\n":
        child.kill()
        raise AssertionError(f"appender did not start: {first!r} {child.stderr.read()!r}")  # type: ignore[union-attr]
    # Kill only once appending is under way, after a random while.
    started = child.stdout.readline()
    time.sleep(rng.uniform(0.02, 0.25))
    child.send_signal(signal.SIGKILL)
    rest, _ = child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL
    # A line cut by the kill was never a complete promise.
    return (started + rest).decode().split("\n")[:-1]


@pytest.mark.parametrize("rounds", [10])
def test_killed_appenders_lose_no_promise_and_reuse_no_index(tmp_path: Path, rounds: int) -> None:
    key = Ed25519PrivateKey.generate()
    seed = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    signer = NoteSigner(ORIGIN, key)
    path = tmp_path / "log.db"
    rng = random.Random(2026)
    promises: dict[int, str] = {}
    notes: list[str] = []
    for run in range(rounds):
        sync = "checkpoint" if run % 2 else "full"
        for line in _run_and_kill(path, seed, run, sync, rng):
            kind, *fields = line.split(" ")
            if kind == "r":
                index, leaf = int(fields[0]), fields[1]
                assert promises.setdefault(index, leaf) == leaf, f"index {index} promised twice"
            else:
                assert kind == "c" and len(fields) == 1, f"unexpected line {line!r}"
                notes.append(base64.b64decode(fields[0]).decode())
        # Reopening checks the stored leaves against the latest checkpoint.
        log = TransparencyLog(SQLiteLogStorage(path), signer, ORIGIN)
        size = log.size
        assert max(promises, default=-1) < size
        for start in range(0, size, 5000):
            stored = log.leaf_hashes(start, min(size, start + 5000))
            for offset, leaf in enumerate(stored):
                expected = promises.get(start + offset)
                assert expected is None or expected == leaf.hex(), f"entry {start + offset} changed"
        for note in notes:
            cp = verify_checkpoint(note, signer.vkey)
            assert cp.size <= size and log.root(cp.size) == cp.root_hash
        log.close()
    assert len(promises) >= 20 * rounds, "the appenders should have promised many entries"
    assert len(notes) >= 2, "the appenders should have published checkpoints"
    log = TransparencyLog(SQLiteLogStorage(path), signer, ORIGIN)
    audit(log.iter_entries(), [*log.checkpoints(), log.checkpoint()], signer.vkey).check()
    log.close()
