"""Authenticated frames between a gateway and a custodian on the same machine.

The custodian's calls carried over a Unix-domain stream socket instead of HTTP (see
docs/custodian-protocol.md and ADR 0018): one handshake per connection, then one request
frame and one response frame per call, for as long as the connection lives.

Handshake (``token`` is the custodian's 32-byte secret; it never travels)::

    custodian -> gateway   "SVRA" 0x01 | server nonce (32)
    gateway -> custodian   "SVRA" 0x01 | client nonce (32) | HMAC(token, "client" | sn | cn)
    custodian -> gateway   status (u16, 200) | HMAC(token, "server" | sn | cn)
                           or status (401) | u16 length | message, and the socket closes
    session key            HMAC(token, "session" | sn | cn)

Each side proves it holds the secret over both nonces, so a recorded handshake proves
nothing on another connection. Every frame after it::

    length (u32, of what follows) | sequence (u64) | status (u16) | body | tag (32)
    tag = HMAC-SHA256(session key, direction | sequence | status | body)

``direction`` is ``Q`` for a request (status 0) and ``R`` for its response (the request's
sequence, an XKS status). Requests are numbered 1, 2, 3, … on each connection and the
custodian takes only the next number: a frame replayed, reordered, or moved from another
connection (another session key) is refused. A frame's declared length is checked before
its body is read. Any fault ends the connection; the caller opens a new one.
"""

from __future__ import annotations

import hmac
import os
import socket
import struct
import threading

from sovra.errors import BadRequest, Unauthenticated

__all__ = [
    "MAGIC",
    "NONCE_SIZE",
    "TAG_SIZE",
    "Connections",
    "Session",
    "accept_handshake",
    "offer_handshake",
    "read_exact",
]

MAGIC = b"SVRA\x01"
NONCE_SIZE = 32
TAG_SIZE = 32
_SEQ_STATUS = struct.Struct(">QH")
_LENGTH = struct.Struct(">I")
_STATUS = struct.Struct(">H")
_READ_AHEAD = 64 << 10
"""What one read of a frame asks for: a whole small frame (most calls) in one system call."""
_LABEL = b"sovra-custodian-frames/v1\n"
_REQUEST, _RESPONSE = b"Q", b"R"
_MAX_REFUSAL = 512


def _mac(key: bytes, *parts: bytes) -> bytes:
    return hmac.digest(key, b"".join(parts), "sha256")


def _proof(token: bytes, role: bytes, server_nonce: bytes, client_nonce: bytes) -> bytes:
    return _mac(token, _LABEL, role, b"\n", server_nonce, client_nonce)


def read_exact(sock: socket.socket, size: int) -> bytes:
    """Exactly *size* bytes from *sock*.

    Raises:
        EOFError: the peer closed the connection before sending anything.
        BadRequest: the peer closed the connection part way.
        OSError: the socket failed or timed out.
    """
    buffer = bytearray(size)
    view = memoryview(buffer)
    got = 0
    while got < size:
        n = sock.recv_into(view[got:])
        if n == 0:
            if got:
                raise BadRequest(f"the connection closed after {got} of {size} bytes")
            raise EOFError("the connection closed")
        got += n
    return bytes(buffer)


