"""The operations surface: ``/healthz``, ``/readyz``, ``/metrics`` and the access log.

- ``GET /healthz``: the process serves; no I/O. ``200 {"status": "ok"}``.
- ``GET /readyz``: the metadata store, the log and each jurisdiction's custodian answer;
  ``200`` with each check, or ``503`` naming what is not ready (details go to the server
  log, not to the unauthenticated caller).
- ``GET /metrics``: Prometheus text (prometheus-client). With several worker processes
  (``sovra serve --workers N``) each writes its figures to the directory named by
  ``PROMETHEUS_MULTIPROC_DIR`` and a scrape, served by any worker, adds them all up.

Per request, :class:`Operations` (an ASGI middleware around the whole application) takes
the time, gives the request an id (a well-formed ``X-Request-Id`` from the caller, or a
new one, echoed in the response), observes one histogram child per route template,
method and status (not per raw path: ``/v1/grants/{grant_id}``), and, when the
``sovra.access`` logger is at INFO, writes one JSON line: time, request id, method,
route, status, duration and the principal's id. Never a token, a body or a subject id.

What the log proves (decisions per effect and requesting jurisdiction, bulk-guard
refusals, entries per kind, its size) is read from the log itself at scrape time, by
whichever worker answers: every worker reads the same log, so each gives the same totals,
also across replicas, and no request pays for them.
"""

from __future__ import annotations

import datetime
import logging
import os
import re
import threading
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import orjson
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sovra.errors import SovraError
from sovra.model import Principal

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from sovra.deployment import Deployment

__all__ = [
    "PRINCIPAL",
    "QUIET_ROUTES",
    "AccessLines",
    "add_operations",
    "metrics_dir_env",
    "note_principal",
]

PRINCIPAL = "sovra.principal"
"""Where in the ASGI scope the authenticated principal's id waits for the access log."""
QUIET_ROUTES = frozenset({"/healthz", "/readyz", "/metrics"})
"""Probes and scrapes: counted in the metrics, left out of the access log."""
REQUEST_ID = "x-request-id"

_ACCESS = "sovra.access"
_access = logging.getLogger(_ACCESS)
_logger = logging.getLogger("sovra.server")
_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
_UNMATCHED = "(unmatched)"
_LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)
_TALLY_PER_SCRAPE = 100_000
"""Log entries one scrape reads at most: a first scrape of a long log catches up over a
few scrapes instead of holding one for long."""
_PAGE = 1_000


def metrics_dir_env() -> str | None:
    """The directory worker processes share their metrics through, if any."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def note_principal(scope: Scope, principal: Principal) -> Principal:
    """Remember who a request is from, for its access log line; returns *principal*."""
    scope[PRINCIPAL] = principal.id
    return principal


def add_operations(app: FastAPI, deployment: Deployment) -> None:
    """Add ``/healthz``, ``/readyz`` and ``/metrics`` to *app*, and the middleware that
    times, counts and logs every request (outermost: it sees every refusal too)."""
    metrics = _Metrics(deployment)
    _add_routes(app, deployment, metrics)
    app.add_middleware(Operations, metrics=metrics)


class Operations:
    """ASGI middleware: request ids, the request histogram and the access log."""

    def __init__(self, app: ASGIApp, metrics: _Metrics) -> None:
        self._app = app
        self._metrics = metrics
        self._children: dict[tuple[str, str, int], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one connection scope; only ``http`` scopes are counted and logged."""
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id(scope)
        status = 500
        header = (b"x-request-id", request_id)

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            await self._app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = self._route(scope)
            key = (route, scope["method"], status)
            child = self._children.get(key)
            if child is None:
                child = self._children[key] = self._metrics.requests.labels(*key)
            child.observe(elapsed)
            if route not in QUIET_ROUTES and _access.isEnabledFor(logging.INFO):
                line = _line(scope, request_id, route, status, elapsed)
                handlers = _access.handlers
                if len(handlers) == 1 and type(handlers[0]) is AccessLines and not _access.filters:
                    handlers[0].write_line(line)  # as sovra serve logs: no record needed
                else:
                    _access.handle(_record(line))

    def _route(self, scope: Scope) -> str:
        """The template of the route that served *scope* (or would have, for a request
        refused before routing)."""
        route = scope.get("route")
        if route is None:
            app = scope.get("app")
            for candidate in getattr(app, "routes", ()):
                match, _ = candidate.matches({**scope})
                if match is Match.FULL:
                    route = candidate
                    break
        return getattr(route, "path", None) or _UNMATCHED


