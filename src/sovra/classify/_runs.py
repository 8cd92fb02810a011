"""Digit runs: the one pass over a text that every number-shaped detector starts from.

A run is digits joined by single separators (space, hyphen, dot, slash) or wrapped in
one pair of parentheses, as people print phone numbers and identifiers. Splitting a run
into *segments* stops two long groups from gluing ("601234567 44051401359" is two
numbers; "601 234 567" and the German "06947 897435" are one each). Detectors ask for
the runs of a text; the list is cached for the text object last asked about, so several
detectors share one pass.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

__all__ = ["Group", "Segment", "segments", "spans"]

# A run starts at a digit, a "+" or "(" before a digit, and never inside a word.
_RUN = re.compile(r"(?<![0-9A-Za-z])[+(]?[0-9](?:\)?[-./ ]{0,2}\(?[0-9])*")
_GROUP = re.compile(r"[0-9]+")
_LONG = 5  # groups longer than this are whole numbers, not parts of a printed one
_MAX_GROUPS = 8


@dataclass(frozen=True, slots=True)
class Group:
    """One maximal stretch of digits."""

    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Segment:
    """Consecutive digit groups that may form one printed number."""

    groups: tuple[Group, ...]
    lead: int  # where the segment starts, a "+" or "(" included

    @property
    def end(self) -> int:
        """The end of the last group."""
        return self.groups[-1].end


@functools.lru_cache(maxsize=2)
def segments(text: str) -> tuple[Segment, ...]:
    """The digit segments of *text*, in order.

    Args:
        text: folded text (ASCII digits and separators).

    Returns:
        Segments whose groups are separated by at most two separator characters and
        no two neighbours of which are both longer than five digits.
    """
    found: list[Segment] = []
    for run in _RUN.finditer(text):
        groups = [
            Group(m.start() + run.start(), m.end() + run.start())
            for m in _GROUP.finditer(run.group())
        ]
        current: list[Group] = []
        for group in groups:
            if current and (
                group.start - current[-1].end > 2
                or (group.end - group.start > _LONG and current[-1].end - current[-1].start > _LONG)
                or len(current) >= _MAX_GROUPS
            ):
                found.append(_segment(text, current))
                current = []
            current.append(group)
        if current:
            found.append(_segment(text, current))
    return tuple(found)


def _segment(text: str, groups: list[Group]) -> Segment:
    lead = groups[0].start
    if lead > 0 and text[lead - 1] in "+(":
        lead -= 1
    return Segment(tuple(groups), lead)


def spans(
    text: str, segment: Segment, lengths: frozenset[int] | None = None
) -> list[tuple[int, int, str]]:
    """Contiguous stretches of a segment's groups, most digits first.

    Args:
        text: the folded text the segment was found in.
        segment: one of :func:`segments`' results.
        lengths: only stretches with this many digits; None for all.

    Returns:
        ``(start, end, digits)`` triples; a start includes a "+" or "(" right before
        the first group, and ``digits`` is the stretch with separators removed.
    """
    groups = segment.groups
    # All digits once, then each stretch is a slice of them.
    joined = "".join(text[g.start : g.end] for g in groups)
    offsets = [0]
    for g in groups:
        offsets.append(offsets[-1] + g.end - g.start)
    out: list[tuple[int, int, str]] = []
    for i, first in enumerate(groups):
        start = first.start
        if start > 0 and text[start - 1] in "+(":
            start -= 1
        for j in range(i, len(groups)):
            total = offsets[j + 1] - offsets[i]
            if lengths is not None and total not in lengths:
                continue
            out.append((start, groups[j].end, joined[offsets[i] : offsets[j + 1]]))
    if len(out) > 1:
        out.sort(key=lambda item: (-len(item[2]), item[0]))
    return out
