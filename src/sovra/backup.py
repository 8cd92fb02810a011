"""Backup and restore of an embedded deployment: SQLite, the blob folders, keys, configuration.

A backup is a folder::

    manifest.json     format, version, time; every directory (mode, owner) and every file
                      (SHA-256, size, mode, owner), paths relative to the deployment
    deployment/...    the deployment's files, in its own layout

Each SQLite database (the metadata and the log in ``sovra.db``, the bulk guard's journal,
each custodian's subject keys) is copied through SQLite's online backup API, so the copy
is one consistent state even while the gateway writes. They are copied first, the
metadata and the log before the subject keys, and the files after (blobs, keys, the
configuration): whatever a copied row refers to (a blob, a subject key) was written before
that row, so it is in the backup too. A crypto-shred meanwhile leaves the record's key out
of the backup, as it should. Rotating a custodian's KEK during a backup is not supported.

:func:`restore` reads the whole backup and checks it against its manifest (every file's
SHA-256 and size, no file missing, none added, no path outside the deployment) before it
writes anything; it writes into a new folder beside the target and moves it into place
only when every file has been copied and checked again, so a refused or failed restore
leaves nothing behind. ``backup`` prints the manifest's own SHA-256: kept apart from the
backup, it lets :func:`restore` refuse a manifest rewritten together with the files.

A deployment whose metadata and log are in PostgreSQL, or whose blobs are in S3, is not
backed up by this module: use ``pg_dump`` and the object store's own versioning or
replication, plus a copy of the deployment folder (keys, custodians, configuration).
"""

from __future__ import annotations

import datetime
import grp
import hashlib
import json
import os
import pwd
import shutil
import sqlite3
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from sovra import __version__
from sovra.config import Config
from sovra.errors import BadRequest, ConfigError, IntegrityError
from sovra.store import is_postgres_url

__all__ = ["FORMAT", "MANIFEST", "BackupSummary", "backup", "restore"]

FORMAT = "sovra-backup/1"
MANIFEST = "manifest.json"
_DATA = "deployment"
_CONFIG = "sovra.toml"
_GUARD = "guard.db"
_SQLITE_MAGIC = b"SQLite format 3\x00"
_SIDE_FILES = ("-wal", "-shm", "-journal")
_MAX_MANIFEST = 64 << 20
_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class BackupSummary:
    """What a backup holds, or what a restore wrote."""

    files: int
    bytes: int
    manifest_sha256: str

    def to_dict(self) -> dict[str, Any]:
        """The JSON form the command prints."""
        return {
            "files": self.files,
            "bytes": self.bytes,
            "manifest_sha256": self.manifest_sha256,
        }


def backup(root: Path, target: Path) -> BackupSummary:
    """Copy the deployment in *root* into the new folder *target*.

    Raises:
        ConfigError: no deployment in *root*; it keeps its data in PostgreSQL or S3, or
            outside its folder; *target* exists and is not empty, or cannot be written.
    """
    config = Config.load(root / _CONFIG)
    _embedded_only(root, config)
    _empty_target(target)
    target.mkdir(mode=0o700, parents=True, exist_ok=True)
    data = target / _DATA
    data.mkdir(mode=0o700)
    databases, files, directories = _walk(root, config)
    entries: list[dict[str, Any]] = []
    for rel in databases:  # first, the metadata and the log before the subject keys
        copy = data / rel
        copy.parent.mkdir(parents=True, exist_ok=True)
        _snapshot(root / rel, copy)
        os.chmod(copy, 0o600)  # the backup is its maker's alone, as every copy below
        entries.append(_file_entry(root / rel, copy, rel))
    for rel in files:
        copy = data / rel
        copy.parent.mkdir(parents=True, exist_ok=True)
        digest, size = _copy(root / rel, copy)
        entries.append(_file_entry(root / rel, copy, rel, digest, size))
    total = sum(entry["size"] for entry in entries)
    manifest = {
        "format": FORMAT,
        "sovra_version": __version__,
        "created_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "directories": [_dir_entry(root / rel, rel) for rel in directories],
        "files": sorted(entries, key=lambda e: e["path"]),
    }
    text = json.dumps(manifest, indent=1, sort_keys=True).encode() + b"\n"
    (target / MANIFEST).write_bytes(text)
    return BackupSummary(len(entries), total, hashlib.sha256(text).hexdigest())


