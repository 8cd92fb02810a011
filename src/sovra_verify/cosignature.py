"""Witness cosignatures: C2SP tlog-cosignature (https://c2sp.org/tlog-cosignature).

A cosignature is one more signature line on a checkpoint note. Its key ID is
``SHA-256(name || "\\n" || 0x04 || key)[:4]`` and its signature is a timestamped
Ed25519 signature over::

    cosignature/v1
    time <POSIX seconds>
    <the checkpoint text, every line of it>

:func:`verify_cosignatures` checks that a quorum of known witnesses cosigned a
checkpoint; :func:`find_split_view` spots two signed checkpoints of one size with
different roots, wherever they came from. The witness that keeps state and cosigns
only consistent growth is :class:`sovra.ledger.Witness`.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Callable, Iterable, Sequence

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from sovra_verify.checkpoint import Checkpoint
from sovra_verify.errors import BadRequest, ConfigError, VerificationError
from sovra_verify.note import MAX_NOTE_BYTES, NoteVerifier, check_key_name, open_note
from sovra_verify.verify import verify_checkpoint

__all__ = [
    "COSIGNATURE_TYPE",
    "CosignatureSigner",
    "CosignatureVerifier",
    "find_split_view",
    "verify_cosignatures",
]

COSIGNATURE_TYPE = 0x04
_HEADER = b"cosignature/v1\n"
_MAX_TIMESTAMP = (1 << 63) - 1


def _now_s() -> int:
    return int(time.time())


def _cosigned_message(text: bytes, timestamp: int) -> bytes:
    return _HEADER + b"time %d\n" % timestamp + text


def _cosignature_key_id(name: str, raw: bytes) -> int:
    check_key_name(name)
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([COSIGNATURE_TYPE]) + raw).digest()
    return int.from_bytes(digest[:4], "big")


class CosignatureVerifier(NoteVerifier):
    """A witness's Ed25519 cosigning key (signature type 0x04), usable with open_note.

    Its :meth:`verify` takes the note text and the ``timestamp || signature`` blob of
    a signature line, so :func:`~sovra_verify.note.open_note` checks cosignatures and
    log signatures in one pass.
    """

    __slots__ = ()

    def __init__(self, name: str, public_key: Ed25519PublicKey) -> None:
        """Make a verifier for the witness *public_key* under *name*.

        Raises:
            BadRequest: *name* is not a valid key name.
        """
        super().__init__(name, public_key)
        self._key_id = _cosignature_key_id(name, self._raw)

    @classmethod
    def from_vkey(cls, vkey: str) -> CosignatureVerifier:
        """Parse ``<name>+<hex key ID>+<base64(0x04 || key)>``.

        Raises:
            BadRequest: malformed, not a type 0x04 key, or a key ID that does not match.
        """
        if not isinstance(vkey, str) or len(vkey) > 400:
            raise BadRequest("a witness key must be a string of bounded length")
        parts = vkey.split("+", 2)
        if len(parts) != 3:
            raise BadRequest("a witness key has three parts joined by '+'")
        name, id_hex, material = parts
        try:
            raw = base64.b64decode(material.encode("ascii"), validate=True)
        except (UnicodeEncodeError, ValueError):
            raise BadRequest("witness key material is not valid base64") from None
        if len(raw) != 33 or raw[0] != COSIGNATURE_TYPE:
            raise BadRequest("a witness key is type 0x04 followed by a 32-byte Ed25519 key")
        if base64.b64encode(raw).decode("ascii") != material:
            raise BadRequest("witness key material is not canonical base64")
        verifier = cls(name, Ed25519PublicKey.from_public_bytes(raw[1:]))
        if len(id_hex) != 8 or f"{verifier.key_id:08x}" != id_hex:
            raise BadRequest(f"witness key ID {id_hex!r} does not match its name and key")
        return verifier

    @property
    def vkey(self) -> str:
        """This key as a vkey string with signature type 0x04."""
        material = base64.b64encode(bytes([COSIGNATURE_TYPE]) + self._raw).decode("ascii")
        return f"{self._name}+{self._key_id:08x}+{material}"

    def verify(self, message: bytes, signature: bytes) -> None:
        """Check a ``timestamp || Ed25519 signature`` blob over the cosigned *message*.

        Raises:
            VerificationError: wrong length, timestamp over 2^63 - 1, or a bad signature.
        """
        if len(signature) != 8 + 64:
            raise VerificationError(
                f"cosignature by {self._name} is {len(signature)} bytes, not 72"
            )
        timestamp = int.from_bytes(signature[:8], "big")
        if timestamp > _MAX_TIMESTAMP:
            raise VerificationError(f"cosignature by {self._name} has an impossible timestamp")
        try:
            self._key.verify(signature[8:], _cosigned_message(message, timestamp))
        except InvalidSignature:
            raise VerificationError(
                f"cosignature by {self._name}+{self._key_id:08x} does not verify"
            ) from None

    def __repr__(self) -> str:
        return f"CosignatureVerifier({self.vkey!r})"


class CosignatureSigner:
    """A witness's Ed25519 key, cosigning checkpoint notes under a name."""

    __slots__ = ("_clock", "_key", "_verifier")

    def __init__(
        self, name: str, private_key: Ed25519PrivateKey, clock: Callable[[], int] = _now_s
    ) -> None:
        """Make a cosigner; *clock* gives POSIX seconds for the cosignature timestamps.

        Raises:
            BadRequest: *name* is not a valid key name.
        """
        self._key = private_key
        self._clock = clock
        self._verifier = CosignatureVerifier(name, private_key.public_key())

    @property
    def name(self) -> str:
        """The witness's key name."""
        return self._verifier.name

    @property
    def vkey(self) -> str:
        """The vkey (type 0x04) clients configure to trust this witness."""
        return self._verifier.vkey

    @property
    def verifier(self) -> CosignatureVerifier:
        """The matching verifier."""
        return self._verifier

    def cosign(self, note: str) -> str:
        """*note* with this witness's cosignature line appended.

        The caller (:class:`Witness`) MUST have checked the checkpoint first: the line
        states that this is the largest consistent tree the witness has seen.

        Raises:
            BadRequest: the note is malformed or the clock is not POSIX seconds.
            ConfigError: the clock returned something that is not a timestamp.
        """
        text = _note_text(note)
        timestamp = self._clock()
        if isinstance(timestamp, bool) or not isinstance(timestamp, int):
            raise ConfigError(f"the witness clock returned {timestamp!r}, not POSIX seconds")
        if not 0 <= timestamp <= _MAX_TIMESTAMP:
            raise ConfigError(f"the witness clock returned {timestamp}, out of range")
        signature = self._key.sign(_cosigned_message(text.encode(), timestamp))
        blob = self._verifier.key_id.to_bytes(4, "big") + timestamp.to_bytes(8, "big") + signature
        line = f"\u2014 {self.name} {base64.b64encode(blob).decode('ascii')}\n"
        if len(note.encode()) + len(line.encode()) > MAX_NOTE_BYTES:
            raise BadRequest("the cosigned note would be too large")
        return note + line


