"""C2SP tlog-witness over HTTP: ``sovra witness serve`` and the client the log uses.

The specification's own examples come from tests/vectors/tlog_witness_examples.json
(C2SP/C2SP ``tlog-witness.md`` at the commit recorded there): its add-checkpoint request
body and its response body. A second implementation written apart from sovra is the
subject of test_ledger_witness_interop.py.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from sovra.errors import BadRequest, PayloadTooLarge, Unavailable, VerificationError
from sovra.ledger import EMPTY_ROOT, MemoryLogStorage, NoteSigner, TransparencyLog, sign_note
from sovra.ledger.tlog_witness import WitnessClient, encode_request, parse_request
from sovra.ledger.witness import (
    Inconsistent,
    OldSizeConflict,
    UnknownLog,
    UntrustedCheckpoint,
    Witness,
)
from sovra.server.background import running
from sovra.server.witness import create_witness_app
from sovra_verify.checkpoint import Checkpoint
from sovra_verify.cosignature import CosignatureSigner, verify_cosignatures
from sovra_verify.note import split_signed_note

EXAMPLES = json.loads(
    (Path(__file__).parent.parent / "vectors" / "tlog_witness_examples.json").read_text()
)
ORIGIN = "witnessed.sovra.example/log"
LOG_SIGNER = NoteSigner(ORIGIN, Ed25519PrivateKey.generate())
WITNESS_SIGNER = CosignatureSigner("witness.sovra.example/w1", Ed25519PrivateKey.generate())


def new_log() -> TransparencyLog:
    return TransparencyLog(MemoryLogStorage(), LOG_SIGNER, ORIGIN)


def grow(log: TransparencyLog, count: int, prefix: bytes = b"e") -> str:
    start = log.size
    log.append_many([(prefix + b"%d" % (start + i), ()) for i in range(count)])
    return log.checkpoint()


@pytest.fixture
def witness(tmp_path: Path) -> Witness:
    return Witness(WITNESS_SIGNER, [LOG_SIGNER.vkey], tmp_path / "heads.json")


@pytest.fixture
def url(witness: Witness) -> Iterator[str]:
    with running(create_witness_app(witness, max_body_bytes=8192)) as base:
        yield base


@pytest.fixture(autouse=True)
def _close_clients(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every WitnessClient a test makes is closed after it (no socket left to the GC)."""
    made: list[WitnessClient] = []
    real_init = WitnessClient.__init__

    def init(self: WitnessClient, *args: object, **kwargs: object) -> None:
        real_init(self, *args, **kwargs)  # type: ignore[arg-type]
        made.append(self)

    monkeypatch.setattr(WitnessClient, "__init__", init)
    yield
    for client in made:
        client.close()


def post(url: str, body: bytes) -> httpx.Response:
    return httpx.post(url + "/add-checkpoint", content=body)


# -- the specification's examples ---------------------------------------------------------


def test_the_specs_request_body_parses_and_is_written_back_byte_for_byte() -> None:
    example = EXAMPLES["c2sp_add_checkpoint_request"]
    body = example["body"].encode()
    old_size, proof, note = parse_request(body)
    assert old_size == example["old_size"]
    assert len(proof) == example["proof_lines"] and all(len(h) == 32 for h in proof)
    checkpoint = Checkpoint.parse(note[: note.index("\n\n") + 1])
    assert (checkpoint.origin, checkpoint.size) == (example["origin"], example["size"])
    assert encode_request(old_size, proof, note) == body


def test_the_specs_request_is_refused_as_the_spec_says(tmp_path: Path) -> None:
    body = EXAMPLES["c2sp_add_checkpoint_request"]["body"].encode()
    # A witness that does not witness example.com/behind-the-sofa: 404.
    stranger = Witness(WITNESS_SIGNER, [LOG_SIGNER.vkey])
    with running(create_witness_app(stranger)) as base:
        assert post(base, body).status_code == 404
    # One that trusts another key for that origin: the two lines are by unknown keys,
    # which a witness ignores, so no trusted signature is present: 403.
    other = NoteSigner("example.com/behind-the-sofa", Ed25519PrivateKey.generate())
    trusting = Witness(WITNESS_SIGNER, [other.vkey], tmp_path / "h.json")
    with running(create_witness_app(trusting)) as base:
        answer = post(base, body)
    assert answer.status_code == 403
    assert trusting.head("example.com/behind-the-sofa") is None
    assert not (tmp_path / "h.json").exists()