def restore(source: Path, target: Path, *, expect_sha256: str | None = None) -> BackupSummary:
    """Check the backup in *source* against its manifest, then restore it to *target*.

    As root, owners are restored by name (the custodians' and the gateway's users).

    Raises:
        IntegrityError: the manifest is not the one *expect_sha256* names, or a file is
            missing, added, changed, or not a plain file; nothing is written.
        BadRequest: the manifest is malformed (or names a path outside the deployment).
        ConfigError: *target* exists and is not empty; an owner is unknown here.
    """
    try:
        with (source / MANIFEST).open("rb") as fh:
            text = fh.read(_MAX_MANIFEST + 1)
    except OSError as exc:
        raise ConfigError(
            f"{source} is not a backup: cannot read {MANIFEST}: {exc.strerror}"
        ) from None
    if len(text) > _MAX_MANIFEST:
        raise BadRequest(f"{source / MANIFEST} is over {_MAX_MANIFEST} bytes")
    digest = hashlib.sha256(text).hexdigest()
    if expect_sha256 is not None and digest != expect_sha256.strip().lower():
        raise IntegrityError(
            f"{source / MANIFEST} has SHA-256 {digest}, not the {expect_sha256} expected"
        )
    files, directories = _parse_manifest(text)
    data = source / _DATA
    _verify(data, files)
    _empty_target(target)
    owners = _owners([*files.values(), *directories.values()])
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.restore-", dir=target.parent))
    try:
        for rel in sorted(directories, key=lambda r: len(PurePosixPath(r).parts)):
            if rel != ".":
                (staging / rel).mkdir(parents=True, exist_ok=True)
        total = 0
        for rel, entry in sorted(files.items()):
            copy = staging / rel
            copy.parent.mkdir(parents=True, exist_ok=True)
            total += _copy_checked(data / rel, copy, entry)
            _apply(copy, entry, owners)
        # Deepest first, so a directory's mode never keeps its owner from its contents.
        for rel, entry in sorted(
            directories.items(), key=lambda item: -len(PurePosixPath(item[0]).parts)
        ):
            _apply(staging / rel, entry, owners)
        if target.exists():
            target.rmdir()  # empty, checked above
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return BackupSummary(len(files), total, digest)


# -- backing up ---------------------------------------------------------------------------


def _embedded_only(root: Path, config: Config) -> None:
    if is_postgres_url(config.database):
        raise ConfigError(
            "this deployment keeps its metadata and log in PostgreSQL, which `sovra backup` "
            "does not copy: back the database up with pg_dump (or the server's own backup), "
            "and the deployment folder (keys, custodians, sovra.toml) with it"
        )
    s3 = sorted(name for name, region in config.regions.items() if region.is_s3)
    if s3:
        raise ConfigError(
            f"region(s) {', '.join(s3)} keep their blobs in S3, which `sovra backup` does "
            "not copy: use the bucket's versioning or replication"
        )
    for what, path in (("database", config.database), ("blobs", config.blobs)):
        if not (root / path).resolve().is_relative_to(root.resolve()):
            raise ConfigError(
                f"the {what} setting {path!r} is outside the deployment folder; "
                "`sovra backup` copies the deployment folder only"
            )


def _empty_target(target: Path) -> None:
    if target.is_symlink() or (target.exists() and not target.is_dir()):
        raise ConfigError(f"{target} exists and is not a folder")
    if target.exists() and any(target.iterdir()):
        raise ConfigError(f"{target} is not empty: give a new or empty folder")


