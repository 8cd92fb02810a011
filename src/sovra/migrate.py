"""Move an embedded deployment (SQLite files, blob folders) to PostgreSQL and S3 buckets.

``sovra migrate DIR --database URL --blobs REGION=s3://...`` runs :func:`migrate`:

1. **check**, changing nothing when it refuses: DIR is an embedded deployment with no row
   left without its log index; the database is reachable and holds no deployment; each
   bucket is reachable, accepts the credentials and holds no blob;
2. **blobs**: each record's ciphertext, read from its region's folder, into its region's
   bucket, batch by batch (one segment object per batch, :meth:`BlobStore.put_many`);
3. **shared state**: principals, grants and their revocations, the unexpired token
   nonces, the bulk guard's journal, the log (entries with their tags, checkpoints,
   witness cosignatures) and the records' metadata, in that order (a row is written only
   once its entry and its blob are there);
4. **verify**: the log in the database reproduces the same root at the same size and
   its latest checkpoint verifies under the log key; every entry matches its leaf; every
   record's blob is read back from its bucket and checked against its ingest entry's
   digest and its row's size (:func:`sovra.check.check`); the counts agree;
5. **tiles**, with a tile place (``--tiles FOLDER|s3://bucket[/prefix]``, checked before
   anything is written as ``sovra init --tiles`` checks it: no other log's checkpoint
   there, a bucket reachable with the credentials): the moved log's tiles, entry bundles
   and newest checkpoint (with witnesses, the newest their quorum cosigned) are published
   there, none signed anew, then replayed from there by the auditor's verifier
   (:func:`sovra_verify.audit.audit_log`, what ``sovra-verify tiles`` runs);
6. **config**: ``sovra.toml`` names the database and the buckets, and with a tile place
   its ``[log.tiles]`` table (the old file is kept as ``sovra.toml.embedded``).

Safe to run again after a failure, and it carries on where it stopped: a state file
(``migrate.state``) names the target while a move is under way, and only that target
may then hold part of this deployment; blobs, rows and log entries already there are
checked and skipped. The embedded files are left as they were (remove them once the moved
deployment serves). The custodians' subject keys stay with the custodians: the gateway's
database must never hold them (``sovra custodian serve --database`` moves a custodian to
a PostgreSQL database of its own).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sovra import check as checker
from sovra._regions import open_blob_store, open_tile_store
from sovra.config import Config, RegionConfig, TilesConfig, render_region, render_tiles
from sovra.errors import ConfigError, IntegrityError, NotFound, SovraError
from sovra.keys import load_ed25519, read_secret
from sovra.ledger import NoteSigner, SQLiteLogStorage, TransparencyLog, verify_checkpoint
from sovra.ledger.log import MAX_READ
from sovra.ledger.tiles_publish import TilePublisher
from sovra.model import RecordMeta
from sovra.store import (
    BlobStoreBase,
    MetadataStore,
    SQLiteGuardJournal,
    SQLiteMetadataStore,
    is_postgres_url,
    seal_key,
)
from sovra.targets import require_known_regions, require_unused_tiles
from sovra_verify.audit import audit_log
from sovra_verify.note import NoteVerifier
from sovra_verify.static import StaticFiles

__all__ = ["STATE_NAME", "MoveReport", "Progress", "migrate"]

STATE_NAME = "migrate.state"
"""The file that names the target of a move under way, in the deployment's folder."""
_CONFIG = "sovra.toml"
_BACKUP = "sovra.toml.embedded"
_GUARD = "guard.db"
_PAGE = 1000
_BATCH_BLOBS = 500
_BATCH_BYTES = 8 << 20
_LOG_BATCH = 5000
_COSIGNATURES = 100  # rows one add_cosignatures call takes

Progress = Callable[[str, int, int | None], None]
"""``(stage, done, total)``: called as each stage advances (``total`` None: unknown)."""


