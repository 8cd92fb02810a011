"""Witness cosignatures end to end: a real witness (``sovra witness``) cosigns the log's
checkpoint and gives it back to the gateway; the page's log view verifies the cosignature
with WebCrypto against the witness key the deployment names, and shows a tampered one,
or one by a key nobody named, for what it is."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.browser.conftest import Served, fresh_page, serving
from tests.serving import SOVRA

from sovra.deployment import Deployment

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
    """``sovra serve`` over a deployment naming witness w1, whose latest checkpoint w1
    (and an unnamed w2) cosigned with ``sovra witness cosign --submit``."""
    del browser  # no deployment is made where the browser is missing
    base = Path(tempfile.mkdtemp(prefix="sovra-witness-"))
    root = base / "deployment"
    try:
        Deployment.init(root, origin="sovra.test/witnessed", custodians="in-process")
        dep = Deployment.open(root)
        try:
            log_vkey = dep.gateway.log.verifier_key
            svc = dep.store.get_principal("svc-pl")
            for n in range(3):
                dep.gateway.ingest(
                    svc, subject_id=f"s{n}@example.pl", jurisdiction="PL", content="tel. 601"
                )
        finally:
            dep.close()
        vkeys = {
            name: _sovra("witness", "init", base / name, "--name", name, "--log", log_vkey).strip()
            for name in (W1, W2)
        }
        toml = root / "sovra.toml"
        toml.write_text(
            toml.read_text().replace("keys = []", f'keys = ["{vkeys[W1]}"]', 1), encoding="utf-8"
        )
        with serving(root) as gateway:
            _sovra("witness", "cosign", base / W1, "--url", gateway.url, "--submit")
            yield gateway, vkeys
    finally:
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
    _open_log(page)
    assert page.get_attribute("#sig-status", "data-status") == "ok"
    assert _rows(page) == {W1: "verified"}
    assert vkeys[W1] in page.inner_text("main")  # the key it checked with, named by the server
    shoot(page, "log-witness")


def _cosignature(note: str, name: str) -> str:
    found = re.search(rf"^\u2014 {re.escape(name)} (\S+)$", note, re.MULTILINE)
    assert found, note
    return found[1]


def test_a_tampered_cosignature_is_shown_as_failed(page, witnessed):
    served, _ = witnessed
    note = served.get("/v1/log/checkpoint").decode()
    good = _cosignature(note, W1)
    at = len(good.rstrip("=")) - 4  # inside the signature, after key ID and timestamp
    bad = good[:at] + ("A" if good[at] != "A" else "B") + good[at + 1 :]

    page.route(
        "**/v1/log/checkpoint",
        lambda route: route.fulfill(
            status=200, body=note.replace(good, bad), content_type="text/plain"
        ),
    )
    _open_log(page)
    # The log's own signature still verifies; the witness's does not.
    assert page.get_attribute("#sig-status", "data-status") == "ok"
    assert _rows(page) == {W1: "failed"}
    assert page.locator("#witness-status .badge[data-status=fail]").count() == 1


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
