"""The bulk-collection guard: budgets of distinct subjects, enumeration detection, alerts.

No mass surveillance, no illegal collection of foreign citizens' data. The guard counts,
over sliding windows, the distinct subjects each requester, each requesting jurisdiction,
and each requester among *foreign* subjects has touched, and watches the names a request
uses (record ids, subject ids) for enumeration. It turns the counts into flags
(:class:`BulkFlags`); the policy pack decides what the flags mean. Refusals that a flag
decided become :class:`Alert` objects that the metrics endpoint shows.

Windows are exact up to ``window_s / 64``: a subject seen again within that much of its
last sighting does not extend its stay, which bounds memory by distinct subjects rather
than by requests. Counting is conservative (a subject may count up to that long extra).

Enumeration is walking a guessable sequence (``c-1041``, ``c-1042``, ... in any order) or
sweeping a space at a fixed stride (``c-1000``, ``c-1010``, ``c-1020``, ... in the order
read). A name is read as a *template* and a number: each of its last two digit fields in
turn is the number and the rest of the name, with that field blanked, is the template
(``inv-2024-0007`` is ``inv-2024-#`` with 7 and ``inv-#-0007`` with 2024). Numbers are
compared only within one template. A random id (``r-<32 hex>``, a UUID) has a template
of its own, so no other id is ever its neighbour: random ids cannot trip the detector,
whatever their digits. (Reading the trailing digits of random ids as one sequence, as an
earlier detector did, made a service reading its own fresh records trip it by chance.)
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from sovra.errors import ConfigError

__all__ = [
    "Alert",
    "BulkFlags",
    "BulkGuard",
    "BulkLimits",
    "BulkUsage",
    "GuardJournal",
    "JournalEvent",
    "JournalSession",
]

_DIGITS = re.compile(r"(\d+)")
_FIELDS_READ = 2
"""How many digit fields of a name, counted from its end, are read as a number."""
_MAX_DIGITS = 18
"""Longer digit fields are not counters (and 10**18 < 2**60 keeps the key arithmetic exact)."""
_NUMBER_BITS = 64
_MAX_ALERTS = 1000
_MAX_REVIEWS = 10_000
_PRUNE_EVERY = 1024
"""Journal events appended by one process between two prunings of the journal."""
_NUMBERS_KEPT = 8192
"""Names whose template keys and numbers a guard keeps, so a name read again is not hashed."""
_LAST_PER_REQUESTER = 1024
"""Templates per requester whose last number is remembered, for sweeps (least recent go)."""

JournalEvent = tuple[int, str, float, str]
"""One shared event: ``(sequence number, kind, time in seconds, JSON fields)``."""


class JournalSession(Protocol):
    """The journal held exclusively, across every process sharing it, for one decision."""

    def read(self, after: int) -> list[JournalEvent]:
        """Events after sequence number *after*, in order."""

    def append(self, events: Sequence[tuple[str, float, str]]) -> int:
        """Append ``(kind, time_s, JSON)`` events in order; returns the last one's number."""

    def prune(self, before_s: float, keep: Mapping[str, int]) -> None:
        """Delete usage events older than *before_s*, and of each kind in *keep* all but
        its last ``keep[kind]`` events, whatever their age."""


class GuardJournal(Protocol):
    """Where the guards of several processes share usage, alerts and reviews, in order.

    A session MUST exclude every other session of every process sharing the journal from
    its start until it ends (a database write transaction), so that a guard that catches
    up at the start of its session assesses against all usage before it; the events it
    appends MUST be durable, or all absent, when the session ends without an error.
    """

    def session(self) -> AbstractContextManager[JournalSession]:
        """Hold the journal for one decision."""

    def read(self, after: int) -> list[JournalEvent]:
        """Events after sequence number *after*, in order (no session needed)."""


def _json(fields: dict[str, Any]) -> str:
    """*fields* as compact JSON for the journal (any JSON the readers parse will do)."""
    try:
        return orjson.dumps(fields).decode()
    except TypeError:  # an integer over 64 bits: the stdlib writes every integer
        return json.dumps(fields, separators=(",", ":"))


