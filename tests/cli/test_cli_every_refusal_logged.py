"""Every route and every command that acts on the gateway, with every role: each refusal
(403, exit 1 "denied") has its deny entry in the log, and each allow of a governance action
is logged too, naming the rule that allowed it.

A real uvicorn server on loopback serves a deployment whose ``max_records_per_request`` is
3, so that a selection over the cap is walked as well. The table of routes must name every
route of the OpenAPI spec: a new route fails here until it says how it is decided.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from sovra.auth import make_token
from sovra.client import Client
from sovra.deployment import Deployment
from sovra.keys import transport
from sovra.model import Grant, LogEntry, Role
from sovra.policy import Envelope, shipped_bundle, sign_grant, sign_pack
from sovra.server import create_app
from sovra.server.background import running

ANNA = "anna@example.pl"
LIMIT = 3
ROLES = {
    "svc-pl": "service",
    "svc-vn": "foreign service",
    "authority-pl": "home authority",
    "authority-us": "foreign authority",
    "operator": "operator",
    "auditor": "auditor",
    "analyst-pl": "analyst",
    "subject-anna": "subject",
}
EVERYONE = frozenset(ROLES)
OVERSIGHT = frozenset({"operator", "authority-pl", "authority-us", "auditor"})


@dataclass
class Walk:
    """The served deployment, the data the walk reads, and fresh-object factories."""

    url: str
    root: Path
    dep: Deployment
    http: httpx.Client
    anna_record: str
    sealed_record: str
    decision_id: str
    versions: Iterator[int]
    grants: Iterator[int]

    def principal(self, pid: str) -> Any:
        return self.dep.store.get_principal(pid)

    def call(self, who: str | None, method: str, path: str, body: Any = None) -> httpx.Response:
        data = b"" if body is None else json.dumps(body).encode()
        headers = {"content-type": "application/json"}
        if isinstance(body, Lines):  # a batch: one JSON object per line
            data = b"".join(json.dumps(line).encode() + b"\n" for line in body)
            headers["content-type"] = "application/x-ndjson"
        if who is not None:
            key = self.dep.principal_key(who)
            token = make_token(key, who, method, path, data, now_s=int(time.time()))
            headers["authorization"] = f"Sovra {token}"
        return self.http.request(method, path, content=data, headers=headers)

    def entry(self, index: int) -> LogEntry:
        log = self.dep.gateway.log
        if index >= log.size:  # appended by another process's deployment (`keys shred`)
            again = Deployment.open(self.root)
            try:
                return LogEntry.from_bytes(again.gateway.log.entry(index))
            finally:
                again.close()
        return LogEntry.from_bytes(log.entry(index))

    def new_grant(self, *, registered: bool = False, signed: bool = True) -> Grant:
        now = int(time.time())
        grant = Grant(
            grant_id=f"g-walk-{next(self.grants)}",
            grantee="authority-us",
            grantee_jurisdiction="US",
            approver="PL",
            subjects=(ANNA,),
            purpose="foreign-legal-process",
            legal_basis="MLA 2026/7",
            not_before=now - 60,
            not_after=now + 86400,
        )
        if not signed:
            return grant
        grant = sign_grant(grant, self.dep.authority_key("PL"))
        if registered:
            r = self.call("authority-pl", "POST", "/v1/grants", json.loads(grant.to_json()))
            assert r.status_code == 201, r.text
        return grant

    def new_pack(self) -> Envelope:
        bundle = replace(shipped_bundle("gdsi"), version=next(self.versions))
        envelope = Envelope.wrap(bundle)
        for j in ("PL", "DE", "VN"):
            envelope = sign_pack(envelope, j, self.dep.authority_key(j))
        return envelope


@pytest.fixture(scope="module")
def walk(template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Walk]:
    root = tmp_path_factory.mktemp("walk") / "deployment"
    shutil.copytree(template, root)
    config = root / "sovra.toml"
    config.write_text(
        config.read_text().replace(
            "max_records_per_request = 10000", f"max_records_per_request = {LIMIT}"
        )
    )
    dep = Deployment.open(root)  # the wall clock, as the command's tokens use
    try:
        dep.register("subject-anna", "PL", Role.SUBJECT, subject=dep.gateway.commitment("PL", ANNA))
        dep.register("analyst-pl", "PL", Role.ANALYST)
        svc = dep.store.get_principal("svc-pl")
        ingest = dep.gateway.ingest
        anna = ingest(svc, subject_id=ANNA, jurisdiction="PL", content="Anna, +48 601 234 567")
        for i in range(LIMIT):  # PL now holds LIMIT + 1 records
            ingest(svc, subject_id=f"p{i}@example.pl", jurisdiction="PL", content=f"note {i}")
        decision = dep.gateway.access(svc, purpose="customer-support", record_ids=[anna.record_id])
        with running(create_app(dep)) as url, httpx.Client(base_url=url, timeout=60) as http:
            with Client(url, "svc-pl", dep.principal_key("svc-pl")) as client:
                sealed = client.ingest_sealed(ANNA, "PL", b"sealed on the client")["record_id"]
            yield Walk(
                url,
                root,
                dep,
                http,
                anna.record_id,
                sealed,
                decision.decision.decision_id,
                itertools.count(2),
                itertools.count(1),
            )
    finally:
        dep.close()


# -- the routes ----------------------------------------------------------------------------

Request = tuple[str, Any]  # path, JSON body (None: no body)


class Lines(list[Any]):
    """The body of a batch route: each item is sent as one JSON line."""


def _outcome(r: httpx.Response) -> tuple[int, Any]:
    """The status and JSON body of an answer; of a one-line batch, its line's."""
    if r.status_code != 200 or not r.headers["content-type"].startswith("application/x-ndjson"):
        return r.status_code, r.json() if r.content else None
    (line, summary) = [json.loads(x) for x in r.text.splitlines()]
    assert summary["summary"]["lines"] == 1
    return line["status"], line.get("error", line.get("result"))


