"""HTTP API: a thin adapter from requests to the gateway, and errors to status codes.

Every call under ``/v1`` except the public log is authenticated with a signed request
token (``Authorization: Sovra <token>``, see :mod:`sovra.auth`) or, where ``[auth.oidc]``
names an issuer, a bearer JWT (:mod:`sovra.oidc`). The log endpoints are
public on purpose: anyone may verify the log. Errors are translated once, here:
:class:`~sovra.errors.SovraError` subclasses carry their own status.
"""

import base64
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Annotated, Any

import orjson
from fastapi import Depends, FastAPI, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from fastapi.routing import APIRoute

from sovra import __version__
from sovra.deployment import Deployment
from sovra.errors import BadRequest
from sovra.gateway import AccessResult, IngestReceipt
from sovra.governance import SubjectReport
from sovra.model import Grant, Principal
from sovra.oidc import bearer_scheme
from sovra.server.background import following, publishing
from sovra.server.batch import add_batch_routes
from sovra.server.bodies import AccessBody, IngestBody, SubjectRef
from sovra.server.direct import in_thread, serve_directly
from sovra.server.docs import describe_api, mount_docs
from sovra.server.handlers import add_error_handlers
from sovra.server.limits import PARSED_BODY, BodyLimits
from sovra.server.log import log_tiles_router
from sovra.server.ops import add_operations, note_principal
from sovra.server.page import add_page_routes
from sovra.server.policy import add_policy_routes
from sovra.server.sealed import add_sealed_routes

__all__ = ["JSONBytes", "create_app"]

log = logging.getLogger("sovra.server")


class JSONBytes(JSONResponse):
    """A JSON answer encoded once, by orjson, from plain data.

    Returned by the routes themselves, so the framework neither walks the answer with its
    generic encoder nor validates it against the return annotation (together some 50 us
    per answer against orjson's one). A JSONResponse, so that the OpenAPI document states
    its answers as JSON of any shape, not as a string.
    """

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        """*content* as UTF-8 JSON.

        Raises:
            TypeError: *content* holds something JSON cannot carry (a programming error).
        """
        return orjson.dumps(content)


class _ParsedOnce(Request):
    """A request whose JSON body is the one :class:`~sovra.server.limits.BodyLimits`
    parsed already (strictly and bounded), so the framework does not parse it again."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            parsed = self.scope.get(PARSED_BODY, _UNPARSED)
            self._json = await super().json() if parsed is _UNPARSED else parsed
        return self._json


_UNPARSED = object()


class _Route(APIRoute):
    """Routes that hand their handler a :class:`_ParsedOnce` request."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def handler(request: Request) -> Response:
            return await handle(_ParsedOnce(request.scope, request.receive))

        return handler


