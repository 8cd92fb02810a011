"""Request bodies bounded while they are read: size, time and, for JSON, shape.

A pure ASGI middleware in front of the whole application, so no route, dependency or
framework parser ever waits on, buffers or parses an unbounded body:

- a ``Content-Length`` over the limit is refused (413) before a byte of the body is
  read, and the connection is closed, so the client's remaining bytes are never waited for;
- a body that arrives in pieces (chunked, or a ``Content-Length`` that lies) is counted
  as it arrives and refused (413) the moment it passes the limit;
- a body that has not fully arrived within the deadline is refused (408): a slow sender
  holds neither a worker nor a buffer for longer than that;
- a body declared as JSON is parsed once with :func:`sovra.model.parse_json` (bounded
  nesting, strict UTF-8, no lone surrogate, no field named twice) and refused (400) if it
  is not one; the parsed value waits in the scope (:data:`PARSED_BODY`) for the
  application, so the framework's own unbounded ``json.loads`` never runs on it.

Every refusal is in sovra's error format (``{"error": ..., "message": ...}``). The body,
once read, is handed to the application as one message, exactly as it arrived.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from sovra.errors import BadRequest, PayloadTooLarge, RequestTimeout, SovraError
from sovra.model import MAX_JSON_DEPTH, parse_json

__all__ = ["PARSED_BODY", "BodyLimits"]

PARSED_BODY = "sovra.parsed_body"
"""Where in the ASGI scope the JSON body, parsed here, waits for the application."""

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def _error_body(code: str, message: str) -> bytes:
    """sovra's error format as bytes; text that is not valid Unicode is escaped, not fatal."""
    text = json.dumps({"error": code, "message": message}, ensure_ascii=False)
    return text.encode("utf-8", "backslashreplace")


class _Refused(Exception):
    """A body refused while reading: carries the error to answer with."""

    def __init__(self, error: SovraError) -> None:
        super().__init__(error.message)
        self.error = error


class BodyLimits:
    """ASGI middleware: bound every HTTP request body in bytes, time and JSON shape."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        body_timeout_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Wrap *app*.

        Args:
            app: the ASGI application.
            max_body_bytes: the largest body accepted, in bytes.
            body_timeout_s: how long a whole body may take to arrive, from the first read.
            clock: monotonic seconds (the deadline's clock).
        """
        self._app = app
        self._max = max_body_bytes
        self._timeout = body_timeout_s
        self._clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection scope; only ``http`` scopes are bounded."""
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        try:
            self._check_declared(scope)
            body = await self._read(receive)
            if body is None:  # the client went away before sending its body
                return
            if body and _declares_json(scope):
                scope[PARSED_BODY] = parse_json(
                    body, limit=self._max, what="request body", max_depth=MAX_JSON_DEPTH
                )
        except _Refused as refused:
            await _answer(send, refused.error, close=True)
            return
        except BadRequest as exc:
            await _answer(send, exc, close=False)
            return
        await self._app(scope, _replay(body, receive), send)

    def _check_declared(self, scope: Scope) -> None:
        lengths = [v for k, v in scope["headers"] if k.lower() == b"content-length"]
        if not lengths:
            return
        if len(set(lengths)) > 1 or not all(v.isdigit() for v in lengths):
            raise _Refused(BadRequest("Content-Length must be one decimal number"))
        # len() first: int() of a 100 kB digit string is the very work being refused.
        if len(lengths[0]) > 19 or int(lengths[0]) > self._max:
            raise _Refused(
                PayloadTooLarge(
                    f"request body of {lengths[0].decode()[:24]} bytes is over the "
                    f"{self._max}-byte limit"
                )
            )

    async def _read(self, receive: Receive) -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        deadline = self._clock() + self._timeout
        more = True
        while more:
            remaining = deadline - self._clock()
            if remaining <= 0:
                raise _Refused(_too_slow(self._timeout))
            try:
                # A timer, not wait_for: that would start a task for every message.
                async with asyncio.timeout(remaining):
                    message = await receive()
            except TimeoutError:
                raise _Refused(_too_slow(self._timeout)) from None
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._max:
                raise _Refused(PayloadTooLarge(f"request body over the {self._max}-byte limit"))
            chunks.append(chunk)
            more = bool(message.get("more_body", False))
        return b"".join(chunks)


def _too_slow(timeout_s: float) -> RequestTimeout:
    seconds = math.ceil(timeout_s)
    return RequestTimeout(f"request body did not arrive within {seconds} s")


def _declares_json(scope: Scope) -> bool:
    for key, value in scope["headers"]:
        if key.lower() == b"content-type":
            media: bytes = value.split(b";", 1)[0].strip().lower()
            return media == b"application/json" or (
                media.startswith(b"application/") and media.endswith(b"+json")
            )
    return False


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        # After the body, only the disconnect is left to wait for.
        return await receive()

    return replayed


async def _answer(send: Send, error: SovraError, *, close: bool) -> None:
    body = _error_body(error.code, error.message)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if close:
        # The rest of the body is never read: the connection cannot carry another request.
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
