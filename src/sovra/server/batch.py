"""Batch routes: many records, or many access requests, in one signed request.

``POST /v1/records/batch`` and ``POST /v1/access/batch`` take JSON lines
(``application/x-ndjson``): one record, or one access request, per line, with the fields
and checks of the single route (``/v1/records``, ``/v1/access``). They answer with JSON
lines, one per input line and in its order, then a summary::

    {"line": 1, "status": 201, "result": {... what the single route answers ...}}
    {"line": 2, "status": 400, "error": {"error": "bad_request", "message": "..."}}
    {"summary": {"lines": 2, "ok": 1, "failed": 1}}

The whole body is read, bounded (:class:`~sovra.server.limits.BodyLimits`) and
authenticated before any line is looked at: the request token signs the body's hash, so
nothing may be stored before the signature over all of it is checked. A batch is refused
whole, with nothing stored and nothing logged, when it has more lines than the gateway
takes at once (413), is empty (400) or is not declared as JSON lines (415).

Then each line is parsed on its own with :func:`sovra.model.parse_json` (bounded, strict
UTF-8, no field named twice, no lone surrogate) and checked as the single route checks
its body: a bad line gets its own precise error and the others go on. The lines go to
the gateway's batch flows in chunks while the answer is written, so the first results
leave before the last lines are stored, and a caller who hangs up stops the batch at the
edge of a chunk. An error that stops a chunk as a whole (a custodian unreachable) stops
the batch there: every line from it on is answered with that error, and the summary
names the line it stopped at.
"""

import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import orjson
from fastapi import Depends, FastAPI, Header, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException

from sovra.errors import BadRequest, PayloadTooLarge, SovraError, Unavailable
from sovra.gateway import (
    MAX_ACCESS_BATCH,
    MAX_INGEST_BATCH,
    AccessRequest,
    AccessResult,
    Gateway,
    IngestItem,
    IngestReceipt,
)
from sovra.model import Grant, Principal, parse_json
from sovra.server.bodies import AccessBody, IngestBody
from sovra.server.handlers import validation_message
from sovra.server.idempotency import HEADER, WINDOW_S, check_key, keyed_answer
from sovra.store.idempotency import IdempotencyKeys, idempotency_keys

__all__ = ["LINE_OVERHEAD_BYTES", "MEDIA_TYPE", "add_batch_routes"]

log = logging.getLogger("sovra.server")

MEDIA_TYPE = "application/x-ndjson"
"""The media type of a batch, in and out: one JSON object per line."""

LINE_OVERHEAD_BYTES = 64 << 10
"""What one line may hold beside a record's largest content: the other fields, JSON
escapes. A line is at most ``max_record_bytes`` plus this."""

_INGEST_CHUNK = 500
"""Lines handed to the gateway at once: one group commit each, one piece of the answer."""

_ACCESS_CHUNK = 100
"""Access requests decided at once (one log batch for their decisions, one for the releases);
fewer than records, as each may release up to ``max_records_per_request``."""

_WHERE = re.compile(r": line 1 column (\d+) \(char \d+\)$")

_Body = TypeVar("_Body", bound=BaseModel)
_Item = TypeVar("_Item")


def _lines(body: bytes, most: int) -> list[bytes]:
    """The lines of a batch body, checked whole before any is parsed.

    Raises:
        BadRequest: an empty body.
        PayloadTooLarge: more than *most* lines.
    """
    # Counted before splitting: a body of a million newlines is refused without a list.
    count = body.count(b"\n") + (0 if body.endswith(b"\n") else 1)
    if not body:
        raise BadRequest("empty batch: send one JSON object per line")
    if count > most:
        raise PayloadTooLarge(
            f"batch of {count} lines is over the {most}-line limit of one "
            "request; nothing was stored: send it in smaller requests"
        )
    lines = body.split(b"\n")
    return lines[:-1] if body.endswith(b"\n") else lines


def _parse(line: bytes, limit: int, model: type[_Body]) -> _Body:
    """One line as the single route's body.

    Raises:
        PayloadTooLarge: the line is over *limit* bytes.
        BadRequest: blank, not one JSON object, or fields the single route refuses.
    """
    if line.endswith(b"\r"):  # a file written with CRLF line ends
        line = line[:-1]
    if len(line) > limit:
        raise PayloadTooLarge(f"line is {len(line)} bytes, over the {limit}-byte limit of a line")
    if not line.strip():
        raise BadRequest("blank line: expected one JSON object")
    try:
        value = parse_json(line, limit=limit, what="line")
    except BadRequest as exc:
        # A line is the parser's line 1: its column is what locates the fault.
        raise BadRequest(_WHERE.sub(r" at column \1", exc.message)) from None
    if not isinstance(value, dict):
        raise BadRequest(f"line is a JSON {type(value).__name__}, not an object")
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        raise BadRequest(validation_message(exc.errors())) from None


