"""Witness cosignatures end to end: a real witness (``sovra witness serve``) that the log
pushes each batch's checkpoint to (C2SP tlog-witness, the ``[witnesses] policy`` of
``sovra.toml``) cosigns it, and the gateway serves the cosigned checkpoint; the page's log
view verifies the cosignature with WebCrypto against the witness key the deployment names,
shows the policy's quorum met, and shows a tampered cosignature, or one by a key nobody
named, for what it is. A proof exported with that cosignature is checked in the page, and
one with its cosignature tampered with, or stripped, fails the witness check."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tests import serving
from tests.browser.conftest import Served, fresh_page
from tests.browser.conftest import serving as serving_gateway
from tests.browser.tlog_proofs import check_in_page, export, signature_line, with_signature_changed
from tests.cli.test_cli_tlog_proof import _wait as wait_for_witness
from tests.serving import SOVRA, free_port

from sovra.deployment import Deployment
from sovra.ledger import CosignatureSigner, Witness

W1 = "witness.test/w1"
W2 = "witness.test/w2"  # cosigns too, but the deployment does not name it


def _sovra(*args: Any) -> str:
    ran = subprocess.run(
        [SOVRA, *map(str, args)], capture_output=True, text=True, timeout=300, check=False
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    return ran.stdout


@pytest.fixture(scope="module")
def witnessed(browser: Any) -> Iterator[tuple[Served, dict[str, str]]]:
    """``sovra serve`` over a deployment whose ``[witnesses] policy`` names w1 at the URL of
    a ``sovra witness serve``: every batch's checkpoint is pushed to w1 and its
    cosignature kept before the batch's receipts return. Records are then ingested over
    HTTP, so the checkpoint the page gets was cosigned by the log's own pushes."""
    del browser  # no deployment is made where the browser is missing
    base = Path(tempfile.mkdtemp(prefix="sovra-witness-"))
    root = base / "deployment"
    witness = None
    try:
        Deployment.init(root, origin="sovra.test/witnessed", custodians="in-process")
        log_vkey = (root / "keys" / "log.vkey").read_text().strip()
        vkeys = {
            name: _sovra("witness", "init", base / name, "--name", name, "--log", log_vkey).strip()
            for name in (W1, W2)
        }
        port = free_port()
        witness_url = f"http://127.0.0.1:{port}"
        with (base / "witness.log").open("w") as sink:
            witness = subprocess.Popen(
                [SOVRA, "witness", "serve", base / W1, "--port", str(port)],
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        wait_for_witness(witness_url, witness)
        (root / "witnesses.policy").write_text(
            f"witness {W1} {vkeys[W1]} {witness_url}\nquorum {W1}\n", encoding="utf-8"
        )
        toml = root / "sovra.toml"
        toml.write_text(
            toml.read_text().replace(
                "keys = []\n", 'policy = "witnesses.policy"\ntimeout_s = 30\n', 1
            ),
            encoding="utf-8",
        )
        with serving_gateway(root) as gateway:
            with serving.client(root, gateway.url, "svc-pl") as svc:
                for n in range(3):
                    svc.ingest(f"s{n}@example.pl", "PL", "tel. 601")
            yield gateway, vkeys
    finally:
        if witness is not None:
            witness.terminate()
            witness.wait(timeout=60)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def page(browser: Any, witnessed: tuple[Served, dict[str, str]]) -> Iterator[Any]:
    with fresh_page(browser, witnessed[0].url) as opened:
        yield opened


def _rows(page: Any) -> dict[str, str]:
    """Each cosignature row of the log view: witness name -> its status word."""
    out = {}
    for row in page.locator("#witness-status li").all():
        out[row.locator("code").first.inner_text()] = row.locator(".badge").inner_text()
    return out


def _open_log(page: Any) -> None:
    page.goto("/page/#/log")
    page.wait_for_selector("main[data-ready=yes]")


def test_the_witness_cosignature_is_verified_in_the_browser(page, witnessed, shoot):
    served, vkeys = witnessed
    note = served.get("/v1/log/checkpoint").decode()
    assert f"\u2014 {W1} " in note  # the gateway publishes what w1 cosigned
    # w1 got it by the log's push (tlog-witness add-checkpoint): it holds the log's size.
    held = Witness(
        CosignatureSigner("reader.test/w", Ed25519PrivateKey.generate()),
        [(served.root / "keys" / "log.vkey").read_text().strip()],
        served.root.parent / W1 / "heads.json",
    ).head("sovra.test/witnessed")
    assert held is not None and held[0] == int(note.splitlines()[1])
    _open_log(page)
    assert page.get_attribute("#sig-status", "data-status") == "ok"
    assert _rows(page) == {W1: "verified"}
    assert vkeys[W1] in page.inner_text("main")  # the key it checked with, named by the server
    assert page.get_attribute("#witness-quorum", "data-status") == "ok"
    assert f"quorum is {W1}" in page.inner_text("#witness-quorum")
    shoot(page, "log-witness")


def test_a_tampered_cosignature_is_shown_as_failed(page, witnessed):
    served, _ = witnessed
    note = served.get("/v1/log/checkpoint").decode()
    bad = with_signature_changed(note, W1)
    page.route(
        "**/v1/log/checkpoint",
        lambda route: route.fulfill(status=200, body=bad, content_type="text/plain"),
    )
    _open_log(page)
    # The log's own signature still verifies; the witness's does not.
    assert page.get_attribute("#sig-status", "data-status") == "ok"
    assert _rows(page) == {W1: "failed"}
    assert page.locator("#witness-status .badge[data-status=fail]").count() == 1
    assert page.get_attribute("#witness-quorum", "data-status") == "warn"


def test_a_cosignature_by_a_key_nobody_named_is_not_called_verified(page, witnessed):
    served, _ = witnessed
    note = served.get("/v1/log/checkpoint").decode()
    # w2 cosigns the same checkpoint; the gateway would refuse it (not a configured
    # witness), so the page is handed it as a server that adds lines would hand it.
    w2 = _sovra("witness", "cosign", served.root.parent / W2, "--url", served.url)
    line = next(x for x in w2.splitlines() if x.startswith(f"\u2014 {W2} "))
    page.route(
        "**/v1/log/checkpoint",
        lambda route: route.fulfill(status=200, body=note + line + "\n", content_type="text/plain"),
    )
    _open_log(page)
    rows = _rows(page)
    assert rows[W1] == "verified"
    assert rows[W2] == "unknown"


def _latest_ingest(served: Served) -> int:
    return max(i for i, e in enumerate(served.entries()) if e["kind"] == "ingest")


def test_a_cosigned_proof_is_verified_in_the_browser(page, witnessed):
    served, _ = witnessed
    index = _latest_ingest(served)
    proof = export(served.url, served.root, index, "--policy", served.root / "witnesses.policy")
    assert signature_line(proof, W1)  # the checkpoint the witness cosigned travels with it
    got = check_in_page(page, proof)
    assert got["status"] == "ok", got
    assert got["failed"] == []
    assert f"cosigned by {W1}, which meets the witness quorum {W1}" in got["steps"]["witnesses"][1]
    assert f"cosigned by {W1}" in got["words"]
    assert (got["shown"]["entry"], got["shown"]["kind"]) == (str(index), "ingest")


def test_a_proof_with_a_tampered_or_missing_cosignature_fails_the_witness_check(page, witnessed):
    served, _ = witnessed
    index = _latest_ingest(served)
    proof = export(served.url, served.root, index, "--policy", served.root / "witnesses.policy")
    got = check_in_page(page, with_signature_changed(proof, W1))
    assert got["status"] == "fail"
    assert got["failed"] == ["witnesses"]
    assert f"the cosignature by {W1} does not verify" in got["steps"]["witnesses"][1]
    stripped = proof.replace(signature_line(proof, W1) + "\n", "")
    got = check_in_page(page, stripped)
    assert got["failed"] == ["witnesses"]
    assert f"below the witness quorum {W1}: cosigned by none" in got["steps"]["witnesses"][1]
