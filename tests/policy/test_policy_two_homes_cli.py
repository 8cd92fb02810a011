"""``sovra grant approve`` for a subject of two homes: approved by one home without
registering, co-signed by the other and registered then, so both signatures are on the
grant as registered; the foreign authority then reads her two-home record under it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.flows.two_homes import ANNA, TEXT, configure
from tests.policy.test_policy_cli import Live, serving

from sovra._cli.common import connect
from sovra.deployment import Deployment
from sovra.errors import Denied
from sovra.model import Grant, LogEntry


@pytest.fixture
def live(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    template = tmp_path_factory.getbasetemp() / "two-homes-cli-template"
    if not template.exists():
        Deployment.init(template, origin="sovra.test/two-homes-cli", custodians="in-process")
    root = tmp_path / "deployment"
    shutil.copytree(template, root)
    configure(root)
    with serving(root) as served:
        yield served


def test_a_grant_both_homes_sign_is_registered_once_both_signed(live: Live, tmp_path: Path) -> None:
    gw = live.dep.gateway
    rid = gw.ingest(
        live.dep.store.get_principal("svc-pl"),
        subject_id=ANNA,
        jurisdiction="PL",
        content=TEXT,
        other_homes=["DE"],
    ).record_id
    request, signed = tmp_path / "request.json", tmp_path / "grant.json"
    code, _, err = live.run(
        "grant", "request", "--approver", "PL", "--grantee", "authority-us",
        "--grantee-jurisdiction", "US", "--subject", ANNA, "--legal-basis", "MLA 2026/9",
        "--grant-id", "g-two", "--out", request, server=False,
    )  # fmt: skip
    assert code == 0, err
    code, _, err = live.run("grant", "approve", request, "--no-register")
    assert code == 2 and "--no-register needs --out" in err
    size = gw.log.size
    code, out, err = live.run("grant", "approve", request, "--no-register", "--out", signed)
    assert code == 0, err
    assert out.strip() == "grant g-two signed by PL, not registered"
    assert gw.log.size == size  # nothing registered yet
    code, out, err = live.run("grant", "approve", signed, "--cosigner", "DE", "--register")
    assert code == 0, err
    assert "co-signed by DE" in out and "registered at log index" in out
    (entry,) = [
        LogEntry.from_bytes(gw.log.entry(i))
        for i in range(gw.log.size)
        if LogEntry.from_bytes(gw.log.entry(i)).kind == "grant"
    ]
    assert (entry.fields["approver"], entry.fields["cosigners"]) == ("PL", ["DE"])
    grant = Grant.from_json(signed.read_bytes())
    res = gw.access(
        live.dep.store.get_principal("authority-us"),
        purpose="foreign-legal-process",
        record_ids=[rid],
        grant=grant,
    )
    assert "Anna Kowalska" in res.records[rid]

    # Over HTTP (POST /v1/grants/g-two/revoke): a third jurisdiction is refused, logged;
    # the co-signing home withdraws its co-signature, and the next read is refused, logged.
    code, _, err = live.run("grant", "revoke", "g-two", "--as", "authority-vn")
    assert code == 4 and "only PL's authority, or a co-signing one, may revoke" in err
    refused = LogEntry.from_bytes(gw.log.entry(gw.log.size - 1))
    assert refused.principal == "authority-vn" and refused.fields["effect"] == "deny"
    code, out, err = live.run("grant", "revoke", "g-two", "--as", "authority-de")
    assert code == 0, err
    withdrawn = LogEntry.from_bytes(gw.log.entry(gw.log.size - 1))
    assert (withdrawn.kind, withdrawn.fields["cosigner"]) == ("grant_revoked", "DE")
    # Said as what it was: a withdrawal, the grant standing (not "grant g-two revoked").
    assert out.strip() == (
        f"DE's co-signature of grant g-two withdrawn at log index {gw.log.size - 1} "
        "(the grant itself stands)"
    )
    releases = sum(
        LogEntry.from_bytes(gw.log.entry(i)).kind == "key_release" for i in range(gw.log.size)
    )
    with pytest.raises(Denied, match="DE's authority has withdrawn its co-signature") as info:
        gw.access(
            live.dep.store.get_principal("authority-us"),
            purpose="foreign-legal-process",
            record_ids=[rid],
            grant=grant,
        )
    assert LogEntry.from_bytes(gw.log.entry(info.value.log_index)).fields["effect"] == "deny"
    assert releases == sum(
        LogEntry.from_bytes(gw.log.entry(i)).kind == "key_release" for i in range(gw.log.size)
    )
    size = gw.log.size
    code, _, err = live.run("grant", "revoke", "g-two", "--as", "authority-de")
    assert code != 0 and "DE has withdrawn its co-signature of grant g-two already" in err
    assert gw.log.size == size
    # The approver revokes it: the HTTP answer says so, and names no co-signer.
    with connect(live.url, "authority-pl", deployment=live.root) as client:
        answer = client.revoke_grant("g-two")
    assert answer["receipt"]["index"] == gw.log.size - 1
    assert {k: v for k, v in answer.items() if k != "receipt"} == {
        "grant_id": "g-two",
        "outcome": "revoked",
    }