@dataclass
class MoveReport:
    """What :func:`migrate` moved, checked and how long it took."""

    counts: dict[str, int] = field(default_factory=dict)
    resumed: bool = False
    seconds: dict[str, float] = field(default_factory=dict)
    checkpoint_size: int = 0
    root_hash: str = ""
    tiles: dict[str, Any] | None = None
    """With a tile place: ``where``, the ``size`` published and verified there,
    ``files_written`` and ``entries_verified``."""

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready values."""
        facts = {
            "counts": dict(self.counts),
            "resumed": self.resumed,
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
            "log": {"size": self.counts.get("log_entries", 0), "root": self.root_hash,
                    "checkpoint_size": self.checkpoint_size},
        }  # fmt: skip
        if self.tiles is not None:
            facts["tiles"] = dict(self.tiles)
        return facts


def migrate(
    root: Path,
    database: str,
    regions: Sequence[RegionConfig],
    *,
    tiles: TilesConfig | None = None,
    progress: Progress | None = None,
    clock: Callable[[], float] = time.time,
) -> MoveReport:
    """Move the embedded deployment in *root* to *database* and the buckets of *regions*,
    and with *tiles* (:func:`sovra.targets.parse_tiles`) publish its log there.

    Raises:
        ConfigError: *root* is not an embedded deployment, or has rows without a log
            index; the database, a bucket or the tile place holds another deployment
            (or an earlier move to another target is unfinished); a region is unknown
            or its bucket cannot be used; the deployment changed during the move.
        Unavailable: the database or an S3 endpoint cannot be reached (nothing written
            when it happens during the check; otherwise run it again).
        IntegrityError: a blob or a log entry of the source is damaged, or what was
            moved (the published tiles among it) does not verify.
    """
    tick: Progress = progress or (lambda _s, _d, _t: None)
    source = Config.load(root / _CONFIG)
    _require_embedded(root, source, database)
    names = [r.name for r in regions]
    require_known_regions(source, names)
    text = (root / _CONFIG).read_text(encoding="utf-8")
    target_text = _target_config(text, database, regions, tiles)
    target = Config.from_text(target_text, f"the moved {root / _CONFIG}")
    if tiles is not None and target.log_tiles != tiles:
        raise ConfigError(
            f"{root / _CONFIG} sets the log's tiles in a way sovra migrate cannot replace "
            "(a tiles key of [log]?): remove it, then run sovra migrate again"
        )
    report = MoveReport()
    started = clock()
    with ExitStack() as stack:
        parts = _Parts.open(root, source, target, stack)
        report.resumed = _require_target(root, parts, database, regions, tiles)
        _write_state(root, database, regions, tiles)
        marks = {"check": clock()}
        _move_blobs(parts, names, tick, report)
        marks["blobs"] = clock()
        _move_state(parts, tick, report, now_ms=int(clock() * 1000))
        marks["shared state"] = clock()
        moved = _verify(parts, tick, report, now_ms=int(clock() * 1000))
        marks["verify"] = clock()
        if tiles is not None:
            _publish_tiles(parts, moved, tick, report)
            marks["tiles"] = clock()
        _require_unchanged(parts, report)
    _write_config(root, target_text)
    (root / STATE_NAME).unlink(missing_ok=True)
    before = started
    for stage, at in marks.items():
        report.seconds[stage] = at - before
        before = at
    report.seconds["total"] = clock() - started
    return report


# -- the parts, opened once ----------------------------------------------------------------


@dataclass
class _Parts:
    """The source's and the target's stores, open for the move."""

    root: Path
    source: Config
    target: Config
    db_path: Path
    rows: SQLiteMetadataStore
    raw: sqlite3.Connection  # the source's file, read-only: tables no store enumerates
    log: SQLiteLogStorage
    blobs: dict[str, BlobStoreBase]
    to_rows: MetadataStore
    to_log: Any  # PostgresLogStorage
    to_blobs: dict[str, BlobStoreBase]
    signer: NoteSigner
    guard_key: bytes

    @classmethod
    def open(cls, root: Path, source: Config, target: Config, stack: ExitStack) -> _Parts:
        from sovra.ledger.postgres import PostgresLogStorage
        from sovra.store.postgres import PostgresMetadataStore

        db_path = root / source.database
        rows = SQLiteMetadataStore(db_path)
        stack.callback(rows.close)
        raw = sqlite3.connect(f"{db_path.absolute().as_uri()}?mode=ro", uri=True, timeout=30)
        stack.callback(raw.close)
        log = SQLiteLogStorage(db_path)
        stack.callback(log.close)
        regions = dict.fromkeys(r for j in source.jurisdictions.values() for r in j.regions)
        blobs: dict[str, BlobStoreBase] = {}
        to_blobs: dict[str, BlobStoreBase] = {}
        for region in regions:
            blobs[region] = open_blob_store(root, source, region)
            stack.callback(blobs[region].close)
            if target.region(region).is_s3:
                to_blobs[region] = open_blob_store(root, target, region)
                stack.callback(to_blobs[region].close)
            else:
                to_blobs[region] = blobs[region]
        to_rows = PostgresMetadataStore(target.database)
        stack.callback(to_rows.close)
        to_log = PostgresLogStorage(target.database)
        stack.callback(to_log.close)
        key = load_ed25519(root / "keys" / "log.key")
        secret = read_secret(root / "keys" / "commitment.secret", expected_len=32)
        return cls(
            root, source, target, db_path, rows, raw, log, blobs, to_rows, to_log, to_blobs,
            NoteSigner(source.origin, key), seal_key(secret),
        )  # fmt: skip


# -- checks before anything is written ------------------------------------------------------


def _require_embedded(root: Path, config: Config, database: str) -> None:
    if is_postgres_url(config.database):
        raise ConfigError(
            f"{root} is not an embedded deployment: its database is PostgreSQL already "
            "(sovra migrate moves a deployment made by `sovra init DIR` without --database)"
        )
    in_buckets = [r for r in config.regions.values() if r.is_s3]
    if in_buckets:
        raise ConfigError(
            f"{root} is not an embedded deployment: region {in_buckets[0].name} keeps its "
            f"blobs in {in_buckets[0].blobs} already"
        )
    if not (root / config.database).is_file():
        raise ConfigError(f"{root / config.database} is missing: nothing to move")
    if not is_postgres_url(database):
        raise ConfigError("--database takes the postgresql:// URL to move the deployment to")


def _require_target(
    root: Path,
    parts: _Parts,
    database: str,
    regions: Sequence[RegionConfig],
    tiles: TilesConfig | None,
) -> bool:
    """Refuse a target that holds anything but an unfinished move of this deployment to
    it; whether this run carries one on.

    Raises:
        ConfigError: rows without a log index in the source, a target that holds
            another deployment (a tile place another log's checkpoint), or an
            unfinished move to another target.
        Unavailable: the tile bucket cannot be reached.
    """
    if parts.rows.unlogged_records(1):
        raise ConfigError(
            f"{root} has records without a log index (a crash left them): run "
            f"`sovra check -d {root} --repair`, then sovra migrate again"
        )
    state = _read_state(root)
    if state is not None and state != _state(database, regions, tiles):
        raise ConfigError(
            f"an earlier sovra migrate of {root} to another database or other buckets did "
            f"not finish ({root / STATE_NAME}): run it again with the same --database, "
            "--blobs and --tiles, or remove that file if its target is to be abandoned"
        )
    if tiles is not None:
        # This log's own checkpoint may be there: the place it publishes to already, or
        # an unfinished move's.
        require_unused_tiles(root, parts.target, ours=parts.signer.vkey)
    resuming = state is not None
    held = (
        bool(parts.to_rows.list_principals())
        or parts.to_rows.count_records() > 0
        or parts.to_log.size() > 0
    )
    if held and not resuming:
        raise ConfigError(
            "the target database already holds a deployment (principals, records or log "
            "entries): give each deployment a database (or a schema) of its own"
        )
    if resuming:
        return True
    for region, store in parts.to_blobs.items():
        if store is parts.blobs[region]:
            continue
        held_key = next(iter(store.stored_keys()), None)
        if held_key is not None:
            raise ConfigError(
                f"region {region}'s {parts.target.region(region).blobs} already holds blobs "
                f"(record {held_key}, at least): give each deployment a bucket or prefix of "
                "its own"
            )
    return False


def _state(
    database: str, regions: Sequence[RegionConfig], tiles: TilesConfig | None
) -> dict[str, Any]:
    # The URL's digest, not the URL: it may carry a password.
    state: dict[str, Any] = {
        "database_sha256": hashlib.sha256(database.encode()).hexdigest(),
        "blobs": {r.name: r.blobs for r in sorted(regions, key=lambda r: r.name)},
    }
    if tiles is not None:
        state["tiles"] = tiles.location
    return state


def _read_state(root: Path) -> dict[str, Any] | None:
    try:
        found = json.loads((root / STATE_NAME).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except ValueError:
        raise ConfigError(f"{root / STATE_NAME} is damaged: remove it to start over") from None
    return found if isinstance(found, dict) else {}


def _write_state(
    root: Path, database: str, regions: Sequence[RegionConfig], tiles: TilesConfig | None
) -> None:
    path = root / STATE_NAME
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(_state(database, regions, tiles), f)
        f.flush()
        os.fsync(f.fileno())


# -- moving --------------------------------------------------------------------------------


def _pages(store: MetadataStore) -> Iterator[list[RecordMeta]]:
    after = ""
    while page := store.records_page(after, _PAGE):
        after = page[-1].header.record_id
        yield page


def _move_blobs(parts: _Parts, regions: Sequence[str], tick: Progress, report: MoveReport) -> None:
    """Every record's blob of a region given a bucket, into it, batch by batch."""
    present = {r: set(parts.to_blobs[r].stored_keys()) for r in regions}
    total = parts.rows.count_records()
    pending: dict[str, list[RecordMeta]] = {r: [] for r in regions}
    done = moved = 0

    def flush(region: str) -> None:
        nonlocal moved
        batch = pending[region]
        if batch:
            keys = [m.header.record_id for m in batch]
            data = parts.blobs[region].get_many(keys)
            parts.to_blobs[region].put_many(list(zip(keys, data, strict=True)))
            moved += len(batch)
            pending[region] = []

    tick("blobs", 0, total)
    for page in _pages(parts.rows):
        for meta in page:
            region, rid = meta.header.region, meta.header.record_id
            if region in pending and rid not in present[region]:
                batch = pending[region]
                batch.append(meta)
                if len(batch) >= _BATCH_BLOBS or sum(m.blob_size for m in batch) >= _BATCH_BYTES:
                    flush(region)
        for region in regions:
            flush(region)
        done += len(page)
        tick("blobs", done, total)
    report.counts["blobs_moved"] = moved


def _move_state(parts: _Parts, tick: Progress, report: MoveReport, *, now_ms: int) -> None:
    """Principals, grants, nonces, the guard's journal, the log, then the records' rows."""
    principals = parts.rows.list_principals()
    for principal in principals:
        parts.to_rows.put_principal(principal)  # create or replace: again is harmless
    report.counts["principals"] = len(principals)
    report.counts["grants"] = _move_grants(parts)
    report.counts["nonces"] = _move_nonces(parts, now_ms)
    report.counts["guard_events"] = _move_journal(parts)
    _move_log(parts, tick, report)
    _move_rows(parts, tick, report)


def _move_grants(parts: _Parts) -> int:
    rows = parts.raw.execute(
        "SELECT grant_id, digest, grant_json, revoked_ms FROM grants ORDER BY grant_id"
    ).fetchall()
    for grant_id, digest, grant_json, revoked_ms in rows:
        try:
            parts.to_rows.get_grant(grant_id)
        except NotFound:
            parts.to_rows.put_grant(grant_id, digest, bytes(grant_json))
        if revoked_ms is not None and not parts.to_rows.grant_revoked(grant_id):
            parts.to_rows.revoke_grant(grant_id, int(revoked_ms))
    withdrawn = parts.raw.execute(
        "SELECT grant_id, jurisdiction, withdrawn_ms FROM grant_withdrawals "
        "ORDER BY grant_id, jurisdiction"
    ).fetchall()
    for grant_id, jurisdiction, withdrawn_ms in withdrawn:
        if jurisdiction not in parts.to_rows.grant_withdrawals(grant_id):
            parts.to_rows.withdraw_cosignature(grant_id, jurisdiction, int(withdrawn_ms))
    return len(rows)


def _move_nonces(parts: _Parts, now_ms: int) -> int:
    """Unexpired nonces (as their hashes), so a token spent before the move stays spent."""
    import psycopg

    rows = parts.raw.execute(
        "SELECT principal_id, nonce_sha256, expires_ms FROM token_nonces WHERE expires_ms > ?",
        (now_ms,),
    ).fetchall()
    if rows:
        with psycopg.connect(parts.target.database) as conn, conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO token_nonces (principal_id, nonce_sha256, expires_ms) "
                "VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                rows,
            )
    return len(rows)


