"""``sovra doctor DIR``: a deployment's files, permissions, owners and layout, and what to fix.

It reads the folder only: it starts no custodian, opens no key and changes nothing, so it
can run beside a gateway, on a copy, or on a deployment that no longer starts. Each
problem is one line, ``PATH: what is wrong; fix: what to do``; the exit code is 1 when
there is any. Notes (how the holders are separated, for instance) are not problems.

What it checks:

* the layout ``sovra init`` makes: ``sovra.toml`` (and that it loads), the log and
  commitment keys, the database, each jurisdiction's custodian key file and subject-key
  store (or its service's URL and secret), each authority's public key and private key,
  the principals' keys, and a custodian's witness policy where it has one (that it
  loads);
* that every secret is a regular file of mode 0600 and every key folder 0700, that no
  file in the deployment is a link, that every blob is a plain file with one name, and
  that each region's small-blob file is a plain 0600 file with one name;
* that no custodian's subject-key store is empty while records of its jurisdiction exist,
  and no region's small-blob file is missing or empty while a record of the region has
  no blob file;
* as ``sovra init`` run by root leaves it: the gateway's user owns the data, each custodian
  and authority its own folder and nothing of the gateway's, ``principals/`` is not the
  gateway's, and ``custodians/`` and ``authorities/`` are root's and writable by nobody else.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import sqlite3
import stat
from dataclasses import asdict, dataclass
from pathlib import Path

import typer

from sovra._cli.common import (
    DeploymentArg,
    DeploymentDir,
    ExitCode,
    JsonOpt,
    given_deployment,
    out,
    print_json,
)
from sovra.store import is_postgres_url
from sovra.store.blobs import SMALL_BLOBS_NAME

__all__ = ["Finding", "doctor", "examine"]

_SECRET_MODE = 0o600
_FOLDER_MODE = 0o700
_OPEN_TO_OTHERS = 0o077


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing found: where, what, and what to do (``problem`` False: a note)."""

    path: str
    what: str
    fix: str
    problem: bool = True

    def line(self) -> str:
        """The finding as one line of text."""
        return (
            f"{self.path}: {self.what}; fix: {self.fix}"
            if self.fix
            else f"{self.path}: {self.what}"
        )


class _Examination:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.found: list[Finding] = []
        self.gateway_uid = os.lstat(root).st_uid

    def add(self, path: Path, what: str, fix: str, *, problem: bool = True) -> None:
        self.found.append(Finding(str(path), what, fix, problem))

    def user(self, uid: int) -> str:
        try:
            return pwd.getpwuid(uid).pw_name
        except KeyError:
            return str(uid)

    def entry(
        self,
        path: Path,
        *,
        folder: bool = False,
        secret: bool = False,
        owner: int | None = None,
        missing: str = "restore it from a backup",
    ) -> os.stat_result | None:
        """Check one expected file or folder; its stat when it is there and of its kind."""
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            self.add(path, "missing", missing)
            return None
        if stat.S_ISLNK(st.st_mode):
            self.add(
                path, "is a link", f"replace it with the {'folder' if folder else 'file'} itself"
            )
            return None
        if folder != stat.S_ISDIR(st.st_mode) or (not folder and not stat.S_ISREG(st.st_mode)):
            kind = "a folder" if folder else "a regular file"
            self.add(path, f"is not {kind}", "restore it from a backup")
            return None
        mode = stat.S_IMODE(st.st_mode)
        want = _FOLDER_MODE if folder else _SECRET_MODE
        if secret and mode & _OPEN_TO_OTHERS:
            self.add(
                path, f"has mode {mode:04o}, open to group or others", f"chmod {want:o} {path}"
            )
        if owner is not None and st.st_uid != owner:
            self.add(
                path,
                f"belongs to {self.user(st.st_uid)}, not {self.user(owner)}",
                f"chown {self.user(owner)} {path}",
            )
        return st


def examine(root: Path) -> list[Finding]:
    """Everything wrong with the deployment in *root*, and notes; see the module docstring."""
    from sovra.config import Config
    from sovra.custody import authority_key_path, custodian_key_path, separate
    from sovra.errors import ConfigError

    if not root.is_dir():
        return [Finding(str(root), "is not a folder", "create a deployment with `sovra init DIR`")]
    ex = _Examination(root)
    config_path = root / "sovra.toml"
    if ex.entry(config_path, missing="create a deployment with `sovra init DIR`") is None:
        return ex.found
    try:
        config = Config.load(config_path)
    except ConfigError as exc:
        ex.add(config_path, exc.message, "correct the file (sovra init writes a commented one)")
        return ex.found
    gateway = ex.gateway_uid
    as_users = gateway != 0
    for name in ("log.key", "commitment.secret"):
        ex.entry(root / "keys" / name, secret=True, owner=gateway)
    ex.entry(root / "keys", folder=True, secret=True, owner=gateway)
    if not is_postgres_url(config.database):
        ex.entry(root / config.database, secret=True, owner=gateway)
    _blobs(ex, root / config.blobs)
    in_buckets = {name for name, r in config.regions.items() if r.is_s3}
    _small_blobs_lost(ex, root / config.blobs, config.database, skip=in_buckets)
    records = _jurisdictions_with_records(root, config.database)
    for code in config.jurisdictions:
        _custodian(ex, code, separate(root, code), custodian_key_path(root, code), records)
        _authority(ex, code, authority_key_path(root, code))
    _principals(ex, root / "principals", as_users=as_users)
    if as_users:
        for shared in ("custodians", "authorities"):
            st = ex.entry(root / shared, folder=True, owner=0)
            if st is not None and st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
                ex.add(
                    root / shared, "is writable by group or others", f"chmod go-w {root / shared}"
                )
    _separation(ex, [c for c in config.jurisdictions if separate(root, c)])
    _links(ex, root, skip=root / config.blobs)
    return ex.found


