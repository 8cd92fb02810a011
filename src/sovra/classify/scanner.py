"""Find sensitive data in a text: every registered detector family, one answer per span.

Offsets always index the string the caller passed. The scanner does not normalise the
text (NFC and NFKC change its length); it folds look-alike characters one code point for
one code point (full-width digit four to ``4``, no-break space to space, see ``_fold``) and
runs the detectors on the folded copy, whose offsets are the original's.

Cost is linear in the text, and phone matching dominates it: ``phonenumbers`` parses
every number-like run once per region tried, most of a millisecond per number. Prose
costs well under a second per million characters, but a text made of numbers would cost
a minute per megabyte, so the count of separate numbers is bounded as well as the
length; a text over either bound is refused whole rather than scanned in part.
"""

from __future__ import annotations

import itertools
import re

from sovra.classify._fold import fold
from sovra.classify._overlap import resolve_overlaps
from sovra.classify.registry import FAMILIES
from sovra.errors import BadRequest, PayloadTooLarge
from sovra.model import Finding

__all__ = ["DEFAULT_MAX_CHARS", "DEFAULT_MAX_NUMBERS", "scan"]

DEFAULT_MAX_CHARS = 10_000_000
# About eight seconds of phone matching in the worst layout: nine-digit numbers one
# space apart, nearly every one a valid Polish number.
DEFAULT_MAX_NUMBERS = 10_000

_NUMBER = re.compile(r"[0-9]+")


def scan(
    text: str,
    *,
    max_chars: int = DEFAULT_MAX_CHARS,
    max_numbers: int = DEFAULT_MAX_NUMBERS,
) -> list[Finding]:
    """Find the sensitive data in *text*.

    Where findings overlap, one is kept: a validated finding beats an unvalidated one,
    then the longer span wins, then the higher confidence (ties go to the earlier
    start, then the kind's name). Findings never include the matched value;
    ``text[f.start:f.end]`` is it.

    Args:
        text: the content to scan. Lone surrogates and any other code points are
            accepted.
        max_chars: the largest number of characters (code points) accepted.
        max_numbers: the largest number of separate digit runs accepted (after
            folding, so full-width and other-script digits count).

    Returns:
        Pairwise disjoint findings sorted by start; ``[]`` for an empty text.

    Raises:
        BadRequest: *text* is not a string.
        PayloadTooLarge: *text* is longer than *max_chars*, or holds more than
            *max_numbers* separate numbers.
    """
    if not isinstance(text, str):
        raise BadRequest(f"scan takes text, not {type(text).__name__}")
    if len(text) > max_chars:
        raise PayloadTooLarge(f"text of {len(text)} characters is over the {max_chars} limit")
    if not text:
        return []
    folded = fold(text)
    runs = itertools.islice(_NUMBER.finditer(folded), max_numbers + 1)
    if sum(1 for _ in runs) > max_numbers:
        raise PayloadTooLarge(
            f"text holds more than {max_numbers} separate numbers, too many to check for "
            "phone numbers in bounded time; split it"
        )
    return resolve_overlaps(finding for family in FAMILIES for finding in family.detect(folded))
