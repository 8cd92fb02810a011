"""Find sensitive data in a text: every registered detector family, one answer per span.

Offsets always index the string the caller passed. The scanner does not normalise the
text (NFC and NFKC change its length); it folds look-alike characters one code point for
one code point (full-width digit four to ``4``, no-break space to space, see ``_fold``) and
runs the detectors on the folded copy, whose offsets are the original's.
"""

from __future__ import annotations

from sovra.classify._fold import fold
from sovra.classify._overlap import resolve_overlaps
from sovra.classify.registry import FAMILIES
from sovra.errors import BadRequest, PayloadTooLarge
from sovra.model import Finding

__all__ = ["DEFAULT_MAX_CHARS", "scan"]

DEFAULT_MAX_CHARS = 10_000_000


def scan(text: str, *, max_chars: int = DEFAULT_MAX_CHARS) -> list[Finding]:
    """Find the sensitive data in *text*.

    Where findings overlap, one is kept: a validated finding beats an unvalidated one,
    then the longer span wins, then the higher confidence (ties go to the earlier
    start, then the kind's name). Findings never include the matched value;
    ``text[f.start:f.end]`` is it.

    Args:
        text: the content to scan. Lone surrogates and any other code points are
            accepted.
        max_chars: the largest number of characters (code points) accepted.

    Returns:
        Pairwise disjoint findings sorted by start; ``[]`` for an empty text.

    Raises:
        BadRequest: *text* is not a string.
        PayloadTooLarge: *text* is longer than *max_chars*.
    """
    if not isinstance(text, str):
        raise BadRequest(f"scan takes text, not {type(text).__name__}")
    if len(text) > max_chars:
        raise PayloadTooLarge(f"text of {len(text)} characters is over the {max_chars} limit")
    if not text:
        return []
    folded = fold(text)
    return resolve_overlaps(
        finding for family in FAMILIES for finding in family.detect(folded)
    )
