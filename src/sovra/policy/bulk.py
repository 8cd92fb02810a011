"""The bulk-collection guard: caps on distinct subjects per request and per window.

No mass surveillance: a requester may touch at most ``request_limit`` distinct subjects in
one request and ``window_limit`` distinct subjects within any ``window_s`` seconds. The
guard only counts; the policy pack decides what the counts mean.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sovra.errors import ConfigError

__all__ = ["BulkGuard", "BulkLimits"]


@dataclass(frozen=True, slots=True)
class BulkLimits:
    """The configured caps."""

    request_limit: int = 50
    window_limit: int = 500
    window_s: int = 3600

    def __post_init__(self) -> None:
        if min(self.request_limit, self.window_limit, self.window_s) < 1:
            raise ConfigError("bulk limits must all be at least 1")


@dataclass
class BulkGuard:
    """Sliding windows of distinct subjects per requester, in memory."""

    limits: BulkLimits
    clock: Callable[[], float]
    _seen: dict[str, deque[tuple[float, str]]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def window_count(self, requester: str, subjects: Iterable[str]) -> int:
        """Distinct subjects *requester* would have touched in the window with *subjects* added."""
        now = self.clock()
        with self._lock:
            events = self._seen.get(requester)
            if events is None:
                return len(set(subjects))
            while events and events[0][0] <= now - self.limits.window_s:
                events.popleft()
            return len({s for _, s in events} | set(subjects))

    def record(self, requester: str, subjects: Iterable[str]) -> None:
        """Count *subjects* against *requester*'s window (called for allowed requests)."""
        now = self.clock()
        with self._lock:
            events = self._seen.setdefault(requester, deque())
            events.extend((now, s) for s in subjects)