def _ingest_item(body: IngestBody) -> IngestItem:
    return IngestItem(
        body.subject_id, body.jurisdiction, body.content, body.purpose, body.other_homes
    )


def _access_request(body: AccessBody) -> AccessRequest:
    return AccessRequest(
        purpose=body.purpose,
        record_ids=tuple(body.record_ids),
        subjects=tuple((s.jurisdiction, s.subject_id) for s in body.subjects),
        jurisdiction=body.jurisdiction,
        grant=None if body.grant is None else Grant.from_json(body.grant),
        justification=body.justification,
        reveal=body.reveal,
    )


def _encode(value: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(value, option=orjson.OPT_APPEND_NEWLINE)
    except orjson.JSONEncodeError:
        # Text orjson refuses (a lone surrogate echoed in a message) goes out escaped.
        return json.dumps(value).encode("ascii") + b"\n"


def _answer_lines(
    lines: Sequence[bytes],
    *,
    chunk: int,
    prepare: Callable[[bytes], _Item],
    run: Callable[[list[_Item]], Sequence[Any]],
    render: Callable[[Any], dict[str, Any]],
    status: int,
) -> Iterator[bytes]:
    """The answer to a batch, one piece per chunk of lines, then the summary.

    *prepare* turns a line into the gateway's item (raising the line's error), *run* is the
    gateway's batch flow over the good items of a chunk, *render* a result as the single
    route answers it with *status*.
    """
    ok = failed = 0
    halt: SovraError | None = None  # what each good line gets once the batch has stopped
    stopped_at = 0
    for start in range(0, len(lines), chunk):
        slots: list[Any] = []
        for line in lines[start : start + chunk]:
            try:
                slots.append(prepare(line))
            except SovraError as exc:
                slots.append(exc)
        items = [s for s in slots if not isinstance(s, SovraError)]
        results: Iterator[Any] = iter(())
        if halt is None and items:
            try:
                results = iter(run(items))
            except SovraError as exc:
                if exc.status >= 500:
                    log.error("batch stopped: %s", exc.diagnostics())  # noqa: TRY400 (expected)
                halt, stopped_at = exc, start + 1
            except Exception as exc:  # a bug: details to the server log, never to the caller
                log.exception("batch stopped: unexpected %s", type(exc).__name__)
                halt, stopped_at = SovraError("internal error; see the server log"), start + 1
        out: list[bytes] = []
        for number, slot in enumerate(slots, start + 1):
            outcome = slot if isinstance(slot, SovraError) else halt or next(results)
            if isinstance(outcome, SovraError):
                failed += 1
                error = outcome.to_dict()
                out.append(_encode({"line": number, "status": outcome.status, "error": error}))
            else:
                ok += 1
                out.append(_encode({"line": number, "status": status, "result": render(outcome)}))
        yield b"".join(out)
        if halt is not None and stopped_at == start + 1:
            halt = Unavailable(
                f"not attempted: the batch stopped at line {stopped_at} "
                f"({halt.code}: {halt.message})"
            )
    summary: dict[str, Any] = {"lines": len(lines), "ok": ok, "failed": failed}
    if halt is not None:
        summary["stopped_at"] = stopped_at
    yield _encode({"summary": summary})


_ERROR_JSON = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}

_KEYED = {
    409: "another request with this Idempotency-Key is being answered",
    422: "this Idempotency-Key was used with another body",
}
"""The answers of a route that takes an Idempotency-Key (server/idempotency.py)."""


def _documented(
    example_line: dict[str, Any], what: str, most: int, errors: dict[int, str]
) -> dict[str, Any]:
    """The OpenAPI parts a batch route states itself: its JSON-lines body, its answer, and
    the errors of its own (*errors*, by status) beside those every route gives."""
    line_schema = {
        "type": "object",
        "description": "one per input line, in order; then one summary line",
        "properties": {
            "line": {"type": "integer", "minimum": 1},
            "status": {"type": "integer", "description": "as the single route would answer"},
            "result": {"type": "object", "description": f"the {what}, when status < 300"},
            "error": {"$ref": "#/components/schemas/Error"},
            "summary": {
                "type": "object",
                "properties": {
                    "lines": {"type": "integer"},
                    "ok": {"type": "integer"},
                    "failed": {"type": "integer"},
                    "stopped_at": {"type": "integer"},
                },
            },
        },
    }
    return {
        "openapi_extra": {
            "requestBody": {
                "required": True,
                "content": {
                    MEDIA_TYPE: {
                        "schema": {"type": "string"},
                        "example": json.dumps(example_line) + "\n",
                    }
                },
                "description": f"JSON lines, at most {most}: each line one "
                "JSON object with the fields of the single route's body",
            }
        },
        "responses": {
            200: {
                "description": "one JSON line per input line, then a summary line",
                "content": {MEDIA_TYPE: {"schema": line_schema}},
            },
            415: {
                "description": f"the body is not declared as {MEDIA_TYPE}",
                "content": _ERROR_JSON,
            },
            **{
                status: {"description": why, "content": _ERROR_JSON}
                for status, why in errors.items()
            },
        },
        "response_class": StreamingResponse,
    }


