"""A custodian in another process, behind the same :class:`Custodian`.

Reached over HTTP (``http://…``: ``sovra custodian serve`` on a host of its own), or, on
the same machine, in authenticated frames on a Unix-domain socket (``unix:<path>``: the
custodians ``sovra serve`` starts; :mod:`sovra.keys._frames`, docs/custodian-protocol.md).
Both carry the same JSON bodies. The service (:mod:`sovra.server.custodian`) does every check
that :class:`~sovra.keys.BaseCustodian` does, in its own process, with its own keys: this
class only carries requests and maps the service's XKS-style error names back to the one
error tree. It does not subclass :class:`~sovra.keys.BaseCustodian`, on purpose: the checks
that matter must run where the keys are, not in the gateway that asks for them.

Each unwrap sends the logged decision entry, the log's receipt for it (with the record and
subject lists a large decision's entry names by root), and the decision's purpose as the
justification code; the service refuses a justification that is not the logged purpose.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import httpx
import orjson

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
from sovra.keys._frames import Connections
from sovra.keys.custodian import MAX_BATCH, MAX_BATCH_KEYS, MAX_BATCH_VALUES
from sovra.keys.protocol import CustodianStatus
from sovra.model import (
    LogEntry,
    RecordHeader,
    ReleaseAuthorization,
    WrappedKey,
    check_id,
    check_jurisdiction,
)

__all__ = ["API_PREFIX", "UNIX_SCHEME", "RemoteCustodian", "logged_purpose"]

API_PREFIX = "/kms/xks/v1"
UNIX_SCHEME = "unix:"
"""A URL ``unix:/path/to/PL.sock`` names a custodian's local socket (frames, not HTTP)."""
_MAX_RESPONSE_BYTES = 8 * 1024 * 1024
_MAX_BATCH_RESPONSE_BYTES = 32 * 1024 * 1024
_ERRORS: dict[str, type[SovraError]] = {
    "ValidationException": BadRequest,
    "AuthenticationFailedException": Unauthenticated,
    "AccessDeniedException": Denied,
    "KeyNotFoundException": NotFound,
    "InvalidCiphertextException": IntegrityError,
    "ThrottlingException": Unavailable,
}


