"""Counts over the public log for the page: decisions, grants, findings, growth over time.

A :class:`Tally` reads each log entry once, in order, and files its index under the
facets it belongs to (``effect by jurisdiction``, ``grant used``, ``found in PL`` ...), so
every number the page shows is the length of a list of log indices, and the page links
each number to the entries behind it. Only what the log already says publicly is
counted: kinds of data and actions, never values; subjects only as their commitments.

The subject's jurisdiction of a decision is the one her records were ingested under (an
``ingest`` entry names record, subject commitment and jurisdiction; a subject of two
homes counts under both, her entry naming her second home and commitment); a decision that
names its subjects only by root and count (a bulk request) has jurisdiction ``unlisted``.
A requester's jurisdiction and role come from the registered principals.
"""

from __future__ import annotations

import threading
from array import array
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sovra.errors import SovraError
from sovra.model import ENTRY_KINDS, LogEntry, Principal

__all__ = ["BULK_POLICIES", "Tally", "buckets", "span"]

BULK_POLICIES = (
    "bulk-collection-per-request",
    "bulk-collection-per-window",
    "bulk-collection-per-jurisdiction",
    "foreign-subject-budget",
)
"""The bulk-collection guard's rules (policy/packs/gdsi.cedar): a deny by one is a refusal
of the guard."""

_KINDS = tuple(sorted(ENTRY_KINDS))
"""Each kind of entry, numbered (its place here) in the tally's compact arrays."""
_EFFECTS = ("", "allow", "deny")
UNLISTED = "unlisted"
UNKNOWN = "unknown"


@dataclass(slots=True)
class _Grant:
    grant_id: str
    digest: str
    approver: str
    grantee: str
    purpose: str
    not_after: int
    registered: int


