"""Every error the HTTP API answers with, in one format: ``{"error": ..., "message": ...}``.

sovra's own errors carry their status (:mod:`sovra.errors`); the framework's (an unknown
route, a wrong method, a body its parser refused) are translated to the same shape, so a
client reads one format whatever went wrong. Messages are escaped where they hold text
that is not valid Unicode (an echoed lone surrogate), so rendering an error never fails.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from sovra.errors import SovraError, Unavailable

__all__ = [
    "add_error_handlers",
    "error_response",
    "sovra_error_response",
    "unexpected_response",
    "validation_message",
]

log = logging.getLogger("sovra.server")

# The framework's refusals, named like sovra's own codes.
_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "denied",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "bad_request",
}


def error_response(
    status: int, body: dict[str, object], headers: Mapping[str, str] | None = None
) -> Response:
    """A JSON error response whose body always renders, whatever text it echoes."""
    content = json.dumps(body, ensure_ascii=False).encode("utf-8", "backslashreplace")
    return Response(content, status_code=status, media_type="application/json", headers=headers)


def sovra_error_response(exc: SovraError) -> Response:
    """How sovra's own error *exc* is answered: its status and body, ``Retry-After`` when
    it says when to come back; a 5xx is also written to the server log with its details."""
    if exc.status >= 500:
        log.error("%s", exc.diagnostics())
    headers = None
    if isinstance(exc, Unavailable) and exc.retry_after_s is not None:
        headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after_s)))}
    return error_response(exc.status, exc.to_dict(), headers)


def unexpected_response(exc: BaseException) -> Response:
    """How an unexpected error (a bug, not bad input) is answered: a bare 500; its
    details go to the server log, never to the caller."""
    log.error("unexpected %s", type(exc).__name__, exc_info=exc)
    return error_response(
        500, {"error": "internal", "message": "internal error; see the server log"}
    )


def validation_message(errors: Sequence[Any]) -> str:
    """What a body's validation errors say, one ``field: problem`` each, joined by ``; ``."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', 'invalid')}" for e in errors
    )


def add_error_handlers(app: FastAPI) -> None:
    """Translate every exception a request can raise into sovra's error format."""

    @app.exception_handler(SovraError)
    async def _sovra_error(_: Request, exc: SovraError) -> Response:
        return sovra_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> Response:
        message = validation_message(exc.errors())
        return error_response(400, {"error": "bad_request", "message": message})

    @app.exception_handler(HTTPException)
    async def _framework(_: Request, exc: HTTPException) -> Response:
        # 422 is FastAPI's word for a body it could not read; sovra says 400 for all bad input.
        status = 400 if exc.status_code == 422 else exc.status_code
        code = _CODES.get(status, "bad_request" if status < 500 else "internal")
        return error_response(
            status, {"error": code, "message": str(exc.detail)}, headers=exc.headers
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> Response:
        return unexpected_response(exc)