def _record(line: str) -> logging.LogRecord:
    # Made here, not by Logger.info: that also looks up its caller's frame, which an
    # access line does not name.
    return _access.makeRecord(_ACCESS, logging.INFO, "", 0, line, (), None)


class AccessLines(logging.StreamHandler):  # type: ignore[type-arg]
    """The access log's handler under ``sovra serve``: each record's message on a line.

    While it is the access logger's only handler, :class:`Operations` hands it the line
    itself (:meth:`write_line`): making a log record and passing it through the logging
    machinery cost more than the line, once per request.
    """

    def format(self, record: logging.LogRecord) -> str:
        """The record's message as it is (an access line is already JSON)."""
        return record.getMessage()

    def write_line(self, line: str) -> None:
        """Write *line* as :meth:`emit` writes a record whose message it is."""
        if self.level > logging.INFO:  # as the logger skips a handler above the record's level
            return
        if self.filters:
            self.handle(_record(line))
            return
        try:
            with self.lock:  # type: ignore[union-attr]
                self.stream.write(line + self.terminator)
                self.stream.flush()
        except Exception:  # noqa: BLE001 - as emit: reported by handleError, never raised
            self.handleError(_record(line))


def _request_id(scope: Scope) -> bytes:
    """The caller's ``X-Request-Id`` if it is a plain token (never echoed otherwise, so
    nothing can be injected into a log line or a header), or a new random one."""
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            if _REQUEST_ID.fullmatch(value):
                return bytes(value)
            break
    return os.urandom(12).hex().encode()


