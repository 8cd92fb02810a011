"""The operations surface: /healthz, /readyz, /metrics and the JSON access log.

Real deployments on disk served by a real uvicorn on loopback (in a thread, or
``sovra serve --workers 2`` as its own processes), real signed requests through the
client; the scrape is parsed by prometheus-client's own parser and its counts are
compared with what was sent and with the log.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sovra.client import Client
from sovra.deployment import Deployment
from sovra.errors import Denied
from sovra.model import LogEntry
from sovra.server import create_app
from sovra.server.background import running
from sovra.server.ops import AccessLines

SOVRA = Path(sys.executable).with_name("sovra")
NOTE = "Klient prosi o kontakt: tel. +48 601 234 567"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ops") / "deployment"
    Deployment.init(root, origin="sovra.test/ops", custodians="in-process")
    return root


@pytest.fixture
def dep(template: Path, tmp_path: Path) -> Iterator[Deployment]:
    root = tmp_path / "deployment"
    shutil.copytree(template, root)
    d = Deployment.open(root)  # the wall clock, as the client's tokens use
    try:
        yield d
    finally:
        d.close()


def _samples(text: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """Every sample of a scrape by name, parsed by prometheus-client's parser."""
    found: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((sample.labels, sample.value))
    return found


def _value(
    samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str
) -> float:
    return sum(v for got, v in samples.get(name, []) if labels.items() <= got.items())


def test_health_and_readiness_answer_without_credentials(dep):
    with running(create_app(dep)) as url:
        health = httpx.get(f"{url}/healthz")
        ready = httpx.get(f"{url}/readyz")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert ready.status_code == 200
    body = ready.json()
    assert body["ready"] is True
    assert body["not_ready"] == []
    assert body["checks"] == {
        "store": "ok",
        "log": "ok",
        **{f"custodian:{c}": "ok" for c in sorted(dep.config.jurisdictions)},
    }


def test_readiness_names_the_custodian_that_cannot_be_reached(template, tmp_path):
    root = tmp_path / "deployment"
    shutil.copytree(template, root)
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    (root / "custodians" / "DE.url").write_text(f"http://127.0.0.1:{dead}\n", encoding="utf-8")
    token = root / "custodians" / "DE.token"
    token.write_bytes(os.urandom(32))
    token.chmod(0o600)
    d = Deployment.open(root)
    try:
        with running(create_app(d)) as url:
            ready = httpx.get(f"{url}/readyz")
    finally:
        d.close()
    assert ready.status_code == 503
    body = ready.json()
    assert body["ready"] is False
    assert body["not_ready"] == ["custodian:DE"]
    assert body["checks"]["custodian:DE"] == "unavailable"
    assert body["checks"]["custodian:PL"] == "ok"
    assert str(dead) not in ready.text  # where it lives is for the server log only


def test_metrics_scraped_from_a_served_gateway_match_what_was_sent(dep):
    size_before = dep.gateway.log.stored_size()
    with running(create_app(dep)) as url:
        with Client(url, "svc-pl", dep.principal_key("svc-pl")) as svc:
            rids = [svc.ingest(f"subject-{n}", "PL", NOTE)["record_id"] for n in range(3)]
            for rid in rids[:2]:
                svc.access("billing", record_ids=[rid])
        with (
            Client(url, "authority-us", dep.principal_key("authority-us")) as us,
            pytest.raises(Denied),
        ):
            us.access("foreign-legal-process", record_ids=[rids[0]])
        httpx.get(f"{url}/v1/grants/g-unknown")  # unauthenticated: a 401 on a templated route
        httpx.get(f"{url}/no/such/path")
        scrape = httpx.get(f"{url}/metrics")
        second = _samples(httpx.get(f"{url}/metrics").text)
    assert scrape.status_code == 200
    assert scrape.headers["content-type"].startswith("text/plain")
    samples = _samples(scrape.text)
    count = "sovra_http_request_duration_seconds_count"
    assert _value(samples, count, route="/v1/records", method="POST", status="201") == 3
    assert _value(samples, count, route="/v1/access", method="POST", status="200") == 2
    assert _value(samples, count, route="/v1/access", method="POST", status="403") == 1
    assert _value(samples, count, route="/v1/grants/{grant_id}", method="GET", status="401") == 1
    assert _value(samples, count, route="(unmatched)", status="404") == 1
    assert not any("g-unknown" in labels.get("route", "") for labels, _ in samples[count])
    # The first scrape was served after it was counted: the second sees it.
    assert _value(second, count, route="/metrics", status="200") == 1
    # What the log proves, read from the log.
    size = dep.gateway.log.stored_size()
    assert _value(samples, "sovra_log_size") == size
    entries = [LogEntry.from_bytes(e) for e in dep.gateway.log.entries(0, size)]
    decisions = [e for e in entries if e.kind == "decision"]
    assert _value(samples, "sovra_decisions_total", effect="allow", jurisdiction="PL") == 2
    assert _value(samples, "sovra_decisions_total", effect="deny", jurisdiction="US") == 1
    assert _value(samples, "sovra_decisions_total") == len(decisions)
    assert _value(samples, "sovra_log_entries_total", kind="ingest") == 3
    # Every entry appended since the application started went through a counted batch.
    assert _value(samples, "sovra_log_batch_entries_sum") == size - size_before
    assert _value(samples, "sovra_log_batch_entries_count") >= 1