def _authority(ex: _Examination, code: str, key: Path) -> None:
    ex.entry(
        ex.root / "authorities" / f"{code}.pub", missing="copy the authority's public key here"
    )
    if not (key.exists() or key.is_symlink()):
        return  # held by the authority elsewhere, as in production
    st = ex.entry(key, secret=True)
    if st is not None and ex.gateway_uid != 0 and st.st_uid == ex.gateway_uid:
        ex.add(key, "belongs to the gateway's user", f"chown sovra-authority-{code.lower()} {key}")


def _separation(ex: _Examination, own: list[str]) -> None:
    """A note on how the custodians are kept from the gateway."""
    if not own:
        ex.add(
            ex.root,
            "every custodian is opened inside the gateway's process (in-process)",
            "",
            problem=False,
        )
        return
    holders = {os.lstat(ex.root / "custodians" / c).st_uid for c in own}
    if holders <= {ex.gateway_uid}:
        ex.add(
            ex.root,
            f"the custodians run as separate processes of the gateway's own user "
            f"({ex.user(ex.gateway_uid)}): a process of that user can read their keys "
            "(docs/threat-model.md)",
            "",
            problem=False,
        )


def _custodian(ex: _Examination, code: str, own: bool, key: Path, records: set[str]) -> None:
    from sovra.keys.subjects import subjects_path

    root = ex.root
    if (root / "custodians" / f"{code}.url").exists():
        ex.entry(root / "custodians" / f"{code}.token", secret=True)
        return
    folder = key.parent
    owner = None
    if own:
        st = ex.entry(folder, folder=True, secret=True)
        if st is None:
            return
        owner = st.st_uid
        if ex.gateway_uid != 0 and owner == ex.gateway_uid:
            ex.add(
                folder,
                "belongs to the gateway's user, which may then read this custodian's keys",
                f"chown -R sovra-custodian-{code.lower()} {folder}",
            )
    fix = "restore it from a backup: without it no record of " + code + " opens"
    ex.entry(key, secret=True, owner=owner, missing=fix)
    _witness_policy(ex, code, key, owner)
    store = subjects_path(key)
    if ex.entry(store, secret=True, owner=owner, missing=fix) is None:
        return
    if code in records and _subject_keys(store) == 0:
        ex.add(
            store,
            f"holds no subject key, yet records of {code} are stored: none of them would open",
            "restore the store from a backup",
        )


def _witness_policy(ex: _Examination, code: str, key: Path, owner: int | None) -> None:
    """The custodian's ``<J>.witnesses``, when it has one: whoever can write it chooses
    whose cosignatures release this custodian's keys, so it is checked as its key is,
    and it must load, or the custodian does not start."""
    from sovra.errors import ConfigError
    from sovra.keys.witnessed import ReleasePolicy, policy_path

    path = policy_path(key)
    if not os.path.lexists(path):
        return
    if ex.entry(path, secret=True, owner=owner) is None:
        return
    try:
        ReleasePolicy.from_json(path.read_bytes())
    except OSError as exc:
        ex.add(path, f"cannot be read ({exc.strerror})", f"check its owner and mode: {path}")
    except ConfigError as exc:
        ex.add(
            path,
            f"is not a witness policy custodian {code} can start with ({exc.message})",
            f"write it again with `sovra custodian witnesses init -j {code} --force ...`",
        )


def _subject_keys(store: Path) -> int | None:
    try:
        db = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    except sqlite3.Error:
        return None
    try:
        held = db.execute(
            "SELECT (SELECT COUNT(*) FROM subject_keys) + (SELECT COUNT(*) FROM shredded)"
        )
        return int(held.fetchone()[0])
    except sqlite3.Error:
        return 0  # no tables: an empty file
    finally:
        db.close()


def _jurisdictions_with_records(root: Path, database: str) -> set[str]:
    """Jurisdictions of the records in the SQLite metadata store (empty if unreadable)."""
    if is_postgres_url(database) or not (root / database).is_file():
        return set()
    try:
        db = sqlite3.connect(f"file:{root / database}?mode=ro", uri=True)
    except sqlite3.Error:
        return set()
    try:
        rows = db.execute("SELECT DISTINCT jurisdiction FROM records").fetchall()
    except sqlite3.Error:
        return set()
    finally:
        db.close()
    return {str(r[0]) for r in rows}


