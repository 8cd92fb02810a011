"""Blob stores: ciphertext by key, in one region.

:class:`BlobStoreBase` is the template: its public methods check the key, enforce the
size limit both ways and translate ``OSError`` into sovra errors; a backend writes only
``_put``, ``_get``, ``_delete`` and ``_exists``, which see valid keys and speak the
stdlib's ``OSError`` dialect (``FileExistsError``, ``FileNotFoundError``) whatever they
store in. That keeps every backend's failure modes, and its limits, the same.
"""

from __future__ import annotations

import abc
import contextlib
import errno
import hashlib
import os
import stat
import tempfile
import threading
from collections.abc import Callable, Generator, Iterator, Sequence
from pathlib import Path

from sovra.errors import (
    BadRequest,
    ConfigError,
    IntegrityError,
    NotFound,
    PayloadTooLarge,
)
from sovra.model import check_id
from sovra.store._smallblobs import SMALL_BLOBS_NAME, SmallBlobs

__all__ = [
    "DEFAULT_MAX_BLOB_BYTES",
    "DEFAULT_SMALL_BLOB_BYTES",
    "SMALL_BLOBS_NAME",
    "BlobStoreBase",
    "FilesystemBlobStore",
    "MemoryBlobStore",
]

DEFAULT_MAX_BLOB_BYTES = 64 * 1024 * 1024
DEFAULT_SMALL_BLOB_BYTES = 64 * 1024
_CHUNK_BYTES = 64 * 1024
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
# What opening a link without following it (ELOOP), a file where a folder should be
# (ENOTDIR), a folder where a file should be (EISDIR) or a second name (EMLINK) raise.
_NOT_A_PLAIN_FILE = frozenset({errno.ELOOP, errno.ENOTDIR, errno.EISDIR, errno.EMLINK})


