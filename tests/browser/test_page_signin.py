"""The subject view signs in with a bearer JWT from an OpenID Connect issuer.

The issuer is the test's own: real keys, its JWKS served over HTTP on loopback, tokens
signed by PyJWT as an identity provider signs them. ``sovra serve`` runs over a deployment
whose ``[auth.oidc]`` takes ``subject`` tokens (``subject_claim = "email"``); the page sends
``Authorization: Bearer`` and verifies every proof of the report as with a signed token.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.browser.conftest import Served, fresh_page, serving
from tests.server.test_server_oidc import Issuer, oidc_table, run_issuer

from sovra.deployment import Deployment

ANNA = ("PL", "anna@example.pl")
NOTE = "Anna Kowalska, tel. +48 601 234 567"


@pytest.fixture(scope="module")
def issuer() -> Iterator[Issuer]:
    with run_issuer() as idp:
        yield idp


@pytest.fixture(scope="module")
def signin(browser: Any, issuer: Issuer) -> Iterator[Served]:
    """``sovra serve`` over a deployment that takes the issuer's subject tokens, with two
    records of Anna's stored."""
    del browser  # no deployment is made where the browser is missing
    base = Path(tempfile.mkdtemp(prefix="sovra-signin-"))
    root = base / "deployment"
    try:
        Deployment.init(root, origin="sovra.test/signin", custodians="in-process")
        table = oidc_table(
            issuer, roles='["service", "analyst", "auditor", "subject"]', subject_claim='"email"'
        )
        (root / "sovra.toml").write_text(
            (root / "sovra.toml").read_text() + table + '"data-subject" = "subject"\n'
        )
        dep = Deployment.open(root)
        try:
            svc = dep.store.get_principal("svc-pl")
            for _ in range(2):
                dep.gateway.ingest(svc, subject_id=ANNA[1], jurisdiction=ANNA[0], content=NOTE)
        finally:
            dep.close()
        with serving(root) as gateway:
            yield gateway
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def page(browser: Any, signin: Served) -> Iterator[Any]:
    with fresh_page(browser, signin.url) as opened:
        yield opened


def _token(issuer: Issuer, subject_id: str = ANNA[1]) -> str:
    return issuer.token("ec-1", sub="anna-k", roles=["data-subject"], email=subject_id)


def _sent(page: Any) -> list[str]:
    """The Authorization header of each call the page makes to /v1 (recorded)."""
    seen: list[str] = []
    page.on(
        "request",
        lambda r: (
            seen.append(r.headers.get("authorization", "")) if "/v1/subjects/" in r.url else None
        ),
    )
    return seen


def _submit(page: Any, token: str | None) -> None:
    page.wait_for_selector("main[data-ready=yes]")
    page.select_option("#subject-jurisdiction", ANNA[0])
    page.fill("#subject-id", ANNA[1])
    if token is not None:
        page.check("#signin-bearer")
        page.fill("#subject-bearer", token)
    page.click("#subject-submit")
    page.wait_for_selector("[data-done=yes]")


def test_a_subject_signs_in_with_her_issuers_token(page, signin, issuer, shoot):
    sent = _sent(page)
    token = _token(issuer)
    page.goto("/page/#/subject")
    page.wait_for_selector("main[data-ready=yes]")
    assert not page.is_visible("#subject-bearer")  # the key file is the default
    _submit(page, token)
    assert page.get_attribute("#subject-status", "data-status") == "ok", page.inner_text(
        "#subject-result"
    )
    items = page.locator("#subject-entries li")
    assert items.count() >= 3  # two records stored, her report
    assert page.locator("#subject-entries li[data-verified=no]").count() == 0
    assert "oidc:anna-k asked who touched your data." in page.inner_text("#subject-entries")
    assert sent == [f"Bearer {token}"]
    shoot(page, "subject-signin")
    # Her records, read for her under the same sign-in: a logged allow.
    with page.expect_download() as got:
        page.click("#archive")
    assert "Kowalska" in got.value.path().read_text(encoding="utf-8")
    assert sent[-1] == f"Bearer {token}"
    # Erasure needs a signed request: a bearer token may only read (writes = false).
    before = signin.json("/v1/info")["log_size"]
    page.click("#erase")
    page.click("#erase-yes")
    page.wait_for_selector("#erase-result")
    assert page.get_attribute("#erase-result", "data-status") == "fail"
    assert "may only read" in page.inner_text("#erase-result")
    assert signin.json("/v1/info")["log_size"] == before


def test_a_token_handed_in_the_address_signs_her_in_and_leaves_the_address(page, issuer):
    token = _token(issuer)
    page.goto(f"/page/#/subject?access_token={token}")
    page.wait_for_selector("main[data-ready=yes]")
    assert page.is_checked("#signin-bearer")
    assert page.input_value("#subject-bearer") == token
    assert token not in page.url
    _submit(page, None)
    assert page.get_attribute("#subject-status", "data-status") == "ok"


def test_a_forged_token_is_refused_by_the_gateway(page, issuer):
    token = _token(issuer)
    head, body, sig = token.split(".")
    forged = ".".join((head, body, ("A" if sig[0] != "A" else "B") + sig[1:]))
    page.goto("/page/#/subject")
    _submit(page, forged)
    assert page.get_attribute("#subject-status", "data-status") == "fail"
    assert "signature does not verify" in page.inner_text("#subject-status")
    assert page.locator("#subject-entries").count() == 0


def test_her_token_does_not_open_another_subjects_report(page, issuer):
    page.goto("/page/#/subject")
    _submit(page, _token(issuer, "jan@example.pl"))  # the form names Anna; the token, Jan
    assert page.get_attribute("#subject-status", "data-status") == "fail"
    assert page.locator("#subject-entries").count() == 0
