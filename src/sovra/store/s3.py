"""Blobs of one region in an S3-compatible bucket (AWS S3, SeaweedFS, MinIO, Ceph...).

One bucket (and prefix, endpoint, credentials, optional server-side encryption) per
region: the bucket is where the region's ciphertext physically lives. ADR 0020 gives the
layout and why; in short:

- the small blobs of one :meth:`~S3BlobStore.put_many` call are packed into ONE segment
  object, ``<prefix>segments/<ms>-<random>``, which carries its own index (key, offset,
  length, digest) in a header, so a batch of a thousand records is one PUT and a read is
  one ranged GET; the bucket alone holds everything needed to find a blob again, so
  nothing is lost with a machine and several processes can share the bucket;
- a blob over ``small_blob_bytes`` is an object of its own, ``<prefix>blobs/<key>``,
  written with a multipart upload past ``multipart_bytes``;
- every blob is bound to its key: the index (or the object's metadata) holds
  SHA-256(key, 0, data), checked on every read, so no key is ever served another key's
  bytes, and a segment or object cut short is an :class:`~sovra.errors.IntegrityError`;
- a deleted small blob's segment is rewritten without it (the new segment names the one
  it replaces, so a crash between the two writes cannot bring the blob back), and the old
  object is deleted: no shredded ciphertext stays in the bucket.

Failures are translated once, here: a missing bucket, refused credentials or a denied
write (a bucket policy, a read-only key) are :class:`~sovra.errors.ConfigError` naming the
bucket and which of them it is, an endpoint that cannot be reached or answers 5xx (a
restart) is :class:`~sovra.errors.Unavailable` (503 with Retry-After, try again); no
botocore traceback leaves this module. boto3 is imported here only, so it stays an
optional dependency (``pip install 'sovra[s3]'``).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import json
import re
import secrets
import struct
import threading
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from sovra.errors import ConfigError, SovraError, Unavailable
from sovra.store.blobs import DEFAULT_MAX_BLOB_BYTES, DEFAULT_SMALL_BLOB_BYTES, BlobStoreBase

__all__ = [
    "DEFAULT_MULTIPART_BYTES",
    "S3BlobStore",
    "S3Location",
    "parse_s3_url",
    "s3_call",
    "s3_client",
    "s3_failure",
    "sse_arguments",
]

DEFAULT_MULTIPART_BYTES = 8 << 20
_MIN_PART_BYTES = 5 << 20  # S3's smallest part but the last
_MAGIC = b"sovra-segment-1\n"
_HEAD = struct.Struct(">I")
_FIRST_READ = 64 << 10  # one ranged GET reads the header of a segment of ~500 records
_MAX_HEADER_BYTES = 16 << 20
_CHUNK_BYTES = 64 << 10
# Reads of records of one segment further apart than this are separate ranged GETs.
_GAP_BYTES = 64 << 10
# Another process's segments are found by listing names from this long before the newest
# one seen: segment names start with their writer's clock, which may be behind ours.
_SKEW_MS = 10 * 60 * 1000
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
_PREFIX_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_SSE = frozenset({"AES256", "aws:kms", "aws:kms:dsse"})
_DIGEST_META = "sovra-sha256"
_RETRY_AFTER_S = 1.0  # what a 503 for an S3 failure tells the caller to wait

_T = TypeVar("_T")
_SESSION: Any = None
_SESSION_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class S3Location:
    """A bucket and a key prefix (``""`` or ending in ``/``) inside it."""

    bucket: str
    prefix: str = ""

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


def parse_s3_url(url: str) -> S3Location:
    """``s3://bucket`` or ``s3://bucket/some/prefix`` as a :class:`S3Location`.

    Raises:
        ConfigError: not an ``s3://`` URL, a bucket name S3 refuses, or a prefix with an
            empty, dot or odd-character part.
    """
    if not isinstance(url, str):
        raise ConfigError(f"an S3 location is a string s3://bucket/prefix, got {url!r}")
    parts = urlsplit(url)
    if parts.scheme != "s3" or parts.query or parts.fragment or "@" in parts.netloc:
        raise ConfigError(f"an S3 location is s3://bucket[/prefix], got {url!r}")
    bucket = parts.netloc
    if not _BUCKET.fullmatch(bucket) or ".." in bucket:
        raise ConfigError(
            f"S3 bucket name {bucket!r} is not valid: 3 to 63 lower-case letters, digits, "
            "dots and hyphens"
        )
    path = parts.path.strip("/")
    if not path:
        return S3Location(bucket)
    for part in path.split("/"):
        if not _PREFIX_PART.fullmatch(part):
            raise ConfigError(
                f"S3 prefix {path!r} of {url!r}: each part must match {_PREFIX_PART.pattern}"
            )
    return S3Location(bucket, path + "/")


@dataclass(frozen=True, slots=True)
class _Loc:
    """Where a small blob is: its segment, absolute offset, length and bound digest."""

    segment: str
    start: int
    length: int
    digest: bytes
    size: int  # the whole segment object's size, from its header


class S3BlobStore(BlobStoreBase):
    """A region's blobs in one S3 bucket (under an optional prefix).

    The index of the small blobs is built from the segments' headers when the store
    opens, and refreshed from newer segments when a key is not found in it (another
    process may have written it). Several processes may share a bucket; as for the
    folder store, two of them putting the same key at once could both succeed (the
    gateway never does: a record's row, unique by id, is written before its blob).
    """

    def __init__(
        self,
        region: str,
        location: S3Location,
        *,
        endpoint: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        signing_region: str = "us-east-1",
        sse: str | None = None,
        sse_kms_key_id: str | None = None,
        max_blob_bytes: int = DEFAULT_MAX_BLOB_BYTES,
        small_blob_bytes: int = DEFAULT_SMALL_BLOB_BYTES,
        multipart_bytes: int = DEFAULT_MULTIPART_BYTES,
        timeout_s: float = 10.0,
    ) -> None:
        """Connect and check that the bucket is there and the credentials are accepted.

        Without *access_key*/*secret_key* boto3's own chain is used (environment, an
        instance role...).

        Raises:
            ConfigError: bad settings, boto3 not installed, no such bucket, or the
                endpoint refused the credentials.
            Unavailable: the endpoint cannot be reached or failed.
        """
        super().__init__(region, max_blob_bytes=max_blob_bytes)
        if isinstance(small_blob_bytes, bool) or not isinstance(small_blob_bytes, int):
            raise ConfigError("small_blob_bytes must be an integer")
        if small_blob_bytes < 0:
            raise ConfigError(f"small_blob_bytes must be at least 0, got {small_blob_bytes}")
        if (
            isinstance(multipart_bytes, bool)
            or not isinstance(multipart_bytes, int)
            or multipart_bytes < _MIN_PART_BYTES
        ):
            raise ConfigError(f"multipart_bytes must be at least {_MIN_PART_BYTES} (5 MiB)")
        if (access_key is None) != (secret_key is None):
            raise ConfigError("give both an S3 access key and its secret key, or neither")
        _check_endpoint(endpoint)
        self._location = location
        self._small_blob_bytes = small_blob_bytes
        self._multipart_bytes = multipart_bytes
        self._sse = sse_arguments(sse, sse_kms_key_id)
        self._where = f"bucket {location.bucket}" + (f" at {endpoint}" if endpoint else "")
        try:
            from botocore.exceptions import BotoCoreError, ClientError
        except ImportError:
            raise ConfigError("an s3:// blob store needs boto3: pip install 'sovra[s3]'") from None
        self._boto_errors = (BotoCoreError, ClientError)
        self._client: Any = s3_client(endpoint, access_key, secret_key, signing_region, timeout_s)
        self._lock = threading.Lock()
        self._rewrite_lock = threading.Lock()
        self._index: dict[str, _Loc] = {}
        self._segments: dict[str, list[str]] = {}  # segment -> its keys
        self._gone: set[str] = set()  # segments replaced by a newer one
        self._reserved: set[str] = set()  # keys of puts under way in this process
        self._large: set[str] = set()  # keys known to be objects of their own
        self._damaged: dict[str, str] = {}  # segments whose index cannot be read, and why
        self._newest_ms = 0
        try:
            self._call("open the bucket", lambda: self._client.head_bucket(Bucket=location.bucket))
        except FileNotFoundError:
            raise ConfigError(
                f"blob store {self.region}: {self._where} does not exist; create it first"
            ) from None
        self._refresh(full=True)

    @property
    def location(self) -> S3Location:
        """The bucket and prefix holding this region's blobs."""
        return self._location

    @property
    def small_blob_bytes(self) -> int:
        """The largest blob packed into a segment; larger ones get an object each."""
        return self._small_blob_bytes

    def close(self) -> None:
        """Close the client's connections; calling it twice is harmless."""
        close = getattr(self._client, "close", None)
        if close is not None:
            close()

    # -- names -----------------------------------------------------------------------

    def _seg_key(self, name: str) -> str:
        return f"{self._location.prefix}segments/{name}"

    def _blob_key(self, key: str) -> str:
        return f"{self._location.prefix}blobs/{key}"

    # -- writing ---------------------------------------------------------------------

    def _put(self, key: str, data: bytes) -> None:
        self._put_many([(key, data)])

    def _put_many(self, items: list[tuple[str, bytes]]) -> None:
        keys = [k for k, _ in items]
        with self._lock:
            for key in keys:
                if key in self._index or key in self._large or key in self._reserved:
                    raise FileExistsError(errno.EEXIST, "blob exists", key)
            self._reserved.update(keys)
        try:
            small = [(k, d) for k, d in items if len(d) <= self._small_blob_bytes]
            large = [(k, d) for k, d in items if len(d) > self._small_blob_bytes]
            written: list[str] = []
            segment: tuple[str, dict[str, _Loc]] | None = None
            try:
                for key, data in large:
                    self._put_object(key, data)
                    written.append(key)
                if small:
                    # The segment is the commit point of the batch's small blobs.
                    segment = self._write_segment(small, replaces=())
            except BaseException:
                for key in written:
                    self._quietly(functools.partial(self._delete_object, key))
                raise
            with self._lock:
                self._large.update(written)
                if segment is not None:
                    self._adopt(*segment)
        finally:
            with self._lock:
                self._reserved.difference_update(keys)

    def _write_segment(
        self, items: list[tuple[str, bytes]], *, replaces: tuple[str, ...]
    ) -> tuple[str, dict[str, _Loc]]:
        """Write *items* as one new segment; its name and the items' locations."""
        now = int(time.time() * 1000)
        name = f"{now:013d}-{secrets.token_hex(8)}"
        records: list[tuple[str, int, int, str]] = []
        offset = 0
        for key, data in items:
            records.append((key, offset, len(data), _bound(key, data).hex()))
            offset += len(data)
        header = {"region": self.region, "replaces": list(replaces), "records": records}
        raw = json.dumps(header, separators=(",", ":")).encode()
        start = len(_MAGIC) + _HEAD.size + len(raw)
        size = start + offset
        body = b"".join([_MAGIC, _HEAD.pack(len(raw)), raw, *(d for _, d in items)])
        self._call(
            f"write a segment of {len(items)} blobs",
            lambda: self._client.put_object(
                Bucket=self._location.bucket,
                Key=self._seg_key(name),
                Body=body,
                IfNoneMatch="*",
                **self._sse,
            ),
        )
        locs = {
            key: _Loc(name, start + off, length, bytes.fromhex(digest), size)
            for key, off, length, digest in records
        }
        return name, locs

    def _put_object(self, key: str, data: bytes) -> None:
        """One blob as an object of its own, never replacing one (``If-None-Match``)."""
        meta = {_DIGEST_META: _bound(key, data).hex()}
        bucket, name = self._location.bucket, self._blob_key(key)
        if len(data) <= self._multipart_bytes:
            self._call(
                f"write the blob of record {key}",
                lambda: self._client.put_object(
                    Bucket=bucket, Key=name, Body=data, Metadata=meta, IfNoneMatch="*", **self._sse
                ),
            )
            return
        if self._call(f"look up the blob of record {key}", lambda: self._head(name)) is not None:
            raise FileExistsError(errno.EEXIST, "blob exists", key)
        upload = self._call(
            f"start the upload of record {key}",
            lambda: self._client.create_multipart_upload(
                Bucket=bucket, Key=name, Metadata=meta, **self._sse
            ),
        )["UploadId"]
        try:
            parts = []
            step = self._multipart_bytes
            for n, at in enumerate(range(0, len(data), step), start=1):
                chunk = data[at : at + step]
                done = self._call(
                    f"upload part {n} of record {key}",
                    functools.partial(
                        self._client.upload_part,
                        Bucket=bucket,
                        Key=name,
                        UploadId=upload,
                        PartNumber=n,
                        Body=chunk,
                    ),
                )
                parts.append({"PartNumber": n, "ETag": done["ETag"]})
            self._call(
                f"complete the upload of record {key}",
                lambda: self._client.complete_multipart_upload(
                    Bucket=bucket,
                    Key=name,
                    UploadId=upload,
                    MultipartUpload={"Parts": parts},
                    IfNoneMatch="*",
                ),
            )
        except BaseException:
            # An upload never completed is invisible, but its parts cost storage.
            self._quietly(
                lambda: self._client.abort_multipart_upload(
                    Bucket=bucket, Key=name, UploadId=upload
                )
            )
            raise

    # -- the index ---------------------------------------------------------------------

    def _adopt(self, name: str, locs: Mapping[str, _Loc]) -> None:
        """Take a segment's locations into the index. The caller holds the lock."""
        self._segments[name] = list(locs)
        for key, loc in locs.items():
            self._index[key] = loc
        self._newest_ms = max(self._newest_ms, _segment_ms(name))

    def _drop(self, name: str) -> None:
        """Forget a replaced or deleted segment. The caller holds the lock."""
        self._gone.add(name)
        for key in self._segments.pop(name, []):
            loc = self._index.get(key)
            if loc is not None and loc.segment == name:
                del self._index[key]

    def _refresh(self, *, full: bool = False) -> None:
        """Read the headers of segments not yet in the index (every one when *full*).

        A segment whose header cannot be read is remembered as damaged (and read again
        at the next refresh), not raised: the other segments stay readable.
        """
        prefix = self._seg_key("")
        start = "" if full else prefix + f"{max(0, self._newest_ms - _SKEW_MS):013d}"
        names = [obj["Key"][len(prefix) :] for obj in self._list(prefix, start_after=start)]
        with self._lock:
            new = [n for n in names if n not in self._segments and n not in self._gone]
            if full:
                listed = set(names)
                self._damaged = {n: why for n, why in self._damaged.items() if n in listed}
        headers: dict[str, tuple[list[str], dict[str, _Loc]] | None] = {}
        for name in new:
            try:
                headers[name] = self._read_header(name)
            except OSError as exc:
                with self._lock:
                    self._damaged[name] = exc.strerror or "damaged"
        stale: list[str] = []
        with self._lock:
            for name in sorted(headers):
                found = headers[name]
                if found is None or name in self._gone:
                    continue
                self._damaged.pop(name, None)
                replaces, locs = found
                for old in replaces:
                    self._drop(old)
                    stale.append(old)
                self._adopt(name, locs)
            stale = [s for s in stale if s in names]
        for old in stale:
            # Left by a crash between a rewrite and the removal of what it replaced.
            self._quietly(functools.partial(self._delete_segment, old))

    def _read_header(self, name: str) -> tuple[list[str], dict[str, _Loc]] | None:
        """A segment's ``replaces`` and locations; None if it is gone meanwhile."""
        key = self._seg_key(name)
        try:
            got, total = self._range(key, 0, _FIRST_READ)
        except FileNotFoundError:
            return None
        if not got.startswith(_MAGIC) or len(got) < len(_MAGIC) + _HEAD.size:
            raise OSError(errno.EBADMSG, f"segment {name} is not a sovra segment", name)
        (length,) = _HEAD.unpack_from(got, len(_MAGIC))
        start = len(_MAGIC) + _HEAD.size + length
        if length > _MAX_HEADER_BYTES:
            raise OSError(errno.EBADMSG, f"segment {name} has a {length}-byte header", name)
        if start > len(got):
            if total < start:
                raise OSError(errno.EBADMSG, f"segment {name} is cut short in its header", name)
            rest, _ = self._range(key, len(got), start - len(got))
            got += rest
        try:
            header = json.loads(got[len(_MAGIC) + _HEAD.size : start])
            region, records = header["region"], header["records"]
            replaces = [str(r) for r in header["replaces"]]
            # The payload is the records back to back, so the index gives the object's size.
            size = start + sum(int(n) for _, _, n, _ in records)
            locs = {
                str(k): _Loc(name, start + int(off), int(n), bytes.fromhex(d), size)
                for k, off, n, d in records
            }
        except (ValueError, KeyError, TypeError) as exc:
            raise OSError(errno.EBADMSG, f"segment {name} has a damaged index", name) from exc
        if region != self.region:
            # A segment copied in from another region's bucket is not this region's data.
            raise OSError(errno.EBADMSG, f"segment {name} belongs to region {region}", name)
        if total != size:
            raise OSError(
                errno.EBADMSG, f"segment {name} is {total} bytes, its index says {size}", name
            )
        return replaces, locs

    def _locate(self, key: str) -> _Loc | None:
        """Where *key*'s small blob is; None if it is in no segment.

        Raises:
            OSError: ``EBADMSG``: it is in no readable segment, but a segment's index
                cannot be read, so it may be there: the store cannot say it is absent.
        """
        with self._lock:
            loc = self._index.get(key)
        if loc is None and key not in self._large:
            self._refresh()
            with self._lock:
                loc = self._index.get(key)
                damaged = dict(self._damaged)
            if loc is None and damaged:
                name, why = sorted(damaged.items())[0]
                raise OSError(errno.EBADMSG, f"segment {name} is unreadable ({why})", key)
        return loc

    # -- reading -----------------------------------------------------------------------

    def _get(self, key: str) -> Generator[bytes, None, None]:
        loc = self._locate(key)
        if loc is not None:
            if loc.length > self._max_blob_bytes:
                raise OSError(errno.EFBIG, f"{loc.length} bytes", key)
            yield self._read_small(key, loc)
            return
        yield from self._read_object(key)

    def _read_small(self, key: str, loc: _Loc) -> bytes:
        try:
            data, total = self._range(self._seg_key(loc.segment), loc.start, loc.length)
        except FileNotFoundError:
            # Rewritten by a delete in another process: look again once.
            with self._lock:
                self._drop(loc.segment)
            again = self._locate(key)
            if again is None or again.segment == loc.segment:
                raise
            data, total = self._range(self._seg_key(again.segment), again.start, again.length)
            loc = again
        _check_small(key, loc, data, total)
        return data

    def _read_object(self, key: str) -> Generator[bytes, None, None]:
        got = self._call(
            f"read the blob of record {key}",
            lambda: self._client.get_object(Bucket=self._location.bucket, Key=self._blob_key(key)),
        )
        body = got["Body"]
        try:
            size = int(got["ContentLength"])
            if size > self._max_blob_bytes:
                raise OSError(errno.EFBIG, f"{size} bytes", key)
            want = got.get("Metadata", {}).get(_DIGEST_META, "")
            digest = hashlib.sha256(key.encode() + b"\0")
            seen = 0
            for chunk in body.iter_chunks(_CHUNK_BYTES):
                digest.update(chunk)
                seen += len(chunk)
                yield chunk
            if seen != size or not secrets.compare_digest(digest.hexdigest(), want):
                raise OSError(
                    errno.EBADMSG,
                    f"the object of record {key} is cut short or is not this record's",
                )
        finally:
            body.close()

    def _get_many(self, keys: list[str]) -> dict[str, bytes]:
        with self._lock:
            locs = {k: self._index[k] for k in keys if k in self._index}
        by_segment: dict[str, list[tuple[str, _Loc]]] = {}
        for key, loc in locs.items():
            if loc.length > self._max_blob_bytes:
                raise OSError(errno.EFBIG, f"{loc.length} bytes", key)
            by_segment.setdefault(loc.segment, []).append((key, loc))
        found: dict[str, bytes] = {}
        for segment, wanted in by_segment.items():
            wanted.sort(key=lambda kl: kl[1].start)
            for run in _runs(wanted):
                first, end = run[0][1].start, max(loc.start + loc.length for _, loc in run)
                try:
                    data, total = self._range(self._seg_key(segment), first, end - first)
                except FileNotFoundError:
                    break  # rewritten meanwhile: the single reads look again
                for key, loc in run:
                    part = data[loc.start - first : loc.start - first + loc.length]
                    _check_small(key, loc, part, total)
                    found[key] = part
        return found

    def _range(self, name: str, start: int, length: int) -> tuple[bytes, int]:
        """Bytes ``start..start+length`` of an object, and the object's whole size."""
        if length <= 0:
            return b"", self._size(name)
        got = self._call(
            "read a blob",
            lambda: self._client.get_object(
                Bucket=self._location.bucket,
                Key=name,
                Range=f"bytes={start}-{start + length - 1}",
            ),
        )
        with got["Body"] as body:
            data = body.read(length + 1)
        found = re.fullmatch(r"bytes \d+-\d+/(\d+)", got.get("ContentRange", ""))
        total = int(found.group(1)) if found else int(got["ContentLength"])
        return data, total

    def _size(self, name: str) -> int:
        head = self._call("read a blob", lambda: self._head(name))
        if head is None:
            raise FileNotFoundError(errno.ENOENT, "no object", name)
        return int(head["ContentLength"])

    def _head(self, name: str) -> dict[str, Any] | None:
        try:
            return dict(self._client.head_object(Bucket=self._location.bucket, Key=name))
        except self._boto_errors as exc:
            if _code(exc) in ("404", "NoSuchKey", "NotFound"):
                return None
            raise

    # -- deleting, listing -------------------------------------------------------------

    def _delete(self, key: str) -> None:
        # One rewrite at a time: two deletes rewriting one segment at once would each
        # keep the blob the other removes.
        with self._rewrite_lock:
            self._delete_one(key)

    def _delete_one(self, key: str) -> None:
        loc = self._locate(key)
        if loc is None:
            self._delete_object(key)
            with self._lock:
                self._large.discard(key)
            return
        # The segment, whole, verified, less this blob: a new segment replacing it.
        with self._lock:
            others = [k for k in self._segments.get(loc.segment, []) if k != key]
            keep_locs = {k: self._index[k] for k in others if k in self._index}
        data, total = self._range(self._seg_key(loc.segment), 0, loc.size)
        keep = []
        for other, at in keep_locs.items():
            part = data[at.start : at.start + at.length]
            _check_small(other, at, part, total)
            keep.append((other, part))
        if keep:
            name, locs = self._write_segment(keep, replaces=(loc.segment,))
            with self._lock:
                self._drop(loc.segment)
                self._adopt(name, locs)
        else:
            with self._lock:
                self._drop(loc.segment)
        self._delete_segment(loc.segment)

    def _delete_object(self, key: str) -> None:
        self._call(
            f"delete the blob of record {key}",
            lambda: self._client.delete_object(
                Bucket=self._location.bucket, Key=self._blob_key(key)
            ),
        )

    def _delete_segment(self, name: str) -> None:
        self._call(
            "delete a segment",
            lambda: self._client.delete_object(
                Bucket=self._location.bucket, Key=self._seg_key(name)
            ),
        )

    def _exists(self, key: str) -> bool:
        if self._locate(key) is not None or key in self._large:
            return True
        return self._call("look up a blob", lambda: self._head(self._blob_key(key))) is not None

    def _keys(self) -> Iterator[str]:
        self._refresh(full=True)
        with self._lock:
            small = list(self._index)
            damaged = dict(self._damaged)
        if damaged:
            name, why = sorted(damaged.items())[0]
            raise OSError(errno.EBADMSG, f"segment {name} is unreadable: {why}")
        prefix = self._blob_key("")
        large = [obj["Key"][len(prefix) :] for obj in self._list(prefix, start_after="")]
        return iter(small + large)

    def segment_names(self) -> list[str]:
        """The segment objects of this region, as listed now (for checks and tests).

        Raises:
            ConfigError: the listing failed.
            Unavailable: the endpoint cannot be reached.
        """
        prefix = self._seg_key("")
        return [obj["Key"][len(prefix) :] for obj in self._list(prefix, start_after="")]

    def _list(self, prefix: str, *, start_after: str) -> list[dict[str, Any]]:
        pages = self._client.get_paginator("list_objects_v2")
        args = {"Bucket": self._location.bucket, "Prefix": prefix}
        if start_after:
            args["StartAfter"] = start_after
        return self._call(
            "list blobs",
            lambda: [obj for page in pages.paginate(**args) for obj in page.get("Contents", [])],
        )

    # -- errors ------------------------------------------------------------------------

    def _call(self, doing: str, call: Callable[[], _T]) -> _T:
        """Run one S3 call, its failure in the store's dialect (:func:`s3_call`).

        A missing object is ``FileNotFoundError``, a refused ``If-None-Match`` is
        ``FileExistsError`` (both handled by the base); the rest become sovra errors
        that name the bucket and say whose move it is.
        """
        return s3_call(f"blob store {self.region}: cannot {doing} in {self._where}", call)

    @staticmethod
    def _quietly(call: Callable[[], object]) -> None:
        """Best-effort clean-up: its failure must not hide the error being raised."""
        with contextlib.suppress(OSError, SovraError):
            call()


def s3_client(
    endpoint: str | None,
    access_key: str | None,
    secret_key: str | None,
    signing_region: str,
    timeout_s: float,
) -> Any:
    """A boto3 S3 client (path-style addressing, bounded waits and retries).

    Raises:
        ConfigError: boto3 is not installed.
    """
    try:
        import boto3
        from botocore.config import Config as BotoConfig
    except ImportError:
        raise ConfigError("an s3:// store needs boto3: pip install 'sovra[s3]'") from None
    with _SESSION_LOCK:
        # One session for every store: its loaded service model makes the next
        # client cheap; sessions are not thread-safe, hence the lock.
        global _SESSION  # noqa: PLW0603 - made once, on first use
        if _SESSION is None:
            _SESSION = boto3.session.Session()
        return _SESSION.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            region_name=signing_region,
            config=BotoConfig(
                connect_timeout=timeout_s,
                read_timeout=timeout_s,
                retries={"max_attempts": 3, "mode": "standard"},
                max_pool_connections=32,
                s3={"addressing_style": "path"},
            ),
        )


def s3_call(where: str, call: Callable[[], _T]) -> _T:
    """Run one S3 call; a botocore failure raised as :func:`s3_failure` names *where*.

    botocore's errors are caught before anything else: its timeouts are ``OSError``s
    too, and one left raw would read as a broken store rather than an endpoint to retry.
    Every other error of *call* passes unchanged.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return call()
    except (BotoCoreError, ClientError) as exc:
        raise s3_failure(where, exc) from None


def s3_failure(where: str, exc: Exception) -> Exception:
    """A botocore failure in sovra's dialect; *where* says what failed and in which bucket.

    A missing object is ``FileNotFoundError``, a refused condition (``If-None-Match``,
    ``If-Match``) ``FileExistsError``; refused credentials, a missing bucket or a denied
    write are :class:`~sovra.errors.ConfigError` (the operator's move), an endpoint that
    cannot be reached or fails is :class:`~sovra.errors.Unavailable` (retry).
    """
    code = _code(exc)
    if code in ("NoSuchKey", "404", "NotFound"):
        return FileNotFoundError(errno.ENOENT, "no such object")
    if code in ("PreconditionFailed", "412", "ConditionalRequestConflict"):
        return FileExistsError(errno.EEXIST, "object exists")
    if code == "NoSuchBucket":
        return ConfigError(f"{where}: the bucket does not exist; create it first")
    if code in ("InvalidRange", "416"):
        return OSError(errno.EBADMSG, "the object is shorter than its index says")
    if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken"):
        return ConfigError(
            f"{where}: the endpoint refused the credentials ({code}); check the region's "
            "access key and secret"
        )
    if code == "403":
        # A HEAD's answer has no body to tell a wrong key from a refused one.
        return ConfigError(
            f"{where}: the endpoint refused the credentials or denied access (403); check "
            "the region's access key and secret, and the bucket's policy"
        )
    if code in ("AccessDenied", "AllAccessDisabled", "AccountProblem"):
        # The key is known but may not do this here: a bucket policy, a read-only key,
        # a bucket locked by its owner. Retrying will not help; the operator must.
        return ConfigError(
            f"{where}: access denied ({code}); the bucket's policy or the key's "
            "permissions do not allow it"
        )
    status = _status(exc)
    if status >= 500 or code in ("SlowDown", "ServiceUnavailable", "InternalError"):
        return Unavailable(
            f"{where}: the endpoint failed ({code}); try again", retry_after_s=_RETRY_AFTER_S
        )
    if code == "":
        name = type(exc).__name__
        if name in (
            "EndpointConnectionError",
            "ConnectTimeoutError",
            "ReadTimeoutError",
            "ConnectionClosedError",
            "ConnectionError",
            "ProxyConnectionError",
        ):
            return Unavailable(
                f"{where}: the endpoint cannot be reached; try again",
                retry_after_s=_RETRY_AFTER_S,
            )
        return ConfigError(f"{where}: {name}")
    return ConfigError(f"{where}: the endpoint answered {code}")


def _check_endpoint(endpoint: str | None) -> None:
    if endpoint is None:
        return
    ep = urlsplit(endpoint)
    if ep.scheme not in ("http", "https") or not ep.hostname or ep.username or ep.password:
        raise ConfigError(f"S3 endpoint must be an http(s)://host[:port] URL, got {endpoint!r}")


def sse_arguments(sse: str | None, kms_key_id: str | None) -> dict[str, str]:
    """The server-side encryption arguments of every write."""
    if sse is not None and sse not in _SSE:
        raise ConfigError(f"sse must be one of {', '.join(sorted(_SSE))}, got {sse!r}")
    if kms_key_id is not None and sse not in ("aws:kms", "aws:kms:dsse"):
        raise ConfigError("sse_kms_key_id needs sse = 'aws:kms' or 'aws:kms:dsse'")
    args = {}
    if sse is not None:
        args["ServerSideEncryption"] = sse
    if kms_key_id is not None:
        args["SSEKMSKeyId"] = kms_key_id
    return args


def _code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def _status(exc: BaseException) -> int:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return 0


def _bound(key: str, data: bytes) -> bytes:
    """The digest binding a blob to its key: the same bytes under another key differ."""
    return hashlib.sha256(key.encode() + b"\0" + data).digest()


def _check_small(key: str, loc: _Loc, data: bytes, total: int) -> None:
    """Refuse a segment cut short, or bytes that are not *key*'s."""
    if total != loc.size or len(data) != loc.length:
        raise OSError(
            errno.EBADMSG,
            f"segment {loc.segment} is {total} bytes, its index says {loc.size}: cut short",
            key,
        )
    if not secrets.compare_digest(_bound(key, data), loc.digest):
        raise OSError(errno.EBADMSG, f"the bytes in segment {loc.segment} are not this blob's", key)


def _runs(wanted: list[tuple[str, _Loc]]) -> list[list[tuple[str, _Loc]]]:
    """Sorted locations grouped into runs read by one ranged GET each."""
    runs: list[list[tuple[str, _Loc]]] = []
    end = -1
    for item in wanted:
        loc = item[1]
        if runs and loc.start - end <= _GAP_BYTES:
            runs[-1].append(item)
        else:
            runs.append([item])
        end = max(end, loc.start + loc.length)
    return runs


def _segment_ms(name: str) -> int:
    head = name.split("-", 1)[0]
    return int(head) if head.isdigit() else 0
