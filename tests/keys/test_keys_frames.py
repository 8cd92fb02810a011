"""The custodian's local socket: frames as docs/custodian-protocol.md describes them.

The handshake and frames are built here from the document, not with the module under
test, so a change of the wire format fails these tests. Every malformed, oversized,
forged or replayed frame is refused with a precise error and changes nothing.
"""

from __future__ import annotations

import hmac
import os
import socket
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from _allow import logged_allow
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sovra.errors import Unauthenticated, Unavailable
from sovra.keys import LocalCustodian
from sovra.keys._frames import MAGIC
from sovra.keys.remote import RemoteCustodian
from sovra.model import RecordHeader, subject_commitment
from sovra.server.custodian import MAX_BODY_BYTES, CustodianCalls
from sovra.server.custodian_socket import serve_frames

TOKEN = b"f" * 32
LABEL = b"sovra-custodian-frames/v1\n"
ALICE = subject_commitment(b"c" * 32, "PL", "alice")
META = {"callerPrincipal": "test", "operation": "metadata", "requestId": "req-1"}


@dataclass
class Socket:
    path: Path
    custodian: LocalCustodian
    log_key: Ed25519PrivateKey

    @property
    def url(self) -> str:
        return f"unix:{self.path}"


def _start(
    folder: Path, custodian: LocalCustodian, token: bytes, peers: frozenset[int] | None
) -> tuple[threading.Event, threading.Thread, Path]:
    path = folder / "PL.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(16)
    stop = threading.Event()
    calls = CustodianCalls(custodian)
    thread = threading.Thread(
        target=serve_frames, args=(listener, calls, token), kwargs={"peers": peers, "stop": stop}
    )
    thread.start()
    return stop, thread, path


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Socket]:
    log_key = Ed25519PrivateKey.generate()
    custodian = LocalCustodian.create(tmp_path / "PL.key", "PL", log_key.public_key())
    stop, thread, path = _start(tmp_path, custodian, TOKEN, frozenset({os.geteuid()}))
    try:
        yield Socket(path, custodian, log_key)
    finally:
        stop.set()
        thread.join(timeout=10)
        custodian.close()


# -- the protocol, written out from the document ---------------------------------------


def _mac(key: bytes, *parts: bytes) -> bytes:
    return hmac.digest(key, b"".join(parts), "sha256")