def _move_journal(parts: _Parts) -> int:
    """The bulk guard's events, opened here and sealed again there, in one session."""
    from sovra.store.postgres import PostgresGuardJournal

    path = parts.root / _GUARD
    if not path.is_file():
        return 0
    source = SQLiteGuardJournal(path, parts.guard_key)
    target = PostgresGuardJournal(parts.target.database, parts.guard_key)
    try:
        events = source.read(0)
        with target.session() as session:
            if events and not session.read(0):
                session.append([(kind, t, data) for _, kind, t, data in events])
    finally:
        source.close()
        target.close()
    return len(events)


def _tags(raw: sqlite3.Connection, start: int, end: int) -> dict[int, list[str]]:
    """The tags of entries ``[start, end)``, from every table the SQLite log keeps them in."""
    found: dict[int, list[str]] = {}
    for table in ("log_tags", "log_tags_by_epoch", "log_tags_recent"):
        rows = raw.execute(
            f"SELECT idx, tag FROM {table} WHERE idx >= ? AND idx < ?",  # noqa: S608 - fixed names
            (start, end),
        ).fetchall()
        for idx, tag in rows:
            tags = found.setdefault(int(idx), [])
            if tag not in tags:
                tags.append(str(tag))
    return found


def _move_log(parts: _Parts, tick: Progress, report: MoveReport) -> None:
    """Entries with their tags (after the ones already moved, which must match), then the
    checkpoints and the witnesses' cosignatures."""
    size, have = parts.log.size(), parts.to_log.size()
    if have > size:
        raise ConfigError(f"the target log holds {have} entries, this deployment's {size}")
    for start in range(0, have, MAX_READ):
        end = min(start + MAX_READ, have)
        if parts.to_log.read_leaf_hashes(start, end) != parts.log.read_leaf_hashes(start, end):
            raise ConfigError("the target database holds another log than this deployment's")
    tick("log", have, size)
    for start in range(have, size, _LOG_BATCH):
        end = min(start + _LOG_BATCH, size)
        entries = parts.log.read_entries(start, end)
        leaves = parts.log.read_leaf_hashes(start, end)
        tags = _tags(parts.raw, start, end)
        got = parts.to_log.append_batch(
            [
                (e, leaf, tags.get(start + n, []))
                for n, (e, leaf) in enumerate(zip(entries, leaves, strict=True))
            ]
        )
        if got != list(range(start, end)):
            raise IntegrityError(f"the target log numbered entries {start}.. as {got[0]}..")
        tick("log", end, size)
    notes, moved = parts.log.checkpoints(), parts.to_log.checkpoints()
    if notes[: len(moved)] != moved:
        raise ConfigError("the target database holds other checkpoints than this deployment's")
    _add_checkpoints(parts, notes[len(moved) :], size)
    cosigned: dict[int, list[tuple[str, int, str]]] = {}
    for at, witness, stamp, line in parts.raw.execute(
        "SELECT size, witness, timestamp, line FROM log_cosignatures ORDER BY size"
    ):
        cosigned.setdefault(int(at), []).append((str(witness), int(stamp), str(line)))
    for at, rows in cosigned.items():
        for first in range(0, len(rows), _COSIGNATURES):
            # The newest line per witness is kept: adding them again is harmless.
            parts.to_log.add_cosignatures(at, rows[first : first + _COSIGNATURES])
    report.counts["log_entries"] = size
    report.counts["checkpoints"] = len(notes)
    report.counts["cosignatures"] = sum(len(r) for r in cosigned.values())


