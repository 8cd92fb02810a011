"""The crash campaign: kill -9 a real gateway under HTTP load, restart it, check everything.

    .venv/bin/python bench/crash.py [--quick] [--kills N] [--clients N] [--batchers N]
        [--seed S]

Over a fresh ``sovra init`` deployment, each round starts ``sovra serve`` (its own process
group, a free loopback port), lets client threads ingest and read records over HTTP
(:class:`sovra.client.Client`) for a random while, then SIGKILLs the whole process group
mid-load. Most clients send one record a request (the gateway gathers concurrent ones into
one batch: group commit); ``--batchers`` of them send batches of :data:`BATCH` records
(``POST /v1/records/batch``, ``Gateway.ingest_many``), so kills land mid-batch both ways; a
record of a batch counts as promised once its own result has come back. The gateway
restarts (its start-up check settles what the kill left), and with the clients stopped the
round checks, against the restarted gateway and the files:

- every receipt a client got is in the log (same leaf hash at the promised index) and its
  record reads back over HTTP with the content that was sent;
- no record is readable without its ingest entry: each row whose entry is not in the log
  is asked for over HTTP and must be a 404, and no visible row points at another entry;
- no log index is reused (by two receipts or two rows);
- ``sovra log verify`` (after publishing a checkpoint) and ``sovra check`` exit 0.

``--quick``: 6 kills (under a minute on 2 cores). Default: 200 kills. The last line
printed is one JSON object with every figure; the exit code is 1 if any count that must be
zero is not.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sovra.client import Client
from sovra.errors import NotFound, SovraError
from sovra.keys import load_ed25519
from sovra.model import LogEntry

SOVRA = Path(sys.executable).parent / "sovra"
JURISDICTIONS = ("PL", "VN")
SUBJECTS = 24  # per jurisdiction: few enough that no bulk limit is reached by honest reads
READ_CHUNK = 20
BATCH = 25  # records per batch request of a batching client


@dataclass(frozen=True)
class Receipt:
    record_id: str
    index: int
    leaf_hash: str
    jurisdiction: str
    subject: str
    content: str


@dataclass
class Tally:
    kills: int = 0
    receipts: int = 0
    receipts_lost: int = 0
    readable_without_entry: int = 0
    reused_indices: int = 0
    log_verify_failures: int = 0
    check_failures: int = 0
    checks_incomplete: int = 0  # subject keys out of this user's reach
    left_pending_by_kills: int = 0
    completed_at_start_up: int = 0
    hidden_at_start_up: int = 0
    reads: int = 0
    refusals_under_load: int = 0
    failures: list[str] = field(default_factory=list)

    def fail(self, what: str) -> None:
        self.failures.append(what)
        print(f"  FAILED: {what}", file=sys.stderr)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(*args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=timeout, check=False
    )


class Gateway:
    """``sovra serve`` in its own process group, killed as a whole."""

    def __init__(self, root: Path, logs: Path) -> None:
        self.root = root
        self.logs = logs
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.starts = 0

    def start(self) -> None:
        port = _free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.starts += 1
        with (self.logs / f"serve-{self.starts}.log").open("wb") as out:
            self.proc = subprocess.Popen(
                [str(SOVRA), "serve", str(self.root), "--port", str(port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own process group: kill -9 takes all of it
            )
        deadline = time.monotonic() + 120
        with Client(self.url, timeout=2) as probe:
            while True:
                if self.proc.poll() is not None:
                    raise SystemExit(f"sovra serve exited with {self.proc.returncode}")
                try:
                    probe.checkpoint()
                except SovraError:
                    if time.monotonic() > deadline:
                        raise SystemExit("sovra serve did not answer within 120 s") from None
                    time.sleep(0.05)
                else:
                    return

    def kill(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.kill()


def _client(gw: Gateway, principal: str) -> Client:
    key = load_ed25519(gw.root / "principals" / f"{principal}.key")
    return Client(gw.url, principal, key, timeout=10)


def _load(
    gw: Gateway,
    seed: int,
    stop: threading.Event,
    got: list[Receipt],
    tally: Tally,
    *,
    batching: bool = False,
) -> None:
    """One client: ingest a record (or a batch of :data:`BATCH`), read one of its own now
    and then, until the kill."""
    rng = random.Random(seed)
    j = rng.choice(JURISDICTIONS)
    mine: list[Receipt] = []
    with _client(gw, f"svc-{j.lower()}") as client:
        while not stop.is_set():
            records = []
            for _ in range(BATCH if batching else 1):
                subject = f"s{rng.randrange(SUBJECTS)}@example.{j.lower()}"
                content = f"note {seed} {len(mine) + len(records)} {rng.getrandbits(64):x}"
                records.append({"subject_id": subject, "jurisdiction": j, "content": content})
            try:
                if mine and rng.random() < 0.4:
                    r = rng.choice(mine)
                    client.access("customer-support", record_ids=[r.record_id])
                    continue
                if batching:
                    # Each result counts as it streams back: a kill mid-batch leaves the
                    # records answered before it promised, and the rest not.
                    results = client.ingest_many(records, window=1)
                    for record, result in zip(records, results, strict=False):
                        if isinstance(result, SovraError):
                            tally.refusals_under_load += 1
                        else:
                            mine.append(_receipt(result, record))
                            got.append(mine[-1])
                    continue
                body = client.ingest(records[0]["subject_id"], j, records[0]["content"])
            except SovraError as exc:
                if exc.__class__.__name__ == "Unavailable":
                    return  # the gateway is gone: what was not answered was never promised
                tally.refusals_under_load += 1
                continue
            mine.append(_receipt(body, records[0]))
            got.append(mine[-1])


def _receipt(body: dict[str, object], record: dict[str, str]) -> Receipt:
    receipt = body["receipt"]
    assert isinstance(receipt, dict)
    return Receipt(
        str(body["record_id"]),
        int(receipt["index"]),
        str(receipt["leaf_hash"]),
        record["jurisdiction"],
        record["subject_id"],
        record["content"],
    )


@contextmanager
def _rows(root: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(f"file:{root / 'sovra.db'}?mode=ro", uri=True, timeout=30)
    try:
        yield conn
    finally:
        conn.close()


def _row_states(root: Path) -> dict[str, int]:
    with _rows(root) as conn:
        return dict(conn.execute("SELECT record_id, log_index FROM records").fetchall())


class Ledger:
    """What the log says, read over HTTP as any auditor would, kept up to date."""

    def __init__(self) -> None:
        self.size = 0
        self.ingests: dict[str, int] = {}
        self.leaves: dict[int, str] = {}

    def update(self, client: Client) -> None:
        client.checkpoint()  # publish one, so log verify covers everything
        size = int(client.checkpoint().split("\n")[1])
        while self.size < size:
            end = min(size, self.size + 1000)
            for offset, data in enumerate(client.entries(self.size, end)):
                index = self.size + offset
                self.leaves[index] = _leaf_hex(data)
                entry = LogEntry.from_bytes(data)
                if entry.kind == "ingest":
                    self.ingests[str(entry.fields["record"])] = index
            self.size = end


def _leaf_hex(data: bytes) -> str:
    return hashlib.sha256(b"\x00" + data).hexdigest()


def _receipt_leaf(value: str) -> str:
    """A receipt's leaf hash as hex, whether the API sends hex or base64."""
    if len(value) == 64:
        return value
    import base64

    return base64.b64decode(value).hex()


