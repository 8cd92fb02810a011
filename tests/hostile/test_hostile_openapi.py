"""schemathesis over the OpenAPI document, every request signed by a registered principal.

Generated requests (valid and invalid by the schema) go to a real server with a fresh
request token each, so they get past authentication and reach the routes' own checks.
Every answer must be below 500, carry a status the document lists for that operation,
and have the content type it states. Bounded in examples, so the run takes a minute or
two on a loaded two-core machine.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from urllib.parse import unquote, urlsplit

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from sovra.auth import make_token
from sovra.server import create_app

WHO = "svc-pl"
EXAMPLES = 50


@schemathesis.serializer("application/x-ndjson")
def _json_lines(ctx, value):
    """A batch body as generated: a string as its UTF-8 bytes, anything else as a JSON line."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    return json.dumps(value).encode() + b"\n"


class SovraAuth(requests.auth.AuthBase):
    """Signs each prepared request for exactly its method, path and body bytes."""

    def __init__(self, key, who: str) -> None:
        self._key, self._who = key, who

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        parts = urlsplit(r.url)
        # The gateway checks the token against the decoded path, as the ASGI server gives it.
        path = unquote(parts.path) + (f"?{parts.query}" if parts.query else "")
        body = r.body or b""
        if isinstance(body, str):
            body = body.encode()
        token = make_token(self._key, self._who, r.method, path, body, now_s=int(time.time()))
        r.headers["Authorization"] = f"Sovra {token}"
        return r


def _operations(dep):
    schema = schemathesis.openapi.from_dict(create_app(dep).openapi())
    return [result.ok() for result in schema.get_all_operations()]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_answers_as_documented(served, mode):
    dep, url = served
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    with requests.Session() as session:
        session.auth = SovraAuth(dep.principal_key(WHO), WHO)
        operations = _operations(dep)
        assert len(operations) >= 20
        without_invalid_form: list[str] = []
        statuses: Counter[int] = Counter()
        for operation in operations:

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def check(case):
                response = case.call(base_url=url, session=session, timeout=30)
                statuses[response.status_code] += 1
                case.validate_response(response, checks=checks)

            try:
                check()
            except Unsatisfiable:
                # Some operations have no invalid form (no body, only free-text parameters).
                assert mode is GenerationMode.NEGATIVE
                assert "requestBody" not in operation.definition.raw
                without_invalid_form.append(operation.label)
        assert len(without_invalid_form) <= len(operations) // 2, without_invalid_form
    print(mode, dict(statuses))
    # Signed requests get past authentication: the routes' own checks answer them.
    assert statuses[401] < sum(statuses.values()) // 10, statuses


def test_the_document_states_the_token_scheme_and_the_error_answers(served):
    _, url = served
    spec = requests.get(f"{url}/openapi.json", timeout=30).json()
    scheme = spec["components"]["securitySchemes"]["SovraToken"]
    assert scheme["type"] == "apiKey" and scheme["name"] == "Authorization"
    assert "sovra-token/v1." in scheme["description"] and "make_token" in scheme["description"]
    for path in ("/v1/records/batch", "/v1/access/batch"):
        batch = spec["paths"][path]["post"]
        assert batch["security"] == [{"SovraToken": []}]
        assert set(batch["requestBody"]["content"]) == {"application/x-ndjson"}
        assert set(batch["responses"]["200"]["content"]) == {"application/x-ndjson"}
        assert {"400", "401", "403", "408", "413", "415"} <= set(batch["responses"])
    ingest = spec["paths"]["/v1/records"]["post"]
    assert ingest["security"] == [{"SovraToken": []}]
    assert {"400", "401", "403", "404", "413"} <= set(ingest["responses"])
    assert "422" not in ingest["responses"]
    error = ingest["responses"]["413"]["content"]["application/json"]["schema"]
    assert error == {"$ref": "#/components/schemas/Error"}
    public = spec["paths"]["/v1/log/checkpoint"]["get"]
    assert "security" not in public and "401" not in public["responses"]
