"""HTTP routes of the tiled log (C2SP tlog-tiles) and of its witnesses' cosignatures.

Served under ``/v1/log/``, so a tlog-tiles client given that URL prefix and the log's
vkey verifies sovra's log with no sovra code. Tiles and bundles are immutable for a
given path (a partial tile names its width), so they are sent with a year-long,
``immutable`` cache lifetime; the checkpoint changes and must be revalidated.

Witnesses submit the checkpoints they cosigned to ``POST /v1/log/cosignatures`` (a
signed note, ``text/plain``); the checkpoint routes serve the stored cosignature lines
after the log's own signature, so each response is one C2SP signed note. The route takes
no request token: a cosignature authenticates itself against the configured witness keys.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse
from starlette.concurrency import run_in_threadpool

from sovra.errors import BadRequest, Denied, IntegrityError, NotFound, PayloadTooLarge
from sovra.ledger import TransparencyLog
from sovra.ledger.cosigning import MAX_SUBMISSION_BYTES, CheckpointCosignatures
from sovra_verify.tiles import parse_tile_path

__all__ = ["IMMUTABLE", "log_tiles_router"]

IMMUTABLE = "public, max-age=31536000, immutable"
_REVALIDATE = "no-cache"
_logger = logging.getLogger("sovra.server")


def _immutable(data: bytes) -> Response:
    return Response(
        data, media_type="application/octet-stream", headers={"Cache-Control": IMMUTABLE}
    )


def log_tiles_router(
    log: TransparencyLog, cosignatures: CheckpointCosignatures | None = None
) -> APIRouter:
    """Routes serving *log*'s checkpoint, ``tile/...`` and witness cosignatures."""
    router = APIRouter(prefix="/v1/log", tags=["log"])

    @router.get("/tile/{path:path}", response_class=Response)
    def tile(path: str) -> Response:
        """A hash tile ``tile/<L>/<N>[.p/<W>]`` or entry bundle ``tile/entries/<N>[.p/<W>]``.

        400 for a path that is not the canonical spelling of a tile, 404 for a tile
        beyond the log's current size.
        """
        level, index, width = parse_tile_path(f"tile/{path}")
        if level is not None:
            return _immutable(log.tile(level, index, width))
        try:
            return _immutable(log.entry_bundle(index, width))
        except IntegrityError as exc:
            altered = exc.diagnostics()
        # An entry no longer matches its signed leaf: serve what storage holds, uncached,
        # so an auditor sees the alteration and names the entry itself (the level-0 tile
        # still holds the leaf the log signed).
        _logger.error("serving an altered entry bundle: %s", altered)
        return Response(
            log.stored_entry_bundle(index, width),
            media_type="application/octet-stream",
            headers={"Cache-Control": "no-store"},
        )

    @router.get("/checkpoint", response_class=PlainTextResponse)
    def checkpoint() -> PlainTextResponse:
        """The latest signed checkpoint (C2SP tlog-checkpoint), with witness cosignatures."""
        note = log.checkpoint() if cosignatures is None else cosignatures.checkpoint()
        return PlainTextResponse(note, headers={"Cache-Control": _REVALIDATE})

    @router.get("/checkpoint/cosigned", response_class=PlainTextResponse)
    def cosigned_checkpoint() -> PlainTextResponse:
        """The newest checkpoint cosigned by the configured quorum of witnesses.

        404 while no checkpoint has a quorum, or when no witness is configured.
        """
        if cosignatures is None:
            raise NotFound("this log has no witnesses configured")
        return PlainTextResponse(
            cosignatures.cosigned_checkpoint(), headers={"Cache-Control": _REVALIDATE}
        )

    @router.post("/cosignatures")
    async def submit(request: Request) -> dict[str, Any]:
        """Submit a checkpoint note this log published, with a witness's cosignature lines.

        The body is the signed note as text. Every line must verify: 400 for a
        malformed note, 403 for a line by a key that is not a configured witness or a
        signature that does not verify, 404 for a checkpoint this log never published,
        413 for an oversized body. Nothing is stored unless the whole note is accepted.
        """
        declared = request.headers.get("content-length")
        if declared is not None and (
            not declared.isdigit() or int(declared) > MAX_SUBMISSION_BYTES
        ):
            raise PayloadTooLarge(f"a cosigned checkpoint is at most {MAX_SUBMISSION_BYTES} bytes")
        body = await request.body()
        if len(body) > MAX_SUBMISSION_BYTES:
            raise PayloadTooLarge(f"a cosigned checkpoint is at most {MAX_SUBMISSION_BYTES} bytes")
        if not body:
            raise BadRequest("send the cosigned checkpoint note as the request body")
        if cosignatures is None:
            raise Denied("this log collects no cosignatures")
        result = await run_in_threadpool(cosignatures.submit, body)
        return {
            "origin": result.checkpoint.origin,
            "size": result.checkpoint.size,
            "accepted": list(result.accepted),
            "cosigned_by": result.cosigned_by,
            "quorum": result.quorum,
        }

    return router
