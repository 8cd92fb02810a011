"""C2SP tlog-witness over HTTP (https://c2sp.org/tlog-witness): the bodies and a client.

A log obtains a cosignature by posting ``<submission prefix>/add-checkpoint`` a body of
an old-size line, the consistency proof from that size (one base64 hash a line), an
empty line, and the signed checkpoint::

    old 10
    <base64 hash>
    ...

    <origin>
    <size>
    <root>

    — <origin> <log signature>

The witness answers 200 with its cosignature lines, or 409 with the size it holds
(``text/x.tlog.size``), or 400/403/404/422 (:mod:`sovra.ledger.witness` names the
cases). :func:`encode_request` and :func:`parse_request` are the two directions of the
body; :class:`WitnessClient` is a remote witness with the same ``add_checkpoint`` as the
in-process :class:`~sovra.ledger.witness.Witness`, so the log treats both alike.
"""

from __future__ import annotations

import base64
import binascii
import http.client
import re
import selectors
import ssl
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from sovra.errors import (
    BadRequest,
    PayloadTooLarge,
    SovraError,
    Unavailable,
    VerificationError,
)
from sovra.ledger.witness import (
    MAX_CONSISTENCY_HASHES,
    Inconsistent,
    OldSizeConflict,
    UnknownLog,
    UntrustedCheckpoint,
)
from sovra_verify.checkpoint import Checkpoint
from sovra_verify.cosignature import CosignatureVerifier, _note_text
from sovra_verify.note import MAX_SIGNATURES, split_signed_note

__all__ = [
    "MAX_REQUEST_BYTES",
    "SIZE_MEDIA_TYPE",
    "PendingCosignature",
    "WitnessClient",
    "encode_request",
    "parse_request",
]

MAX_REQUEST_BYTES = 256 * 1024
"""The largest add-checkpoint body ``sovra witness serve`` reads by default: a
checkpoint with a few dozen post-quantum signatures and 63 proof lines fit."""

SIZE_MEDIA_TYPE = "text/x.tlog.size"
_MAX_RESPONSE_BYTES = 64 * 1024
_OLD = re.compile(r"old (0|[1-9][0-9]{0,19})")
_SIZE_BODY = re.compile(r"(0|[1-9][0-9]{0,19})\n")


def encode_request(old_size: int, proof: Sequence[bytes], note: str) -> bytes:
    """The add-checkpoint body for *note* from *old_size* with its consistency *proof*.

    Raises:
        BadRequest: a negative size, more than 63 hashes, or a hash not of 32 bytes.
    """
    if isinstance(old_size, bool) or not isinstance(old_size, int) or old_size < 0:
        raise BadRequest(f"the old size must be a non-negative integer, not {old_size!r}")
    if len(proof) > MAX_CONSISTENCY_HASHES:
        raise BadRequest(f"a consistency proof has at most {MAX_CONSISTENCY_HASHES} hashes")
    if any(not isinstance(h, bytes) or len(h) != 32 for h in proof):
        raise BadRequest("every consistency proof hash must be 32 bytes")
    head = [f"old {old_size}", *(base64.b64encode(h).decode("ascii") for h in proof)]
    return ("".join(line + "\n" for line in head) + "\n" + note).encode("utf-8")


