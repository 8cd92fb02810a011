"""The page's decisions, subject and compliance views in a real Chromium, against the
demo's outcomes, each count checked against the log read here apart; and the basics of
accessibility (labels, keyboard, a 375 px screen)."""

from __future__ import annotations

import base64
import csv
import io
import json
import re
from collections import Counter
from typing import Any

import pytest

ANNA = ("PL", "anna.kowalska@example.pl", "subject-anna")
LAN = ("VN", "nguyen.thi.lan@example.vn", "authority-vn")  # her home authority asks


def _open(page: Any, view: str) -> Any:
    page.goto(f"/page/#/{view}")
    page.wait_for_selector("main[data-ready=yes]")
    return page


def _cell(page: Any, table: str, row: str, column: int) -> str:
    """The text of *column* (0: the row's name) in the row of *table* named *row*."""
    line = page.locator(f"#{table} tbody tr").filter(has=page.locator("th", has_text=row))
    return line.locator("th, td").nth(column).inner_text().strip()


def test_decisions_show_the_demos_outcomes(page, served, shoot):
    entries = served.entries()
    decisions = [(i, e) for i, e in enumerate(entries) if e["kind"] == "decision"]
    us_denied = [
        i for i, e in decisions if e["principal"] == "authority-us" and e["effect"] == "deny"
    ]
    bulk = [i for i, e in decisions if "bulk-collection-per-request" in e["policies"]]
    grant = next(e for e in entries if e["kind"] == "grant")
    used = [i for i, e in decisions if e["effect"] == "allow" and e["grant"] == grant["grant"]]
    assert len(us_denied) == len(bulk) == len(used) == 1  # the demo's steps 2, 4 and 3

    _open(page, "decisions")
    assert _cell(page, "denied-foreign", "US (United States) → VN (Viet Nam)", 1) == "1"
    assert _cell(page, "bulk", "bulk-collection-per-request", 1) == "1"
    assert _cell(page, "grants", grant["grant_id"], 6) == "1"
    assert _cell(page, "grants", grant["grant_id"], 7) == "in force"
    by_requester = Counter(
        (e["effect"], served.json("/v1/page/summary")["principals"][e["principal"]]["jurisdiction"])
        for _, e in decisions
    )
    assert _cell(page, "by-requester", "US", 1) == str(by_requester["allow", "US"])
    assert _cell(page, "by-requester", "US", 2) == str(by_requester["deny", "US"])
    shoot(page, "decisions")

    # Each number leads to the entries behind it: here, the US authority's refusal.
    page.locator("#denied-foreign a").first.click()
    page.wait_for_selector("main[data-view=entries][data-ready=yes]")
    assert page.locator("#entries li").count() == 1
    assert page.locator("#entries li a").first.inner_text() == f"#{us_denied[0]}"
    page.go_back()
    page.wait_for_selector("main[data-view=decisions][data-ready=yes]")
    page.locator("#grants a").nth(1).click()  # "used"
    page.wait_for_selector("main[data-view=entries][data-ready=yes]")
    assert page.locator("#entries li a").first.inner_text() == f"#{used[0]}"


def _report(page: Any, who: tuple[str, str, str], root: Any, language: str = "en") -> None:
    jurisdiction, subject, principal = who
    _open(page, "subject")
    page.select_option("#subject-language", language)
    page.select_option("#subject-jurisdiction", jurisdiction)
    page.fill("#subject-id", subject)
    page.fill("#subject-principal", principal)
    page.set_input_files("#subject-key", str(root / "principals" / f"{principal}.key"))
    page.click("#subject-submit")
    page.wait_for_selector("[data-done=yes]")


def test_a_subject_sees_who_touched_her_data_with_every_proof_verified(page, served, shoot):
    _report(page, ANNA, served.root)
    assert page.get_attribute("#subject-status", "data-status") == "ok"
    items = page.locator("#subject-entries li")
    assert items.count() >= 5  # two records stored, a read, a key release, her reports
    assert page.locator("#subject-entries li[data-verified=no]").count() == 0
    text = page.inner_text("#subject-entries")
    assert "svc-pl (PL) read your records for customer-support." in text
    assert "The keys to your records were released to svc-pl." in text
    # Each listed entry is one the log holds, about her (checked here apart).
    entries = served.entries()
    for index in items.evaluate_all("els => els.map(e => Number(e.dataset.index))"):
        assert entries[index]["principal"] in ("svc-pl", "subject-anna")
    shoot(page, "subject")


@pytest.mark.parametrize(
    ("language", "words"),
    [
        ("pl", "odczytał(a) Twoje rekordy"),
        ("vi", "đã đọc hồ sơ của bạn"),
        ("de", "hat Ihre Datensätze zum Zweck"),
        ("fr", "a lu vos dossiers"),
        ("es", "leyó sus registros"),
        ("zh", "读取了您的记录"),
        ("en", "read your records for foreign-legal-process under grant mla-vn-"),
    ],
)
def test_the_report_is_told_in_her_language(page, served, shoot, language, words):
    _report(page, LAN, served.root, language)
    assert page.get_attribute("#subject-status", "data-status") == "ok"
    assert words in page.inner_text("#subject-entries")
    assert page.locator("#subject-entries li").first.get_attribute("lang") == language
    if language == "vi":
        shoot(page, "subject-vi")