class BlobStoreBase(abc.ABC):
    """A :class:`~sovra.store.protocols.BlobStore` with its checks done once, here.

    Implementers write the four private methods below and nothing else.
    """

    def __init__(self, region: str, *, max_blob_bytes: int = DEFAULT_MAX_BLOB_BYTES) -> None:
        """Set the region and the size limit.

        Raises:
            ConfigError: *region* is not a valid id or *max_blob_bytes* is below 1.
        """
        try:
            self._region = check_id(region, "region")
        except BadRequest as exc:
            raise ConfigError(exc.message) from None
        if isinstance(max_blob_bytes, bool) or not isinstance(max_blob_bytes, int):
            raise ConfigError("max_blob_bytes must be an integer")
        if max_blob_bytes < 1:
            raise ConfigError(f"max_blob_bytes must be at least 1, got {max_blob_bytes}")
        self._max_blob_bytes = max_blob_bytes

    @property
    def region(self) -> str:
        """Where the blobs physically live."""
        return self._region

    @property
    def max_blob_bytes(self) -> int:
        """The largest blob this store writes or reads back."""
        return self._max_blob_bytes

    def put(self, key: str, data: bytes) -> None:
        """Store *data* under a new *key*, atomically.

        Raises:
            BadRequest: *key* is not a valid id, *data* is not bytes, or the key exists.
            PayloadTooLarge: *data* is over :attr:`max_blob_bytes`; nothing is written.
            ConfigError: the storage failed.
        """
        self._check_blob(key, data)
        try:
            self._put(key, data)
        except FileExistsError:
            raise BadRequest(f"blob {key} already exists in region {self._region}") from None
        except OSError as exc:
            raise ConfigError(
                f"blob store {self._region}: cannot write the blob of record {key}: {_reason(exc)}"
            ) from None

    def put_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        """Store every ``(key, data)`` of *items*; all of them, or none if it raises.

        Every item is checked before anything is written.

        Raises:
            BadRequest: *items* is not a sequence of ``(key, bytes)`` pairs, a key is not
                a valid id or appears twice, or a key is stored already (naming it).
            PayloadTooLarge: a blob is over :attr:`max_blob_bytes`; nothing is written.
            ConfigError: the storage failed.
        """
        batch = self._check_batch(items)
        if not batch:
            return
        try:
            self._put_many(batch)
        except FileExistsError as exc:
            key = exc.filename if exc.filename in dict(batch) else "of this batch"
            raise BadRequest(f"blob {key} already exists in region {self._region}") from None
        except OSError as exc:
            raise ConfigError(
                f"blob store {self._region}: cannot write a batch of {len(batch)} blobs: "
                f"{_reason(exc)}"
            ) from None

    def _check_blob(self, key: object, data: object) -> None:
        check_id(key, "blob key")
        if not isinstance(data, bytes):
            raise BadRequest(f"blob data must be bytes, got {type(data).__name__}")
        if len(data) > self._max_blob_bytes:
            raise PayloadTooLarge(
                f"blob {key} is {len(data)} bytes, over the {self._max_blob_bytes}-byte limit"
            )

    def _check_batch(self, items: object) -> list[tuple[str, bytes]]:
        if isinstance(items, (str, bytes)) or not isinstance(items, Sequence):
            raise BadRequest(f"blobs must be a sequence of (key, bytes) pairs, got {_kind(items)}")
        batch: list[tuple[str, bytes]] = []
        limit = self._max_blob_bytes
        for n, item in enumerate(items):
            if not isinstance(item, tuple) or len(item) != 2:
                raise BadRequest(
                    f"blob {n} of the batch must be a (key, bytes) pair, got {_kind(item)}"
                )
            key, data = item
            check_id(key, "blob key")
            if type(data) is not bytes or len(data) > limit:
                self._check_blob(key, data)  # the precise refusal (a bytes subclass passes)
            batch.append(item)
        if len({key for key, _ in batch}) != len(batch):
            seen: set[str] = set()
            for key, _ in batch:
                if key in seen:
                    raise BadRequest(f"blob key {key} appears twice in the batch")
                seen.add(key)
        return batch

    def _put_many(self, items: list[tuple[str, bytes]]) -> None:
        """Store checked, distinct *items*, all or none; a backend overrides it to batch.

        MUST be durable on return and MUST NOT replace an existing blob: raise
        ``FileExistsError`` with the existing key as its ``filename`` instead, having
        stored none of the batch. This default writes one blob at a time and removes the
        ones it wrote when a later one fails.
        """
        _one_by_one(items, self._put, self._delete)

    def get(self, key: str) -> bytes:
        """Return the bytes under *key*, refusing to read past the size limit.

        Raises:
            BadRequest: *key* is not a valid id.
            NotFound: no such blob.
            IntegrityError: the stored blob is over :attr:`max_blob_bytes`.
            ConfigError: the storage failed.
        """
        check_id(key, "blob key")
        parts: list[bytes] = []
        total = 0
        try:
            chunks = self._get(key)
            try:
                for chunk in chunks:
                    total += len(chunk)
                    # Stop pulling as soon as the limit is passed: a blob grown on disk is
                    # refused after at most one chunk past it, never read whole.
                    if total > self._max_blob_bytes:
                        raise self._over_limit(key)
                    parts.append(chunk)
            finally:
                chunks.close()
        except OSError as exc:
            raise self._read_error(exc, key) from None
        return b"".join(parts)

    def _read_error(self, exc: OSError, key: str) -> Exception:
        """The sovra error for a failed read of *key*."""
        if isinstance(exc, FileNotFoundError):
            return NotFound(f"no blob {key} in region {self._region}")
        if exc.errno == errno.EFBIG:
            return self._over_limit(key)
        if exc.errno in _NOT_A_PLAIN_FILE:
            return IntegrityError(
                f"the blob of record {key} in region {self._region} is a link, or not a "
                "plain file of its own inside the region's folder: refusing to read it"
            )
        if exc.errno == errno.EBADMSG:
            return IntegrityError(
                f"blob store {self._region}: cannot read the blob of record {key}: {_reason(exc)}"
            )
        return ConfigError(
            f"blob store {self._region}: cannot read the blob of record {key}: {_reason(exc)}"
        )

    def _over_limit(self, key: str) -> IntegrityError:
        return IntegrityError(
            f"blob {key} in region {self._region} is over the "
            f"{self._max_blob_bytes}-byte limit: refusing to read it"
        )

    def get_many(self, keys: Sequence[str]) -> list[bytes]:
        """Return the blobs under *keys*, in order, each refused past the size limit.

        Raises:
            BadRequest: *keys* is not a sequence of valid ids.
            NotFound: a key has no blob (the first missing one is named).
            IntegrityError: a stored blob is over :attr:`max_blob_bytes`.
            ConfigError: the storage failed.
        """
        if isinstance(keys, (str, bytes)) or not isinstance(keys, Sequence):
            raise BadRequest(f"blob keys must be a sequence of ids, got {_kind(keys)}")
        for key in keys:
            check_id(key, "blob key")
        try:
            found = self._get_many(list(dict.fromkeys(keys)))
        except OSError as exc:
            if exc.filename is not None:
                raise self._read_error(exc, exc.filename) from None
            error = IntegrityError if exc.errno == errno.EBADMSG else ConfigError
            raise error(
                f"blob store {self._region}: cannot read a batch of {len(keys)} blobs: "
                f"{_reason(exc)}"
            ) from None
        return [found[key] if key in found else self.get(key) for key in keys]

    def _get_many(self, keys: list[str]) -> dict[str, bytes]:
        """The blobs among distinct *keys* that a backend reads at once; the rest are read
        one by one with :meth:`_get`. This default reads none at once.

        MUST NOT return a blob over :attr:`max_blob_bytes`: raise ``OSError(EFBIG)``
        with the key as its ``filename`` instead. A key it does not return is not
        thereby missing.
        """
        return {}

    def delete(self, key: str) -> None:
        """Remove the blob under *key*; a missing blob is not an error.

        Raises:
            BadRequest: *key* is not a valid id.
            ConfigError: the storage failed.
        """
        check_id(key, "blob key")
        try:
            self._delete(key)
        except FileNotFoundError:
            # Deleting twice must succeed, so a crypto-shred interrupted after the
            # delete can simply be run again.
            return
        except OSError as exc:
            raise ConfigError(
                f"blob store {self._region}: cannot delete the blob of record {key}: {_reason(exc)}"
            ) from None

    def exists(self, key: str) -> bool:
        """Whether a blob is stored under *key*.

        Raises:
            BadRequest: *key* is not a valid id.
            ConfigError: the storage failed.
        """
        check_id(key, "blob key")
        try:
            return self._exists(key)
        except OSError as exc:
            raise ConfigError(
                f"blob store {self._region}: cannot look up the blob of record {key}: "
                f"{_reason(exc)}"
            ) from None

    def close(self) -> None:  # noqa: B027 - most backends hold nothing open
        """Release what the backend holds open; calling it twice is harmless."""

    def stored_keys(self) -> Iterator[str]:
        """Every key stored in this region, in no particular order (for ``sovra check``).

        Raises:
            ConfigError: the storage failed.
        """
        try:
            # Materialised, so a failure surfaces here rather than mid-iteration.
            found = list(self._keys())
        except OSError as exc:
            raise ConfigError(f"blob store {self._region}: cannot list blobs: {exc}") from exc
        return iter(found)

    @abc.abstractmethod
    def _keys(self) -> Iterator[str]:
        """Yield every stored key (never a temporary file of the store's own)."""

    @abc.abstractmethod
    def _put(self, key: str, data: bytes) -> None:
        """Store *data* under *key*.

        MUST be atomic (a reader sees the whole blob or none) and durable on return.
        MUST NOT replace an existing blob: raise ``FileExistsError`` instead.
        """

    @abc.abstractmethod
    def _get(self, key: str) -> Generator[bytes, None, None]:
        """Yield the blob's bytes in chunks.

        MUST raise ``FileNotFoundError`` when there is no such blob. SHOULD yield chunks of
        bounded size, so the caller can stop at its limit without reading everything;
        the generator is closed when the caller stops early.
        """

    @abc.abstractmethod
    def _delete(self, key: str) -> None:
        """Remove the blob, durably. MAY raise ``FileNotFoundError`` if it is absent."""

    @abc.abstractmethod
    def _exists(self, key: str) -> bool:
        """Whether the blob exists."""


