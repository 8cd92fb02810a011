"""The page's summary is counted once per size of the log: asked again while the log has
not grown, it is served from what was counted; once the log grows it is counted again, and
equals a count made from scratch of every entry."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from sovra.deployment import Deployment
from sovra.server import create_app, page_tally
from sovra.server.page import _PLOTTED, _SERIES_WIDTH
from sovra.server.page_tally import Tally

TEXT = "Anna Kowalska, PESEL 44051401359, tel. +48 601 234 567"


@pytest.fixture
def dep(root: Path):
    opened = Deployment.open(root)
    try:
        yield opened
    finally:
        opened.close()


def _from_scratch(dep: Deployment) -> dict[str, Any]:
    """What a tally made now, reading every entry, says."""
    fresh = Tally(dep.store.get_principal)
    log = dep.gateway.log
    fresh.update(log.stored_size(), log.iter_entries)
    return {
        **fresh.summary(_PLOTTED, _SERIES_WIDTH),
        "grants": fresh.grant_rows(time.time()),
    }


def _counted(summary: dict[str, Any]) -> dict[str, Any]:
    keys = ("size", "facets", "totals", "series", "facet_series", "principals", "grants")
    return {k: summary[k] for k in keys}


def test_the_summary_is_counted_once_per_log_size(dep, monkeypatch) -> None:
    passes: list[int] = []
    counts = page_tally.Tally.counts

    def counting(self: Tally) -> dict[str, dict[str, int]]:
        passes.append(self.size)
        return counts(self)

    monkeypatch.setattr(page_tally.Tally, "counts", counting)
    svc = dep.store.get_principal("svc-pl")
    with TestClient(create_app(dep)) as http:
        first = http.get("/v1/page/summary").json()
        again = http.get("/v1/page/summary").json()
        assert passes == [first["size"]]  # the second answer was not counted again
        assert again == first
        monkeypatch.setattr(page_tally.Tally, "counts", counts)
        assert _counted(first) == _counted(_from_scratch(dep))
        monkeypatch.setattr(page_tally.Tally, "counts", counting)

        for n in range(3):
            dep.gateway.ingest(svc, subject_id=f"s{n}@example.pl", jurisdiction="PL", content=TEXT)
        grown = http.get("/v1/page/summary").json()
        assert grown["size"] == first["size"] + 3 == dep.gateway.log.stored_size()
        assert passes == [first["size"], grown["size"]]
        assert (
            grown["facets"]["kind"]["ingest"]
            == first["facets"].get("kind", {}).get("ingest", 0) + 3
        )
        monkeypatch.setattr(page_tally.Tally, "counts", counts)
        assert _counted(grown) == _counted(_from_scratch(dep))
        # The entries behind a count follow the grown log too.
        behind = http.get("/v1/page/entries", params={"facet": "kind", "key": "ingest"}).json()
        assert behind["total"] == grown["facets"]["kind"]["ingest"]
