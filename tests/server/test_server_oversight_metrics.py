"""/metrics for alerting: the review queue by queue and effect, the bulk guard's alerts by
state (active within the guard's window, then past) and the requester's jurisdiction.

A real deployment on a clock the test moves; decisions made by the real gateway; the
scrape parsed by prometheus-client's own parser.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from sovra.deployment import Deployment
from sovra.errors import Denied
from sovra.flow_types import IngestItem
from sovra.server import create_app


class Clock:
    """UNIX seconds the test moves."""

    def __init__(self) -> None:
        self.now = 1_790_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("oversight") / "deployment"
    Deployment.init(root, origin="sovra.test/oversight", custodians="in-process")
    return root


@pytest.fixture
def env(template: Path, tmp_path: Path) -> Iterator[tuple[Deployment, Clock]]:
    root = tmp_path / "deployment"
    shutil.copytree(template, root)
    clock = Clock()
    dep = Deployment.open(root, clock=clock)
    try:
        yield dep, clock
    finally:
        dep.close()


def _scrape(dep: Deployment) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    with TestClient(create_app(dep)) as http:
        text = http.get("/metrics").text
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def test_nothing_to_review_and_no_alert_reads_as_empty(env):
    dep, _ = env
    samples = _scrape(dep)
    assert samples.get("sovra_review_queue", {}) == {}
    assert samples.get("sovra_bulk_alerts", {}) == {}


def test_a_decision_sent_for_review_is_counted_in_its_queue(env):
    dep, _ = env
    gw = dep.gateway
    svc = dep.store.get_principal("svc-vn")
    lan = gw.ingest(svc, subject_id="lan@example.vn", jurisdiction="VN", content="Lan, x")
    for _ in range(2):
        with pytest.raises(Denied, match="queued for legal review"):
            gw.access(
                dep.store.get_principal("authority-us"),
                purpose="provider-disclosure",
                record_ids=[lan.record_id],
                justification="compelled-third-party",
            )
    queue = _scrape(dep)["sovra_review_queue"]
    assert queue == {(("effect", "deny"), ("queue", "legal")): 2.0}
    assert len(gw.decisions.reviews("legal")) == 2  # the same count the oversight route gives


def test_bulk_alerts_are_active_within_the_window_then_past(env):
    dep, clock = env
    gw = dep.gateway
    svc = dep.store.get_principal("svc-pl")
    limit = dep.config.request_subject_limit
    items = [IngestItem(f"s-{n}@example.pl", "PL", "tel. 601 234 567") for n in range(limit + 1)]
    assert all(not isinstance(r, Exception) for r in gw.ingest_many(svc, items))
    with pytest.raises(Denied):
        gw.access(svc, purpose="billing", jurisdiction="PL")
    alerts = _scrape(dep)["sovra_bulk_alerts"]
    assert alerts == {(("jurisdiction", "PL"), ("state", "active")): 1.0}
    clock.now += dep.config.window_s + 1
    alerts = _scrape(dep)["sovra_bulk_alerts"]
    assert alerts == {(("jurisdiction", "PL"), ("state", "past")): 1.0}
