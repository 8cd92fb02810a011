"""``/docs`` and ``/openapi.json``: a Swagger UI that renders OpenAPI 3.1, served from the
package (no CDN), and a document that states both ways to sign in, route by route.

(The page itself is rendered in a real browser by tests/browser.)"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from sovra.deployment import Deployment
from sovra.server import create_app

OIDC = """
[auth.oidc]
issuer = "https://login.example.org/realms/sovra"
audience = "sovra"
jwks_url = "http://127.0.0.1:9/certs"
role = "analyst"
jurisdiction = "PL"
"""


def _served(root: Path) -> Iterator[TestClient]:
    dep = Deployment.open(root)
    try:
        with TestClient(create_app(dep)) as client:
            yield client
    finally:
        dep.close()


@pytest.fixture
def http(root: Path) -> Iterator[TestClient]:
    yield from _served(root)


@pytest.fixture
def http_oidc(root: Path) -> Iterator[TestClient]:
    with (root / "sovra.toml").open("a", encoding="utf-8") as f:
        f.write(OIDC)
    yield from _served(root)


def test_the_served_swagger_ui_is_version_5_or_later_and_local(http):
    page = http.get("/docs")
    assert page.status_code == 200
    assets = re.findall(r"""(?:src|href)=["']?(/[^"' >]+)""", page.text)
    assert {"/docs-assets/swagger-ui-bundle.js", "/docs-assets/swagger-ui.css"} <= set(assets)
    assert "://" not in " ".join(re.findall(r"""(?:src|href)=["']?([^"' >]+)""", page.text))
    for asset in assets:
        assert http.get(asset).status_code == 200, asset
    bundle = http.get("/docs-assets/swagger-ui-bundle.js").text
    version = re.search(r'PACKAGE_VERSION:"(\d+)\.(\d+)\.(\d+)"', bundle)
    assert version, "the bundle states no version"
    assert tuple(map(int, version.groups())) >= (5, 0, 0)


def _security(spec: dict[str, Any], path: str, method: str) -> list[str]:
    return [name for req in spec["paths"][path][method].get("security", []) for name in req]


def test_the_document_is_openapi_3_1_and_declares_both_schemes(http):
    spec = http.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.1.")
    schemes = spec["components"]["securitySchemes"]
    assert schemes["SovraToken"]["type"] == "apiKey"
    assert (schemes["SovraToken"]["in"], schemes["SovraToken"]["name"]) == (
        "header",
        "Authorization",
    )
    assert "sovra-token/v1." in schemes["SovraToken"]["description"]
    assert {k: schemes["BearerJWT"][k] for k in ("type", "scheme", "bearerFormat")} == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
    }
    # No issuer configured: no route takes a bearer token, and the scheme says so.
    assert "has none" in schemes["BearerJWT"]["description"]
    assert _security(spec, "/v1/access", "post") == ["SovraToken"]
    assert _security(spec, "/v1/info", "get") == []


def test_with_an_issuer_the_reading_routes_take_either_credential(http_oidc):
    spec = http_oidc.get("/openapi.json").json()
    bearer = spec["components"]["securitySchemes"]["BearerJWT"]["description"]
    assert "`https://login.example.org/realms/sovra`" in bearer
    assert _security(spec, "/v1/access", "post") == ["SovraToken", "BearerJWT"]
    assert _security(spec, "/v1/subjects/report", "post") == ["SovraToken", "BearerJWT"]
    assert _security(spec, "/v1/grants/{grant_id}", "get") == ["SovraToken", "BearerJWT"]
    assert _security(spec, "/v1/records", "post") == ["SovraToken"]
    assert _security(spec, "/v1/grants", "post") == ["SovraToken"]
    assert _security(spec, "/v1/log/checkpoint", "get") == []


def test_each_batch_route_documents_the_idempotency_answers_it_gives(http):
    paths = http.get("/openapi.json").json()["paths"]
    records = paths["/v1/records/batch"]["post"]["responses"]
    access = paths["/v1/access/batch"]["post"]["responses"]
    # Only a record batch takes an Idempotency-Key: a key in flight (409) or reused with
    # another body (422). An access batch refuses a key with 400, which every route states.
    assert {"409", "422"} <= set(records)
    assert "Idempotency-Key" in records["409"]["description"]
    assert not {"409", "422"} & set(access)
    assert {"200", "400", "415"} <= set(access)
