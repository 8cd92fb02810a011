"""Reconcile a deployment's metadata, blobs, subject keys and log, like a filesystem fsck.

Ingest writes a record's row *pending* (hidden from every reader), then its blob, then its
ingest entry, and only then gives the row its log index (``Gateway._store_logged``). A
crash leaves one of a few known states, and this module finds and settles each:

==========================  ======================================  =====================
state                       meaning                                 ``repair``
==========================  ======================================  =====================
pending, entry in the log   crashed after the append                complete: set index
pending, no entry           crashed before the append               quarantine (hidden)
quarantined, old            nothing will ever log it                delete row and blob
blob without a row          crashed at a blob write (older order)   delete the blob
==========================  ======================================  =====================

Everything else it reports is an integrity failure it does not touch: a visible row whose
entry is not its ingest entry, two rows at one index, a logged ingest without its row, a
missing blob, a blob whose hash or size is not the logged one, a subject key missing from
its custodian's store without a shred. A record of a subject with two homes is checked in
both: its entry must name the second home its key names, and her key must be at each
home's custodian (or shredded there). Repairs are safe beside a running gateway: a
quarantined row is still completed by the writer that logs it, and blobs are written after
their row, so a blob without a row is never one in flight.

:func:`recover` is the fast part the gateway runs at start-up (pending rows, the log's
tail); :func:`check` is the whole reconciliation (``sovra check``). The model is
transparency-dev/tessera's ``fsck``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from sovra.errors import BadRequest, IntegrityError, NotFound, SovraError
from sovra.keys.split import second_home
from sovra.ledger import TransparencyLog
from sovra.model import LogEntry, RecordMeta
from sovra.store import PENDING, BlobStore, RecordStore

__all__ = [
    "DEFAULT_GRACE_MS",
    "DEFAULT_TAIL",
    "CheckReport",
    "Finding",
    "Progress",
    "SubjectKeys",
    "check",
    "recover",
]

DEFAULT_GRACE_MS = 3_600_000
"""How old a row without a log index must be before it counts as abandoned (one hour).

An ingest holds its row pending for the time of one blob write and one log append; a row
younger than this may belong to a writer still at work, so it is not reported as a
problem, and once quarantined it is not removed before this much time has passed."""
DEFAULT_TAIL = 1024
"""Log entries :func:`recover` checks at start-up, counted back from the end."""
_PAGE = 1000
_UNLOGGED_BATCH = 10_000
_INGEST_MARK = b'"kind":"ingest"'

Progress = Callable[[str, int, int | None], None]
"""``(stage, done, total)``: called as each stage advances; *total* None when unknown."""

SubjectKeys = Callable[[str, str], Literal["present", "shredded", "missing"]]
"""``(jurisdiction, subject commitment)`` -> whether her custodian holds her key."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing out of place: what, where, and whether it was repaired."""

    kind: str
    at: str  # the record id or the blob (region/key) concerned
    detail: str
    problem: bool = True  # False: a note (a safe state), not an integrity failure
    repaired: bool = False

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "kind": self.kind,
            "at": self.at,
            "detail": self.detail,
            "problem": self.problem,
            "repaired": self.repaired,
        }


@dataclass(slots=True)
class CheckReport:
    """What a check saw (counts) and found; clean when no problem is left unrepaired."""

    counts: dict[str, int] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    not_checked: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[Finding]:
        """Integrity failures still standing (repaired ones excluded)."""
        return [f for f in self.findings if f.problem and not f.repaired]

    @property
    def clean(self) -> bool:
        """Whether nothing needs the operator."""
        return not self.problems

    def add(self, finding: Finding) -> None:
        """Record *finding* and count it by kind."""
        self.findings.append(finding)
        self.counts[finding.kind] = self.counts.get(finding.kind, 0) + 1

    def to_dict(self) -> dict[str, Any]:
        """JSON form, for ``sovra check --json``."""
        return {
            "clean": self.clean,
            "counts": dict(sorted(self.counts.items())),
            "problems": len(self.problems),
            "repaired": sum(f.repaired for f in self.findings),
            "findings": [f.to_dict() for f in self.findings],
            "not_checked": list(self.not_checked),
        }


