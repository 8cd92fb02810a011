"""A small witness (C2SP tlog-witness): it cosigns a log's checkpoints only after checking growth.

:class:`Witness` keeps the last checkpoint it cosigned per log. It cosigns a newer one
only after verifying a consistency proof from the one it holds; it refuses a smaller
tree (rollback) and a different root for a size it has seen or a proof that does not
link the two (fork), keeping the two signed checkpoints as evidence. The cosignature
format itself, its signer and its checks live in :mod:`sovra_verify.cosignature`, which
auditors install without the gateway.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sovra.errors import BadRequest, ConfigError, NotFound, VerificationError
from sovra_verify._merkle import EMPTY_ROOT, verify_consistency
from sovra_verify.checkpoint import Checkpoint
from sovra_verify.cosignature import CosignatureSigner
from sovra_verify.note import MAX_NOTE_BYTES, MAX_SIGNATURES, NoteVerifier, split_signed_note
from sovra_verify.verify import verify_checkpoint

__all__ = [
    "MAX_CONSISTENCY_HASHES",
    "Inconsistent",
    "OldSizeConflict",
    "Rollback",
    "UnknownLog",
    "UntrustedCheckpoint",
    "Witness",
]

MAX_CONSISTENCY_HASHES = 63
"""tlog-witness: a client MUST NOT send more proof lines than this."""

_MAX_STATE_BYTES = 16 << 20


class UnknownLog(NotFound):
    """The checkpoint's origin is not a log this witness witnesses (HTTP 404)."""


class UntrustedCheckpoint(VerificationError):
    """The log's key did not sign the checkpoint, or its line does not verify (HTTP 403)."""

    status = 403
    code = "forbidden"


class OldSizeConflict(BadRequest):
    """The caller's old size is not the size this witness holds (HTTP 409).

    Attributes:
        size: the size of the last checkpoint this witness cosigned for the log (0 if
            none), which tlog-witness's 409 answer carries.
    """

    status = 409
    code = "conflict"

    def __init__(self, message: str, size: int) -> None:
        super().__init__(message)
        self.size = size


class Rollback(VerificationError):
    """The checkpoint is smaller than the one this witness holds (HTTP 400)."""

    status = 400
    code = "rollback"


class Inconsistent(VerificationError):
    """The checkpoint does not extend the held one: a fork or a bad proof (HTTP 422)."""

    status = 422
    code = "inconsistent"


@dataclass(frozen=True, slots=True)
class _Head:
    size: int
    root: bytes
    note: str