def parse_request(body: bytes, limit: int = MAX_REQUEST_BYTES) -> tuple[int, list[bytes], str]:
    """The old size, consistency proof and checkpoint note of an add-checkpoint body.

    Raises:
        PayloadTooLarge: over *limit* bytes.
        BadRequest: not UTF-8, no old-size line or not canonical decimal, a proof line
            that is not the base64 of 32 bytes, more than 63 of them, or no empty line
            and checkpoint after them.
    """
    if len(body) > limit:
        raise PayloadTooLarge(f"an add-checkpoint request is at most {limit} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("the request body is not UTF-8") from None
    head, sep, note = text.partition("\n\n")
    if not sep or not note:
        raise BadRequest("the request needs an empty line and a checkpoint after the proof")
    lines = head.split("\n")
    match = _OLD.fullmatch(lines[0])
    if match is None:
        raise BadRequest("the request starts with 'old <size>' (decimal, no leading zeros)")
    if len(lines) - 1 > MAX_CONSISTENCY_HASHES:
        raise BadRequest(f"a consistency proof has at most {MAX_CONSISTENCY_HASHES} lines")
    proof = []
    for n, line in enumerate(lines[1:], 1):
        try:
            raw = base64.b64decode(line.encode("ascii"), validate=True)
        except (UnicodeEncodeError, binascii.Error):
            raw = b""
        if len(raw) != 32 or base64.b64encode(raw).decode("ascii") != line:
            raise BadRequest(f"consistency proof line {n} is not the base64 of 32 bytes")
        proof.append(raw)
    return int(match.group(1)), proof, note


class WitnessClient:
    """A remote tlog-witness, called like an in-process :class:`~sovra.ledger.Witness`.

    Keeps its HTTP/1.1 connections alive between calls (the specification asks clients
    to), and checks every answer: a 200 must carry a valid cosignature by this witness's
    key over the very checkpoint sent. :meth:`send` puts a request on the wire and
    returns at once, so one thread can have every witness of a round at work together.
    Safe to share between threads (each call takes a connection of its own).

    It speaks HTTP through the standard library's ``http.client``: one request costs a
    third of the CPU it costs through httpx, and a log pays it per witness per batch.
    Proxy variables of the environment are not followed; a witness is reached directly.
    """

    def __init__(
        self,
        url: str,
        vkey: str | CosignatureVerifier,
        *,
        timeout_s: float = 5.0,
        consistency: Callable[[int, int], Sequence[bytes]] | None = None,
    ) -> None:
        """A client of the witness whose submission prefix is *url* and key is *vkey*.

        Args:
            url: the submission prefix (``add-checkpoint`` is appended).
            vkey: the witness's cosignature vkey (type 0x04).
            timeout_s: the longest a connection, a send or a wait for the answer may take.
            consistency: ``(old, new) -> proof`` from the log; with it, a 409 naming a
                size the log can prove consistency from is retried once from there.

        Raises:
            BadRequest: a malformed vkey, URL or timeout.
        """
        self._verifier = (
            vkey if isinstance(vkey, CosignatureVerifier) else CosignatureVerifier.from_vkey(vkey)
        )
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise BadRequest(f"a witness URL is http:// or https://, not {str(url)[:100]!r}")
        if (
            isinstance(timeout_s, bool)
            or not isinstance(timeout_s, int | float)
            or not 0 < timeout_s <= 600
        ):
            raise BadRequest(f"a witness timeout is 0..600 s, not {timeout_s!r}")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise BadRequest(f"a malformed witness URL {url[:100]!r}: {exc}") from None
        if not parts.hostname or parts.query or parts.fragment or parts.username:
            raise BadRequest(f"a witness URL is a scheme, a host and a path, not {url[:100]!r}")
        self._url = url.rstrip("/") + "/add-checkpoint"
        self._path = parts.path.rstrip("/") + "/add-checkpoint"
        self._host, self._port = parts.hostname, port
        self._tls = ssl.create_default_context() if parts.scheme == "https" else None
        self._timeout_s = float(timeout_s)
        self._consistency = consistency
        self._idle: list[http.client.HTTPConnection] = []
        self._closed = False  # after close(), a connection in use is closed when done
        self._lock = threading.Lock()

    @property
    def vkey(self) -> str:
        """The witness's cosignature vkey."""
        return self._verifier.vkey

    @property
    def name(self) -> str:
        """The witness's key name."""
        return self._verifier.name

    @property
    def url(self) -> str:
        """Where add-checkpoint requests go."""
        return self._url

    def add_checkpoint(self, note: str, old_size: int, proof: Sequence[bytes]) -> str:
        """Submit *note* from *old_size* with *proof*; *note* with the cosignature added.

        On 409 the witness names the size it holds: if this client has a consistency
        source and that size is at most the note's, it retries once from there.

        Raises:
            OldSizeConflict: a 409 not resolved by one retry (its ``size`` is the
                witness's).
            UnknownLog: 404, the witness does not witness this log.
            UntrustedCheckpoint: 403, the witness did not accept the log's signature.
            Inconsistent: 422, the witness found the checkpoint inconsistent with the
                one it holds (a fork, or a bad proof).
            BadRequest: 400 or another 4xx; or a malformed note or proof here.
            VerificationError: a 200 whose lines hold no valid cosignature by this
                witness over this checkpoint.
            Unavailable: the witness could not be reached in time, or answered 5xx or
                something that is not tlog-witness.
        """
        return self.send(note, old_size, proof).cosigned()

    def send(self, note: str, old_size: int, proof: Sequence[bytes]) -> PendingCosignature:
        """Put the add-checkpoint request on the wire; its answer is read by
        :meth:`PendingCosignature.cosigned` (which raises as :meth:`add_checkpoint`).

        Raises:
            BadRequest: a malformed note or proof.
        """
        size = Checkpoint.parse(_note_text(note)).size
        body = encode_request(old_size, proof, note)
        return PendingCosignature(self, note, size, old_size, self._post(body))

    def _retry_from(self, conflict: OldSizeConflict, note: str, size: int, old_size: int) -> str:
        held = conflict.size
        if self._consistency is None or held > size or held == old_size:
            raise conflict
        retry_proof = list(self._consistency(held, size)) if 0 < held < size else []
        return self._answer(note, self._post(encode_request(held, retry_proof, note)))

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        """An idle kept-alive connection (True), or a new one (False)."""
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        if self._tls is not None:
            return http.client.HTTPSConnection(
                self._host, self._port, timeout=self._timeout_s, context=self._tls
            ), False
        return http.client.HTTPConnection(self._host, self._port, timeout=self._timeout_s), False

    def _post(self, body: bytes) -> _Exchange:
        """Send *body*; a kept-alive connection the witness has closed is replaced once."""
        while True:
            conn, reused = self._connection()
            try:
                conn.request("POST", self._path, body=body, headers=_HEADERS)
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                if reused:
                    continue
                raise self._unreachable(exc) from None
            return _Exchange(conn, body, reused)

    def _answer(self, note: str, exchange: _Exchange, *, verify: bool = True) -> str:
        """Read the answer to *exchange*: *note* with this witness's cosignature
        (without *verify*, *note* alone: the lines are neither checked nor kept)."""
        status, media, data = self._receive(exchange)
        if status == 200:
            return note + self._cosignature(note, data) if verify else note
        detail = data.decode("utf-8", "replace").strip()[:300]
        where = f"the witness {self.name} ({self._url})"
        if status == 409:
            raise _conflict(media, data, where)
        error = _ERRORS.get(status)
        if error is not None:
            raise error(f"{where} refused the checkpoint ({status}): {detail}")
        if 400 <= status < 500:
            raise BadRequest(f"{where} answered {status}: {detail}")
        raise Unavailable(f"{where} answered {status}: {detail}")

    def _receive(self, exchange: _Exchange) -> tuple[int, str, bytes]:
        """Status, media type and (bounded) body of the answer; the connection goes back
        to the idle ones if the witness keeps it open and the body was read whole."""
        conn = exchange.conn
        try:
            try:
                response = conn.getresponse()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                if not exchange.reused:
                    raise
                # Closed by the witness while idle: nothing of this request was read.
                conn.close()
                return self._receive(self._post(exchange.body))
            data = response.read(_MAX_RESPONSE_BYTES)
            media = response.getheader("content-type", "") or ""
            status = response.status
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise self._unreachable(exc) from None
        with self._lock:
            keep = response.isclosed() and not response.will_close and not self._closed
            if keep:
                self._idle.append(conn)
        if not keep:
            conn.close()
        return status, media.split(";")[0].strip(), data

    def _unreachable(self, exc: BaseException) -> Unavailable:
        if isinstance(exc, TimeoutError):
            return Unavailable(f"the witness at {self._url} did not answer in time")
        return Unavailable(f"cannot reach the witness at {self._url}: {exc}")

    def _cosignature(self, note: str, data: bytes) -> str:
        """This witness's verified lines of a 200 answer (other keys' lines dropped)."""
        try:
            body = data.decode("utf-8")
        except UnicodeDecodeError:
            raise VerificationError(f"the witness {self.name} answered with non-UTF-8") from None
        if not body.endswith("\n") or any(
            not line.startswith("\u2014 ") for line in body[:-1].split("\n")
        ):
            raise VerificationError(
                f"the witness {self.name} answered with something that is not signature lines"
            )
        text = _note_text(note)
        _, lines = split_signed_note(text + "\n" + body, MAX_SIGNATURES)
        mine = [
            (line, blob)
            for line, name, key_id, blob in lines
            if (name, key_id) == (self._verifier.name, self._verifier.key_id)
        ]
        if not mine:
            raise VerificationError(f"the witness {self.name} answered without its cosignature")
        for _, blob in mine:
            try:
                self._verifier.verify(text.encode("utf-8"), blob)
            except VerificationError:
                raise VerificationError(
                    f"the cosignature of {self.name} is not over this checkpoint "
                    f"(of size {Checkpoint.parse(text).size}) or does not verify"
                ) from None
        return "".join(line + "\n" for line, _ in mine)

    def close(self) -> None:
        """Close the idle connections, and each one in use once its answer is read."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def __repr__(self) -> str:
        return f"WitnessClient({self._url!r}, {self.name!r})"


@dataclass(frozen=True, slots=True)
class _Exchange:
    """A request on the wire: its connection, its body (to send again on a fresh
    connection) and whether the connection was an idle one."""

    conn: http.client.HTTPConnection
    body: bytes
    reused: bool


class PendingCosignature:
    """An add-checkpoint request sent by :meth:`WitnessClient.send`, its answer unread."""

    __slots__ = ("_client", "_exchange", "_note", "_old_size", "_size")

    def __init__(
        self, client: WitnessClient, note: str, size: int, old_size: int, exchange: _Exchange
    ) -> None:
        self._client, self._note, self._size = client, note, size
        self._old_size, self._exchange = old_size, exchange

    @property
    def size(self) -> int:
        """The size of the checkpoint sent."""
        return self._size

    def fileno(self) -> int:
        """The connection's socket, readable once the answer has begun to arrive (for
        :mod:`selectors`: a log reads its witnesses' answers in the order they come)."""
        sock = self._exchange.conn.sock
        return -1 if sock is None else int(sock.fileno())

    def ready(self) -> bool:
        """Whether the answer (or the connection's end) has arrived, so that
        :meth:`cosigned` reads it without waiting for the witness."""
        sock = self._exchange.conn.sock
        if sock is None:
            return True
        if isinstance(sock, ssl.SSLSocket) and sock.pending():
            return True
        with selectors.DefaultSelector() as selector:
            selector.register(sock, selectors.EVENT_READ)
            return bool(selector.select(0))

    def cosigned(self) -> str:
        """The note with the witness's cosignature (as :meth:`WitnessClient.add_checkpoint`).

        Raises:
            SovraError: as :meth:`WitnessClient.add_checkpoint`.
        """
        try:
            return self._client._answer(self._note, self._exchange)
        except OldSizeConflict as conflict:
            return self._client._retry_from(conflict, self._note, self._size, self._old_size)

    def settle(self) -> None:
        """Read the answer to a checkpoint a newer one has replaced: whether the witness
        stored it (200) or the size it holds (409) is all that is used, so its
        cosignature is not checked and no second request is sent.

        Raises:
            OldSizeConflict: a 409 (its ``size`` is the witness's).
            SovraError: any other refusal, or no answer.
        """
        self._client._answer(self._note, self._exchange, verify=False)

    def abandon(self) -> None:
        """Close the connection without reading the answer (the witness is too slow: it
        may or may not have stored the checkpoint, which its next 409 tells)."""
        self._exchange.conn.close()


_HEADERS = {"Content-Type": "text/plain; charset=utf-8", "User-Agent": "sovra-log"}


_ERRORS: dict[int, Callable[[str], SovraError]] = {
    400: BadRequest,
    403: UntrustedCheckpoint,
    404: UnknownLog,
    413: PayloadTooLarge,
    422: Inconsistent,
}


def _conflict(media: str, data: bytes, where: str) -> SovraError:
    match = _SIZE_BODY.fullmatch(data.decode("ascii", "replace"))
    if media != SIZE_MEDIA_TYPE or match is None:
        return Unavailable(f"{where} answered 409 without its size as {SIZE_MEDIA_TYPE}")
    size = int(match.group(1))
    return OldSizeConflict(f"{where} holds the log at size {size}", size)