def _numbered(name: str, key: bytes) -> list[tuple[int, int]]:
    """``(template key, number)`` for each of the last two digit fields of *name*.

    The template is the name with that field blanked, hashed to 64 bits under *key* (the
    windows and the journal hold no names). A key ``template << 64 | number`` then has its
    sequence neighbours at ``key ± 1`` and its stride-``s`` neighbours at ``key ± s``. The
    hash is BLAKE2b keyed per deployment, so every worker process reading the journal
    computes the same template keys. Two templates that collide are compared as one, which
    could only refuse more, never let a walk through.
    """
    parts = _DIGITS.split(name)  # text, digits, text, ..., digits, text
    out = []
    for k in range(len(parts) - 2, max(0, len(parts) - 2 * _FIELDS_READ - 1), -2):
        field_ = parts[k]
        if len(field_) > _MAX_DIGITS:
            continue
        blanked = "".join(parts[:k]) + "#" + "".join(parts[k + 1 :])
        digest = hashlib.blake2b(
            blanked.encode("utf-8", "surrogatepass"), digest_size=8, key=key
        ).digest()
        out.append((int.from_bytes(digest) << _NUMBER_BITS, int(field_)))
    return out


@dataclass(frozen=True, slots=True)
class BulkLimits:
    """The caps. The first three are the deployment's ``[bulk]`` settings.

    Attributes:
        request_limit: distinct subjects in one request.
        window_limit: distinct subjects per requester per window.
        window_s: the sliding window, in seconds.
        jurisdiction_limit: distinct subjects per requesting jurisdiction per window
            (all its requesters together).
        foreign_limit: distinct subjects of *other* jurisdictions per requester per window.
        enumeration_run: this many names of one template from one requester in a window,
            numbered in sequence (a walk) or at a fixed stride (a sweep), is enumeration.
    """

    request_limit: int = 50
    window_limit: int = 500
    window_s: int = 3600
    jurisdiction_limit: int = 5000
    foreign_limit: int = 100
    enumeration_run: int = 25

    def __post_init__(self) -> None:
        values = (
            self.request_limit,
            self.window_limit,
            self.window_s,
            self.jurisdiction_limit,
            self.foreign_limit,
            self.enumeration_run,
        )
        if min(values) < 1:
            raise ConfigError("bulk limits must all be at least 1")


@dataclass(frozen=True, slots=True)
class BulkFlags:
    """What the policy sees of the guard: one boolean per budget (Cedar ``context.bulk``)."""

    over_request_cap: bool = False
    over_window_budget: bool = False
    over_jurisdiction_budget: bool = False
    over_foreign_budget: bool = False
    enumeration: bool = False

    def to_context(self) -> dict[str, bool]:
        """The Cedar ``context.bulk`` record."""
        return {
            "over_request_cap": self.over_request_cap,
            "over_window_budget": self.over_window_budget,
            "over_jurisdiction_budget": self.over_jurisdiction_budget,
            "over_foreign_budget": self.over_foreign_budget,
            "enumeration": self.enumeration,
        }


@dataclass(frozen=True, slots=True)
class BulkUsage:
    """The counts behind the flags, as they would be if the request were allowed.

    It also remembers what :meth:`BulkGuard.record` needs to count the request, so that an
    allowed request is counted exactly as it was assessed.
    """

    distinct: int
    window: int
    jurisdiction: int
    foreign: int
    run: int
    flags: BulkFlags
    requester: str = field(default="", repr=False)
    requester_jurisdiction: str = field(default="", repr=False)
    subjects: tuple[str, ...] = field(default=(), repr=False)
    foreign_subjects: tuple[str, ...] = field(default=(), repr=False)
    # (template key, number) of every numbered name, in the order the request named them
    numbered: tuple[tuple[int, int], ...] = field(default=(), repr=False)


@dataclass(frozen=True, slots=True)
class Alert:
    """A refusal decided by the guard, for the metrics endpoint (no subject, no record)."""

    time_s: float
    requester: str
    jurisdiction: str
    policies: tuple[str, ...]
    decision_id: str


class _Window:
    """Distinct keys seen within a sliding window (see the module docstring for precision).

    Keys are subject commitments, or the integer keys of :func:`_numbered`.
    """

    __slots__ = ("_events", "_last", "_span", "_step")

    def __init__(self, span: float) -> None:
        self._span = span
        self._step = span / 64
        self._last: dict[Hashable, float] = {}
        self._events: deque[tuple[float, Hashable]] = deque()

    def expire(self, now: float) -> None:
        cutoff = now - self._span
        events, last = self._events, self._last
        while events and events[0][0] <= cutoff:
            t, key = events.popleft()
            if last.get(key) == t:
                del last[key]

    def count_with(self, keys: Iterable[Hashable]) -> int:
        last = self._last
        return len(last) + sum(1 for k in keys if k not in last)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._last

    def add(self, keys: Iterable[Hashable], now: float) -> bool:
        """Count *keys* at *now*; whether the window changed (a key new or refreshed)."""
        last, step = self._last, self._step
        changed = False
        for k in keys:
            seen = last.get(k)
            if seen is None or now - seen >= step:
                last[k] = now
                self._events.append((now, k))
                changed = True
        return changed


