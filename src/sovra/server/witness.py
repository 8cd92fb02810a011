"""``sovra witness serve``: the witness side of C2SP tlog-witness over HTTP.

Two routes, as the specification names them:

- ``POST /add-checkpoint``: an old size, a consistency proof and a signed checkpoint;
  200 with the cosignature line, 409 with the held size (``text/x.tlog.size``), 404 for
  a log this witness does not witness, 403 for a checkpoint the log's key did not sign,
  400 for a malformed body or a rollback, 422 for a fork or a proof that does not
  verify, 413 over the body limit;
- ``GET /<hex SHA-256 of the origin>/checkpoint``: the last checkpoint cosigned for that
  log, with the log's signature and this witness's (404 before the first).

The checks and the state are :class:`sovra.ledger.witness.Witness`'s; this module only
reads bounded bodies and turns its errors into those statuses. Requests carry no
credential: the log's signature on the checkpoint is the authentication.
"""

from __future__ import annotations

import hashlib
import logging
import re

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from sovra.errors import PayloadTooLarge, SovraError
from sovra.ledger.tlog_witness import MAX_REQUEST_BYTES, SIZE_MEDIA_TYPE, parse_request
from sovra.ledger.witness import OldSizeConflict, Witness

__all__ = ["create_witness_app"]

_logger = logging.getLogger("sovra.witness")
_ORIGIN_HASH = re.compile(r"[0-9a-f]{64}")


async def _bounded_body(request: Request, limit: int) -> bytes:
    """The request body, refused as soon as it is known to exceed *limit* bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"an add-checkpoint request is at most {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"an add-checkpoint request is at most {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _error(exc: SovraError) -> Response:
    if isinstance(exc, OldSizeConflict):
        return PlainTextResponse(f"{exc.size}\n", status_code=409, media_type=SIZE_MEDIA_TYPE)
    status = exc.status if 400 <= exc.status < 500 else 500
    return PlainTextResponse(exc.message + "\n", status_code=status)


def create_witness_app(witness: Witness, *, max_body_bytes: int = MAX_REQUEST_BYTES) -> Starlette:
    """The ASGI application serving *witness* over C2SP tlog-witness."""
    origins = {hashlib.sha256(o.encode()).hexdigest(): o for o in witness.origins}

    async def add_checkpoint(request: Request) -> Response:
        try:
            body = await _bounded_body(request, max_body_bytes)
            old_size, proof, note = parse_request(body, max_body_bytes)
            cosigned = await run_in_threadpool(witness.add_checkpoint, note, old_size, proof)
        except SovraError as exc:
            if exc.status >= 500:
                _logger.error("add-checkpoint failed: %s", exc.diagnostics())  # noqa: TRY400
            return _error(exc)
        return PlainTextResponse(cosigned[len(note) :])

    async def checkpoint(request: Request) -> Response:
        digest = request.path_params["origin_hash"]
        origin = origins.get(digest) if _ORIGIN_HASH.fullmatch(digest) else None
        note = None if origin is None else witness.checkpoint(origin)
        if note is None:
            return PlainTextResponse("this witness has cosigned no checkpoint of that log\n", 404)
        return PlainTextResponse(note, headers={"Cache-Control": "no-cache"})

    return Starlette(
        routes=[
            Route("/add-checkpoint", add_checkpoint, methods=["POST"]),
            Route("/{origin_hash}/checkpoint", checkpoint, methods=["GET"]),
        ]
    )