@dataclass(frozen=True)
class Route:
    """How a route is walked: its request per role, the action that decides it, and (for
    governance) which roles the shipped pack allows."""

    request: Callable[[Walk, str], Request]
    action: str
    allowed: frozenset[str] | None = None  # None: access, decided per record


def _sealed_record(w: Walk, who: str) -> Request:
    # Prepared for the service, so that only the ingest decision differs between roles.
    prepared = w.dep.gateway.prepare_sealed(
        w.principal("svc-pl"), subject_id=ANNA, jurisdiction="PL"
    )
    blob, envelope = transport.seal_record(prepared.header, b"sealed here", prepared.custodian_key)
    b64 = base64.b64encode
    return "/v1/sealed/records", {
        "header": b64(prepared.header.to_bytes()).decode(),
        "expires_ms": prepared.expires_ms,
        "ticket": prepared.ticket,
        "blob": b64(blob).decode(),
        "key_envelope": b64(envelope).decode(),
    }


def _recipient() -> str:
    return base64.b64encode(transport.public_bytes(transport.new_recipient())).decode()


ROUTES: dict[tuple[str, str], Route | str] = {
    ("POST", "/v1/records"): Route(
        lambda w, who: (
            "/v1/records",
            {"subject_id": ANNA, "jurisdiction": "PL", "content": "walked"},
        ),
        "ingest",
        frozenset({"svc-pl", "svc-vn", "operator"}),
    ),
    ("POST", "/v1/access"): Route(
        lambda w, who: (
            "/v1/access",
            {"purpose": "customer-support", "record_ids": [w.anna_record]},
        ),
        "read",
    ),
    ("POST", "/v1/records/batch"): Route(
        lambda w, who: (
            "/v1/records/batch",
            Lines([{"subject_id": ANNA, "jurisdiction": "PL", "content": "walked in a batch"}]),
        ),
        "ingest",
        frozenset({"svc-pl", "svc-vn", "operator"}),
    ),
    ("POST", "/v1/access/batch"): Route(
        lambda w, who: (
            "/v1/access/batch",
            Lines([{"purpose": "customer-support", "record_ids": [w.anna_record]}]),
        ),
        "read",
    ),
    ("POST", "/v1/grants"): Route(
        lambda w, who: ("/v1/grants", json.loads(w.new_grant().to_json())),
        "register-grant",
        EVERYONE,
    ),
    ("GET", "/v1/grants/{grant_id}"): Route(
        lambda w, who: (f"/v1/grants/{w.new_grant(registered=True).grant_id}", None),
        "view-grant",
        frozenset({"authority-us", "authority-pl", "operator", "auditor"}),
    ),
    ("POST", "/v1/grants/{grant_id}/revoke"): Route(
        lambda w, who: (f"/v1/grants/{w.new_grant(registered=True).grant_id}/revoke", None),
        "revoke-grant",
        frozenset({"authority-pl"}),
    ),
    ("POST", "/v1/subjects/report"): Route(
        lambda w, who: ("/v1/subjects/report", {"jurisdiction": "PL", "subject_id": ANNA}),
        "report",
        frozenset({"subject-anna", "authority-pl"}),
    ),
    # Erasure of a subject no other step reads (a new one per call, so Anna's records stay
    # readable for the rest of the walk): her home authority may; Anna, who is not that
    # subject, may not. The subject erasing herself: tests/server/test_server_erasure.py.
    ("POST", "/v1/subjects/erase"): Route(
        lambda w, who: (
            "/v1/subjects/erase",
            {"jurisdiction": "PL", "subject_id": f"erased-{next(w.grants)}@example.pl"},
        ),
        "shred",
        frozenset({"authority-pl"}),
    ),
    ("GET", "/v1/decisions/{decision_id}/explain"): Route(
        lambda w, who: (f"/v1/decisions/{w.decision_id}/explain", None), "explain", EVERYONE
    ),
    ("GET", "/v1/policy"): "authenticated, not an authorization: the active pack is public",
    ("POST", "/v1/policy/activate"): Route(
        lambda w, who: ("/v1/policy/activate", json.loads(w.new_pack().to_json())),
        "activate-policy",
        frozenset({"operator", "authority-pl", "authority-us"}),
    ),
    ("GET", "/v1/policy/reviews"): Route(
        lambda w, who: ("/v1/policy/reviews", None), "view-reviews", OVERSIGHT
    ),
    ("GET", "/v1/policy/alerts"): Route(
        lambda w, who: ("/v1/policy/alerts", None), "view-alerts", OVERSIGHT
    ),
    ("GET", "/v1/policy/metrics"): "public: counts only",
    ("GET", "/v1/sealed/custodians"): "public: transport keys",
    ("POST", "/v1/sealed/prepare"): Route(
        lambda w, who: ("/v1/sealed/prepare", {"subject_id": ANNA, "jurisdiction": "PL"}),
        "ingest",
        frozenset({"svc-pl", "svc-vn", "operator"}),
    ),
    ("POST", "/v1/sealed/records"): Route(_sealed_record, "ingest"),
    ("POST", "/v1/sealed/access"): Route(
        lambda w, who: (
            "/v1/sealed/access",
            {
                "purpose": "customer-support",
                "record_ids": [w.sealed_record],
                "recipient": _recipient(),
            },
        ),
        "read",
    ),
    ("GET", "/v1/log/tile/{path}"): "public: the log",
    ("GET", "/v1/log/checkpoint"): "public: the log",
    ("GET", "/v1/log/checkpoint/cosigned"): "public: the log",
    # A witness proves itself by its signature, not as a principal; its refusals are not
    # logged, so that an anonymous caller cannot grow the log.
    ("POST", "/v1/log/cosignatures"): "public: witnesses' cosignatures",
    ("GET", "/v1/log/key"): "public: the log",
    ("GET", "/v1/log/checkpoints"): "public: the log",
    ("GET", "/v1/log/entries"): "public: the log",
    ("GET", "/v1/log/proof/inclusion"): "public: the log",
    ("GET", "/v1/log/proof/consistency"): "public: the log",
    ("GET", "/v1/info"): "public: jurisdictions and the log key",
    ("GET", "/healthz"): "public: liveness, no data",
    ("GET", "/readyz"): "public: readiness, each check's state only",
    ("GET", "/metrics"): "public: counts, never ids or values",
    ("GET", "/v1/page/summary"): "public: counts of the log",
    ("GET", "/v1/page/entries"): "public: the log",
}


