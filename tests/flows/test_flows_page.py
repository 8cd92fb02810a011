"""The page's data routes: counts of the public log by facet, each back to its entries."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from tests.initial_log import logged_by_init

from sovra.auth import make_token
from sovra.server import create_app

ANNA_TEXT = "Anna Kowalska, PESEL 44051401359, tel. +48 601 234 567"


@pytest.fixture
def http(dep):
    with TestClient(create_app(dep), raise_server_exceptions=True) as client:
        yield client


def _call(http, dep, clock, who, path, body):
    data = json.dumps(body).encode()
    token = make_token(dep.principal_key(who), who, "POST", path, data, now_s=int(clock()))
    headers = {"authorization": f"Sovra {token}", "content-type": "application/json"}
    return http.post(path, content=data, headers=headers)


def test_counts_link_back_to_the_entries_behind_them(http, dep, clock):
    body = {"subject_id": "anna@example.pl", "jurisdiction": "PL", "content": ANNA_TEXT}
    put = _call(http, dep, clock, "svc-pl", "/v1/records", body)
    assert put.status_code == 201, put.text
    rid = put.json()["record_id"]
    refused = _call(
        http,
        dep,
        clock,
        "authority-us",
        "/v1/access",
        {"purpose": "foreign-legal-process", "record_ids": [rid]},
    )
    assert refused.status_code == 403
    denial = refused.json()["log_index"]

    summary = http.get("/v1/page/summary").json()
    facets = summary["facets"]
    assert summary["size"] == dep.gateway.log.stored_size() == logged_by_init(dep) + 2
    # sovra init logged each principal it registered: a principal entry each.
    assert facets["kind"] == {"principal": logged_by_init(dep), "ingest": 1, "decision": 1}
    assert facets["denied-foreign"] == {"US|PL": 1}
    assert facets["jurisdiction"] == {"deny|PL": 1}
    assert facets["requester"] == {"deny|US": 1}
    assert summary["principals"]["authority-us"] == {"jurisdiction": "US", "role": "authority"}
    # Findings are counted by kind, never by value.
    logged = json.loads(dep.gateway.log.entry(put.json()["log_index"]))
    for kind, n in logged["kinds"].items():
        assert summary["totals"]["found"][f"PL|{kind}|none declared"] == n
    assert "44051401359" not in json.dumps(summary)

    behind = http.get("/v1/page/entries", params={"facet": "denied-foreign", "key": "US|PL"})
    assert behind.status_code == 200
    assert [e["index"] for e in behind.json()["entries"]] == [denial]
    assert behind.json()["entries"][0]["entry"] == dep.gateway.log.entry(denial).decode()
    # The tally follows the log as it grows.
    again = _call(http, dep, clock, "svc-pl", "/v1/records", body)
    assert again.status_code == 201
    assert http.get("/v1/page/summary").json()["facets"]["kind"]["ingest"] == 2


def test_an_unknown_facet_is_refused(http):
    r = http.get("/v1/page/entries", params={"facet": "secrets", "key": "x"})
    assert r.status_code == 400
    assert "unknown facet" in r.text


def test_the_page_is_served_as_static_files(http):
    index = http.get("/page/")
    assert index.status_code == 200
    assert 'src="js/app.js"' in index.text
    module = http.get("/page/js/app.js")
    assert module.headers["content-type"].startswith("text/javascript")
    assert http.get("/page", follow_redirects=False).headers["location"] == "/page/"
    assert "/page/" in http.get("/").text