@dataclass(slots=True)
class Tally:
    """Facets of the log's first :attr:`size` entries, extended on each :meth:`update`.

    *principal* looks a principal up by id (``None`` when unknown). Thread-safe: routes
    run in a thread pool.
    """

    principal: Callable[[str], Principal | None]
    size: int = 0
    facets: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    sums: dict[str, dict[str, int]] = field(default_factory=dict)
    times: array[int] = field(default_factory=lambda: array("q"))
    kinds: array[int] = field(default_factory=lambda: array("B"))
    effects: array[int] = field(default_factory=lambda: array("B"))
    grants: dict[str, _Grant] = field(default_factory=dict)
    _by_digest: dict[str, str] = field(default_factory=dict)
    _record_j: dict[str, str] = field(default_factory=dict)
    _subject_j: dict[str, str] = field(default_factory=dict)
    _principals: dict[str, Principal | None] = field(default_factory=dict)
    _summary: tuple[tuple[int, int, tuple[str, ...]], dict[str, Any]] | None = None
    _lock: threading.RLock = field(default_factory=threading.RLock)

    def update(self, size: int, read: Callable[[int, int], Iterable[bytes]]) -> None:
        """Take in entries ``[self.size, size)``, read with *read(start, end)*."""
        with self._lock:
            if size <= self.size:
                return
            for offset, data in enumerate(read(self.size, size)):
                self._take(self.size + offset, data)
            self.size = size

    def summary(self, facets: Iterable[str], width: int) -> dict[str, Any]:
        """The counts of the first :attr:`size` entries (``size``): :meth:`counts`, :meth:`totals`,
        :meth:`series` and :meth:`facet_series` of *facets* in *width* spans, and
        :meth:`principals`. Computed once per size of the log and kept until
        :meth:`update` takes in more entries, so a page asking again for an unchanged log
        costs no pass over the tally. The answer is shared: a caller must not change it."""
        key = (self.size, width, tuple(facets))
        with self._lock:
            if self._summary is None or self._summary[0] != key:
                self._summary = (
                    key,
                    {
                        "size": self.size,
                        "facets": self.counts(),
                        "totals": self.totals(),
                        "series": self.series(width),
                        "facet_series": self.facet_series(key[2], width),
                        "principals": self.principals(),
                    },
                )
            return self._summary[1]

    def indices(
        self, facet: str, key: str, start_ms: int | None = None, end_ms: int | None = None
    ) -> list[int]:
        """The log indices filed under *facet* and *key* (empty if none), only those whose
        entry's time is in ``[start_ms, end_ms)`` where either is given."""
        with self._lock:
            found = self.facets.get(facet, {}).get(key, ())
            if start_ms is None and end_ms is None:
                return list(found)
            low = -1 if start_ms is None else start_ms
            high = float("inf") if end_ms is None else end_ms
            return [i for i in found if low <= self.times[i] < high]

    def facet_series(self, facets: Iterable[str], width: int) -> dict[str, dict[str, list[int]]]:
        """Per facet and key, its entries in the *width* spans of :meth:`series` (the same
        start and step), so each bar of a plot is a count of log entries, as each number is."""
        with self._lock:
            start, step = span(self.times, width)
            out: dict[str, dict[str, list[int]]] = {}
            for facet in facets:
                keys = out.setdefault(facet, {})
                for key, found in self.facets.get(facet, {}).items():
                    counts = keys[key] = [0] * width
                    for i in found:
                        counts[_slot(self.times[i], start, step, width)] += 1
            return out

    def counts(self) -> dict[str, dict[str, int]]:
        """Every facet's keys with their number of entries."""
        with self._lock:
            return {f: {k: len(v) for k, v in keys.items()} for f, keys in self.facets.items()}

    def totals(self) -> dict[str, dict[str, int]]:
        """Summed quantities (findings per kind) where an entry counts more than once."""
        with self._lock:
            return {f: dict(keys) for f, keys in self.sums.items()}

    def grant_rows(self, now_s: float) -> list[dict[str, Any]]:
        """Each registered grant with its uses, revocation and expiry."""
        with self._lock:
            rows = []
            for g in self.grants.values():
                used = self.facets.get("grant-used", {}).get(g.grant_id, [])
                revoked = self.facets.get("grant-revoked", {}).get(g.grant_id, [])
                rows.append(
                    {
                        "grant_id": g.grant_id,
                        "approver": g.approver,
                        "grantee": g.grantee,
                        "purpose": g.purpose,
                        "not_after": g.not_after,
                        "registered": g.registered,
                        "used": len(used),
                        "revoked": bool(revoked),
                        "expired": g.not_after < now_s,
                    }
                )
            return rows

    def principals(self) -> dict[str, dict[str, str]]:
        """Jurisdiction and role of each registered principal that acted in the log."""
        with self._lock:
            return {
                pid: {"jurisdiction": p.jurisdiction, "role": str(p.role)}
                for pid, p in self._principals.items()
                if p is not None
            }

    def series(self, width: int) -> dict[str, Any]:
        """Entries per kind and decisions per effect in *width* equal spans of time."""
        with self._lock:
            return buckets(self.times, self.kinds, self.effects, width)

    # -- filing one entry --------------------------------------------------------------

    def _file(self, facet: str, key: str, index: int) -> None:
        self.facets.setdefault(facet, {}).setdefault(key, []).append(index)

    def _add(self, facet: str, key: str, amount: int) -> None:
        keys = self.sums.setdefault(facet, {})
        keys[key] = keys.get(key, 0) + amount

    def _requester(self, principal_id: str) -> Principal | None:
        if principal_id not in self._principals:
            self._principals[principal_id] = self.principal(principal_id)
        return self._principals[principal_id]

    def _take(self, index: int, data: bytes) -> None:
        try:
            entry = LogEntry.from_bytes(data)
        except SovraError:
            entry = None
        kind = entry.kind if entry is not None else "unreadable"
        self.times.append(entry.time_ms if entry is not None else 0)
        self.kinds.append(_KINDS.index(kind) if kind in _KINDS else 255)
        effect = entry.fields.get("effect", "") if entry is not None else ""
        self.effects.append(_EFFECTS.index(effect) if effect in _EFFECTS else 0)
        self._file("kind", kind, index)
        if entry is None:
            return
        f = entry.fields
        if kind == "ingest":
            self._requester(entry.principal)
            self._ingest(index, f)
        elif kind == "decision":
            self._decision(index, entry.principal, f)
        elif kind == "grant":
            g = _Grant(
                str(f.get("grant_id")),
                str(f.get("grant")),
                str(f.get("approver")),
                str(f.get("grantee")),
                str(f.get("purpose")),
                int(f.get("not_after", 0)),
                index,
            )
            self.grants[g.grant_id] = g
            self._by_digest[g.digest] = g.grant_id
            self._file("grant-registered", g.grant_id, index)
        elif kind == "grant_revoked":
            # A co-signer's withdrawal leaves the grant standing for its approver's records.
            facet = "cosignature-withdrawn" if f.get("cosigner") else "grant-revoked"
            self._file(facet, str(f.get("grant_id")), index)

    def _ingest(self, index: int, f: Mapping[str, Any]) -> None:
        j = str(f.get("jurisdiction", UNKNOWN))
        self._record_j[str(f.get("record"))] = j
        self._subject_j[str(f.get("subject"))] = j
        purpose = str(f.get("purpose") or "none declared")
        self._file("ingest", f"{j}|{purpose}", index)
        if f.get("second_home"):  # a subject of two homes: each home's ingests count it
            self._subject_j[str(f.get("second_subject"))] = str(f["second_home"])
            self._file("ingest", f"{f['second_home']}|{purpose}", index)
        kinds, actions = f.get("kinds"), f.get("actions")
        if isinstance(kinds, dict):
            for name, n in kinds.items():
                self._file("found", f"{j}|{name}|{purpose}", index)
                self._file("found-kind", str(name), index)
                self._add("found", f"{j}|{name}|{purpose}", int(n))
        if isinstance(actions, dict):
            for name, action in actions.items():
                self._file("minimised", f"{j}|{name}|{action}|{purpose}", index)
                self._file("minimised-kind", f"{name}|{action}", index)

    def _decision(self, index: int, principal: str, f: Mapping[str, Any]) -> None:
        effect = str(f.get("effect"))
        subjects = f.get("subjects") or []
        records = f.get("records") or []
        places = {self._subject_j[s] for s in subjects if s in self._subject_j}
        places |= {self._record_j[r] for r in records if r in self._record_j}
        requester = self._requester(principal)
        home = requester.jurisdiction if requester is not None else UNKNOWN
        action = str(f.get("action", "read"))
        self._file("action", f"{effect}|{action}", index)
        for j in sorted(places) or [UNLISTED]:
            self._file("jurisdiction", f"{effect}|{j}", index)
        self._file("requester", f"{effect}|{home}", index)
        self._file("justification", f"{effect}|{f.get('justification') or 'none'}", index)
        # A request naming its subjects by root only (a bulk one) has no known place, so
        # it is not called foreign here; the bulk guard's refusals are counted below.
        if effect == "deny" and places and home not in places:
            for j in sorted(places):
                self._file("denied-foreign", f"{home}|{j}", index)
        policies = f.get("policies") or []
        if effect == "deny":
            for p in policies:
                if p in BULK_POLICIES:
                    self._file("bulk", str(p), index)
        if f.get("review"):
            self._file("review", str(f["review"]), index)
        grant = f.get("grant")
        if effect == "allow" and isinstance(grant, str):
            self._file("grant-used", self._by_digest.get(grant, grant), index)


