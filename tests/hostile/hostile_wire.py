"""A raw HTTP/1.1 client for hostile requests: bytes on a socket, nothing normalised.

httpx would refuse to send most of what these tests send (a lying Content-Length, a
half-sent body, a header of 100 kB), so requests are written by hand and the answer read
back with a bound on how long to wait: a request the server never answers is a *hang*.
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sovra.auth import make_token

ANSWER_WITHIN_S = 30.0

# A grant whose legal basis holds a lone surrogate; its signature is a placeholder, since the
# parser must refuse the body before any signature is checked.
SURROGATE_GRANT = {
    "grant_id": "g-1",
    "approver": "PL",
    "grantee": "authority-us",
    "grantee_jurisdiction": "US",
    "subjects": ["anna"],
    "purpose": "foreign-legal-process",
    "legal_basis": "MLAT \ud800",
    "not_before": 0,
    "not_after": 1 << 40,
    "signature": "00" * 64,
}
"""How long a request may go unanswered before it counts as a hang (generous: the
machine may be busy; a server that never answers fails the same either way)."""


@dataclass
class Answer:
    """What came back: the status (None for a hang), headers and body."""

    status: int | None
    headers: dict[str, str]
    body: bytes
    closed: bool

    def json(self) -> dict:
        return json.loads(self.body)


def _split_url(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def request_bytes(
    method: str,
    path: str,
    body: bytes = b"",
    *,
    headers: dict[str, str | None] | None = None,
    content_length: str | None = None,
) -> bytes:
    """One request as bytes; *content_length* overrides the true length (a lie).

    A header given as None is left out (``content-type`` is JSON unless told otherwise).
    """
    head: dict[str, str | None] = {"host": "gateway", "content-type": "application/json"}
    head.update(headers or {})
    head = {k: v for k, v in head.items() if v is not None}
    if content_length is None and "transfer-encoding" not in head:
        content_length = str(len(body))
    if content_length is not None:
        head["content-length"] = content_length
    lines = [f"{method} {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in head.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape") + body


def _read_answer(sock: socket.socket, deadline: float) -> Answer:
    data = b""
    closed = False
    while b"\r\n\r\n" not in data:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return Answer(None, {}, data, closed=False)
        except ConnectionResetError:
            return Answer(None, {}, data, closed=True)
        if not chunk:
            return Answer(None, {}, data, closed=True)
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    while head.startswith(b"HTTP/1.1 1"):  # an interim answer (100 Continue): the next one counts
        data = rest
        while b"\r\n\r\n" not in data:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = sock.recv(65536)
            except (TimeoutError, ConnectionResetError):
                return Answer(None, {}, data, closed=False)
            if not chunk:
                return Answer(None, {}, data, closed=True)
            data += chunk
        head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    status = int(status_line.split(" ")[1])
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":  # a streamed answer (a batch's)
        return _read_chunked(sock, deadline, status, headers, rest)
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except (TimeoutError, ConnectionResetError):
            break
        if not chunk:
            closed = True
            break
        rest += chunk
    if not closed and headers.get("connection") == "close":
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            closed = sock.recv(1) == b""
        except TimeoutError:
            closed = False
        except ConnectionResetError:
            closed = True
    return Answer(status, headers, rest[:length], closed)


def _recv(sock: socket.socket, deadline: float) -> bytes:
    """The next bytes; empty when the peer closed or the time ran out."""
    sock.settimeout(max(0.01, deadline - time.monotonic()))
    try:
        return sock.recv(65536)
    except (TimeoutError, ConnectionResetError):
        return b""


def _read_chunked(
    sock: socket.socket, deadline: float, status: int, headers: dict[str, str], data: bytes
) -> Answer:
    """The rest of an answer sent in chunks, decoded; a hang if it never ends."""
    body = b""
    while True:
        while b"\r\n" not in data:
            more = _recv(sock, deadline)
            if not more:
                return Answer(None, headers, body, closed=True)
            data += more
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        while len(data) < size + 2:
            more = _recv(sock, deadline)
            if not more:
                return Answer(None, headers, body, closed=True)
            data += more
        if size == 0:
            return Answer(status, headers, body, closed=False)
        body += data[:size]
        data = data[size + 2 :]


def send(
    url: str,
    payload: bytes,
    *,
    then: list[bytes] | None = None,
    pause_s: float = 0.0,
    within_s: float = ANSWER_WITHIN_S,
) -> Answer:
    """Send *payload* (then each of *then*, *pause_s* apart) and read one answer.

    Sending stops at the first error: a server may close the connection as soon as it
    has refused, and what it answered is still read.
    """
    host, port = _split_url(url)
    deadline = time.monotonic() + within_s
    with socket.create_connection((host, port), timeout=within_s) as sock:
        try:
            sock.sendall(payload)
            for piece in then or []:
                if pause_s:
                    time.sleep(pause_s)
                sock.sendall(piece)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return _read_answer(sock, deadline)


def signed(
    key: Ed25519PrivateKey,
    who: str,
    method: str,
    path: str,
    body: bytes = b"",
    *,
    headers: dict[str, str | None] | None = None,
) -> bytes:
    """A request signed with a fresh token for exactly this method, path and body."""
    token = make_token(key, who, method, path, body, now_s=int(time.time()))
    return request_bytes(
        method, path, body, headers={"authorization": f"Sovra {token}", **(headers or {})}
    )
