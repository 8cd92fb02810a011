"""Where the log's tiles are published as static files: a folder, or an S3 bucket.

A :class:`TileStore` holds the C2SP tlog-tiles files of one log under their spec paths
(``checkpoint``, ``tile/<L>/<N>[.p/<W>]``, ``tile/entries/<N>[.p/<W>]``), so that a web
server, a CDN or the bucket's own HTTP endpoint serves the log to any tlog-tiles client
with no sovra code. Two kinds of file, two kinds of write:

- a tile or an entry bundle never changes for its path (a partial tile names its width),
  so it is written once (:meth:`TileStore.put_once`): an object already there with the
  same bytes is left as it is, one with other bytes is an
  :class:`~sovra.errors.IntegrityError` naming it (altered in the store, or another log's);
- the checkpoint is replaced, by compare-and-swap (:meth:`TileStore.swap_checkpoint`):
  two publishers (replicas) never move it back to a smaller tree;
- a partial tile is removed (:meth:`TileStore.delete`) once its full tile is there and
  the checkpoint no longer names it (the publisher decides when: see
  :mod:`sovra.ledger.tiles_publish`); :meth:`TileStore.partials` finds them.

The S3 store writes with ``If-None-Match: *`` and ``If-Match: <etag>`` and sets each
object's ``Cache-Control`` (a year and ``immutable`` for tiles, ``no-cache`` for the
checkpoint), so a CDN in front of the bucket caches what may be cached. Its failures are
the blob stores' (:func:`sovra.store.s3.s3_failure`): :class:`~sovra.errors.Unavailable`
for an endpoint that cannot be reached, :class:`~sovra.errors.ConfigError` for refused
credentials, a missing bucket or a denied write.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import os
import secrets
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

from sovra.errors import BadRequest, ConfigError, IntegrityError
from sovra.store.s3 import S3Location, s3_call, s3_client, sse_arguments
from sovra_verify.tiles import parse_tile_path

__all__ = [
    "CHECKPOINT",
    "IMMUTABLE",
    "FolderTileStore",
    "S3TileStore",
    "TileStore",
]

CHECKPOINT = "checkpoint"
IMMUTABLE = "public, max-age=31536000, immutable"
_REVALIDATE = "no-cache"
_MAX_FILE_BYTES = 64 << 20  # an entry bundle: 256 entries of at most 64 KiB
_DELETE_BATCH = 1000  # the most keys one S3 DeleteObjects request takes
_T = TypeVar("_T")


class TileStore(Protocol):
    """The static files of one tiled log."""

    @property
    def where(self) -> str:
        """The folder or ``s3://bucket/prefix``, for messages."""
        ...

    @property
    def parallel(self) -> int:
        """How many writes are worth running at once (1: one after the other)."""
        ...

    def put_once(self, path: str, data: bytes, *, repair: bool = False) -> bool:
        """Write the immutable file *path*; True if written, False if it was there already.

        MUST NOT change a file already there with the same bytes. With *repair*, a file
        with other bytes is replaced (the log's own bytes are the true ones).

        Raises:
            IntegrityError: a file with other bytes is there (without *repair*).
            Unavailable: the store cannot be reached; nothing is known to be written.
            ConfigError: the store refuses the write.
        """
        ...

    def get(self, path: str) -> bytes | None:
        """The bytes at *path*, or None when there is no such file.

        Raises:
            Unavailable: the store cannot be reached.
            ConfigError: the store refuses the read.
        """
        ...

    def swap_checkpoint(self, update: Callable[[bytes | None], bytes | None]) -> bool:
        """Replace the checkpoint with ``update(current)`` unless it returns None; True if
        replaced. MUST be atomic against other writers: if another one replaced the
        checkpoint meanwhile, *update* is called again with the new one.

        Raises:
            Unavailable: the store cannot be reached.
            ConfigError: the store refuses the write, or the checkpoint kept changing.
        """
        ...

    def partials(self, full: str | None = None) -> list[str]:
        """The paths of the partial tiles and bundles the store holds: those of the full
        tile or bundle *full* (``<full>.p/<W>``), or every one. Anything else is left out.

        Raises:
            Unavailable: the store cannot be reached.
            ConfigError: the store refuses the listing.
        """
        ...

    def delete(self, paths: Sequence[str]) -> None:
        """Remove the files *paths* (partial tiles and bundles); one not there is no
        error. MUST NOT be asked to remove the checkpoint.

        Raises:
            Unavailable: the store cannot be reached.
            ConfigError: the store refuses the removal.
        """
        ...

    def close(self) -> None:
        """Release connections; calling it twice is harmless."""
        ...


def _partial(path: str) -> bool:
    """Whether *path* is the canonical path of a partial tile or bundle."""
    if ".p/" not in path:
        return False
    try:
        parse_tile_path(path)
    except BadRequest:
        return False
    return True


def _not_checkpoint(path: str) -> str:
    if path == CHECKPOINT:
        raise ConfigError("the checkpoint is replaced, never deleted")
    return path


