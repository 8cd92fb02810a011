"""Crypto-shredding through the gateway: logged, final, and nothing left on disk to undo it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sovra.deployment import Deployment
from sovra.errors import Denied, NotFound
from sovra.keys import LocalCustodian
from sovra.model import LogEntry, Principal, Role

ANNA = "anna@example.pl"
PIOTR = "piotr@example.pl"


class Clock:
    def __init__(self) -> None:
        self.now = 1_790_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("shred") / "deployment"
    Deployment.init(
        root, jurisdictions=["PL", "VN"], origin="sovra.test/log", custodians="in-process"
    )
    return root


@pytest.fixture
def root(template: Path, tmp_path: Path) -> Path:
    import shutil

    target = tmp_path / "deployment"
    shutil.copytree(template, target)
    return target


@pytest.fixture
def dep(root: Path) -> Iterator[Deployment]:
    d = Deployment.open(root, clock=Clock())
    yield d
    d.close()


def _principal(dep: Deployment, pid: str) -> Principal:
    return dep.store.get_principal(pid)


def _ingest(dep: Deployment, subject: str, text: str) -> str:
    return dep.gateway.ingest(
        _principal(dep, "svc-pl"), subject_id=subject, jurisdiction="PL", content=text
    ).record_id


def test_shred_is_logged_and_every_record_of_hers_stops_opening(dep: Deployment) -> None:
    gw = dep.gateway
    anna = [_ingest(dep, ANNA, f"Anna's note {i}") for i in range(3)]
    piotr = _ingest(dep, PIOTR, "Piotr's note")
    svc = _principal(dep, "svc-pl")
    assert gw.access(svc, purpose="customer-support", record_ids=anna).records

    receipt = dep.governance.shred(
        _principal(dep, "authority-pl"), jurisdiction="PL", subject_id=ANNA
    )
    entry = LogEntry.from_bytes(gw.log.entry(receipt.index))
    assert entry.kind == "shred"
    allowed = LogEntry.from_bytes(gw.log.entry(receipt.index - 1))
    assert allowed.fields["action"] == "shred"
    assert allowed.fields["effect"] == "allow"
    assert entry.fields == {
        "decision_id": allowed.fields["decision_id"],
        "subject": gw.commitment("PL", ANNA),
        "jurisdiction": "PL",
        "records": 3,
    }
    for record in anna:
        with pytest.raises(NotFound, match="crypto-shredded"):
            gw.access(svc, purpose="customer-support", record_ids=[record])
    got = gw.access(svc, purpose="customer-support", record_ids=[piotr]).records
    assert got == {piotr: "Piotr's note"}


@pytest.mark.parametrize("who", ["svc-pl", "operator", "authority-vn", "svc-vn"])
def test_only_her_home_authority_or_she_may_shred(dep: Deployment, who: str) -> None:
    record = _ingest(dep, ANNA, "Anna's note")
    with pytest.raises(Denied) as info:
        dep.governance.shred(_principal(dep, who), jurisdiction="PL", subject_id=ANNA)
    assert info.value.log_index is not None
    got = dep.gateway.access(
        _principal(dep, "svc-pl"), purpose="customer-support", record_ids=[record]
    )
    assert got.records[record] == "Anna's note"


def test_the_subject_herself_may_shred(dep: Deployment) -> None:
    record = _ingest(dep, ANNA, "Anna's note")
    commitment = dep.gateway.commitment("PL", ANNA)
    dep.register("subject-anna", "PL", Role.SUBJECT, subject=commitment)
    dep.governance.shred(_principal(dep, "subject-anna"), jurisdiction="PL", subject_id=ANNA)
    with pytest.raises(NotFound):
        dep.gateway.access(
            _principal(dep, "svc-pl"), purpose="customer-support", record_ids=[record]
        )


def test_nothing_left_in_the_deployment_recovers_a_shredded_record(
    dep: Deployment, root: Path
) -> None:
    gw = dep.gateway
    records = [_ingest(dep, ANNA, f"Anna's secret {i}") for i in range(2)]
    commitment = gw.commitment("PL", ANNA)
    pl = gw.custodians["PL"]
    assert isinstance(pl, LocalCustodian)
    subject_key = pl._subject_key(commitment, create=False)
    sealed_row = pl._subjects.get(commitment)
    assert sealed_row is not None
    svc = _principal(dep, "svc-pl")
    result = gw.access(svc, purpose="customer-support", record_ids=records)
    assert set(result.records.values()) == {"Anna's secret 0", "Anna's secret 1"}

    dep.governance.shred(_principal(dep, "authority-pl"), jurisdiction="PL", subject_id=ANNA)
    dep.close()
    pl.close()

    # Every byte the deployment keeps: database, blobs, log, every custodian's key files.
    everything = b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())
    assert subject_key not in everything
    assert sealed_row[2] not in everything
    # Each record's ciphertext and wrapped key are still there, and useless: every KEK on
    # disk, used by a custodian reopened from those files, opens neither.
    reopened = Deployment.open(root, clock=Clock())
    try:
        for record in records:
            with pytest.raises(NotFound):
                reopened.gateway.access(
                    reopened.store.get_principal("svc-pl"),
                    purpose="customer-support",
                    record_ids=[record],
                )
    finally:
        reopened.close()
