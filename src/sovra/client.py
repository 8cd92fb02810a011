"""Python SDK for a sovra gateway.

Each call signs a single-use token for exactly that request with the caller's Ed25519
key. Errors come back as the same :mod:`sovra.errors` classes the gateway raised::

    client = Client("http://127.0.0.1:8750", "svc-pl", load_ed25519(path))
    receipt = client.ingest("anna@example.pl", "PL", "tel. +48 601 234 567")
    data = client.access("customer-support", record_ids=[receipt["record_id"]])

Many records go in batches (``POST /v1/records/batch``), one result per record, in order:
a receipt, or the error that record got (the others are stored all the same)::

    records = ({"subject_id": s, "jurisdiction": "PL", "content": t} for s, t in rows)
    for result in client.ingest_many(records):
        if isinstance(result, SovraError): ...

A gateway that answers 503 with ``Retry-After`` (its database or a bucket is briefly away,
a restart) is asked again, after the pause it names (at most :data:`MAX_RETRY_DELAY_S`),
up to :data:`RETRIES` times, with a fresh token each time (a token is single-use: the
same one sent again would be refused as a replay). Only requests safe to repeat are
retried: reads, :meth:`Client.ingest`, :meth:`Client.access` and their sealed and report
counterparts, and each request of :meth:`Client.ingest_many`, which carries an
Idempotency-Key so that the gateway stores its records once however often it is sent
(after a timeout or a broken answer too); never a grant, a revocation, an activation or a
sealed record's upload.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import json
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import httpx
import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from sovra.auth import make_token
from sovra.errors import (
    BadRequest,
    ConfigError,
    Denied,
    IntegrityError,
    NotFound,
    PayloadTooLarge,
    RequestTimeout,
    SovraError,
    Unauthenticated,
    Unavailable,
    VerificationError,
)
from sovra.keys import transport
from sovra.keys.transport import DEFAULT_SUITE, SUITES, TransportPins
from sovra.model import Grant, LogEntry, LogReceipt, RecordHeader

__all__ = [
    "BATCH_BYTES",
    "BATCH_LINES",
    "BATCH_WINDOW",
    "MAX_RETRY_DELAY_S",
    "RETRIES",
    "BatchResult",
    "Client",
]

BATCH_LINES = 1000
"""Records (or access requests) per batch request by default: the most a gateway takes."""

BATCH_BYTES = 1 << 20
"""Bytes per batch request body by default: a gateway's default body limit. A gateway
that takes less answers 413 before storing anything, and the batch is sent in halves."""

BATCH_WINDOW = 2
"""Batch requests in flight at once by default: one sent while the gateway stores another."""

RETRIES = 3
"""How many times a request answered 503 with Retry-After is sent again by default."""

MAX_RETRY_DELAY_S = 10.0
"""The longest pause before a retry, whatever Retry-After asks."""

_NDJSON = "application/x-ndjson"

BatchResult = dict[str, Any] | SovraError
"""One record's (or access request's) outcome in a batch: its result, or its error."""

_BY_STATUS: dict[int, type[SovraError]] = {
    400: BadRequest,
    401: Unauthenticated,
    403: Denied,
    404: NotFound,
    408: RequestTimeout,
    413: PayloadTooLarge,
}

# A 500 says whose fault it is in its code: stored bytes that failed their check, or a
# deployment that is misconfigured.
_BY_CODE: dict[str, type[SovraError]] = {
    "integrity": IntegrityError,
    "verification_failed": VerificationError,
    "config": ConfigError,
}


class Client:
    """A principal talking to one gateway."""

    def __init__(
        self,
        base_url: str,
        principal_id: str | None = None,
        key: Ed25519PrivateKey | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.time,
        transport_pins: TransportPins | None = None,
        log_key: Ed25519PublicKey | None = None,
        retries: int = RETRIES,
        max_retry_delay_s: float = MAX_RETRY_DELAY_S,
        sleep: Callable[[float], None] = time.sleep,
        key_transport: str = DEFAULT_SUITE,
    ) -> None:
        """Point at a gateway.

        Args:
            base_url: the gateway's URL.
            principal_id: who this client signs as; None for the public routes only.
            key: that principal's Ed25519 key.
            timeout: seconds per request.
            transport: an httpx transport (tests).
            clock: UNIX seconds, for request tokens.
            transport_pins: the custodians' transport keys, obtained out of band
                (``sovra keys transport-key``); with them, :meth:`ingest_sealed` refuses a
                key the gateway offers that is not pinned. Without them the gateway's word
                is taken.
            log_key: the transparency log's public key (out of band); with it,
                :meth:`access_sealed` also checks the decision receipt's signature.
            retries: how many times a request safe to repeat is sent again after a 503
                with Retry-After (0: never). An ingest whose answer was lost after it was
                logged may then be stored twice (the gateway completes the first at its
                next start); pass 0 where that matters more than riding out a restart.
            max_retry_delay_s: the longest pause before a retry.
            sleep: how to pause (tests).
            key_transport: the HPKE suite of the key :meth:`access_sealed` has keys
                released to (``x25519``, ``mlkem768-x25519``, ``mlkem1024-p384``); a
                custodian whose jurisdiction asks for a stronger one refuses the release.

        Raises:
            ValueError: *retries* or *max_retry_delay_s* is negative, or *key_transport*
                is no suite.
        """
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries must be a whole number of at least 0, got {retries!r}")
        if not max_retry_delay_s >= 0:
            raise ValueError(f"max_retry_delay_s must be at least 0, got {max_retry_delay_s!r}")
        self._base = base_url
        self._http = httpx.Client(base_url=base_url, timeout=timeout, transport=transport)
        self._id = principal_id
        self._key = key
        self._clock = clock
        self._pins = transport_pins
        self._log_key = log_key
        self._retries = retries
        self._max_delay = float(max_retry_delay_s)
        self._sleep = sleep
        if key_transport not in SUITES:
            raise ValueError(f"key_transport must be one of {', '.join(SUITES)}")
        self._suite = key_transport

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- plumbing ------------------------------------------------------------------------

    def _sign(self, method: str, path: str, data: bytes, headers: dict[str, str]) -> None:
        if self._id is None or self._key is None:
            raise Unauthenticated("this client has no principal id and key to sign with")
        token = make_token(self._key, self._id, method, path, data, now_s=int(self._clock()))
        headers["authorization"] = f"Sovra {token}"

    def _unreachable(self, exc: Exception) -> Unavailable:
        base = self._base
        if isinstance(exc, httpx.ConnectError):
            return Unavailable(
                f"cannot connect to the gateway at {base}: {exc} (is `sovra serve` running there?)"
            )
        return Unavailable(f"gateway at {base}: {type(exc).__name__}: {exc}")

    def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        auth: bool = True,
        retry: bool | None = None,
    ) -> Any:
        """One request; a 503 with Retry-After sent again when *retry* (default: a GET)."""
        data = b"" if body is None else json.dumps(body).encode()
        base = self._base
        retries = self._retries if (method == "GET" if retry is None else retry) else 0
        for attempt in range(retries + 1):
            headers = {"content-type": "application/json"} if body is not None else {}
            if auth:  # signed afresh each time: a token is good for one request only
                self._sign(method, path, data, headers)
            try:
                response = self._http.request(method, path, content=data, headers=headers)
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                raise self._unreachable(exc) from None
            pause = _retry_after(response)
            if pause is None or attempt == retries:
                break
            self._sleep(min(pause, self._max_delay))
        if response.status_code >= 400:
            raise _error(response)
        if response.headers.get("content-type", "").startswith("text/plain"):
            return response.text
        try:
            return response.json()
        except ValueError:
            raise Unavailable(f"{base} answered with something that is not sovra's JSON") from None

    # -- records ---------------------------------------------------------------------------

    def ingest(
        self,
        subject_id: str,
        jurisdiction: str,
        content: str,
        *,
        purpose: str | None = None,
        other_homes: Sequence[str] = (),
    ) -> dict[str, Any]:
        """Store a record; returns its id, region, findings and log receipt.

        *purpose*, what the data is collected for, picks the minimisation rule.
        *other_homes* names the subject's second home, if she has one (docs/policy.md).
        """
        body: dict[str, Any] = {
            "subject_id": subject_id,
            "jurisdiction": jurisdiction,
            "content": content,
        }
        if purpose is not None:
            body["purpose"] = purpose
        if other_homes:
            body["other_homes"] = list(other_homes)
        result: dict[str, Any] = self._call("POST", "/v1/records", body, retry=True)
        return result

    def access(
        self,
        purpose: str,
        *,
        record_ids: Sequence[str] = (),
        subjects: Sequence[tuple[str, str]] = (),
        jurisdiction: str | None = None,
        grant: Grant | None = None,
        justification: str | None = None,
        reveal: bool = False,
    ) -> dict[str, Any]:
        """Read records; raises :class:`~sovra.errors.Denied` (with its log index) on deny.

        With *reveal*, tokenized and sealed values come back as values, if the policy
        allows the ``reveal`` action.
        """
        body = _access_body(
            purpose,
            record_ids=record_ids,
            subjects=subjects,
            jurisdiction=jurisdiction,
            grant=grant,
            justification=justification,
        )
        if reveal:
            body["reveal"] = True
        result: dict[str, Any] = self._call("POST", "/v1/access", body, retry=True)
        return result

    def ingest_many(
        self,
        records: Iterable[Mapping[str, Any]],
        *,
        chunk: int = BATCH_LINES,
        chunk_bytes: int = BATCH_BYTES,
        window: int = BATCH_WINDOW,
    ) -> Iterator[BatchResult]:
        """Store many records, *chunk* to a request; one result per record, in order.

        Each record is a mapping with the fields of :meth:`ingest`: ``subject_id``,
        ``jurisdiction``, ``content`` and optionally ``purpose``. Its result is what
        :meth:`ingest` returns, or the :class:`~sovra.errors.SovraError` it would have
        raised (status and log index included): a bad record fails alone. Records are
        read from *records* as they are sent, so an iterator of millions is fine. Up to
        *window* requests are in flight at once (the next is sent while the gateway stores
        the last), so a record may be stored before one ahead of it; when the iteration
        is left early, the requests in flight still complete.

        Raises:
            Unauthenticated: the gateway refused this client's signature.
            Unavailable: the gateway cannot be reached, or its answer broke off; the
                results yielded so far stand, the rest are unknown.
        """
        lines = (_record_line(r) for r in records)
        return self.ingest_lines(lines, chunk=chunk, chunk_bytes=chunk_bytes, window=window)

    def ingest_lines(
        self,
        lines: Iterable[bytes | SovraError],
        *,
        chunk: int = BATCH_LINES,
        chunk_bytes: int = BATCH_BYTES,
        window: int = BATCH_WINDOW,
    ) -> Iterator[BatchResult]:
        """As :meth:`ingest_many`, for records already encoded as JSON lines (no newline).

        The gateway checks each line; an error in *lines* stands for a line that could not
        be read, and comes back as that line's result unsent.
        """
        return self._batch("/v1/records/batch", lines, chunk, chunk_bytes, window)

    def access_many(
        self,
        requests: Iterable[Mapping[str, Any]],
        *,
        chunk: int = BATCH_LINES,
        chunk_bytes: int = BATCH_BYTES,
        window: int = BATCH_WINDOW,
    ) -> Iterator[BatchResult]:
        """Many access requests, each decided and logged on its own; results in order.

        Each request is a mapping of :meth:`access`'s keyword arguments (``purpose``,
        ``record_ids``, ``subjects``, ``jurisdiction``, ``grant``, ``justification``,
        ``reveal``). Its result is what :meth:`access` returns, or the error it would
        have raised: a deny is a :class:`~sovra.errors.Denied` with its log index.

        Raises:
            Unauthenticated, Unavailable: as :meth:`ingest_many`.
        """
        lines = (_access_line(r) for r in requests)
        return self._batch("/v1/access/batch", lines, chunk, chunk_bytes, window)

    def _batch(
        self,
        path: str,
        lines: Iterable[bytes | SovraError],
        chunk: int,
        chunk_bytes: int,
        window: int,
    ) -> Iterator[BatchResult]:
        """Send *lines* in requests of at most *chunk* lines and *chunk_bytes* bytes, with up
        to *window* requests in flight; results in the order of *lines*."""
        if chunk < 1 or chunk_bytes < 1 or window < 1:
            raise BadRequest("a batch needs chunk, chunk_bytes and window of at least 1")
        groups = _chunks(lines, chunk, chunk_bytes)
        if window == 1:  # each answer read as it streams in
            for group in groups:
                yield from self._send_lines(path, group)
            return

        def send(group: list[bytes | SovraError]) -> list[BatchResult]:
            return list(self._send_lines(path, group))

        with ThreadPoolExecutor(window, thread_name_prefix="sovra-batch") as pool:
            inflight: deque[Future[list[BatchResult]]] = deque()
            for group in groups:
                inflight.append(pool.submit(send, group))
                if len(inflight) == window:
                    yield from inflight.popleft().result()
            while inflight:
                yield from inflight.popleft().result()

    def _send_lines(self, path: str, items: Sequence[bytes | SovraError]) -> Iterator[BatchResult]:
        sent = [line for line in items if isinstance(line, bytes)]
        results = self._post_lines(path, sent) if sent else iter(())
        for item in items:
            yield item if isinstance(item, SovraError) else next(results)

    def _post_lines(self, path: str, lines: Sequence[bytes]) -> Iterator[BatchResult]:
        """One batch request; a batch the gateway finds too large (refused whole, nothing
        stored) is sent again in halves, down to the one line that alone is too large.

        A batch of records carries an Idempotency-Key: after a 503 (or a 409: the first
        attempt is still being answered) with Retry-After, a timeout or a broken answer,
        it is sent again with the same key, and the gateway answers the lines it stored
        before without storing them again (``sovra.server.idempotency``)."""
        data = b"\n".join(lines) + b"\n"
        key = secrets.token_urlsafe(24) if path == "/v1/records/batch" else None
        given = 0  # results already yielded: a retry's answer repeats them
        for attempt in range(self._retries + 1 if key else 1):
            headers = {"content-type": _NDJSON, **({"idempotency-key": key} if key else {})}
            self._sign("POST", path, data, headers)
            try:
                with self._http.stream("POST", path, content=data, headers=headers) as response:
                    if response.status_code < 400:
                        for n, result in enumerate(
                            _batch_results(response, len(lines), self._base)
                        ):
                            if n >= given:
                                given += 1
                                yield result
                        return
                    response.read()
                    refused = _error(response)
                    pause = _retry_after(response, statuses=(503, 409))
            except (httpx.HTTPError, httpx.InvalidURL, Unavailable) as exc:
                if attempt == self._retries or key is None:
                    raise exc if isinstance(exc, Unavailable) else self._unreachable(exc) from None
                self._sleep(min(1.0, self._max_delay))
                continue
            if response.status_code == 413:
                break
            if pause is None or key is None or attempt == self._retries:
                raise refused
            self._sleep(min(pause, self._max_delay))
        if len(lines) == 1:
            yield refused
            return
        half = len(lines) // 2
        yield from self._post_lines(path, lines[:half])
        yield from self._post_lines(path, lines[half:])

    # -- records sealed on this side ---------------------------------------------------------

    def ingest_sealed(
        self, subject_id: str, jurisdiction: str, content: str | bytes
    ) -> dict[str, Any]:
        """Seal a record here and store only its ciphertext; the gateway never sees the key.

        The gateway prepares the header (it alone knows the subject's commitment and the
        placement); the data key goes to the home custodian encrypted to its transport key.
        No scan or minimisation runs on the gateway: that is the caller's responsibility.
        Records over 1 MiB are sealed in authenticated segments (format 2).

        Raises:
            VerificationError: the gateway prepared the record for another jurisdiction,
                or this client has pins and the offered custodian key is not pinned; the
                record is not sealed and nothing more is sent.
            Unavailable: the gateway's preparation is malformed.
        """
        body = {"subject_id": subject_id, "jurisdiction": jurisdiction}
        prepared = self._call("POST", "/v1/sealed/prepare", body, retry=True)
        try:
            header = RecordHeader.from_bytes(base64.b64decode(prepared["header"]))
            offered = base64.b64decode(prepared["custodian_key"], validate=True)
        except (BadRequest, ValueError, KeyError, TypeError):
            raise Unavailable(f"{self._base} answered a malformed sealing preparation") from None
        self._check_offer(jurisdiction, header, offered)
        data = content.encode("utf-8") if isinstance(content, str) else content
        blob, envelope = transport.seal_record(header, data, offered)
        return self._submit_sealed(prepared, blob, envelope)

    def _submit_sealed(
        self, prepared: dict[str, Any], blob: bytes, envelope: bytes
    ) -> dict[str, Any]:
        """Send a record sealed against the gateway's *prepared* header."""
        result: dict[str, Any] = self._call(
            "POST",
            "/v1/sealed/records",
            {
                "header": prepared["header"],
                "expires_ms": prepared["expires_ms"],
                "ticket": prepared["ticket"],
                "blob": base64.b64encode(blob).decode(),
                "key_envelope": base64.b64encode(envelope).decode(),
            },
        )
        return result

    def _check_offer(self, jurisdiction: str, header: RecordHeader, offered: bytes) -> None:
        if header.jurisdiction != jurisdiction:
            raise VerificationError(
                f"the gateway prepared a record for jurisdiction {header.jurisdiction}, not "
                f"{jurisdiction}; nothing was sealed or sent"
            )
        if self._pins is not None:
            try:
                self._pins.check(header.jurisdiction, header.kek_version, offered)
            except VerificationError as exc:
                raise VerificationError(f"{exc.message}; nothing was sealed or sent") from None

    def access_sealed(
        self,
        purpose: str,
        *,
        record_ids: Sequence[str] = (),
        subjects: Sequence[tuple[str, str]] = (),
        jurisdiction: str | None = None,
        grant: Grant | None = None,
        justification: str | None = None,
    ) -> dict[str, Any]:
        """Read records and open them here; ``records`` maps each id to its plaintext bytes.

        Keys are released to a key pair made for this call only, of the client's
        ``key_transport`` suite.

        Raises:
            Denied: the logged decision is deny (nothing is released).
            IntegrityError: a blob, header or released key was changed on the way.
        """
        ephemeral = transport.new_recipient(self._suite)
        body = _access_body(
            purpose,
            record_ids=record_ids,
            subjects=subjects,
            jurisdiction=jurisdiction,
            grant=grant,
            justification=justification,
        )
        body["recipient"] = base64.b64encode(transport.public_bytes(ephemeral)).decode()
        result: dict[str, Any] = self._call("POST", "/v1/sealed/access", body, retry=True)
        self._check_recipient(result, transport.public_bytes(ephemeral))
        opened: dict[str, bytes] = {}
        for rid, sealed in result["records"].items():
            try:
                header = RecordHeader.from_bytes(base64.b64decode(sealed["header"]))
                blob = base64.b64decode(sealed["blob"])
                key = base64.b64decode(sealed["key"])
            except (BadRequest, ValueError, KeyError, TypeError):
                raise IntegrityError(f"record {rid} failed authentication") from None
            if header.record_id != rid:
                raise IntegrityError(f"record {rid} failed authentication")
            opened[rid] = transport.open_record(header, blob, key, ephemeral)
        result["records"] = opened
        return result

    def _check_recipient(self, result: Mapping[str, Any], recipient: bytes) -> None:
        """The logged decision must name this call's key: a gateway that had the keys
        released to its own key instead is caught here, and shown by its own log entry.

        Raises:
            VerificationError: the decision entry is missing, is not the one the receipt
                covers (or, with the log key, the receipt is not the log's), or names
                another recipient.
        """
        try:
            entry = base64.b64decode(result["decision_entry"], validate=True)
            receipt = LogReceipt.from_dict(result["decision_receipt"])
            named = LogEntry.from_bytes(entry).fields.get("recipient")
        except (BadRequest, ValueError, KeyError, TypeError):
            raise VerificationError("the gateway sent no readable logged decision") from None
        if self._log_key is None:
            covered = hashlib.sha256(b"\x00" + entry).digest() == receipt.leaf_hash
        else:
            try:
                receipt.verify(self._log_key, entry)  # the leaf hash, then the signature
                covered = True
            except VerificationError:
                covered = False
        if not covered:
            raise VerificationError(
                "the decision the gateway sent is not the logged one (its receipt does not "
                "cover it" + (" or is not the log's)" if self._log_key is not None else ")")
            )
        if named != recipient.hex():
            raise VerificationError(
                f"the logged decision (log index {receipt.index}) names another recipient "
                "key than this client's: the gateway had the keys released to someone else"
            )

    # -- grants ----------------------------------------------------------------------------

    def register_grant(self, grant: Grant) -> dict[str, Any]:
        """Register a signed grant; returns the log receipt."""
        result: dict[str, Any] = self._call("POST", "/v1/grants", json.loads(grant.to_json()))
        return result

    def get_grant(self, grant_id: str) -> dict[str, Any]:
        """A registered grant and whether it is revoked."""
        result: dict[str, Any] = self._call("GET", f"/v1/grants/{grant_id}")
        return result

    def revoke_grant(self, grant_id: str) -> dict[str, Any]:
        """Revoke a grant (its approving authority), or withdraw a co-signature of it (a
        co-signing authority): the receipt, ``outcome`` (``revoked`` or
        ``cosignature-withdrawn``) and, for a withdrawal, the ``cosigner``."""
        result: dict[str, Any] = self._call("POST", f"/v1/grants/{grant_id}/revoke")
        return result

    # -- policy --------------------------------------------------------------------------------

    def explain(self, decision_id: str) -> dict[str, Any]:
        """A logged decision explained: rules and their reasons, grant, justification."""
        result: dict[str, Any] = self._call("GET", f"/v1/decisions/{decision_id}/explain")
        return result

    def policy(self) -> dict[str, Any]:
        """The active policy pack: name, version, digest, parties, rules."""
        result: dict[str, Any] = self._call("GET", "/v1/policy")
        return result

    def activate_policy(self, envelope: bytes) -> dict[str, Any]:
        """Activate a signed pack (a DSSE envelope); returns the activation's log receipt."""
        result: dict[str, Any] = self._call("POST", "/v1/policy/activate", json.loads(envelope))
        return result

    # -- subjects and the log ----------------------------------------------------------------

    def report(self, jurisdiction: str, subject_id: str) -> dict[str, Any]:
        """Every log entry about a subject, with inclusion proofs (base64) and a checkpoint."""
        body = {"jurisdiction": jurisdiction, "subject_id": subject_id}
        result: dict[str, Any] = self._call("POST", "/v1/subjects/report", body, retry=True)
        return result

    def checkpoint(self) -> str:
        """The latest signed checkpoint note."""
        text: str = self._call("GET", "/v1/log/checkpoint", auth=False)
        return text

    def checkpoints(self) -> list[str]:
        """Every published checkpoint note, oldest first."""
        notes: list[str] = self._call("GET", "/v1/log/checkpoints", auth=False)["checkpoints"]
        return notes

    def info(self) -> dict[str, Any]:
        """Public facts: jurisdictions, regions, the log's origin, key and size."""
        facts: dict[str, Any] = self._call("GET", "/v1/info", auth=False)
        return facts

    def verifier_key(self) -> str:
        """The log's vkey string."""
        text: str = self._call("GET", "/v1/log/key", auth=False)
        return text.strip()

    def entries(self, start: int, end: int) -> list[bytes]:
        """Entries ``[start, end)``, fetched 1000 at a time."""
        out: list[bytes] = []
        while start < end:
            stop = min(end, start + 1000)
            page = self._call("GET", f"/v1/log/entries?start={start}&end={stop}", auth=False)
            out += [e.encode() for e in page["entries"]]
            start = stop
        return out

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """Inclusion proof of entry *index* in the tree of *size*."""
        page = self._call("GET", f"/v1/log/proof/inclusion?index={index}&size={size}", auth=False)
        return [base64.b64decode(h) for h in page["proof"]]

    def log_file(self, path: str) -> bytes:
        """The bytes at ``/v1/log/<path>``: a tlog-tiles hash tile or entry bundle.

        Raises:
            BadRequest: not a tile path. NotFound: beyond the log. Unavailable: no gateway.
        """
        try:
            response = self._http.get(f"/v1/log/{path}")
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise Unavailable(f"gateway at {self._base}: {type(exc).__name__}: {exc}") from None
        if response.status_code >= 400:
            raise _error(response)
        return response.content

    def consistency_proof(self, old: int, new: int) -> list[bytes]:
        """Consistency proof between the trees of *old* and *new* entries."""
        page = self._call("GET", f"/v1/log/proof/consistency?old={old}&new={new}", auth=False)
        return [base64.b64decode(h) for h in page["proof"]]

    def cosigned_checkpoint(self) -> str:
        """The newest checkpoint note cosigned by the gateway's quorum of witnesses.

        Raises:
            NotFound: no witness is configured, or no checkpoint has a quorum yet.
        """
        text: str = self._call("GET", "/v1/log/checkpoint/cosigned", auth=False)
        return text

    def submit_cosignatures(self, note: str) -> dict[str, Any]:
        """Give the gateway a checkpoint note carrying a witness's cosignature lines.

        Raises:
            BadRequest: malformed note. Denied: unknown witness or a bad signature.
            NotFound: the gateway never published that checkpoint. Unavailable: no gateway.
        """
        try:
            response = self._http.post(
                "/v1/log/cosignatures",
                content=note.encode(),
                headers={"content-type": "text/plain; charset=utf-8"},
            )
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise Unavailable(f"gateway at {self._base}: {type(exc).__name__}: {exc}") from None
        if response.status_code >= 400:
            raise _error(response)
        result: dict[str, Any] = response.json()
        return result