def _now() -> str:
    """The time now as ``datetime.now(UTC).isoformat(timespec="milliseconds")`` writes it,
    its date and second formatted once a second."""
    global _second  # noqa: PLW0603 - the one cache of this module
    now = time.time()
    whole = int(now)
    second = _second
    if second[0] != whole:
        stamp = datetime.datetime.fromtimestamp(whole, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S")
        second = _second = (whole, stamp)
    return f"{second[1]}.{int((now - whole) * 1000):03d}+00:00"


_second: tuple[int, str] = (-1, "")


def _line(scope: Scope, request_id: bytes, route: str, status: int, elapsed: float) -> str:
    return orjson.dumps(
        {
            "time": _now(),
            "request_id": request_id.decode(),
            "method": scope["method"],
            "route": route,
            "status": status,
            "duration_ms": round(elapsed * 1000, 3),
            "principal": scope.get(PRINCIPAL),
        }
    ).decode()


# -- metrics ------------------------------------------------------------------------------


class _Metrics:
    """The process's metrics, and how a scrape renders them."""

    def __init__(self, deployment: Deployment) -> None:
        from prometheus_client import CollectorRegistry, Histogram

        self.multiprocess = metrics_dir_env() is not None
        # One registry per application (tests build many in one process). With several
        # processes the values live in the shared directory, and a scrape reads them
        # from there, not from a registry.
        self.registry = CollectorRegistry()
        owner = None if self.multiprocess else self.registry
        self.requests = Histogram(
            "sovra_http_request_duration_seconds",
            "HTTP requests by route template, method and status, and their latency "
            "(_count is the number of requests)",
            ["route", "method", "status"],
            buckets=_LATENCY_BUCKETS,
            registry=owner,
        )
        batches = Histogram(
            "sovra_log_batch_entries",
            "Entries per batch the log integrated (one transaction and one signature each)",
            buckets=_BATCH_BUCKETS,
            registry=owner,
        )
        custodian_calls = Histogram(
            "sovra_custodian_call_duration_seconds",
            "Calls to a custodian service by jurisdiction and operation, and their latency",
            ["jurisdiction", "operation"],
            buckets=_LATENCY_BUCKETS,
            registry=owner,
        )
        gateway = deployment.gateway
        gateway.log.on_batch = batches.observe
        for code, custodian in gateway.custodians.items():
            if hasattr(custodian, "on_call"):
                custodian.on_call = _timer(custodian_calls, code)
        self.tally = _LogTally(deployment)
        self.oversight = _Oversight(deployment)
        if not self.multiprocess:
            self.registry.register(self.tally)
            self.registry.register(self.oversight)

    def render(self) -> bytes:
        """The exposition of every metric (every worker's, with several)."""
        from prometheus_client import generate_latest

        if not self.multiprocess:
            return generate_latest(self.registry)
        from prometheus_client import CollectorRegistry
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        registry.register(self.tally)
        registry.register(self.oversight)
        return generate_latest(registry)


def _timer(histogram: Any, jurisdiction: str) -> Any:
    children: dict[str, Any] = {}

    def observe(operation: str, seconds: float) -> None:
        child = children.get(operation)
        if child is None:
            child = children[operation] = histogram.labels(jurisdiction, operation)
        child.observe(seconds)

    return observe


class _LogTally:
    """Counts read from the log's entries, caught up at each scrape (a collector)."""

    def __init__(self, deployment: Deployment) -> None:
        self._log = deployment.gateway.log
        self._decisions = deployment.gateway.decisions
        self._store = deployment.store
        self._lock = threading.Lock()
        self._read = 0
        self._kinds: dict[str, int] = {}
        self._by_effect: dict[tuple[str, str], int] = {}
        self._bulk: dict[str, int] = {}
        self._homes: dict[str, str] = {}

    def describe(self) -> list[Metric]:
        return []  # not asked for its metrics at registration: a scrape reads the log

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        with self._lock:
            size = self._catch_up()
            kinds = CounterMetricFamily("sovra_log_entries", "Log entries by kind", labels=["kind"])
            for kind, n in sorted(self._kinds.items()):
                kinds.add_metric([kind], n)
            decisions = CounterMetricFamily(
                "sovra_decisions",
                "Logged access decisions by effect and the requesting principal's jurisdiction",
                labels=["effect", "jurisdiction"],
            )
            for (effect, home), n in sorted(self._by_effect.items()):
                decisions.add_metric([effect, home], n)
            bulk = CounterMetricFamily(
                "sovra_bulk_refusals",
                "Logged denials by a bulk-collection rule of the policy pack",
                labels=["rule"],
            )
            for rule, n in sorted(self._bulk.items()):
                bulk.add_metric([rule], n)
            read = self._read
        yield GaugeMetricFamily("sovra_log_size", "Entries in the transparency log", value=size)
        yield GaugeMetricFamily(
            "sovra_log_entries_tallied",
            "Log entries the counts below are read from (catches up with sovra_log_size)",
            value=read,
        )
        yield kinds
        yield decisions
        yield bulk

    def _catch_up(self) -> int:
        size = self._log.stored_size()
        end = min(size, self._read + _TALLY_PER_SCRAPE)
        alerts = self._decisions.pack.alerts
        while self._read < end:
            stop = min(end, self._read + _PAGE)
            for entry in self._log.entries(self._read, stop):
                self._count(orjson.loads(entry), alerts)
            self._read = stop
        return size

    def _count(self, fields: Mapping[str, Any], alerts: Mapping[str, str]) -> None:
        kind = str(fields.get("kind"))
        self._kinds[kind] = self._kinds.get(kind, 0) + 1
        if kind != "decision":
            return
        effect = str(fields.get("effect"))
        key = (effect, self._home(str(fields.get("principal"))))
        self._by_effect[key] = self._by_effect.get(key, 0) + 1
        if effect != "deny":
            return
        for rule in fields.get("policies") or ():
            if alerts.get(rule) == "bulk" or str(rule).startswith("bulk-"):
                self._bulk[rule] = self._bulk.get(rule, 0) + 1

    def _home(self, principal_id: str) -> str:
        home = self._homes.get(principal_id)
        if home is None:
            try:
                home = self._store.get_principal(principal_id).jurisdiction
            except SovraError:
                home = "unknown"  # removed since, or not a principal id
            self._homes[principal_id] = home
        return home


class _Oversight:
    """The review queue and the bulk guard's alerts by state, read at each scrape (a
    collector): what an operator alerts on. Counts only, as on the public log: no
    requester, no subject. The queue and the alerts are the guard's, shared by every
    worker, so any worker answers with the same counts."""

    def __init__(self, deployment: Deployment) -> None:
        self._decisions = deployment.gateway.decisions

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import GaugeMetricFamily

        guard = self._decisions.guard
        waiting: dict[tuple[str, str], int] = {}
        for item in self._decisions.reviews():
            key = (item.queue, "allow" if item.allow else "deny")
            waiting[key] = waiting.get(key, 0) + 1
        queue = GaugeMetricFamily(
            "sovra_review_queue",
            "Decisions waiting for review, by queue and effect",
            labels=["queue", "effect"],
        )
        for (name, effect), n in sorted(waiting.items()):
            queue.add_metric([name, effect], n)
        yield queue
        now, window = guard.clock(), guard.limits.window_s
        states: dict[tuple[str, str], int] = {}
        for alert in guard.alerts():
            state = "active" if now - alert.time_s < window else "past"
            key = (state, alert.jurisdiction)
            states[key] = states.get(key, 0) + 1
        alerts = GaugeMetricFamily(
            "sovra_bulk_alerts",
            "Bulk-guard alerts kept (the last 1000), by state (active: raised within the "
            "guard's window) and the requester's jurisdiction",
            labels=["state", "jurisdiction"],
        )
        for (state, home), n in sorted(states.items()):
            alerts.add_metric([state, home], n)
        yield alerts


# -- routes -------------------------------------------------------------------------------


def _add_routes(app: FastAPI, deployment: Deployment, metrics: _Metrics) -> None:
    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        """The process serves (no I/O): for liveness probes."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"])
    def readyz() -> JSONResponse:
        """The metadata store, the log and every custodian answer: for readiness probes.
        503 names what is not ready."""
        checks = _readiness(deployment)
        failed = [name for name, state in checks.items() if state != "ok"]
        return JSONResponse(
            {"ready": not failed, "not_ready": failed, "checks": checks},
            status_code=503 if failed else 200,
        )

    @app.get("/metrics", tags=["operations"], response_class=Response)
    def metrics_text(request: Request) -> Response:
        """Prometheus text exposition of every worker's metrics."""
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)


def _readiness(deployment: Deployment) -> dict[str, str]:
    """Each dependency's state: ``ok``, or the name of what went wrong (the details,
    which may name hosts and paths, go to the server log only)."""
    gateway = deployment.gateway
    probes: dict[str, Any] = {
        "store": lambda: deployment.store.records_page("", 1),
        "log": gateway.log.stored_size,
    }
    for code, custodian in sorted(gateway.custodians.items()):
        health = getattr(custodian, "health", None)
        probes[f"custodian:{code}"] = health or (lambda c=custodian: c.current_kek_version)
    checks: dict[str, str] = {}
    for name, probe in probes.items():
        try:
            probe()
        except Exception as exc:  # noqa: BLE001 - any failure means not ready, said in words
            reason = exc.code if isinstance(exc, SovraError) else "error"
            _logger.warning("not ready: %s: %s", name, exc)
            checks[name] = reason
        else:
            checks[name] = "ok"
    return checks