def test_bulk_guard_refusals_are_counted_by_rule(dep):
    limit = dep.config.request_subject_limit
    with running(create_app(dep)) as url:
        with Client(url, "svc-pl", dep.principal_key("svc-pl")) as svc:
            records = [
                {"subject_id": f"s-{n}", "jurisdiction": "PL", "content": NOTE}
                for n in range(limit + 1)
            ]
            assert all(not isinstance(r, Exception) for r in svc.ingest_many(records))
            with pytest.raises(Denied) as refused:
                svc.access("billing", jurisdiction="PL")
        samples = _samples(httpx.get(f"{url}/metrics").text)
    entry = LogEntry.from_bytes(dep.gateway.log.entry(refused.value.log_index))
    (rule,) = [p for p in entry.fields["policies"] if p.startswith("bulk-")]
    assert _value(samples, "sovra_bulk_refusals_total", rule=rule) == 1
    assert _value(samples, "sovra_bulk_refusals_total") == 1


def test_access_log_is_one_json_line_per_request_without_secrets(dep, caplog):
    caplog.set_level(logging.INFO, logger="sovra.access")
    with running(create_app(dep)) as url:
        with Client(url, "svc-pl", dep.principal_key("svc-pl")) as svc:
            rid = svc.ingest("anna-secret-subject", "PL", NOTE)["record_id"]
        given = httpx.get(f"{url}/v1/log/checkpoint", headers={"X-Request-Id": "trace-42.a"})
        forged = httpx.get(f"{url}/v1/log/checkpoint", headers={"X-Request-Id": 'bad id {"x": 1}'})
        httpx.get(f"{url}/healthz")
        httpx.get(f"{url}/metrics")
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "sovra.access"]
    assert [(line["method"], line["route"], line["status"]) for line in lines] == [
        ("POST", "/v1/records", 201),
        ("GET", "/v1/log/checkpoint", 200),
        ("GET", "/v1/log/checkpoint", 200),
    ]  # the probe and the scrape are left out
    assert set(lines[0]) == {
        "time", "request_id", "method", "route", "status", "duration_ms", "principal"
    }  # fmt: skip
    assert lines[0]["principal"] == "svc-pl"
    assert lines[1]["principal"] is None
    assert given.headers["x-request-id"] == "trace-42.a" == lines[1]["request_id"]
    assert forged.headers["x-request-id"] == lines[2]["request_id"] != 'bad id {"x": 1}'
    assert len(lines[2]["request_id"]) == 24
    text = "\n".join(r.getMessage() for r in caplog.records)
    for secret in ("anna-secret-subject", "Sovra v1.", "+48", rid):
        assert secret not in text


def _wait_for(port: int, proc: subprocess.Popen[str], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError(f"nothing serves on port {port} after {seconds} s")


def test_workers_metrics_add_up_whichever_worker_answers(template, tmp_path):
    root = tmp_path / "deployment"
    shutil.copytree(template, root)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "not-this-one")}
    proc = subprocess.Popen(
        [SOVRA, "serve", root, "--port", str(port), "--workers", "2", "--log-level", "info"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for(port, proc)
        sent = 40
        for _ in range(sent):
            # A new connection each: the kernel spreads them over the workers.
            assert httpx.get(f"{url}/v1/log/checkpoint").status_code == 200
        counts = set()
        for _ in range(6):
            samples = _samples(httpx.get(f"{url}/metrics").text)
            counts.add(
                _value(
                    samples,
                    "sovra_http_request_duration_seconds_count",
                    route="/v1/log/checkpoint",
                    status="200",
                )
            )
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert counts == {sent}, err
    access = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert [a["route"] for a in access].count("/v1/log/checkpoint") == sent
    assert not (tmp_path / "not-this-one").exists()  # a private directory, not the caller's


def test_serve_refuses_an_unknown_log_level(template, tmp_path):
    ran = subprocess.run(
        [SOVRA, "serve", template, "--port", "1", "--log-level", "loud"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ran.returncode == 1
    assert "--log-level is one of critical, error, warning, info, debug, not 'loud'" in " ".join(
        ran.stderr.split()
    )


def test_access_lines_read_as_the_logging_path_writes_them():
    # Operations hands the line straight to the handler sovra serve installs; a filter
    # on it (or a level above INFO) sends the line through the logging machinery instead.
    direct, logged = io.StringIO(), io.StringIO()
    AccessLines(direct).write_line('{"route": "/v1/records"}')
    record = logging.LogRecord(
        "sovra.access", logging.INFO, "", 0, '{"route": "/v1/records"}', (), None
    )
    AccessLines(logged).handle(record)
    assert direct.getvalue() == logged.getvalue() == '{"route": "/v1/records"}\n'
    filtered = io.StringIO()
    handler = AccessLines(filtered)
    handler.addFilter(lambda r: "secret" not in r.getMessage())
    handler.write_line('{"secret": 1}')
    handler.write_line('{"route": "/v1/access"}')
    assert filtered.getvalue() == '{"route": "/v1/access"}\n'
    quiet = io.StringIO()
    handler = AccessLines(quiet)
    handler.setLevel(logging.WARNING)
    handler.write_line('{"route": "/v1/access"}')
    assert quiet.getvalue() == ""
