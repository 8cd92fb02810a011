"""C2SP signed notes (https://c2sp.org/signed-note) with Ed25519 keys.

A note is a UTF-8 text ending in a newline, a blank line, then one signature line per
key: ``— <key name> <base64(4-byte key ID || signature)>`` (U+2014 em dash). A key is
known to a verifier by its *vkey* string ``<name>+<hex key ID>+<base64(0x01 || key)>``.

Opening a note fails closed: malformed input raises :class:`~sovra_verify.errors.BadRequest`,
and a note that no known key verifies, or that carries a bad signature from a known
key, raises :class:`~sovra_verify.errors.VerificationError`. Signatures from unknown keys
are ignored, as the specification requires, so witnesses can cosign.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Sequence

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from sovra_verify.errors import BadRequest, VerificationError

__all__ = [
    "ED25519_TYPE",
    "MAX_NOTE_BYTES",
    "MAX_SIGNATURES",
    "NoteSigner",
    "NoteVerifier",
    "check_key_name",
    "key_id",
    "open_note",
    "sign_note",
    "split_signed_note",
]

ED25519_TYPE = 0x01
# The spec asks verifiers to accept at least 16 signatures of up to ~5 kB each
# (post-quantum); 1 MiB and 100 lines leave room for that and bound the work.
MAX_NOTE_BYTES = 1 << 20
MAX_SIGNATURES = 100
_MAX_NAME_BYTES = 256
_SIG_PREFIX = "\u2014 "
_KEY_ID_HEX = re.compile(r"[0-9a-f]{8}")
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")


def _b64decode(text: str, what: str) -> bytes:
    """Decode standard padded base64, accepting only its canonical spelling."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise BadRequest(f"{what} is not valid base64") from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise BadRequest(f"{what} is not canonical base64")
    return raw


def _check_chars(text: str, what: str) -> bytes:
    """Return *text* as UTF-8 after refusing ASCII controls other than newline.

    Raises:
        BadRequest: not encodable as UTF-8 (lone surrogates) or a control character.
    """
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest(f"{what} is not valid UTF-8") from None
    bad = _CONTROL.search(text)
    if bad:
        raise BadRequest(f"{what} contains control character U+{ord(bad.group()):04X}")
    return data


def check_key_name(name: object) -> str:
    """Return *name* if it is a valid note key name.

    Names are non-empty UTF-8 without Unicode spaces, plus signs or control characters
    (the plus sign separates the parts of a vkey, the space those of a signature line).

    Raises:
        BadRequest: it is not.
    """
    if not isinstance(name, str) or not name:
        raise BadRequest("a key name must be a non-empty string")
    data = _check_chars(name, "key name")
    if len(data) > _MAX_NAME_BYTES:
        raise BadRequest(f"key name is {len(data)} bytes, over {_MAX_NAME_BYTES}")
    for ch in name:
        if ch.isspace() or ch == "+":
            raise BadRequest(f"key name {name!r} contains U+{ord(ch):04X}")
    return name


def key_id(name: str, public_key: Ed25519PublicKey) -> int:
    """The recommended key ID: ``SHA-256(name || 0x0A || 0x01 || key)[:4]``, big-endian.

    Raises:
        BadRequest: *name* is not a valid key name.
    """
    check_key_name(name)
    raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([ED25519_TYPE]) + raw).digest()
    return int.from_bytes(digest[:4], "big")