class RemoteCustodian:
    """The :class:`~sovra.keys.Custodian` of one jurisdiction, served by another process."""

    def __init__(
        self,
        url: str,
        jurisdiction: str,
        token: bytes,
        *,
        caller: str = "sovra-gateway",
        timeout_s: float = 5.0,
        version_ttl_s: float = 5.0,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Point at a custodian service.

        Args:
            url: the service's base URL, e.g. ``http://127.0.0.1:8760``, or
                ``unix:<path>`` for a custodian's local socket.
            jurisdiction: the jurisdiction it serves.
            token: the secret it was started with (over HTTP, the bearer secret).
            caller: this gateway's name in every request's metadata.
            timeout_s: per-request timeout.
            version_ttl_s: how long the current KEK version is cached.
            transport: an httpx transport (tests; HTTP only).
            clock: monotonic seconds, for the version cache.

        Raises:
            BadRequest: *jurisdiction* or *caller* is malformed.
        """
        self._jurisdiction = check_jurisdiction(jurisdiction)
        self._caller = check_id(caller, "caller")
        self._where = url
        self._frames: Connections | None = None
        self._client: httpx.Client | None = None
        if url.startswith(UNIX_SCHEME):
            self._frames = Connections(url[len(UNIX_SCHEME) :], token, timeout_s)
        else:
            self._client = httpx.Client(
                base_url=url.rstrip("/"),
                timeout=timeout_s,
                headers={"Authorization": "Bearer " + token.hex()},
                transport=transport,
            )
        self._ttl = version_ttl_s
        self._clock = clock
        self._version: tuple[int, float] | None = None
        self._one_call = True  # until the service says it has no protect-wrap
        self.on_call: Callable[[str, float], None] | None = None
        """Told each call's operation and its seconds, answered or not (the operations
        metrics); MUST NOT raise."""

    def close(self) -> None:
        """Close the connection pool."""
        if self._frames is not None:
            self._frames.close()
        if self._client is not None:
            self._client.close()

    def __enter__(self) -> RemoteCustodian:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @property
    def jurisdiction(self) -> str:
        """The jurisdiction whose residents' keys the service holds."""
        return self._jurisdiction

    def _post(
        self,
        path: str,
        operation: str,
        body: dict[str, Any],
        *,
        limit: int = _MAX_RESPONSE_BYTES,
    ) -> dict[str, Any]:
        payload = orjson.dumps(
            {
                "requestMetadata": {
                    "callerPrincipal": self._caller,
                    "operation": operation,
                    "requestId": uuid.uuid4().hex,
                },
                **body,
            }
        )
        started = time.perf_counter()
        try:
            if self._frames is not None:
                status, content = self._framed(payload, limit)
            else:
                status, content = self._http(path, payload, limit)
        finally:
            if self.on_call is not None:
                self.on_call(operation, time.perf_counter() - started)
        try:
            result = orjson.loads(content)
        except orjson.JSONDecodeError:
            raise Unavailable(
                f"custodian {self._jurisdiction} answered {status} without JSON"
            ) from None
        if not isinstance(result, dict):
            raise Unavailable(f"custodian {self._jurisdiction} answered with a non-object")
        if _unknown_operation(status, result):
            raise _UnknownOperation(
                f"custodian {self._jurisdiction} at {self._where} has no operation {operation}"
            )
        if status == 503:  # its store is down or waited too long for a lock: retry
            message = str(result.get("errorMessage", ""))
            raise Unavailable(f"custodian {self._jurisdiction}: {message}", retry_after_s=1.0)
        if status != 200:
            raise self._error(result)
        return result

    def _http(self, path: str, payload: bytes, limit: int) -> tuple[int, bytes]:
        assert self._client is not None  # an http(s) URL made one
        try:
            response = self._client.post(path, content=payload)
        except httpx.HTTPError as exc:
            raise Unavailable(
                f"custodian {self._jurisdiction} at {self._where} cannot be reached: {exc}"
            ) from None
        if len(response.content) > limit:
            raise Unavailable(f"custodian {self._jurisdiction} sent an oversized response")
        return response.status_code, response.content

    def _framed(self, payload: bytes, limit: int) -> tuple[int, bytes]:
        assert self._frames is not None  # a unix: URL made them
        try:
            return self._frames.call(payload, limit)
        except Unauthenticated as exc:
            raise Unauthenticated(f"custodian {self._jurisdiction}: {exc.message}") from None
        except BadRequest as exc:
            raise Unavailable(
                f"custodian {self._jurisdiction} at {self._where} answered a malformed "
                f"frame: {exc.message}"
            ) from None
        except (OSError, EOFError) as exc:
            raise Unavailable(
                f"custodian {self._jurisdiction} at {self._where} cannot be reached: {exc}"
            ) from None

    def _error(self, result: dict[str, Any]) -> SovraError:
        """The error of the tree an XKS error body names."""
        name = str(result.get("errorName", ""))
        message = str(result.get("errorMessage", ""))
        kind = _ERRORS.get(name, ConfigError)
        if kind is IntegrityError:
            # One opaque failure, as from a local custodian.
            return IntegrityError(f"custodian {self._jurisdiction}: {message}")
        return kind(f"custodian {self._jurisdiction}: {name}: {message}")

    def _key(self, operation: str) -> str:
        return f"{API_PREFIX}/keys/{self._jurisdiction}/{operation}"

    @property
    def current_kek_version(self) -> int:
        """The service's current KEK version, cached for a few seconds.

        Raises:
            Unavailable: the service cannot be reached.
        """
        now = self._clock()
        if self._version is None or now - self._version[1] > self._ttl:
            status = self.metadata()
            self._version = (int(status["current_kek_version"]), now)
        return self._version[0]

    def metadata(self) -> dict[str, Any]:
        """KEK versions and subject-key counts (``sovra keys status`` of the service).

        Raises:
            Unavailable: the service cannot be reached.
        """
        return self._post(self._key("metadata"), "metadata", {})

    def status(self) -> CustodianStatus:
        """What ``sovra keys status`` shows, as the service reports it.

        Raises:
            Unavailable: the service cannot be reached or answered a malformed status.
        """
        meta = self.metadata()
        try:
            return CustodianStatus(
                jurisdiction=str(meta["jurisdiction"]),
                current_kek_version=int(meta["current_kek_version"]),
                versions={int(v): int(n) for v, n in meta["versions"].items()},
                subjects=int(meta["subjects"]),
                shredded=int(meta["shredded"]),
                orphaned={int(v): int(n) for v, n in meta["orphaned"].items()},
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            raise Unavailable(
                f"custodian {self._jurisdiction} answered a malformed status"
            ) from None

    def health(self) -> dict[str, Any]:
        """The service's deep health check.

        Raises:
            Unavailable: the service cannot be reached.
        """
        return self._post(f"{API_PREFIX}/health", "health", {})

    def wrap(self, data_key: bytes, header: RecordHeader) -> WrappedKey:
        """Wrap *data_key* for *header*'s record (see :meth:`BaseCustodian.wrap`).

        Raises:
            BadRequest: refused by the service (a stale KEK version right after a
                rotation, a shredded subject, another jurisdiction).
            Unavailable: the service cannot be reached or is throttling.
        """
        return self.wrap_many([(data_key, header)])[0]

    def wrap_many(self, items: Sequence[tuple[bytes, RecordHeader]]) -> list[WrappedKey]:
        """Wrap several data keys in one round trip, all or none (see
        :meth:`BaseCustodian.wrap_many`).

        Raises:
            BadRequest: an empty or oversized batch, or refused by the service (as
                :meth:`wrap`, for the first item at fault).
            Unavailable: the service cannot be reached or is throttling.
        """
        if not 0 < len(items) <= MAX_BATCH:
            raise BadRequest(f"a batch holds 1..{MAX_BATCH} keys, got {len(items)}")
        body = {"items": [{"header": _enc(h.to_bytes()), "dataKey": _enc(k)} for k, h in items]}
        try:
            result = self._post(self._key("wrap"), "wrap", body)
        except BadRequest:
            self._version = None  # after a rotation, the next ingest asks for the version
            raise
        return [
            WrappedKey(self._jurisdiction, _version(out), _dec(out.get("wrapped")))
            for out in self._items(result, len(items))
        ]

    def unwrap(
        self,
        wrapped: WrappedKey,
        header: RecordHeader,
        authorization: ReleaseAuthorization | None,
        requester: str,
    ) -> bytes:
        """Release one data key (see :meth:`BaseCustodian.unwrap`).

        Raises:
            Denied: no authorization, or the service refused it.
            NotFound: the subject was crypto-shredded.
            IntegrityError: the wrapped key does not open.
            Unavailable: the service cannot be reached or is throttling.
        """
        return self.unwrap_many([(wrapped, header)], authorization, requester)[0]

    def unwrap_many(
        self,
        items: Sequence[tuple[WrappedKey, RecordHeader]],
        authorization: ReleaseAuthorization | None,
        requester: str,
    ) -> list[bytes]:
        """Release several data keys in one round trip, all or none.

        Raises:
            BadRequest: an empty or oversized batch.
            Denied: no authorization, or the service refused it.
            NotFound: a subject was crypto-shredded.
            IntegrityError: a wrapped key does not open.
            Unavailable: the service cannot be reached or is throttling.
        """
        body = self._unwrap_body(items, authorization, requester)
        result = self._post(self._key("unwrap"), "unwrap", body)
        return [_dec(item.get("dataKey")) for item in self._items(result, len(items))]

    def unwrap_batches(
        self,
        requests: Sequence[
            tuple[Sequence[tuple[WrappedKey, RecordHeader]], ReleaseAuthorization | None, str]
        ],
    ) -> list[list[bytes] | SovraError]:
        """Have the service decide several release requests in one round trip, each on its
        own (see :meth:`BaseCustodian.unwrap_batches`).

        A request without an authorization is denied here, without asking the service.

        Raises:
            BadRequest: no requests, more than :data:`MAX_BATCH`, or more than
                :data:`MAX_BATCH_KEYS` keys in all.
            Unavailable: the service cannot be reached, is throttling, or answered a
                malformed batch.
        """
        if not 0 < len(requests) <= MAX_BATCH:
            raise BadRequest(f"a call holds 1..{MAX_BATCH} requests, got {len(requests)}")
        total = sum(len(items) for items, _, _ in requests)
        if total > MAX_BATCH_KEYS:
            raise BadRequest(f"a call releases at most {MAX_BATCH_KEYS} keys, got {total}")
        results: list[list[bytes] | SovraError] = []
        sent: list[int] = []
        bodies: list[dict[str, Any]] = []
        for n, (items, authorization, requester) in enumerate(requests):
            try:
                bodies.append(self._unwrap_body(items, authorization, requester))
            except (BadRequest, Denied) as exc:
                results.append(exc)
                continue
            results.append([])
            sent.append(n)
        if not sent:
            return results
        result = self._post(
            self._key("unwrap-batches"),
            "unwrap-batches",
            {"requests": bodies},
            limit=_MAX_BATCH_RESPONSE_BYTES,
        )
        answers = result.get("results")
        if not isinstance(answers, list) or len(answers) != len(sent):
            raise Unavailable(f"custodian {self._jurisdiction} answered a malformed batch")
        for n, answer in zip(sent, answers, strict=True):
            if not isinstance(answer, dict):
                raise Unavailable(f"custodian {self._jurisdiction} answered a malformed batch")
            if "errorName" in answer:
                results[n] = self._error(answer)
                continue
            keys = self._items(answer, len(requests[n][0]))
            results[n] = [_dec(key.get("dataKey")) for key in keys]
        return results

    def _unwrap_body(
        self,
        items: Sequence[tuple[WrappedKey, RecordHeader]],
        authorization: ReleaseAuthorization | None,
        requester: str,
    ) -> dict[str, Any]:
        if authorization is None:
            raise Denied(
                f"custodian {self._jurisdiction} releases keys only against a logged allow; "
                "none was presented"
            )
        if not 0 < len(items) <= MAX_BATCH:
            raise BadRequest(f"a batch holds 1..{MAX_BATCH} keys, got {len(items)}")
        purpose = logged_purpose(authorization.entry)
        return {
            "items": [
                {
                    "header": _enc(header.to_bytes()),
                    "kekVersion": wrapped.kek_version,
                    "wrapped": _enc(wrapped.blob),
                }
                for wrapped, header in items
            ],
            "authorization": _authorization(authorization),
            "justification": purpose if isinstance(purpose, str) else "",
            "requester": requester,
        }

    # -- client-side sealing (sovra.keys.transport) -----------------------------------------

    def transport_key(self) -> tuple[int, bytes]:
        """The service's ``(current KEK version, transport public key)`` (its size names its
        HPKE suite).

        Raises:
            BadRequest: the service takes no client-sealed keys.
            Unavailable: the service cannot be reached.
        """
        result = self._post(self._key("transport-key"), "transport-key", {})
        return int(result["kekVersion"]), _dec(result["publicKey"])

    def wrap_sealed(self, envelope: bytes, header: RecordHeader) -> WrappedKey:
        """Have the service open a client's key envelope and wrap the key (see
        :meth:`BaseCustodian.wrap_sealed`).

        Raises:
            BadRequest: refused by the service (an envelope for another record or subject).
            Unavailable: the service cannot be reached or is throttling.
        """
        item = {"header": _enc(header.to_bytes()), "keyEnvelope": _enc(envelope)}
        result = self._post(self._key("wrap-sealed"), "wrap-sealed", {"items": [item]})
        (out,) = self._items(result, 1)
        return WrappedKey(self._jurisdiction, _version(out), _dec(out.get("wrapped")))

    def unwrap_many_to(
        self,
        items: Sequence[tuple[WrappedKey, RecordHeader]],
        authorization: ReleaseAuthorization | None,
        requester: str,
        recipient: bytes,
    ) -> list[bytes]:
        """As :meth:`unwrap_many`, each key encrypted by the service to *recipient*.

        Raises:
            BadRequest: an empty or oversized batch, or an unusable *recipient*.
            Denied: no authorization, or the service refused it.
            NotFound: a subject was crypto-shredded.
            IntegrityError: a wrapped key does not open.
            Unavailable: the service cannot be reached or is throttling.
        """
        body = self._unwrap_body(items, authorization, requester)
        body["recipient"] = _enc(recipient)
        result = self._post(self._key("unwrap"), "unwrap", body)
        return [_dec(item["sealedKey"]) for item in self._items(result, len(items))]

    def shred(self, subject: str) -> bool:
        """Destroy *subject*'s key in the service.

        Raises:
            BadRequest: *subject* is not a commitment.
            Unavailable: the service cannot be reached.
        """
        return bool(self._post(self._key("shred"), "shred", {"subject": subject})["destroyed"])

    def rotate(self) -> dict[str, Any]:
        """Rotate the service's KEK, rewrap its subject keys and destroy unused versions.

        Raises:
            Unavailable: the service cannot be reached.
        """
        self._version = None
        return self._post(self._key("rotate"), "rotate", {})

    # -- protected values (sovra.keys.values) -----------------------------------------------

    def protect(self, header: RecordHeader, items: Sequence[tuple[str, str, str]]) -> list[str]:
        """Have the service tokenize or seal values (see :meth:`BaseCustodian.protect`).

        Raises:
            BadRequest: refused by the service (a shredded subject, a bad batch).
            Unavailable: the service cannot be reached or is throttling.
        """
        result = self._post(self._key("protect"), "protect", _protect_body(header, items))
        return self._bodies(result, len(items))

    def protect_many(
        self, requests: Sequence[tuple[RecordHeader, Sequence[tuple[str, str, str]]]]
    ) -> list[list[str]]:
        """Have the service protect the values of several records in one round trip, all
        or none (see :meth:`BaseCustodian.protect_many`).

        Raises:
            BadRequest: no requests, too many, too many values in all, or refused by the
                service (a shredded subject, a bad batch).
            Unavailable: the service cannot be reached or is throttling.
        """
        if not 0 < len(requests) <= MAX_BATCH:
            raise BadRequest(f"a call holds 1..{MAX_BATCH} requests, got {len(requests)}")
        total = sum(len(items) for _, items in requests)
        if total > MAX_BATCH_VALUES:
            raise BadRequest(f"a call protects at most {MAX_BATCH_VALUES} values, got {total}")
        result = self._post(
            self._key("protect-many"),
            "protect-many",
            {"requests": [_protect_body(h, items) for h, items in requests]},
            limit=_MAX_BATCH_RESPONSE_BYTES,
        )
        answers = result.get("requests")
        if not isinstance(answers, list) or len(answers) != len(requests):
            raise Unavailable(f"custodian {self._jurisdiction} answered a malformed batch")
        out = []
        for answer, (_, items) in zip(answers, requests, strict=True):
            if not isinstance(answer, dict):
                raise Unavailable(f"custodian {self._jurisdiction} answered a malformed batch")
            out.append(self._bodies(answer, len(items)))
        return out

    def protect_and_wrap_many(
        self, requests: Sequence[tuple[bytes, RecordHeader, Sequence[tuple[str, str, str]]]]
    ) -> list[tuple[list[str], WrappedKey]]:
        """Have the service protect the values of several records and wrap their data keys
        in one round trip, all or none (see :meth:`BaseCustodian.protect_and_wrap_many`).

        Raises:
            BadRequest: no requests, too many, too many values in all, or refused by the
                service (as :meth:`wrap_many` and :meth:`protect_many`).
            Unavailable: the service cannot be reached or is throttling.
        """
        if not 0 < len(requests) <= MAX_BATCH:
            raise BadRequest(f"a call holds 1..{MAX_BATCH} requests, got {len(requests)}")
        total = sum(len(items) for _, _, items in requests)
        if total > MAX_BATCH_VALUES:
            raise BadRequest(f"a call protects at most {MAX_BATCH_VALUES} values, got {total}")
        if not self._one_call:
            return self._protect_then_wrap(requests)
        body = {
            "requests": [
                {**_protect_body(header, items), "dataKey": _enc(key)}
                for key, header, items in requests
            ]
        }
        try:
            result = self._post(
                self._key("protect-wrap"), "protect-wrap", body, limit=_MAX_BATCH_RESPONSE_BYTES
            )
        except _UnknownOperation:
            # A custodian of an earlier release: two calls, from now on.
            self._one_call = False
            return self._protect_then_wrap(requests)
        except BadRequest:
            self._version = None  # after a rotation, the next ingest asks for the version
            raise
        answers = result.get("requests")
        if not isinstance(answers, list) or len(answers) != len(requests):
            raise Unavailable(f"custodian {self._jurisdiction} answered a malformed batch")
        out = []
        for answer, (_, _, items) in zip(answers, requests, strict=True):
            if not isinstance(answer, dict):
                raise Unavailable(f"custodian {self._jurisdiction} answered a malformed batch")
            bodies = self._bodies(answer, len(items)) if items else []
            wrapped = WrappedKey(self._jurisdiction, _version(answer), _dec(answer.get("wrapped")))
            out.append((bodies, wrapped))
        return out

    def _protect_then_wrap(
        self, requests: Sequence[tuple[bytes, RecordHeader, Sequence[tuple[str, str, str]]]]
    ) -> list[tuple[list[str], WrappedKey]]:
        """:meth:`protect_and_wrap_many` as the two calls a custodian without it answers."""
        asked = [(h, items) for _, h, items in requests if items]
        protected = iter(self.protect_many(asked) if asked else [])
        wrapped = self.wrap_many([(key, h) for key, h, _ in requests])
        return [
            (next(protected) if items else [], w)
            for (_, _, items), w in zip(requests, wrapped, strict=True)
        ]

    def _bodies(self, result: dict[str, Any], count: int) -> list[str]:
        bodies = [item.get("body") for item in self._items(result, count)]
        if not all(isinstance(b, str) for b in bodies):
            raise Unavailable(f"custodian {self._jurisdiction} answered a malformed batch")
        return [str(b) for b in bodies]

    def reveal(
        self,
        items: Sequence[tuple[RecordHeader, str, str, str]],
        authorization: ReleaseAuthorization | None,
        requester: str,
    ) -> list[str | None]:
        """Have the service reveal protected values (see :meth:`BaseCustodian.reveal`).

        Raises:
            Denied: no authorization, or the service refused it.
            NotFound: a subject was crypto-shredded.
            Unavailable: the service cannot be reached or is throttling.
        """
        if authorization is None:
            raise Denied(
                f"custodian {self._jurisdiction} reveals values only against a logged allow; "
                "none was presented"
            )
        body = {
            "items": [
                {"header": _enc(h.to_bytes()), "mode": m, "kind": k, "body": b}
                for h, m, k, b in items
            ],
            "authorization": _authorization(authorization),
            "requester": requester,
        }
        result = self._post(self._key("reveal"), "reveal", body)
        out = [item.get("value") for item in self._items(result, len(items))]
        if not all(v is None or isinstance(v, str) for v in out):
            raise Unavailable(f"custodian {self._jurisdiction} answered a malformed batch")
        return out

    def _items(self, result: dict[str, Any], count: int) -> list[dict[str, Any]]:
        items = result.get("items")
        if not isinstance(items, list) or len(items) != count:
            raise Unavailable(f"custodian {self._jurisdiction} answered a malformed batch")
        if not all(isinstance(i, dict) for i in items):
            raise Unavailable(f"custodian {self._jurisdiction} answered a malformed batch")
        return items


class _UnknownOperation(ConfigError):
    """The service has no such operation: an earlier release (HTTP: no route; frames: the
    body names no operation it knows)."""


def _unknown_operation(status: int, result: dict[str, Any]) -> bool:
    if status == 404:
        return "errorName" not in result  # a route it lacks, not a refusal of the call
    if status != 400:
        return False
    message = result.get("errorMessage")
    return isinstance(message, str) and message.startswith(
        "requestMetadata.operation must name an operation"
    )


def _protect_body(header: RecordHeader, items: Sequence[tuple[str, str, str]]) -> dict[str, Any]:
    return {
        "header": _enc(header.to_bytes()),
        "items": [{"mode": m, "kind": k, "value": v} for m, k, v in items],
    }


def logged_purpose(entry: bytes) -> object:
    """The purpose a logged decision names: the justification code sent with its release.

    Read the short way: whoever releases a key parses the entry in full and checks its
    receipt over these same bytes, so a purpose read here can only refuse, never allow.
    An entry that does not read so is parsed in full, for the precise refusal.

    Raises:
        Denied: the entry does not parse.
    """
    try:
        fields = orjson.loads(entry)
    except orjson.JSONDecodeError:
        fields = None
    if not isinstance(fields, dict):
        try:
            fields = dict(LogEntry.from_bytes(entry).fields)
        except BadRequest as exc:
            raise Denied(f"the presented entry does not parse: {exc.message}") from None
    return fields.get("purpose")


def _version(item: dict[str, Any]) -> int:
    version = item.get("kekVersion")
    if not isinstance(version, int) or isinstance(version, bool):
        raise Unavailable("custodian answered a malformed KEK version")
    return version


def _authorization(authorization: ReleaseAuthorization) -> dict[str, Any]:
    """The logged allow as the service takes it: entry, receipt, and the record and subject
    lists the entry names by root, when it does (the service checks them against it)."""
    lists = {"records": authorization.records, "subjects": authorization.subjects}
    return {
        "entry": _enc(authorization.entry),
        "receipt": authorization.receipt.to_dict(),
        **{name: list(ids) for name, ids in lists.items() if ids},
        **({"proof": authorization.proof} if authorization.proof else {}),
    }


def _enc(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _dec(value: object) -> bytes:
    if not isinstance(value, str):
        raise Unavailable("custodian answered a non-string key")
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
        raise Unavailable("custodian answered a malformed key") from None