def create_app(deployment: Deployment) -> FastAPI:
    """Build the ASGI application for an opened deployment."""
    gw = deployment.gateway
    gov = deployment.governance

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        with (
            publishing(gw.log.checkpoint, deployment.config.log_publish_every_s),
            following(gov.follow_policy),
        ):
            yield

    app = FastAPI(
        lifespan=lifespan,
        title="sovra",
        version=__version__,
        description="Data-sovereignty gateway: ingest, access, grants, subject reports and a "
        "public Merkle transparency log. Authenticate with `Authorization: Sovra <token>` "
        "or, where an OpenID Connect issuer is configured, `Authorization: Bearer <jwt>`.",
        docs_url=None,
        redoc_url=None,
        # No OpenTelemetry: otherwise every request asks whether a provider is set.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    app.router.route_class = _Route
    mount_docs(app)

    # Sizes, time and JSON shape of every body are bounded before any route runs.
    app.add_middleware(
        BodyLimits,
        max_body_bytes=deployment.config.max_body_bytes,
        body_timeout_s=deployment.config.body_timeout_s,
    )

    bearer_check = bearer_scheme(deployment.bearer)

    def signed_by(request: Request) -> Callable[[bytes], Principal]:
        """The check of *request*'s token against its body (the body is passed in, so
        the check can run off the event loop)."""
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        url = request.url
        path = url.path + (f"?{url.query}" if url.query else "")
        method = request.method
        scope = request.scope
        if header and scheme != "Sovra":
            check = bearer_check(scheme, token, method, path)
            return lambda body: note_principal(scope, check(body))
        authenticate = deployment.authenticator.authenticate
        return lambda body: note_principal(scope, authenticate(token or None, method, path, body))

    async def principal(request: Request) -> Principal:
        check = signed_by(request)
        body = await request.body()
        # Off the loop: the replay store is a database write.
        return await in_thread(check, body)

    Caller = Annotated[Principal, Depends(principal)]

    add_error_handlers(app)

    @app.post("/v1/records", status_code=201, tags=["records"], response_class=JSONBytes)
    def ingest(body: IngestBody, caller: Caller) -> JSONBytes:
        """Ingest a record: classify, minimise, place, seal, wrap, store, log."""
        receipt = gw.ingest(
            caller,
            subject_id=body.subject_id,
            jurisdiction=body.jurisdiction,
            content=body.content,
            purpose=body.purpose,
        )
        return JSONBytes(_receipt(receipt), status_code=201)

    @app.post("/v1/access", tags=["records"], response_class=JSONBytes)
    def access(body: AccessBody, caller: Caller) -> JSONBytes:
        """Read records. The decision, allow or deny, is logged before anything is released."""
        grant = Grant.from_json(body.grant) if body.grant is not None else None
        return JSONBytes(
            _access(
                gw.access(
                    caller,
                    purpose=body.purpose,
                    record_ids=body.record_ids,
                    subjects=[(s.jurisdiction, s.subject_id) for s in body.subjects],
                    jurisdiction=body.jurisdiction,
                    grant=grant,
                    justification=body.justification,
                    reveal=body.reveal,
                )
            )
        )

    @app.post("/v1/grants", status_code=201, tags=["grants"])
    def register_grant(body: dict[str, Any], caller: Caller) -> dict[str, Any]:
        """Register a legal-assistance grant signed by the subjects' home authority."""
        return {"receipt": gov.register_grant(caller, Grant.from_json(body)).to_dict()}

    @app.get("/v1/grants/{grant_id}", tags=["grants"])
    def show_grant(grant_id: str, caller: Caller) -> dict[str, Any]:
        """A registered grant, with its revocation status."""
        status = gov.grant_status(caller, grant_id)
        return {
            "grant": status.grant.body() | {"signature": status.grant.signature.hex()},
            "revoked": status.revoked,
        }

    @app.post("/v1/grants/{grant_id}/revoke", tags=["grants"])
    def revoke_grant(grant_id: str, caller: Caller) -> dict[str, Any]:
        """Revoke a grant (its approving authority only); takes effect at once."""
        return {"receipt": gov.revoke_grant(caller, grant_id).to_dict()}

    @app.post("/v1/subjects/report", tags=["subjects"])
    def subject_report(body: SubjectRef, caller: Caller) -> dict[str, Any]:
        """Who touched this subject's data: her log entries with inclusion proofs."""
        return _report(
            gov.subject_report(caller, jurisdiction=body.jurisdiction, subject_id=body.subject_id)
        )

    # The two hot routes: their common case skips the framework's per-request plumbing.
    serve_directly(app, "/v1/records", IngestBody, signed_by)
    serve_directly(app, "/v1/access", AccessBody, signed_by)

    add_policy_routes(app, gov, Caller)
    add_sealed_routes(app, gw, Caller)
    add_batch_routes(app, gw, Caller, receipt=_receipt, access=_access)

    # -- the public log --------------------------------------------------------------------

    app.include_router(log_tiles_router(gw.log, deployment.cosignatures))

    @app.get("/v1/log/key", response_class=PlainTextResponse, tags=["log"])
    def verifier_key() -> str:
        """The log's verifier key, as a signed-note vkey string."""
        return gw.log.verifier_key + "\n"

    @app.get("/v1/log/checkpoints", tags=["log"], response_class=JSONBytes)
    def checkpoints() -> JSONBytes:
        """Every checkpoint this log has published, oldest first."""
        return JSONBytes({"checkpoints": gw.log.checkpoints()})

    @app.get("/v1/log/entries", tags=["log"], response_class=JSONBytes)
    def entries(start: Annotated[int, Query(ge=0)], end: Annotated[int, Query(ge=1)]) -> JSONBytes:
        """Entries ``[start, end)``, at most 1000 at a time."""
        if end <= start or end - start > 1000:
            raise BadRequest("need start < end and at most 1000 entries per call")
        size = gw.log.stored_size()
        if end > size:
            raise BadRequest(f"end {end} is beyond the log size {size}")
        return JSONBytes(
            {"start": start, "entries": [e.decode() for e in gw.log.entries(start, end)]}
        )

    @app.get("/v1/log/proof/inclusion", tags=["log"], response_class=JSONBytes)
    def inclusion(
        index: Annotated[int, Query(ge=0)], size: Annotated[int, Query(ge=1)]
    ) -> JSONBytes:
        """Inclusion proof of entry *index* in the tree of *size* entries."""
        proof = _b64(gw.log.inclusion_proof(index, size))
        return JSONBytes({"index": index, "size": size, "proof": proof})

    @app.get("/v1/log/proof/consistency", tags=["log"], response_class=JSONBytes)
    def consistency(
        old: Annotated[int, Query(ge=1)], new: Annotated[int, Query(ge=1)]
    ) -> JSONBytes:
        """Consistency proof between the trees of *old* and *new* entries."""
        proof = _b64(gw.log.consistency_proof(old, new))
        return JSONBytes({"old": old, "new": new, "proof": proof})

    @app.get("/v1/info", tags=["log"])
    def info() -> dict[str, Any]:
        """Public facts: jurisdictions, regions, purposes, log origin and key."""
        return gov.describe()

    add_page_routes(app, deployment, JSONBytes)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def home() -> str:
        facts = gov.describe()
        rows = "".join(
            f"<tr><td>{c}</td><td>{j['name']}</td><td>{', '.join(j['regions'])}</td></tr>"
            for c, j in facts["jurisdictions"].items()
        )
        return (
            "<!doctype html><meta charset=utf-8><title>sovra</title>"
            "<style>body{font:15px system-ui;max-width:50em;margin:2em auto}td{padding:2px 8px}"
            "</style><h1>sovra</h1>"
            f"<p>Log <code>{facts['origin']}</code>, {facts['log_size']} entries. "
            f"Verifier key <code>{facts['log_verifier_key']}</code></p>"
            "<p><a href=/page/>the page: the log verified in your browser</a> · "
            "<a href=/docs>API docs</a> · <a href=/v1/log/checkpoint>latest checkpoint</a>"
            " · <a href=/v1/log/checkpoints>all checkpoints</a> · <a href=/v1/info>info</a></p>"
            f"<table><tr><th>jurisdiction</th><th>name</th><th>regions</th></tr>{rows}</table>"
        )

    add_operations(app, deployment)
    describe_api(app, principal, deployment.config.oidc)
    return app


def _b64(hashes: list[bytes]) -> list[str]:
    return [base64.b64encode(h).decode() for h in hashes]


def _receipt(r: IngestReceipt) -> dict[str, Any]:
    return {
        "record_id": r.record_id,
        "region": r.region,
        "log_index": r.receipt.index,
        "receipt": r.receipt.to_dict(),
        "findings": dict(r.findings),
        "actions": dict(r.actions),
    }


def _access(r: AccessResult) -> dict[str, Any]:
    d = r.decision
    return {
        "decision": {
            "decision_id": d.decision_id,
            "action": d.action,
            "effect": "allow" if d.allow else "deny",
            "reason": d.reason,
            "policies": list(d.policies),
            "grant": d.grant,
            "justification": d.justification,
            "review": d.review,
        },
        "log_index": r.decision_receipt.index,
        "decision_receipt": r.decision_receipt.to_dict(),
        "release_receipt": r.release_receipt.to_dict(),
        "records": dict(r.records),
    }


def _report(r: SubjectReport) -> dict[str, Any]:
    return {
        "commitment": r.commitment,
        "checkpoint": r.checkpoint,
        "entries": [
            {"index": e.index, "entry": e.entry.decode(), "proof": _b64(list(e.proof))}
            for e in r.entries
        ],
    }