@dataclass
class BulkGuard:
    """Sliding windows per requester, per requesting jurisdiction and of foreign subjects.

    In memory, and with a *journal* shared between processes: each process's guard keeps
    its windows, alerts and review queue as a replay of the journal, and every change it
    makes is appended there. :meth:`session` holds the journal for one decision, so a
    guard assesses against the usage of every process and the decision's own usage is
    appended before any other process assesses: two workers never spend one budget twice.
    Without a journal the guard is one process's. ``limits`` may be replaced at any time
    (a new pack's parameters take effect on the next request).
    """

    limits: BulkLimits
    clock: Callable[[], float]
    journal: GuardJournal | None = None
    # Keys the hash of name templates (see _numbered); the same for every process sharing
    # a journal.
    template_key: bytes = field(default_factory=lambda: os.urandom(16), repr=False)
    _requester: dict[str, _Window] = field(default_factory=dict)
    _jurisdiction: dict[str, _Window] = field(default_factory=dict)
    _foreign: dict[str, _Window] = field(default_factory=dict)
    _ids: dict[str, _Window] = field(default_factory=dict)
    # per requester: template key -> the number it last read under that template (sweeps)
    _last: dict[str, OrderedDict[int, int]] = field(default_factory=dict)
    _alerts: deque[Alert] = field(default_factory=lambda: deque(maxlen=_MAX_ALERTS))
    _reviews: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=_MAX_REVIEWS))
    _counters: dict[str, int] = field(default_factory=dict)
    _lock: threading.RLock = field(default_factory=threading.RLock)
    _seen: int = 0  # the journal's last event applied here
    _depth: int = 0  # sessions open in this process (nested ones share the outermost)
    _pending: list[tuple[str, float, str]] = field(default_factory=list)
    _appended: int = 0
    # name -> its _numbered pairs under template_key: a record read again (the common
    # read) is not hashed again. Cleared whole when full.
    _numbers: dict[tuple[bytes, str], tuple[tuple[int, int], ...]] = field(default_factory=dict)

    # -- sharing ---------------------------------------------------------------------------

    @contextmanager
    def session(self) -> Iterator[None]:
        """Hold the guard for one decision: every other thread, and with a journal every
        other process, waits until it ends. It starts by applying what other processes
        appended; what this decision changes is appended when it ends. Sessions nest.

        Raises:
            SovraError: the journal failed (the decision's changes are not shared).
        """
        with self._lock:
            if self._depth or self.journal is None:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            with self.journal.session() as shared:
                self._apply(shared.read(self._seen))
                self._depth = 1
                try:
                    yield
                finally:
                    self._depth = 0
                    pending, self._pending = self._pending, []
                if pending:
                    self._seen = shared.append(pending)
                    self._appended += len(pending)
                    if self._appended >= _PRUNE_EVERY:
                        self._appended = 0
                        shared.prune(
                            self.clock() - self.limits.window_s,
                            {"alert": _MAX_ALERTS, "review": _MAX_REVIEWS},
                        )

    def _share(self, kind: str, now: float, fields: dict[str, Any]) -> None:
        if self.journal is not None:
            self._pending.append((kind, now, _json(fields)))

    def _sync(self) -> None:
        """Apply what other processes appended (for reads outside a decision)."""
        with self._lock:
            if self.journal is not None and not self._depth:
                self._apply(self.journal.read(self._seen))

    def _apply(self, events: Sequence[JournalEvent]) -> None:
        for seq, kind, at, data in events:
            fields = json.loads(data)
            if kind == "use":
                self._use(
                    requester=fields["requester"],
                    requester_jurisdiction=fields["jurisdiction"],
                    subjects=fields["subjects"],
                    foreign=fields["foreign"],
                    numbered=[(t << _NUMBER_BITS, n) for t, n in fields["numbered"]],
                    now=at,
                )
            elif kind == "seen":
                ids = self._window(self._ids, fields["requester"], at)
                numbered = [(t << _NUMBER_BITS, n) for t, n in fields["numbered"]]
                self._remember(fields["requester"], ids, numbered, at)
            elif kind == "alert":
                self._raise(Alert(at, *fields["alert"]))
            elif kind == "review":
                self._reviews.append(fields)
            self._seen = seq

    def _numbered(self, name: str) -> tuple[tuple[int, int], ...]:
        key = self.template_key
        pairs = self._numbers.get((key, name))
        if pairs is None:
            pairs = tuple(_numbered(name, key))
            if len(self._numbers) >= _NUMBERS_KEPT:
                self._numbers.clear()
            self._numbers[key, name] = pairs
        return pairs

    def _window(self, table: dict[str, _Window], key: str, now: float) -> _Window:
        window = table.get(key)
        if window is None:
            window = table[key] = _Window(self.limits.window_s)
        else:
            window.expire(now)
        return window

    def assess(
        self,
        requester: str,
        requester_jurisdiction: str,
        subjects: Sequence[tuple[str, str]],
        names: Sequence[str] = (),
    ) -> BulkUsage:
        """Count what allowing this request would bring each budget to.

        Nothing changes, but for one thing: names found enumerating are remembered at
        once, allowed or not, so that a walk that steps over a refused name is still the
        same walk (and is refused again at its next step).

        Args:
            requester: principal id.
            requester_jurisdiction: its home jurisdiction.
            subjects: distinct ``(subject commitment, subject's jurisdiction)`` pairs.
            names: what the request named, in its order: record ids, or the subject ids
                it asked for (for enumeration detection).
        """
        limits, now = self.limits, self.clock()
        commitments = tuple(s for s, _ in subjects)
        foreign = tuple(s for s, j in subjects if j != requester_jurisdiction)
        numbered = tuple(pair for name in dict.fromkeys(names) for pair in self._numbered(name))
        with self.session():
            window = self._window(self._requester, requester, now).count_with(commitments)
            jurisdiction = self._window(self._jurisdiction, requester_jurisdiction, now)
            in_jurisdiction = jurisdiction.count_with(commitments)
            in_foreign = (
                self._window(self._foreign, requester, now).count_with(foreign) if foreign else 0
            )
            ids = self._window(self._ids, requester, now)
            run = self._longest_run(ids, requester, numbered) if numbered else 0
            if run >= limits.enumeration_run:
                self._remember(requester, ids, numbered, now)
                self._share("seen", now, {"requester": requester, "numbered": _wire(numbered)})
        flags = BulkFlags(
            over_request_cap=len(subjects) > limits.request_limit,
            over_window_budget=window > limits.window_limit,
            over_jurisdiction_budget=in_jurisdiction > limits.jurisdiction_limit,
            over_foreign_budget=len(foreign) > 0 and in_foreign > limits.foreign_limit,
            enumeration=run >= limits.enumeration_run,
        )
        return BulkUsage(
            len(subjects),
            window,
            in_jurisdiction,
            in_foreign,
            run,
            flags,
            requester,
            requester_jurisdiction,
            commitments,
            foreign,
            numbered,
        )

    def _longest_run(
        self, seen: _Window, requester: str, numbered: Sequence[tuple[int, int]]
    ) -> int:
        """The longest walk or sweep, within one template, that a newly named number joins.

        A walk is a run of consecutive numbers, read in any order. A sweep is a run at the
        stride from the number last read under the template to this one, counted back
        from this one. Only runs through a newly named number count, so an enumeration is
        refused at each further step; each run is followed at most ``enumeration_run``
        steps, so the cost is bounded whatever the window holds.
        """
        cap = self.limits.enumeration_run
        fresh = {t | n for t, n in numbered}
        remembered: Mapping[int, int] = self._last.get(requester, {})
        named: dict[int, int] = {}  # the request's own numbers, as it names them

        def known(key: int) -> bool:
            return key in fresh or key in seen

        best = 0
        for template, n in numbered:
            key = template | n
            low = high = 0
            while low < min(n, cap) and known(key - low - 1):
                low += 1
            while high < cap and known(key + high + 1):
                high += 1
            best = max(best, low + high + 1)
            before = named.get(template, remembered.get(template))
            stride = 0 if before is None else n - before
            if stride > 1 or stride < -1:
                steps, reach = 1, n
                while steps < cap and 0 <= reach - stride < 10**_MAX_DIGITS:
                    reach -= stride
                    if template | reach not in seen and template | reach not in fresh:
                        break
                    steps += 1
                best = max(best, steps)
            named[template] = n
        return best

    def record(self, usage: BulkUsage) -> None:
        """Count an allowed request, as :meth:`assess` saw it, against every budget."""
        now = self.clock()
        with self.session():
            changed = self._use(
                requester=usage.requester,
                requester_jurisdiction=usage.requester_jurisdiction,
                subjects=usage.subjects,
                foreign=usage.foreign_subjects,
                numbered=usage.numbered,
                now=now,
            )
            if changed:  # else every window holds it already: nothing new to share
                fields = {
                    "requester": usage.requester,
                    "jurisdiction": usage.requester_jurisdiction,
                    "subjects": usage.subjects,
                    "foreign": usage.foreign_subjects,
                    "numbered": _wire(usage.numbered),
                }
                self._share("use", now, fields)

    def _use(
        self,
        *,
        requester: str,
        requester_jurisdiction: str,
        subjects: Sequence[str],
        foreign: Sequence[str],
        numbered: Sequence[tuple[int, int]],
        now: float,
    ) -> bool:
        changed = self._window(self._requester, requester, now).add(subjects, now)
        jurisdiction = self._window(self._jurisdiction, requester_jurisdiction, now)
        changed = jurisdiction.add(subjects, now) or changed
        if foreign:
            changed = self._window(self._foreign, requester, now).add(foreign, now) or changed
        if numbered:
            ids = self._window(self._ids, requester, now)
            self._remember(requester, ids, numbered, now)
            changed = True
        return changed

    def _remember(
        self, requester: str, ids: _Window, numbered: Sequence[tuple[int, int]], now: float
    ) -> None:
        """Add numbered names to *requester*'s window, and each template's last number."""
        ids.add([t | n for t, n in numbered], now)
        last = self._last.setdefault(requester, OrderedDict())
        for template, n in numbered:
            last[template] = n
            last.move_to_end(template)
        while len(last) > _LAST_PER_REQUESTER:
            last.popitem(last=False)

    # -- alerts and metrics ----------------------------------------------------------------

    def alert(
        self, requester: str, jurisdiction: str, policies: Sequence[str], decision: str
    ) -> None:
        """Remember a refusal the guard's flags decided, for the metrics endpoint."""
        now = self.clock()
        with self.session():
            self._raise(Alert(now, requester, jurisdiction, tuple(policies), decision))
            self._share("alert", now, {"alert": [requester, jurisdiction, policies, decision]})

    def _raise(self, alert: Alert) -> None:
        self._alerts.append(alert)
        for p in alert.policies:
            self._counters[p] = self._counters.get(p, 0) + 1

    def alerts(self, since_s: float = 0.0) -> list[Alert]:
        """Alerts raised at or after *since_s*, oldest first (the last 1000 at most)."""
        with self._lock:
            self._sync()
            return [a for a in self._alerts if a.time_s >= since_s]

    # -- the review queue (kept here so that it is shared the same way) -------------------

    def queue_review(self, item: Mapping[str, Any]) -> None:
        """Queue a decision for human review; *item* is its JSON-able fields."""
        now = self.clock()
        with self.session():
            self._reviews.append(dict(item))
            self._share("review", now, dict(item))

    def reviews(self) -> list[dict[str, Any]]:
        """Decisions queued for review, oldest first (the last 10,000 at most)."""
        with self._lock:
            self._sync()
            return [dict(r) for r in self._reviews]

    def metrics(self) -> str:
        """Prometheus text exposition of the guard's refusals and windows."""
        with self._lock:
            self._sync()
            counters = dict(self._counters)
            requesters = len(self._requester)
            latest = self._alerts[-1].time_s if self._alerts else 0.0
        active = bool(latest) and self.clock() - latest < self.limits.window_s
        lines = [
            "# HELP sovra_bulk_refusals_total Refusals decided by a bulk-guard policy.",
            "# TYPE sovra_bulk_refusals_total counter",
        ]
        lines += [
            f'sovra_bulk_refusals_total{{policy="{p}"}} {n}' for p, n in sorted(counters.items())
        ]
        lines += [
            "# HELP sovra_bulk_alert 1 while a bulk refusal happened within the window.",
            "# TYPE sovra_bulk_alert gauge",
            f"sovra_bulk_alert {int(active)}",
            "# HELP sovra_bulk_tracked_requesters Requesters with a live window.",
            "# TYPE sovra_bulk_tracked_requesters gauge",
            f"sovra_bulk_tracked_requesters {requesters}",
        ]
        return "\n".join(lines) + "\n"

    # -- compatibility with the per-requester count used before budgets had flags ---------

    def window_count(self, requester: str, subjects: Iterable[str]) -> int:
        """Distinct subjects *requester* would have touched in the window with *subjects*."""
        now = self.clock()
        with self._lock:
            self._sync()
            return self._window(self._requester, requester, now).count_with(set(subjects))


def _wire(numbered: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Numbered names as the journal holds them: (64-bit template hash, number)."""
    return [(t >> _NUMBER_BITS, n) for t, n in numbered]
