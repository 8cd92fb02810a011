"""The public log's routes: its key, entries, proofs, tiles (C2SP tlog-tiles) and its
witnesses' cosignatures. None takes a request token: anyone may verify the log.

Served under ``/v1/log/``, so a tlog-tiles client given that URL prefix and the log's
vkey verifies sovra's log with no sovra code. Tiles and bundles are immutable for a
given path (a partial tile names its width), so they are sent with a year-long,
``immutable`` cache lifetime; the checkpoint changes and must be revalidated.

Witnesses submit the checkpoints they cosigned to ``POST /v1/log/cosignatures`` (a
signed note, ``text/plain``); the checkpoint routes serve the stored cosignature lines
after the log's own signature, so each response is one C2SP signed note. The route takes
no request token: a cosignature authenticates itself against the configured witness keys.

With ``[log.tiles]`` the server also publishes the same files into a folder or a bucket
in the background (:func:`publishing_tiles`), for a static host or a CDN to serve; these
routes go on answering from the database whatever becomes of that store.
"""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request, Response
from fastapi.responses import PlainTextResponse
from starlette.concurrency import run_in_threadpool

from sovra._regions import open_tile_store
from sovra.config import Config
from sovra.errors import BadRequest, Denied, IntegrityError, NotFound, PayloadTooLarge
from sovra.ledger import TransparencyLog
from sovra.ledger.cosigning import MAX_SUBMISSION_BYTES, CheckpointCosignatures
from sovra.ledger.tiles_publish import TilePublisher
from sovra.ledger.tiles_store import IMMUTABLE
from sovra.server.answers import JSONBytes, b64_list
from sovra_verify.tiles import parse_tile_path

__all__ = ["IMMUTABLE", "add_log_routes", "publishing_tiles"]

_REVALIDATE = "no-cache"
_logger = logging.getLogger("sovra.server")


@contextmanager
def publishing_tiles(
    root: Path,
    config: Config,
    log: TransparencyLog,
    cosignatures: CheckpointCosignatures | None = None,
) -> Iterator[None]:
    """Publish *log*'s tiles where ``[log.tiles]`` says, in a background thread, until
    the block ends; nothing without ``[log.tiles]``. With *cosignatures* that has
    witnesses, the checkpoint published is the one their quorum cosigned.

    Raises:
        ConfigError: the folder cannot be made or the bucket's credentials are missing.
    """
    store = open_tile_store(root, config)
    if store is None or config.log_tiles is None:
        yield
        return
    # One worker process of the host publishes; the lock goes with its process, and
    # another worker takes it at its next round. Replicas on other hosts publish too:
    # the store's writes are write-once and compare-and-swap, so they never conflict.
    with (root / ".tiles-publisher.lock").open("a") as lock:

        def turn() -> bool:
            try:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return False
            return True

        try:
            publisher = TilePublisher(
                log, store, cosignatures, remove_partials=config.log_tiles.remove_partial_tiles
            )
            with publisher.running(config.log_tiles.every_s, turn=turn):
                yield
        finally:
            store.close()


def _immutable(data: bytes) -> Response:
    return Response(
        data, media_type="application/octet-stream", headers={"Cache-Control": IMMUTABLE}
    )


def add_log_routes(
    app: FastAPI, log: TransparencyLog, cosignatures: CheckpointCosignatures | None = None
) -> None:
    """Add the routes serving *log* and its witnesses' cosignatures under ``/v1/log``."""

    @app.get("/v1/log/key", response_class=PlainTextResponse, tags=["log"])
    def verifier_key() -> str:
        """The log's verifier key, as a signed-note vkey string."""
        return log.verifier_key + "\n"

    @app.get("/v1/log/checkpoints", tags=["log"], response_class=JSONBytes)
    def checkpoints() -> JSONBytes:
        """Every checkpoint this log has published, oldest first."""
        return JSONBytes({"checkpoints": log.checkpoints()})

    @app.get("/v1/log/entries", tags=["log"], response_class=JSONBytes)
    def entries(start: Annotated[int, Query(ge=0)], end: Annotated[int, Query(ge=1)]) -> JSONBytes:
        """Entries ``[start, end)``, at most 1000 at a time."""
        if end <= start or end - start > 1000:
            raise BadRequest("need start < end and at most 1000 entries per call")
        size = log.stored_size()
        if end > size:
            raise BadRequest(f"end {end} is beyond the log size {size}")
        return JSONBytes({"start": start, "entries": [e.decode() for e in log.entries(start, end)]})

    @app.get("/v1/log/proof/inclusion", tags=["log"], response_class=JSONBytes)
    def inclusion(
        index: Annotated[int, Query(ge=0)], size: Annotated[int, Query(ge=1)]
    ) -> JSONBytes:
        """Inclusion proof of entry *index* in the tree of *size* entries."""
        proof = b64_list(log.inclusion_proof(index, size))
        return JSONBytes({"index": index, "size": size, "proof": proof})

    @app.get("/v1/log/proof/consistency", tags=["log"], response_class=JSONBytes)
    def consistency(
        old: Annotated[int, Query(ge=1)], new: Annotated[int, Query(ge=1)]
    ) -> JSONBytes:
        """Consistency proof between the trees of *old* and *new* entries."""
        proof = b64_list(log.consistency_proof(old, new))
        return JSONBytes({"old": old, "new": new, "proof": proof})

    @app.get("/v1/log/tile/{path:path}", response_class=Response, tags=["log"])
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

    @app.get("/v1/log/checkpoint", response_class=PlainTextResponse, tags=["log"])
    def checkpoint() -> PlainTextResponse:
        """The latest signed checkpoint (C2SP tlog-checkpoint), with witness cosignatures."""
        note = log.checkpoint() if cosignatures is None else cosignatures.checkpoint()
        return PlainTextResponse(note, headers={"Cache-Control": _REVALIDATE})

    @app.get("/v1/log/checkpoint/cosigned", response_class=PlainTextResponse, tags=["log"])
    def cosigned_checkpoint() -> PlainTextResponse:
        """The newest checkpoint cosigned by the configured quorum of witnesses.

        404 while no checkpoint has a quorum, or when no witness is configured.
        """
        if cosignatures is None:
            raise NotFound("this log has no witnesses configured")
        return PlainTextResponse(
            cosignatures.cosigned_checkpoint(), headers={"Cache-Control": _REVALIDATE}
        )

    @app.post("/v1/log/cosignatures", tags=["log"])
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
