"""The hot routes' common case, served without the framework's per-request plumbing.

``POST /v1/records`` and ``POST /v1/access`` carry most of the traffic. The framework
serves a request by solving the route's dependencies on the event loop (among them the
token check, whose replay store is a database write: meanwhile every other connection of
the worker waits), validating the body through its generic machinery, then handing the
endpoint to a worker thread. A direct route does the same work with less around it: the
body, already parsed strictly and bounded by :class:`~sovra.server.limits.BodyLimits`, is
validated against the route's model on the loop (CPU only, no I/O, no side effect), then
the token check and the endpoint itself run together in one worker thread.

Whatever is not the common case (no JSON body, or one that does not fit the model) goes
to the framework's own handler, unchanged, so every refusal reads exactly as before and
the checks keep their order (the credential first, then the body). The route stays
declared with the framework as before, so the OpenAPI document does not change.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import request_response
from starlette.types import Receive, Scope, Send

from sovra.model import Principal
from sovra.server.limits import PARSED_BODY

__all__ = ["in_thread", "serve_directly"]

Signer = Callable[[Request], Callable[[bytes], Principal]]
"""Reads a request's credential (on the loop) and returns the check of its token against
the body (run in the worker thread): raises what the route's dependency raises."""


def serve_directly(app: FastAPI, path: str, model: type[BaseModel], signed_by: Signer) -> None:
    """Serve the common case of the ``POST`` route at *path* directly.

    The route's endpoint MUST take exactly ``(body: model, caller: Principal)``, the
    caller being what *signed_by*'s check returns, and return its own Response.

    Raises:
        LookupError: no ``POST`` route at *path*.
    """
    route = next(
        (
            r
            for r in app.routes
            if isinstance(r, APIRoute) and r.path == path and "POST" in (r.methods or ())
        ),
        None,
    )
    if route is None:
        raise LookupError(f"no POST route at {path}")
    framework = route.app
    endpoint: Callable[[Any, Principal], Response] = route.endpoint

    async def direct(request: Request) -> Response:
        check = signed_by(request)
        raw = await request.body()
        body = request.scope[_VALID_BODY]
        return await in_thread(_call, endpoint, body, check, raw)

    served = request_response(direct)

    async def route_app(scope: Scope, receive: Receive, send: Send) -> None:
        parsed = scope.get(PARSED_BODY)
        if type(parsed) is dict:
            try:
                scope[_VALID_BODY] = model.model_validate(parsed)
            except ValidationError:
                pass  # the framework's handler words the refusal
            else:
                await served(scope, receive, send)
                return
        await framework(scope, receive, send)

    route.app = route_app


_VALID_BODY = "sovra.valid_body"
_T = TypeVar("_T")

_THREADS = 40
"""As many as the framework's own pool: the flows' group commits gather concurrent calls."""
_pool: tuple[int, ThreadPoolExecutor] | None = None
_pool_lock = threading.Lock()


async def in_thread(func: Callable[..., _T], *args: Any) -> _T:
    """``func(*args)`` in the process's pool for direct routes: whatever may wait on a
    database or another process stays off the event loop."""
    return await asyncio.get_running_loop().run_in_executor(_threads(), func, *args)


def _threads() -> ThreadPoolExecutor:
    """The process's pool for direct routes (a plain executor: handing a call to the
    framework's pool costs about twice as much CPU). One per process, made on first use,
    so a forked worker never inherits a pool whose threads stayed in its parent."""
    global _pool  # noqa: PLW0603 - one pool per process, like the framework's
    pool = _pool
    if pool is None or pool[0] != os.getpid():
        with _pool_lock:
            pool = _pool
            if pool is None or pool[0] != os.getpid():
                pool = _pool = (
                    os.getpid(),
                    ThreadPoolExecutor(_THREADS, thread_name_prefix="sovra-route"),
                )
    return pool[1]


def _call(
    endpoint: Callable[[Any, Principal], Response],
    body: BaseModel,
    check: Callable[[bytes], Principal],
    raw: bytes,
) -> Response:
    return endpoint(body, check(raw))