def test_the_table_names_every_route(walk: Walk) -> None:
    spec = walk.http.get("/openapi.json").json()
    served = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    assert served == set(ROUTES)


def _decisions(walk: Walk, start: int, end: int) -> list[LogEntry]:
    entries = [walk.entry(i) for i in range(start, end)]
    return [e for e in entries if e.kind == "decision"]


def _check_refusal(walk: Walk, who: str, body: dict[str, Any], action: str) -> LogEntry:
    index = body.get("log_index")
    assert isinstance(index, int), f"a refusal of {who} without a log entry: {body}"
    entry = walk.entry(index)
    assert entry.kind == "decision"
    assert entry.principal == who
    assert entry.fields["effect"] == "deny"
    assert entry.fields["reason"] == body["message"]
    assert entry.fields["action"] == action
    return entry


@pytest.mark.parametrize(
    ("method", "path"), [k for k, v in ROUTES.items() if isinstance(v, Route)], ids=str
)
def test_every_route_with_every_role(walk: Walk, method: str, path: str) -> None:
    route = ROUTES[(method, path)]
    assert isinstance(route, Route)
    outcome: dict[str, int] = {}
    for who in ROLES:
        url, body = route.request(walk, who)
        before = walk.dep.gateway.log.size
        status, answer = _outcome(walk.call(who, method, url, body))
        outcome[who] = status
        assert status < 500, answer
        if status == 403:
            _check_refusal(walk, who, answer, route.action)
            continue
        if status >= 300:
            continue
        logged = [
            e
            for e in _decisions(walk, before, walk.dep.gateway.log.size)
            if e.principal == who and e.fields["effect"] == "allow"
        ]
        if route.action == "ingest":
            # An allowed ingest is recorded by its ingest entry, when the record is stored.
            if "log_index" in answer:
                assert walk.entry(answer["log_index"]).principal == who
            continue
        assert [e.fields["action"] for e in logged] == [route.action], (who, logged)
        assert logged[0].fields["policies"], "an allow names the rule that allowed it"
    if route.allowed is not None:
        assert {w for w, s in outcome.items() if s < 300} == route.allowed, outcome
    if route.allowed != EVERYONE:
        assert any(s == 403 for s in outcome.values()), f"no role was refused: {outcome}"