def _differs(where: str, path: str) -> IntegrityError:
    return IntegrityError(
        f"{where} holds other bytes at {path} than the log: altered there, or another log's "
        "files; `sovra log publish-tiles --repair` writes the log's own"
    )


class FolderTileStore:
    """The log's files in a folder (the embedded default): serve it with any web server."""

    def __init__(self, root: Path, *, fsync: bool = True) -> None:
        """Use (and make) the folder *root*.

        Raises:
            ConfigError: it cannot be made or is not a folder.
        """
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot make the tile folder {root}: {exc.strerror}") from None
        if not root.is_dir():
            raise ConfigError(f"the tile folder {root} is not a folder")
        self._root = root
        self._fsync = fsync
        self._unsynced: set[Path] = set()  # folders that got new names since the last sync
        self._unsynced_lock = threading.Lock()

    @property
    def where(self) -> str:
        """The folder."""
        return str(self._root)

    @property
    def parallel(self) -> int:
        """One write at a time: a local disk gains nothing from more."""
        return 1

    def _path(self, path: str) -> Path:
        parts = path.split("/")
        if not path or any(p in ("", ".", "..") for p in parts):
            raise ConfigError(f"{path!r} is not a tile path")
        return self._root.joinpath(*parts)

    def _temporary(self, target: Path, data: bytes) -> Path:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
        with tmp.open("xb") as f:
            f.write(data)
            if self._fsync:
                os.fsync(f.fileno())
        return tmp

    def put_once(self, path: str, data: bytes, *, repair: bool = False) -> bool:
        """Write *path* once (see :meth:`TileStore.put_once`); a hard link makes it
        appear whole, and never over a file already there."""
        target = self._path(path)
        try:
            tmp = self._temporary(target, data)
            try:
                os.link(tmp, target)
                with self._unsynced_lock:
                    self._unsynced.update(target.parents[: len(Path(path).parts)])
            except FileExistsError:
                if self.get(path) == data:
                    return False
                if not repair:
                    raise _differs(self.where, path) from None
                os.replace(tmp, target)
            finally:
                tmp.unlink(missing_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot write {target}: {exc.strerror}") from None
        return True

    def get(self, path: str) -> bytes | None:
        """The bytes of *path*, None if it is not there."""
        try:
            with self._path(path).open("rb") as f:
                return f.read(_MAX_FILE_BYTES + 1)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ConfigError(f"cannot read {self._path(path)}: {exc.strerror}") from None

    def swap_checkpoint(self, update: Callable[[bytes | None], bytes | None]) -> bool:
        """Replace the checkpoint under an exclusive lock of the folder's lock file."""
        target = self._path(CHECKPOINT)
        try:
            with (self._root / ".checkpoint.lock").open("a") as lock:
                fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
                new = update(self.get(CHECKPOINT))
                if new is None:
                    return False
                if self._fsync:  # the files it covers first, then the checkpoint
                    self._sync_folders()
                tmp = self._temporary(target, new)
                os.replace(tmp, target)
                if self._fsync:
                    self._sync_folders()
                return True
        except OSError as exc:
            raise ConfigError(f"cannot write {target}: {exc.strerror}") from None

    def partials(self, full: str | None = None) -> list[str]:
        """The partial files under ``<full>.p/`` (or under ``tile/``), by their paths."""
        if full is not None:
            folders = [self._path(full + ".p")]
        else:
            folders = sorted(self._root.joinpath("tile").rglob("*.p"))
        found = []
        for folder in folders:
            try:
                names = sorted(entry.name for entry in os.scandir(folder) if entry.is_file())
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise ConfigError(f"cannot list {folder}: {exc.strerror}") from None
            base = folder.relative_to(self._root).as_posix()
            found += [f"{base}/{name}" for name in names if _partial(f"{base}/{name}")]
        return found

    def delete(self, paths: Sequence[str]) -> None:
        """Unlink each of *paths*, and each ``.p`` folder left empty."""
        folders = set()
        for path in paths:
            target = self._path(_not_checkpoint(path))
            try:
                target.unlink(missing_ok=True)
            except OSError as exc:
                raise ConfigError(f"cannot remove {target}: {exc.strerror}") from None
            folders.add(target.parent)
        for folder in folders:
            with contextlib.suppress(OSError):  # not empty (other widths), or gone already
                folder.rmdir()

    def _sync_folders(self) -> None:
        """Make the new files' names durable before the checkpoint that covers them."""
        with self._unsynced_lock:
            folders, self._unsynced = self._unsynced | {self._root}, set()
        for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
            fd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def close(self) -> None:
        """Nothing to release."""


class S3TileStore:
    """The log's files in an S3 bucket, under an optional prefix."""

    def __init__(
        self,
        location: S3Location,
        *,
        endpoint: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        signing_region: str = "us-east-1",
        sse: str | None = None,
        sse_kms_key_id: str | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        """A client for *location*; nothing is asked of the endpoint until a write.

        The server publishes in the background and keeps serving when the bucket cannot
        be reached, so opening does not depend on it.

        Raises:
            ConfigError: boto3 is not installed, only one of the two keys is given, or
                the server-side encryption settings are not valid.
        """
        if (access_key is None) != (secret_key is None):
            raise ConfigError("give both an S3 access key and its secret key, or neither")
        self._location = location
        self._sse = sse_arguments(sse, sse_kms_key_id)
        self._client: Any = s3_client(endpoint, access_key, secret_key, signing_region, timeout_s)
        self._where = f"tile bucket {location}" + (f" at {endpoint}" if endpoint else "")

    @property
    def where(self) -> str:
        """``s3://bucket/prefix`` and the endpoint."""
        return self._where

    @property
    def parallel(self) -> int:
        """Writes at once: an object store answers each PUT after a round trip."""
        return 16

    def _call(self, doing: str, call: Callable[[], _T]) -> _T:
        return s3_call(f"cannot {doing} in {self._where}", call)

    def _put(self, path: str, data: bytes, **conditions: str) -> Any:
        immutable = path != CHECKPOINT
        return self._client.put_object(
            Bucket=self._location.bucket,
            Key=self._location.prefix + path,
            Body=data,
            ContentType="application/octet-stream" if immutable else "text/plain; charset=utf-8",
            CacheControl=IMMUTABLE if immutable else _REVALIDATE,
            **conditions,
            **self._sse,
        )

    def put_once(self, path: str, data: bytes, *, repair: bool = False) -> bool:
        """Write *path* with ``If-None-Match: *`` (see :meth:`TileStore.put_once`)."""
        try:
            self._call(f"write {path}", lambda: self._put(path, data, IfNoneMatch="*"))
        except FileExistsError:
            pass
        else:
            return True
        if self.get(path) == data:
            return False
        if not repair:
            raise _differs(self._where, path)
        self._call(f"write {path}", lambda: self._put(path, data))
        return True

    def _read(self, path: str) -> tuple[bytes, str] | None:
        try:
            got = self._call(
                f"read {path}",
                lambda: self._client.get_object(
                    Bucket=self._location.bucket, Key=self._location.prefix + path
                ),
            )
        except FileNotFoundError:
            return None
        with got["Body"] as body:
            data: bytes = body.read(_MAX_FILE_BYTES + 1)
        return data, str(got.get("ETag", ""))

    def get(self, path: str) -> bytes | None:
        """The bytes at *path*, None if there is no such object."""
        found = self._read(path)
        return None if found is None else found[0]

    def swap_checkpoint(self, update: Callable[[bytes | None], bytes | None]) -> bool:
        """Replace the checkpoint with ``If-Match`` on the ETag read (``If-None-Match``
        when there was none), reading again when another writer came first."""
        for _ in range(5):
            found = self._read(CHECKPOINT)
            new = update(None if found is None else found[0])
            if new is None:
                return False
            condition = {"IfNoneMatch": "*"} if found is None else {"IfMatch": found[1]}
            write = functools.partial(self._put, CHECKPOINT, new, **condition)
            try:
                self._call("write the checkpoint", write)
            except FileExistsError:
                continue  # another publisher replaced it meanwhile: look again
            return True
        raise ConfigError(
            f"the checkpoint in {self._where} kept changing under this publisher; is another "
            "log publishing into the same place?"
        )

    def partials(self, full: str | None = None) -> list[str]:
        """The partial objects under ``<full>.p/`` (or under ``tile/``): one listing."""
        prefix = self._location.prefix
        under = prefix + (f"{full}.p/" if full is not None else "tile/")
        pages = self._client.get_paginator("list_objects_v2")
        keys: list[str] = self._call(
            "list the partial tiles",
            lambda: [
                obj["Key"]
                for page in pages.paginate(Bucket=self._location.bucket, Prefix=under)
                for obj in page.get("Contents", [])
            ],
        )
        return [key[len(prefix) :] for key in keys if _partial(key[len(prefix) :])]

    def delete(self, paths: Sequence[str]) -> None:
        """Delete the objects *paths*, up to 1,000 per request (S3 answers a missing
        key as deleted)."""
        keys = [self._location.prefix + _not_checkpoint(path) for path in paths]
        for at in range(0, len(keys), _DELETE_BATCH):
            batch = [{"Key": key} for key in keys[at : at + _DELETE_BATCH]]
            got = self._call(
                "delete partial tiles",
                functools.partial(
                    self._client.delete_objects,
                    Bucket=self._location.bucket,
                    Delete={"Objects": batch, "Quiet": True},
                ),
            )
            for failed in got.get("Errors", [])[:1]:
                raise ConfigError(
                    f"cannot delete {failed.get('Key')} in {self._where}: "
                    f"{failed.get('Code')} {failed.get('Message', '')}".rstrip()
                )

    def close(self) -> None:
        """Close the client's connections; calling it twice is harmless."""
        close = getattr(self._client, "close", None)
        if close is not None:
            close()
