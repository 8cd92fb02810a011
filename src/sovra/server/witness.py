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

It is a bare ASGI application, not a framework's: two fixed routes need no router, and
a log pays the witness's CPU for every batch it has witnessed (a Starlette route and its
thread pool hop cost a witness more than its signature checks, docs/benchmarks.md).
:meth:`Witness.add_checkpoint` runs on the event loop's own thread: the witness holds
one lock over its checks, its cosignature and its state's sync, so a request that
waited on another thread would wait for that lock all the same.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from sovra.errors import PayloadTooLarge, SovraError
from sovra.ledger.tlog_witness import MAX_REQUEST_BYTES, SIZE_MEDIA_TYPE, parse_request
from sovra.ledger.witness import OldSizeConflict, Witness

__all__ = ["create_witness_app"]

_logger = logging.getLogger("sovra.witness")
_CHECKPOINT_PATH = re.compile(r"/([0-9a-f]{64})/checkpoint")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
WitnessApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_TEXT = b"text/plain; charset=utf-8"


async def _bounded_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The request body, refused as soon as it is known to exceed *limit* bytes.

    Raises:
        PayloadTooLarge: a declared or read length over *limit*.
    """
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit() and int(value) > limit:
            raise PayloadTooLarge(f"an add-checkpoint request is at most {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client went away
            return b""
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"an add-checkpoint request is at most {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _answer(
    send: Send,
    status: int,
    text: str,
    media: bytes = _TEXT,
    extra: tuple[tuple[bytes, bytes], ...] = (),
) -> None:
    body = text.encode("utf-8")
    headers = [(b"content-type", media), (b"content-length", b"%d" % len(body)), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _error(exc: SovraError) -> tuple[int, str, bytes]:
    """The status, body and media type that answer *exc*."""
    if isinstance(exc, OldSizeConflict):
        return 409, f"{exc.size}\n", SIZE_MEDIA_TYPE.encode()
    status = exc.status if 400 <= exc.status < 500 else 500
    return status, exc.message + "\n", _TEXT


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def create_witness_app(witness: Witness, *, max_body_bytes: int = MAX_REQUEST_BYTES) -> WitnessApp:
    """The ASGI application serving *witness* over C2SP tlog-witness."""
    origins = {hashlib.sha256(o.encode()).hexdigest(): o for o in witness.origins}

    async def add_checkpoint(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            body = await _bounded_body(scope, receive, max_body_bytes)
            old_size, proof, note = parse_request(body, max_body_bytes)
            cosigned = witness.add_checkpoint(note, old_size, proof)
        except SovraError as exc:
            if exc.status >= 500:
                _logger.error("add-checkpoint failed: %s", exc.diagnostics())  # noqa: TRY400
            await _answer(send, *_error(exc))
            return
        await _answer(send, 200, cosigned[len(note) :])

    async def checkpoint(digest: str, send: Send) -> None:
        origin = origins.get(digest)
        note = None if origin is None else witness.checkpoint(origin)
        if note is None:
            await _answer(send, 404, "this witness has cosigned no checkpoint of that log\n")
            return
        await _answer(send, 200, note, extra=((b"cache-control", b"no-cache"),))

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        found = _CHECKPOINT_PATH.fullmatch(path)
        allowed = "POST" if path == "/add-checkpoint" else "GET, HEAD" if found else None
        if allowed is None:
            await _answer(send, 404, "Not Found")
        elif method not in allowed.split(", "):
            await _answer(send, 405, "Method Not Allowed", extra=((b"allow", allowed.encode()),))
        elif found is None:
            await add_checkpoint(scope, receive, send)
        else:
            await checkpoint(found.group(1), send)

    return app