def _error(response: httpx.Response) -> SovraError:
    try:
        body = response.json()
        message = str(body.get("message", response.text))
        index, code = body.get("log_index"), body.get("error")
    except (ValueError, AttributeError):
        message, index, code = response.text or response.reason_phrase, None, None
    error = _error_of(response.status_code, message, index, code)
    if isinstance(error, Unavailable):
        error.retry_after_s = _retry_after(response)
    return error


def _retry_after(response: httpx.Response, statuses: tuple[int, ...] = (503,)) -> float | None:
    """The pause a 503's (or another of *statuses*') Retry-After asks for, in seconds;
    None if it asks for none.

    Retry-After is delta-seconds or an HTTP date (RFC 9110 10.2.3); what is neither is
    no request to retry.
    """
    if response.status_code not in statuses:
        return None
    value = response.headers.get("retry-after", "").strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def _error_of(status: int, message: str, index: object, code: object = None) -> SovraError:
    cls = (
        _BY_STATUS.get(status)
        or _BY_CODE.get(str(code))
        or (Unavailable if status == 503 else SovraError)
    )
    error = cls(message, log_index=index if isinstance(index, int) else None)
    error.status = status
    return error


def _chunks(
    lines: Iterable[bytes | SovraError], most: int, most_bytes: int
) -> Iterator[list[bytes | SovraError]]:
    """*lines* in groups of at most *most* lines and *most_bytes* bytes (a longer line alone)."""
    pending: list[bytes | SovraError] = []
    size = 0
    for line in lines:
        cost = len(line) + 1 if isinstance(line, bytes) else 0
        if pending and (len(pending) >= most or size + cost > most_bytes):
            yield pending
            pending, size = [], 0
        pending.append(line)
        size += cost
    if pending:
        yield pending


