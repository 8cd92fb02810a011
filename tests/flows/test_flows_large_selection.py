"""A selection of max_records_per_request records is decided, logged and served.

A subject with 7,443 records could not be read by her home authority: the decision entry
listed every record id and was 277,093 bytes, over the log's 65,536-byte entry limit.
Here one subject has exactly ``max_records_per_request`` (10,000) records; her home
authority reads them all, with the custodian in-process and as its own HTTP service, and
the log, the explanation, her report and ``sovra log verify`` all still hold.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sovra.cli import app
from sovra.deployment import Deployment
from sovra.errors import Denied
from sovra.keys import LocalCustodian
from sovra.keys.files import load_ed25519
from sovra.keys.remote import RemoteCustodian
from sovra.model import MAX_ENTRY_BYTES, LogEntry, Principal
from sovra.server import create_app
from sovra.server.background import running
from sovra.server.custodian import create_custodian_app

ANNA = "anna@example.pl"
TOKEN = b"t" * 32


@dataclass
class Big:
    root: Path
    dep: Deployment
    ids: list[str]


def _ingest(dep: Deployment, who: str, jurisdiction: str, subjects: list[str]) -> list[str]:
    principal = dep.store.get_principal(who)

    def one(n: int) -> str:
        return dep.gateway.ingest(
            principal, subject_id=subjects[n], jurisdiction=jurisdiction, content=f"note {n}"
        ).record_id

    # Concurrent ingests share log batches: the setup takes seconds, not minutes.
    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(one, range(len(subjects))))


pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Big]:
    root = tmp_path_factory.mktemp("large") / "deployment"
    Deployment.init(root, origin="sovra.test/large", custodians="in-process")
    dep = Deployment.open(root)  # the wall clock: the custodian service uses its own
    try:
        limit = dep.config.max_records_per_request
        assert limit == 10_000
        yield Big(root, dep, _ingest(dep, "svc-pl", "PL", [ANNA] * limit))
    finally:
        dep.close()


def _entry(dep: Deployment, index: int) -> tuple[LogEntry, int]:
    data = dep.gateway.log.entry(index)
    return LogEntry.from_bytes(data), len(data)


def _read_all(big: Big) -> tuple[int, int]:
    authority: Principal = big.dep.store.get_principal("authority-pl")
    result = big.dep.gateway.access(
        authority, purpose="domestic-legal-process", subjects=[("PL", ANNA)]
    )
    assert result.decision.allow
    assert result.records == {rid: f"note {n}" for n, rid in enumerate(big.ids)}
    return result.decision_receipt.index, result.release_receipt.index


def test_her_home_authority_reads_all_her_records(big: Big) -> None:
    decision_index, release_index = _read_all(big)
    decision, size = _entry(big.dep, decision_index)
    assert size < 2048 < MAX_ENTRY_BYTES
    assert decision.fields["effect"] == "allow"
    assert decision.fields["records_count"] == 10_000
    assert "records" not in decision.fields
    assert decision.fields["subjects"] == [big.dep.gateway.commitment("PL", ANNA)]
    release, size = _entry(big.dep, release_index)
    assert size < 2048
    assert release.fields["records_root"] == decision.fields["records_root"]
    # Explained and reported as before: counts, and both entries in her report.
    authority = big.dep.store.get_principal("authority-pl")
    explained = big.dep.governance.explain(authority, decision.fields["decision_id"])
    assert (explained.records, explained.subjects, explained.effect) == (10_000, 1, "allow")
    report = big.dep.governance.subject_report(authority, jurisdiction="PL", subject_id=ANNA)
    assert {decision_index, release_index} <= {e.index for e in report.entries}
    # The log still verifies from end to end, as an auditor checks it.
    with running(create_app(big.dep)) as url:
        ran = CliRunner().invoke(app, ["log", "verify", "--url", url])
    assert ran.exit_code == 0, ran.output
    assert "verified" in ran.output


def test_her_records_are_served_through_the_custodian_service(big: Big) -> None:
    log_public = load_ed25519(big.root / "keys" / "log.key").public_key()
    served = LocalCustodian.open(big.root / "custodians" / "PL.key", "PL", log_public)
    gateway = big.dep.gateway
    local = gateway.custodians
    try:
        with running(create_custodian_app(served, token=TOKEN)) as url:
            remote = RemoteCustodian(url, "PL", TOKEN, timeout_s=300)  # 10,000 keys, busy machine
            gateway.custodians = {**local, "PL": remote}
            try:
                _read_all(big)
            finally:
                remote.close()
    finally:
        gateway.custodians = local
        served.close()
    assert [e.outcome for e in served.journal()].count("released") == 10_000


def test_a_refused_grab_of_over_a_thousand_subjects_is_logged(big: Big) -> None:
    # More subjects than the log indexes tags for one entry (1,024), too.
    subjects = [f"person-{n}@example.vn" for n in range(1_100)]
    _ingest(big.dep, "svc-vn", "VN", subjects)
    service = big.dep.store.get_principal("svc-vn")
    with pytest.raises(Denied, match="bulk-collection limit") as refused:
        big.dep.gateway.access(service, purpose="customer-support", jurisdiction="VN")
    entry, size = _entry(big.dep, refused.value.log_index)
    assert size < 2048
    assert entry.fields["effect"] == "deny"
    assert (entry.fields["records_count"], entry.fields["subjects_count"]) == (1_100, 1_100)
