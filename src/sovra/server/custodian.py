"""A jurisdiction's custodian as its own HTTP service (``sovra custodian serve``).

The calls themselves (:class:`CustodianCalls`) are carried either by this HTTP service or,
for the custodians ``sovra serve`` starts on its own machine, in frames on a Unix-domain
socket (:mod:`sovra.server.custodian_socket`, docs/custodian-protocol.md): the same bodies,
checks and errors.

The API is shaped like the AWS KMS external key store (XKS) proxy API, which key managers
already speak: every call is a ``POST`` of JSON under ``/kms/xks/v1``, carries
``requestMetadata`` naming the caller, the operation and a correlation id, and errors come
back as ``{"errorName": ..., "errorMessage": ...}`` with the XKS names and statuses::

    POST /kms/xks/v1/health                     deep health check (a wrap and unwrap)
    POST /kms/xks/v1/keys/<J>/metadata          KEK versions, subject keys per version
    POST /kms/xks/v1/keys/<J>/wrap              batch: data keys -> wrapped keys, all or
                                                none
    POST /kms/xks/v1/keys/<J>/unwrap            batch: wrapped keys -> data keys, against a
                                                logged allow and a justification code
    POST /kms/xks/v1/keys/<J>/unwrap-batches    many unwrap requests, each decided on its
                                                own; a refused one gets its error in its slot
    POST /kms/xks/v1/keys/<J>/protect           batch: values -> tokens or sealed values
                                                under a subject's key (minimisation)
    POST /kms/xks/v1/keys/<J>/protect-many      protect for many records, all or none
    POST /kms/xks/v1/keys/<J>/protect-wrap      protect and wrap for many records in one
                                                call, all or none (ingest batches)
    POST /kms/xks/v1/keys/<J>/reveal            batch: tokens and sealed values -> values,
                                                against a logged allow to reveal
    POST /kms/xks/v1/keys/<J>/shred             destroy a subject's key
    POST /kms/xks/v1/keys/<J>/rotate            new KEK version, rewrap, destroy unused

Errors: ``ValidationException`` 400, ``InvalidCiphertextException`` 400 (one opaque
message), ``AuthenticationFailedException`` 401, ``AccessDeniedException`` 403,
``KeyNotFoundException`` 404 (other jurisdiction; a shredded subject),
``ThrottlingException`` 429 with ``Retry-After``, ``InternalException`` 500, or 503 with
``Retry-After`` when the subject-key store cannot answer now (its database is down, or a
lock was held past ``[postgres] lock_timeout_s``).

Differences from XKS, on purpose: callers authenticate with a bearer secret (XKS uses
SigV4; this service runs on loopback or behind a TLS proxy), and an unwrap carries the log
entry and the log's signed receipt of the allow that authorizes it. The custodian checks
that receipt itself (:class:`~sovra.keys.BaseCustodian`), and that the justification code
equals the purpose of the logged allow, so a caller cannot release a key for a reason the
log does not show. Every request is rate-limited per caller and recorded (the custodian's
journal, and one log line per request without any key material).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hmac
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response

from sovra.errors import (
    BadRequest,
    ConfigError,
    Denied,
    IntegrityError,
    NotFound,
    SovraError,
    Unauthenticated,
    Unavailable,
)
from sovra.keys import LocalCustodian, transport, values
from sovra.keys.custodian import MAX_BATCH, MAX_BATCH_KEYS, MAX_BATCH_VALUES
from sovra.keys.remote import logged_purpose
from sovra.keys.witnessed import MAX_PROOF_BYTES
from sovra.model import (
    LogReceipt,
    RecordHeader,
    ReleaseAuthorization,
    WrappedKey,
    check_jurisdiction,
    field_problem,
    parse_json,
)

__all__ = [
    "API_PREFIX",
    "KEY_OPERATIONS",
    "MAX_BATCH_BODY_BYTES",
    "MAX_BODY_BYTES",
    "Answer",
    "CustodianCalls",
    "RateLimiter",
    "Throttled",
    "body_limit",
    "create_custodian_app",
    "error_answer",
]

log = logging.getLogger("sovra.custodian")

API_PREFIX = "/kms/xks/v1"
MAX_BODY_BYTES = 4 * 1024 * 1024
"""A full batch of unwraps with its log entry fits well within this."""
MAX_BATCH_BODY_BYTES = 16 * 1024 * 1024
"""The limit of ``unwrap-batches``, ``protect-many`` and ``protect-wrap``: up to 1,000
requests, each with its own logged allow (or values), and up to 10,000 keys in all."""
_REQUEST_ID = re.compile(r"[\x20-\x7e]{1,128}")
_CALLER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/-]{0,127}")
_JUSTIFICATION = re.compile(r"[a-z][a-z0-9_-]{0,63}")
_T = TypeVar("_T")
_BATCH_OPERATIONS = frozenset({"unwrap-batches", "protect-many", "protect-wrap"})


class Throttled(SovraError):
    """A caller exceeded its request rate; it may retry after ``retry_after_s``."""

    status = 429
    code = "throttled"

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class RateLimiter:
    """A token bucket per caller: *rate* requests per second, bursts of *burst*."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        """Set the limits.

        Raises:
            ConfigError: *rate* or *burst* is not positive.
        """
        if rate <= 0 or burst <= 0:
            raise ConfigError("rate limit and burst must be positive")
        self._rate = rate
        self._burst = burst
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, caller: str) -> None:
        """Spend one request of *caller*'s budget.

        Raises:
            Throttled: the budget is empty; the error says when one request is back.
        """
        now = self._clock()
        with self._lock:
            tokens, last = self._buckets.get(caller, (float(self._burst), now))
            tokens = min(float(self._burst), tokens + (now - last) * self._rate)
            if tokens < 1.0:
                self._buckets[caller] = (tokens, now)
                wait = (1.0 - tokens) / self._rate
                raise Throttled(f"caller {caller} is over {self._rate:g} requests/s", wait)
            self._buckets[caller] = (tokens - 1.0, now)
            if len(self._buckets) > 100_000:
                # Bounded memory: forget the fullest buckets' owners, they lose nothing.
                self._buckets = {k: v for k, v in self._buckets.items() if v[0] < self._burst - 1}


_ERROR_NAMES: list[tuple[type[SovraError], int, str]] = [
    (Throttled, 429, "ThrottlingException"),
    (Unauthenticated, 401, "AuthenticationFailedException"),
    (Denied, 403, "AccessDeniedException"),
    (NotFound, 404, "KeyNotFoundException"),
    (IntegrityError, 400, "InvalidCiphertextException"),
    (BadRequest, 400, "ValidationException"),
    # The subject-key store is down or waited past its [postgres] limits: retry.
    (Unavailable, 503, "InternalException"),
]


def _error_name(exc: SovraError) -> tuple[int, str]:
    for kind, status, name in _ERROR_NAMES:
        if isinstance(exc, kind):
            return status, name
    return 500, "InternalException"


def _xks_message(exc: SovraError) -> str:
    # XKS: printable ASCII, under 512 characters.
    return "".join(c if " " <= c <= "~" else "?" for c in exc.message)[:511]


# Base64 lengths of the largest transport public key and key envelope (any HPKE suite).
_B64_PUBLIC_KEY = 4 * -(-transport.MAX_PUBLIC_KEY_SIZE // 3)
_B64_ENVELOPE = 4 * -(-transport.MAX_ENVELOPE_SIZE // 3)


def _b64(value: object, what: str, *, max_len: int = 64 * 1024) -> bytes:
    """The bytes of base64 text of at most *max_len* characters."""
    if not isinstance(value, str) or len(value) > max_len:
        raise BadRequest(f"{what} must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f"{what} is not valid base64") from None


def _enc(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _fields(obj: object, required: set[str], optional: set[str], what: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise BadRequest(f"{what} must be a JSON object")
    problem = field_problem(obj, required, optional, what)
    if problem is not None:
        raise BadRequest(problem)
    return obj


def _items(body: Mapping[str, Any], most: int = MAX_BATCH) -> list[Any]:
    items = body["items"]
    if not isinstance(items, list) or not 0 < len(items) <= most:
        raise BadRequest(f"items must be a list of 1..{most} entries")
    return items


def _authorization(body: Mapping[str, Any]) -> ReleaseAuthorization:
    auth = _fields(
        body["authorization"],
        {"entry", "receipt"},
        {"records", "subjects", "proof"},
        "authorization",
    )
    if not isinstance(auth["receipt"], dict):
        raise BadRequest("receipt must be a JSON object")
    proof = auth.get("proof", "")
    if not isinstance(proof, str) or len(proof) > MAX_PROOF_BYTES:
        raise BadRequest(
            f"authorization proof must be a tlog-proof of at most {MAX_PROOF_BYTES} bytes"
        )
    return ReleaseAuthorization(
        entry=_b64(auth["entry"], "authorization entry"),
        receipt=LogReceipt.from_dict(auth["receipt"]),
        # What a large decision's entry names by root; checked against it before any use.
        records=_ids(auth.get("records", []), "records"),
        subjects=_ids(auth.get("subjects", []), "subjects"),
        # The custodian checks it against its own witnesses' keys, when it has some.
        proof=proof,
    )


def _ids(value: object, what: str) -> tuple[str, ...]:
    # The body limit bounds the count; each id must at least be a short string.
    if not isinstance(value, list) or not all(isinstance(i, str) and len(i) <= 128 for i in value):
        raise BadRequest(f"authorization {what} must be a list of ids")
    return tuple(value)


def _requester(body: Mapping[str, Any]) -> str:
    requester = body["requester"]
    if not isinstance(requester, str):
        raise BadRequest("requester must be a principal id")
    return requester


_HEADER_TAG = b"sovra-record\n"
_HEADER_FIELDS = {f.name for f in dataclasses.fields(RecordHeader)}


def _header(value: object) -> RecordHeader:
    """The record header in *value* (base64), read the short way when it is canonical:
    a header built from the parsed fields that encodes back to the very bytes is what
    :meth:`RecordHeader.from_bytes` returns for them; anything else goes to it, for its
    precise refusal."""
    data = _b64(value, "header", max_len=8192)
    if data.startswith(_HEADER_TAG):
        try:
            fields = orjson.loads(data[len(_HEADER_TAG) :])
            if type(fields) is dict and fields.keys() == _HEADER_FIELDS:
                header = RecordHeader(**fields)
                if header.to_bytes() == data:
                    return header
        except (orjson.JSONDecodeError, BadRequest, TypeError, ValueError):
            pass
    return RecordHeader.from_bytes(data)


def _requests(
    body: Mapping[str, Any],
    what: str,
    fields: set[str],
    *,
    parse: Callable[[dict[str, Any]], _T],
    size: Callable[[_T], int],
    most: tuple[int, str],
) -> list[_T]:
    """The ``requests`` of a batch call, each with exactly *fields*, parsed by *parse*; at
    most :data:`MAX_BATCH` of them, and *most* (a limit and its message) on the sum of
    their *size*. A fault names the request it is in."""
    raw = body["requests"]
    if not isinstance(raw, list) or not 0 < len(raw) <= MAX_BATCH:
        raise BadRequest(f"requests must be a list of 1..{MAX_BATCH} {what} requests")
    parsed = []
    total = 0
    for n, request in enumerate(raw):
        checked = _fields(request, fields, set(), f"{what} request {n}")
        try:
            parsed.append(parse(checked))
        except BadRequest as exc:
            raise BadRequest(f"{what} request {n}: {exc.message}") from None
        total += size(parsed[-1])
        if total > most[0]:
            raise BadRequest(most[1])
    return parsed


async def _bounded_body(request: Request, limit: int) -> bytes:
    """The request body, read no further than *limit* bytes: an oversized one is refused
    on its declared length, or as soon as more than *limit* bytes have arrived.

    Raises:
        BadRequest: the body is (or declares itself) over *limit* bytes.
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BadRequest(f"request body is {declared} bytes, over the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadRequest(f"request body is over the {limit}-byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


def _protect_request(body: Mapping[str, Any]) -> tuple[RecordHeader, list[tuple[str, str, str]]]:
    header = _header(body["header"])
    return header, _protect_items(_items(body, values.MAX_BATCH_VALUES))


def _protect_items(items: list[Any]) -> list[tuple[str, str, str]]:
    triples = []
    for item in items:
        fields = _fields(item, {"mode", "kind", "value"}, set(), "a protect item")
        triples.append((fields["mode"], fields["kind"], fields["value"]))
    return triples


def _protect_wrap_request(
    body: Mapping[str, Any],
) -> tuple[bytes, RecordHeader, list[tuple[str, str, str]]]:
    """``(data key, header, items)`` of one protect-wrap request; *items* may be empty."""
    items = body["items"]
    if not isinstance(items, list) or len(items) > values.MAX_BATCH_VALUES:
        raise BadRequest(f"items must be a list of 0..{values.MAX_BATCH_VALUES} entries")
    return _b64(body["dataKey"], "dataKey"), _header(body["header"]), _protect_items(items)


def _check_justification(authorization: ReleaseAuthorization, justification: str) -> None:
    """The justification must be the purpose of the logged allow.

    The entry is read here before the custodian verifies its receipt: a mismatch can only
    refuse, and a match counts only if the receipt then verifies over these same bytes.

    Raises:
        Denied: the entry does not parse, or its purpose is not *justification*.
    """
    purpose = logged_purpose(authorization.entry)
    if purpose != justification:
        raise Denied(
            f"justification {justification!r} is not the purpose of the logged allow "
            f"({purpose!r}); no key is released"
        )


class _Service:
    """The custodian's operations on parsed requests; one instance per app."""

    def __init__(self, custodian: LocalCustodian) -> None:
        self.custodian = custodian
        self.code = custodian.jurisdiction

    def wrap(self, body: dict[str, Any], _caller: str) -> dict[str, Any]:
        pairs = []
        for item in _items(body):
            fields = _fields(item, {"header", "dataKey"}, set(), "a wrap item")
            pairs.append((_b64(fields["dataKey"], "dataKey"), _header(fields["header"])))
        wrapped = self.custodian.wrap_many(pairs)
        return {"items": [{"kekVersion": w.kek_version, "wrapped": _enc(w.blob)} for w in wrapped]}

    def _unwrap_request(
        self, body: Mapping[str, Any]
    ) -> tuple[list[tuple[WrappedKey, RecordHeader]], ReleaseAuthorization, str, str]:
        """``(items, authorization, justification, requester)`` of one unwrap request."""
        authorization = _authorization(body)
        justification = body["justification"]
        if not isinstance(justification, str) or not _JUSTIFICATION.fullmatch(justification):
            raise BadRequest("justification must be a purpose code such as customer-support")
        pairs = []
        for item in _items(body):
            fields = _fields(item, {"header", "kekVersion", "wrapped"}, set(), "an unwrap item")
            version = fields["kekVersion"]
            if not isinstance(version, int) or isinstance(version, bool):
                raise BadRequest("kekVersion must be an integer")
            wrapped = WrappedKey(self.code, version, _b64(fields["wrapped"], "wrapped"))
            pairs.append((wrapped, _header(fields["header"])))
        return pairs, authorization, justification, _requester(body)

    def unwrap(self, body: dict[str, Any], caller: str) -> dict[str, Any]:
        pairs, authorization, justification, requester = self._unwrap_request(body)
        receipt = authorization.receipt
        _check_justification(authorization, justification)
        if "recipient" in body:
            # Client-side sealing: each key leaves encrypted to the client's key only.
            recipient = _b64(body["recipient"], "recipient", max_len=_B64_PUBLIC_KEY)
            sealed = self.custodian.unwrap_many_to(pairs, authorization, requester, recipient)
            log.info(
                "custodian %s released %d key(s) to %s's client via %s, log index %d",
                self.code,
                len(sealed),
                requester,
                caller,
                receipt.index,
            )
            return {"items": [{"sealedKey": _enc(k)} for k in sealed]}
        keys = self.custodian.unwrap_many(pairs, authorization, requester)
        self._released(len(keys), requester, caller, justification, receipt.index)
        return {"items": [{"dataKey": _enc(k)} for k in keys]}

    def _released(
        self, count: int, requester: str, caller: str, justification: str, index: int
    ) -> None:
        log.info(
            "custodian %s released %d key(s) to %s via %s, justification %s, log index %d",
            self.code,
            count,
            requester,
            caller,
            justification,
            index,
        )

    def unwrap_batches(self, body: dict[str, Any], caller: str) -> dict[str, Any]:
        parsed = _requests(
            body,
            "unwrap",
            {"items", "authorization", "justification", "requester"},
            parse=self._unwrap_request,
            size=lambda request: len(request[0]),
            most=(MAX_BATCH_KEYS, f"a call releases at most {MAX_BATCH_KEYS} keys"),
        )
        results: list[list[bytes] | SovraError | None] = [None] * len(parsed)
        asked = []
        for n, (_, authorization, justification, _) in enumerate(parsed):
            try:
                _check_justification(authorization, justification)
            except Denied as exc:
                results[n] = exc
                continue
            asked.append(n)
        if asked:
            answers = self.custodian.unwrap_batches(
                [(parsed[n][0], parsed[n][1], parsed[n][3]) for n in asked]
            )
            for n, answer in zip(asked, answers, strict=True):
                results[n] = answer
        out: list[dict[str, Any]] = []
        for n, result in enumerate(results):
            _, authorization, justification, requester = parsed[n]
            if isinstance(result, list):
                self._released(
                    len(result), requester, caller, justification, authorization.receipt.index
                )
                out.append({"items": [{"dataKey": _enc(k)} for k in result]})
                continue
            assert result is not None  # every slot was answered above
            log.info(
                "custodian %s refused unwrap request %d of %s for %s: %s, log index %d",
                self.code,
                n,
                caller,
                requester,
                result.code,
                authorization.receipt.index,
            )
            _, name = _error_name(result)
            out.append({"errorName": name, "errorMessage": _xks_message(result)})
        return {"results": out}

    def transport_key(self, _body: dict[str, Any], _caller: str) -> dict[str, Any]:
        version, key = self.custodian.transport_key()
        return {"kekVersion": version, "publicKey": _enc(key)}

    def wrap_sealed(self, body: dict[str, Any], _caller: str) -> dict[str, Any]:
        out = []
        for item in _items(body):
            fields = _fields(item, {"header", "keyEnvelope"}, set(), "a wrap-sealed item")
            envelope = _b64(fields["keyEnvelope"], "keyEnvelope", max_len=_B64_ENVELOPE)
            wrapped = self.custodian.wrap_sealed(envelope, _header(fields["header"]))
            out.append({"kekVersion": wrapped.kek_version, "wrapped": _enc(wrapped.blob)})
        return {"items": out}

    def protect(self, body: dict[str, Any], _caller: str) -> dict[str, Any]:
        header, triples = _protect_request(body)
        bodies = self.custodian.protect(header, triples)
        return {"items": [{"body": b} for b in bodies]}

    def protect_many(self, body: dict[str, Any], _caller: str) -> dict[str, Any]:
        requests = _requests(
            body,
            "protect",
            {"header", "items"},
            parse=_protect_request,
            size=lambda request: len(request[1]),
            most=(MAX_BATCH_VALUES, f"a call protects at most {MAX_BATCH_VALUES} values"),
        )
        out = self.custodian.protect_many(requests)
        return {"requests": [{"items": [{"body": b} for b in bodies]} for bodies in out]}

    def protect_wrap(self, body: dict[str, Any], _caller: str) -> dict[str, Any]:
        requests = _requests(
            body,
            "protect-wrap",
            {"header", "dataKey", "items"},
            parse=_protect_wrap_request,
            size=lambda request: len(request[2]),
            most=(MAX_BATCH_VALUES, f"a call protects at most {MAX_BATCH_VALUES} values"),
        )
        out = self.custodian.protect_and_wrap_many(requests)
        return {
            "requests": [
                {
                    "items": [{"body": b} for b in bodies],
                    "kekVersion": wrapped.kek_version,
                    "wrapped": _enc(wrapped.blob),
                }
                for bodies, wrapped in out
            ]
        }

    def reveal(self, body: dict[str, Any], caller: str) -> dict[str, Any]:
        authorization = _authorization(body)
        requester = _requester(body)
        quads = []
        for item in _items(body, values.MAX_BATCH_VALUES):
            fields = _fields(item, {"header", "mode", "kind", "body"}, set(), "a reveal item")
            quads.append(
                (_header(fields["header"]), fields["mode"], fields["kind"], fields["body"])
            )
        out = self.custodian.reveal(quads, authorization, requester)
        log.info(
            "custodian %s revealed %d value(s) to %s via %s, log index %d",
            self.code,
            sum(v is not None for v in out),
            requester,
            caller,
            authorization.receipt.index,
        )
        return {"items": [{"value": v} for v in out]}

    def shred(self, body: dict[str, Any], _caller: str) -> dict[str, Any]:
        subject = body["subject"]
        if not isinstance(subject, str):
            raise BadRequest("subject must be a commitment")
        return {"destroyed": self.custodian.shred(subject)}

    def rotate(self, _body: dict[str, Any], _caller: str) -> dict[str, Any]:
        version = self.custodian.rotate()
        moved = self.custodian.rewrap()
        destroyed = self.custodian.destroy_unused()
        return {
            "currentKekVersion": version,
            "rewrapped": moved,
            "destroyedVersions": destroyed,
        }

    def metadata(self, _body: dict[str, Any], _caller: str) -> dict[str, Any]:
        status = self.custodian.status().to_dict()
        return {
            "keySpec": "AES_256",
            "keyUsage": ["WRAP", "UNWRAP"],
            "keyStatus": "ENABLED",
            **status,
        }

    def health(self, _body: dict[str, Any], _caller: str) -> dict[str, Any]:
        status = self.custodian.status()
        healthy = not status.orphaned
        return {
            "xksProxyFleetSize": 1,
            "xksProxyVendor": "sovra",
            "xksProxyModel": "sovra custodian",
            "ekmVendor": "sovra",
            "ekmFleetDetails": [
                {
                    "id": f"custodian-{self.code}",
                    "model": "sovra LocalCustodian",
                    "healthStatus": "ACTIVE" if healthy else "DEGRADED",
                }
            ],
        }


_OPERATION_FIELDS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    # operation -> (required body fields, optional body fields), besides requestMetadata
    "health": (frozenset(), frozenset()),
    "metadata": (frozenset(), frozenset()),
    "wrap": (frozenset({"items"}), frozenset()),
    "unwrap": (
        frozenset({"items", "authorization", "justification", "requester"}),
        frozenset({"recipient"}),
    ),
    "transport-key": (frozenset(), frozenset()),
    "wrap-sealed": (frozenset({"items"}), frozenset()),
    "unwrap-batches": (frozenset({"requests"}), frozenset()),
    "protect": (frozenset({"header", "items"}), frozenset()),
    "protect-many": (frozenset({"requests"}), frozenset()),
    "protect-wrap": (frozenset({"requests"}), frozenset()),
    "reveal": (frozenset({"items", "authorization", "requester"}), frozenset()),
    "shred": (frozenset({"subject"}), frozenset()),
    "rotate": (frozenset(), frozenset()),
}
KEY_OPERATIONS = tuple(op for op in _OPERATION_FIELDS if op != "health")
"""The operations on a jurisdiction's keys (``/keys/<J>/<operation>`` over HTTP)."""