def _add_checkpoints(parts: _Parts, notes: Sequence[str], size: int) -> None:
    """*notes*, each verified under the log key, in order, in one transaction (a log that
    publishes after every batch has about as many checkpoints as entries)."""
    import psycopg

    rows: list[tuple[int, str]] = []
    for note in notes:
        at = verify_checkpoint(note, parts.signer.vkey).size
        if at > size or (rows and at < rows[-1][0]):
            raise IntegrityError(f"checkpoint {at} of this deployment's log is out of order")
        rows.append((at, note))
    if rows:
        with psycopg.connect(parts.target.database) as conn, conn.cursor() as cur:
            cur.executemany("INSERT INTO log_checkpoints (size, note) VALUES (%s, %s)", rows)


def _move_rows(parts: _Parts, tick: Progress, report: MoveReport) -> None:
    """Every record's row, with its log index; rows already moved are skipped."""
    present = {m.header.record_id for page in _pages(parts.to_rows) for m in page}
    total = parts.rows.count_records()
    done = 0
    tick("records", 0, total)
    for page in _pages(parts.rows):
        missing = [m for m in page if m.header.record_id not in present]
        if missing:
            parts.to_rows.put_records(missing)
        done += len(page)
        tick("records", done, total)
    report.counts["records"] = total


