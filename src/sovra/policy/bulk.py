"""The bulk-collection guard: budgets of distinct subjects, enumeration detection, alerts.

No mass surveillance, no illegal collection of foreign citizens' data. The guard counts,
over sliding windows, the distinct subjects each requester, each requesting jurisdiction,
and each requester among *foreign* subjects has touched, and watches record ids for
enumeration (runs of consecutive numbers). It turns the counts into flags
(:class:`BulkFlags`); the policy pack decides what the flags mean. Refusals that a flag
decided become :class:`Alert` objects that the metrics endpoint shows.

Windows are exact up to ``window_s / 64``: a subject seen again within that much of its
last sighting does not extend its stay, which bounds memory by distinct subjects rather
than by requests. Counting is conservative (a subject may count up to that long extra).
"""

from __future__ import annotations

import re
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from sovra.errors import ConfigError

__all__ = ["Alert", "BulkFlags", "BulkGuard", "BulkLimits", "BulkUsage"]

_TAIL_NUMBER = re.compile(r"(\d{1,18})$")
_MAX_ALERTS = 1000


def _numbers(record_ids: Sequence[str]) -> set[int]:
    search = _TAIL_NUMBER.search
    return {int(m.group(1)) for r in record_ids if (m := search(r))}


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
        enumeration_run: this many consecutive numbered record ids from one requester in a
            window is enumeration.
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
    numbers: frozenset[int] = field(default=frozenset(), repr=False)


@dataclass(frozen=True, slots=True)
class Alert:
    """A refusal decided by the guard, for the metrics endpoint (no subject, no record)."""

    time_s: float
    requester: str
    jurisdiction: str
    policies: tuple[str, ...]
    decision_id: str


class _Window:
    """Distinct keys seen within a sliding window (see the module docstring for precision)."""

    __slots__ = ("_events", "_last", "_span", "_step")

    def __init__(self, span: float) -> None:
        self._span = span
        self._step = span / 64
        self._last: dict[str, float] = {}
        self._events: deque[tuple[float, str]] = deque()

    def expire(self, now: float) -> None:
        cutoff = now - self._span
        events, last = self._events, self._last
        while events and events[0][0] <= cutoff:
            t, key = events.popleft()
            if last.get(key) == t:
                del last[key]

    def count_with(self, keys: Iterable[str]) -> int:
        last = self._last
        return len(last) + sum(1 for k in keys if k not in last)

    def __contains__(self, key: str) -> bool:
        return key in self._last

    def add(self, keys: Iterable[str], now: float) -> None:
        last, step = self._last, self._step
        for k in keys:
            seen = last.get(k)
            if seen is None or now - seen >= step:
                last[k] = now
                self._events.append((now, k))


@dataclass
class BulkGuard:
    """Sliding windows per requester, per requesting jurisdiction and of foreign subjects.

    In memory, per process. ``limits`` may be replaced at any time (a new pack's parameters
    take effect on the next request).
    """

    limits: BulkLimits
    clock: Callable[[], float]
    _requester: dict[str, _Window] = field(default_factory=dict)
    _jurisdiction: dict[str, _Window] = field(default_factory=dict)
    _foreign: dict[str, _Window] = field(default_factory=dict)
    _ids: dict[str, _Window] = field(default_factory=dict)
    _alerts: deque[Alert] = field(default_factory=lambda: deque(maxlen=_MAX_ALERTS))
    _counters: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

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
        record_ids: Sequence[str] = (),
    ) -> BulkUsage:
        """Count what allowing this request would bring each budget to; change nothing.

        Args:
            requester: principal id.
            requester_jurisdiction: its home jurisdiction.
            subjects: distinct ``(subject commitment, subject's jurisdiction)`` pairs.
            record_ids: the record ids the request names (for enumeration detection).
        """
        limits, now = self.limits, self.clock()
        commitments = tuple(s for s, _ in subjects)
        foreign = tuple(s for s, j in subjects if j != requester_jurisdiction)
        fresh = _numbers(record_ids)
        with self._lock:
            window = self._window(self._requester, requester, now).count_with(commitments)
            jurisdiction = self._window(self._jurisdiction, requester_jurisdiction, now)
            in_jurisdiction = jurisdiction.count_with(commitments)
            in_foreign = (
                self._window(self._foreign, requester, now).count_with(foreign) if foreign else 0
            )
            run = self._longest_run(self._window(self._ids, requester, now), fresh) if fresh else 0
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
            frozenset(fresh),
        )

    def _longest_run(self, seen: _Window, fresh: set[int]) -> int:
        """Longest run of consecutive numbers among record-id tails that includes a new one.

        Only runs through a newly requested id count, so a walk is refused at each further
        step. Each run is walked at most ``enumeration_run`` steps either way, so the cost
        is bounded whatever the window holds.
        """
        cap = self.limits.enumeration_run

        def known(n: int) -> bool:
            return n in fresh or str(n) in seen

        best = 0
        for n in fresh:
            low, high = n, n
            while low - 1 >= 0 and known(low - 1) and n - low < cap:
                low -= 1
            while known(high + 1) and high - n < cap:
                high += 1
            best = max(best, high - low + 1)
        return best

    def record(self, usage: BulkUsage) -> None:
        """Count an allowed request, as :meth:`assess` saw it, against every budget."""
        now = self.clock()
        with self._lock:
            self._window(self._requester, usage.requester, now).add(usage.subjects, now)
            jurisdiction = self._window(self._jurisdiction, usage.requester_jurisdiction, now)
            jurisdiction.add(usage.subjects, now)
            if usage.foreign_subjects:
                self._window(self._foreign, usage.requester, now).add(usage.foreign_subjects, now)
            if usage.numbers:
                ids = self._window(self._ids, usage.requester, now)
                ids.add([str(n) for n in usage.numbers], now)

    # -- alerts and metrics ----------------------------------------------------------------

    def alert(
        self, requester: str, jurisdiction: str, policies: Sequence[str], decision: str
    ) -> None:
        """Remember a refusal the guard's flags decided, for the metrics endpoint."""
        with self._lock:
            self._alerts.append(
                Alert(self.clock(), requester, jurisdiction, tuple(policies), decision)
            )
            for p in policies:
                self._counters[p] = self._counters.get(p, 0) + 1

    def alerts(self, since_s: float = 0.0) -> list[Alert]:
        """Alerts raised at or after *since_s*, oldest first (the last 1000 at most)."""
        with self._lock:
            return [a for a in self._alerts if a.time_s >= since_s]

    def metrics(self) -> str:
        """Prometheus text exposition of the guard's refusals and windows."""
        with self._lock:
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
            return self._window(self._requester, requester, now).count_with(set(subjects))
