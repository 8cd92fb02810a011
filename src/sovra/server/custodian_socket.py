"""A custodian's calls over a Unix-domain socket: how ``sovra serve`` reaches its custodians.

The same operations, checks and answers as the HTTP service (:class:`CustodianCalls`),
carried in authenticated frames (:mod:`sovra.keys._frames`, docs/custodian-protocol.md)
on connections the gateway keeps open. What stands between another process and the
custodian's keys:

- the socket sits in a folder only the gateway's user can enter (``sovra serve`` makes it
  and hands the custodian the listening socket, never the path);
- the kernel names the peer of each connection (``SO_PEERCRED``): a user other than the
  gateway's is refused before a byte is read;
- the handshake proves the peer holds the secret handed over at start, and every frame is
  tagged under that connection's session key and numbered, so a frame forged, changed,
  replayed or moved to another connection is refused.

Every refusal is answered with a precise XKS error where the connection still allows it,
and the connection is closed; a refusal of the call itself (a bad field, a denied
release) leaves it open.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import struct
import threading
import time

import orjson

from sovra.errors import BadRequest, SovraError, Unauthenticated
from sovra.keys._frames import Session, accept_handshake
from sovra.server.custodian import (
    MAX_BATCH_BODY_BYTES,
    CustodianCalls,
    error_answer,
)

__all__ = ["HANDSHAKE_TIMEOUT_S", "MAX_CONNECTIONS", "serve_frames"]

log = logging.getLogger("sovra.custodian")

HANDSHAKE_TIMEOUT_S = 10.0
"""A connection that has not completed its handshake by then is closed."""
MAX_CONNECTIONS = 256
"""Connections served at once; one more is closed at once (the gateway keeps fewer)."""
_UCRED = struct.Struct("3i")
_POLL_S = 0.25


def peer_uid(conn: socket.socket) -> int:
    """The user id of the process at the other end of a Unix-domain connection."""
    raw = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    return int(_UCRED.unpack(raw)[1])


def serve_frames(
    listener: socket.socket,
    calls: CustodianCalls,
    token: bytes,
    *,
    peers: frozenset[int] | None,
    stop: threading.Event,
) -> None:
    """Serve connections on *listener* until *stop* is set, one thread per connection.

    Args:
        listener: a listening Unix-domain stream socket.
        calls: the custodian's calls.
        token: the secret a caller MUST prove it holds (at least 16 bytes).
        peers: the user ids allowed to connect, or None for any (tests only).
        stop: set to return (within a quarter of a second); *listener* is closed then.

    Raises:
        OSError: *listener* failed.
    """
    slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
    listener.settimeout(_POLL_S)
    with listener:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            if not slots.acquire(blocking=False):
                log.warning(
                    "custodian %s: over %d connections, one closed", calls.code, MAX_CONNECTIONS
                )
                conn.close()
                continue
            threading.Thread(
                target=_serve_slot,
                args=(conn, calls, token, peers, slots),
                name="custodian-connection",
                daemon=True,
            ).start()


def _serve_slot(
    conn: socket.socket,
    calls: CustodianCalls,
    token: bytes,
    peers: frozenset[int] | None,
    slots: threading.BoundedSemaphore,
) -> None:
    try:
        _serve_connection(conn, calls, token, peers)
    finally:
        slots.release()


def _serve_connection(
    conn: socket.socket, calls: CustodianCalls, token: bytes, peers: frozenset[int] | None
) -> None:
    with conn:
        conn.settimeout(HANDSHAKE_TIMEOUT_S)
        try:
            if peers is not None:
                uid = peer_uid(conn)
                if uid not in peers:
                    log.warning("custodian %s: a process of uid %d was refused", calls.code, uid)
                    return
            session = accept_handshake(conn, token)
        except (SovraError, OSError, EOFError) as exc:
            outcome = exc.code if isinstance(exc, SovraError) else "closed"
            calls.record("handshake", "-", "-", outcome, time.perf_counter())
            return
        conn.settimeout(None)  # an idle pooled connection waits for its next call
        with contextlib.suppress(OSError):
            while _serve_one(session, calls):
                pass


def _serve_one(session: Session, calls: CustodianCalls) -> bool:
    """Read, run and answer one call; False when the connection must close."""
    try:
        seq, raw = session.next_request(MAX_BATCH_BODY_BYTES)
    except EOFError:
        return False
    except (BadRequest, Unauthenticated) as exc:
        calls.record("frame", "-", "-", exc.code, time.perf_counter())
        status, body, _ = error_answer(exc)
        session.respond(session.expected, status, orjson.dumps(body))
        return False
    started = time.perf_counter()
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        answer = error_answer(BadRequest(f"request frame {seq}'s body is not JSON: {exc}"))
    else:
        answer = calls.answer(None, parsed, started, size=len(raw))
    status, body, _ = answer
    session.respond(seq, status, orjson.dumps(body))
    return True