class Session:
    """One authenticated connection's framing: its key, and the next sequence number."""

    __slots__ = ("_key", "_pending", "_seq", "_sock")

    def __init__(self, sock: socket.socket, key: bytes) -> None:
        self._sock = sock
        self._key = key
        self._seq = 0
        self._pending = b""  # read past the last frame: the start of the next one

    @property
    def socket(self) -> socket.socket:
        """The connection."""
        return self._sock

    @property
    def expected(self) -> int:
        """The sequence number of the next request (the custodian's side)."""
        return self._seq + 1

    def _send(self, direction: bytes, seq: int, status: int, body: bytes) -> None:
        head = _SEQ_STATUS.pack(seq, status)
        tag = _mac(self._key, direction, head, body)
        length = _SEQ_STATUS.size + len(body) + TAG_SIZE
        self._sock.sendall(b"".join((_LENGTH.pack(length), head, body, tag)))

    def _read(self, direction: bytes, limit: int) -> tuple[int, int, bytes]:
        # One read asks for more than the length: a small frame comes whole with it.
        data = self._pending
        while len(data) < _LENGTH.size:
            data += self._receive(len(data), _LENGTH.size)
        (length,) = _LENGTH.unpack_from(data)
        if length < _SEQ_STATUS.size + TAG_SIZE:
            raise BadRequest(f"a frame of {length} bytes is shorter than its header and tag")
        if length > limit + _SEQ_STATUS.size + TAG_SIZE:
            raise BadRequest(
                f"a frame of {length} bytes is over the {limit}-byte limit of its body"
            )
        end = _LENGTH.size + length
        if len(data) < end:
            data = data[_LENGTH.size :]
            try:
                data += read_exact(self._sock, length - len(data))
            except EOFError:
                if data:
                    raise BadRequest(
                        f"the connection closed after {len(data)} of {length} bytes"
                    ) from None
                raise
            rest, self._pending = data, b""
        else:
            rest, self._pending = data[_LENGTH.size : end], data[end:]
        head, tag = rest[: _SEQ_STATUS.size], rest[-TAG_SIZE:]
        body = rest[_SEQ_STATUS.size : -TAG_SIZE]
        if not hmac.compare_digest(tag, _mac(self._key, direction, head, body)):
            raise Unauthenticated("a frame's tag does not verify (forged, or changed on the way)")
        seq, status = _SEQ_STATUS.unpack(head)
        return seq, status, body

    def _receive(self, got: int, size: int) -> bytes:
        """What one read gives (up to :data:`_READ_AHEAD` bytes), *got* of *size* bytes
        of a frame's start being here already.

        Raises:
            EOFError: the peer closed the connection before anything of the frame came.
            BadRequest: the peer closed the connection part way.
            OSError: the socket failed or timed out.
        """
        chunk = self._sock.recv(_READ_AHEAD)
        if not chunk:
            if got:
                raise BadRequest(f"the connection closed after {got} of {size} bytes")
            raise EOFError("the connection closed")
        return chunk

    # -- the gateway's side --------------------------------------------------------------

    def request(self, body: bytes, limit: int) -> tuple[int, bytes]:
        """Send one request and read its response: ``(status, body)``.

        Raises:
            BadRequest: a malformed, oversized or out-of-order response.
            Unauthenticated: a response whose tag does not verify.
            EOFError: the peer closed the connection.
            OSError: the connection failed or timed out.
        """
        self._seq += 1
        self._send(_REQUEST, self._seq, 0, body)
        seq, status, answer = self._read(_RESPONSE, limit)
        if seq != self._seq:
            raise BadRequest(f"the response is numbered {seq}, the request {self._seq}")
        return status, answer

    # -- the custodian's side ------------------------------------------------------------

    def next_request(self, limit: int) -> tuple[int, bytes]:
        """The next request: ``(sequence, body)``.

        Raises:
            BadRequest: a malformed or oversized frame, a status in a request, or a
                sequence number that is not the next one (a replay).
            Unauthenticated: a frame whose tag does not verify.
            EOFError: the peer closed the connection.
            OSError: the connection failed or timed out.
        """
        seq, status, body = self._read(_REQUEST, limit)
        if seq != self._seq + 1:
            raise BadRequest(
                f"request frame {seq} is replayed or out of order (expected {self._seq + 1})"
            )
        if status != 0:
            raise BadRequest(f"a request frame carries status {status}, not 0")
        self._seq = seq
        return seq, body

    def respond(self, seq: int, status: int, body: bytes) -> None:
        """Answer request *seq*.

        Raises:
            OSError: the connection failed.
        """
        self._send(_RESPONSE, seq, status, body)


