"""Witnessed release: what requiring witness cosignatures costs a release, beside none.

    .venv/bin/python bench/witnessed_release.py [--quick]

(also run by ``bench/keys.py``, whose summary carries its figures.)

Unwrap (``witnessed_unwrap_*``): an in-process custodian whose own policy requires 2 of 3
witnesses (C2SP tlog-cosignature, :mod:`sovra.keys.witnessed`), receipts from a real
``TransparencyLog``. The witnesses run in this process, each served over HTTP on loopback
(``sovra.server.witness``) and reached with ``WitnessClient`` (C2SP tlog-witness).
Decisions are logged 128 per batch; for each batch the gateway's
:class:`~sovra.release_proofs.ReleaseProofs` sends the log's checkpoint to the three
witnesses at once (one round trip, ``add-checkpoint`` with a consistency proof; the
round goes on once two have cosigned, the custodian's quorum), then one
key is released per decision, each against its tlog-proof. ``witnessed_unwrap_per_s``
counts keys per second with the round trips included; ``witnessed_unwrap_p99_ms`` is the
p99 of one unwrap call; ``witness_round_trip_ms_*`` the per-batch round trip; ``*_cpu_us``
the CPU of this process per key (logging, witnessing, serving the witnesses and
releasing). The same custodian without a policy is measured in the same rounds,
interleaved (``unwrap_unwitnessed_*``).

Gateway (``gateway_access_*``): three deployments made by ``sovra init --custodians
in-process``, identical but for the custodian's ``<J>.witnesses`` policy (2 of 3) and the
gateway's ``release_proofs``: none; witnesses as ``sovra witness serve`` processes on
loopback, as independent witnesses run (``gateway_access_*``); witnesses called directly in
this process (``*_inprocess_witnesses_*``); a round goes on once two of the three have
cosigned (the custodian's quorum). 16 threads call ``Gateway.access`` (one record
each) back to back, rounds alternating between the three; then ``Gateway.access_many``
with 1,000 requests a call. ``*_ratio`` is on / off (the target is at least 0.8),
``*_cpu_us`` the CPU of this process per access, ``*_per_round_trip`` how many accesses one
witness round trip served and ``*_round_trip_ms`` how long one took (the witnesses'
answer time: a ``sovra witness serve`` writes its state durably before it answers).

``gateway_access*_log_witnessing_*``: a fourth deployment whose log witnesses each batch
itself (``[witnesses] policy`` in ``sovra.toml``: the same three kinds of ``sovra witness
serve`` processes, 2 of 3) and whose custodian requires the same 2 of 3; the gateway hands
it proofs into the log's cosigned checkpoints (``ReleaseProofs.following``). Every append
waits for a round of the log, the key releases' too, so an access waits for two;
``*_per_round`` is accesses per round of the log.

The machine may be shared: compare the ratios, and the CPU per access, rather than the
rates. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from flow_costs import _threads as threads  # beside this file: the script's folder is on sys.path
from gateway import SOVRA
from sovra.deployment import Deployment
from sovra.errors import SovraError
from sovra.gateway import AccessRequest, IngestItem
from sovra.keys import LocalCustodian
from sovra.keys.witnessed import ReleasePolicy, policy_path
from sovra.ledger import CosignatureSigner, MemoryLogStorage, NoteSigner, TransparencyLog, Witness
from sovra.ledger.tlog_witness import WitnessClient
from sovra.model import Decision, RecordHeader, ReleaseAuthorization
from sovra.release_proofs import CheckpointWitness, ReleaseProofs
from sovra.server.witness import create_witness_app

ORIGIN = "bench.sovra/log"
BATCH = 128
SUBJECT = "ab" * 32
REQUESTER = "svc-bench"
PURPOSE = "customer-support"
RECORD = "Zgłoszenie: klient prosi o kopię umowy i historię płatności za ostatni rok."
THREADS = 16


def _witnesses(log_vkey: str, n: int = 3) -> list[Witness]:
    return [
        Witness(CosignatureSigner(f"bench.sovra/w{i}", Ed25519PrivateKey.generate()), [log_vkey])
        for i in range(n)
    ]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, alive: Any) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and alive():
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit(f"no witness answered on port {port}")


@contextmanager
def loopback_witnesses(
    log_vkey: str, consistency: Callable[[int, int], list[bytes]], n: int = 3
) -> Iterator[list[WitnessClient]]:
    """*n* witnesses served in this process (``create_witness_app``, uvicorn threads) and
    reached over loopback HTTP (C2SP tlog-witness) by ``WitnessClient``."""
    servers, clients = [], []
    try:
        for witness in _witnesses(log_vkey, n):
            port = _free_port()
            app = create_witness_app(witness)
            config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
            server = uvicorn.Server(config)
            thread = threading.Thread(target=server.run, daemon=True)
            thread.start()
            servers.append((server, thread))
            _wait_port(port, thread.is_alive)
            url = f"http://127.0.0.1:{port}"
            clients.append(WitnessClient(url, witness.vkey, consistency=consistency))
        yield clients
    finally:
        for client in clients:
            client.close()
        for server, thread in servers:
            server.should_exit = True
            thread.join(timeout=10)


@contextmanager
def witness_processes(
    tmp: Path, log_vkey: str, consistency: Callable[[int, int], list[bytes]], n: int = 3
) -> Iterator[list[WitnessClient]]:
    """*n* ``sovra witness serve`` processes on loopback, as independent witnesses run."""
    children, clients = [], []
    try:
        for i in range(n):
            folder = tmp / f"witness-{i}"
            name = f"bench.sovra/p{i}"
            run = [str(SOVRA), "witness"]
            subprocess.run(
                [*run, "init", str(folder), "--name", name, "--log", log_vkey],
                check=True,
                capture_output=True,
            )
            vkey = subprocess.run(
                [*run, "vkey", str(folder)], check=True, capture_output=True, text=True
            ).stdout.strip()
            port = _free_port()
            child = subprocess.Popen(
                [*run, "serve", str(folder), "--port", str(port)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            children.append(child)
            _wait_port(port, lambda c=child: c.poll() is None)
            url = f"http://127.0.0.1:{port}"
            clients.append(WitnessClient(url, vkey, consistency=consistency))
        yield clients
    finally:
        for client in clients:
            client.close()
        for child in children:
            child.terminate()
            child.wait(timeout=10)


def _no_proofs(old: int, new: int) -> list[bytes]:
    raise SystemExit("the bench's own witness clients send nothing for a log that witnesses")


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# -- one custodian, in process ----------------------------------------------------------------


class _Side:
    """A log, a custodian (with or without a witness policy) and its released keys."""

    def __init__(self, tmp: Path, name: str, log: TransparencyLog, log_key: Any) -> None:
        self.log = log
        self.proofs: ReleaseProofs | None = None
        self._tmp, self._name, self._log_key = tmp, name, log_key

    def witnessed_by(self, witnesses: list[Any] | None) -> _Side:
        """Open the custodian: with a 2-of-3 policy of *witnesses*, or none."""
        tmp, name, log_key = self._tmp, self._name, self._log_key
        policy = None
        if witnesses is not None:
            # The custodian's quorum: a round goes on once two of the three cosigned.
            self.proofs = ReleaseProofs(self.log, witnesses, quorum=2)
            policy = ReleasePolicy.of([w.vkey for w in witnesses], 2, 60)
        path = tmp / name / "PL.key"
        path.parent.mkdir()
        LocalCustodian.create(path, "PL", log_key.public_key()).close()
        self.custodian = LocalCustodian.open(path, "PL", log_key.public_key(), witnesses=policy)
        self.header = RecordHeader("r-bench", SUBJECT, "PL", "eu-central", 1)
        self.wrapped = self.custodian.wrap(os.urandom(32), self.header)
        self.latencies: list[float] = []
        self.trips: list[float] = []
        self.cpu = 0.0
        return self

    def decisions(self, n: int) -> list[ReleaseAuthorization]:
        now = int(time.time() * 1000)
        decided = [
            Decision(f"d-{i}", True, "bench", REQUESTER, PURPOSE, ("r-bench",), (SUBJECT,))
            for i in range(n)
        ]
        entries = [d.to_entry(now).to_bytes() for d in decided]
        receipts = self.log.append_many([(e, ()) for e in entries])
        return [
            ReleaseAuthorization.of(d, e, r)
            for d, e, r in zip(decided, entries, receipts, strict=True)
        ]

    def run(self, batches: int) -> tuple[int, float]:
        """Log and release *batches* x 128 decisions; keys released and wall seconds
        (the CPU seconds go to :attr:`cpu`)."""
        start, cpu = time.perf_counter(), _cpu_s()
        for _ in range(batches):
            allows = self.decisions(BATCH)
            if self.proofs is not None:
                t = time.perf_counter()
                allows = self.proofs.attach(allows)
                self.trips.append(time.perf_counter() - t)
            for allow in allows:
                t = time.perf_counter()
                self.custodian.unwrap(self.wrapped, self.header, allow, REQUESTER)
                self.latencies.append(time.perf_counter() - t)
        self.cpu = _cpu_s() - cpu
        return batches * BATCH, time.perf_counter() - start


def _new_log() -> tuple[TransparencyLog, Any]:
    log_key = Ed25519PrivateKey.generate()
    return TransparencyLog(MemoryLogStorage(), NoteSigner(ORIGIN, log_key), ORIGIN), log_key


def bench_unwrap(quick: bool) -> dict[str, Any]:
    rounds, batches = (3, 4) if quick else (6, 16)
    with tempfile.TemporaryDirectory(prefix="sovra-bench-witnessed-") as tmp:
        log, key = _new_log()
        off = _Side(Path(tmp), "off", *_new_log()).witnessed_by(None)
        with loopback_witnesses(log.verifier_key, log.consistency_proof) as witnesses:
            on = _Side(Path(tmp), "on", log, key).witnessed_by(list(witnesses))
            off.run(1), on.run(1)  # warm: caches, connections, first checkpoint
            off.latencies.clear(), on.latencies.clear(), on.trips.clear()
            best = {"off": 0.0, "on": 0.0}
            cpu_us = {"off": float("inf"), "on": float("inf")}
            for _ in range(rounds):
                for name, side in (("off", off), ("on", on)):
                    keys, seconds = side.run(batches)
                    best[name] = max(best[name], keys / seconds)
                    cpu_us[name] = min(cpu_us[name], side.cpu / keys * 1e6)
            assert on.proofs is not None
            on.proofs.close()
        out = {
            "witnessed_unwrap_per_s": round(best["on"]),
            "witnessed_unwrap_p99_ms": round(_p(on.latencies, 0.99) * 1e3, 3),
            "unwrap_unwitnessed_per_s": round(best["off"]),
            "unwrap_unwitnessed_p99_ms": round(_p(off.latencies, 0.99) * 1e3, 3),
            "witnessed_unwrap_ratio": round(best["on"] / best["off"], 3),
            "witnessed_unwrap_cpu_us": round(cpu_us["on"], 1),
            "unwrap_unwitnessed_cpu_us": round(cpu_us["off"], 1),
            "witness_round_trip_ms_p50": round(statistics.median(on.trips) * 1e3, 3),
            "witness_round_trip_ms_p99": round(_p(on.trips, 0.99) * 1e3, 3),
            "witness_round_trips": on.proofs.round_trips,
            "witnessed_decisions": len(on.latencies),
        }
        off.custodian.close(), on.custodian.close()
    print(
        f"unwrap, 2 of 3 witnesses on loopback HTTP: {out['witnessed_unwrap_per_s']:,}/s keys "
        f"(p99 {out['witnessed_unwrap_p99_ms']} ms) vs {out['unwrap_unwitnessed_per_s']:,}/s "
        f"without ({out['witnessed_unwrap_ratio']}x); CPU per key "
        f"{out['witnessed_unwrap_cpu_us']} us vs {out['unwrap_unwitnessed_cpu_us']} us (logging, "
        f"witnessing and the release); round trip per {BATCH} decisions p50 "
        f"{out['witness_round_trip_ms_p50']} ms, p99 {out['witness_round_trip_ms_p99']} ms",
        file=sys.stderr,
        flush=True,
    )
    return out


# -- the gateway, in process ------------------------------------------------------------------


class _Gateway:
    """A deployment; with *witnesses* ("objects", "processes"), its custodian requires 2
    of 3 witnesses and its gateway attaches proofs, the witnesses called directly in this
    process or ``sovra witness serve`` processes on loopback."""

    def __init__(self, root: Path, witnesses: str | None, stack: ExitStack) -> None:
        Deployment.init(root, jurisdictions=["PL"], custodians="in-process")
        self.proofs: ReleaseProofs | None = None
        found: list[CheckpointWitness] = []
        if witnesses == "log":
            self._log_witnessed(root, stack)
        elif witnesses is not None:
            dep = Deployment.open(root)
            vkey = dep.gateway.log.verifier_key
            dep.close()

            def consistency(old: int, new: int) -> list[bytes]:
                return self.gw.log.consistency_proof(old, new)

            if witnesses == "objects":
                made = _witnesses(vkey)
                keys = [w.vkey for w in made]
                found = list(made)
            else:
                clients = stack.enter_context(witness_processes(root.parent, vkey, consistency))
                keys = [c.vkey for c in clients]
                found = list(clients)
            policy = ReleasePolicy.of(keys, 2, 60)
            policy_path(root / "custodians" / "PL.key").write_bytes(policy.to_json())
        self.dep = Deployment.open(root)
        stack.callback(self.dep.close)
        self.gw = self.dep.gateway
        self.witnessing = self.dep.witnessing
        if found:
            self.proofs = self.gw.release_proofs = ReleaseProofs(self.gw.log, found, quorum=2)
            stack.callback(self.proofs.close)
        self.svc = self.dep.store.get_principal("svc-pl")
        done = self.gw.ingest_many(
            self.svc, [IngestItem(f"s-{i}", "PL", RECORD) for i in range(400)]
        )
        self.ids = [r.record_id for r in done if not isinstance(r, SovraError)]
        self.requests = [
            AccessRequest(PURPOSE, record_ids=[self.ids[i % len(self.ids)]]) for i in range(1000)
        ]
        self.check()

    def _log_witnessed(self, root: Path, stack: ExitStack) -> None:
        """The log witnesses each batch itself (``[witnesses] policy``, 2 of 3 ``sovra
        witness serve`` processes) and the custodian requires the same 2 of 3: the
        gateway hands it proofs into the log's cosigned checkpoints."""
        dep = Deployment.open(root)
        log = dep.gateway.log
        dep.close()
        clients = stack.enter_context(witness_processes(root.parent, log.verifier_key, _no_proofs))
        lines = [
            f"witness W{n} {c.vkey} {c.url.removesuffix('/add-checkpoint')}"
            for n, c in enumerate(clients)
        ]
        policy_text = "\n".join([*lines, "group q 2 W0 W1 W2", "quorum q"]) + "\n"
        (root / "witnesses.policy").write_text(policy_text)
        toml = (root / "sovra.toml").read_text()
        if "keys = []\n" not in toml:
            raise SystemExit("sovra init wrote no [witnesses] keys line to replace")
        policy_line = 'policy = "witnesses.policy"\ntimeout_s = 5\n'
        (root / "sovra.toml").write_text(toml.replace("keys = []\n", policy_line, 1))
        policy = ReleasePolicy.of([c.vkey for c in clients], 2, 60)
        policy_path(root / "custodians" / "PL.key").write_bytes(policy.to_json())

    def check(self) -> None:
        """One access must release (a refused one would make a fast, empty benchmark)."""
        got = self.gw.access_many(self.svc, self.requests[:5])
        bad = [r for r in got if isinstance(r, SovraError)]
        if bad:
            raise SystemExit(f"access refused: {bad[0].message}")

    def threaded(self, seconds: float) -> tuple[int, float, float]:
        def access(t: int, i: int) -> None:
            self.gw.access(self.svc, purpose=PURPOSE, record_ids=[self.ids[(t * 25 + i) % 400]])

        cpu, wall = _cpu_s(), time.perf_counter()
        done = threads(THREADS, seconds, access)
        return done, time.perf_counter() - wall, _cpu_s() - cpu

    def batched(self, calls: int) -> tuple[int, float, float]:
        cpu, wall = _cpu_s(), time.perf_counter()
        done = sum(
            not isinstance(r, SovraError)
            for _ in range(calls)
            for r in self.gw.access_many(self.svc, self.requests)
        )
        return done, time.perf_counter() - wall, _cpu_s() - cpu


