"""The auditor's whole check of a log, against a key the auditor brings.

:func:`audit_log` asks a log for its size and its checkpoints, replays every entry
bundle and hash tile (:func:`~sovra_verify.tiles.audit_tiles`), and with witness keys
checks the cosigned checkpoint too; :func:`prove_entry` checks one entry's inclusion in
the newest checkpoint. Both take the log's key from the caller: the key a log states
for itself proves nothing about that log. ``sovra log verify`` and ``sovra-verify``
both run these functions.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sovra_verify.checkpoint import Checkpoint
from sovra_verify.cosignature import CosignatureVerifier, verify_cosignatures
from sovra_verify.errors import BadRequest, VerificationError
from sovra_verify.note import NoteVerifier
from sovra_verify.tiles import audit_tiles
from sovra_verify.verify import verify_checkpoint, verify_entry_inclusion

__all__ = [
    "MAX_NOTE_FILE_BYTES",
    "EntryProof",
    "LogAudit",
    "LogSource",
    "audit_log",
    "check_quorum",
    "load_vkey",
    "prove_entry",
    "read_note",
]

MAX_NOTE_FILE_BYTES = 1 << 16


class LogSource(Protocol):
    """What an audit reads from a log (``sovra.client.Client`` and ``LogReader`` both are)."""

    def info(self) -> Mapping[str, Any]:
        """Public facts, among them ``log_size``."""

    def checkpoints(self) -> list[str]:
        """Every published checkpoint note, oldest first."""

    def checkpoint(self) -> str:
        """The newest checkpoint note."""

    def cosigned_checkpoint(self) -> str:
        """The newest checkpoint note cosigned by a quorum of witnesses."""

    def log_file(self, path: str) -> bytes:
        """The bytes of a tlog-tiles file."""


@dataclass(frozen=True, slots=True)
class LogAudit:
    """What :func:`audit_log` verified.

    Attributes:
        entries: entries replayed and hashed.
        checkpoints: checkpoints whose signature, root and consistency were checked.
        size: the tree size verified up to.
        held: the log size the log stated when asked, before its checkpoints.
        newest: the checkpoint note verified last (of *size*), for a later incremental audit.
        cosigned_size: the size of the cosigned checkpoint checked, if witnesses were given.
        witnesses: the names of the trusted witnesses that cosigned it.
        quorum: how many cosignatures were required.
    """

    entries: int
    checkpoints: int
    size: int
    held: int
    newest: str
    cosigned_size: int | None = None
    witnesses: tuple[str, ...] = ()
    quorum: int = 0


@dataclass(frozen=True, slots=True)
class EntryProof:
    """One entry and the verified proof that the checkpoint's tree holds it."""

    index: int
    entry: bytes
    proof: tuple[bytes, ...]
    checkpoint: Checkpoint


def load_vkey(value: str) -> NoteVerifier:
    """A log's verifier key from a vkey string or from a file that holds one.

    Raises:
        BadRequest: neither a readable file nor a well-formed vkey.
    """
    text = value
    if os.path.isfile(value):
        data = _read_small(Path(value), "verifier key")
        text = data.strip()
    return NoteVerifier.from_vkey(text)


def read_note(path: Path) -> str:
    """A checkpoint note from a file, bounded in size.

    Raises:
        BadRequest: unreadable, too large or not UTF-8.
    """
    return _read_small(path, "checkpoint note")


