"""Digit runs: the one pass over a text that every number-shaped detector starts from.

A run is digits joined by single separators (space, hyphen, dot, slash) or wrapped in
one pair of parentheses, as people print phone numbers and identifiers. Splitting a run
into *segments* stops two long groups from gluing ("601234567 44051401359" is two
numbers; "601 234 567" and the German "06947 897435" are one each). Detectors ask for
the runs of a text; the list is cached for the texts last asked about, so several
detectors share one pass, until :func:`forget` drops it (the scanner does at the end of
each call).

Prose holds few digits, so the walks over the whole text are few: one pass finds the
*windows* of a text, the stretches within :data:`MARGIN` characters of a digit, and the
digit runs and the letter-and-digit identifiers are then searched for inside those
windows only.

Both passes, and :func:`spans`, are also written in C (``_native.c``, built at install
where a compiler is found): on text dense with numbers the Python walk costs about 10 ms
per 100 KB, the C one about 1. The Python functions below stay the reference and the
fallback.
"""

from __future__ import annotations

import functools
import re
from typing import NamedTuple

from sovra.classify import _compiled

__all__ = ["MARGIN", "Group", "Segment", "forget", "segments", "spans", "windows", "windows_ascii"]

# A run starts at a digit, a "+" or "(" before a digit, and never inside a word. The
# pattern opens with a plain character class, which lets the engine skip ahead to the
# next candidate in one tight loop (a look-behind first would be tried at every
# position, four times slower); the class's character is then checked for its left
# neighbour and, when it is a "+" or "(", for a digit after it.
_RUN = re.compile(
    r"[+(0-9](?<![0-9A-Za-z].)(?:(?<=[0-9])|(?<=[+(])[0-9])(?:\)?[-./ ]{0,2}\(?[0-9])*"
)
# A window grows in steps of a digit and the 48 characters after it: one step per 49
# characters of text dense with numbers, one per number in prose.
_STEP = 48
_DIGITS = "0123456789"
_DIGIT = re.compile("[0-9]")
_NEAR = 64  # how far ahead the regular expression looks before str.find takes over
MARGIN = 24
"""How far a window reaches on either side of every digit in it.

A searcher may use :func:`windows` in place of the whole text when every match it looks
for holds a digit and lies, look-aheads included, within ``MARGIN - 1`` characters of
one of its digits. Look-behinds may reach further: the windows are searched with
``pattern.finditer(text, start, end)``, which lets them see the text before ``start``.
The letter-and-digit identifiers reach 9 characters before their digit, VAT candidates
16 after it.
"""
_GROUP = re.compile(r"[0-9]+")
_LONG = 5  # groups longer than this are whole numbers, not parts of a printed one
_MAX_GROUPS = 8


# Tuples rather than frozen dataclasses: a text dense with numbers makes tens of
# thousands of them, and a frozen dataclass costs several times more to create.
class Group(NamedTuple):
    """One maximal stretch of digits."""

    start: int
    end: int


class Segment(NamedTuple):
    """Consecutive digit groups that may form one printed number."""

    groups: tuple[Group, ...]
    lead: int  # where the segment starts, a "+" or "(" included
    end: int  # the end of the last group
    digits: str  # the groups' digits, separators left out


@functools.lru_cache(maxsize=2)
def windows(text: str) -> tuple[tuple[int, int], ...]:
    """Disjoint ``(start, end)`` stretches of *text* that hold all its ASCII digits.

    Args:
        text: folded text (ASCII digits).

    Returns:
        Stretches in order, each reaching at least :data:`MARGIN` characters (or to the
        end of the text) either side of each digit in it; ``()`` when there is no digit.
    """
    if _compiled.NATIVE is not None:
        found: tuple[tuple[int, int], ...] = _compiled.NATIVE.windows(text, MARGIN, _STEP)
        return found
    return _windows(text)


def _windows(text: str) -> tuple[tuple[int, int], ...]:
    # The next digit: first a short regular-expression search ahead, which finds it at
    # once where numbers are dense; where it finds none, the nearest next occurrence of
    # each of the ten digits, each found with ``str.find`` and searched for again only
    # once the walk has passed it. Prose costs about 0.8 ms per megabyte this way, where
    # a regular expression over the whole text takes 6.
    n = len(text)
    upcoming: list[int] | None = None
    found: list[tuple[int, int]] = []
    lo = hi = -1
    position = 0
    while True:
        near = _DIGIT.search(text, position, position + _NEAR)
        if near is not None:
            first = near.start()
        else:
            ahead = position + _NEAR
            if upcoming is None:
                upcoming = [text.find(digit, ahead) for digit in _DIGITS]
                upcoming = [n if at < 0 else at for at in upcoming]
            for i, at in enumerate(upcoming):
                if at < ahead:
                    again = text.find(_DIGITS[i], ahead)
                    upcoming[i] = n if again < 0 else again
            first = min(upcoming)
            if first >= n:
                break
        position = min(n, first + 1 + _STEP)  # the digit and the step after it
        start, end = first - MARGIN, position + MARGIN
        if start > hi:
            if hi >= 0:
                found.append((max(lo, 0), min(hi, n)))
            lo = start
        hi = end
    if hi >= 0:
        found.append((max(lo, 0), min(hi, n)))
    return tuple(found)