def _verify(
    gw: Gateway,
    ledger: Ledger,
    fresh: list[Receipt],
    promised: dict[int, str],
    vkey: str,
    tally: Tally,
) -> None:
    """Everything the round must leave true, checked against the restarted gateway."""
    with Client(gw.url, timeout=30) as public:
        ledger.update(public)
    # Receipts: in the log at their index, readable, never an index twice.
    for r in fresh:
        leaf = _receipt_leaf(r.leaf_hash)
        if promised.setdefault(r.index, r.record_id) != r.record_id:
            tally.reused_indices += 1
            tally.fail(f"log index {r.index} promised to two records")
        if ledger.leaves.get(r.index) != leaf or ledger.ingests.get(r.record_id) != r.index:
            tally.receipts_lost += 1
            tally.fail(f"receipt for {r.record_id} at {r.index} is not in the log")
    for j in JURISDICTIONS:
        mine = [r for r in fresh if r.jurisdiction == j]
        with _client(gw, f"authority-{j.lower()}") as authority:
            for start in range(0, len(mine), READ_CHUNK):
                chunk = mine[start : start + READ_CHUNK]
                try:
                    got = authority.access(
                        "domestic-legal-process",
                        record_ids=[r.record_id for r in chunk],
                        justification="domestic-legal-process",
                    )["records"]
                except SovraError as exc:
                    tally.receipts_lost += len(chunk)
                    tally.fail(f"receipted records not readable: {exc.diagnostics()}")
                    continue
                tally.reads += len(chunk)
                for r in chunk:
                    if got.get(r.record_id) != r.content:
                        tally.receipts_lost += 1
                        tally.fail(f"record {r.record_id} reads back wrong")
    # Rows: none visible without its entry; every row without an entry is a 404.
    rows = _row_states(gw.root)
    seen: dict[int, str] = {}
    for rid, index in rows.items():
        if index >= 0:
            if seen.setdefault(index, rid) != rid:
                tally.reused_indices += 1
                tally.fail(f"rows {rid} and {seen[index]} share log index {index}")
            if ledger.ingests.get(rid) != index:
                tally.readable_without_entry += 1
                tally.fail(f"row {rid} is visible at {index} without its ingest entry there")
    unlogged = [rid for rid in rows if rid not in ledger.ingests]
    with _client(gw, "authority-pl") as authority:
        for rid in unlogged:
            try:
                authority.access(
                    "domestic-legal-process",
                    record_ids=[rid],
                    justification="domestic-legal-process",
                )
            except NotFound:
                continue
            except SovraError as exc:
                tally.fail(f"reading unlogged {rid}: {exc.diagnostics()}")
                continue
            tally.readable_without_entry += 1
            tally.fail(f"record {rid} was served without an ingest entry")
    verify = _run(SOVRA, "log", "verify", "--url", gw.url, "--vkey", vkey)
    if verify.returncode != 0:
        tally.log_verify_failures += 1
        tally.fail(f"sovra log verify: {verify.stderr.strip() or verify.stdout.strip()}")
    check = _run(SOVRA, "check", "-d", gw.root, "--json")
    if check.returncode != 0:
        tally.check_failures += 1
        tally.fail(f"sovra check exit {check.returncode}: {check.stdout[-2000:]}")
    elif json.loads(check.stdout)["not_checked"]:
        tally.checks_incomplete += 1