def _record_line(record: Mapping[str, Any]) -> bytes | SovraError:
    """A record as its JSON line; what cannot be one is that record's error, unsent."""
    try:
        return json.dumps(dict(record), ensure_ascii=False).encode("utf-8")
    except (TypeError, ValueError, UnicodeEncodeError) as exc:
        return BadRequest(f"the record is not JSON data: {exc}")


def _access_line(request: Mapping[str, Any]) -> bytes | SovraError:
    """An access request (``access``'s keyword arguments) as its JSON line."""
    fields: dict[str, Any] = {
        "record_ids": (),
        "subjects": (),
        "jurisdiction": None,
        "grant": None,
        "justification": None,
        **request,
    }
    reveal = fields.pop("reveal", False)
    try:
        body = _access_body(**fields)
        if reveal:
            body["reveal"] = True
        return json.dumps(body, ensure_ascii=False).encode("utf-8")
    except (TypeError, ValueError, UnicodeEncodeError) as exc:
        return BadRequest(f"the access request is not one: {exc}")


def _batch_results(response: httpx.Response, count: int, base: str) -> Iterator[BatchResult]:
    """The results of a batch answer, as they arrive; checked to be one per line, in order.

    Raises:
        Unavailable: the answer is not a batch answer, or broke off before its summary.
    """
    done = 0
    summary = False
    try:
        for text in response.iter_lines():
            if text:
                summary, result = _batch_line(orjson.loads(text), done + 1, count)
                if summary:
                    break
                done += 1
                yield result
    except (ValueError, KeyError, TypeError, AttributeError, httpx.HTTPError) as exc:
        raise Unavailable(
            f"{base} broke off its answer to a batch after {done} of {count} results ({exc})"
        ) from None
    if not summary or done != count:
        raise Unavailable(f"{base} answered {done} results to a batch of {count}, then stopped")


