"""API docs: the OpenAPI document as the API really behaves, and Swagger UI served offline.

The document states both ways to sign in (the signed request token, how to build one, and
bearer JWTs from the configured OpenID Connect issuer, for the routes they may call) and,
for every route, the error answers it can give, in sovra's error format. Swagger UI (5.x,
which renders the OpenAPI 3.1 that FastAPI writes) comes from the ``fastapi-offline``
package's assets, so ``/docs`` works on a machine with no internet.
"""

from collections.abc import Callable, Iterator
from importlib.resources import files
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

from sovra.config import OidcConfig
from sovra.oidc import READS

__all__ = ["BEARER_SCHEME", "SECURITY_SCHEME", "describe_api", "mount_docs"]

_ASSETS = "/docs-assets"
# swagger-ui-dist 5.x, as fastapi-offline packages it (no CDN at run time).
_SWAGGER_UI = files("fastapi_offline") / "static"


def mount_docs(app: FastAPI) -> None:
    """Serve Swagger UI at ``/docs`` from the ``fastapi-offline`` package's copy of
    swagger-ui-dist, not a CDN."""
    app.mount(_ASSETS, StaticFiles(directory=str(_SWAGGER_UI)), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} API",
            swagger_js_url=f"{_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{_ASSETS}/favicon.png",
            # Keep what was typed in "Authorize" across reloads of the page.
            swagger_ui_parameters={"persistAuthorization": True},
        )


SECURITY_SCHEME = "SovraToken"
"""The name of the request-token security scheme in the OpenAPI document."""

BEARER_SCHEME = "BearerJWT"
"""The name of the bearer-JWT security scheme in the OpenAPI document."""

_SIGNING = """\
Every call under `/v1` except the public ones (the log, `/v1/info`, `/v1/sealed/custodians`,
`/v1/policy/metrics`) carries `Authorization: Sovra <token>`, a token signed for exactly
that request by a registered principal's Ed25519 key. The token is
`v1.<claims>.<signature>`, both base64url without padding:

- *claims* is the canonical JSON (sorted keys, no whitespace, UTF-8) of
  `{"sub": <principal id>, "htm": <method, upper case>, "htu": <path with its query>,
  "bh": <hex SHA-256 of the exact body bytes, of the empty string when there is none>,
  "iat": <UNIX seconds now>, "exp": <iat + lifetime, at most the deployment's
  token_max_age_s>, "nonce": <16 random bytes, base64url>}`;
- *signature* is the principal's Ed25519 signature over the ASCII bytes
  `sovra-token/v1.` followed by the base64url *claims* exactly as sent.

A token is good for one request only (its nonce is remembered until it expires), for the
method, path and body it names, within 30 s of clock skew. In Python,
`sovra.auth.make_token(key, principal_id, method, path, body, now_s=int(time.time()))`
builds one; `sovra.client.Client` signs every call itself; docs/api.md shows how with curl
and openssl. In "Authorize", enter the whole header value, `Sovra v1.<claims>.<signature>`,
made for the one request "Try it out" will send.
"""

_BEARER = """`Authorization: Bearer <jwt>`: an OAuth 2.0 / OpenID Connect access token (a JWT) from
{issuer}, checked against the issuer's JWKS (`iss`, `aud` {audience}, `exp`, `nbf`, `iat`,
asymmetric algorithms only). Its claims name the principal, role and jurisdiction, as
`[auth.oidc]` in sovra.toml maps them. A bearer token binds no request: it may call
{scope}; see docs/api.md.
"""


_ERROR_SCHEMA = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {
        "error": {"type": "string", "description": "a stable code, e.g. denied, not_found"},
        "message": {"type": "string", "description": "what was wrong, in words"},
        "log_index": {
            "type": "integer",
            "description": "the log entry that recorded this refusal, when one was written",
        },
    },
}

_WHY = {
    "400": "malformed request: bad JSON, unknown or missing field, bad value",
    "401": "missing, malformed, forged, expired, replayed or misdirected request token",
    "403": "refused by a logged decision (the body names its log_index)",
    "404": "no such record, grant, decision, entry, tile or route",
    "408": "the request body did not arrive in time",
    "413": "request body over the configured limit (refused before it is read)",
}


def _calls(dependant: Any) -> Iterator[Callable[..., Any]]:
    for sub in dependant.dependencies:
        if sub.call is not None:
            yield sub.call
        yield from _calls(sub)


def _schemes(oidc: OidcConfig | None) -> dict[str, Any]:
    if oidc is None:
        issuer, audience = "the issuer `[auth.oidc]` names (this deployment has none", ")"
        scope = "nothing here until one is configured"
    else:
        issuer, audience = f"`{oidc.issuer}`", f"`{oidc.audience}`"
        scope = (
            "every route that takes a credential"
            if oidc.writes
            else (
                "the routes that read (GET, and POST to "
                + ", ".join(sorted(p for _, p in READS))
                + "); the others need a signed token"
            )
        )
    return {
        SECURITY_SCHEME: {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": _SIGNING,
        },
        BEARER_SCHEME: {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": _BEARER.format(issuer=issuer, audience=audience, scope=scope),
        },
    }


def describe_api(
    app: FastAPI, authenticate: Callable[..., Any], oidc: OidcConfig | None = None
) -> None:
    """State in the OpenAPI document what every route really answers and how to sign in.

    Routes that depend on *authenticate* get their 401 and 403 answers and the
    ``SovraToken`` security requirement, or ``BearerJWT`` instead where a bearer token
    may call them (under *oidc*'s settings; with none, no route takes one); every route
    gets the 400, 404, 408 and 413 answers the framework and the body limits give, in
    sovra's error format (FastAPI's own 422 is never sent: its validation errors are
    answered as 400; a route may still declare a 422 of its own).
    """
    secured = {
        (route.path, method)
        for route in app.routes
        if isinstance(route, APIRoute) and authenticate in _calls(route.dependant)
        for method in route.methods or ()
    }

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        spec = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        components = spec.setdefault("components", {})
        components.setdefault("schemas", {})["Error"] = _ERROR_SCHEMA
        components["securitySchemes"] = _schemes(oidc)
        error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
        for path, operations in spec.get("paths", {}).items():
            for method, operation in operations.items():
                responses = operation.setdefault("responses", {})
                if "HTTPValidationError" in str(responses.get("422")):
                    responses.pop("422")  # the framework's: sent as 400 instead
                codes = ["400", "404", "408", "413"]
                if (path, method.upper()) in secured:
                    operation["security"] = [{SECURITY_SCHEME: []}]
                    if oidc is not None and (
                        oidc.writes or method == "get" or ("POST", path) in READS
                    ):
                        operation["security"].append({BEARER_SCHEME: []})
                    codes += ["401", "403"]
                for code in sorted(codes):
                    responses.setdefault(code, {"description": _WHY[code], "content": error})
        app.openapi_schema = spec
        return spec

    app.openapi = openapi  # type: ignore[method-assign]
