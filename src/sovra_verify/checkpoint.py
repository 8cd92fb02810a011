"""C2SP tlog-checkpoint note text (https://c2sp.org/tlog-checkpoint).

A checkpoint is the text of a signed note::

    <origin>
    <tree size, decimal, no leading zeros>
    <base64 of the 32-byte RFC 9162 root hash>
    [<extension line>]...

every line ending in a newline. :meth:`Checkpoint.parse` accepts exactly the texts
:meth:`Checkpoint.to_text` produces, so a checkpoint has one spelling and two parties
that agree on the values agree on the bytes that were signed.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from sovra_verify.errors import BadRequest

__all__ = ["MAX_CHECKPOINT_BYTES", "MAX_TREE_SIZE", "Checkpoint"]

MAX_CHECKPOINT_BYTES = 16 * 1024
MAX_TREE_SIZE = (1 << 64) - 1
_MAX_EXTENSIONS = 64
_SIZE = re.compile(r"0|[1-9][0-9]{0,19}")
_ROOT_B64_LEN = 44


def _check_line(line: object, what: str) -> str:
    if not isinstance(line, str) or not line:
        raise BadRequest(f"checkpoint {what} must be a non-empty string")
    for ch in line:
        if ch < " ":
            raise BadRequest(f"checkpoint {what} contains control character U+{ord(ch):04X}")
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest(f"checkpoint {what} is not valid UTF-8") from None
    return line


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A log's tree head: who (origin), how many leaves (size) and their root hash."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_line(self.origin, "origin")
        if isinstance(self.size, bool) or not isinstance(self.size, int):
            raise BadRequest("checkpoint size must be an integer")
        if not 0 <= self.size <= MAX_TREE_SIZE:
            raise BadRequest(f"checkpoint size {self.size} is outside 0..2**64-1")
        if not isinstance(self.root_hash, bytes) or len(self.root_hash) != 32:
            raise BadRequest("checkpoint root hash must be 32 bytes")
        if not isinstance(self.extensions, tuple):
            raise BadRequest("checkpoint extensions must be a tuple of lines")
        if len(self.extensions) > _MAX_EXTENSIONS:
            raise BadRequest(f"a checkpoint takes at most {_MAX_EXTENSIONS} extension lines")
        for ext in self.extensions:
            _check_line(ext, "extension line")
        if len(self.to_text().encode()) > MAX_CHECKPOINT_BYTES:
            raise BadRequest(f"checkpoint text would exceed {MAX_CHECKPOINT_BYTES} bytes")

    def to_text(self) -> str:
        """The note text: one newline-terminated line per field."""
        root = base64.b64encode(self.root_hash).decode("ascii")
        lines = [self.origin, str(self.size), root, *self.extensions]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Parse checkpoint note text, accepting only the canonical form.

        Raises:
            BadRequest: oversized, not newline-terminated, fewer than three lines, an
                empty line, a size with a sign, leading zeros or over 2**64-1, or a root
                that is not the canonical base64 of 32 bytes.
        """
        if not isinstance(text, str):
            raise BadRequest("checkpoint text must be a string")
        if len(text) > MAX_CHECKPOINT_BYTES:
            raise BadRequest(f"checkpoint text is over {MAX_CHECKPOINT_BYTES} bytes")
        if not text.endswith("\n"):
            raise BadRequest("checkpoint text must end in a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise BadRequest(f"checkpoint text has {len(lines)} lines; it needs at least 3")
        origin, size_text, root_text, *extensions = lines
        if not _SIZE.fullmatch(size_text):
            raise BadRequest(f"checkpoint size {size_text[:24]!r} is not canonical decimal")
        if len(root_text) != _ROOT_B64_LEN:
            raise BadRequest("checkpoint root hash is not 44 base64 characters")
        try:
            root = base64.b64decode(root_text.encode("ascii"), validate=True)
        except (UnicodeEncodeError, binascii.Error):
            raise BadRequest("checkpoint root hash is not valid base64") from None
        if len(root) != 32:
            raise BadRequest(f"checkpoint root hash decodes to {len(root)} bytes, not 32")
        if base64.b64encode(root).decode("ascii") != root_text:
            raise BadRequest("checkpoint root hash is not canonical base64")
        return cls(origin, int(size_text), root, tuple(extensions))