# -- verifying -----------------------------------------------------------------------------


def _verify(parts: _Parts, tick: Progress, report: MoveReport, *, now_ms: int) -> TransparencyLog:
    """The moved log, rows and blobs, read back from the target; the moved log, open.

    Raises:
        IntegrityError: anything moved is not what the source holds.
    """
    size = parts.log.size()
    origin = parts.source.origin
    # Opening the log rebuilds its tree from the stored leaves and checks the latest
    # stored checkpoint against it (IntegrityError if they differ).
    moved = TransparencyLog(parts.to_log, parts.signer, origin)
    here = TransparencyLog(parts.log, parts.signer, origin)
    if moved.size != size or moved.root() != here.root():
        raise IntegrityError(
            f"the moved log ({moved.size} entries) does not reproduce this deployment's root "
            f"at size {size}"
        )
    latest = moved.latest_checkpoint()
    if latest != parts.log.latest_checkpoint():
        raise IntegrityError("the moved log's latest checkpoint is not this deployment's")
    if latest is not None:
        cp = verify_checkpoint(latest, parts.signer.vkey)
        if cp.root_hash != moved.root(cp.size):
            raise IntegrityError(f"the moved log does not reproduce checkpoint {cp.size}")
        report.checkpoint_size = cp.size
    for start in range(0, size, MAX_READ):
        moved.entries(start, min(start + MAX_READ, size))  # each checked against its leaf
    report.root_hash = moved.root().hex()
    order: dict[str, list[str]] = {}
    for page in _pages(parts.to_rows):
        for meta in page:
            order.setdefault(meta.header.region, []).append(meta.header.record_id)
    result = checker.check(
        parts.to_rows,
        moved,
        {r: _ReadAhead(store, order.get(r, [])) for r, store in parts.to_blobs.items()},
        now_ms=now_ms,
        progress=lambda stage, done, total: tick(f"verify {stage}", done, total),
    )
    if result.problems:
        first = result.problems[0]
        raise IntegrityError(
            f"the moved deployment does not verify: {len(result.problems)} problem(s), "
            f"first {first.kind} at {first.at}: {first.detail}"
        )
    expected = {"visible_rows": parts.rows.count_records(), "log_entries": size}
    for what, count in expected.items():
        if result.counts.get(what) != count:
            raise IntegrityError(
                f"the moved deployment has {result.counts.get(what)} {what}, this one {count}"
            )
    for what, query in (
        ("principals", "SELECT count(*) FROM principals"),
        ("grants", "SELECT count(*) FROM grants"),
        ("checkpoints", "SELECT count(*) FROM log_checkpoints"),
        ("cosignatures", "SELECT count(*) FROM log_cosignatures"),
    ):
        (count,) = parts.raw.execute(query).fetchone()
        if _target_count(parts, query) != int(count):
            raise IntegrityError(f"the moved deployment does not hold this one's {count} {what}")
    report.counts["blobs_verified"] = result.counts.get("visible_rows", 0)
    return moved