def test_the_specs_response_body_is_cosignature_lines() -> None:
    example = EXAMPLES["c2sp_add_checkpoint_response"]
    note = EXAMPLES["c2sp_add_checkpoint_request"]["body"].split("\n\n", 1)[1]
    text = note[: note.index("\n\n") + 1]
    _, lines = split_signed_note(text + "\n" + example["body"], 10)
    assert [name for _, name, _, _ in lines] == example["names"]
    # key ID (4 bytes, split off by the parser) || timestamp (8) || Ed25519 signature (64)
    assert all(len(blob) == 8 + 64 for _, _, _, blob in lines)
    assert all(int.from_bytes(blob[:8], "big") > 0 for _, _, _, blob in lines)


# -- sovra witness serve --------------------------------------------------------------------


def test_cosigns_growth_and_serves_what_it_cosigned(url: str, witness: Witness) -> None:
    log = new_log()
    digest = hashlib.sha256(ORIGIN.encode()).hexdigest()
    assert httpx.get(f"{url}/{digest}/checkpoint").status_code == 404
    first = grow(log, 5)
    answer = post(url, encode_request(0, [], first))
    assert answer.status_code == 200
    assert answer.text.startswith("\u2014 witness.sovra.example/w1 ")
    verify_cosignatures(first + answer.text, LOG_SIGNER.vkey, [witness.vkey], quorum=1)
    second = grow(log, 6)
    answer = post(url, encode_request(5, log.consistency_proof(5, 11), second))
    assert answer.status_code == 200
    served = httpx.get(f"{url}/{digest}/checkpoint")
    assert served.status_code == 200
    cp, names = verify_cosignatures(served.text, LOG_SIGNER.vkey, [witness.vkey], quorum=1)
    assert (cp.size, names) == (11, ["witness.sovra.example/w1"])
    assert httpx.get(f"{url}/{'0' * 64}/checkpoint").status_code == 404
    assert httpx.get(f"{url}/add-checkpoint").status_code == 405


def test_409_names_the_held_size_and_changes_nothing(url: str, witness: Witness) -> None:
    log = new_log()
    assert post(url, encode_request(0, [], grow(log, 10))).status_code == 200
    newer = grow(log, 3)
    answer = post(url, encode_request(4, log.consistency_proof(4, 13), newer))
    assert answer.status_code == 409
    assert answer.headers["content-type"].split(";")[0] == "text/x.tlog.size"
    assert answer.text == "10\n"
    assert witness.head(ORIGIN) == (10, log.root(10))


@pytest.mark.parametrize(
    ("make_body", "status", "message"),
    [
        (lambda note, log: b"old 0\n\n", 400, "a checkpoint after"),
        (lambda note, log: b"new 0\n\n" + note.encode(), 400, "old <size>"),
        (lambda note, log: b"old 01\n\n" + note.encode(), 400, "old <size>"),
        (lambda note, log: b"old 0\nnot-a-hash\n\n" + note.encode(), 400, "line 1"),
        (lambda note, log: b"old 0\n" + b"A" * 42 + b"==\n\n" + note.encode(), 400, "line 1"),
        (lambda note, log: ("old 0\n" + "AAAA\n" * 64 + "\n").encode() + note.encode(), 400, "63"),
        (lambda note, log: b"old 9\n\n" + note.encode(), 400, "above"),
        (lambda note, log: b"old 0\n\n\xff\xfe\n", 400, "UTF-8"),
        (lambda note, log: b"old 0\n\n" + b"x" * 9000, 413, "at most 8192"),
        (lambda note, log: encode_request(0, [log.root(2)], note), 422, "size 0"),
    ],
    ids=[
        "no-checkpoint",
        "no-old-line",
        "leading-zero",
        "bad-proof-line",
        "bad-padding",
        "64-proof-lines",
        "old-above-size",
        "not-utf8",
        "oversized",
        "proof-from-zero",
    ],
)
def test_malformed_requests_are_refused_and_change_nothing(
    url: str,
    witness: Witness,
    make_body: Callable[[str, TransparencyLog], bytes],
    status: int,
    message: str,
) -> None:
    log = new_log()
    note = grow(log, 4)
    answer = post(url, make_body(note, log))
    assert answer.status_code == status, answer.text
    assert message in answer.text
    assert witness.head(ORIGIN) is None