def body_limit(operation: str) -> int:
    """The largest request body *operation* takes."""
    return MAX_BATCH_BODY_BYTES if operation in _BATCH_OPERATIONS else MAX_BODY_BYTES


Answer = tuple[int, dict[str, Any], dict[str, str]]
"""``(XKS status, JSON body, headers)`` of one call."""


class CustodianCalls:
    """One custodian's calls, whatever carries them (HTTP, or frames on a local socket).

    The carrier authenticates the caller and reads a bounded body; this checks the body's
    fields and metadata, rate-limits the caller, runs the operation, records one log line
    and maps any error to its XKS name and status.
    """

    def __init__(
        self,
        custodian: LocalCustodian,
        *,
        rate_per_s: float = 2000.0,
        burst: int = 4000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Serve *custodian*.

        Raises:
            ConfigError: non-positive limits.
        """
        self.code = check_jurisdiction(custodian.jurisdiction)
        self._limiter = RateLimiter(rate_per_s, burst, clock)
        service = _Service(custodian)
        # Operations run one at a time, whichever carrier and thread brings them (as on the
        # HTTP service's one event loop): a rotation's rewrap and destruction of old KEK
        # versions never interleave with a wrap. Reading frames, their tags and JSON run outside.
        self._one_at_a_time = threading.Lock()
        self._handlers: dict[str, Callable[[dict[str, Any], str], dict[str, Any]]] = {
            op: getattr(service, op.replace("-", "_")) for op in _OPERATION_FIELDS
        }

    def check_key(self, key_path: str) -> None:
        """Refuse a key path of another jurisdiction.

        Raises:
            NotFound: *key_path* is not this custodian's jurisdiction.
        """
        if key_path != self.code:
            raise NotFound(f"this custodian holds keys of {self.code} only, not {key_path!r}")

    def answer(
        self, operation: str | None, body: object, started: float, *, size: int = 0
    ) -> Answer:
        """Run one call on its parsed *body*; *operation* is the one its carrier named
        (the URL), or None when the body's metadata names it (frames: then *size*, the
        body's length in bytes, is checked against that operation's limit)."""
        request_id, caller = "-", "-"
        try:
            if operation is None:
                operation = _named_operation(body)
                if size > body_limit(operation):
                    raise BadRequest(
                        f"request body is {size} bytes, over the {body_limit(operation)}-byte "
                        f"limit of {operation}"
                    )
            required, optional = _OPERATION_FIELDS[operation]
            body = _fields(body, {"requestMetadata", *required}, set(optional), "the request")
            meta = _fields(
                body["requestMetadata"],
                {"callerPrincipal", "operation", "requestId"},
                set(),
                "requestMetadata",
            )
            named = meta["operation"]
            request_id, caller = str(meta["requestId"]), str(meta["callerPrincipal"])
            if not _REQUEST_ID.fullmatch(request_id):
                raise BadRequest("requestId must be 1..128 printable ASCII characters")
            if not _CALLER.fullmatch(caller):
                raise BadRequest("callerPrincipal is not a principal name")
            if named != operation:
                raise BadRequest(f"operation is {named!r}, but this is {operation}")
            self._limiter.take(caller)
            with self._one_at_a_time:
                result = self._handlers[operation](body, caller)
        except SovraError as exc:
            self.record(operation, request_id, caller, exc.code, started)
            return error_answer(exc)
        self.record(operation, request_id, caller, "ok", started)
        return 200, result, {}

    def record(
        self, operation: str | None, request_id: str, caller: str, outcome: str, started: float
    ) -> None:
        """The one log line of a call."""
        log.info(
            "custodian %s %s request=%s caller=%s outcome=%s %.1fms",
            self.code,
            operation or "-",
            request_id,
            caller,
            outcome,
            (time.perf_counter() - started) * 1000,
        )


def _named_operation(body: object) -> str:
    """The operation a frame's body names in its metadata.

    Raises:
        BadRequest: the body names no operation this custodian has.
    """
    meta = body.get("requestMetadata") if isinstance(body, dict) else None
    named = meta.get("operation") if isinstance(meta, dict) else None
    if not isinstance(named, str) or named not in _OPERATION_FIELDS:
        raise BadRequest(
            f"requestMetadata.operation must name an operation, got {str(named)[:64]!r}"
        )
    return named


def error_answer(exc: SovraError) -> Answer:
    """The XKS status, error body and headers of *exc*."""
    status, name = _error_name(exc)
    headers = {}
    if isinstance(exc, Throttled):
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s)))
    elif isinstance(exc, Unavailable):
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after_s or 1)))
    return status, {"errorName": name, "errorMessage": _xks_message(exc)}, headers


def _response(answer: Answer) -> Response:
    status, body, headers = answer
    return Response(orjson.dumps(body), status, headers, media_type="application/json")


def create_custodian_app(
    custodian: LocalCustodian,
    *,
    token: bytes,
    rate_per_s: float = 2000.0,
    burst: int = 4000,
    clock: Callable[[], float] = time.monotonic,
) -> FastAPI:
    """The HTTP service of one jurisdiction's custodian.

    Args:
        custodian: the custodian, holding its KEKs and subject keys in this process.
        token: the bearer secret callers MUST present (``Authorization: Bearer <hex>``).
        rate_per_s: requests per second allowed per caller (XKS's default quota is 1800).
        burst: requests a caller may make at once before the rate applies.
        clock: monotonic seconds, for the rate limiter.

    Raises:
        ConfigError: an empty token or non-positive limits.
    """
    if len(token) < 16:
        raise ConfigError("the custodian's bearer token must be at least 16 bytes")
    expected = b"Bearer " + token.hex().encode()
    calls = CustodianCalls(custodian, rate_per_s=rate_per_s, burst=burst, clock=clock)
    app = FastAPI(
        title=f"sovra custodian {calls.code}",
        description="A jurisdiction's key custodian (XKS-shaped API).",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )

    async def call(
        request: Request, operation: str, *, key_path: str | None, authenticate: bool = True
    ) -> Response:
        started = time.perf_counter()
        try:
            if authenticate:
                given = request.headers.get("authorization", "").encode()
                if not hmac.compare_digest(given, expected):
                    raise Unauthenticated("missing or wrong bearer token")
            if key_path is not None:
                calls.check_key(key_path)
            limit = body_limit(operation)
            raw = await _bounded_body(request, limit)
            body = parse_json(raw, limit=limit, what="request body")
        except SovraError as exc:
            calls.record(operation, "-", "-", exc.code, started)
            return _response(error_answer(exc))
        return _response(calls.answer(operation, body, started))

    @app.post(f"{API_PREFIX}/health")
    async def health_route(request: Request) -> Response:
        return await call(request, "health", key_path=None, authenticate=False)

    def key_route(operation: str) -> None:
        async def route(request: Request, key_id: str) -> Response:
            return await call(request, operation, key_path=key_id)

        app.post(API_PREFIX + "/keys/{key_id}/" + operation, name=operation)(route)

    for operation in KEY_OPERATIONS:
        key_route(operation)

    return app
