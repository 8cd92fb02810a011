"""Two processes appending to one SQLite log at once (two ``sovra serve`` workers).

The database's write transaction is the one sequencer: each process's log assigns the
indices that the transaction gives it, and catches up on the leaves the other appended
before it extends its own tree. The result must be one dense log in which every receipt
either process handed out is at its index with its leaf, and every checkpoint either
published is signed, reproduced by the entries and a prefix of the same tree.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sovra.ledger import NoteSigner, SQLiteLogStorage, TransparencyLog, audit, verify_checkpoint

ORIGIN = "two.sovra.example/log"
SEED = bytes(range(32))
PER_PROCESS = 150

APPENDER = r"""
import sys, threading
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sovra.ledger import NoteSigner, SQLiteLogStorage, TransparencyLog

path, name, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
origin = "two.sovra.example/log"
signer = NoteSigner(origin, Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
log = TransparencyLog(SQLiteLogStorage(path), signer, origin, publish_after_batch=True)
sys.stdin.readline()  # start together
out, lock = [], threading.Lock()

def work(t):
    for n in range(t, count, 3):
        entries = [b'{"w":"%s","n":%d,"b":%d}' % (name.encode(), n, b) for b in range(2)]
        if n % 5 == 4:  # a batch of two now and then
            got = log.append_many([(e, ()) for e in entries])
        else:
            entries = entries[:1]
            got = [log.append(entries[0])]
        with lock:
            out.extend(zip(entries, got))
        if n % 7 == 0:
            log.checkpoint()

threads = [threading.Thread(target=work, args=(t,)) for t in range(3)]
for t in threads: t.start()
for t in threads: t.join()
for entry, r in out:
    r.verify(signer.public_key, entry)
    print(r.index, r.leaf_hash.hex())
log.close()
"""


def test_two_processes_append_one_dense_log_whose_checkpoints_all_verify(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    SQLiteLogStorage(path).close()  # created once, before the two race to open it
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", APPENDER, str(path), name, str(PER_PROCESS)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b")
    ]
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    receipts: dict[int, str] = {}
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        for line in out.splitlines():
            index, leaf = line.split()
            assert int(index) not in receipts, f"index {index} handed out twice"
            receipts[int(index)] = leaf
    per_process = PER_PROCESS + PER_PROCESS // 5  # every fifth append is a batch of two
    assert sorted(receipts) == list(range(2 * per_process))  # dense: no gap, no repeat

    signer = NoteSigner(ORIGIN, Ed25519PrivateKey.from_private_bytes(SEED))
    log = TransparencyLog(SQLiteLogStorage(path), signer, ORIGIN)
    try:
        assert log.size == len(receipts)
        stored = log.leaf_hashes(0, log.size)
        assert [h.hex() for h in stored] == [receipts[i] for i in range(log.size)]
        notes = log.checkpoints()
        assert len(notes) > 2
        sizes = [verify_checkpoint(n, log.verifier_key).size for n in notes]
        assert sizes == sorted(sizes)
        report = audit(log.iter_entries(), notes, log.verifier_key, origin=ORIGIN)
        report.check()
        assert report.verified_size == max(sizes)
    finally:
        log.close()