def _ingest_fields(data: bytes) -> Mapping[str, Any] | None:
    """The fields of an ingest entry, or None for any other entry."""
    if _INGEST_MARK not in data:
        return None
    try:
        entry = LogEntry.from_bytes(data)
    except BadRequest:
        return None
    return entry.fields if entry.kind == "ingest" else None


@dataclass(frozen=True, slots=True)
class _Logged:
    """What an ingest entry says about its record."""

    index: int
    blob_sha256: str
    subject: str
    jurisdiction: str
    region: str
    second: tuple[str, str] | None = None  # a second home and her commitment there

    @classmethod
    def of(cls, index: int, fields: Mapping[str, Any]) -> _Logged:
        second = fields.get("second_home")
        return cls(
            index,
            str(fields.get("blob_sha256")),
            str(fields.get("subject")),
            str(fields.get("jurisdiction")),
            str(fields.get("region")),
            None if second is None else (str(second), str(fields.get("second_subject"))),
        )


def _find_ingest(log: TransparencyLog, meta: RecordMeta) -> int | None:
    """The index of *meta*'s ingest entry, searched among its subject's entries."""
    record_id = meta.header.record_id
    # Newest first: the entry of a pending row is among the last ones appended.
    for index in reversed(log.find(meta.header.subject)):
        fields = _ingest_fields(log.entry(index))
        if fields is not None and fields.get("record") == record_id:
            return index
    return None


def _settle_unlogged(
    store: RecordStore,
    log: TransparencyLog,
    report: CheckReport,
    metas: Iterable[RecordMeta],
    logged: Mapping[str, _Logged] | None,
    *,
    repair: bool,
    purge: bool,
    now_ms: int,
    grace_ms: int,
) -> None:
    """Complete, quarantine or purge rows without a log index (see the module's table)."""
    for meta in metas:
        rid = meta.header.record_id
        if logged is None:
            index = _find_ingest(log, meta)
        else:
            found = logged.get(rid)
            index = None if found is None else found.index
        if index is not None:
            if repair:
                try:
                    store.set_record_log_index(rid, index)
                except (BadRequest, NotFound) as exc:
                    report.add(Finding("index-conflict", rid, exc.message))
                    continue
            report.add(
                Finding(
                    "pending-logged",
                    rid,
                    f"its ingest entry is at log index {index} but the row has no index"
                    + ("; completed" if repair else ""),
                    repaired=repair,
                )
            )
            continue
        old = now_ms - meta.created_ms >= grace_ms
        if meta.log_index == PENDING:
            quarantined = repair and store.quarantine_record(rid)
            report.add(
                Finding(
                    "pending-unlogged",
                    rid,
                    "no ingest entry in the log, never readable"
                    + ("; quarantined" if quarantined else ""),
                    # Young: a writer may still be appending it. Hidden either way.
                    problem=old,
                    repaired=quarantined,
                )
            )
        elif purge and old:
            removed = store.delete_unlogged_record(rid)
            report.add(
                Finding(
                    "quarantined",
                    rid,
                    "no ingest entry after the grace time" + ("; removed" if removed else ""),
                    problem=False,
                    repaired=removed,
                )
            )
        else:
            report.add(Finding("quarantined", rid, "hidden, kept for inspection", problem=False))


def recover(
    store: RecordStore,
    log: TransparencyLog,
    *,
    now_ms: int,
    tail: int = DEFAULT_TAIL,
) -> CheckReport:
    """The start-up part of the check: settle rows without an index, check the log's tail.

    Rows whose ingest entry is in the log get their index; pending rows without one are
    quarantined (still hidden, and still completed if their writer logs them after all).
    The last *tail* ingest entries must each have a visible row at their index. Nothing
    is deleted here.

    Raises:
        IntegrityError: a stored row or log entry no longer parses.
    """
    report = CheckReport()
    unlogged = store.unlogged_records(_UNLOGGED_BATCH)
    report.counts["unlogged_rows"] = len(unlogged)
    _settle_unlogged(
        store,
        log,
        report,
        unlogged,
        None,
        repair=True,
        purge=False,
        now_ms=now_ms,
        grace_ms=DEFAULT_GRACE_MS,
    )
    size = log.size
    start = max(0, size - tail)
    for offset, data in enumerate(log.iter_entries(start, size)):
        fields = _ingest_fields(data)
        if fields is not None:
            _check_logged_row(store, report, start + offset, str(fields.get("record")))
    report.counts["tail_entries"] = size - start
    return _confirm(store, report)


