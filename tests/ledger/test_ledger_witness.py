"""Witnessing: C2SP cosignatures, the witness's rollback and fork refusals, split views."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sovra.errors import BadRequest, ConfigError, NotFound, VerificationError
from sovra.ledger import MemoryLogStorage, NoteSigner, TransparencyLog, open_note
from sovra.ledger.witness import Inconsistent, Rollback, Witness
from sovra_verify.cosignature import (
    CosignatureSigner,
    CosignatureVerifier,
    find_split_view,
    verify_cosignatures,
)

VECTORS = Path(__file__).parent.parent / "vectors"
ORIGIN = "witnessed.sovra.example/log"
LOG_KEY = Ed25519PrivateKey.generate()
LOG_SIGNER = NoteSigner(ORIGIN, LOG_KEY)


def new_log() -> TransparencyLog:
    return TransparencyLog(MemoryLogStorage(), LOG_SIGNER, ORIGIN)


def grow(log: TransparencyLog, count: int, prefix: bytes = b"e") -> str:
    start = log.size
    log.append_many([(prefix + b"%d" % (start + i), ()) for i in range(count)])
    return log.checkpoint()


def new_witness(state: Path | None = None, clock: int = 1_790_000_000) -> Witness:
    signer = CosignatureSigner("witness.sovra.example/w1", WITNESS_KEY, clock=lambda: clock)
    return Witness(signer, [LOG_SIGNER.vkey], state)


WITNESS_KEY = Ed25519PrivateKey.generate()


def test_the_specs_cosignature_line() -> None:
    vector = json.loads((VECTORS / "tlog_examples.json").read_text())["c2sp_cosignature_example"]
    line = vector["note"].rstrip("\n").split("\n")[-1]
    name, blob_b64 = line.removeprefix("\u2014 ").split(" ")
    blob = base64.b64decode(blob_b64)
    assert name == vector["witness"]
    assert len(blob) == 4 + 8 + 64
    assert int.from_bytes(blob[4:12], "big") == vector["timestamp"]
    text = vector["note"].split("\n\n")[0] + "\n"
    assert vector["signed_message"] == f"cosignature/v1\ntime {vector['timestamp']}\n" + text


def test_our_cosignature_has_the_specs_shape() -> None:
    signer = CosignatureSigner("w.example/1", WITNESS_KEY, clock=lambda: 1679315147)
    note = grow(new_log(), 3)
    cosigned = signer.cosign(note)
    line = cosigned.rstrip("\n").split("\n")[-1]
    blob = base64.b64decode(line.split(" ")[-1])
    assert blob[:4] == signer.verifier.key_id.to_bytes(4, "big")
    assert int.from_bytes(blob[4:12], "big") == 1679315147
    message = b"cosignature/v1\ntime 1679315147\n" + note.split("\n\n")[0].encode() + b"\n"
    WITNESS_KEY.public_key().verify(blob[12:], message)
    vkey = signer.vkey
    assert base64.b64decode(vkey.split("+", 2)[2])[0] == 0x04
    assert CosignatureVerifier.from_vkey(vkey).vkey == vkey
    # The log's own key ID uses type 0x01, so the two never collide.
    assert signer.verifier.key_id != NoteSigner("w.example/1", WITNESS_KEY).key_id


@pytest.mark.parametrize(
    "vkey",
    [
        "w+00000000+AQ==",
        NoteSigner("w", WITNESS_KEY).vkey,  # a type 0x01 key is not a witness key
        CosignatureSigner("w", WITNESS_KEY).vkey.replace("+", "+0", 1)[:-1],
        "no-plus-signs",
    ],
    # WITNESS_KEY is made afresh per run: ids that do not show it keep collection stable.
    ids=["short-key", "note-key-type", "bad-key-id", "no-plus-signs"],
)
def test_bad_witness_keys_are_refused(vkey: str) -> None:
    with pytest.raises(BadRequest):
        CosignatureVerifier.from_vkey(vkey)


def test_quorum_of_cosignatures() -> None:
    log = new_log()
    note = grow(log, 5)
    w1 = CosignatureSigner("w1.example", Ed25519PrivateKey.generate())
    w2 = CosignatureSigner("w2.example", Ed25519PrivateKey.generate())
    w3 = CosignatureSigner("w3.example", Ed25519PrivateKey.generate())
    both = w2.cosign(w1.cosign(note))
    cp, names = verify_cosignatures(both, LOG_SIGNER.vkey, [w1.vkey, w2.vkey, w3.vkey], quorum=2)
    assert cp.size == 5 and sorted(names) == ["w1.example", "w2.example"]
    with pytest.raises(VerificationError, match="1 of the 2 witness cosignatures"):
        verify_cosignatures(w1.cosign(note), LOG_SIGNER.vkey, [w1.vkey, w2.vkey], quorum=2)
    with pytest.raises(BadRequest, match="quorum"):
        verify_cosignatures(both, LOG_SIGNER.vkey, [w1.vkey], quorum=2)
    # A cosignature moved onto another checkpoint no longer verifies.
    other = grow(log, 1)
    moved = other + w1.cosign(note).rstrip("\n").split("\n")[-1] + "\n"
    with pytest.raises(VerificationError, match="does not verify"):
        verify_cosignatures(moved, LOG_SIGNER.vkey, [w1.vkey], quorum=1)
    # open_note reads cosignatures beside the log's signature.
    assert open_note(both, [LOG_SIGNER.verifier, w2.verifier])[1] == [ORIGIN, "w2.example"]


def test_witness_cosigns_consistent_growth_and_remembers(tmp_path: Path) -> None:
    state = tmp_path / "witness.json"
    log = new_log()
    witness = new_witness(state)
    first = grow(log, 10)
    cosigned = witness.add_checkpoint(first, 0, [])
    verify_cosignatures(cosigned, LOG_SIGNER.vkey, [witness.vkey], quorum=1)
    second = grow(log, 7)
    witness.add_checkpoint(second, 10, log.consistency_proof(10, 17))
    again = new_witness(state)  # a restart keeps the head
    assert again.head(ORIGIN) == (17, log.root(17))
    # The same checkpoint again is fine (cosigned anew).
    again.add_checkpoint(second, 17, [])
    with pytest.raises(BadRequest, match=r"holds .* at size 17, not 10"):
        again.add_checkpoint(grow(log, 1), 10, log.consistency_proof(10, 18))


def test_witness_refuses_rollback() -> None:
    log = new_log()
    witness = new_witness()
    old = grow(log, 4)
    new = grow(log, 4)
    witness.add_checkpoint(new, 0, [])
    with pytest.raises(
        VerificationError, match=r"rollback refused: .* size 8 here, the note says 4"
    ):
        witness.add_checkpoint(old, 8, [])
    assert witness.head(ORIGIN) == (8, log.root(8))


def test_witness_catches_a_fork() -> None:
    honest, forked = new_log(), new_log()
    witness = new_witness()
    witness.add_checkpoint(grow(honest, 6), 0, [])
    grow(forked, 6, prefix=b"other")
    # Same size, other root: the log signed two views.
    with pytest.raises(VerificationError, match=r"fork detected: .* two roots for size 6"):
        witness.add_checkpoint(forked.checkpoint(), 6, [])
    # Larger, but not an extension of what the witness holds.
    bigger = grow(forked, 5, prefix=b"other")
    with pytest.raises(VerificationError, match=r"fork detected: size 11 .* not consistent"):
        witness.add_checkpoint(bigger, 6, forked.consistency_proof(6, 11))
    assert witness.head(ORIGIN) == (6, honest.root(6))


def test_witness_refuses_unknown_logs_and_forged_notes() -> None:
    witness = new_witness()
    stranger = NoteSigner("stranger.example/log", Ed25519PrivateKey.generate())
    other = TransparencyLog(MemoryLogStorage(), stranger, "stranger.example/log")
    with pytest.raises(NotFound, match="does not witness"):
        witness.add_checkpoint(grow(other, 2), 0, [])
    impostor = TransparencyLog(
        MemoryLogStorage(), NoteSigner(ORIGIN, Ed25519PrivateKey.generate()), ORIGIN
    )
    with pytest.raises(VerificationError):
        witness.add_checkpoint(grow(impostor, 2), 0, [])
    with pytest.raises(BadRequest):
        witness.add_checkpoint("no origin line", 0, [])
    assert witness.head(ORIGIN) is None


def test_a_broken_state_file_is_a_config_error(tmp_path: Path) -> None:
    state = tmp_path / "witness.json"
    state.write_text('{"heads": {"x": {"size": "many"}}}')
    with pytest.raises(ConfigError, match="witness state"):
        new_witness(state)


def test_a_write_cut_short_leaves_the_copy_that_was_answered_for(tmp_path: Path) -> None:
    """A crash tears at most the copy being written (no answer went out for it): the
    witness comes back with the other, and refuses a fork of what it cosigned."""
    state = tmp_path / "heads.json"
    alt = tmp_path / "heads.json.alt"
    log = new_log()
    witness = new_witness(state)
    witness.add_checkpoint(grow(log, 10), 0, [])
    witness.add_checkpoint(grow(log, 7), 10, log.consistency_proof(10, 17))
    assert json.loads(state.read_bytes())["serial"] == 1
    assert json.loads(alt.read_bytes())["serial"] == 2  # the copies are written in turn
    before = state.read_bytes()
    witness.add_checkpoint(grow(log, 3), 17, log.consistency_proof(17, 20))
    after = state.read_bytes()
    assert json.loads(after)["heads"][ORIGIN]["size"] == 20
    # The disk kept the new copy's first half and the old one's second half.
    half = len(after.rstrip()) // 2  # within the JSON (the rest is padding)
    state.write_bytes(after[:half] + before[half:])
    again = new_witness(state)
    assert again.head(ORIGIN) == (17, log.root(17))
    forked = new_log()
    fork = grow(forked, 17, prefix=b"f")
    with pytest.raises(Inconsistent, match="two roots for size 17"):
        again.add_checkpoint(fork, 17, [])
    with pytest.raises(Rollback):
        again.add_checkpoint(grow(new_log(), 10), 17, [])
    # Consistent growth goes on, over the torn copy.
    again.add_checkpoint(log.checkpoint(), 17, log.consistency_proof(17, 20))
    assert json.loads(state.read_bytes())["serial"] == 3
    assert new_witness(state).head(ORIGIN) == (20, log.root(20))


def test_both_copies_broken_is_a_config_error(tmp_path: Path) -> None:
    state = tmp_path / "heads.json"
    log = new_log()
    witness = new_witness(state)
    witness.add_checkpoint(grow(log, 2), 0, [])
    witness.add_checkpoint(grow(log, 2), 2, log.consistency_proof(2, 4))
    for path in (state, tmp_path / "heads.json.alt"):
        body = json.loads(path.read_bytes())
        body["heads"][ORIGIN]["size"] += 1  # altered without its check
        path.write_text(json.dumps(body))
    with pytest.raises(ConfigError, match="check does not match"):
        new_witness(state)


def test_a_state_file_of_earlier_versions_is_read(tmp_path: Path) -> None:
    """Earlier versions wrote one JSON file by rename, without serial or check."""
    state = tmp_path / "heads.json"
    log = new_log()
    note = new_witness().add_checkpoint(grow(log, 5), 0, [])
    head = {"size": 5, "root": base64.b64encode(log.root(5)).decode(), "note": note}
    state.write_text(json.dumps({"heads": {ORIGIN: head}}, indent=1))
    witness = new_witness(state)
    assert witness.head(ORIGIN) == (5, log.root(5))
    witness.add_checkpoint(grow(log, 1), 5, log.consistency_proof(5, 6))
    assert json.loads(state.read_bytes())["heads"][ORIGIN]["size"] == 5  # left as it was
    assert new_witness(state).head(ORIGIN) == (6, log.root(6))  # the newer copy wins


def test_split_views_are_found() -> None:
    a, b = new_log(), new_log()
    notes = [grow(a, 3), grow(a, 2), grow(b, 5, prefix=b"x")]
    with pytest.raises(VerificationError, match=r"split view: .* size 5"):
        find_split_view(notes, LOG_SIGNER.vkey)
    find_split_view(notes[:2], LOG_SIGNER.vkey)
    # Notes the log did not sign are not evidence against it.
    stranger = NoteSigner(ORIGIN, Ed25519PrivateKey.generate())
    forged = TransparencyLog(MemoryLogStorage(), stranger, ORIGIN)
    find_split_view([*notes[:2], grow(forged, 5, prefix=b"y")], LOG_SIGNER.vkey)
