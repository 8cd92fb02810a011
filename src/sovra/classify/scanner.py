"""Find sensitive data in a text: every registered detector family, one answer per span.

Offsets always index the string the caller passed. The scanner does not normalise the
text (NFC and NFKC change its length); it folds look-alike characters one code point for
one code point (full-width digit four to ``4``, no-break space to space, see ``_fold``) and
runs the detectors on the folded copy, whose offsets are the original's.

Cost is linear in the text. Prose costs a few passes (about 8 ms per megabyte on one
core: folding, the digit windows, the term automaton, a few string searches); each
candidate number costs more: check digits, and for a phone number one parse per region
whose national shape fits (a few microseconds each, see ``_plans``). A text made of
numbers would therefore cost up to seconds per megabyte, so the count of separate
numbers is bounded as well as the length; a text over either bound is refused whole
rather than scanned in part.
"""

from __future__ import annotations

from sovra.classify._fold import fold
from sovra.classify._overlap import resolve_overlaps
from sovra.classify._runs import forget, segments, windows
from sovra.classify.registry import FAMILIES
from sovra.classify.special import LANGUAGES
from sovra.errors import BadRequest, PayloadTooLarge
from sovra.model import Finding

__all__ = ["DEFAULT_MAX_CHARS", "DEFAULT_MAX_NUMBERS", "LANGUAGES", "scan"]

DEFAULT_MAX_CHARS = 10_000_000
# About half a second of phone matching on one core in the worst layout: nine-digit
# numbers one space apart, nearly every one a valid Polish number.
DEFAULT_MAX_NUMBERS = 10_000


def scan(
    text: str,
    *,
    lang: str | None = None,
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
        lang: a code of :data:`LANGUAGES` to use only that language's term lists and
            context words (special categories, dates of birth); None or ``"auto"``
            uses every language's, which finds the same in mixed-language text at a
            small cost. Identifiers, contacts and accounts are found in any language.
        max_chars: the largest number of characters (code points) accepted.
        max_numbers: the largest number of separate digit runs accepted (after
            folding, so full-width and other-script digits count).

    Returns:
        Pairwise disjoint findings sorted by start; ``[]`` for an empty text.

    Raises:
        BadRequest: *text* is not a string, or *lang* is not a known language code.
        PayloadTooLarge: *text* is longer than *max_chars*, or holds more than
            *max_numbers* separate numbers.
    """
    if not isinstance(text, str):
        raise BadRequest(f"scan takes text, not {type(text).__name__}")
    if lang == "auto":
        lang = None
    if lang is not None and lang not in LANGUAGES:
        raise BadRequest(f"unknown language {lang!r}; use auto or one of {', '.join(LANGUAGES)}")
    if len(text) > max_chars:
        raise PayloadTooLarge(f"text of {len(text)} characters is over the {max_chars} limit")
    if not text:
        return []
    folded = fold(text)
    try:
        return _detect(folded, lang, max_numbers)
    finally:
        # The digit passes are cached for the detectors to share; dropped here, so that
        # no copy of the text outlives the call and a later call pays for its own.
        forget()


def _detect(folded: str, lang: str | None, max_numbers: int) -> list[Finding]:
    # The digit groups of the shared digit-run pass are the separate numbers; computing
    # them here costs nothing extra, since the number detectors read the same cached pass.
    # Two groups stand at least one character apart, so a text shorter than twice the
    # bound cannot hold too many, and most are not counted.
    if len(folded) > 2 * max_numbers and (
        sum(len(segment.groups) for segment in segments(folded)) > max_numbers
    ):
        raise PayloadTooLarge(
            f"text holds more than {max_numbers} separate numbers, too many to check for "
            "phone numbers in bounded time; split it"
        )
    # A family that needs a digit or a character the text lacks is not run: one test
    # here instead of its passes (see Family.requires).
    digit = bool(windows(folded))
    found: list[Finding] = []
    for family in FAMILIES:
        needs = family.requires
        if not digit and needs is not None and not any(c in folded for c in needs):
            continue
        if lang is not None and family.detect_in is not None:
            found.extend(family.detect_in(folded, lang))
        else:
            found.extend(family.detect(folded))
    return resolve_overlaps(found)