def test_forged_forked_and_wrong_origin_checkpoints(url: str, witness: Witness) -> None:
    log = new_log()
    assert post(url, encode_request(0, [], grow(log, 6))).status_code == 200
    held = witness.head(ORIGIN)
    # Another key signing for the same origin: no trusted signature, 403.
    impostor = NoteSigner(ORIGIN, Ed25519PrivateKey.generate())
    forged = sign_note(Checkpoint(ORIGIN, 9, log.root(6)).to_text(), [impostor])
    assert post(url, encode_request(6, [], forged)).status_code == 403
    # The trusted key's line altered: 403 as well.
    real = grow(log, 3)
    prefix, blob = real.rstrip("\n").rsplit(" ", 1)
    raw = bytearray(base64.b64decode(blob))
    raw[-1] ^= 1
    tampered = f"{prefix} {base64.b64encode(bytes(raw)).decode()}\n"
    answer = post(url, encode_request(6, log.consistency_proof(6, 9), tampered))
    assert answer.status_code == 403 and "does not verify" in answer.text
    # A log the witness does not know: 404.
    other = NoteSigner("other.example/log", Ed25519PrivateKey.generate())
    stranger = sign_note(Checkpoint("other.example/log", 1, log.root(1)).to_text(), [other])
    assert post(url, encode_request(0, [], stranger)).status_code == 404
    # The same size with another root (a fork), and a proof that does not link: 422.
    forked = new_log()
    fork_note = grow(forked, 6, prefix=b"fork")
    answer = post(url, encode_request(6, [], fork_note))
    assert answer.status_code == 422 and "fork detected" in answer.text
    bad_proof = [bytes(32)] * len(log.consistency_proof(6, 9))
    assert post(url, encode_request(6, bad_proof, real)).status_code == 422
    assert witness.head(ORIGIN) == held


def test_a_size_zero_checkpoint_needs_the_empty_root(url: str, witness: Witness) -> None:
    bad = sign_note(Checkpoint(ORIGIN, 0, bytes(32)).to_text(), [LOG_SIGNER])
    answer = post(url, encode_request(0, [], bad))
    assert answer.status_code == 422 and "empty tree" in answer.text
    with pytest.raises(Inconsistent, match="empty tree"):
        witness.add_checkpoint(bad, 0, [])
    assert witness.head(ORIGIN) is None
    empty = sign_note(Checkpoint(ORIGIN, 0, EMPTY_ROOT).to_text(), [LOG_SIGNER])
    assert post(url, encode_request(0, [], empty)).status_code == 200
    assert witness.head(ORIGIN) == (0, EMPTY_ROOT)


# -- the client -----------------------------------------------------------------------------


def test_client_cosigns_and_resolves_409_from_the_size_the_witness_names(
    url: str, witness: Witness
) -> None:
    log = new_log()
    client = WitnessClient(url, witness.vkey, consistency=log.consistency_proof)
    first = grow(log, 7)
    cosigned = client.add_checkpoint(first, 0, [])
    assert cosigned.startswith(first)
    verify_cosignatures(cosigned, LOG_SIGNER.vkey, [witness.vkey], quorum=1)
    # The log believes the witness holds nothing: the 409 says 7, the client proves 7 -> 12.
    second = grow(log, 5)
    verify_cosignatures(
        client.add_checkpoint(second, 0, []), LOG_SIGNER.vkey, [witness.vkey], quorum=1
    )
    assert witness.head(ORIGIN) == (12, log.root(12))
    # Without a way to prove consistency, the 409 is the caller's, with the size.
    bare = WitnessClient(url, witness.vkey)
    with pytest.raises(OldSizeConflict) as conflict:
        bare.add_checkpoint(grow(log, 1), 3, log.consistency_proof(3, 13))
    assert conflict.value.size == 12
    # A witness ahead of the checkpoint (a rollback, seen from the log): no retry.
    log_behind = TransparencyLog(MemoryLogStorage(), LOG_SIGNER, ORIGIN)
    stale = grow(log_behind, 11)
    behind = WitnessClient(url, witness.vkey, consistency=log_behind.consistency_proof)
    with pytest.raises(OldSizeConflict) as ahead:
        behind.add_checkpoint(stale, 0, [])
    assert ahead.value.size == 12
    assert witness.head(ORIGIN) == (12, log.root(12))