def campaign(kills: int, clients: int, batchers: int, seed: int, work: Path) -> dict[str, object]:
    root = work / "deployment"
    init = _run(SOVRA, "init", root, "--jurisdictions", ",".join(JURISDICTIONS))
    if init.returncode != 0:
        raise SystemExit(f"sovra init failed: {init.stderr}")
    logs = work / "logs"
    logs.mkdir()
    rng = random.Random(seed)
    tally = Tally()
    ledger = Ledger()
    promised: dict[int, str] = {}
    gw = Gateway(root, logs)
    gw.start()
    with Client(gw.url) as public:
        vkey = public.verifier_key()
    started = time.monotonic()
    try:
        for n in range(kills):
            stop = threading.Event()
            fresh: list[Receipt] = []
            threads = [
                threading.Thread(
                    target=_load,
                    args=(gw, rng.getrandbits(32), stop, fresh, tally),
                    kwargs={"batching": c < batchers},
                    daemon=True,
                )
                for c in range(clients)
            ]
            for t in threads:
                t.start()
            # Kill under load: at a random moment after the round's first promise.
            deadline = time.monotonic() + 120
            while not fresh and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(rng.uniform(0.05, 1.2))
            gw.kill()
            tally.kills += 1
            stop.set()
            for t in threads:
                t.join(timeout=60)
            before = _row_states(root)
            pending = {rid for rid, index in before.items() if index == -1}
            tally.left_pending_by_kills += len(pending)
            gw.start()
            after = _row_states(root)
            tally.completed_at_start_up += sum(after.get(rid, -1) >= 0 for rid in pending)
            tally.hidden_at_start_up += sum(after.get(rid, -1) < 0 for rid in pending)
            tally.receipts += len(fresh)
            _verify(gw, ledger, fresh, promised, vkey, tally)
            print(
                f"kill {n + 1}/{kills}: {len(fresh)} receipts, {len(pending)} rows left "
                f"pending, log {ledger.size}, problems {len(tally.failures)}",
                file=sys.stderr,
                flush=True,
            )
    finally:
        gw.stop()
    elapsed = time.monotonic() - started
    return {
        "bench": "crash",
        "kills": tally.kills,
        "clients": clients,
        "batching_clients": batchers,
        "seed": seed,
        "receipts": tally.receipts,
        "receipts_lost": tally.receipts_lost,
        "readable_without_entry": tally.readable_without_entry,
        "reused_indices": tally.reused_indices,
        "log_verify_failures": tally.log_verify_failures,
        "check_failures": tally.check_failures,
        "checks_without_subject_keys": tally.checks_incomplete,
        "rows_left_pending_by_kills": tally.left_pending_by_kills,
        "completed_from_log_at_start_up": tally.completed_at_start_up,
        "hidden_at_start_up": tally.hidden_at_start_up,
        "receipted_records_read_back": tally.reads,
        "refusals_under_load": tally.refusals_under_load,
        "log_size": ledger.size,
        "elapsed_s": round(elapsed, 1),
        "failures": tally.failures[:20],
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="6 kills")
    parser.add_argument("--kills", type=int, default=None, help="default 200 (6 with --quick)")
    parser.add_argument("--clients", type=int, default=4, help="client threads")
    parser.add_argument(
        "--batchers", type=int, default=1, help=f"of them, clients sending {BATCH} a request"
    )
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--keep", type=Path, default=None, help="work here and keep it")
    args = parser.parse_args()
    # A plain kill of the campaign still takes its gateway down (the finally below).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    kills = args.kills if args.kills is not None else (6 if args.quick else 200)
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=False)
        result = campaign(kills, args.clients, args.batchers, args.seed, args.keep)
    else:
        with tempfile.TemporaryDirectory(prefix="sovra-crash-") as tmp:
            result = campaign(kills, args.clients, args.batchers, args.seed, Path(tmp))
    print(json.dumps(result))
    zero = (
        "receipts_lost",
        "readable_without_entry",
        "reused_indices",
        "log_verify_failures",
        "check_failures",
    )
    if any(result[k] for k in zero):
        sys.exit(1)


if __name__ == "__main__":
    main()