def _read_small(path: Path, what: str) -> str:
    try:
        with path.open("rb") as f:
            data = f.read(MAX_NOTE_FILE_BYTES + 1)
    except OSError as exc:
        raise BadRequest(f"cannot read the {what} {path}: {exc.strerror}") from None
    if len(data) > MAX_NOTE_FILE_BYTES:
        raise BadRequest(f"{path} is too large to be a {what}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest(f"{path} is not UTF-8 text") from None


def check_quorum(witnesses: Sequence[CosignatureVerifier], quorum: int | None) -> int:
    """How many of *witnesses* must cosign: *quorum*, or all of them by default.

    Raises:
        BadRequest: a quorum without witnesses, or more than there are (or none).
    """
    if quorum is not None and not witnesses:
        raise BadRequest("--quorum needs at least one --witness key")
    needed = len(witnesses) if quorum is None else quorum
    if witnesses and not 0 < needed <= len(witnesses):
        raise BadRequest(f"a quorum of {needed} out of {len(witnesses)} witnesses is not possible")
    return needed


def audit_log(
    source: LogSource,
    vkey: NoteVerifier,
    *,
    witnesses: Sequence[CosignatureVerifier] = (),
    quorum: int | None = None,
    trusted: str | None = None,
    target: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> LogAudit:
    """Replay the log from its tiles, up to its newest checkpoint (or *target*).

    Asks the log for its size and its newest checkpoint (a log that grew since its last
    one publishes one for its current size), fetches every entry bundle and hash tile,
    recomputes every hash, checks every published checkpoint's signature by *vkey* and
    root and the consistency of each with the next. An audit that ends short of the
    entries the log held when asked fails (a stale log), unless *target* asked for that
    end. With *witnesses* it also checks that *quorum* of them (default: all) cosigned
    the log's cosigned checkpoint and audits that one with the rest.

    Args:
        source: the log.
        vkey: the log's key, as the auditor knows it (not as the log states it).
        witnesses: trusted witnesses' keys.
        quorum: how many of *witnesses* must cosign.
        trusted: a checkpoint note audited before: only what came after it is replayed.
        target: audit up to this checkpoint note.
        progress: called with ``(entries done, entries to do)``.

    Raises:
        BadRequest: an impossible quorum, or an answer that is not a log's.
        VerificationError: any hash, root, signature, consistency or cosignature that
            does not verify, or a log whose newest checkpoint is stale.
        Unavailable: the log cannot be read.
    """
    needed = check_quorum(witnesses, quorum)
    # The size first: the newest checkpoint, asked for after it, must cover it.
    held = _log_size(source.info())
    notes = source.checkpoints()
    if target is not None:
        last = verify_checkpoint(target, vkey).size
        notes = [n for n in notes if verify_checkpoint(n, vkey).size <= last] + [target]
    else:
        notes.append(source.checkpoint())
    cosigned: tuple[int, list[str]] | None = None
    if witnesses:
        notes, cosigned = _with_cosigned(
            source.cosigned_checkpoint(), notes, vkey, witnesses, needed
        )
    report = audit_tiles(source.log_file, notes, vkey, trusted=trusted, progress=progress)
    report.check()
    if target is None and report.size < held:
        raise VerificationError(
            f"stale log: its newest checkpoint covers {report.size} entries, but it held "
            f"{held} when asked; entries {report.size} to {held - 1} are not verified"
        )
    return LogAudit(
        entries=report.entries,
        checkpoints=report.checkpoints,
        size=report.size,
        held=held,
        newest=notes[-1],
        cosigned_size=None if cosigned is None else cosigned[0],
        witnesses=() if cosigned is None else tuple(cosigned[1]),
        quorum=needed if witnesses else 0,
    )


def prove_entry(
    checkpoint: str,
    entry: bytes,
    index: int,
    proof: Sequence[bytes],
    vkey: NoteVerifier,
) -> EntryProof:
    """Check that the log signed *checkpoint* and that its tree holds *entry* at *index*.

    Raises:
        BadRequest: a malformed note.
        VerificationError: the log's key did not sign it, or the proof does not hold.
    """
    cp = verify_checkpoint(checkpoint, vkey)
    verify_entry_inclusion(entry, index, proof, cp)
    return EntryProof(index, entry, tuple(proof), cp)


def _log_size(info: Mapping[str, object]) -> int:
    """The log size a gateway states in ``/v1/info``.

    Raises:
        BadRequest: the answer names no size (not a sovra gateway, or a broken one).
    """
    size = info.get("log_size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise BadRequest("the gateway's /v1/info states no log size")
    return size


def _with_cosigned(
    note: str,
    notes: list[str],
    key: NoteVerifier,
    witnesses: Sequence[CosignatureVerifier],
    quorum: int,
) -> tuple[list[str], tuple[int, list[str]]]:
    """*notes* with the cosigned *note* among them, in order, after checking its quorum.

    Raises:
        BadRequest: the cosigned checkpoint lies beyond the audited range.
        VerificationError: too few cosignatures, or another root for an audited size.
    """
    cp, names = verify_cosignatures(note, key, witnesses, quorum=quorum)
    sizes = [verify_checkpoint(n, key) for n in notes]
    for audited in sizes:
        if audited.size == cp.size and audited.root_hash != cp.root_hash:
            raise VerificationError(
                f"split view: the cosigned checkpoint at size {cp.size} has another root "
                "than the published one"
            )
    if sizes and cp.size > sizes[-1].size:
        raise BadRequest(
            f"the cosigned checkpoint (size {cp.size}) is beyond the audited one "
            f"(size {sizes[-1].size})"
        )
    if any(a.size == cp.size for a in sizes):
        return notes, (cp.size, names)
    at = next(n for n, a in enumerate(sizes) if a.size > cp.size)
    return [*notes[:at], note, *notes[at:]], (cp.size, names)
