"""Precise location: geographic coordinates that pin a place to within tens of metres.

Kinds:
    ``geo_coordinates``: a latitude and longitude pair in decimal degrees with at least
    four decimals each (about eleven metres; fewer decimals name a town, not a house),
    ``52.2297, 21.0122`` or ``52.2297 21.0122``, within -90..90 and -180..180; or in
    degrees, minutes and seconds with hemispheres, ``52°13'47"N 21°00'42"E``, with
    minutes and seconds below 60. No checksum exists, so ``validated`` is false.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from sovra.classify._runs import segments
from sovra.model import Finding

__all__ = ["KINDS", "detect", "detect_coordinates"]

KINDS = frozenset({"geo_coordinates"})

_PAIR = re.compile(r"([-+]?[0-9]{1,2}\.[0-9]{4,8}),? {0,2}([-+]?[0-9]{1,3}\.[0-9]{4,8})")
_DMS_PART = r"([0-9]{1,3})° ?([0-9]{1,2})['\u2032] ?(?:([0-9]{1,2}(?:\.[0-9]+)?)[\"\u2033] ?)?"
_DMS_FULL = re.compile(_DMS_PART + r"[NS],? ?" + _DMS_PART + r"[EWO]")
_DECIMAL_CONFIDENCE = 0.85
_MIN_DECIMALS = 4
_DMS_CONFIDENCE = 0.9


def _decimal_pairs(text: str) -> Iterator[Finding]:
    # Anchored on the shared digit-run pass: a latitude is a segment whose first two
    # groups are joined by a dot, the second of at least four digits.
    for segment in segments(text):
        groups = segment.groups
        if len(groups) < 2 or text[groups[0].end] != "." or groups[0].end + 1 != groups[1].start:
            continue
        if groups[1].end - groups[1].start < _MIN_DECIMALS:
            continue
        start = groups[0].start
        if start > 0 and text[start - 1] in "-+":
            start -= 1
        match = _PAIR.match(text, start)
        if match is None:
            continue
        end = match.end()
        if start > 0 and (text[start - 1].isalnum() or text[start - 1] in "."):
            continue
        if end < len(text) and text[end].isdigit():
            continue
        lat, lon = float(match.group(1)), float(match.group(2))
        if abs(lat) <= 90 and abs(lon) <= 180 and (lat, lon) != (0.0, 0.0):
            yield Finding("geo_coordinates", start, end, _DECIMAL_CONFIDENCE, validated=False)


def _dms_candidates(text: str) -> Iterator[re.Match[str]]:
    # Anchored on the shared digit-run pass: degrees are digits right before "°".
    for segment in segments(text):
        last = segment.groups[-1]
        if last.end < len(text) and text[last.end] == "°" and last.end - last.start <= 3:
            match = _DMS_FULL.match(text, last.start)
            if match is not None:
                yield match


def _dms(text: str) -> Iterator[Finding]:
    for match in _dms_candidates(text):
        degrees = (int(match.group(1)), int(match.group(4)))
        minutes = (int(match.group(2)), int(match.group(5)))
        seconds = [float(s) for s in (match.group(3), match.group(6)) if s]
        if degrees[0] > 90 or degrees[1] > 180:
            continue
        if any(m >= 60 for m in minutes) or any(s >= 60 for s in seconds):
            continue
        yield Finding(
            "geo_coordinates", match.start(), match.end(), _DMS_CONFIDENCE, validated=False
        )


def detect_coordinates(text: str) -> Iterator[Finding]:
    """Yield a ``geo_coordinates`` finding for each precise coordinate pair in *text*.

    Args:
        text: the text to search, with ASCII digits (the scanner folds others first);
            spans index it directly.

    Yields:
        Findings; decimal pairs first, then degree-minute-second pairs.
    """
    if "." in text:
        yield from _decimal_pairs(text)
    if "°" in text:
        yield from _dms(text)


def detect(text: str) -> Iterator[Finding]:
    """Yield every location finding in *text*.

    Args:
        text: the text to search; spans index it directly.

    Yields:
        Findings of kinds :data:`KINDS`.
    """
    yield from detect_coordinates(text)