class NoteVerifier:
    """A known Ed25519 key: the name and key ID signature lines must carry, and the key."""

    __slots__ = ("_key", "_key_id", "_name", "_raw")

    def __init__(self, name: str, public_key: Ed25519PublicKey) -> None:
        """Make a verifier for *public_key* under *name*.

        Raises:
            BadRequest: *name* is not a valid key name.
        """
        self._name = check_key_name(name)
        self._key = public_key
        self._raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
        self._key_id = key_id(name, public_key)

    @classmethod
    def from_vkey(cls, vkey: str) -> NoteVerifier:
        """Parse a verifier key string ``<name>+<hex key ID>+<base64(0x01 || key)>``.

        Raises:
            BadRequest: malformed, not Ed25519, or the key ID does not match the key.
        """
        if not isinstance(vkey, str) or len(vkey) > _MAX_NAME_BYTES + 64:
            raise BadRequest("a verifier key must be a string of bounded length")
        # The name cannot hold "+" but base64 can, so split at the first two only.
        parts = vkey.split("+", 2)
        if len(parts) != 3:
            raise BadRequest("a verifier key has three parts joined by '+'")
        name, id_hex, key_b64 = parts
        check_key_name(name)
        if not _KEY_ID_HEX.fullmatch(id_hex):
            raise BadRequest("a verifier key's ID must be 8 lower-case hex digits")
        raw = _b64decode(key_b64, "verifier key material")
        if not raw or raw[0] != ED25519_TYPE:
            raise BadRequest("verifier key is not an Ed25519 (type 0x01) key")
        if len(raw) != 33:
            raise BadRequest(f"an Ed25519 verifier key holds 32 bytes, not {len(raw) - 1}")
        verifier = cls(name, Ed25519PublicKey.from_public_bytes(raw[1:]))
        if verifier.key_id != int(id_hex, 16):
            raise BadRequest(f"verifier key ID {id_hex} does not match its name and key")
        return verifier

    @property
    def name(self) -> str:
        """The key name."""
        return self._name

    @property
    def key_id(self) -> int:
        """The 32-bit key ID."""
        return self._key_id

    @property
    def public_key(self) -> Ed25519PublicKey:
        """The Ed25519 public key."""
        return self._key

    @property
    def vkey(self) -> str:
        """This key as a verifier key string."""
        material = base64.b64encode(bytes([ED25519_TYPE]) + self._raw).decode("ascii")
        return f"{self._name}+{self._key_id:08x}+{material}"

    def verify(self, message: bytes, signature: bytes) -> None:
        """Check an Ed25519 *signature* over *message*.

        Raises:
            VerificationError: it does not verify.
        """
        try:
            self._key.verify(signature, message)
        except InvalidSignature:
            raise VerificationError(
                f"signature by key {self._name}+{self._key_id:08x} does not verify"
            ) from None

    def _same_key(self, other: NoteVerifier) -> bool:
        return self._raw == other._raw

    def __repr__(self) -> str:
        return f"NoteVerifier({self.vkey!r})"


class NoteSigner:
    """An Ed25519 private key that signs notes under a key name."""

    __slots__ = ("_key", "_verifier")

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        """Make a signer for *private_key* under *name*.

        Raises:
            BadRequest: *name* is not a valid key name.
        """
        self._key = private_key
        self._verifier = NoteVerifier(name, private_key.public_key())

    @property
    def name(self) -> str:
        """The key name."""
        return self._verifier.name

    @property
    def key_id(self) -> int:
        """The 32-bit key ID."""
        return self._verifier.key_id

    @property
    def public_key(self) -> Ed25519PublicKey:
        """The Ed25519 public key."""
        return self._verifier.public_key

    @property
    def vkey(self) -> str:
        """The verifier key string others use to check this signer's notes."""
        return self._verifier.vkey

    @property
    def verifier(self) -> NoteVerifier:
        """The matching verifier."""
        return self._verifier

    def sign(self, message: bytes) -> bytes:
        """A raw Ed25519 signature over *message* (callers MUST domain-separate it)."""
        return self._key.sign(message)

    def __repr__(self) -> str:
        return f"NoteSigner({self.name!r}, key_id={self.key_id:08x})"


def _check_text(text: str) -> bytes:
    if not isinstance(text, str):
        raise BadRequest("note text must be a string")
    data = _check_chars(text, "note text")
    if not text.endswith("\n"):
        raise BadRequest("note text must end in a newline")
    return data


def sign_note(text: str, signers: Sequence[NoteSigner]) -> str:
    """Sign *text* with every signer and return the encoded note.

    Raises:
        BadRequest: no signers, two signers with the same name and key ID, or a text
            that is not newline-terminated, is not UTF-8, holds control characters
            or would make a note over :data:`MAX_NOTE_BYTES`.
    """
    data = _check_text(text)
    if not signers:
        raise BadRequest("a note needs at least one signer")
    if len(signers) > MAX_SIGNATURES:
        raise BadRequest(f"a note takes at most {MAX_SIGNATURES} signatures")
    seen: set[tuple[str, int]] = set()
    lines = []
    for signer in signers:
        ident = (signer.name, signer.key_id)
        if ident in seen:
            raise BadRequest(f"two signers share key {signer.name}+{signer.key_id:08x}")
        seen.add(ident)
        blob = signer.key_id.to_bytes(4, "big") + signer.sign(data)
        lines.append(f"{_SIG_PREFIX}{signer.name} {base64.b64encode(blob).decode('ascii')}\n")
    note = text + "\n" + "".join(lines)
    if len(note.encode()) > MAX_NOTE_BYTES:
        raise BadRequest(f"signed note would exceed {MAX_NOTE_BYTES} bytes")
    return note