def test_a_forged_grant_is_refused_and_logged_whoever_registers_it(walk: Walk) -> None:
    for who in ROLES:
        forged = replace(walk.new_grant(), signature=bytes(64))
        r = walk.call(who, "POST", "/v1/grants", json.loads(forged.to_json()))
        assert r.status_code == 403, r.text
        _check_refusal(walk, who, r.json(), "register-grant")


def test_a_selection_over_the_cap_is_refused_and_logged_over_http(walk: Walk) -> None:
    for path, extra in [("/v1/access", {}), ("/v1/sealed/access", {"recipient": _recipient()})]:
        body = {"purpose": "foreign-legal-process", "jurisdiction": "PL", **extra}
        r = walk.call("authority-us", "POST", path, body)
        assert r.status_code == 403, r.text
        entry = _check_refusal(walk, "authority-us", r.json(), "read")
        assert entry.fields["reason"] == f"bulk: selection over {LIMIT} records"
        assert entry.fields["policies"] == ["bulk-selection-over-limit"]


def test_unauthenticated_calls_are_401_and_log_nothing(walk: Walk) -> None:
    for (method, path), route in ROUTES.items():
        if not isinstance(route, Route):
            continue
        url, body = route.request(walk, "svc-pl")
        before = walk.dep.gateway.log.size
        r = walk.call(None, method, url, body)
        assert r.status_code == 401, (path, r.text)
        entries = [walk.entry(i) for i in range(before, walk.dep.gateway.log.size)]
        assert not [e for e in entries if e.principal == ""], path


# -- the commands ----------------------------------------------------------------------------

_LOGGED_AT = re.compile(r"denied: .* \(logged at index (\d+)\)")


@dataclass(frozen=True)
class Command:
    """A command run with ``--as`` each role: its arguments, the action, the allowed roles."""

    args: Callable[[Walk, str, Path], list[str | Path]]
    action: str
    allowed: frozenset[str] | None = None


_JSONL_RECORD = {"subject_id": ANNA, "jurisdiction": "PL", "content": "walked from a file"}


def _file(tmp: Path, name: str, data: bytes) -> Path:
    path = tmp / name
    path.write_bytes(data)
    return path


