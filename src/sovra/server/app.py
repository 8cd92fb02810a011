"""HTTP API: a thin adapter from requests to the gateway, and errors to status codes.

Each group of routes lives in its own module as an ``add_..._routes(app, ...)`` function;
this one builds the app, its limits and its caller check, and adds them in turn. Route
modules do without ``from __future__ import annotations``: the framework resolves each
handler's caller type from its annotation when the route is added.

Every call under ``/v1`` except the public log is authenticated with a signed request
token (``Authorization: Sovra <token>``, see :mod:`sovra.auth`) or, where ``[auth.oidc]``
names an issuer, a bearer JWT (:mod:`sovra.oidc`). The log endpoints are
public on purpose: anyone may verify the log. Errors are translated once, here:
:class:`~sovra.errors.SovraError` subclasses carry their own status.
"""

import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request, Response
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Scope

from sovra import __version__
from sovra.deployment import Deployment
from sovra.model import Principal
from sovra.oidc import bearer_scheme
from sovra.server.answers import JSONBytes
from sovra.server.background import following, publishing
from sovra.server.batch import add_batch_routes
from sovra.server.bodies import AccessBody, IngestBody
from sovra.server.direct import DirectRoutes, in_thread, serve_directly
from sovra.server.docs import describe_api, mount_docs
from sovra.server.erasure import add_erasure_routes
from sovra.server.governance import add_governance_routes
from sovra.server.handlers import add_error_handlers
from sovra.server.home import add_home_routes
from sovra.server.limits import PARSED_BODY, BodyLimits
from sovra.server.log import add_log_routes, publishing_tiles
from sovra.server.ops import add_operations, note_principal
from sovra.server.page import add_page_routes
from sovra.server.policy import add_policy_routes
from sovra.server.records import access_json, add_record_routes, receipt_json
from sovra.server.sealed import add_sealed_routes

__all__ = ["JSONBytes", "create_app"]

log = logging.getLogger("sovra.server")


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


class _App(FastAPI):
    """The framework's application with sovra's own middlewares (request ids and the
    access log, the body limits, the direct routes) outside the framework's three (its
    last-resort error handler, its telemetry and its body limit), not inside them: the
    hot routes' common case, answered by the direct routes, then passes through none of
    the framework's layers. Every other request goes on through all of them as before.
    The direct routes answer an unexpected error themselves as the last-resort handler
    would (:func:`~sovra.server.handlers.unexpected_response`)."""

    def build_middleware_stack(self) -> ASGIApp:
        """The framework's stack without sovra's middlewares, then those around it."""
        own, self.user_middleware = self.user_middleware, []
        try:
            app = super().build_middleware_stack()
        finally:
            self.user_middleware = own
        for cls, args, kwargs in reversed(own):
            app = cls(app, *args, **kwargs)
        return app


def _authorization(scope: Scope) -> str:
    """The request's ``Authorization`` header ("" when it has none), as the framework's
    request object reads it: the first one, in Latin-1."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            return str(value.decode("latin-1"))
    return ""


def create_app(deployment: Deployment) -> FastAPI:
    """Build the ASGI application for an opened deployment."""
    gw = deployment.gateway
    gov = deployment.governance

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        with (
            publishing(gw.log.checkpoint, deployment.config.log_publish_every_s),
            following(gov.follow_policy),
            publishing_tiles(deployment.root, deployment.config, gw.log, deployment.cosignatures),
        ):
            yield

    app = _App(
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

    bearer_check = bearer_scheme(deployment.bearer)

    def signed_by(scope: Scope, path: str) -> Callable[[bytes], Principal]:
        """The check of the token in the request of *scope*, made for *path*, against its
        body (the body is passed in, so the check can run off the event loop)."""
        header = _authorization(scope)
        scheme, _, token = header.partition(" ")
        method = scope["method"]
        if header and scheme != "Sovra":
            check = bearer_check(scheme, token, method, path)
            return lambda body: note_principal(scope, check(body))
        authenticate = deployment.authenticator.authenticate
        return lambda body: note_principal(scope, authenticate(token or None, method, path, body))

    async def principal(request: Request) -> Principal:
        url = request.url
        check = signed_by(request.scope, url.path + (f"?{url.query}" if url.query else ""))
        body = await request.body()
        # Off the loop: the replay store is a database write.
        return await in_thread(check, body)

    Caller = Annotated[Principal, Depends(principal)]

    add_error_handlers(app)

    add_record_routes(app, gw, Caller)
    # The two hot routes: their common case skips the framework's per-request plumbing.
    direct = DirectRoutes.table()
    serve_directly(app, direct, "/v1/records", IngestBody, signed_by)
    serve_directly(app, direct, "/v1/access", AccessBody, signed_by)
    app.add_middleware(DirectRoutes, routes=direct)

    # Sizes, time and JSON shape of every body are bounded before any route runs (and
    # before the direct routes, which read the body this parsed).
    app.add_middleware(
        BodyLimits,
        max_body_bytes=deployment.config.max_body_bytes,
        body_timeout_s=deployment.config.body_timeout_s,
    )

    add_governance_routes(app, gov, Caller)
    add_policy_routes(app, gov, Caller)
    add_erasure_routes(app, gov, Caller)
    add_sealed_routes(app, gw, Caller)
    add_batch_routes(app, gw, Caller, receipt=receipt_json, access=access_json)

    add_log_routes(app, gw.log, deployment.cosignatures)
    add_home_routes(app, gov)
    add_page_routes(app, deployment, JSONBytes)
    add_operations(app, deployment)
    describe_api(app, principal, deployment.config.oidc)
    return app