def _publish_tiles(parts: _Parts, log: TransparencyLog, tick: Progress, report: MoveReport) -> None:
    """The moved *log*'s tiles into the ``[log.tiles]`` place, up to its newest checkpoint
    (signing none: the moved log stays the same as this one), then audited from there as
    any auditor would: every entry hashed, every tile recomputed, the checkpoint's
    signature and root checked under the log key. Files an unfinished move published are
    there already and are checked, not written again.

    Raises:
        IntegrityError: the place holds other bytes than the log's, or its copy does not
            verify.
        Unavailable: the place cannot be reached.
        ConfigError: the place refuses the writes.
    """
    from sovra.deployment import log_cosignatures

    store = open_tile_store(parts.root, parts.target)
    assert store is not None  # the target has [log.tiles]
    try:
        report.tiles = {"where": store.where, "size": 0, "files_written": 0,
                        "entries_verified": 0}  # fmt: skip
        if log.latest_checkpoint() is None:
            return  # nothing signed yet: the server publishes once it signs a checkpoint
        cosignatures = log_cosignatures(parts.root, parts.target, log, parts.to_log)
        remove = parts.target.log_tiles is None or parts.target.log_tiles.remove_partial_tiles
        publisher = TilePublisher(log, store, cosignatures, sign=False, remove_partials=remove)
        tick("tiles", 0, None)
        done = publisher.publish(progress=lambda n, total: tick("tiles", n, total))
        copy = StaticFiles(store.get, store.where)
        key = NoteVerifier.from_vkey(parts.signer.vkey)
        try:
            audit = audit_log(copy, key, progress=lambda n, total: tick("verify tiles", n, total))
        except IntegrityError as exc:
            raise IntegrityError(
                f"the log's tiles published to {store.where} do not verify: {exc.message}"
            ) from None
        if audit.size != done.size:
            raise IntegrityError(
                f"{store.where} holds the log up to size {audit.size}, not the {done.size} "
                "just published"
            )
        report.tiles.update(
            size=audit.size, files_written=done.files, entries_verified=audit.entries
        )
    finally:
        store.close()


