"""The log's side of witnessing: cosignatures collected, checked, stored and published.

Each storage backend keeps the same lines; a submission is accepted whole or not at all.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sovra.errors import BadRequest, ConfigError, Denied, NotFound, VerificationError
from sovra.ledger import (
    CheckpointCosignatures,
    CosignatureSigner,
    CosignatureStore,
    MemoryLogStorage,
    NoteSigner,
    SQLiteLogStorage,
    TransparencyLog,
    Witness,
    verify_cosignatures,
)
from sovra.ledger.cosigning import MAX_SUBMISSION_BYTES, cosignature_store
from sovra.ledger.storage import LogStorage

ORIGIN = "cosign.test/log"
LOG_KEY = Ed25519PrivateKey.generate()


def _log(storage: LogStorage) -> TransparencyLog:
    return TransparencyLog(storage, NoteSigner(ORIGIN, LOG_KEY), ORIGIN)


def _grow(log: TransparencyLog, count: int) -> None:
    start = log.size
    log.append_many([(b"entry %d" % (start + n), ()) for n in range(count)])


def _witness(log: TransparencyLog, name: str, clock: int = 1_790_000_000) -> Witness:
    signer = CosignatureSigner(name, Ed25519PrivateKey.generate(), clock=lambda: clock)
    return Witness(signer, [log.verifier_key])


def _cosign(witness: Witness, note: str, held: int = 0, proof: list[bytes] | None = None) -> str:
    return witness.add_checkpoint(note, held, proof or [])


# --- storage conformance ---------------------------------------------------------------


def test_every_backend_keeps_cosignatures(storage: MemoryLogStorage) -> None:
    assert isinstance(storage, CosignatureStore)
    assert cosignature_store(storage) is storage
    log = _log(storage)
    _grow(log, 3)
    note = log.checkpoint()
    assert storage.checkpoint_at(3) == note
    assert storage.checkpoint_at(2) is None
    assert storage.cosignatures(3) == []
    storage.add_cosignatures(3, [("w1+vkey", 10, "line w1 old"), ("w2+vkey", 5, "line w2")])
    storage.add_cosignatures(3, [("w1+vkey", 12, "line w1 new"), ("w1+vkey", 11, "line w1 mid")])
    storage.add_cosignatures(3, [("w2+vkey", 4, "line w2 older")])  # older: ignored
    assert storage.cosignatures(3) == [("w1+vkey", "line w1 new"), ("w2+vkey", "line w2")]
    assert storage.latest_cosigned_size(["w1+vkey", "w2+vkey"], 2) == 3
    assert storage.latest_cosigned_size(["w1+vkey", "w3+vkey"], 2) is None
    _grow(log, 2)
    log.checkpoint()
    storage.add_cosignatures(5, [("w1+vkey", 20, "line w1 at 5")])
    assert storage.latest_cosigned_size(["w1+vkey", "w2+vkey"], 1) == 5
    assert storage.latest_cosigned_size(["w1+vkey", "w2+vkey"], 2) == 3


@pytest.mark.parametrize(
    "rows",
    [
        [],
        [("w", -1, "line")],
        [("w", True, "line")],
        [("w", 1, "two\nlines")],
        [("", 1, "line")],
        [("w", 1, "")],
        [("w", 1)],
    ],
    ids=["empty", "negative time", "bool time", "newline", "no witness", "no line", "short"],
)
def test_bad_rows_store_nothing(storage: MemoryLogStorage, rows: list) -> None:
    log = _log(storage)
    _grow(log, 1)
    log.checkpoint()
    storage.add_cosignatures(1, [("w", 1, "kept")])
    with pytest.raises(BadRequest):
        storage.add_cosignatures(1, [("x", 2, "fine"), *rows] if rows else [])
    assert storage.cosignatures(1) == [("w", "kept")]


def test_no_cosignature_for_an_unpublished_size(storage: MemoryLogStorage) -> None:
    log = _log(storage)
    _grow(log, 2)
    log.checkpoint()
    with pytest.raises(BadRequest, match="no checkpoint of size 7"):
        storage.add_cosignatures(7, [("w", 1, "line")])
    assert storage.cosignatures(7) == []


@pytest.mark.parametrize("quorum", [0, 3, True])
def test_impossible_store_quorum(storage: MemoryLogStorage, quorum: int) -> None:
    with pytest.raises(BadRequest):
        storage.latest_cosigned_size(["a", "b"], quorum)


def test_sqlite_cosignatures_survive_reopen(tmp_path: Path) -> None:
    storage = SQLiteLogStorage(tmp_path / "d.db")
    log = _log(storage)
    _grow(log, 1)
    log.checkpoint()
    storage.add_cosignatures(1, [("w", 1, "line")])
    storage.close()
    again = SQLiteLogStorage(tmp_path / "d.db")
    assert again.cosignatures(1) == [("w", "line")]
    again.close()


def test_a_storage_without_cosignatures_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="cannot keep witness cosignatures"):
        cosignature_store(object())  # type: ignore[arg-type]


# --- the collector ----------------------------------------------------------------------


@pytest.fixture
def log(storage: MemoryLogStorage) -> TransparencyLog:
    log = _log(storage)
    _grow(log, 5)
    return log


def test_a_witness_cosignature_is_accepted_and_published(
    log: TransparencyLog, storage: MemoryLogStorage
) -> None:
    w1, w2 = _witness(log, "witness.test/w1"), _witness(log, "witness.test/w2")
    collector = CheckpointCosignatures(log, storage, [w1.vkey, w2.vkey], quorum=2)
    note = collector.checkpoint()
    with pytest.raises(NotFound, match="no checkpoint is cosigned by 2 of the 2"):
        collector.cosigned_checkpoint()
    first = collector.submit(_cosign(w1, note))
    assert (first.checkpoint.size, first.accepted, first.cosigned_by) == (
        5,
        ("witness.test/w1",),
        1,
    )
    with pytest.raises(NotFound):
        collector.cosigned_checkpoint()
    # The second witness fetches the note carrying the first one's line and adds its own.
    served = collector.checkpoint()
    assert served.startswith(note) and served.count("\n\u2014 ") == 2
    second = collector.submit(_cosign(w2, served).encode())
    assert second.accepted == ("witness.test/w1", "witness.test/w2")
    assert second.cosigned_by == 2 and second.quorum == 2
    cosigned = collector.cosigned_checkpoint()
    cp, names = verify_cosignatures(cosigned, log.verifier_key, [w1.vkey, w2.vkey], quorum=2)
    assert cp.size == 5 and sorted(names) == ["witness.test/w1", "witness.test/w2"]
    assert collector.checkpoint() == cosigned
    # The log grows: the latest checkpoint has no cosignature yet, the cosigned one stays.
    _grow(log, 3)
    latest = collector.checkpoint()
    assert latest.count("\n\u2014 ") == 1
    assert collector.cosigned_checkpoint() == cosigned


def test_a_witness_signing_again_keeps_its_newest_line(
    log: TransparencyLog, storage: MemoryLogStorage
) -> None:
    clock = [100]
    signer = CosignatureSigner(
        "witness.test/w1", Ed25519PrivateKey.generate(), clock=lambda: clock[0]
    )
    witness = Witness(signer, [log.verifier_key])
    collector = CheckpointCosignatures(log, storage, [witness.vkey])
    note = collector.checkpoint()
    collector.submit(_cosign(witness, note))
    clock[0] = 200
    collector.submit(_cosign(witness, collector.checkpoint(), held=5))  # old and new line
    lines = collector.cosigned_checkpoint().split("\n")
    own = [line for line in lines if line.startswith("\u2014 witness.test/w1 ")]
    assert len(own) == 1
    assert storage.cosignatures(5)[0][1] == own[0]
    clock[0] = 150
    collector.submit(_cosign(witness, note, held=5))  # older than the stored one
    assert storage.cosignatures(5)[0][1] == own[0]


def _forged(note: str) -> str:
    head, line = note[: note.rindex("\u2014")], note[note.rindex("\u2014") :]
    name, b64 = line[2:].rstrip("\n").split(" ")
    import base64

    blob = bytearray(base64.b64decode(b64))
    blob[-1] ^= 1
    return head + f"\u2014 {name} {base64.b64encode(bytes(blob)).decode()}\n"


def test_refusals_store_nothing(log: TransparencyLog, storage: MemoryLogStorage) -> None:
    w1 = _witness(log, "witness.test/w1")
    stranger = _witness(log, "witness.test/stranger")
    collector = CheckpointCosignatures(log, storage, [w1.vkey])
    note = collector.checkpoint()
    good = _cosign(w1, note)
    by_stranger = _cosign(stranger, note)
    cases: list[tuple[type[Exception], str, str | bytes]] = [
        (Denied, "does not verify", _forged(good)),
        (Denied, "not a witness this log collects", by_stranger),
        (Denied, "not a witness this log collects", good + by_stranger[len(note) :]),
        (BadRequest, "no witness cosignature", note),
        (BadRequest, "blank line", "not a note"),
        (BadRequest, "em dash", note + "garbage\n"),
        (BadRequest, "not valid UTF-8", b"\xff\xfe"),
        (BadRequest, "at most", b"x" * (MAX_SUBMISSION_BYTES + 1)),
        (BadRequest, "not 'other", good.replace(ORIGIN, "other", 1)),
    ]
    # A checkpoint of a size this log never published, signed by the log's own key.
    _grow(log, 2)
    unpublished = _grow_note(log)
    cases.append(
        (
            NotFound,
            "published no checkpoint of size 7",
            _cosign(w1, unpublished, 5, log.consistency_proof(5, 7)),
        )
    )
    for error, message, body in cases:
        with pytest.raises(error, match=message):
            collector.submit(body)
    assert storage.cosignatures(5) == []
    assert storage.cosignatures(7) == []
    with pytest.raises(NotFound):
        collector.cosigned_checkpoint()


def _grow_note(log: TransparencyLog) -> str:
    """A checkpoint note the log signs but does not publish (its storage never sees it)."""
    from sovra_verify.checkpoint import Checkpoint
    from sovra_verify.note import sign_note

    return sign_note(
        Checkpoint(ORIGIN, log.size, log.root()).to_text(), [NoteSigner(ORIGIN, LOG_KEY)]
    )


def test_another_root_at_a_published_size_is_not_found(
    log: TransparencyLog, storage: MemoryLogStorage
) -> None:
    w1 = _witness(log, "witness.test/w1")
    collector = CheckpointCosignatures(log, storage, [w1.vkey])
    collector.checkpoint()
    fork = MemoryLogStorage()
    forked = _log(fork)  # the same key and origin, other entries
    forked.append_many([(b"forked %d" % n, ()) for n in range(5)])
    with pytest.raises(NotFound, match="size 5 with that root"):
        collector.submit(_cosign(w1, forked.checkpoint()))
    assert storage.cosignatures(5) == []


def test_a_forged_log_signature_is_denied(log: TransparencyLog, storage: MemoryLogStorage) -> None:
    w1 = _witness(log, "witness.test/w1")
    collector = CheckpointCosignatures(log, storage, [w1.vkey])
    note = collector.checkpoint()
    log_line = note[note.rindex("\u2014") :]
    forged_log_line = _forged(note)[len(note) - len(log_line) :]
    cosigned = _cosign(w1, note)
    with pytest.raises(Denied, match="does not verify"):
        collector.submit(
            note[: len(note) - len(log_line)] + forged_log_line + cosigned[len(note) :]
        )
    assert storage.cosignatures(5) == []


def test_without_witnesses_nothing_is_collected(
    log: TransparencyLog, storage: MemoryLogStorage
) -> None:
    collector = CheckpointCosignatures(log, storage)
    assert collector.quorum == 0 and collector.witnesses == []
    note = collector.checkpoint()
    assert note == log.checkpoint()
    with pytest.raises(Denied):
        collector.submit(_cosign(_witness(log, "witness.test/w1"), note))
    with pytest.raises(NotFound, match="no witnesses configured"):
        collector.cosigned_checkpoint()


@pytest.mark.parametrize(
    ("keys", "quorum", "message"),
    [
        (2, 3, "quorum of 3 out of 2"),
        (2, 0, "quorum of 0 out of 2"),
        (0, 1, "needs witness keys"),
        (1, True, "must be an integer"),
    ],
)
def test_impossible_configurations(
    log: TransparencyLog, storage: MemoryLogStorage, keys: int, quorum: int, message: str
) -> None:
    vkeys = [_witness(log, f"witness.test/w{n}").vkey for n in range(keys)]
    with pytest.raises(ConfigError, match=message):
        CheckpointCosignatures(log, storage, vkeys, quorum=quorum)


def test_bad_witness_keys_are_config_errors(
    log: TransparencyLog, storage: MemoryLogStorage
) -> None:
    with pytest.raises(ConfigError, match="witness key"):
        CheckpointCosignatures(log, storage, [log.verifier_key])
    twin = [_witness(log, "witness.test/w1").vkey, _witness(log, "witness.test/w1").vkey]
    with pytest.raises(ConfigError, match="two witness keys"):
        CheckpointCosignatures(log, storage, twin)


def test_cosignatures_verify_with_the_client_check(
    log: TransparencyLog, storage: MemoryLogStorage
) -> None:
    w1 = _witness(log, "witness.test/w1")
    collector = CheckpointCosignatures(log, storage, [w1.vkey])
    collector.submit(_cosign(w1, collector.checkpoint()))
    with pytest.raises(VerificationError):
        verify_cosignatures(
            collector.cosigned_checkpoint(),
            log.verifier_key,
            [w1.vkey, _witness(log, "witness.test/w2").vkey],
            quorum=2,
        )
