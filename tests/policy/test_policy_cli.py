"""``sovra grant request|approve|revoke|show``, ``sovra policy ...`` and ``sovra explain``
against a real gateway on loopback."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sovra.cli import app
from sovra.deployment import Deployment
from sovra.model import Grant
from sovra.policy import Envelope
from sovra.server import create_app
from sovra.server.background import running


@dataclass
class Live:
    url: str
    root: Path
    dep: Deployment

    def run(
        self, *args: str | Path, server: bool = True, deployment: bool = True
    ) -> tuple[int, str, str]:
        argv = [str(a) for a in args]
        if deployment:
            argv += ["--deployment", str(self.root)]
        if server:
            argv += ["--url", self.url]
        result = CliRunner().invoke(app, argv)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise AssertionError(f"sovra {argv} crashed") from result.exception
        assert "Traceback" not in result.output
        return result.exit_code, result.stdout, " ".join(result.stderr.split())


@contextmanager
def serving(root: Path) -> Iterator[Live]:
    """The deployment at *root*, served on loopback while the block runs."""
    dep = Deployment.open(root)
    try:
        with running(create_app(dep)) as url:
            yield Live(url, root, dep)
    finally:
        dep.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    root = tmp_path_factory.mktemp("policy-cli") / "deployment"
    Deployment.init(root, origin="sovra.test/policy-cli", custodians="in-process")
    with serving(root) as served:
        yield served


def test_grant_lifecycle(live: Live, tmp_path: Path) -> None:
    request, signed = tmp_path / "request.json", tmp_path / "grant.json"
    code, out, err = live.run(
        "grant", "request", "--approver", "VN", "--grantee", "authority-us",
        "--grantee-jurisdiction", "US", "--subject", "lan@example.vn", "--subject",
        "minh@example.vn", "--legal-basis", "MLAT VN-US, request 2026/4", "--category", "email",
        "--max-records", "5", "--days", "3", "--grant-id", "mla-cli-full", "--out", request,
        server=False,
    )  # fmt: skip
    assert code == 0, err
    assert out.strip() == f"grant request mla-cli-full written to {request}"
    asked = Grant.from_json(request.read_bytes())
    assert (asked.categories, asked.max_records, asked.signature) == (("email",), 5, b"")

    code, out, err = live.run("grant", "approve", request, "--out", signed)
    assert code == 0, err
    assert re.fullmatch(
        r"grant mla-cli-full registered at log index \d+, written to .+", out.strip()
    )
    code, out, err = live.run("grant", "approve", signed, "--cosigner", "DE")
    assert code == 0, err
    assert Grant.from_json(signed.read_bytes()).cosignatures[0][0] == "DE"

    code, out, _ = live.run("grant", "show", "mla-cli-full")
    assert json.loads(out)["revoked"] is False
    code, _, err = live.run("grant", "revoke", "mla-cli-full", "--as", "authority-us")
    assert code == 4
    assert "only VN's authority, or a co-signing one, may revoke" in err
    code, out, err = live.run("grant", "revoke", "mla-cli-full", "--as", "authority-vn")
    assert code == 0, err
    assert re.fullmatch(r"grant mla-cli-full revoked at log index \d+", out.strip())
    code, out, _ = live.run("grant", "show", "mla-cli-full")
    assert json.loads(out)["revoked"] is True


def test_policy_sign_verify_diff_activate_and_explain(live: Live, tmp_path: Path) -> None:
    env = tmp_path / "gdpr.json"
    code, out, err = live.run(
        "policy", "sign", "shipped:gdpr-chapter-v", "--authority", "PL", "--out", env, server=False
    )
    assert code == 0, err
    assert "signed by PL (1 of 3 needed)" in out
    code, _, err = live.run("policy", "verify", env, server=False)
    assert code == 1
    assert "signed by 1 of its 5 parties (PL); it needs 3" in err
    for j in ("DE", "VN"):
        assert live.run("policy", "sign", env, "--authority", j, "--out", env, server=False)[0] == 0
    code, out, err = live.run("policy", "verify", env, server=False)
    assert code == 0, err
    assert "verified: signed by DE, PL, VN (3 of 5 parties, 3 needed)" in out
    code, out, err = live.run("policy", "verify", env, "--json", server=False)
    assert code == 0, err
    verified = json.loads(out)
    assert (verified["signers"], verified["threshold"]) == (["DE", "PL", "VN"], 3)
    assert len(verified["parties"]) == 5

    code, out, _ = live.run("policy", "diff", "shipped:gdsi", env, server=False, deployment=False)
    assert code == 1
    assert "gdsi v1 -> gdpr-chapter-v v1" in out
    assert "+ gdpr-art45-adequacy: GDPR Art. 45" in out
    assert "~ parameters:" in out
    code, out, _ = live.run("policy", "diff", env, env, server=False, deployment=False)
    assert code == 0
    assert "no differences" in out

    code, _, err = live.run("policy", "sign", env, "--authority", "FR", "--out", env, server=False)
    assert code == 1

    code, out, err = live.run("policy", "activate", env)
    assert code == 0, err
    index = int(
        re.fullmatch(r"pack gdpr-chapter-v v1 active, logged at index (\d+)", out.strip())[1]
    )
    logged = json.loads(live.dep.gateway.log.entry(index))
    assert (logged["kind"], logged["signers"]) == ("policy_activation", ["DE", "PL", "VN"])
    code, _, err = live.run("policy", "activate", env)
    assert code == 1
    assert "already active" in err
    code, out, _ = live.run("policy", "show")
    assert json.loads(out)["name"] == "gdpr-chapter-v"
    assert Envelope.from_json(env.read_bytes()).bundle().name == "gdpr-chapter-v"

    code, _, err = live.run("get", "--as", "svc-de", "--purpose", "billing", "--all-of", "PL")
    assert code == 1  # no PL records yet: nothing decided
    put = tmp_path / "anna.txt"
    put.write_text("Anna, tel. +48 601 234 567", encoding="utf-8")
    code, out, err = live.run(
        "put", "--as", "svc-pl", "--subject", "anna@example.pl", "--jurisdiction", "PL", put
    )
    assert code == 0, err
    code, out, err = live.run(
        "get", "--as", "svc-de", "--purpose", "billing", "--record", json.loads(out)["record_id"]
    )
    assert code == 0, err
    decision_id = json.loads(out)["decision"]["decision_id"]
    code, out, err = live.run("explain", decision_id)
    assert code == 0, err
    assert "was ALLOWED" in out
    assert "gdpr-art45-adequacy: GDPR Art. 45" in out
    assert "pack gdpr-chapter-v v1" in out
    code, _, err = live.run("explain", "no-such-decision")
    assert code == 1
    assert "no decision no-such-decision in the log" in err