def _check_logged_row(store: RecordStore, report: CheckReport, index: int, rid: str) -> None:
    """A logged ingest must have its row, visible, at its index."""
    try:
        found = store.record_log_index(rid)
    except BadRequest:
        found = None
    if found != index:
        state = "no row" if found is None else f"a row at log index {found}"
        report.add(Finding("logged-without-row", rid, f"ingest entry {index} has {state}"))


def check(
    store: RecordStore,
    log: TransparencyLog,
    blobs: Mapping[str, BlobStore],
    *,
    now_ms: int,
    subject_keys: SubjectKeys | None = None,
    repair: bool = False,
    grace_ms: int = DEFAULT_GRACE_MS,
    progress: Progress | None = None,
) -> CheckReport:
    """Reconcile every row, blob and ingest entry; with *repair*, settle what is safe.

    *subject_keys*, when given, says whether each visible record's subject still has her
    key at her custodian (or was shredded); without it subject keys are not checked.

    Raises:
        IntegrityError: a stored row no longer parses.
    """
    report = CheckReport()
    tick: Progress = progress or (lambda _s, _d, _t: None)
    size = log.size  # the log as of now; rows logged later wait for the next run
    logged = _scan_log(log, size, report, tick)
    rows, unlogged = _scan_rows(
        store, size, logged, blobs=blobs, subject_keys=subject_keys, report=report, tick=tick
    )
    _settle_unlogged(
        store,
        log,
        report,
        unlogged,
        logged,
        repair=repair,
        purge=repair,
        now_ms=now_ms,
        grace_ms=grace_ms,
    )
    for rid, found in logged.items():
        if rid not in rows:
            _check_logged_row(store, report, found.index, rid)
    for f in report.findings:
        if f.kind == "quarantined" and f.repaired:
            rows.pop(f.at, None)  # purged: its blob goes in the blob pass
    if subject_keys is None:
        report.not_checked.append("subject keys")
    _scan_blobs(store, blobs, rows, logged, report=report, tick=tick, repair=repair)
    return _confirm(store, report)


def _scan_log(
    log: TransparencyLog, size: int, report: CheckReport, tick: Progress
) -> dict[str, _Logged]:
    """Every ingest entry of the first *size*, by record id."""
    logged: dict[str, _Logged] = {}
    for index, data in enumerate(log.iter_entries(0, size)):
        fields = _ingest_fields(data)
        if fields is not None:
            rid = str(fields.get("record"))
            if rid in logged:
                report.add(
                    Finding("logged-twice", rid, f"ingest entries {logged[rid].index} and {index}")
                )
            logged[rid] = _Logged.of(index, fields)
        if index % _PAGE == 0:
            tick("log", index, size)
    tick("log", size, size)
    report.counts["log_entries"] = size
    report.counts["ingest_entries"] = len(logged)
    return logged


def _scan_rows(
    store: RecordStore,
    size: int,
    logged: Mapping[str, _Logged],
    *,
    blobs: Mapping[str, BlobStore],
    subject_keys: SubjectKeys | None,
    report: CheckReport,
    tick: Progress,
) -> tuple[dict[str, str], list[RecordMeta]]:
    """Check visible rows; return every row's region by id, and the rows without an index."""
    rows: dict[str, str] = {}
    unlogged: list[RecordMeta] = []
    at_index: dict[int, str] = {}
    total = store.count_records()
    visible, after = 0, ""
    while page := store.records_page(after, _PAGE):
        after = page[-1].header.record_id
        for meta in page:
            rid = meta.header.record_id
            rows[rid] = meta.header.region
            if meta.log_index < 0:
                unlogged.append(meta)
                continue
            visible += 1
            other = at_index.setdefault(meta.log_index, rid)
            if other != rid:
                report.add(
                    Finding("index-reused", rid, f"log index {meta.log_index} is also {other}'s")
                )
            if meta.log_index < size:
                _check_visible(meta, logged.get(rid), blobs, subject_keys, report)
        tick("records", visible, total)
    report.counts["rows"] = len(rows)
    report.counts["visible_rows"] = visible
    return rows, unlogged