class _ReadAhead:
    """A region's store for the verification, which asks for its blobs one by one in
    record-id order (:func:`sovra.check.check`): each miss reads the next blobs of that
    order in one :meth:`~sovra.store.protocols.BlobStore.get_many` (a ranged GET per run
    of a segment), and hands them out as they are asked for. Every byte checked is still
    read back from the store; a blob the batch cannot read is read alone, for its own
    error."""

    def __init__(self, inner: BlobStoreBase, order: list[str]) -> None:
        self._inner = inner
        self._order = order
        self._at = {key: n for n, key in enumerate(order)}
        self._ready: dict[str, bytes] = {}
        self._tried: set[str] = set()

    @property
    def region(self) -> str:
        return self._inner.region

    def get(self, key: str) -> bytes:
        if key not in self._ready and key not in self._tried and key in self._at:
            self._fill(self._at[key])
        found = self._ready.pop(key, None)
        return self._inner.get(key) if found is None else found

    def _fill(self, start: int) -> None:
        keys = self._order[start : start + _BATCH_BLOBS]
        self._tried.update(keys)
        try:
            self._ready.update(zip(keys, self._inner.get_many(keys), strict=True))
        except SovraError:
            for key in keys:
                try:
                    self._ready[key] = self._inner.get(key)
                except SovraError:
                    continue  # get() raises it again when the check asks for the key

    def stored_keys(self) -> Iterator[str]:
        return self._inner.stored_keys()

    def get_many(self, keys: Sequence[str]) -> list[bytes]:
        return self._inner.get_many(keys)

    def exists(self, key: str) -> bool:
        return self._inner.exists(key)

    def put(self, key: str, data: bytes) -> None:
        raise ConfigError("the verification does not write")

    def put_many(self, items: Sequence[tuple[str, bytes]]) -> None:
        raise ConfigError("the verification does not write")

    def delete(self, key: str) -> None:
        raise ConfigError("the verification does not write")

    def close(self) -> None:
        return None