def _recv(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise EOFError(f"closed after {len(data)} of {size} bytes")
        data += chunk
    return data


def _connect(served: Socket, token: bytes = TOKEN) -> tuple[socket.socket, bytes]:
    """A connection after the handshake, and its session key."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(str(served.path))
    hello = _recv(sock, 5 + 32)
    assert hello[:5] == b"SVRA\x01" == MAGIC
    sn, cn = hello[5:], os.urandom(32)
    sock.sendall(MAGIC + cn + _mac(token, LABEL, b"client\n", sn, cn))
    (status,) = struct.unpack(">H", _recv(sock, 2))
    assert status == 200
    assert _recv(sock, 32) == _mac(token, LABEL, b"server\n", sn, cn)
    return sock, _mac(token, LABEL, b"session\n", sn, cn)


def _frame(key: bytes, seq: int, body: bytes, *, status: int = 0, direction: bytes = b"Q") -> bytes:
    head = struct.pack(">QH", seq, status)
    rest = head + body + _mac(key, direction, head, body)
    return struct.pack(">I", len(rest)) + rest


def _answer(sock: socket.socket, key: bytes) -> tuple[int, int, dict[str, Any]]:
    (length,) = struct.unpack(">I", _recv(sock, 4))
    rest = _recv(sock, length)
    head, body, tag = rest[:10], rest[10:-32], rest[-32:]
    assert tag == _mac(key, b"R", head, body), "the response's tag does not verify"
    seq, status = struct.unpack(">QH", head)
    return seq, status, orjson.loads(body)


def _closed(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def _metadata(op: str = "metadata") -> bytes:
    return orjson.dumps({"requestMetadata": {**META, "operation": op}})


# -- round trips -----------------------------------------------------------------------


def test_a_connection_serves_many_calls_in_order(served: Socket) -> None:
    sock, key = _connect(served)
    with sock:
        for seq in (1, 2, 3):
            sock.sendall(_frame(key, seq, _metadata()))
            got, status, body = _answer(sock, key)
            assert (got, status, body["jurisdiction"]) == (seq, 200, "PL")


def test_the_gateway_calls_over_the_socket(served: Socket) -> None:
    h = RecordHeader("r-1", ALICE, "PL", "eu", 1)
    with RemoteCustodian(served.url, "PL", TOKEN) as remote:
        assert remote.protect_many([(h, [("tokenize", "email", "a@example.pl")])])[0][0]
        (wrapped,) = remote.wrap_many([(b"k" * 32, h)])
        auth = logged_allow(served.log_key, [h], principal="svc-pl")
        (released,) = remote.unwrap_batches([([(wrapped, h)], auth, "svc-pl")])
        assert released == [b"k" * 32]
        assert remote.unwrap(wrapped, h, auth, "svc-pl") == b"k" * 32
        assert remote.current_kek_version == 1
        assert len(remote._frames._idle) == 1  # type: ignore[union-attr]  # one, reused


# -- refusals --------------------------------------------------------------------------


def _refused(sock: socket.socket, key: bytes, status: int, name: str, why: str) -> None:
    _, got, body = _answer(sock, key)
    assert (got, body["errorName"]) == (status, name), body
    assert why in body["errorMessage"]


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"not json", "is not JSON"),
        (b'{"requestMetadata": {"callerPrincipal": "\\ud800"}}', "is not JSON"),
        (b"[" * 2000 + b"]" * 2000, "is not JSON"),
        (b"[]", "requestMetadata.operation must name an operation"),
        (orjson.dumps({"requestMetadata": {**META, "operation": "drop-all"}}), "'drop-all'"),
        (orjson.dumps({"requestMetadata": META, "extra": 1}), "unknown field(s) extra"),
        (orjson.dumps({"requestMetadata": {**META, "requestId": "x" * 200}}), "requestId"),
        (orjson.dumps({"requestMetadata": {**META, "caller": 1}}), "unknown field(s) caller"),
    ],
    ids=["not-json", "surrogate", "deep", "array", "unknown-op", "extra", "long-id", "meta"],
)
def test_malformed_bodies_get_a_precise_error(served: Socket, body: bytes, why: str) -> None:
    sock, key = _connect(served)
    with sock:
        sock.sendall(_frame(key, 1, body))
        _refused(sock, key, 400, "ValidationException", why)
        sock.sendall(_frame(key, 2, _metadata()))  # the call was refused, not the connection
        assert _answer(sock, key)[1] == 200


def test_a_body_over_its_operations_limit_is_refused(served: Socket) -> None:
    sock, key = _connect(served)
    padding = {"requestMetadata": META, "pad": "x" * (MAX_BODY_BYTES + 1)}
    with sock:
        sock.sendall(_frame(key, 1, orjson.dumps(padding)))
        _refused(sock, key, 400, "ValidationException", "limit of metadata")


def test_an_oversized_frame_is_refused_on_its_declared_length(served: Socket) -> None:
    sock, key = _connect(served)
    with sock:
        sock.sendall(struct.pack(">I", 1 << 31))  # nothing of the body is ever sent
        _refused(sock, key, 400, "ValidationException", "over the")
        assert _closed(sock)


def test_a_frame_shorter_than_its_header_is_refused(served: Socket) -> None:
    sock, key = _connect(served)
    with sock:
        sock.sendall(struct.pack(">I", 12) + b"\x00" * 12)
        _refused(sock, key, 400, "ValidationException", "shorter than its header")
        assert _closed(sock)


@pytest.mark.parametrize("where", ["body", "sequence", "tag"])
def test_a_forged_frame_is_refused_and_runs_nothing(served: Socket, where: str) -> None:
    sock, key = _connect(served)
    frame = bytearray(
        _frame(key, 1, orjson.dumps({"requestMetadata": {**META, "operation": "rotate"}}))
    )
    at = {"body": 20, "sequence": 11, "tag": len(frame) - 1}[where]
    frame[at] ^= 1
    with sock:
        sock.sendall(bytes(frame))
        _refused(sock, key, 401, "AuthenticationFailedException", "tag does not verify")
        assert _closed(sock)
    assert served.custodian.current_kek_version == 1  # the rotation never ran


def test_a_frame_under_another_key_is_refused(served: Socket) -> None:
    sock, key = _connect(served)
    with sock:
        sock.sendall(_frame(b"k" * 32, 1, _metadata()))
        _refused(sock, key, 401, "AuthenticationFailedException", "tag does not verify")


def test_a_replayed_frame_is_refused(served: Socket) -> None:
    sock, key = _connect(served)
    rotate = _frame(key, 1, orjson.dumps({"requestMetadata": {**META, "operation": "rotate"}}))
    with sock:
        sock.sendall(rotate)
        assert _answer(sock, key)[1] == 200
        sock.sendall(rotate)
        _refused(sock, key, 400, "ValidationException", "frame 1 is replayed or out of order")
        assert _closed(sock)
    assert served.custodian.current_kek_version == 2  # once, not twice


def test_a_frame_moved_to_another_connection_is_refused(served: Socket) -> None:
    first, key = _connect(served)
    second, other = _connect(served)
    with first, second:
        second.sendall(_frame(key, 1, _metadata()))
        _refused(second, other, 401, "AuthenticationFailedException", "tag does not verify")


@pytest.mark.parametrize("seq", [0, 2, 2**64 - 1])
def test_frames_out_of_order_are_refused(served: Socket, seq: int) -> None:
    sock, key = _connect(served)
    with sock:
        sock.sendall(_frame(key, seq, _metadata()))
        _refused(sock, key, 400, "ValidationException", f"frame {seq} is replayed or out of order")


def test_a_request_carrying_a_status_is_refused(served: Socket) -> None:
    sock, key = _connect(served)
    with sock:
        sock.sendall(_frame(key, 1, _metadata(), status=200))
        _refused(sock, key, 400, "ValidationException", "carries status 200")


def test_a_response_frame_sent_as_a_request_is_refused(served: Socket) -> None:
    sock, key = _connect(served)
    with sock:
        sock.sendall(_frame(key, 1, _metadata(), direction=b"R"))
        _refused(sock, key, 401, "AuthenticationFailedException", "tag does not verify")


def test_a_caller_without_the_secret_is_refused_at_the_handshake(served: Socket) -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    with sock:
        sock.connect(str(served.path))
        sn, cn = _recv(sock, 37)[5:], os.urandom(32)
        sock.sendall(MAGIC + cn + _mac(b"x" * 32, LABEL, b"client\n", sn, cn))
        status, size = struct.unpack(">HH", _recv(sock, 4))
        assert status == 401
        assert b"did not prove it holds" in _recv(sock, size)
        assert _closed(sock)
    with (
        RemoteCustodian(served.url, "PL", b"x" * 32) as wrong,
        pytest.raises(Unauthenticated, match="refused the connection"),
    ):
        wrong.metadata()


def _hello(served: Socket) -> socket.socket:
    """A connection that has read the custodian's hello and nothing more."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect(str(served.path))
    assert _recv(sock, 37)[:5] == MAGIC
    return sock


def test_a_recorded_handshake_does_not_open_another_connection(served: Socket) -> None:
    # The proof covers the custodian's fresh nonce: one made for another nonce fails.
    with _hello(served) as sock:
        old_sn, cn = os.urandom(32), os.urandom(32)
        sock.sendall(MAGIC + cn + _mac(TOKEN, LABEL, b"client\n", old_sn, cn))
        assert struct.unpack(">H", _recv(sock, 2))[0] == 401


def test_a_peer_that_does_not_speak_the_protocol_is_closed(served: Socket) -> None:
    with _hello(served) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\n" + b"x" * 52)
        assert _closed(sock)
    with RemoteCustodian(served.url, "PL", TOKEN) as remote:
        assert remote.metadata()["jurisdiction"] == "PL"  # the service goes on


def test_a_connection_cut_mid_frame_harms_nothing(served: Socket) -> None:
    sock, key = _connect(served)
    sock.sendall(_frame(key, 1, _metadata())[:20])
    sock.close()
    with RemoteCustodian(served.url, "PL", TOKEN) as remote:
        assert remote.metadata()["jurisdiction"] == "PL"


def test_another_user_is_refused_before_the_handshake(tmp_path: Path) -> None:
    log_key = Ed25519PrivateKey.generate()
    custodian = LocalCustodian.create(tmp_path / "PL.key", "PL", log_key.public_key())
    stop, thread, path = _start(tmp_path, custodian, TOKEN, frozenset({os.geteuid() + 1}))
    try:
        with (
            RemoteCustodian(f"unix:{path}", "PL", TOKEN) as remote,
            pytest.raises(Unavailable, match="cannot be reached: the connection closed"),
        ):
            remote.metadata()
    finally:
        stop.set()
        thread.join(timeout=10)
        custodian.close()


def _impostor(path: Path, answer: Any) -> threading.Thread:
    """A server at *path* that does the handshake with *TOKEN*, then runs *answer*."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)

    def run() -> None:
        with listener:
            conn, _ = listener.accept()
            with conn:
                sn = os.urandom(32)
                conn.sendall(MAGIC + sn)
                cn = _recv(conn, 69)[5:37]
                conn.sendall(struct.pack(">H", 200) + _mac(TOKEN, LABEL, b"server\n", sn, cn))
                answer(conn, _mac(TOKEN, LABEL, b"session\n", sn, cn))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_a_custodian_without_the_secret_is_not_believed(tmp_path: Path) -> None:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(tmp_path / "PL.sock"))
    listener.listen(1)

    def run() -> None:
        with listener:
            conn, _ = listener.accept()
            with conn:
                conn.sendall(MAGIC + os.urandom(32))
                _recv(conn, 69)
                conn.sendall(struct.pack(">H", 200) + os.urandom(32))

    threading.Thread(target=run, daemon=True).start()
    with (
        RemoteCustodian(f"unix:{tmp_path / 'PL.sock'}", "PL", TOKEN) as remote,
        pytest.raises(Unauthenticated, match="did not prove it holds the secret"),
    ):
        remote.metadata()


@pytest.mark.parametrize(
    ("reply", "why"),
    [
        (lambda key: _frame(key, 1, b'{"jurisdiction": "PL"}', status=200, direction=b"Q"), "tag"),
        (
            lambda key: _frame(key, 7, b'{"jurisdiction": "PL"}', status=200, direction=b"R"),
            "numbered 7",
        ),
        (lambda key: struct.pack(">I", 1 << 30), "over the"),
    ],
    ids=["forged", "out-of-order", "oversized"],
)
def test_a_bad_response_is_not_believed(tmp_path: Path, reply: Any, why: str) -> None:
    def answer(conn: socket.socket, key: bytes) -> None:
        (length,) = struct.unpack(">I", _recv(conn, 4))
        _recv(conn, length)
        conn.sendall(reply(key))
        _closed(conn)

    _impostor(tmp_path / "PL.sock", answer)
    with (
        RemoteCustodian(f"unix:{tmp_path / 'PL.sock'}", "PL", TOKEN) as remote,
        pytest.raises((Unauthenticated, Unavailable), match=why),
    ):
        remote.metadata()
    assert remote._frames._idle == []  # type: ignore[union-attr]  # never reused


def test_a_forked_child_opens_connections_of_its_own(served: Socket) -> None:
    with RemoteCustodian(served.url, "PL", TOKEN) as remote:
        frames = remote._frames
        assert frames is not None
        remote.metadata()
        (parents,) = frames._idle
        frames._pid = -1  # as seen from a child forked after that call
        remote.metadata()
        assert frames._idle and frames._idle[0] is not parents
        assert frames._pid == os.getpid()
        parents.socket.close()  # the parent's, which the child never closes
