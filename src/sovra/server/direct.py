"""The hot routes' common case, served without the framework's per-request plumbing.

``POST /v1/records`` and ``POST /v1/access`` carry most of the traffic. The framework
serves a request through some ten layers (its exception middleware, the router's match
over every route, the route's handler with its request object, URL and dependency
solving, the response object and the wrappers of ``send``), then hands the endpoint to a
worker thread. :class:`DirectRoutes` sits right under
:class:`~sovra.server.limits.BodyLimits`, where the body is read, bounded and parsed
strictly already, and serves the common case itself: the body is validated against the
route's model on the loop (CPU only, no I/O, no side effect), then the token check and
the endpoint run together in one worker thread, and the answer is sent as it is.

Whatever is not the common case (a query string, no JSON body, or one that does not fit
the model) goes on to the framework, unchanged, so every refusal reads exactly as before
and the checks keep their order (the credential first, then the body). A refusal raised
by the token check or the flow (a :class:`~sovra.errors.SovraError`) is answered as the
framework's handler answers it (:func:`~sovra.server.handlers.sovra_error_response`);
anything else goes up to the framework's last-resort handler, as it did. The routes stay
declared with the framework, so the OpenAPI document does not change.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import FastAPI
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from sovra.errors import SovraError
from sovra.model import Principal
from sovra.server.handlers import sovra_error_response, unexpected_response
from sovra.server.limits import PARSED_BODY

__all__ = ["DirectRoutes", "Signer", "in_thread", "serve_directly"]

Signer = Callable[[Scope, str], Callable[[bytes], Principal]]
"""Reads a request's credential from its scope (on the loop), given the path the token
must name, and returns the check of the token against the body (run in the worker
thread): raises what the route's dependency raises."""


@dataclass(frozen=True, slots=True)
class _Direct:
    route: APIRoute  # named in the scope, as the router names the route it picked
    path: str
    model: type[BaseModel]
    endpoint: Callable[[Any, Principal], Response]
    signed_by: Signer


class DirectRoutes:
    """ASGI middleware: serves the routes :func:`serve_directly` names, common case only.

    MUST sit under :class:`~sovra.server.limits.BodyLimits` (it reads the parsed body
    that one leaves in the scope) and over the framework.
    """

    def __init__(self, app: ASGIApp, routes: dict[str, _Direct]) -> None:
        """Wrap *app*; *routes* (path -> route) may be filled in after this is made."""
        self._app = app
        self._routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one connection scope: a direct route's common case here, the rest below."""
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and not scope.get("query_string")
            and not scope.get("root_path")
        ):
            route = self._routes.get(scope["path"])
            parsed = scope.get(PARSED_BODY)
            if route is not None and type(parsed) is dict:
                try:
                    body = route.model.model_validate(parsed)
                except ValidationError:
                    pass  # the framework's handler words the refusal
                else:
                    scope["route"] = route.route
                    await _serve(route, body, scope, receive, send)
                    return
        await self._app(scope, receive, send)

    @staticmethod
    def table() -> dict[str, _Direct]:
        """An empty table of direct routes, for :func:`serve_directly` to fill."""
        return {}


async def _serve(
    route: _Direct, body: BaseModel, scope: Scope, receive: Receive, send: Send
) -> None:
    message = await receive()  # the body BodyLimits read, handed on as one message
    raw: bytes = message.get("body", b"")
    try:
        check = route.signed_by(scope, route.path)
        response = await in_thread(_call, route.endpoint, body, check, raw)
    except SovraError as exc:
        response = sovra_error_response(exc)
    except Exception as exc:
        # As the framework's outermost middleware does, which this one sits outside of:
        # the 500 answered, then the error raised on to the server, which logs it too.
        await _send(unexpected_response(exc), send)
        raise
    await _send(response, send)


async def _send(response: Response, send: Send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": response.status_code,
            "headers": response.raw_headers,
        }
    )
    await send({"type": "http.response.body", "body": response.body})


def serve_directly(
    app: FastAPI, table: dict[str, _Direct], path: str, model: type[BaseModel], signed_by: Signer
) -> None:
    """Have :class:`DirectRoutes` over *table* serve the common case of the ``POST`` route
    at *path*.

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
    table[path] = _Direct(route, path, model, route.endpoint, signed_by)


def _call(
    endpoint: Callable[[Any, Principal], Response],
    body: BaseModel,
    check: Callable[[bytes], Principal],
    raw: bytes,
) -> Response:
    return endpoint(body, check(raw))


# -- the worker threads ---------------------------------------------------------------------

_T = TypeVar("_T")

_THREADS = 40
"""As many as the framework's own pool: the flows' group commits gather concurrent calls."""


async def in_thread(func: Callable[..., _T], *args: Any) -> _T:
    """``func(*args)`` in the process's pool for direct routes: whatever may wait on a
    database or another process stays off the event loop."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[_T] = loop.create_future()
    _threads().put((func, args, loop, done))
    return await done


class _Pool:
    """Threads taking calls from one queue, each answer handed back to its loop with one
    ``call_soon_threadsafe``: less CPU than an executor's hand-off (its future, the
    asyncio future wrapped around it, and the callbacks chaining the two). The threads
    start with the first call and wait on the queue, idle, when there is nothing to do."""

    def __init__(self, threads: int) -> None:
        self.pid = os.getpid()
        self._calls: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads = threads
        self._started = False

    def put(self, job: tuple[Callable[..., Any], tuple[Any, ...], Any, Any]) -> None:
        if not self._started:
            with _pool_lock:
                if not self._started:
                    for n in range(self._threads):
                        threading.Thread(
                            target=self._work, name=f"sovra-route-{n}", daemon=True
                        ).start()
                    self._started = True
        self._calls.put(job)

    def _work(self) -> None:
        calls = self._calls
        while True:
            func, args, loop, done = calls.get()
            try:
                value = func(*args)
            except BaseException as exc:  # noqa: BLE001 - handed to the awaiting coroutine
                _hand_back(loop, done, None, exc)
            else:
                _hand_back(loop, done, value, None)
            # Nothing of a finished call stays alive while the thread waits for the next.
            func = args = loop = done = value = None


def _hand_back(loop: Any, done: Any, result: Any, exc: BaseException | None) -> None:
    # A loop closed meanwhile raises RuntimeError: nobody waits for the answer.
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(_settle, done, result, exc)


def _settle(done: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    if done.cancelled():
        return
    if exc is None:
        done.set_result(result)
    else:
        done.set_exception(exc)


_pool: _Pool | None = None
_pool_lock = threading.Lock()


def _threads() -> _Pool:
    """The process's pool for direct routes. One per process, made on first use, so a
    forked worker never inherits a pool whose threads stayed in its parent."""
    global _pool  # noqa: PLW0603 - one pool per process, like the framework's
    pool = _pool
    if pool is None or pool.pid != os.getpid():
        with _pool_lock:
            pool = _pool
            if pool is None or pool.pid != os.getpid():
                pool = _pool = _Pool(_THREADS)
    return pool
