"""Where the time of one ingest and one access goes, stage by stage, on this machine.

    .venv/bin/python bench/request_costs.py [--quick] [--rounds N] [--no-http]

One throwaway deployment (in-process custodians, SQLite, files) is opened, and each flow
is taken apart into the calls the gateway and the HTTP edge make for one request, in
their order, on fresh data each round: the token check (signature, claims, the replay
store's insert), the JSON body (the edge's bounded parse, then the direct route's model
check), the policy decision, the scanner, minimisation, the seal, the custodian's wrap and
unwrap (the unwrap checks the logged allow's receipt), the log appends, the metadata row,
the blob, and the response's encoding (orjson, as the direct routes answer). Each stage
is timed on its own around the one call; a round's stages run back to back, as in the
gateway, and the figure per stage is the median over the rounds (the machine is shared,
so medians, not means), in wall-clock time and in CPU time (the calling thread's; a
stage that waits on fsync shows far less CPU than wall clock, and CPU is what a core can
serve). Beside them: the whole request measured end to end in the same rounds (each
round takes one request apart, then makes it whole in-process with ``Gateway.ingest``
/ ``Gateway.access``, then over HTTP with the Python client against uvicorn on loopback,
so all three see the machine alike); what the stages do not account for is shown as
"other" (the client signing its token, framework, server loop, glue between stages).

The log append is shown at batch size 1 (one caller at a time: one fsync per entry) and
amortised per entry in batches of 64 (``append_many``: what group commit can reach).
JSON parse and encode are also shown with ``json``, ``orjson`` and ``model.parse_json``
side by side, and the scanner's CPU per scan with the CPU's caches warm, between a
decision and a minimisation (as the batched ingest stages each item), and cold. The last
line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import orjson
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from sovra import classify
from sovra.auth import make_token
from sovra.client import Client
from sovra.deployment import Deployment
from sovra.keys import open_blob, seal
from sovra.model import (
    MAX_JSON_DEPTH,
    Finding,
    LogEntry,
    RecordHeader,
    RecordMeta,
    ReleaseAuthorization,
    parse_json,
)
from sovra.policy import GrantFacts, RecordFacts, Target
from sovra.server import create_app
from sovra.server.answers import JSONBytes
from sovra.server.background import running
from sovra.server.bodies import AccessBody, IngestBody

RECORD = (
    "Zgłoszenie {i}: klientka prosi o zmianę adresu dostawy, tel. +48 601 234 567, "
    "PESEL 44051401359, e-mail klient{i}@example.pl. Uwagi: paczka ma być zostawiona u "
    "sąsiada pod numerem 5, jeśli nikogo nie będzie w domu; kontakt po godzinie 17:00."
)
PURPOSE = "customer-support"
BATCH = 64


class Stages:
    """Per-stage samples, in microseconds of wall clock and of CPU, in the order the
    stages first ran. CPU is the calling thread's (``time.thread_time``) for a stage, and
    the process's (``time.process_time``: the in-process server's threads too) for a whole
    request over HTTP."""

    def __init__(self, cpu: Callable[[], float] = time.thread_time) -> None:
        self.samples: dict[str, list[tuple[float, float]]] = {}
        self._cpu = cpu

    def time(self, stage: str, call: Callable[[], Any]) -> Any:
        start, cpu = time.perf_counter(), self._cpu()
        result = call()
        self.add(stage, (time.perf_counter() - start) * 1e6, (self._cpu() - cpu) * 1e6)
        return result

    def add(self, stage: str, wall_us: float, cpu_us: float) -> None:
        self.samples.setdefault(stage, []).append((wall_us, cpu_us))

    def medians(self) -> dict[str, tuple[float, float]]:
        return {
            stage: (statistics.median(w for w, _ in s), statistics.median(c for _, c in s))
            for stage, s in self.samples.items()
        }


def _open(root: Path) -> Deployment:
    Deployment.init(root, jurisdictions=["PL"], origin="bench.sovra/log", custodians="in-process")
    return Deployment.open(root)


def _lift_bulk_limits(dep: Deployment) -> None:
    # The benchmark reads many distinct subjects: lift the guard's caps so that it measures
    # the cost of deciding, not the guard's refusals.
    limits = dep.gateway.decisions.guard.limits
    dep.gateway.decisions.guard.limits = type(limits)(
        **{**{f: getattr(limits, f) for f in limits.__dataclass_fields__}}
        | {"window_limit": 10**9, "jurisdiction_limit": 10**9}
    )


def _token(dep: Deployment, method: str, path: str, body: bytes) -> str:
    key = dep.principal_key("svc-pl")
    return make_token(key, "svc-pl", method, path, body, now_s=int(time.time()))


def _body(stages: Stages, dep: Deployment, path: str, body: bytes, model: Any) -> Any:
    """What the HTTP edge does with a request body before the route runs."""
    token = _token(dep, "POST", path, body)
    principal = stages.time(
        "token check", lambda: dep.authenticator.authenticate(token, "POST", path, body)
    )
    limit = dep.config.max_body_bytes
    value = stages.time(
        "JSON body: bounded parse",
        lambda: parse_json(body, limit=limit, what="request body", max_depth=MAX_JSON_DEPTH),
    )
    # The direct routes check the parsed body against the route's model; nothing parses
    # it again.
    parsed = stages.time("JSON body: model (direct route)", lambda: model.model_validate(value))
    return principal, parsed


def _respond(stages: Stages, content: dict[str, Any]) -> None:
    # As the direct routes answer: the route's dict encoded once by orjson.
    stages.time("response encoding", lambda: JSONBytes(content))


def ingest_dissected(dep: Deployment, stages: Stages, i: int) -> tuple[RecordMeta, str]:
    """One ingest, as the HTTP edge and the gateway make it, one stage at a time."""
    gw = dep.gateway
    content = RECORD.format(i=i)
    body = json.dumps(
        {"subject_id": f"dissected-{i}", "jurisdiction": "PL", "content": content}
    ).encode()
    principal, parsed = _body(stages, dep, "/v1/records", body, IngestBody)
    rules = gw.config.jurisdiction(parsed.jurisdiction)
    subject = gw.commitment(parsed.jurisdiction, parsed.subject_id)
    plan = rules.rules_for(None)
    target = Target(
        jurisdiction=parsed.jurisdiction,
        subjects=(subject,),
        scan_required=any(a == "refuse" for a in rules.minimisation.values()),
    )
    decision = stages.time(
        "policy decision", lambda: gw.decisions.decide_action(principal, "ingest", target)
    )
    assert decision.allow, decision.reason
    custodian = gw.custodians["PL"]
    header = RecordHeader(
        record_id="r-" + uuid.uuid4().hex,
        subject=subject,
        jurisdiction="PL",
        region=rules.regions[0],
        kek_version=custodian.current_kek_version,
    )
    findings = stages.time("scanner", lambda: classify.scan(parsed.content))
    actions = {k: classify.Action(v) for k, v in plan.items()}
    protecting = Stages()

    def protect(items: Any) -> list[str]:
        bodies: list[str] = protecting.time(
            "protect",
            lambda: custodian.protect(header, items),  # type: ignore[attr-defined]
        )
        return bodies

    start, cpu = time.perf_counter(), time.thread_time()
    minimised = classify.minimise(parsed.content, findings, actions, protect=protect)
    wall_us, cpu_us = (time.perf_counter() - start) * 1e6, (time.thread_time() - cpu) * 1e6
    spent = protecting.samples.get("protect", [(0.0, 0.0)])
    protect_wall, protect_cpu = sum(w for w, _ in spent), sum(c for _, c in spent)
    stages.add("custodian protect (tokenize/seal values)", protect_wall, protect_cpu)
    stages.add("minimise", wall_us - protect_wall, cpu_us - protect_cpu)
    blob, data_key = stages.time("seal (AES-GCM)", lambda: seal(header, minimised.text.encode()))
    wrapped = stages.time("custodian wrap", lambda: custodian.wrap(data_key, header))
    now = int(time.time() * 1000)
    meta = RecordMeta(
        header=header,
        wrapped_key=wrapped,
        blob_size=len(blob),
        created_ms=now,
        findings=dict(minimised.counts),
        actions=dict(minimised.actions),
    )
    entry = LogEntry(
        kind="ingest",
        time_ms=now,
        principal=principal.id,
        fields={
            "record": header.record_id,
            "subject": subject,
            "jurisdiction": "PL",
            "region": header.region,
            "blob_sha256": hashlib.sha256(blob).hexdigest(),
            "kinds": dict(minimised.counts),
            "actions": dict(minimised.actions),
        },
    )
    stages.time("metadata insert (SQLite)", lambda: gw.store.put_record(meta))
    stages.time("blob write", lambda: gw.blobs[header.region].put(header.record_id, blob))
    data = entry.to_bytes()
    receipt = stages.time("log append", lambda: gw.log.append(data, [subject]))
    stages.time(
        "metadata: row made visible (SQLite)",
        lambda: gw.store.set_record_log_index(header.record_id, receipt.index),
    )
    _respond(
        stages,
        {
            "record_id": header.record_id,
            "region": header.region,
            "log_index": receipt.index,
            "receipt": receipt.to_dict(),
            "findings": dict(minimised.counts),
            "actions": dict(minimised.actions),
        },
    )
    return gw.store.get_record(header.record_id), blob.hex()


def access_dissected(dep: Deployment, stages: Stages, record_id: str) -> None:
    """One access of one record by its own jurisdiction's service, one stage at a time."""
    gw = dep.gateway
    body = json.dumps({"purpose": PURPOSE, "record_ids": [record_id]}).encode()
    principal, parsed = _body(stages, dep, "/v1/access", body, AccessBody)
    metas = stages.time(
        "metadata read (SQLite)", lambda: [gw.store.get_record(r) for r in parsed.record_ids]
    )
    facts = [RecordFacts.of(m) for m in metas]
    decision = stages.time(
        "policy decision",
        lambda: gw.decisions.decide(principal, PURPOSE, facts, GrantFacts.none()),
    )
    assert decision.allow, decision.reason
    entry = decision.to_entry(int(time.time() * 1000)).to_bytes()
    tags = [*decision.subjects, f"decision:{decision.decision_id}"]
    receipt = stages.time("log append: decision", lambda: gw.log.append(entry, tags))
    authorization = ReleaseAuthorization.of(decision, entry, receipt)
    custodian = gw.custodians["PL"]
    items = [(m.wrapped_key, m.header) for m in metas]
    keys = stages.time(
        "custodian unwrap (receipt check)",
        lambda: custodian.unwrap_many(items, authorization, principal.id),
    )
    release = LogEntry(
        kind="key_release",
        time_ms=int(time.time() * 1000),
        principal=principal.id,
        fields={"decision_id": decision.decision_id, "decision_index": receipt.index},
    ).to_bytes()
    stages.time("log append: key release", lambda: gw.log.append(release, decision.subjects))
    blobs = stages.time(
        "blob read", lambda: [gw.blobs[m.header.region].get(m.header.record_id) for m in metas]
    )
    records = stages.time(
        "open (AES-GCM)",
        lambda: {
            m.header.record_id: open_blob(m.header, b, k).decode()
            for m, b, k in zip(metas, blobs, keys, strict=True)
        },
    )
    _respond(
        stages,
        {
            "decision": {"decision_id": decision.decision_id, "effect": "allow"},
            "log_index": receipt.index,
            "decision_receipt": receipt.to_dict(),
            "release_receipt": receipt.to_dict(),
            "records": records,
        },
    )