def _batch_line(line: dict[str, Any], due: int, count: int) -> tuple[bool, BatchResult]:
    """One line of a batch answer: (is it the summary, the result it carries).

    Raises:
        ValueError: not the result of line *due*. KeyError, TypeError: not a result line.
    """
    if "summary" in line:
        return True, {}
    if line["line"] != due or due > count:
        raise ValueError(f"line {line['line']!r} where {due} was due")
    if line["status"] < 300:
        result: dict[str, Any] = line["result"]
        return False, result
    error = line["error"]
    return False, _error_of(
        line["status"], str(error["message"]), error.get("log_index"), error.get("error")
    )


def _access_body(
    purpose: str,
    *,
    record_ids: Sequence[str],
    subjects: Sequence[tuple[str, str]],
    jurisdiction: str | None,
    grant: Grant | None,
    justification: str | None,
) -> dict[str, Any]:
    """The fields ``/v1/access`` and ``/v1/sealed/access`` share."""
    body: dict[str, Any] = {
        "purpose": purpose,
        "record_ids": list(record_ids),
        "subjects": [{"jurisdiction": j, "subject_id": s} for j, s in subjects],
    }
    if jurisdiction is not None:
        body["jurisdiction"] = jurisdiction
    if justification is not None:
        body["justification"] = justification
    if grant is not None:
        body["grant"] = json.loads(grant.to_json())
    return body