def _blobs(ex: _Examination, folder: Path) -> None:
    if ex.entry(folder, folder=True, secret=True, owner=ex.gateway_uid) is None:
        return
    for region in sorted(folder.iterdir()):
        if region.is_symlink() or not region.is_dir():
            continue  # a region folder may be a mount point; _links reports links
        for fan in sorted(region.iterdir()):
            if fan.name.startswith(SMALL_BLOBS_NAME):
                _small_blob_file(ex, fan)
            elif fan.is_symlink():
                ex.add(
                    fan,
                    "is a link: blobs under it would come from elsewhere",
                    f"rm {fan}, then restore the folder from a backup",
                )
                continue
            if not fan.is_dir():
                continue
            for blob in sorted(fan.iterdir()):
                st = os.lstat(blob)
                if stat.S_ISLNK(st.st_mode):
                    ex.add(
                        blob,
                        f"blob of record {blob.name} is a link",
                        "replace it with the blob itself, from a backup",
                    )
                elif not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
                    ex.add(
                        blob,
                        f"blob of record {blob.name} is not a plain file with one name",
                        "replace it with the blob itself, from a backup",
                    )


def _small_blob_file(ex: _Examination, path: Path) -> None:
    """The small-blob file of a region (or its -wal, -shm): a plain 0600 file, one name."""
    st = ex.entry(path, secret=True, owner=ex.gateway_uid)
    if st is not None and st.st_nlink != 1:
        ex.add(
            path,
            "has a second name (a hard link): its blobs may be another folder's",
            "replace it with a copy of its own, from a backup",
        )


def _small_blobs_lost(ex: _Examination, folder: Path, database: str, *, skip: set[str]) -> None:
    """A region's small-blob file missing or empty while a record of the region has no
    blob file: that record's blob was in it, and is lost. Regions in *skip* keep their
    blobs in a bucket, not a folder."""
    if is_postgres_url(database) or not (ex.root / database).is_file():
        return
    try:
        db = sqlite3.connect(f"file:{ex.root / database}?mode=ro", uri=True)
    except sqlite3.Error:
        return
    try:
        regions = [r for (r,) in db.execute("SELECT DISTINCT region FROM records")]
        for region in sorted(set(regions) - skip):
            small = folder / region / SMALL_BLOBS_NAME
            if small.is_symlink() or _holds_small_blobs(small):
                continue  # a link is reported by _blobs
            newest = db.execute(
                "SELECT record_id FROM records WHERE region = ? AND log_index >= 0"
                " ORDER BY created_ms DESC LIMIT 64",
                (region,),
            )
            for (rid,) in newest:
                fan = hashlib.sha256(str(rid).encode()).hexdigest()[:2]
                if not (folder / region / fan / str(rid)).exists():
                    state = "missing" if not small.exists() else "holds no blob"
                    ex.add(
                        small,
                        f"{state}, yet record {rid} of region {region} has no blob file: "
                        "its blob was in this store, and none of the region's small records "
                        "would open",
                        "restore the store from a backup",
                    )
                    break
    except sqlite3.Error:
        return
    finally:
        db.close()


def _holds_small_blobs(path: Path) -> bool:
    """Whether a small-blob file holds a blob (False: absent, empty, no table, unreadable)."""
    if not path.exists():
        return False
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error:
        return False
    try:
        return db.execute("SELECT 1 FROM blobs LIMIT 1").fetchone() is not None
    except sqlite3.Error:
        return False
    finally:
        db.close()


def _principals(ex: _Examination, folder: Path, *, as_users: bool) -> None:
    st = ex.entry(folder, folder=True, secret=True)
    if st is None:
        return
    if as_users and st.st_uid == ex.gateway_uid:
        ex.add(
            folder,
            "belongs to the gateway's user, which may then sign as any principal",
            f"chown -R root {folder}",
        )
    for key in sorted(folder.glob("*.key")):
        ex.entry(key, secret=True)


def _links(ex: _Examination, root: Path, *, skip: Path) -> None:
    reported = {f.path for f in ex.found}
    for current, folders, files in os.walk(root):
        here = Path(current)
        if here == skip:
            folders[:] = []
            continue
        for name in [*folders, *files]:
            path = here / name
            if path.is_symlink() and str(path) not in reported:
                ex.add(path, "is a link", "replace it with what it points to, or remove it")


def doctor(
    directory: DeploymentArg = None,
    as_json: JsonOpt = False,
    deployment: DeploymentDir = None,
) -> None:
    """Check a deployment's files, permissions, owners and layout; one line per problem."""
    directory = given_deployment(directory, deployment)
    findings = examine(directory)
    problems = [f for f in findings if f.problem]
    if as_json:
        print_json(
            {
                "deployment": str(directory),
                "problems": [asdict(f) for f in problems],
                "notes": [asdict(f) for f in findings if not f.problem],
            }
        )
    else:
        for finding in findings:
            prefix = "problem" if finding.problem else "note"
            out.print(f"{prefix}: {finding.line()}", markup=False, highlight=False, soft_wrap=True)
        if not problems:
            out.print(f"{directory}: no problem found", markup=False, highlight=False)
    if problems:
        raise typer.Exit(ExitCode.ERROR)
