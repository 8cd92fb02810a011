"""HTTP routes of the tiled log (C2SP tlog-tiles): checkpoint, hash tiles, entry bundles.

Served under ``/v1/log/``, so a tlog-tiles client given that URL prefix and the log's
vkey verifies sovra's log with no sovra code. Tiles and bundles are immutable for a
given path (a partial tile names its width), so they are sent with a year-long,
``immutable`` cache lifetime; the checkpoint changes and must be revalidated.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from sovra.ledger import TransparencyLog
from sovra.ledger.tiles import parse_tile_path

__all__ = ["IMMUTABLE", "log_tiles_router"]

IMMUTABLE = "public, max-age=31536000, immutable"


def log_tiles_router(log: TransparencyLog) -> APIRouter:
    """Routes serving *log*'s ``tile/...`` (``/v1/log/checkpoint`` is the app's own)."""
    router = APIRouter(prefix="/v1/log", tags=["log"])

    @router.get("/tile/{path:path}", response_class=Response)
    def tile(path: str) -> Response:
        """A hash tile ``tile/<L>/<N>[.p/<W>]`` or entry bundle ``tile/entries/<N>[.p/<W>]``.

        400 for a path that is not the canonical spelling of a tile, 404 for a tile
        beyond the log's current size.
        """
        level, index, width = parse_tile_path(f"tile/{path}")
        data = log.entry_bundle(index, width) if level is None else log.tile(level, index, width)
        return Response(
            data, media_type="application/octet-stream", headers={"Cache-Control": IMMUTABLE}
        )

    return router