class FilesystemBlobStore(BlobStoreBase):
    """Blobs in the folder ``root/<region>``: small ones in one SQLite file, large ones a
    file each.

    The region folder is how residency shows on disk: mount each region's folder on
    storage in that region. A blob of up to :attr:`small_blob_bytes` goes to the
    region's ``small-blobs.sqlite`` (:mod:`sovra.store._smallblobs`), so a batch of them
    costs one transaction and one fsync; a larger one streams to its own file,
    ``<fan-out>/<key>``, with a two-hex-digit fan-out (from SHA-256 of the key) that keeps
    folders small. Reads look in both, so blobs written as files before the small-blob
    file existed stay readable. Files are 0600, folders 0700. Keys are ids
    (``check_id``), which cannot start with a dot, so they never collide with the
    store's own ``.tmp-`` files.

    A key is refused if either place holds it. The two checks are not one transaction: two
    callers putting the same key at once, one small and one large, could both succeed.
    The gateway never does: a record's row, unique by id, is written before its blob.
    """

    def __init__(
        self,
        root: Path,
        region: str,
        *,
        max_blob_bytes: int = DEFAULT_MAX_BLOB_BYTES,
        small_blob_bytes: int = DEFAULT_SMALL_BLOB_BYTES,
    ) -> None:
        """Use (creating if needed) the folder ``root/region`` and its small-blob file.

        Raises:
            ConfigError: bad region or limits, the folder cannot be created, it is on a
                case-insensitive filesystem (where ``Rec1`` and ``rec1`` would be one
                blob), or its small-blob file is a link, has a second name or is not a
                small-blob store.
        """
        super().__init__(region, max_blob_bytes=max_blob_bytes)
        if isinstance(small_blob_bytes, bool) or not isinstance(small_blob_bytes, int):
            raise ConfigError("small_blob_bytes must be an integer")
        if small_blob_bytes < 0:
            raise ConfigError(f"small_blob_bytes must be at least 0, got {small_blob_bytes}")
        self._small_blob_bytes = small_blob_bytes
        self._dir = Path(root) / self._region
        try:
            self._dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            folds_case = self._folds_case()
        except OSError as exc:
            raise ConfigError(f"cannot use blob folder {self._dir}: {exc}") from exc
        if folds_case:
            raise ConfigError(
                f"blob folder {self._dir} is on a case-insensitive filesystem; "
                "blob keys are case-sensitive"
            )
        try:
            self._small = SmallBlobs(self._dir)
        except OSError as exc:
            raise ConfigError(
                f"cannot use the small-blob store {self._dir / SMALL_BLOBS_NAME}: {_reason(exc)};"
                " restore it from a backup"
            ) from None

    @property
    def directory(self) -> Path:
        """This region's folder."""
        return self._dir

    @property
    def small_blob_bytes(self) -> int:
        """The largest blob kept in the small-blob file; larger ones get a file each."""
        return self._small_blob_bytes

    @property
    def small_blobs_path(self) -> Path:
        """The region's small-blob file."""
        return self._small.path

    def holds_small_blobs(self) -> bool:
        """Whether the small-blob file holds any blob (cheap whatever its size).

        Raises:
            ConfigError: the file cannot be read.
        """
        try:
            return not self._small.empty()
        except OSError as exc:
            raise ConfigError(f"blob store {self._region}: {_reason(exc)}") from None

    def small_blob_count(self) -> int:
        """How many blobs the small-blob file holds.

        Raises:
            ConfigError: the file cannot be read.
        """
        try:
            return self._small.count()
        except OSError as exc:
            raise ConfigError(f"blob store {self._region}: {_reason(exc)}") from None

    def close(self) -> None:
        """Close the small-blob file; calling it twice is harmless."""
        self._small.close()

    def _folds_case(self) -> bool:
        fd, probe = tempfile.mkstemp(prefix=".case-probe-", suffix="A", dir=self._dir)
        os.close(fd)
        try:
            # mkstemp's random part is lower-case, so only the suffix differs.
            return os.path.lexists(probe[:-1] + "a")
        finally:
            os.unlink(probe)

    def path_for(self, key: str) -> Path:
        """Where the blob under *key* is (or would be) stored as a file of its own.

        Raises:
            BadRequest: *key* is not a valid id.
        """
        check_id(key, "blob key")
        return self._dir / hashlib.sha256(key.encode()).hexdigest()[:2] / key

    def _put(self, key: str, data: bytes) -> None:
        self._put_many([(key, data)])

    def _put_many(self, items: list[tuple[str, bytes]]) -> None:
        small = [(k, d) for k, d in items if len(d) <= self._small_blob_bytes]
        large = [(k, d) for k, d in items if len(d) > self._small_blob_bytes]
        if large:
            for key in self._small.stored([k for k, _ in large]):
                raise FileExistsError(errno.EEXIST, "blob exists", key)

        def then() -> None:
            # Files first, then one transaction: a crash in between leaves files that no
            # row names once their pending rows are purged, which check removes.
            if small:
                self._small.put_many(small, taken=self._files_among([k for k, _ in small]))

        _one_by_one(large, self._put_file, self._delete_file, then=then)

    def _put_file(self, key: str, data: bytes) -> None:
        final = self.path_for(key)
        folder = final.parent
        try:
            folder.mkdir(mode=0o700)
            _fsync_dir(self._dir)
        except FileExistsError:
            pass
        # mkstemp creates the file 0600 whatever the umask.
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            # link, unlike rename, fails if the name exists: no blob is ever replaced.
            os.link(tmp, final)
        finally:
            os.unlink(tmp)
        _fsync_dir(folder)

    def _get(self, key: str) -> Generator[bytes, None, None]:
        small = self._small.get(key, self._max_blob_bytes)
        if isinstance(small, int):
            raise OSError(errno.EFBIG, f"{small} bytes", key)
        if small is not None:
            yield small
            return
        yield from self._get_file(key)

    def _get_many(self, keys: list[str]) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        for key, data in self._small.get_many(keys, self._max_blob_bytes).items():
            if isinstance(data, int):
                raise OSError(errno.EFBIG, f"{data} bytes", key)
            found[key] = data
        return found

    def _get_file(self, key: str) -> Generator[bytes, None, None]:
        # Every step below the region's folder is opened without following a link, so
        # neither a linked blob nor a linked fan-out folder leads outside it; a blob with a
        # second name (a hard link) may be a file from elsewhere and is refused as well.
        path = self.path_for(key)
        folder = os.open(path.parent, os.O_RDONLY | _NOFOLLOW | _DIRECTORY)
        try:
            fd = os.open(path.name, os.O_RDONLY | _NOFOLLOW, dir_fd=folder)
        finally:
            os.close(folder)
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
                raise OSError(errno.EMLINK, "not a plain file with one name")
            while chunk := f.read(_CHUNK_BYTES):
                yield chunk

    def _delete(self, key: str) -> None:
        in_small = self._small.delete(key)
        try:
            self._delete_file(key)
        except (FileNotFoundError, NotADirectoryError):
            if not in_small:
                raise FileNotFoundError(errno.ENOENT, "no blob", key) from None

    def _delete_file(self, key: str) -> None:
        path = self.path_for(key)
        path.unlink()
        # Without this a crash could bring a shredded blob back.
        _fsync_dir(path.parent)

    def _exists(self, key: str) -> bool:
        return self._file_exists(key) or bool(self._small.stored([key]))

    def _file_exists(self, key: str) -> bool:
        try:
            return stat.S_ISREG(os.lstat(self.path_for(key)).st_mode)
        except (FileNotFoundError, NotADirectoryError):
            return False

    def _files_among(self, keys: list[str]) -> set[str]:
        """Which of *keys* are stored as files: one listing of the region's folder, then
        one ``lstat`` per key whose fan-out folder exists (none in a folder without)."""
        fans = {e.name for e in os.scandir(self._dir) if len(e.name) == 2}
        if not fans:
            return set()
        found = set()
        for key in keys:
            fan = hashlib.sha256(key.encode()).hexdigest()[:2]
            if fan in fans and os.path.lexists(f"{self._dir}/{fan}/{key}"):
                found.add(key)
        return found

    def _keys(self) -> Iterator[str]:
        yield from self._small.keys()
        for folder in os.scandir(self._dir):
            # The fan-out folders are two hex digits; anything else is not the store's.
            if len(folder.name) != 2 or not folder.is_dir(follow_symlinks=False):
                continue
            for item in os.scandir(folder.path):
                if not item.name.startswith("."):
                    yield item.name