def span(times: array[int], width: int) -> tuple[int, int]:
    """The start and step (ms) of *width* equal spans from the first to the last time
    (``(0, 0)`` for a log with no time yet)."""
    stamped = [t for t in times if t > 0]
    if not stamped:
        return 0, 0
    start, end = min(stamped), max(stamped)
    return start, max(1, -(-(end - start + 1) // width))


def _slot(t: int, start: int, step: int, width: int) -> int:
    """The span a time falls in (an entry with no time: the first)."""
    return min(width - 1, max(0, (t - start) // step)) if t > 0 and step else 0


def buckets(
    times: array[int], kinds: array[int], effects: array[int], width: int
) -> dict[str, Any]:
    """Counts per kind and per effect in *width* equal spans between the first and last time."""
    start, step = span(times, width)
    if not step:
        return {"start_ms": 0, "step_ms": 0, "kinds": {}, "effects": {}, "size": []}
    per_kind: dict[str, list[int]] = {}
    per_effect: dict[str, list[int]] = {"allow": [0] * width, "deny": [0] * width}
    sizes = [0] * width
    for t, k, e in zip(times, kinds, effects, strict=True):
        slot = _slot(t, start, step, width)
        name = _KINDS[k] if k < len(_KINDS) else "unreadable"
        per_kind.setdefault(name, [0] * width)[slot] += 1
        if e:
            per_effect[_EFFECTS[e]][slot] += 1
        sizes[slot] += 1
    running = 0
    for i, n in enumerate(sizes):
        running += n
        sizes[i] = running
    return {
        "start_ms": start,
        "step_ms": step,
        "kinds": per_kind,
        "effects": per_effect,
        "size": sizes,
    }
