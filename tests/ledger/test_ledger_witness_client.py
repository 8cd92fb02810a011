"""The tlog-witness client's connections: kept alive, replaced when a witness closed them,
and every witness of a round at work at once from one thread.

The witnesses here are real :class:`~sovra.ledger.Witness` objects behind a small HTTP/1.1
server written on raw sockets, so a test decides exactly when a connection closes and
when an answer is sent.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sovra.errors import BadRequest
from sovra.ledger import CosignatureSigner, MemoryLogStorage, NoteSigner, TransparencyLog, Witness
from sovra.ledger.tlog_witness import WitnessClient, parse_request
from sovra.release_proofs import ReleaseProofs
from sovra_verify.cosignature import verify_cosignatures

ORIGIN = "client.sovra.example/log"
LOG_SIGNER = NoteSigner(ORIGIN, Ed25519PrivateKey.generate())


def _witness(name: str) -> Witness:
    return Witness(CosignatureSigner(name, Ed25519PrivateKey.generate()), [LOG_SIGNER.vkey])


def _read_request(conn: socket.socket) -> bytes | None:
    """One HTTP/1.1 request's body, or None if the peer closed first."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += conn.recv(65536)
    return body


@contextmanager
def raw_witness(
    witness: Witness, *, close_after_answer: bool = False, before_answer: Callable[[], None] = bool
) -> Iterator[tuple[str, list[int]]]:
    """Serve *witness* over add-checkpoint; yields its URL and a list that counts the
    requests each accepted connection carried. With *close_after_answer*, each
    connection is closed after one answer although the answer said nothing of it (as a
    witness restarting, or ending idle connections, does)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    served: list[int] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            served.append(0)
            with conn:
                conn.settimeout(10)
                while (body := _read_request(conn)) is not None:
                    served[-1] += 1
                    old, proof, note = parse_request(body)
                    answer = witness.add_checkpoint(note, old, proof)[len(note) :].encode()
                    before_answer()
                    conn.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n"
                        b"Content-Length: %d\r\n\r\n%s" % (len(answer), answer)
                    )
                    if close_after_answer:
                        break

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", served
    finally:
        stop.set()
        thread.join(timeout=10)
        listener.close()


def _grow(log: TransparencyLog, count: int) -> str:
    log.append_many([(b"entry %d" % (log.size + i), ()) for i in range(count)])
    return log.checkpoint()


def test_one_connection_carries_every_call() -> None:
    log = TransparencyLog(MemoryLogStorage(), LOG_SIGNER, ORIGIN)
    witness = _witness("w.sovra.example/keep")
    with raw_witness(witness) as (url, served):
        client = WitnessClient(url, witness.vkey, consistency=log.consistency_proof)
        try:
            held = 0
            for _ in range(3):
                note = _grow(log, 2)
                cosigned = client.add_checkpoint(
                    note, held, log.consistency_proof(held, log.size) if held else []
                )
                verify_cosignatures(cosigned, LOG_SIGNER.vkey, [witness.vkey], quorum=1)
                held = log.size
        finally:
            client.close()
    assert served == [3]


def test_a_connection_the_witness_closed_is_replaced() -> None:
    log = TransparencyLog(MemoryLogStorage(), LOG_SIGNER, ORIGIN)
    witness = _witness("w.sovra.example/closing")
    with raw_witness(witness, close_after_answer=True) as (url, served):
        client = WitnessClient(url, witness.vkey, consistency=log.consistency_proof)
        try:
            client.add_checkpoint(_grow(log, 3), 0, [])
            # The kept connection is closed at the other end: the request goes again on a
            # new one, and the answer is this checkpoint's.
            second = _grow(log, 2)
            cosigned = client.add_checkpoint(second, 3, log.consistency_proof(3, 5))
        finally:
            client.close()
    assert cosigned.startswith(second)
    verify_cosignatures(cosigned, LOG_SIGNER.vkey, [witness.vkey], quorum=1)
    assert witness.head(ORIGIN) == (5, log.root(5))
    assert served == [1, 1]


def test_a_round_sends_to_every_witness_before_awaiting_an_answer() -> None:
    """Each witness answers only once both have the checkpoint: a round that awaited one
    answer before sending the next request would never get either."""
    log = TransparencyLog(MemoryLogStorage(), LOG_SIGNER, ORIGIN)
    both = threading.Barrier(2, timeout=10)
    witnesses = [_witness("w.sovra.example/a"), _witness("w.sovra.example/b")]
    with (
        raw_witness(witnesses[0], before_answer=both.wait) as (url_a, _),
        raw_witness(witnesses[1], before_answer=both.wait) as (url_b, _),
    ):
        clients = [
            WitnessClient(url, w.vkey, timeout_s=30, consistency=log.consistency_proof)
            for url, w in ((url_a, witnesses[0]), (url_b, witnesses[1]))
        ]
        try:
            proofs = ReleaseProofs(log, clients)
            log.append_many([(b"decision %d" % i, ()) for i in range(4)])
            size, note = proofs.cosigned(4)
        finally:
            for client in clients:
                client.close()
    assert size == 4 and proofs.round_trips == 1
    verify_cosignatures(note, LOG_SIGNER.vkey, [w.vkey for w in witnesses], quorum=2)
    assert not both.broken


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://witness.example:99999", "malformed witness URL"),
        ("http://witness.example/add?x=1", "a scheme, a host and a path"),
        ("http://user@witness.example", "a scheme, a host and a path"),
        ("http:///no-host", "a scheme, a host and a path"),
    ],
    ids=["port", "query", "user", "no-host"],
)
def test_a_witness_url_is_checked(url: str, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        WitnessClient(url, _witness("w.sovra.example/u").vkey)