def log_amortised(dep: Deployment, rounds: int) -> float:
    """Microseconds per entry of ``append_many`` with :data:`BATCH` entries."""
    log = dep.gateway.log
    samples = []
    for r in range(max(3, rounds // BATCH)):
        items = [
            (
                LogEntry(
                    kind="ingest",
                    time_ms=int(time.time() * 1000),
                    principal="svc-pl",
                    fields={"record": f"r-{r}-{k}", "n": uuid.uuid4().hex},
                ).to_bytes(),
                [uuid.uuid4().hex],
            )
            for k in range(BATCH)
        ]
        start = time.perf_counter()
        log.append_many(items)
        samples.append((time.perf_counter() - start) * 1e6 / BATCH)
    return statistics.median(samples)


def scanner_contexts(dep: Deployment, rounds: int) -> dict[str, float]:
    """CPU microseconds of one scan of the record, median, with the CPU's caches in three
    states: one scan after another; between an ingest decision and a minimisation, as the
    batched ingest stages each item; after 8 MiB of other memory traffic (every cache line
    of a buffer written), as after a request's storage steps."""
    gw = dep.gateway
    svc = dep.store.get_principal("svc-pl")
    plan = gw.config.jurisdiction("PL").rules_for(None)
    actions = {k: classify.Action(v) for k, v in plan.items()}
    texts = [RECORD.format(i=i) for i in range(2 * rounds)]
    traffic = bytearray(8 << 20)
    ones = b"\x01" * len(traffic[::64])

    def decide(i: int) -> None:
        target = Target(jurisdiction="PL", subjects=(f"scan-{i}",))
        gw.decisions.decide_action(svc, "ingest", target)

    def flush() -> None:
        traffic[::64] = ones

    def scan(name: str, text: str) -> list[Finding]:
        start = time.thread_time()
        findings = classify.scan(text)
        samples.setdefault(name, []).append((time.thread_time() - start) * 1e6)
        return findings

    # Round-robin over the three states, record by record, so all see the machine alike.
    samples: dict[str, list[float]] = {}
    for i, text in enumerate(texts):
        classify.scan(texts[i - 1])
        scan("one scan after another", text)
        decide(i)
        findings = scan("between a decision and a minimisation", text)
        classify.minimise(text, findings, actions, protect=lambda items: ["x"] * len(items))
        flush()
        scan("after 8 MiB of other memory traffic", text)
    return {name: statistics.median(s) for name, s in samples.items()}


def decisions(dep: Deployment, rounds: int) -> dict[str, float]:
    """CPU microseconds of one policy decision in a tight loop (memo warm, the bulk guard
    included), best of 3 passes: the ingest authorization and a read of one record by its
    own jurisdiction's service, each for a subject never seen before."""
    gw = dep.gateway
    svc = dep.store.get_principal("svc-pl")
    n = 4 * rounds
    subjects = [os.urandom(16).hex() for _ in range(6 * n)]
    now = time.time()
    kinds = frozenset({"phone", "email", "pl_pesel"})
    calls: dict[str, Callable[[int], Any]] = {
        "ingest authorization": lambda i: gw.decisions.decide_action(
            svc, "ingest", Target(jurisdiction="PL", subjects=(subjects[i],))
        ),
        "read of one record": lambda i: gw.decisions.decide(
            svc,
            PURPOSE,
            [RecordFacts("r-" + subjects[i], subjects[i], "PL", kinds, "eu-central", now)],
            GrantFacts.none(),
        ),
    }
    out = {}
    used = 0
    for name, call in calls.items():
        best = float("inf")
        for _ in range(3):
            start = time.thread_time()
            for i in range(used, used + n):
                call(i)
            best = min(best, (time.thread_time() - start) / n)
            used += n
        out[name] = best * 1e6
    return out


def json_variants(rounds: int) -> dict[str, float]:
    """One ingest body parsed, and one receipt encoded, with each library."""
    body = json.dumps(
        {"subject_id": "subject-1", "jurisdiction": "PL", "content": RECORD.format(i=1)}
    ).encode()
    receipt = {
        "record_id": "r-" + uuid.uuid4().hex,
        "region": "eu-central",
        "log_index": 123456,
        "receipt": {"index": 123456, "size": 123457, "signature": "A" * 88, "key": "B" * 44},
        "findings": {"phone": 1, "pl_pesel": 1, "email": 1},
        "actions": {"phone": "tokenize", "pl_pesel": "seal", "email": "redact"},
    }
    calls: dict[str, Callable[[], Any]] = {
        "parse: json.loads": lambda: json.loads(body),
        "parse: orjson.loads": lambda: orjson.loads(body),
        "parse: model.parse_json (bounded)": lambda: parse_json(
            body, limit=1 << 20, what="body", max_depth=MAX_JSON_DEPTH
        ),
        "parse: pydantic model_validate_json": lambda: IngestBody.model_validate_json(body),
        "encode: json.dumps": lambda: json.dumps(receipt).encode(),
        "encode: orjson.dumps": lambda: orjson.dumps(receipt),
        "encode: jsonable_encoder + JSONResponse": lambda: JSONResponse(jsonable_encoder(receipt)),
    }
    out = {}
    n = max(200, rounds * 4)
    for name, call in calls.items():
        best = float("inf")
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(n):
                call()
            best = min(best, (time.perf_counter() - start) / n)
        out[name] = best * 1e6
    return out


def measure(
    dep: Deployment, rounds: int, client: Client | None
) -> tuple[Stages, Stages, dict[str, tuple[float, float]]]:
    """Each round: one request taken apart, then the same request whole, in-process and
    (with *client*) over HTTP, so that all three see the machine in the same state."""
    gw = dep.gateway
    svc = dep.store.get_principal("svc-pl")
    ingest, access, whole = Stages(), Stages(), Stages(cpu=time.process_time)
    ids = []
    for i in range(rounds):
        ids.append(ingest_dissected(dep, ingest, i)[0].header.record_id)
        whole.time(
            "ingest in-process",
            partial(gw.ingest, svc, subject_id=f"w-{i}", jurisdiction="PL", content=RECORD),
        )
        if client is not None:
            whole.time("ingest over HTTP", partial(client.ingest, f"h-{i}", "PL", RECORD))
    for rid in ids:
        access_dissected(dep, access, rid)
        whole.time("access in-process", partial(gw.access, svc, purpose=PURPOSE, record_ids=[rid]))
        if client is not None:
            whole.time("access over HTTP", partial(client.access, PURPOSE, record_ids=[rid]))
    return ingest, access, whole.medians()


def _table(
    title: str, stages: dict[str, tuple[float, float]], whole: dict[str, tuple[float, float]]
) -> list[str]:
    """A Markdown table: stage, wall-clock and CPU microseconds, share of the request's
    wall-clock time measured end to end."""
    total = (whole.get("over HTTP") or whole["in-process"])[0]
    basis = "HTTP request" if "over HTTP" in whole else "in-process request"
    lines = [
        f"{title}:",
        "",
        f"| stage | wall us | CPU us | share of the {basis} |",
        "|---|---:|---:|---:|",
    ]
    for stage, (wall, cpu) in sorted(stages.items(), key=lambda kv: -kv[1][0]):
        lines.append(f"| {stage} | {wall:.1f} | {cpu:.1f} | {wall / total:.1%} |")
    wall = sum(w for w, _ in stages.values())
    cpu = sum(c for _, c in stages.values())
    lines.append(f"| sum of the stages | {wall:.1f} | {cpu:.1f} | {wall / total:.1%} |")
    other = total - wall
    lines.append(
        f"| other (client, framework, server loop, glue) | {other:.1f} | | {other / total:.1%} |"
    )
    lines += [f"| whole request, {name} | {w:.1f} | {c:.1f} | |" for name, (w, c) in whole.items()]
    return [*lines, ""]


def heap_collection(app: object) -> dict[str, float]:
    """CPU of one full garbage collection with the application built (best of 3), and
    after :func:`gc.freeze` as a ``sovra serve`` worker does before serving; how many
    objects start-up left. *app* is held so that what it references stays alive."""

    def best() -> float:
        times = []
        for _ in range(3):
            start = time.process_time()
            gc.collect()
            times.append(time.process_time() - start)
        return 1e3 * min(times)

    gc.collect()
    figures = {"objects": float(len(gc.get_objects())), "full collection": best()}
    gc.freeze()
    try:
        figures["full collection, start-up heap frozen"] = best()
    finally:
        gc.unfreeze()
    assert app is not None
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small run, under a minute")
    parser.add_argument("--rounds", type=int, default=None, help="requests per measurement")
    parser.add_argument("--no-http", action="store_true", help="skip the HTTP measurement")
    args = parser.parse_args()
    rounds = args.rounds or (200 if args.quick else 2000)
    with tempfile.TemporaryDirectory(prefix="sovra-costs-") as tmp:
        dep = _open(Path(tmp) / "deployment")
        try:
            _lift_bulk_limits(dep)
            for i in range(20):  # warm: imports, caches, the pack's first evaluations
                meta, _ = ingest_dissected(dep, Stages(), -1 - i)
                access_dissected(dep, Stages(), meta.header.record_id)
            heap = heap_collection(app := create_app(dep))
            if args.no_http:
                ingest, access, whole = measure(dep, rounds, None)
            else:
                with (
                    running(app) as url,
                    Client(url, "svc-pl", dep.principal_key("svc-pl")) as client,
                ):
                    ingest, access, whole = measure(dep, rounds, client)
            amortised = log_amortised(dep, rounds)
            scanning = scanner_contexts(dep, rounds)
            deciding = decisions(dep, rounds)
        finally:
            dep.close()
    variants = json_variants(rounds)
    ingest_stages, access_stages = ingest.medians(), access.medians()
    whole_i = {k.split(" ", 1)[1]: v for k, v in whole.items() if k.startswith("ingest")}
    whole_a = {k.split(" ", 1)[1]: v for k, v in whole.items() if k.startswith("access")}
    lines = [
        f"Where the time of one request goes ({rounds} requests per figure, medians, one "
        "caller at a time, so every log append is a batch of one)",
        "",
        *_table("Ingest", ingest_stages, whole_i),
        *_table("Access (one record, by its own jurisdiction's service)", access_stages, whole_a),
        f"Log append amortised per entry in batches of {BATCH}: {amortised:.1f} us "
        f"(a batch of one: {ingest_stages['log append'][0]:.1f} us).",
        "",
        "The scanner on the record, CPU per scan (median), by the state of the caches:",
        "",
        "| scans run | CPU us |",
        "|---|---:|",
        *(f"| {name} | {us:.1f} |" for name, us in scanning.items()),
        "",
        "The policy decision in a tight loop, CPU per decision (best of 3):",
        "",
        "| decision | CPU us |",
        "|---|---:|",
        *(f"| {name} | {us:.1f} |" for name, us in deciding.items()),
        "",
        f"A worker's heap after start-up ({heap['objects']:.0f} objects), CPU of one full "
        "garbage collection (best of 3):",
        "",
        "| heap | CPU ms |",
        "|---|---:|",
        *(f"| {name} | {ms:.2f} |" for name, ms in heap.items() if name != "objects"),
        "",
        "JSON, one ingest body parsed and one receipt encoded (best of 5):",
        "",
        "| call | us |",
        "|---|---:|",
        *(f"| {name} | {us:.1f} |" for name, us in variants.items()),
    ]
    print("\n".join(lines))
    figures = {
        "rounds": rounds,
        "ingest_us": {k: round(v[0], 1) for k, v in ingest_stages.items()},
        "ingest_cpu_us": {k: round(v[1], 1) for k, v in ingest_stages.items()},
        "access_us": {k: round(v[0], 1) for k, v in access_stages.items()},
        "access_cpu_us": {k: round(v[1], 1) for k, v in access_stages.items()},
        "ingest_whole_us": {k: round(v[0], 1) for k, v in whole_i.items()},
        "ingest_whole_cpu_us": {k: round(v[1], 1) for k, v in whole_i.items()},
        "access_whole_us": {k: round(v[0], 1) for k, v in whole_a.items()},
        "access_whole_cpu_us": {k: round(v[1], 1) for k, v in whole_a.items()},
        "log_append_batch1_us": round(ingest_stages["log append"][0], 1),
        f"log_append_batch{BATCH}_us_per_entry": round(amortised, 1),
        "scanner_cpu_us": {k: round(v, 1) for k, v in scanning.items()},
        "decision_cpu_us": {k: round(v, 1) for k, v in deciding.items()},
        "json_us": {k: round(v, 2) for k, v in variants.items()},
        "heap_collection": {k: round(v, 2) for k, v in heap.items()},
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