def _scan_blobs(
    store: RecordStore,
    blobs: Mapping[str, BlobStore],
    rows: Mapping[str, str],
    logged: Mapping[str, _Logged],
    *,
    report: CheckReport,
    tick: Progress,
    repair: bool,
) -> None:
    """Every blob must belong to a row of its region; with *repair*, orphans go.

    The blob of a logged record whose row is lost is kept: that loss is reported as
    ``logged-without-row``, and the blob is evidence of it.
    """
    count = 0
    for region, in_region in blobs.items():
        for key in in_region.stored_keys():
            count += 1
            if count % _PAGE == 0:
                tick("blobs", count, None)
            # Read again before judging: blobs are written after their row, so a row
            # missing now was missing before the blob was listed too.
            if rows.get(key) == region or key in logged or store.record_log_index(key) is not None:
                continue
            if repair:
                in_region.delete(key)
            report.add(
                Finding(
                    "orphan-blob",
                    f"{region}/{key}",
                    "a blob no row names" + ("; removed" if repair else ""),
                    repaired=repair,
                )
            )
    tick("blobs", count, count)
    report.counts["blobs"] = count


def _check_visible(
    meta: RecordMeta,
    logged: _Logged | None,
    blobs: Mapping[str, BlobStore],
    subject_keys: SubjectKeys | None,
    report: CheckReport,
) -> None:
    """A visible row: its entry, its blob's hash and size, its subject's key."""
    h = meta.header
    rid = h.record_id
    if logged is None or logged.index != meta.log_index:
        where = "no ingest entry" if logged is None else f"its ingest entry at {logged.index}"
        report.add(
            Finding("entry-mismatch", rid, f"row at log index {meta.log_index}, log has {where}")
        )
        return
    said = (logged.subject, logged.jurisdiction, logged.region)
    if said != (h.subject, h.jurisdiction, h.region):
        report.add(
            Finding("entry-mismatch", rid, "its ingest entry names another subject or place")
        )
    try:
        other = second_home(h, meta.wrapped_key)
    except IntegrityError as exc:
        report.add(Finding("entry-mismatch", rid, exc.message))
        return
    homes = [(h.jurisdiction, h.subject)]
    if other is not None:
        homes.append((other.jurisdiction, other.subject))
    if logged.second != (None if other is None else homes[1]):
        report.add(
            Finding(
                "entry-mismatch",
                rid,
                "its ingest entry names another second home (or none) than its key does",
            )
        )
    in_region = blobs.get(h.region)
    if in_region is None:
        report.add(Finding("missing-blob", rid, f"region {h.region} has no blob store"))
        return
    try:
        blob = in_region.get(rid)
    except NotFound:
        report.add(Finding("missing-blob", rid, f"no blob in region {h.region}"))
        return
    except SovraError as exc:
        report.add(Finding("unreadable-blob", rid, exc.message))
        return
    if hashlib.sha256(blob).hexdigest() != logged.blob_sha256:
        report.add(Finding("blob-mismatch", rid, "the blob's hash is not its ingest entry's"))
    elif len(blob) != meta.blob_size:
        report.add(
            Finding(
                "blob-mismatch",
                rid,
                f"the blob is {len(blob)} bytes, its row says {meta.blob_size}",
            )
        )
    for n, (jurisdiction, subject) in enumerate(homes if subject_keys is not None else ()):
        assert subject_keys is not None
        if subject_keys(jurisdiction, subject) == "missing":
            where = "" if n == 0 else " in her second home"
            report.add(
                Finding(
                    "subject-key-missing",
                    rid,
                    f"custodian {jurisdiction} holds no key for its subject{where} and "
                    "shredded none",
                )
            )


def _confirm(store: RecordStore, report: CheckReport) -> CheckReport:
    """Drop findings a writer at work explains: rows that became visible meanwhile.

    A check beside a running gateway can read an entry before its writer sets the row's
    index; reading the row again after the scan tells a crash from a write in flight.
    """
    transient = {"pending-logged", "logged-without-row", "pending-unlogged"}
    kept: list[Finding] = []
    for f in report.findings:
        if f.kind in transient and not f.repaired and _visible(store, f.at):
            report.counts[f.kind] -= 1
            continue
        kept.append(f)
    report.findings = kept
    return report


def _visible(store: RecordStore, record_id: str) -> bool:
    try:
        found = store.record_log_index(record_id)
    except BadRequest:
        return False
    return found is not None and found >= 0