def _reason(exc: OSError) -> str:
    """What went wrong, without the file's name: a server path is nobody's business in a
    response, and ``str(exc)`` of an error from ``open()`` carries the absolute path."""
    if exc.filename is not None or exc.filename2 is not None:
        return exc.strerror or type(exc).__name__
    return str(exc)


def _one_by_one(
    items: list[tuple[str, bytes]],
    put: Callable[[str, bytes], None],
    undo: Callable[[str], None],
    *,
    then: Callable[[], None] = lambda: None,
) -> None:
    """Put each item, then call *then*; if anything raises, undo the items put.

    A ``FileExistsError`` is raised again naming the key, as ``_put_many`` must.
    """
    written: list[str] = []
    try:
        for key, data in items:
            try:
                put(key, data)
            except FileExistsError:
                raise FileExistsError(errno.EEXIST, "blob exists", key) from None
            written.append(key)
        then()
    except BaseException:
        for key in written:
            with contextlib.suppress(OSError):
                undo(key)
        raise


def _kind(value: object) -> str:
    return type(value).__name__


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class MemoryBlobStore(BlobStoreBase):
    """Blobs in a dict, for tests of the stages that use a blob store."""

    def __init__(
        self, region: str = "local", *, max_blob_bytes: int = DEFAULT_MAX_BLOB_BYTES
    ) -> None:
        """An empty store.

        Raises:
            ConfigError: bad region or limit.
        """
        super().__init__(region, max_blob_bytes=max_blob_bytes)
        self._blobs: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def _put(self, key: str, data: bytes) -> None:
        with self._lock:
            if key in self._blobs:
                raise FileExistsError(key)
            self._blobs[key] = data

    def _get(self, key: str) -> Generator[bytes, None, None]:
        with self._lock:
            data = self._blobs.get(key)
        if data is None:
            raise FileNotFoundError(key)
        yield data

    def _delete(self, key: str) -> None:
        with self._lock:
            self._blobs.pop(key, None)

    def _exists(self, key: str) -> bool:
        with self._lock:
            return key in self._blobs

    def _keys(self) -> Iterator[str]:
        with self._lock:
            return iter(list(self._blobs))