@functools.lru_cache(maxsize=2)
def segments(text: str) -> tuple[Segment, ...]:
    """The digit segments of *text*, in order.

    Args:
        text: folded text (ASCII digits and separators).

    Returns:
        Segments whose groups are separated by at most two separator characters and
        no two neighbours of which are both longer than five digits.
    """
    if _compiled.NATIVE is not None:
        found: tuple[Segment, ...] = _compiled.NATIVE.segments(
            text, windows(text), Segment, Group, _LONG, _MAX_GROUPS
        )
        return found
    return _segments(text)


def _segments(text: str) -> tuple[Segment, ...]:
    found: list[Segment] = []
    append = found.append
    for lo, hi in windows(text):
        for run in _RUN.finditer(text, lo, hi):
            start, end = run.span()
            if text[start] in "+(":
                start += 1
            digits = text[start:end]
            if digits.isdigit():  # one unbroken group, most runs: no splitting to do
                lead = start - 1 if start > 0 and text[start - 1] in "+(" else start
                append(_new(Segment, ((_new(Group, (start, end)),), lead, end, digits)))
            else:
                _split(text, start, end, found)
    return tuple(found)


# The tuples' own constructor: a NamedTuple's generated ``__new__`` is a Python function
# and costs twice as much, on every group of a text dense with numbers.
_new = tuple.__new__


def _split(text: str, start: int, end: int, found: list[Segment]) -> None:
    """Append the segments of the run ``text[start:end]`` to *found*."""
    bounds = [m.span() for m in _GROUP.finditer(text, start, end)]
    first = 0
    previous_start, previous_end = bounds[0]
    for i in range(1, len(bounds)):
        group_start, group_end = bounds[i]
        if (
            group_start - previous_end > 2
            or (group_end - group_start > _LONG and previous_end - previous_start > _LONG)
            or i - first >= _MAX_GROUPS
        ):
            found.append(_segment(text, bounds[first:i]))
            first = i
        previous_start, previous_end = group_start, group_end
    found.append(_segment(text, bounds[first:]))


def _segment(text: str, bounds: list[tuple[int, int]]) -> Segment:
    lead = bounds[0][0]
    if lead > 0 and text[lead - 1] in "+(":
        lead -= 1
    digits = "".join([text[a:b] for a, b in bounds])
    groups = tuple([_new(Group, bound) for bound in bounds])
    return _new(Segment, (groups, lead, bounds[-1][1], digits))


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
    if _compiled.NATIVE is not None:
        found: list[tuple[int, int, str]] = _compiled.NATIVE.spans(text, segment, lengths)
        return found
    return _spans(text, segment, lengths)


def _spans(
    text: str, segment: Segment, lengths: frozenset[int] | None = None
) -> list[tuple[int, int, str]]:
    groups = segment.groups
    joined = segment.digits
    if len(groups) == 1:  # most numbers: one unbroken run of digits
        if lengths is not None and len(joined) not in lengths:
            return []
        return [(segment.lead, segment.end, joined)]
    shortest, longest = (1, len(joined)) if lengths is None else (min(lengths), max(lengths))
    if len(joined) < shortest:
        return []
    offsets = [0]
    for g in groups:
        offsets.append(offsets[-1] + g.end - g.start)
    out: list[tuple[int, int, str]] = []
    for i, first in enumerate(groups):
        if offsets[-1] - offsets[i] < shortest:
            break  # every stretch from here on is too short
        start = first.start
        if start > 0 and text[start - 1] in "+(":
            start -= 1
        for j in range(i, len(groups)):
            total = offsets[j + 1] - offsets[i]
            if total > longest:
                break  # and so is every longer one
            if lengths is not None and total not in lengths:
                continue
            out.append((start, groups[j].end, joined[offsets[i] : offsets[j + 1]]))
    if len(out) > 1:
        out.sort(key=lambda item: (-len(item[2]), item[0]))
    return out


@functools.lru_cache(maxsize=2)
def windows_ascii(text: str) -> bytes:
    """The windows of *text* as one ASCII string, each after a NUL.

    Any character outside ASCII reads as "?". Detectors that search the windows for a
    shape of characters (``finance``: IBAN check digits, VAT numbers) translate this
    with their own table; making it costs 0.26 ms for the 110,000 characters of the
    benchmark mix's windows, once per call for all of them.

    Args:
        text: folded text.

    Returns:
        ``b""`` when the text has no digit.
    """
    spans = windows(text)
    if not spans:
        return b""
    return ("\0" + "\0".join([text[lo:hi] for lo, hi in spans])).encode("ascii", "replace")


def forget() -> None:
    """Drop the cached passes, and with them the last texts asked about."""
    windows.cache_clear()
    segments.cache_clear()
    windows_ascii.cache_clear()