def _target_count(parts: _Parts, query: str) -> int:
    import psycopg

    with psycopg.connect(parts.target.database) as conn:
        row = conn.execute(query).fetchone()
    return int(row[0]) if row is not None else 0


def _require_unchanged(parts: _Parts, report: MoveReport) -> None:
    """Refuse to switch over when the source grew during the move (a gateway running)."""
    if parts.log.size() != report.counts.get("log_entries") or parts.rows.count_records() != (
        report.counts.get("records")
    ):
        raise ConfigError(
            "the deployment changed during the move (is a gateway serving it?): stop it "
            "and run sovra migrate again; it carries on from what was moved"
        )


# -- the configuration ---------------------------------------------------------------------

_TABLE = re.compile(r"^\s*\[([^\]]+)\]\s*(#.*)?$")


def _target_config(
    text: str,
    database: str,
    regions: Sequence[RegionConfig],
    tiles: TilesConfig | None = None,
) -> str:
    """*text* with its database set to *database*, each region's bucket settings added
    (into the region's table if it has one, else as a new table) and, with *tiles*, its
    ``[log.tiles]`` table replaced by that one (where the table, or the commented one
    ``sovra init`` writes, was; else at the end); comments stay."""
    lines = text.splitlines()
    section = ""
    done_db = False
    tables: dict[str, int] = {}
    for n, line in enumerate(lines):
        header = _TABLE.match(line)
        if header:
            section = header.group(1).strip()
            tables[section] = n
            continue
        if section == "deployment" and re.match(r"^\s*database\s*=", line):
            lines[n] = f"database = {json.dumps(database)}"
            done_db = True
    inserts: list[tuple[int, list[str]]] = []
    if not done_db:
        inserts.append((tables["deployment"] + 1, [f"database = {json.dumps(database)}"]))
    tail: list[str] = []
    for region in regions:
        table = render_region(region)
        at = tables.get(f"regions.{region.name}")
        if at is None:
            tail += ["", *table]
        else:
            inserts.append((at + 1, table[1:]))
    for at, new in sorted(inserts, reverse=True):
        lines[at:at] = new
    if tiles is not None:
        start, end = _tiles_table(lines)
        if start is None:
            tail += ["", *render_tiles(tiles)]
        else:
            lines[start:end] = render_tiles(tiles)
    return "\n".join([*lines, *tail]) + "\n"


_COMMENTED_TILES = re.compile(r"^#\s*\[log\.tiles\]\s*$")
_COMMENTED_KEY = re.compile(r"^#\s*[a-z_]+\s*=")


def _tiles_table(lines: list[str]) -> tuple[int | None, int]:
    """Where the ``[log.tiles]`` table is in *lines*: its header up to its last setting
    (the comments before the next table stay with that one); else the commented table
    ``sovra init`` writes and its commented settings; ``(None, 0)`` for neither."""
    for n, line in enumerate(lines):
        header = _TABLE.match(line)
        if header and header.group(1).strip() == "log.tiles":
            end = n + 1
            for m in range(n + 1, len(lines)):
                if _TABLE.match(lines[m]):
                    break
                if lines[m].strip() and not lines[m].lstrip().startswith("#"):
                    end = m + 1
            return n, end
    for n, line in enumerate(lines):
        if _COMMENTED_TILES.match(line):
            end = n + 1
            while end < len(lines) and _COMMENTED_KEY.match(lines[end]):
                end += 1
            return n, end
    return None, 0


def _write_config(root: Path, text: str) -> None:
    """Keep the old ``sovra.toml`` beside the new one, and replace it atomically."""
    path = root / _CONFIG
    backup = root / _BACKUP
    st = path.stat()
    if not backup.exists():
        backup.write_bytes(path.read_bytes())
        os.chmod(backup, st.st_mode & 0o777)
    tmp = root / f".{_CONFIG}.tmp"
    with closing(os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w")) as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, st.st_mode & 0o777)
    if os.geteuid() == 0:
        os.chown(tmp, st.st_uid, st.st_gid)
    os.replace(tmp, path)
