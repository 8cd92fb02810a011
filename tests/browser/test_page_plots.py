"""Plots over time on the decisions and compliance views: a stacked bar per span of time
for each key of a facet (allow/deny by the data's jurisdiction, by the requester's, by
justification; findings and minimisation per kind), each coloured part a link, reached
with the keyboard, to the very log entries it counts (checked here against the log)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest


def _open(page: Any, view: str) -> Any:
    page.goto(f"/page/#/{view}")
    page.wait_for_selector("main[data-ready=yes]")
    return page


def _segments(page: Any, plot: str) -> list[tuple[dict[str, str], int]]:
    """Each segment of *plot*: its link's query and the count its label states."""
    out = []
    for seg in page.locator(f"#{plot} a.seg").all():
        query = {
            k: v[0]
            for k, v in parse_qs(
                urlsplit(seg.get_attribute("href")).fragment.split("?", 1)[1]
            ).items()
        }
        count = re.search(r": (\d+) entr", seg.get_attribute("aria-label"))
        assert count, seg.get_attribute("aria-label")
        out.append((query, int(count[1])))
    return out


def _follow(page: Any, plot: str, n: int) -> list[int]:
    """Focus the *n*-th segment of *plot*, press Enter, and return the listed indices."""
    page.locator(f"#{plot} a.seg").nth(n).focus()
    page.keyboard.press("Enter")
    page.wait_for_selector("main[data-view=entries][data-ready=yes]")
    texts = page.locator("#entries li > a").all_inner_texts()
    return [int(t.lstrip("#")) for t in texts]


@pytest.mark.parametrize("facet", ["jurisdiction", "requester", "justification"])
def test_decisions_over_time_add_up_and_link_to_their_entries(page, served, facet):
    summary = served.json("/v1/page/summary")
    _open(page, "decisions")
    segments = _segments(page, f"plot-{facet}")
    assert segments
    per_key: dict[str, int] = {}
    for query, n in segments:
        assert query["facet"] == facet
        per_key[query["key"]] = per_key.get(query["key"], 0) + n
    # Every entry of each count is in exactly one span: the bars add up to the table.
    assert per_key == summary["facets"][facet]
    # The biggest segment leads to exactly the entries it counts, all in its span.
    n = max(range(len(segments)), key=lambda i: segments[i][1])
    query, count = segments[n]
    listed = _follow(page, f"plot-{facet}", n)
    assert len(listed) == min(count, 100)
    entries = served.entries()
    effect = query["key"].split("|")[0]
    for i in listed:
        assert entries[i]["kind"] == "decision"
        assert entries[i]["effect"] == effect
        assert int(query["start_ms"]) <= entries[i]["time_ms"] < int(query["end_ms"])
    if facet == "requester":
        home = query["key"].split("|", 1)[1]
        for i in listed:
            assert summary["principals"][entries[i]["principal"]]["jurisdiction"] == home


def test_findings_and_minimisation_over_time_link_to_their_ingests(page, served):
    _open(page, "compliance")
    entries = served.entries()
    for plot, facet in (
        ("plot-found-kind", "found-kind"),
        ("plot-minimised-kind", "minimised-kind"),
    ):
        segments = _segments(page, plot)
        assert segments
        total: dict[str, int] = {}
        for query, n in segments:
            total[query["key"]] = total.get(query["key"], 0) + n
        expected: dict[str, int] = {}
        for e in entries:
            if e["kind"] != "ingest":
                continue
            if facet == "found-kind" and isinstance(e["kinds"], dict):
                for kind in e["kinds"]:
                    expected[kind] = expected.get(kind, 0) + 1
            if facet == "minimised-kind" and isinstance(e["actions"], dict):
                for kind, action in e["actions"].items():
                    expected[f"{kind}|{action}"] = expected.get(f"{kind}|{action}", 0) + 1
        assert total == expected
    query, count = _segments(page, "plot-found-kind")[0]
    listed = _follow(page, "plot-found-kind", 0)
    assert len(listed) == min(count, 100)
    for i in listed:
        assert entries[i]["kind"] == "ingest"
        assert query["key"] in entries[i]["kinds"]
        assert int(query["start_ms"]) <= entries[i]["time_ms"] < int(query["end_ms"])


def test_a_span_with_its_end_before_its_start_is_refused(served):
    import urllib.error

    with pytest.raises(urllib.error.HTTPError) as refused:
        served.get("/v1/page/entries?facet=kind&key=ingest&start_ms=10&end_ms=5")
    refused.value.close()
    assert refused.value.code == 400