def offer_handshake(sock: socket.socket, token: bytes) -> Session:
    """The gateway's half of the handshake on a new connection.

    Raises:
        Unauthenticated: the custodian refused the secret, or did not prove it holds it.
        BadRequest: the custodian does not speak this protocol.
        EOFError: the custodian closed the connection.
        OSError: the connection failed or timed out.
    """
    hello = read_exact(sock, len(MAGIC) + NONCE_SIZE)
    if not hello.startswith(MAGIC):
        raise BadRequest("the peer does not speak sovra-custodian-frames/v1")
    server_nonce, client_nonce = hello[len(MAGIC) :], os.urandom(NONCE_SIZE)
    sock.sendall(MAGIC + client_nonce + _proof(token, b"client", server_nonce, client_nonce))
    (status,) = _STATUS.unpack(read_exact(sock, _STATUS.size))
    if status != 200:
        (size,) = _STATUS.unpack(read_exact(sock, _STATUS.size))
        message = read_exact(sock, min(size, _MAX_REFUSAL)).decode("utf-8", "replace")
        raise Unauthenticated(f"the custodian refused the connection: {message}")
    proof = read_exact(sock, TAG_SIZE)
    if not hmac.compare_digest(proof, _proof(token, b"server", server_nonce, client_nonce)):
        raise Unauthenticated("the custodian did not prove it holds the secret")
    return Session(sock, _proof(token, b"session", server_nonce, client_nonce))


def accept_handshake(sock: socket.socket, token: bytes) -> Session:
    """The custodian's half of the handshake on an accepted connection.

    Raises:
        Unauthenticated: the caller does not hold the secret (it was told so).
        BadRequest: the caller does not speak this protocol.
        EOFError: the caller closed the connection.
        OSError: the connection failed or timed out.
    """
    server_nonce = os.urandom(NONCE_SIZE)
    sock.sendall(MAGIC + server_nonce)
    answer = read_exact(sock, len(MAGIC) + NONCE_SIZE + TAG_SIZE)
    if not answer.startswith(MAGIC):
        raise BadRequest("the caller does not speak sovra-custodian-frames/v1")
    client_nonce = answer[len(MAGIC) : len(MAGIC) + NONCE_SIZE]
    proof = answer[len(MAGIC) + NONCE_SIZE :]
    if not hmac.compare_digest(proof, _proof(token, b"client", server_nonce, client_nonce)):
        message = b"the caller did not prove it holds the custodian's secret"
        sock.sendall(_STATUS.pack(401) + _STATUS.pack(len(message)) + message)
        raise Unauthenticated(message.decode())
    sock.sendall(_STATUS.pack(200) + _proof(token, b"server", server_nonce, client_nonce))
    return Session(sock, _proof(token, b"session", server_nonce, client_nonce))


class Connections:
    """The gateway's connections to one custodian's socket, kept open between calls.

    Safe to share between threads: each call takes a connection of its own (a new one when
    none is idle) and gives it back after a complete exchange. A connection that failed, or
    whose call was refused, is closed, never reused. After a fork, the child opens its own.
    """

    def __init__(self, path: str, token: bytes, timeout_s: float, keep: int = 64) -> None:
        """Connect lazily to the socket at *path* with the custodian's secret *token*."""
        self.path = path
        self._token = token
        self._timeout = timeout_s
        self._keep = keep
        self._idle: list[Session] = []
        self._lock = threading.Lock()
        self._pid = os.getpid()

    def call(self, body: bytes, limit: int) -> tuple[int, bytes]:
        """One request and its response: ``(status, body)``.

        Raises:
            BadRequest: a malformed, oversized or out-of-order response, or the custodian
                does not speak this protocol.
            Unauthenticated: the custodian refused the secret, did not prove it holds it,
                or sent a response whose tag does not verify.
            EOFError: the custodian closed the connection.
            OSError: the socket cannot be reached, failed or timed out.
        """
        session = self._take()
        try:
            status, answer = session.request(body, limit)
        except BaseException:
            session.socket.close()
            raise
        if status != 200:
            session.socket.close()
        else:
            self._give(session)
        return status, answer

    def _take(self) -> Session:
        with self._lock:
            if self._pid != os.getpid():
                # A forked child shares the parent's sockets: neither may use them again
                # here (their sequence numbers would cross); the parent closes its own.
                self._idle, self._pid = [], os.getpid()
            if self._idle:
                return self._idle.pop()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self._timeout)
            sock.connect(self.path)
            return offer_handshake(sock, self._token)
        except BaseException:
            sock.close()
            raise

    def _give(self, session: Session) -> None:
        with self._lock:
            if self._pid == os.getpid() and len(self._idle) < self._keep:
                self._idle.append(session)
                return
        session.socket.close()

    def close(self) -> None:
        """Close every idle connection."""
        with self._lock:
            idle, self._idle = self._idle, []
        for session in idle:
            session.socket.close()