def _batch_of(most: int) -> Callable[[Request], Awaitable[list[bytes]]]:
    async def lines(request: Request) -> list[bytes]:
        """The body's lines (the dependency that signs the caller in has read it already)."""
        media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media != MEDIA_TYPE:
            raise HTTPException(415, f"a batch is JSON lines: send content-type {MEDIA_TYPE}")
        return _lines(await request.body(), most)

    return lines


@dataclass(frozen=True)
class _Route:
    """One batch route: what a line is, how a result is rendered, how much at a time."""

    path: str
    name: str
    doc: str
    body: type[BaseModel]
    item: Callable[[Any], Any]  # the line's body -> the gateway's item
    status: int  # of a good line, as the single route answers
    chunk: int
    most: int
    example: dict[str, Any]
    result: str  # what a good line's result is, for the document
    keyed: bool  # takes an Idempotency-Key (and may answer 409 and 422 for it)


_ROUTES = (
    _Route(
        "/v1/records/batch",
        "ingest_batch",
        "Ingest many records: one JSON object per line, one result line per record.",
        IngestBody,
        _ingest_item,
        201,
        _INGEST_CHUNK,
        MAX_INGEST_BATCH,
        {"subject_id": "anna@example.pl", "jurisdiction": "PL", "content": "hello"},
        "ingest receipt, as POST /v1/records answers",
        True,
    ),
    _Route(
        "/v1/access/batch",
        "access_batch",
        "Many access requests, each decided and logged on its own, one result line each.",
        AccessBody,
        _access_request,
        200,
        _ACCESS_CHUNK,
        MAX_ACCESS_BATCH,
        {"purpose": "customer-support", "record_ids": ["r-0123"]},
        "access result, as POST /v1/access answers",
        False,
    ),
)


def add_batch_routes(
    app: FastAPI,
    gw: Gateway,
    caller: Any,
    *,
    receipt: Callable[[IngestReceipt], dict[str, Any]],
    access: Callable[[AccessResult], dict[str, Any]],
) -> None:
    """Add the batch routes; *caller* is the dependency that authenticates a request,
    *receipt* and *access* render a result as the single routes do."""
    limit = gw.config.max_record_bytes + LINE_OVERHEAD_BYTES
    flows: dict[str, tuple[Callable[[Principal, Any], Sequence[Any]], Callable[[Any], Any]]] = {
        # Looked up on each request, not bound once: the gateway's flow as it is then.
        "/v1/records/batch": (lambda p, items: gw.ingest_many(p, items), receipt),  # noqa: PLW0108
        "/v1/access/batch": (lambda p, asks: gw.access_many(p, asks), access),  # noqa: PLW0108
    }
    # Idempotency keys of record batches, in the metadata store (server/idempotency.py).
    keys = idempotency_keys(gw.store, clock=time.time, window_s=WINDOW_S)
    for route in _ROUTES:
        run, render = flows[route.path]
        keyed = keys if route.keyed else None
        _add_route(app, caller, route, run=run, render=render, limit=limit, keys=keyed)


def _add_route(
    app: FastAPI,
    caller: Any,
    route: _Route,
    *,
    run: Callable[[Principal, Any], Sequence[Any]],
    render: Callable[[Any], dict[str, Any]],
    limit: int,
    keys: IdempotencyKeys | None,
) -> None:
    lines_of = Annotated[list[bytes], Depends(_batch_of(route.most))]
    key_of = Annotated[str | None, Header(alias=HEADER)]

    def batch(principal: caller, lines: lines_of, key: key_of = None) -> StreamingResponse:
        who: Principal = principal

        def answer(some: Sequence[bytes]) -> Iterator[bytes]:
            return _answer_lines(
                some,
                chunk=route.chunk,
                prepare=lambda line: route.item(_parse(line, limit, route.body)),
                run=lambda items: run(who, items),
                render=render,
                status=route.status,
            )

        if key is None:
            return StreamingResponse(answer(lines), media_type=MEDIA_TYPE)
        if keys is None:
            raise BadRequest(f"{HEADER} is taken by POST /v1/records/batch only")
        keyed = keyed_answer(
            keys,
            who.id,
            check_key(key),
            path=route.path,
            lines=lines,
            window=route.chunk,
            answer=answer,
        )
        return StreamingResponse(keyed, media_type=MEDIA_TYPE)

    app.post(
        route.path,
        tags=["records"],
        name=route.name,
        description=route.doc,
        **_documented(route.example, route.result, route.most, _KEYED if route.keyed else {}),
    )(batch)