COMMANDS: dict[str, Command] = {
    "put": Command(
        lambda w, who, tmp: [
            "put",
            "--subject",
            ANNA,
            "--jurisdiction",
            "PL",
            _file(tmp, "record.txt", b"walked"),
        ],
        "ingest",
        frozenset({"svc-pl", "svc-vn", "operator"}),
    ),
    "put --jsonl": Command(
        lambda w, who, tmp: [
            "put",
            "--jsonl",
            _file(tmp, "records.jsonl", json.dumps(_JSONL_RECORD).encode() + b"\n"),
        ],
        "ingest",
        frozenset({"svc-pl", "svc-vn", "operator"}),
    ),
    "put --client-side": Command(
        lambda w, who, tmp: [
            "put",
            "--client-side",
            "--subject",
            ANNA,
            "--jurisdiction",
            "PL",
            _file(tmp, "record.bin", b"\x00sealed"),
        ],
        "ingest",
        frozenset({"svc-pl", "svc-vn", "operator"}),
    ),
    "get": Command(
        lambda w, who, tmp: ["get", "--purpose", "customer-support", "--record", w.anna_record],
        "read",
    ),
    "get --client-side": Command(
        lambda w, who, tmp: [
            "get",
            "--client-side",
            "--purpose",
            "customer-support",
            "--record",
            w.sealed_record,
        ],
        "read",
    ),
    "grant show": Command(
        lambda w, who, tmp: ["grant", "show", w.new_grant(registered=True).grant_id],
        "view-grant",
        frozenset({"authority-us", "authority-pl", "operator", "auditor"}),
    ),
    "grant revoke": Command(
        lambda w, who, tmp: ["grant", "revoke", w.new_grant(registered=True).grant_id],
        "revoke-grant",
        frozenset({"authority-pl"}),
    ),
    "report": Command(
        lambda w, who, tmp: ["report", "--subject", ANNA, "--jurisdiction", "PL"],
        "report",
        frozenset({"subject-anna", "authority-pl"}),
    ),
    "explain": Command(lambda w, who, tmp: ["explain", w.decision_id], "explain", EVERYONE),
    "policy activate": Command(
        lambda w, who, tmp: [
            "policy",
            "activate",
            _file(tmp, "pack.dsse.json", w.new_pack().to_json()),
        ],
        "activate-policy",
        frozenset({"operator", "authority-pl", "authority-us"}),
    ),
    # Last: erasing Anna makes her records unreadable for every command after it.
    "keys shred": Command(
        lambda w, who, tmp: ["keys", "shred", "--jurisdiction", "PL", "--subject", ANNA],
        "shred",
        frozenset({"subject-anna", "authority-pl"}),
    ),
}


def test_grant_approve_registers_with_a_logged_allow(
    walk: Walk, sovra: Any, tmp_path: Path
) -> None:
    request = tmp_path / "request.json"
    request.write_bytes(walk.new_grant(signed=False).to_json())
    before = walk.dep.gateway.log.size
    ran = sovra("grant", "approve", request, "--url", walk.url, "--deployment", walk.root)
    assert ran.code == 0, ran.err
    (allowed,) = _decisions(walk, before, walk.dep.gateway.log.size)
    assert (allowed.principal, allowed.fields["action"]) == ("authority-pl", "register-grant")


def test_every_command_with_every_role(walk: Walk, sovra: Any, tmp_path: Path) -> None:
    for name, command in COMMANDS.items():
        outcome: dict[str, int] = {}
        for who in ROLES:
            args = [*command.args(walk, who, tmp_path), "--as", who, "--deployment", walk.root]
            if name != "keys shred":  # works on the deployment directly
                args += ["--url", walk.url]
            before = _log_size(walk, fresh=name == "keys shred")
            ran = sovra(*args)
            outcome[who] = ran.code
            assert ran.code in (0, 4), (name, who, ran.err)
            if ran.code == 4:
                found = _LOGGED_AT.search(ran.message)
                assert found, f"{name} --as {who}: a refusal without a log entry: {ran.message}"
                entry = walk.entry(int(found.group(1)))
                assert (entry.principal, entry.fields["effect"]) == (who, "deny")
                assert entry.fields["action"] == command.action
                continue
            if command.action == "ingest":
                continue  # recorded by the ingest entry; checked over HTTP above
            allowed = [
                e
                for e in _decisions(walk, before, _log_size(walk, fresh=name == "keys shred"))
                if e.principal == who and e.fields["effect"] == "allow"
            ]
            assert [e.fields["action"] for e in allowed] == [command.action], (name, who)
        if command.allowed is not None:
            assert {w for w, c in outcome.items() if c == 0} == command.allowed, (name, outcome)
        if command.allowed != EVERYONE:
            assert 4 in outcome.values(), f"{name}: no role was refused"


def _log_size(walk: Walk, *, fresh: bool) -> int:
    """The log's size; *fresh* for a command that appends through its own deployment."""
    if not fresh:
        return walk.dep.gateway.log.size
    again = Deployment.open(walk.root)
    try:
        return again.gateway.log.size
    finally:
        again.close()
