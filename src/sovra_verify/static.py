"""Reading a log published as static C2SP tlog-tiles files: a bucket, a CDN, a folder.

A gateway can publish its log into an object store (``[log.tiles]``), from which any web
server serves ``<prefix>/checkpoint`` and ``<prefix>/tile/...``. :func:`static_log` reads
such a copy from an ``http(s)://`` URL prefix, or from a local folder holding the files
(a synced copy, a mounted bucket). It answers as a :class:`~sovra_verify.audit.LogSource`,
so :func:`~sovra_verify.audit.audit_log` replays it exactly as it replays a gateway: every
entry hashed, every tile recomputed, the checkpoint's signature checked against the key
the auditor holds. Nothing the files say is trusted.

A static copy publishes one checkpoint, the newest it covers (with the cosignatures it
carries, if any); the log size it states is that checkpoint's, so an audit of it proves
what it covers, and says nothing of entries the gateway holds but has not published yet.

A publisher may delete a partial tile once the full tile is there (C2SP tlog-tiles), so
one read mid-way, after a newer checkpoint replaced the one read first, may be gone: the
full tile is fetched instead and cut to the partial width (its first W hashes, or first W
entries, are the partial tile's), as the spec lets a client do. The audit checks those
bytes as it checks any.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sovra_verify._merkle import HASH_SIZE
from sovra_verify.errors import BadRequest, Denied, NotFound, SovraError, Unavailable
from sovra_verify.remote import MAX_ANSWER_BYTES, LogReader
from sovra_verify.tiles import parse_tile_path

__all__ = ["StaticFiles", "StaticFolder", "StaticSite", "static_log"]

CHECKPOINT = "checkpoint"


def _size_line(note: str, where: str) -> int:
    """The size a checkpoint note states (its second line), not yet verified."""
    lines = note.split("\n", 2)
    if len(lines) < 3 or not lines[1].isdigit():
        raise Unavailable(f"{where} is not a checkpoint note")
    return int(lines[1])


def _check_path(path: str) -> str:
    if path != CHECKPOINT:
        parse_tile_path(path)  # raises BadRequest for anything but a canonical tile path
    return path


class _StaticCopy:
    """What both kinds of copy answer, from the one file reader each has."""

    url: str

    def _file(self, path: str) -> bytes:
        raise NotImplementedError

    def checkpoint(self) -> str:
        """The checkpoint note the copy holds."""
        try:
            return self._file(CHECKPOINT).decode("utf-8")
        except UnicodeDecodeError:
            raise Unavailable(f"{self.url}/checkpoint is not UTF-8 text") from None

    def info(self) -> dict[str, Any]:
        """The size the copy's checkpoint states (the audit then checks that note)."""
        return {"log_size": _size_line(self.checkpoint(), f"{self.url}/checkpoint")}

    def checkpoints(self) -> list[str]:
        """None beside the newest: a static copy holds one checkpoint."""
        return []

    def cosigned_checkpoint(self) -> str:
        """The checkpoint, with the cosignature lines it carries."""
        return self.checkpoint()

    def log_file(self, path: str) -> bytes:
        """The bytes of a tile or entry bundle of the copy; a partial one no longer there
        is cut from its full tile."""
        try:
            return self._file(path)
        except (NotFound, Denied) as exc:  # a public bucket may answer 403 for a missing key
            gone: SovraError = exc
        if ".p/" not in path:
            raise gone
        level, _, width = parse_tile_path(path)
        try:
            full = self._file(path.split(".p/", 1)[0])
        except (NotFound, Denied):
            raise gone from None
        return _cut(full, level, width)


def _cut(full: bytes, level: int | None, width: int) -> bytes:
    """The first *width* hashes of a hash tile, or entries of a bundle (level None); the
    bytes as they are when they hold fewer (the audit then names what is wrong)."""
    if level is not None:
        return full[: width * HASH_SIZE]
    at = 0
    for _ in range(width):
        if at + 2 > len(full):
            return full
        at += 2 + int.from_bytes(full[at : at + 2], "big")
    return full[:at]


class StaticSite(_StaticCopy, LogReader):
    """A static copy of a log under an ``http(s)://`` URL prefix (a bucket, a CDN)."""

    def _file(self, path: str) -> bytes:
        return self._get("/" + _check_path(path))


class StaticFolder(_StaticCopy):
    """A static copy of a log in a local folder (``checkpoint`` and ``tile/`` in it).

    Raises:
        BadRequest: *folder* is not a folder.
    """

    def __init__(self, folder: Path) -> None:
        if not folder.is_dir():
            raise BadRequest(f"{folder} is not a folder of tlog-tiles files")
        self._root = folder
        self.url = str(folder)

    def _file(self, path: str) -> bytes:
        target = self._root.joinpath(*_check_path(path).split("/"))
        try:
            with target.open("rb") as f:
                data = f.read(MAX_ANSWER_BYTES + 1)
        except FileNotFoundError:
            raise NotFound(f"{target} is not there") from None
        except OSError as exc:
            raise Unavailable(f"cannot read {target}: {exc.strerror}") from None
        if len(data) > MAX_ANSWER_BYTES:
            raise Unavailable(f"{target} is larger than any tlog-tiles file")
        return data


class StaticFiles(_StaticCopy):
    """A static copy of a log read through *read*, which returns the bytes of a file by
    its path, or None when there is no such file (a store the copy was published into:
    ``sovra migrate`` audits its own copy this way, where no web server serves it yet).

    *where* names the copy in messages.
    """

    def __init__(self, read: Callable[[str], bytes | None], where: str) -> None:
        self._read = read
        self.url = where

    def _file(self, path: str) -> bytes:
        data = self._read(_check_path(path))
        if data is None:
            raise NotFound(f"{self.url} holds no {path}")
        if len(data) > MAX_ANSWER_BYTES:
            raise Unavailable(f"{path} in {self.url} is larger than any tlog-tiles file")
        return data


def static_log(source: str, *, timeout_s: float = 30.0) -> StaticSite | StaticFolder:
    """The static copy at *source*: an ``http(s)://`` URL prefix, or a local folder.

    Raises:
        BadRequest: neither an http(s) URL nor a folder.
    """
    if source.startswith(("http://", "https://")):
        return StaticSite(source, timeout_s=timeout_s)
    if "://" in source:
        raise BadRequest(f"a static log is an http(s):// URL prefix or a folder, not {source!r}")
    return StaticFolder(Path(os.path.expanduser(source)))