def _index_verifiers(verifiers: Sequence[NoteVerifier]) -> dict[tuple[str, int], NoteVerifier]:
    known: dict[tuple[str, int], NoteVerifier] = {}
    for v in verifiers:
        ident = (v.name, v.key_id)
        other = known.setdefault(ident, v)
        if not other._same_key(v):
            # Which one a line means would be a guess; refuse rather than pick.
            raise BadRequest(f"two different verifier keys are named {v.name}+{v.key_id:08x}")
    return known


def _decode_note(note: object) -> str:
    """The note as text, after the size, UTF-8 and control-character checks."""
    # Check the size before decoding so an oversized note costs nothing to refuse.
    if isinstance(note, bytes | bytearray):
        if len(note) > MAX_NOTE_BYTES:
            raise BadRequest(f"note is over {MAX_NOTE_BYTES} bytes")
        try:
            note = bytes(note).decode("utf-8")
        except UnicodeDecodeError:
            raise BadRequest("note is not valid UTF-8") from None
    if not isinstance(note, str):
        raise BadRequest("a note must be text")
    if len(note) > MAX_NOTE_BYTES or len(_check_chars(note, "note")) > MAX_NOTE_BYTES:
        raise BadRequest(f"note is over {MAX_NOTE_BYTES} bytes")
    return note


def split_signed_note(body: str, max_lines: int) -> tuple[str, list[tuple[str, str, int, bytes]]]:
    """Split a decoded note into its text and its parsed signature lines.

    Each line comes back as ``(line, key name, key ID, signature)``; nothing is verified.

    Raises:
        BadRequest: no blank line before the signatures, no final newline, more than
            *max_lines* signature lines, or a malformed line.
    """
    split = body.rfind("\n\n")
    if split < 0:
        raise BadRequest("note has no blank line before its signatures")
    text, block = body[: split + 1], body[split + 2 :]
    if not block or not block.endswith("\n"):
        raise BadRequest("note must end with newline-terminated signature lines")
    raw_lines = block[:-1].split("\n")
    if len(raw_lines) > max_lines:
        raise BadRequest(f"note has {len(raw_lines)} signature lines, over {max_lines}")
    lines = []
    for n, line in enumerate(raw_lines, 1):
        if not line.startswith(_SIG_PREFIX):
            raise BadRequest(f"signature line {n} does not start with an em dash and space")
        name, sep, sig_b64 = line[len(_SIG_PREFIX) :].partition(" ")
        if not sep:
            raise BadRequest(f"signature line {n} has no signature after the key name")
        check_key_name(name)
        blob = _b64decode(sig_b64, f"signature line {n}")
        if len(blob) < 5:
            raise BadRequest(f"signature line {n} is too short to hold a key ID and signature")
        lines.append((line, name, int.from_bytes(blob[:4], "big"), blob[4:]))
    return text, lines


def open_note(note: str | bytes, verifiers: Sequence[NoteVerifier]) -> tuple[str, list[str]]:
    """Parse *note*, check its signatures, and return its text and the verified key names.

    Signature lines from keys not in *verifiers* (by name and key ID) are ignored.
    A repeated line from one key is checked once.

    Raises:
        BadRequest: oversized, not UTF-8, control characters, no newline at the end,
            no blank line before the signatures, a malformed signature line, more than
            :data:`MAX_SIGNATURES` signatures, or ambiguous verifiers.
        VerificationError: a known key's signature does not verify, or none verifies.
    """
    known = _index_verifiers(verifiers)
    text, lines = split_signed_note(_decode_note(note), MAX_SIGNATURES)
    message = text.encode("utf-8")
    verified: list[str] = []
    checked: set[tuple[str, int]] = set()
    for _, name, key_id, signature in lines:
        ident = (name, key_id)
        verifier = known.get(ident)
        if verifier is None or ident in checked:
            continue
        checked.add(ident)
        # One bad signature from a known key condemns the whole note.
        verifier.verify(message, signature)
        verified.append(name)
    if not verified:
        raise VerificationError("no known key signed this note")
    return text, verified
