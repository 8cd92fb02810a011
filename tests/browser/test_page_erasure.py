"""Erasure from the page's subject view: asked, confirmed, logged, and the key destroyed;
a refusal shown with the log entry that records it."""

from __future__ import annotations

from typing import Any

from tests.browser.test_page_views import _report

# A synthetic subject of the demo, erased by her home authority (no other test reads her).
ERASED = ("VN", "vn-synthetic-0000", "authority-vn")


def test_her_home_authority_erases_her_after_confirming(page: Any, served: Any, shoot: Any):
    _report(page, ERASED, served.root)
    assert page.get_attribute("#subject-status", "data-status") == "ok"
    before = len(served.entries())
    page.click("#erase")
    assert page.is_visible("#erase-confirm")
    # Focus is on "Cancel": Enter there erases nothing.
    assert page.evaluate("document.activeElement.id") == "erase-no"
    page.keyboard.press("Enter")
    assert not page.is_visible("#erase-confirm")
    assert len(served.entries()) == before
    page.click("#erase")
    shoot(page, "subject-erase")
    page.click("#erase-yes")
    page.wait_for_selector("#erase-result")
    assert page.get_attribute("#erase-result", "data-status") == "ok"
    entries = served.entries()
    decision, shred = entries[before], entries[before + 1]
    assert [decision[k] for k in ("kind", "effect", "action")] == ["decision", "allow", "shred"]
    assert [shred[k] for k in ("kind", "principal", "jurisdiction")] == [
        "shred",
        "authority-vn",
        "VN",
    ]
    assert shred["decision_id"] == decision["decision_id"]
    assert f"#{before + 1}" in page.inner_text("#erase-result")
    # Her report now ends with the erasure, told in words and verified like the rest.
    page.click("#subject-submit")
    page.wait_for_selector("[data-done=yes]")
    told = page.locator(f"#subject-entries li[data-index='{before + 1}']")
    assert told.get_attribute("data-verified") == "yes"
    assert "Your data was erased" in told.inner_text()


def test_an_erasure_the_policy_refuses_shows_its_log_entry(page: Any, served: Any):
    # The report is asked as her home authority; the erasure request that follows is
    # turned, on its way, into one signed by her country's own service: refused.
    _report(page, ("VN", "vn-synthetic-0002", "authority-vn"), served.root)
    before = len(served.entries())
    key = (served.root / "principals" / "svc-vn.key").read_bytes()
    page.evaluate(
        """async (seed) => {
          const { importSeed, makeToken } = await import("/page/js/token.js");
          const key = await importSeed(new Uint8Array(seed));
          window.__svcToken = (body) =>
            makeToken(key, "svc-vn", "POST", "/v1/subjects/erase", body);
        }""",
        list(key),
    )

    def as_service(route: Any) -> None:
        body = route.request.post_data or ""
        token = page.evaluate("(b) => window.__svcToken(b)", body)
        route.continue_(headers={**route.request.headers, "authorization": f"Sovra {token}"})

    page.route("**/v1/subjects/erase", as_service)
    page.click("#erase")
    page.click("#erase-yes")
    page.wait_for_selector("#erase-result")
    assert page.get_attribute("#erase-result", "data-status") == "fail"
    entries = served.entries()
    assert len(entries) == before + 1
    refusal = entries[before]
    assert (refusal["kind"], refusal["effect"], refusal["principal"]) == (
        "decision",
        "deny",
        "svc-vn",
    )
    assert f"#{before}" in page.inner_text("#erase-result")