def _walk(root: Path, config: Config) -> tuple[list[str], list[str], list[str]]:
    """The deployment's SQLite databases (the metadata and log first, the guard's journal
    next, then the others), its other regular files, and its directories, relative."""
    databases: list[str] = []
    files: list[str] = []
    directories = ["."]
    for folder, dirs, names in os.walk(root):
        here = Path(folder)
        dirs.sort()
        for d in dirs:
            if not (here / d).is_symlink():
                directories.append((here / d).relative_to(root).as_posix())
        for name in sorted(names):
            path = here / name
            info = path.lstat()
            if not stat.S_ISREG(info.st_mode):
                continue  # sockets of running custodians, symbolic links
            rel = path.relative_to(root).as_posix()
            (databases if _is_sqlite(path) else files).append(rel)
    side = {db + suffix for db in databases for suffix in _SIDE_FILES}
    files = [f for f in files if f not in side]
    first = [Path(config.database).as_posix(), _GUARD]
    databases.sort(key=lambda rel: (first.index(rel) if rel in first else len(first), rel))
    return databases, files, directories


def _is_sqlite(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return fh.read(len(_SQLITE_MAGIC)) == _SQLITE_MAGIC
    except OSError:
        return False


def _snapshot(source: Path, copy: Path) -> None:
    """One consistent state of the SQLite database *source*, written to *copy*."""
    src = sqlite3.connect(source, timeout=30)
    try:
        dst = sqlite3.connect(copy)
        try:
            src.backup(dst)
        finally:
            dst.close()
    except sqlite3.Error as exc:
        raise ConfigError(f"cannot back up {source}: {exc}") from None
    finally:
        src.close()


def _copy(source: Path, copy: Path) -> tuple[str, int]:
    """Copy *source* to the new file *copy* (0600); its SHA-256 and size as copied."""
    digest = hashlib.sha256()
    size = 0
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    with source.open("rb") as src, os.fdopen(os.open(copy, flags, 0o600), "wb") as dst:
        while chunk := src.read(_CHUNK):
            digest.update(chunk)
            dst.write(chunk)
            size += len(chunk)
        dst.flush()
        os.fsync(dst.fileno())
    return digest.hexdigest(), size


def _file_entry(
    original: Path, copy: Path, rel: str, digest: str | None = None, size: int | None = None
) -> dict[str, Any]:
    if digest is None or size is None:
        digest, size = _hash(copy)
    return {"path": rel, "sha256": digest, "size": size, **_ownership(original)}


def _dir_entry(path: Path, rel: str) -> dict[str, Any]:
    return {"path": rel, **_ownership(path)}


def _ownership(path: Path) -> dict[str, Any]:
    info = path.stat()
    return {
        "mode": stat.S_IMODE(info.st_mode),
        "owner": _name(pwd.getpwuid, info.st_uid),
        "group": _name(grp.getgrgid, info.st_gid),
    }


def _name(lookup: Any, number: int) -> str:
    try:
        return str(lookup(number)[0])
    except KeyError:
        return str(number)


def _hash(path: Path) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


# -- restoring ----------------------------------------------------------------------------


def _parse_manifest(text: bytes) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """The manifest's files and directories by relative path, each checked.

    Raises:
        BadRequest: not JSON, another format, a malformed entry, a path that is absolute,
            climbs out (``..``) or is named twice.
    """
    try:
        manifest = json.loads(text)
    except ValueError:
        raise BadRequest(f"{MANIFEST} is not JSON") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BadRequest(f"{MANIFEST} is not a {FORMAT} manifest")
    files = _entries(manifest.get("files"), ("sha256", "size"))
    directories = _entries(manifest.get("directories"), ())
    if "." not in directories:
        raise BadRequest(f"{MANIFEST} does not describe the deployment folder itself")
    for rel in files:
        for parent in PurePosixPath(rel).parents:
            if parent.as_posix() not in directories:
                raise BadRequest(f"{MANIFEST} names {rel} but not its folder {parent}")
    return files, directories


def _entries(raw: object, required: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    if not isinstance(raw, list):
        raise BadRequest(f"{MANIFEST} lacks its list of files or directories")
    found: dict[str, dict[str, Any]] = {}
    for entry in raw:
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            raise BadRequest(f"{MANIFEST} holds a malformed entry")
        rel = entry["path"]
        parts = PurePosixPath(rel).parts
        if rel != "." and (
            not parts or rel.startswith("/") or any(p in ("..", ".", "") for p in parts)
            or PurePosixPath(*parts).as_posix() != rel
        ):  # fmt: skip
            raise BadRequest(f"{MANIFEST} names a path outside the deployment: {rel!r}")
        if rel in found:
            raise BadRequest(f"{MANIFEST} names {rel} twice")
        mode = entry.get("mode")
        if not isinstance(mode, int) or isinstance(mode, bool) or not 0 <= mode <= 0o7777:
            raise BadRequest(f"{MANIFEST}: {rel} has no valid mode")
        if "size" in required and (
            not isinstance(entry.get("size"), int) or not isinstance(entry.get("sha256"), str)
        ):
            raise BadRequest(f"{MANIFEST}: {rel} has no size or SHA-256")
        found[rel] = entry
    return found


def _verify(data: Path, files: dict[str, dict[str, Any]]) -> None:
    """Every file of the manifest is in *data*, a plain file of its size and SHA-256, and
    nothing else is.

    Raises:
        IntegrityError: the first file that is not.
    """
    present: set[str] = set()
    for path in _everything(data):
        rel = path.relative_to(data).as_posix()
        if rel not in files:
            raise IntegrityError(f"{path} is in the backup but not in its manifest")
        if not stat.S_ISREG(path.lstat().st_mode):
            raise IntegrityError(f"{path} is not a plain file")
        present.add(rel)
    missing = sorted(set(files) - present)
    if missing:
        raise IntegrityError(f"{data / missing[0]} is in the manifest but not in the backup")
    for rel, entry in sorted(files.items()):
        if _hash(data / rel) != (entry["sha256"], entry["size"]):
            raise IntegrityError(f"{data / rel} does not match its SHA-256 in the manifest")


def _copy_checked(source: Path, copy: Path, entry: dict[str, Any]) -> int:
    """Copy *source* to *copy*, checked again against its manifest *entry*; its size.

    Raises:
        IntegrityError: it changed since it was verified.
    """
    got, size = _copy(source, copy)
    if (got, size) != (entry["sha256"], entry["size"]):
        raise IntegrityError(f"{source} changed while it was restored")
    return size


def _everything(data: Path) -> Iterator[Path]:
    if not data.is_dir():
        raise IntegrityError(f"{data} is missing from the backup")
    for folder, dirs, names in os.walk(data):
        here = Path(folder)
        for d in dirs:
            if (here / d).is_symlink():
                raise IntegrityError(f"{here / d} is not a plain folder")
        for name in names:
            yield here / name


def _owners(entries: list[dict[str, Any]]) -> dict[tuple[str, str], tuple[int, int]] | None:
    """Each entry's (owner, group) as ids here, when running as root (None otherwise).

    Raises:
        ConfigError: an owner or group of the backup does not exist on this machine.
    """
    if os.geteuid() != 0:
        return None
    ids: dict[tuple[str, str], tuple[int, int]] = {}
    for entry in entries:
        key = (str(entry.get("owner")), str(entry.get("group")))
        if key in ids:
            continue
        try:
            ids[key] = (_id(pwd.getpwnam, key[0]), _id(grp.getgrnam, key[1]))
        except KeyError:
            raise ConfigError(
                f"the backup's files belong to {key[0]}:{key[1]}, unknown here: create the "
                "deployment's users first (`sovra init` on this machine makes them)"
            ) from None
    return ids


def _id(lookup: Any, name: str) -> int:
    if name.isdigit():
        return int(name)
    return int(lookup(name)[2])


def _apply(
    path: Path, entry: dict[str, Any], owners: dict[tuple[str, str], tuple[int, int]] | None
) -> None:
    if owners is not None:
        uid, gid = owners[(str(entry.get("owner")), str(entry.get("group")))]
        os.chown(path, uid, gid, follow_symlinks=False)
    os.chmod(path, entry["mode"])