def _note_text(note: str) -> str:
    if not isinstance(note, str) or len(note) > MAX_NOTE_BYTES:
        raise BadRequest("a note must be text of bounded size")
    split = note.rfind("\n\n")
    if split < 0:
        raise BadRequest("note has no blank line before its signatures")
    return note[: split + 1]


def verify_cosignatures(
    note: str | bytes,
    log_vkey: str | NoteVerifier,
    witnesses: Sequence[str | CosignatureVerifier],
    *,
    quorum: int,
) -> tuple[Checkpoint, list[str]]:
    """Check a checkpoint's log signature and that *quorum* known witnesses cosigned it.

    Returns:
        The checkpoint and the names of the witnesses whose cosignatures verified.

    Raises:
        BadRequest: malformed note, keys or quorum.
        VerificationError: the log did not sign it, a known witness's line is bad, or
            fewer than *quorum* witnesses cosigned.
    """
    log = log_vkey if isinstance(log_vkey, NoteVerifier) else NoteVerifier.from_vkey(log_vkey)
    known = [
        w if isinstance(w, CosignatureVerifier) else CosignatureVerifier.from_vkey(w)
        for w in witnesses
    ]
    if not 0 < quorum <= len(known):
        raise BadRequest(f"a quorum of {quorum} out of {len(known)} witnesses is not possible")
    checkpoint = verify_checkpoint(note, log)
    _, names = open_note(note, [log, *known])
    cosigned = [n for n in names if any(w.name == n for w in known)]
    if not cosigned:
        raise VerificationError(
            f"checkpoint at size {checkpoint.size} carries no cosignature by the "
            f"{len(known)} given witnesses ({quorum} required): its log published it "
            "without them"
        )
    if len(cosigned) < quorum:
        raise VerificationError(
            f"checkpoint at size {checkpoint.size} has {len(cosigned)} of the "
            f"{quorum} witness cosignatures required"
        )
    return checkpoint, cosigned


def find_split_view(notes: Iterable[str | bytes], log_vkey: str | NoteVerifier) -> None:
    """Raise if two validly signed checkpoints of one size carry different roots.

    Notes that do not verify are skipped: only the log's own signatures make a split
    view evidence against the log.

    Raises:
        VerificationError: naming the size and both roots.
    """
    log = log_vkey if isinstance(log_vkey, NoteVerifier) else NoteVerifier.from_vkey(log_vkey)
    seen: dict[int, bytes] = {}
    for note in notes:
        try:
            cp = verify_checkpoint(note, log)
        except (BadRequest, VerificationError):
            continue
        other = seen.setdefault(cp.size, cp.root_hash)
        if other != cp.root_hash:
            raise VerificationError(
                f"split view: the log signed two roots for size {cp.size}: "
                f"{base64.b64encode(other).decode()} and {base64.b64encode(cp.root_hash).decode()}"
            )