def bench_gateway(quick: bool) -> dict[str, Any]:
    rounds, seconds, calls = (2, 1.5, 1) if quick else (4, 5.0, 3)
    out: dict[str, Any] = {}
    with (
        tempfile.TemporaryDirectory(prefix="sovra-bench-witnessed-gw-") as tmp,
        ExitStack() as stack,
    ):
        base = Path(tmp)
        for name in ("off", "on", "objects", "log"):
            (base / name).mkdir()
        sides = {
            "off": _Gateway(base / "off" / "dep", None, stack),
            # As deployed: witnesses are other parties, here processes of their own.
            "on": _Gateway(base / "on" / "dep", "processes", stack),
            # Every witness's work in this process too.
            "objects": _Gateway(base / "objects" / "dep", "objects", stack),
            # The log's own witnessing (its rounds also cover the key releases' appends).
            "log": _Gateway(base / "log" / "dep", "log", stack),
        }
        for phase in ("threaded", "batched"):
            rate = dict.fromkeys(sides, 0.0)
            cpu_us = dict.fromkeys(sides, float("inf"))
            witnessed = dict.fromkeys(sides, 0)
            trips = {n: s.proofs.round_trips for n, s in sides.items() if s.proofs}
            waited = {n: s.proofs.round_seconds for n, s in sides.items() if s.proofs}
            log_rounds = _log_rounds(sides["log"])
            for _ in range(rounds):
                for name, side in sides.items():
                    done, wall, cpu = (
                        side.threaded(seconds) if phase == "threaded" else side.batched(calls)
                    )
                    rate[name] = max(rate[name], done / wall)
                    cpu_us[name] = min(cpu_us[name], cpu / max(done, 1) * 1e6)
                    witnessed[name] += done
            prefix = "gateway_access" if phase == "threaded" else "gateway_access_many"
            for name in ("on", "objects"):
                proofs = sides[name].proofs
                assert proofs is not None
                sent = max(proofs.round_trips - trips[name], 1)
                tag = "" if name == "on" else "_inprocess_witnesses"
                out[f"{prefix}{tag}_per_round_trip"] = round(witnessed[name] / sent, 1)
                out[f"{prefix}{tag}_round_trip_ms"] = round(
                    (proofs.round_seconds - waited[name]) / sent * 1e3, 2
                )
                out[f"{prefix}{tag}_on_per_s"] = round(rate[name])
                out[f"{prefix}{tag}_ratio"] = round(rate[name] / rate["off"], 3)
                out[f"{prefix}{tag}_on_cpu_us"] = round(cpu_us[name], 1)
            ran = max(_log_rounds(sides["log"]) - log_rounds, 1)
            out[f"{prefix}_log_witnessing_per_round"] = round(witnessed["log"] / ran, 1)
            out[f"{prefix}_log_witnessing_on_per_s"] = round(rate["log"])
            out[f"{prefix}_log_witnessing_ratio"] = round(rate["log"] / rate["off"], 3)
            out[f"{prefix}_log_witnessing_on_cpu_us"] = round(cpu_us["log"], 1)
            out[f"{prefix}_off_per_s"] = round(rate["off"])
            out[f"{prefix}_off_cpu_us"] = round(cpu_us["off"], 1)
            for tag, what in (("", "witness processes"), ("_inprocess_witnesses", "in process")):
                print(
                    f"{prefix}, witnesses {what}: {out[f'{prefix}{tag}_on_per_s']:,}/s "
                    f"({out[f'{prefix}{tag}_on_cpu_us']} us CPU here each) vs "
                    f"{out[f'{prefix}_off_per_s']:,}/s ({out[f'{prefix}_off_cpu_us']} us) "
                    f"without: {out[f'{prefix}{tag}_ratio']}x; "
                    f"{out[f'{prefix}{tag}_per_round_trip']} accesses per round trip of "
                    f"{out[f'{prefix}{tag}_round_trip_ms']} ms",
                    file=sys.stderr,
                    flush=True,
                )
            print(
                f"{prefix}, the log's own witnessing (witness processes): "
                f"{out[f'{prefix}_log_witnessing_on_per_s']:,}/s "
                f"({out[f'{prefix}_log_witnessing_on_cpu_us']} us CPU here each): "
                f"{out[f'{prefix}_log_witnessing_ratio']}x; "
                f"{out[f'{prefix}_log_witnessing_per_round']} accesses per round of the log",
                file=sys.stderr,
                flush=True,
            )
    return out


def _log_rounds(side: _Gateway) -> int:
    """How many rounds the log's own witnessing of *side* has run."""
    assert side.witnessing is not None
    return side.witnessing.rounds


WITNESSED_SUMMARY = (
    "witnessed_unwrap_per_s",
    "witnessed_unwrap_p99_ms",
    "unwrap_unwitnessed_per_s",
    "witnessed_unwrap_cpu_us",
    "unwrap_unwitnessed_cpu_us",
    "witness_round_trip_ms_p50",
    "witness_round_trip_ms_p99",
    "gateway_access_ratio",
    "gateway_access_on_cpu_us",
    "gateway_access_off_cpu_us",
    "gateway_access_inprocess_witnesses_ratio",
)
"""The figures ``bench/keys.py`` puts in its summary line (all of them go in its detail)."""


def bench_witnessed_release(quick: bool) -> dict[str, Any]:
    """Every figure of this file, for ``bench/keys.py``'s summary."""
    return bench_unwrap(quick) | bench_gateway(quick)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs (under a minute)")
    args = parser.parse_args()
    started = time.perf_counter()
    figures = bench_witnessed_release(args.quick)
    figures |= {"quick": args.quick, "seconds": round(time.perf_counter() - started, 1)}
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