class Witness:
    """Keeps the last checkpoint per log; cosigns only consistent growth.

    State lives in two JSON files written in turn (*state* and *state* with ``.alt``
    appended), each overwritten in place and synced (``fdatasync``) before an answer goes
    out, each with a serial number and a SHA-256 of its content: a crash mid-write tears
    at most the copy being written, which then fails its check, and the other copy holds
    every head this witness answered for. One write and one sync per checkpoint, where a
    temporary file, its sync, a rename and the folder's sync took two of the disk's
    flushes (docs/benchmarks.md). Safe to share between threads.
    """

    def __init__(
        self,
        signer: CosignatureSigner,
        logs: Sequence[str | NoteVerifier],
        state: Path | None = None,
    ) -> None:
        """Witness the logs whose vkeys are *logs*, keeping heads in *state* (or memory).

        Raises:
            BadRequest: a log vkey is malformed, or two share an origin.
            ConfigError: the state file is unreadable or malformed.
        """
        self._signer = signer
        self._logs: dict[str, NoteVerifier] = {}
        for vkey in logs:
            v = vkey if isinstance(vkey, NoteVerifier) else NoteVerifier.from_vkey(vkey)
            if v.name in self._logs:
                raise BadRequest(f"two keys for the log {v.name!r}")
            self._logs[v.name] = v
        self._state = state
        self._lock = threading.Lock()
        self._serial = 0  # the serial of the newest copy of the state on disk
        # Which copy holds it (0: *state*, 1: the .alt one); the next write goes to the other.
        self._slot = 1
        self._heads: dict[str, _Head] = self._load()

    @property
    def vkey(self) -> str:
        """The witness's cosigning vkey."""
        return self._signer.vkey

    @property
    def origins(self) -> list[str]:
        """The origins of the logs this witness witnesses."""
        return list(self._logs)

    def head(self, origin: str) -> tuple[int, bytes] | None:
        """The size and root of the last checkpoint cosigned for *origin*, if any."""
        with self._lock:
            h = self._heads.get(origin)
        return None if h is None else (h.size, h.root)

    def verify(self, note: str) -> Checkpoint:
        """Check *note* is a checkpoint signed by a log this witness witnesses.

        Raises:
            UnknownLog: not a log this witness witnesses.
            BadRequest: a malformed note.
            UntrustedCheckpoint: the log's signature is missing or does not verify.
        """
        origin = _origin_of(note)
        log = self._logs.get(origin)
        if log is None:
            raise UnknownLog(f"this witness does not witness the log {origin[:200]!r}")
        try:
            return verify_checkpoint(note, log)
        except VerificationError as exc:
            raise UntrustedCheckpoint(exc.message) from None

    def checkpoint(self, origin: str) -> str | None:
        """The last checkpoint cosigned for *origin*, with the log's signature and this
        witness's cosignature (what tlog-witness's monitoring endpoint serves), if any."""
        with self._lock:
            h = self._heads.get(origin)
        return None if h is None else h.note

    def add_checkpoint(self, note: str, old_size: int, proof: Sequence[bytes]) -> str:
        """Verify *note*, check it extends the held head, store it and cosign it.

        The checks are C2SP tlog-witness's, in its order, each with its own error (and
        so its own HTTP status in ``sovra witness serve``); a refused checkpoint
        changes nothing.

        Args:
            note: the log's signed checkpoint (other signature lines are ignored).
            old_size: the size the caller believes the witness holds (0 at first).
            proof: the consistency proof from *old_size* to the note's size.

        Returns:
            *note* with this witness's cosignature appended.

        Raises:
            UnknownLog: the note's origin is not a log this witness witnesses (404).
            BadRequest: a malformed note or proof, or an *old_size* above the note's
                size (400).
            UntrustedCheckpoint: the log's key did not sign it, or its line does not
                verify (403).
            OldSizeConflict: *old_size* is not the held size, which it carries (409).
            Rollback: the note is smaller than the held checkpoint (400).
            Inconsistent: a size-0 note without the empty root, a proof from size 0, a
                different root for the held size, or a proof that does not link the
                held tree to the new one (422).
        """
        cp = self.verify(note)
        if isinstance(old_size, bool) or not isinstance(old_size, int) or old_size < 0:
            raise BadRequest(f"the old size must be a non-negative integer, not {old_size!r}")
        if len(proof) > MAX_CONSISTENCY_HASHES:
            raise BadRequest(f"a consistency proof has at most {MAX_CONSISTENCY_HASHES} hashes")
        origin = cp.origin
        with self._lock:
            held = self._heads.get(origin)
            held_size = 0 if held is None else held.size
            if old_size > cp.size:
                if old_size == held_size:
                    raise Rollback(
                        f"rollback refused: {origin} is at size {held_size} here, the note "
                        f"says {cp.size}"
                    )
                raise BadRequest(f"the old size {old_size} is above the checkpoint's {cp.size}")
            if old_size != held_size:
                raise OldSizeConflict(
                    f"this witness holds {origin} at size {held_size}, not {old_size}", held_size
                )
            if cp.size == 0 and cp.root_hash != EMPTY_ROOT:
                raise Inconsistent("a checkpoint of size 0 must carry the empty tree's root")
            if old_size == 0 and proof:
                raise Inconsistent("a consistency proof from size 0 must be empty")
            if held is not None and held.size == cp.size and held.root != cp.root_hash:
                raise Inconsistent(
                    f"fork detected: {origin} signed two roots for size {cp.size}; "
                    f"held checkpoint:\n{held.note}"
                )
            if held is not None and held.size > 0:
                try:
                    verify_consistency(held.size, cp.size, held.root, cp.root_hash, proof)
                except VerificationError as exc:
                    raise Inconsistent(
                        f"fork detected: size {cp.size} of {origin} is not consistent with the "
                        f"held size {held.size} ({exc.message}); held checkpoint:\n{held.note}"
                    ) from None
            cosigned = self._signer.cosign(note)
            held_note = self._log_signed(note, origin) + cosigned[len(note) :]
            self._heads[origin] = _Head(cp.size, cp.root_hash, held_note)
            self._save()
        return cosigned

    def _log_signed(self, note: str, origin: str) -> str:
        """*note* (a verified checkpoint of *origin*) with only the log's own signature
        lines (those this witness verified)."""
        text, lines = split_signed_note(note, MAX_SIGNATURES)
        log = self._logs[origin]
        own = [line for line, name, key_id, _ in lines if (name, key_id) == (log.name, log.key_id)]
        return text + "\n" + "".join(line + "\n" for line in own)

    def _slots(self) -> tuple[Path, Path]:
        assert self._state is not None
        return self._state, self._state.with_name(self._state.name + ".alt")

    def _load(self) -> dict[str, _Head]:
        """The heads of the newest intact copy of the state (none without a state file).

        Raises:
            ConfigError: a copy exists but none is intact.
        """
        if self._state is None:
            return {}
        found: list[tuple[int, int, dict[str, _Head]]] = []
        broken: list[str] = []
        for slot, path in enumerate(self._slots()):
            try:
                with path.open("rb") as f:
                    data = f.read(_MAX_STATE_BYTES + 1)
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise ConfigError(f"cannot read the witness state {path}: {exc}") from None
            try:
                serial, heads = _parse_state(data)
            except ValueError as exc:
                broken.append(f"{path}: {exc}")
                continue
            found.append((serial, slot, heads))
        if not found and broken:
            raise ConfigError(f"cannot read the witness state {'; '.join(broken)}")
        if not found:
            return {}
        self._serial, self._slot, heads = max(found, key=lambda f: f[0])
        return heads

    def _save(self) -> None:
        """Write the heads over the older copy and sync it (see the class docstring)."""
        if self._state is None:
            return
        serial = self._serial + 1
        slot = 1 - self._slot
        path = self._slots()[slot]
        heads = {
            o: {"size": h.size, "root": base64.b64encode(h.root).decode(), "note": h.note}
            for o, h in sorted(self._heads.items())
        }
        body = _state_bytes(serial, heads)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                length = os.fstat(fd).st_size
                created = length == 0
                # Never shorter than the file: a longer copy's tail would be left behind.
                padded = body + b" " * (max(length, -(-(len(body) + 1) // 4096) * 4096) - len(body))
                os.pwrite(fd, padded, 0)
                os.fdatasync(fd)
            finally:
                os.close(fd)
            if created:  # the new file's name must be on disk too
                dir_fd = os.open(path.parent, os.O_RDONLY)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)
        except OSError as exc:
            raise ConfigError(f"cannot write the witness state {path}: {exc}") from None
        self._serial, self._slot = serial, slot


def _state_bytes(serial: int, heads: dict[str, dict[str, object]]) -> bytes:
    """One copy of the state: its serial, its heads and the SHA-256 of both, as JSON.

    The canonical form the check is over, with the check added as its last member: one
    serialisation per checkpoint cosigned (a reader parses any JSON form).
    """
    canonical = _canonical(serial, heads)
    check = hashlib.sha256(canonical).hexdigest()
    return canonical[:-1] + b',"check":"' + check.encode() + b'"}\n'


def _canonical(serial: int, heads: object) -> bytes:
    body = {"serial": serial, "heads": heads}
    return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()


def _serial(raw: dict[str, object]) -> int:
    """The serial of a parsed copy, once its check matches (0: an earlier version's file).

    Raises:
        ValueError: a serial that is not a positive integer, or a check that does not
            match the content (a write cut short).
    """
    if "serial" not in raw and "check" not in raw:
        return 0
    serial = raw.get("serial")
    if isinstance(serial, bool) or not isinstance(serial, int) or serial < 1:
        raise ValueError("its serial is not a positive integer")
    want = hashlib.sha256(_canonical(serial, raw.get("heads"))).hexdigest()
    check = raw.get("check")
    if not isinstance(check, str) or not hmac.compare_digest(check, want):
        raise ValueError("its check does not match its content (a write cut short)")
    return serial


def _parse_state(data: bytes) -> tuple[int, dict[str, _Head]]:
    """The serial and heads of one copy of the state; a file written whole by the
    rename of earlier versions (no serial, no check) is serial 0.

    Raises:
        ValueError: oversized, not JSON, a check that does not match (a torn write), or
            heads that do not parse.
    """
    if len(data) > _MAX_STATE_BYTES:
        raise ValueError("too large")
    try:
        raw = json.loads(data)
        serial = _serial(raw)
        heads = {
            str(origin): _Head(
                int(h["size"]), base64.b64decode(h["root"], validate=True), str(h["note"])
            )
            for origin, h in raw["heads"].items()
        }
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(str(exc) or type(exc).__name__) from None
    return serial, heads


def _origin_of(note: str) -> str:
    if not isinstance(note, str) or len(note) > MAX_NOTE_BYTES:
        raise BadRequest("a checkpoint note must be text of bounded size")
    origin, sep, _ = note.partition("\n")
    if not sep or not origin:
        raise BadRequest("a checkpoint note starts with its origin line")
    return origin