def test_a_tampered_inclusion_proof_is_shown_as_failed(page, served):
    def tamper(route: Any) -> None:
        report = route.fetch().json()
        proof = report["entries"][1]["proof"]
        first = bytearray(base64.b64decode(proof[0]))
        first[0] ^= 1
        proof[0] = base64.b64encode(bytes(first)).decode()
        route.fulfill(status=200, body=json.dumps(report), content_type="application/json")

    page.route(re.compile(r".*/v1/subjects/report$"), tamper)
    _report(page, ANNA, served.root)
    assert page.get_attribute("#subject-status", "data-status") == "fail"
    assert page.locator("#subject-entries li[data-verified=no]").count() == 1
    assert page.locator("#subject-entries li").nth(1).get_attribute("data-verified") == "no"


def test_a_report_with_a_tampered_checkpoint_is_shown_as_failed(page, served):
    def tamper(route: Any) -> None:
        report = route.fetch().json()
        lines = report["checkpoint"].split("\n")
        lines[1] = str(int(lines[1]) + 1)
        report["checkpoint"] = "\n".join(lines)
        route.fulfill(status=200, body=json.dumps(report), content_type="application/json")

    page.route(re.compile(r".*/v1/subjects/report$"), tamper)
    _report(page, ANNA, served.root)
    assert page.get_attribute("#subject-status", "data-status") == "fail"
    assert "does not verify" in page.inner_text("#subject-status")


def test_a_wrong_key_is_refused_by_the_gateway(page, served, tmp_path):
    (tmp_path / "principals").mkdir()
    (tmp_path / "principals" / "subject-anna.key").write_bytes(bytes(range(32)))
    _report(page, (*ANNA[:2], "subject-anna"), tmp_path)
    assert page.get_attribute("#subject-status", "data-status") == "fail"
    assert page.locator("#subject-entries").count() == 0


def test_compliance_counts_findings_and_exports_them(page, served, shoot):
    found: Counter[tuple[str, str]] = Counter()
    for e in served.entries():
        if e["kind"] == "ingest" and isinstance(e["kinds"], dict):
            for kind, n in e["kinds"].items():
                found[e["jurisdiction"], kind] += n
    _open(page, "compliance")
    assert _cell(page, "compliance", "PL · pl_pesel · none declared", 1) == str(
        found["PL", "pl_pesel"]
    )
    shoot(page, "compliance")
    with page.expect_download() as got:
        page.click("#export-csv")
    rows = list(csv.DictReader(io.StringIO(got.value.path().read_text(encoding="utf-8"))))
    exported = Counter({(r["jurisdiction"], r["kind"]): int(r["found"]) for r in rows})
    assert exported == found
    assert any(r["kind"] == "pl_pesel" and int(r["action:tokenize"]) > 0 for r in rows)
    with page.expect_download() as got:
        page.click("#export-json")
    data = json.loads(got.value.path().read_text(encoding="utf-8"))
    assert Counter({(r["jurisdiction"], r["kind"]): r["found"] for r in data["rows"]}) == found


@pytest.mark.parametrize("view", ["log", "decisions", "subject", "compliance"])
def test_each_view_fits_a_375_px_screen_and_labels_its_controls(browser, served, view):
    context = browser.new_context(viewport={"width": 375, "height": 800}, base_url=served.url)
    context.set_default_timeout(60_000)
    try:
        page = _open(context.new_page(), view)
        assert page.evaluate("document.documentElement.scrollWidth") <= 375
        unlabelled = page.evaluate(
            """() => [...document.querySelectorAll('input, select, textarea')]
                 .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
                 .map(el => el.id || el.name)"""
        )
        assert unlabelled == []
    finally:
        context.close()


def test_the_views_are_reached_with_the_keyboard(page, served):
    _open(page, "log")
    page.keyboard.press("Tab")  # the skip link first
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    for _ in range(20):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.dataset.view") == "compliance":
            break
    page.keyboard.press("Enter")
    page.wait_for_selector("main[data-view=compliance][data-ready=yes]")
    assert page.get_attribute("nav a[data-view=compliance]", "aria-current") == "page"


def test_a_subject_downloads_her_records_under_a_logged_allow(page, served):
    _report(page, ANNA, served.root)
    with page.expect_download() as got:
        page.click("#archive")
    archive = json.loads(got.value.path().read_text(encoding="utf-8"))
    assert archive["decision"]["effect"] == "allow"
    assert len(archive["records"]) == 2
    assert any("Kowalska" in text for text in archive["records"].values())
    logged = served.entries()[archive["log_index"]]
    assert logged["kind"] == "decision"
    assert logged["principal"] == "subject-anna"
    assert logged["decision_id"] == archive["decision"]["decision_id"]
    assert sorted(logged["records"]) == sorted(archive["records"])
    page.wait_for_selector(f"#archive-status:has-text('#{archive['log_index']}')")


def test_every_language_has_every_message(page, served):
    page.goto("/page/")
    missing = page.evaluate(
        """async () => {
          const { CATALOGUE, LANGUAGES } = await import("/page/js/i18n.js");
          const want = Object.keys(CATALOGUE.en);
          return Object.fromEntries(Object.keys(LANGUAGES).map(
            (l) => [l, want.filter((k) => !(CATALOGUE[l] || {})[k])]));
        }"""
    )
    assert set(missing) == {"en", "pl", "vi", "de", "fr", "es", "zh"}
    assert all(keys == [] for keys in missing.values()), missing