def test_client_maps_each_refusal_to_its_error(url: str, witness: Witness) -> None:
    log = new_log()
    client = WitnessClient(url, witness.vkey)
    note = grow(log, 4)
    other = NoteSigner("other.example/log", Ed25519PrivateKey.generate())
    stranger = sign_note(Checkpoint("other.example/log", 1, log.root(1)).to_text(), [other])
    with pytest.raises(UnknownLog):
        client.add_checkpoint(stranger, 0, [])
    impostor = NoteSigner(ORIGIN, Ed25519PrivateKey.generate())
    with pytest.raises(UntrustedCheckpoint):
        client.add_checkpoint(
            sign_note(Checkpoint(ORIGIN, 4, log.root(4)).to_text(), [impostor]), 0, []
        )
    with pytest.raises(Inconsistent):
        client.add_checkpoint(note, 0, [log.root(1)])
    with pytest.raises(BadRequest, match="above"):
        client.add_checkpoint(note, 9, [])
    assert witness.head(ORIGIN) is None
    with pytest.raises(BadRequest, match="63"):
        client.add_checkpoint(note, 0, [bytes(32)] * 64)


def _fake_witness(answer: Callable[[bytes], Response]) -> Starlette:
    async def add_checkpoint(request: Request) -> Response:
        return answer(await request.body())

    return Starlette(routes=[Route("/add-checkpoint", add_checkpoint, methods=["POST"])])


def test_client_checks_what_a_witness_answers() -> None:
    log = new_log()
    note = grow(log, 3)
    other_note = grow(log, 2)
    # A valid cosignature by the right key, over another checkpoint.
    elsewhere = WITNESS_SIGNER.cosign(other_note)[len(other_note) :]
    spec_lines = EXAMPLES["c2sp_add_checkpoint_response"]["body"]
    cases: list[tuple[Response, type[Exception], str]] = [
        (PlainTextResponse(elsewhere), VerificationError, "not over this checkpoint"),
        (PlainTextResponse(spec_lines), VerificationError, "without its cosignature"),
        (PlainTextResponse("hello\n"), VerificationError, "not signature lines"),
        (PlainTextResponse("7\n", status_code=409), Unavailable, "without its size"),
        (PlainTextResponse("boom", status_code=500), Unavailable, "500"),
        (PlainTextResponse("no", status_code=418), BadRequest, "418"),
        (PlainTextResponse("big", status_code=413), PayloadTooLarge, "413"),
    ]
    for response, error, message in cases:
        with running(_fake_witness(lambda body, r=response: r)) as base:
            client = WitnessClient(base, WITNESS_SIGNER.vkey)
            with pytest.raises(error, match=message):
                client.add_checkpoint(note, 0, [])


def test_client_gives_up_on_a_slow_or_absent_witness() -> None:
    note = grow(new_log(), 2)

    async def slow(request: Request) -> Response:
        await asyncio.sleep(5)
        return PlainTextResponse("")

    app = Starlette(routes=[Route("/add-checkpoint", slow, methods=["POST"])])
    with running(app) as base:
        client = WitnessClient(base, WITNESS_SIGNER.vkey, timeout_s=0.2)
        with pytest.raises(Unavailable, match="in time"):
            client.add_checkpoint(note, 0, [])
    absent = WitnessClient(base, WITNESS_SIGNER.vkey, timeout_s=1)
    with pytest.raises(Unavailable, match="cannot reach"):
        absent.add_checkpoint(note, 0, [])


@pytest.mark.parametrize(
    ("url", "vkey", "timeout", "message"),
    [
        ("ftp://witness.example", WITNESS_SIGNER.vkey, 5, "http"),
        ("http://witness.example", LOG_SIGNER.vkey, 5, "0x04"),
        ("http://witness.example", WITNESS_SIGNER.vkey, 0, "timeout"),
    ],
    ids=["scheme", "log-key-as-witness-key", "timeout"],
)
def test_client_configuration_is_checked(url: str, vkey: str, timeout: float, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        WitnessClient(url, vkey, timeout_s=timeout)


def test_encode_refuses_what_the_spec_forbids() -> None:
    note = grow(new_log(), 1)
    with pytest.raises(BadRequest):
        encode_request(-1, [], note)
    with pytest.raises(BadRequest):
        encode_request(0, [b"short"], note)
    raw = base64.b64encode(bytes(32)).decode()
    assert encode_request(3, [bytes(32)], note).startswith(f"old 3\n{raw}\n\n".encode())
