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
import json
import os
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sovra.errors import BadRequest, ConfigError, VerificationError
from sovra_verify._merkle import verify_consistency
from sovra_verify.checkpoint import Checkpoint
from sovra_verify.cosignature import CosignatureSigner
from sovra_verify.note import MAX_NOTE_BYTES, NoteVerifier
from sovra_verify.verify import verify_checkpoint

__all__ = ["Witness"]

_MAX_STATE_BYTES = 16 << 20


@dataclass(frozen=True, slots=True)
class _Head:
    size: int
    root: bytes
    note: str


class Witness:
    """Keeps the last checkpoint per log; cosigns only consistent growth.

    State lives in a JSON file written atomically (temporary file, fsync, rename), so a
    crash leaves either the old or the new head, never a mix. Safe to share between
    threads.
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
        self._heads: dict[str, _Head] = self._load()

    @property
    def vkey(self) -> str:
        """The witness's cosigning vkey."""
        return self._signer.vkey

    def head(self, origin: str) -> tuple[int, bytes] | None:
        """The size and root of the last checkpoint cosigned for *origin*, if any."""
        with self._lock:
            h = self._heads.get(origin)
        return None if h is None else (h.size, h.root)

    def verify(self, note: str) -> Checkpoint:
        """Check *note* is a checkpoint signed by a log this witness witnesses.

        Raises:
            BadRequest: unknown log or malformed note.
            VerificationError: the log's signature does not verify.
        """
        origin = _origin_of(note)
        log = self._logs.get(origin)
        if log is None:
            raise BadRequest(f"this witness does not witness the log {origin!r}")
        return verify_checkpoint(note, log)

    def add_checkpoint(self, note: str, old_size: int, proof: Sequence[bytes]) -> str:
        """Verify *note*, check it extends the held head, store it and cosign it.

        Args:
            note: the log's signed checkpoint.
            old_size: the size the caller believes the witness holds (0 at first).
            proof: the consistency proof from *old_size* to the note's size.

        Returns:
            *note* with this witness's cosignature appended.

        Raises:
            BadRequest: unknown log, malformed note, or *old_size* is not the held size
                (the message names the held size, so the caller can retry).
            VerificationError: bad log signature, a rollback, or a fork (a different
                root at a held size, or a proof that does not link the two trees).
        """
        cp = self.verify(note)
        origin = cp.origin
        with self._lock:
            held = self._heads.get(origin)
            held_size = 0 if held is None else held.size
            if held is not None and cp.size < held.size:
                raise VerificationError(
                    f"rollback refused: {origin} is at size {held.size} here, the note says "
                    f"{cp.size}"
                )
            if old_size != held_size:
                raise BadRequest(f"this witness holds {origin} at size {held_size}, not {old_size}")
            if held is not None and held.size == cp.size and held.root != cp.root_hash:
                raise VerificationError(
                    f"fork detected: {origin} signed two roots for size {cp.size}; "
                    f"held checkpoint:\n{held.note}"
                )
            if held is not None and held.size > 0 and cp.size > held.size:
                try:
                    verify_consistency(held.size, cp.size, held.root, cp.root_hash, proof)
                except VerificationError as exc:
                    raise VerificationError(
                        f"fork detected: size {cp.size} of {origin} is not consistent with the "
                        f"held size {held.size} ({exc.message}); held checkpoint:\n{held.note}"
                    ) from None
            elif proof and not (held is not None and held.size == cp.size):
                raise BadRequest("a consistency proof from the empty tree must be empty")
            cosigned = self._signer.cosign(note)
            self._heads[origin] = _Head(cp.size, cp.root_hash, note)
            self._save()
        return cosigned

    def _load(self) -> dict[str, _Head]:
        if self._state is None or not self._state.exists():
            return {}
        try:
            data = self._state.read_bytes()
            if len(data) > _MAX_STATE_BYTES:
                raise ConfigError(f"witness state {self._state} is too large")
            raw = json.loads(data)
            return {
                origin: _Head(
                    int(h["size"]), base64.b64decode(h["root"], validate=True), str(h["note"])
                )
                for origin, h in raw["heads"].items()
            }
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ConfigError(f"cannot read the witness state {self._state}: {exc}") from None

    def _save(self) -> None:
        if self._state is None:
            return
        body = {
            "heads": {
                o: {"size": h.size, "root": base64.b64encode(h.root).decode(), "note": h.note}
                for o, h in sorted(self._heads.items())
            }
        }
        directory = self._state.parent
        try:
            fd, tmp = tempfile.mkstemp(dir=directory, prefix=".witness-")
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(body, f, indent=1)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self._state)
        except OSError as exc:
            raise ConfigError(f"cannot write the witness state {self._state}: {exc}") from None


def _origin_of(note: str) -> str:
    if not isinstance(note, str) or len(note) > MAX_NOTE_BYTES:
        raise BadRequest("a checkpoint note must be text of bounded size")
    origin, sep, _ = note.partition("\n")
    if not sep or not origin:
        raise BadRequest("a checkpoint note starts with its origin line")
    return origin
